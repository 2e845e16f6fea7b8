//! v2 §11.1 info: service discovery, no authentication; the v1 members plus
//! `signAlgorithms`, `signature_formats`, `conformance_levels`, `oauth2Issuer`,
//! `asynchronousOperationMode` and `validationInfo`.

use serde_json::{Value, json};

use crate::checks::info::{looks_like_language_tag, string_member};
use crate::checks::{Check, check};
use crate::crypto;
use crate::ctx::{Ctx, member};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "v2 §11.1 info";

/// The method names of the v2.0.0.2 method table (`credentials/sendOTP` is still listed there
/// although no clause defines it; `oauth2/pushed_authorize` is §8.4 PAR).
pub(crate) const METHODS: &[&str] = &[
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/authorizeCheck",
    "credentials/getChallenge",
    "credentials/extendTransaction",
    "credentials/sendOTP",
    "signatures/signHash",
    "signatures/signDoc",
    "signatures/signPolling",
    "signatures/timestamp",
    "oauth2/authorize",
    "oauth2/pushed_authorize",
    "oauth2/token",
    "oauth2/revoke",
];

const AUTH_TYPES: &[&str] = &[
    "external",
    "TLS",
    "basic",
    "digest",
    "oauth2code",
    "oauth2client",
];

const FORMATS: &[&str] = &["C", "X", "P", "J"];

const CONFORMANCE_LEVELS: &[&str] = &[
    "Ades-B-B",
    "Ades-B-T",
    "Ades-B-LT",
    "Ades-B-LTA",
    "Ades-B",
    "Ades-T",
    "Ades-LT",
    "Ades-LTA",
];

fn strings(v: &Value) -> Option<Vec<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

/// An optional boolean member: absent or `true`/`false`.
fn optional_bool(v: &Value, name: &str) -> Outcome {
    match v.get(name) {
        None => Outcome::pass(format!("{name} absent (false)")),
        Some(Value::Bool(b)) => Outcome::pass(format!("{name} = {b}")),
        Some(other) => Outcome::fail(format!("{name}: absent or a boolean"), other.to_string()),
    }
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "v2.info.status",
            S,
            "info answers 200 with a JSON object, without authentication",
            |ctx: &mut Ctx<'_>| {
                let r = ctx.http.post("info", Auth::None, &json!({}));
                Ok(Outcome::check(
                    r.status == 200 && r.json.as_ref().is_some_and(Value::is_object),
                    "200 with a JSON object",
                    r.brief(),
                ))
            },
        ),
        check(
            "v2.info.content-type",
            "v2 §7.1 format of the API",
            "responses are sent as application/json",
            |ctx: &mut Ctx<'_>| {
                let r = ctx.http.post("info", Auth::None, &json!({}));
                Ok(Outcome::check(
                    r.is_json_content_type(),
                    "Content-Type: application/json",
                    format!(
                        "Content-Type: {}",
                        r.content_type.as_deref().unwrap_or("(none)")
                    ),
                ))
            },
        ),
        check(
            "v2.info.specs",
            S,
            "specs is a string Major.Minor.x.y of version 2",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = member(&v, &["specs"]).as_str().is_some_and(|s| {
                    let parts: Vec<&str> = s.split('.').collect();
                    parts.len() == 4
                        && parts
                            .iter()
                            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                        && parts.first() == Some(&"2")
                });
                Ok(Outcome::check(
                    ok,
                    r#"a string like "2.0.0.2""#,
                    member(&v, &["specs"]).to_string(),
                ))
            },
        ),
        check(
            "v2.info.name",
            S,
            "name is a string of at most 255 characters",
            |ctx: &mut Ctx<'_>| Ok(string_member(&ctx.info()?, "name", Some(255))),
        ),
        check(
            "v2.info.logo",
            S,
            "logo is the URI of an image",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = member(&v, &["logo"])
                    .as_str()
                    .is_some_and(|s| s.contains("://") || s.starts_with("data:image/"));
                Ok(Outcome::check(
                    ok,
                    "a URI string",
                    member(&v, &["logo"]).to_string(),
                ))
            },
        ),
        check(
            "v2.info.region",
            S,
            "region is an ISO 3166-1 alpha-2 country code",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = member(&v, &["region"])
                    .as_str()
                    .is_some_and(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase()));
                Ok(Outcome::check(
                    ok,
                    "two upper-case letters, e.g. \"BE\"",
                    member(&v, &["region"]).to_string(),
                ))
            },
        ),
        check(
            "v2.info.lang",
            S,
            "lang is an RFC 5646 language tag",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = member(&v, &["lang"])
                    .as_str()
                    .is_some_and(looks_like_language_tag);
                Ok(Outcome::check(
                    ok,
                    "a language tag, e.g. \"en-US\"",
                    member(&v, &["lang"]).to_string(),
                ))
            },
        ),
        check(
            "v2.info.description",
            S,
            "description is a string of at most 255 characters",
            |ctx: &mut Ctx<'_>| Ok(string_member(&ctx.info()?, "description", Some(255))),
        ),
        check(
            "v2.info.authType",
            S,
            "authType is a non-empty array of external, TLS, basic, digest, oauth2code, oauth2client",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = strings(member(&v, &["authType"]))
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|t| AUTH_TYPES.contains(t)));
                Ok(Outcome::check(
                    ok,
                    format!("a non-empty subset of {AUTH_TYPES:?}"),
                    member(&v, &["authType"]).to_string(),
                ))
            },
        ),
        check(
            "v2.info.oauth2",
            S,
            "when authType lists oauth2code or oauth2client, oauth2 (base URI) or oauth2Issuer (RFC 8414 issuer) is a non-empty string",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let oauth = ctx.auth_types().iter().any(|t| t.starts_with("oauth2"));
                if !oauth {
                    return Ok(Outcome::skip(
                        "authType lists no oauth2 value: neither oauth2 nor oauth2Issuer is required",
                    ));
                }
                let uri = |name: &str| {
                    member(&v, &[name])
                        .as_str()
                        .is_some_and(|s| s.contains("://"))
                };
                let typed = |name: &str| v.get(name).is_none_or(Value::is_string);
                Ok(Outcome::check(
                    (uri("oauth2") || uri("oauth2Issuer"))
                        && typed("oauth2")
                        && typed("oauth2Issuer"),
                    "oauth2 and/or oauth2Issuer: URI strings",
                    format!(
                        "oauth2 = {}, oauth2Issuer = {}",
                        member(&v, &["oauth2"]),
                        member(&v, &["oauth2Issuer"])
                    ),
                ))
            },
        ),
        check(
            "v2.info.methods",
            S,
            "methods is an array of the method names of the v2 method table",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let Some(a) = member(&v, &["methods"]).as_array() else {
                    return Ok(Outcome::fail(
                        "an array of strings",
                        member(&v, &["methods"]).to_string(),
                    ));
                };
                let unknown: Vec<String> = a
                    .iter()
                    .filter(|m| !m.as_str().is_some_and(|m| METHODS.contains(&m)))
                    .map(Value::to_string)
                    .collect();
                Ok(Outcome::check(
                    unknown.is_empty(),
                    "only v2 method names",
                    if unknown.is_empty() {
                        member(&v, &["methods"]).to_string()
                    } else {
                        format!("unknown: {}", unknown.join(", "))
                    },
                ))
            },
        ),
        check(
            "v2.info.signAlgorithms",
            S,
            "signAlgorithms is an object with algos, a non-empty array of OIDs, and algoParams, when present, an array as long as algos of base64 strings (or null)",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let sa = member(&v, &["signAlgorithms"]);
                let algos = strings(member(sa, &["algos"]));
                let algos_ok = algos
                    .as_ref()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|o| crypto::is_oid(o)));
                let params_ok = match sa.get("algoParams") {
                    None => true,
                    Some(Value::Array(p)) => {
                        algos.as_ref().is_some_and(|a| a.len() == p.len())
                            && p.iter().all(|x| match x {
                                Value::Null => true,
                                Value::String(s) => s.is_empty() || crypto::unb64(s).is_ok(),
                                _ => false,
                            })
                    }
                    Some(_) => false,
                };
                Ok(Outcome::check(
                    sa.is_object() && algos_ok && params_ok,
                    r#"{"algos":["1.2.840...",...],"algoParams":[...]?}"#,
                    sa.to_string(),
                ))
            },
        ),
        check(
            "v2.info.signAlgorithms-cover-credentials",
            S,
            "every signature algorithm a credential advertises (key.algo) is among signAlgorithms.algos",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let algos: Vec<String> = strings(member(&v, &["signAlgorithms", "algos"]))
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                ctx.listed("credentials/info")?;
                let ids = ctx.credential_ids();
                if ids.is_empty() {
                    return Ok(Outcome::skip("no credential given (--credential)"));
                }
                for id in ids {
                    let cred = ctx.cred(&id)?;
                    let missing: Vec<&String> =
                        cred.algos.iter().filter(|a| !algos.contains(a)).collect();
                    if !missing.is_empty() {
                        return Ok(Outcome::fail(
                            "key.algo within signAlgorithms.algos",
                            format!("{id} advertises {missing:?}, info lists {algos:?}"),
                        ));
                    }
                }
                Ok(Outcome::pass(format!("{algos:?}")))
            },
        ),
        check(
            "v2.info.signature_formats",
            S,
            "signature_formats is an object with formats, an array of C, X, P, J, and envelope_properties, when present, an array of string arrays as long as formats",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let sf = member(&v, &["signature_formats"]);
                let formats = strings(member(sf, &["formats"]));
                let formats_ok = formats
                    .as_ref()
                    .is_some_and(|f| f.iter().all(|x| FORMATS.contains(x)));
                let env_ok = match sf.get("envelope_properties") {
                    None => true,
                    Some(Value::Array(e)) => {
                        formats.as_ref().is_some_and(|f| f.len() == e.len())
                            && e.iter().all(|x| strings(x).is_some())
                    }
                    Some(_) => false,
                };
                Ok(Outcome::check(
                    sf.is_object() && formats_ok && env_ok,
                    r#"{"formats":["C"|"X"|"P"|"J",...],"envelope_properties":[[...],...]?}"#,
                    sf.to_string(),
                ))
            },
        ),
        check(
            "v2.info.conformance_levels",
            S,
            "conformance_levels is an array of Ades-B-B, Ades-B-T, Ades-B-LT, Ades-B-LTA, Ades-B, Ades-T, Ades-LT, Ades-LTA",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = strings(member(&v, &["conformance_levels"]))
                    .is_some_and(|l| l.iter().all(|x| CONFORMANCE_LEVELS.contains(x)));
                Ok(Outcome::check(
                    ok,
                    format!("an array of {CONFORMANCE_LEVELS:?}"),
                    member(&v, &["conformance_levels"]).to_string(),
                ))
            },
        ),
        check(
            "v2.info.asynchronousOperationMode",
            S,
            "asynchronousOperationMode, when present, is a boolean",
            |ctx: &mut Ctx<'_>| Ok(optional_bool(&ctx.info()?, "asynchronousOperationMode")),
        ),
        check(
            "v2.info.validationInfo",
            S,
            "validationInfo, when present, is a boolean",
            |ctx: &mut Ctx<'_>| Ok(optional_bool(&ctx.info()?, "validationInfo")),
        ),
        check(
            "v2.info.lang-fallback",
            S,
            "an unsupported lang is answered in the service's own language, not refused",
            |ctx: &mut Ctx<'_>| {
                let r = ctx
                    .http
                    .post("info", Auth::None, &json!({ "lang": "zz-ZZ" }));
                let ok = r.status == 200 && r.str("lang").is_some_and(looks_like_language_tag);
                Ok(Outcome::check(ok, "200 with the service's lang", r.brief()))
            },
        ),
    ]
}
