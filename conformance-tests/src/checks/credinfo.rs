//! §11.5 credentials/info: key, certificate, authorization mode, SCAL, multisign.

use csc_types::{CredentialsInfoRequest, CredentialsInfoResponse};
use openssl::x509::X509;
use serde_json::Value;

use super::{Check, bogus, check, key_type_of_algo};
use crate::crypto;
use crate::ctx::{Cred, Ctx, Need, expect_invalid_request, member, to_json, without};
use crate::http::Resp;
use crate::report::Outcome;

const S: &str = "§11.5 credentials/info";

/// Runs `rule` on every given credential; fails with the first that breaks it.
pub(crate) fn each(
    ctx: &mut Ctx<'_>,
    expected: &str,
    rule: impl Fn(&Cred) -> Result<String, String>,
) -> Need<Outcome> {
    ctx.listed("credentials/info")?;
    let ids = ctx.credential_ids();
    if ids.is_empty() {
        return Ok(Outcome::skip("no credential given (--credential)"));
    }
    let mut seen = Vec::new();
    for id in ids {
        let cred = ctx.cred(&id)?;
        match rule(&cred) {
            Ok(s) => seen.push(format!("{id}: {s}")),
            Err(got) => return Ok(Outcome::fail(expected, format!("{id}: {got}"))),
        }
    }
    Ok(Outcome::pass(seen.join("; ")))
}

/// credentials/info of the primary credential with these request members.
fn info_of(ctx: &mut Ctx<'_>, req: CredentialsInfoRequest) -> Need<(Cred, Resp)> {
    ctx.listed("credentials/info")?;
    let cred = ctx.primary()?;
    let req = CredentialsInfoRequest {
        credential_id: cred.id.clone(),
        ..req
    };
    let r = ctx.call("credentials/info", &to_json(&req))?;
    Ok((cred, r))
}

fn cert_info(ctx: &mut Ctx<'_>) -> Need<(X509, Value)> {
    let (cred, r) = info_of(
        ctx,
        CredentialsInfoRequest {
            cert_info: Some(true),
            ..CredentialsInfoRequest::default()
        },
    )?;
    let Some(cert) = cred.cert().cloned() else {
        return Err(Outcome::skip(format!(
            "credential {} returned no certificate",
            cred.id
        )));
    };
    match r.json {
        Some(v) if r.status == 200 => Ok((cert, member(&v, &["cert"]).clone())),
        _ => Err(Outcome::fail(
            "200 with cert.issuerDN, serialNumber, subjectDN, validFrom, validTo for certInfo true",
            r.brief(),
        )),
    }
}

fn cert_field(
    ctx: &mut Ctx<'_>,
    name: &str,
    rule: impl Fn(&str, &X509) -> Result<(), String>,
) -> Need<Outcome> {
    let (cert, c) = cert_info(ctx)?;
    Ok(match c.get(name).and_then(Value::as_str) {
        None => Outcome::fail(format!("cert.{name}: a string"), c.to_string()),
        Some(s) => match rule(s, &cert) {
            Ok(()) => Outcome::pass(format!("{name} = {s}")),
            Err(e) => Outcome::fail(format!("cert.{name} matching the certificate"), e),
        },
    })
}

fn certificates(v: &Value) -> Option<Vec<&Value>> {
    v.get("cert")?
        .get("certificates")?
        .as_array()
        .map(|a| a.iter().collect())
}

const CERT_INFO_FIELDS: &[&str] = &[
    "issuerDN",
    "serialNumber",
    "subjectDN",
    "validFrom",
    "validTo",
];

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "credinfo.schema",
            S,
            "the output has key, cert, authMode, SCAL and multisign with their types",
            |ctx: &mut Ctx<'_>| {
                each(
                    ctx,
                    "the credentials/info output members with their types",
                    |c| {
                        serde_json::from_value::<CredentialsInfoResponse>(c.raw.clone())
                            .map(|_| "ok".to_owned())
                            .map_err(|e| format!("{e}: {}", c.raw))
                    },
                )
            },
        ),
        check(
            "credinfo.key.status",
            S,
            "key.status is enabled or disabled",
            |ctx: &mut Ctx<'_>| {
                each(
                    ctx,
                    r#"key.status "enabled" or "disabled""#,
                    |c| match member(&c.raw, &["key", "status"]).as_str() {
                        Some(s @ ("enabled" | "disabled")) => Ok(s.to_owned()),
                        _ => Err(member(&c.raw, &["key", "status"]).to_string()),
                    },
                )
            },
        ),
        check(
            "credinfo.key.algo",
            S,
            "key.algo is a non-empty array of signature algorithm OIDs",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "a non-empty array of dotted OIDs", |c| {
                    let ok = member(&c.raw, &["key", "algo"])
                        .as_array()
                        .is_some_and(|a| {
                            !a.is_empty()
                                && a.iter().all(|o| o.as_str().is_some_and(crypto::is_oid))
                        });
                    if ok {
                        Ok(c.algos.join(" "))
                    } else {
                        Err(member(&c.raw, &["key", "algo"]).to_string())
                    }
                })
            },
        ),
        check(
            "credinfo.key.algo-fits-key",
            S,
            "every known OID in key.algo is a signature algorithm of the certificate's key type",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "only algorithms of the key's type", |c| {
                    let kind = c.key_kind();
                    let wrong: Vec<&String> = c
                        .algos
                        .iter()
                        .filter(|a| key_type_of_algo(a).is_some_and(|k| k != kind))
                        .collect();
                    if wrong.is_empty() {
                        Ok(format!("{kind} key"))
                    } else {
                        Err(format!("{kind} key lists {wrong:?}"))
                    }
                })
            },
        ),
        check(
            "credinfo.key.len",
            S,
            "key.len is the key length in bits, as in the certificate",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "key.len = the certificate key's bits", |c| {
                    let cert = c.cert().ok_or("no certificate returned")?;
                    let (_, bits) = crypto::key_of(cert)?;
                    match member(&c.raw, &["key", "len"]).as_u64() {
                        Some(l) if l == u64::from(bits) => Ok(format!("{l}")),
                        _ => Err(format!(
                            "{} where the certificate key has {bits} bits",
                            member(&c.raw, &["key", "len"])
                        )),
                    }
                })
            },
        ),
        check(
            "credinfo.key.curve",
            S,
            "key.curve is the curve OID for an EC key and absent otherwise",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "the named curve's OID for EC keys only", |c| {
                    let curve = member(&c.raw, &["key"]).get("curve");
                    match (c.key_kind().as_str(), curve) {
                        ("EC", Some(Value::String(s))) => {
                            let want = c.cert().and_then(crypto::curve_oid).unwrap_or_default();
                            if *s == want {
                                Ok(s.clone())
                            } else {
                                Err(format!("{s} where the certificate's curve is {want}"))
                            }
                        }
                        ("EC", other) => Err(format!("EC key with curve {other:?}")),
                        (_, None) => Ok("absent (not EC)".into()),
                        (k, Some(v)) => Err(format!("{k} key with curve {v}")),
                    }
                })
            },
        ),
        check(
            "credinfo.authMode",
            S,
            "authMode is implicit, explicit or oauth2code",
            |ctx: &mut Ctx<'_>| {
                each(
                    ctx,
                    r#""implicit", "explicit" or "oauth2code""#,
                    |c| match c.auth_mode.as_str() {
                        m @ ("implicit" | "explicit" | "oauth2code") => Ok(m.to_owned()),
                        _ => Err(member(&c.raw, &["authMode"]).to_string()),
                    },
                )
            },
        ),
        check(
            "credinfo.SCAL",
            S,
            "SCAL, when present, is the string \"1\" or \"2\"",
            |ctx: &mut Ctx<'_>| {
                each(ctx, r#"absent, "1" or "2""#, |c| match c.raw.get("SCAL") {
                    None => Ok("absent (1)".into()),
                    Some(Value::String(s)) if s == "1" || s == "2" => Ok(s.clone()),
                    Some(v) => Err(v.to_string()),
                })
            },
        ),
        check(
            "credinfo.multisign",
            S,
            "multisign is an integer of at least 1",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "an integer >= 1", |c| {
                    match member(&c.raw, &["multisign"]).as_u64() {
                        Some(n) if n >= 1 => Ok(n.to_string()),
                        _ => Err(member(&c.raw, &["multisign"]).to_string()),
                    }
                })
            },
        ),
        check(
            "credinfo.certificates.single",
            S,
            "by default (certificates \"single\") cert.certificates holds the end-entity certificate only",
            |ctx: &mut Ctx<'_>| {
                let (cred, r) = info_of(ctx, CredentialsInfoRequest::default())?;
                let v = r.json.clone().unwrap_or_default();
                let certs = certificates(&v).unwrap_or_default();
                let same = certs
                    .first()
                    .and_then(|c| c.as_str())
                    .and_then(|c| crypto::parse_cert(c).ok())
                    .zip(cred.cert())
                    .is_some_and(|(a, b)| a.to_der().ok() == b.to_der().ok());
                Ok(Outcome::check(
                    r.status == 200 && certs.len() == 1 && same,
                    "200 with exactly one certificate, the signer's (first of the chain)",
                    r.brief(),
                ))
            },
        ),
        check(
            "credinfo.certificates.chain",
            S,
            "certificates \"chain\" returns the whole chain, end-entity first, each certificate issued by the next",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/info")?;
                let cred = ctx.primary()?;
                let certs = certificates(&cred.raw).unwrap_or_default();
                if certs.len() != cred.chain.len() || cred.chain.is_empty() {
                    return Ok(Outcome::fail(
                        "base64 DER certificates",
                        format!("{:?}", cred.raw.get("cert")),
                    ));
                }
                if let Err(e) = crypto::chain_links(&cred.chain) {
                    return Ok(Outcome::fail("each certificate issued by the next", e));
                }
                let last = cred
                    .chain
                    .last()
                    .map(|c| c.issued(c) == openssl::x509::X509VerifyResult::OK);
                Ok(Outcome::check(
                    last == Some(true) || cred.chain.len() > 1,
                    "the chain up to the issuer of the signer's certificate",
                    format!("{} certificate(s)", cred.chain.len()),
                ))
            },
        ),
        check(
            "credinfo.certificates.none",
            S,
            "certificates \"none\" returns no cert.certificates",
            |ctx: &mut Ctx<'_>| {
                let (_, r) = info_of(
                    ctx,
                    CredentialsInfoRequest {
                        certificates: Some("none".into()),
                        ..CredentialsInfoRequest::default()
                    },
                )?;
                let v = r.json.clone().unwrap_or_default();
                Ok(Outcome::check(
                    r.status == 200 && certificates(&v).is_none(),
                    "200 without cert.certificates",
                    r.brief(),
                ))
            },
        ),
        check(
            "credinfo.certInfo.default-absent",
            S,
            "without certInfo, cert carries no issuerDN, serialNumber, subjectDN, validFrom, validTo",
            |ctx: &mut Ctx<'_>| {
                let (_, r) = info_of(ctx, CredentialsInfoRequest::default())?;
                let v = r.json.clone().unwrap_or_default();
                let present: Vec<&&str> = CERT_INFO_FIELDS
                    .iter()
                    .filter(|f| member(&v, &["cert"]).get(**f).is_some())
                    .collect();
                Ok(Outcome::check(
                    r.status == 200 && present.is_empty(),
                    "200 without the certInfo members",
                    if present.is_empty() {
                        r.brief()
                    } else {
                        format!("present: {present:?}")
                    },
                ))
            },
        ),
        check(
            "credinfo.certInfo.issuerDN",
            S,
            "certInfo: issuerDN is the RFC 4514 string of the certificate's issuer",
            |ctx: &mut Ctx<'_>| {
                cert_field(ctx, "issuerDN", |s, c| {
                    crypto::dn_matches(s, c.issuer_name())
                })
            },
        ),
        check(
            "credinfo.certInfo.subjectDN",
            S,
            "certInfo: subjectDN is the RFC 4514 string of the certificate's subject",
            |ctx: &mut Ctx<'_>| {
                cert_field(ctx, "subjectDN", |s, c| {
                    crypto::dn_matches(s, c.subject_name())
                })
            },
        ),
        check(
            "credinfo.certInfo.serialNumber",
            S,
            "certInfo: serialNumber is the certificate's serial number in hex",
            |ctx: &mut Ctx<'_>| cert_field(ctx, "serialNumber", crypto::serial_matches),
        ),
        check(
            "credinfo.certInfo.validFrom",
            S,
            "certInfo: validFrom is the certificate's notBefore as GeneralizedTime YYYYMMDDHHMMSSZ",
            |ctx: &mut Ctx<'_>| {
                cert_field(ctx, "validFrom", |s, c| {
                    crypto::time_matches(s, c.not_before())
                })
            },
        ),
        check(
            "credinfo.certInfo.validTo",
            S,
            "certInfo: validTo is the certificate's notAfter as GeneralizedTime YYYYMMDDHHMMSSZ",
            |ctx: &mut Ctx<'_>| {
                cert_field(ctx, "validTo", |s, c| {
                    crypto::time_matches(s, c.not_after())
                })
            },
        ),
        check(
            "credinfo.authInfo.default-absent",
            S,
            "without authInfo, no PIN or OTP group is returned",
            |ctx: &mut Ctx<'_>| {
                let (_, r) = info_of(ctx, CredentialsInfoRequest::default())?;
                let v = r.json.clone().unwrap_or_default();
                Ok(Outcome::check(
                    r.status == 200 && v.get("PIN").is_none() && v.get("OTP").is_none(),
                    "200 without PIN and OTP",
                    r.brief(),
                ))
            },
        ),
        check(
            "credinfo.authInfo.PIN",
            S,
            "authInfo with explicit authMode: PIN.presence is \"true\", \"false\" or \"optional\", PIN.format A or N unless false",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "a PIN group with presence (and format)", |c| {
                    if c.auth_mode != "explicit" {
                        return Ok(format!("authMode {}: no PIN group needed", c.auth_mode));
                    }
                    let p = member(&c.raw, &["PIN"]);
                    match (
                        member(p, &["presence"]).as_str(),
                        member(p, &["format"]).as_str(),
                    ) {
                        (Some("false"), _) => Ok("presence false".into()),
                        (Some(pr @ ("true" | "optional")), Some(f @ ("A" | "N"))) => {
                            Ok(format!("presence {pr}, format {f}"))
                        }
                        _ => Err(format!("PIN = {p}")),
                    }
                })
            },
        ),
        check(
            "credinfo.authInfo.OTP",
            S,
            "authInfo with explicit authMode: OTP.presence is \"true\", \"false\" or \"optional\", OTP.type online or offline unless false",
            |ctx: &mut Ctx<'_>| {
                each(ctx, "an OTP group with presence (and type)", |c| {
                    if c.auth_mode != "explicit" {
                        return Ok(format!("authMode {}: no OTP group needed", c.auth_mode));
                    }
                    let o = member(&c.raw, &["OTP"]);
                    match (
                        member(o, &["presence"]).as_str(),
                        member(o, &["type"]).as_str(),
                    ) {
                        (Some("false"), _) => Ok("presence false".into()),
                        (Some(pr @ ("true" | "optional")), Some(t @ ("online" | "offline"))) => {
                            Ok(format!("presence {pr}, type {t}"))
                        }
                        _ => Err(format!("OTP = {o}")),
                    }
                })
            },
        ),
        check(
            "credinfo.missing-credentialID",
            S,
            "a missing credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/info")?;
                let body = without(to_json(&CredentialsInfoRequest::default()), "credentialID");
                let r = ctx.call("credentials/info", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Missing (or invalid type) string parameter credentialID"),
                ))
            },
        ),
        check(
            "credinfo.unknown-credentialID",
            S,
            "an unknown credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/info")?;
                let body = to_json(&CredentialsInfoRequest {
                    credential_id: bogus("credential"),
                    ..CredentialsInfoRequest::default()
                });
                let r = ctx.call("credentials/info", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
        check(
            "credinfo.invalid-certificates",
            S,
            "a certificates value other than none, single, chain is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (_, r) = info_of(
                    ctx,
                    CredentialsInfoRequest {
                        certificates: Some("all".into()),
                        ..CredentialsInfoRequest::default()
                    },
                )?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter certificates"),
                ))
            },
        ),
        check(
            "credinfo.other-user",
            S,
            "another user's token cannot read the credential: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/info")?;
                let cred = ctx.primary()?;
                let other = ctx.other_token()?;
                let body = to_json(&CredentialsInfoRequest {
                    credential_id: cred.id.clone(),
                    ..CredentialsInfoRequest::default()
                });
                let r = ctx
                    .http
                    .post("credentials/info", crate::http::Auth::Bearer(&other), &body);
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
    ]
}
