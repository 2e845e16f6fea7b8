//! v2 §11.1 info: service discovery, no authentication; the v1 members plus
//! `signAlgorithms`, `signature_formats`, `conformance_levels`, `oauth2Issuer`,
//! `asynchronousOperationMode` and `validationInfo`. The members v1 has are checked by
//! [`crate::checks::info`], built for v2.

use serde_json::Value;

use crate::Api;
use crate::checks::{Check, check, info};
use crate::crypto;
use crate::ctx::{Ctx, member};
use crate::report::Outcome;

const S: &str = "v2 §11.1 info";

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
    let api = Api::V2;
    let mut all = info::answer_checks(api);
    all.extend(info::member_checks(api));
    all.extend(vec![
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
    ]);
    all.push(info::methods_check(api));
    all.extend(vec![
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
    ]);
    all.push(info::lang_fallback_check(api));
    all
}
