//! v2 §11.5 credentials/info: key, cert, SCAL, multisign and certInfo as in v1 (those v1
//! checks run again, relabelled), and the v2 `auth` object (§8.3 authentication objects) in
//! place of v1's `authMode`, `PIN` and `OTP`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::relabel;
use crate::checks::credinfo::{self, each};
use crate::checks::{Check, check};
use crate::ctx::{Ctx, member};

const S: &str = "v2 §11.5 credentials/info";
const OBJECTS: &str = "v2 §8.3 / §11.5 credentials/info";

/// The v1 checks whose members v2 replaced with `auth`.
const V1_ONLY: &[&str] = &[
    "credinfo.schema",
    "credinfo.authMode",
    "credinfo.authInfo.default-absent",
    "credinfo.authInfo.PIN",
    "credinfo.authInfo.OTP",
];

const OBJECT_TYPES: &[&str] = &[
    "Password",
    "PasswordOOB",
    "ChallengeResponse",
    "ChallengeResponseOOB",
];

/// An optional string member of `v`.
fn optional_string(v: &Value, name: &str) -> bool {
    v.get(name).is_none_or(Value::is_string)
}

/// One authentication object type descriptor (§8.3): its complaint, if any.
fn object_problem(o: &Value) -> Option<String> {
    let ty = member(o, &["type"]).as_str();
    if !ty.is_some_and(|t| OBJECT_TYPES.contains(&t)) {
        return Some(format!("type not one of {OBJECT_TYPES:?}: {o}"));
    }
    if member(o, &["id"]).as_str().is_none_or(str::is_empty) {
        return Some(format!("no id: {o}"));
    }
    if !o
        .get("format")
        .is_none_or(|f| f.as_str().is_some_and(|f| f == "A" || f == "N"))
    {
        return Some(format!("format not A or N: {o}"));
    }
    if !["label", "description", "generator"]
        .iter()
        .all(|n| optional_string(o, n))
    {
        return Some(format!("label, description or generator not a string: {o}"));
    }
    None
}

pub fn checks() -> Vec<Check> {
    let mut all: Vec<Check> = credinfo::checks()
        .into_iter()
        .filter(|c| !V1_ONLY.contains(&c.id.as_str()))
        .map(relabel)
        .collect();
    all.push(check(
        "v2.credinfo.schema",
        S,
        "the output has key (status, algo, len), cert, auth and multisign with their types",
        |ctx: &mut Ctx<'_>| {
            each(
                ctx,
                "key{status,algo,len}, cert{...}, auth{mode,...}, multisign",
                |c| {
                    let v = &c.raw;
                    let key = member(v, &["key"]);
                    let ok = member(key, &["status"]).is_string()
                        && member(key, &["algo"])
                            .as_array()
                            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
                        && member(key, &["len"]).is_u64()
                        && v.get("cert").is_none_or(Value::is_object)
                        && member(v, &["auth"]).is_object()
                        && member(v, &["multisign"]).is_u64()
                        && optional_string(v, "description")
                        && optional_string(v, "signatureQualifier")
                        && optional_string(v, "lang");
                    if ok {
                        Ok("ok".into())
                    } else {
                        Err(v.to_string())
                    }
                },
            )
        },
    ));
    all.push(check(
        "v2.credinfo.auth.mode",
        S,
        "auth.mode is explicit or oauth2code",
        |ctx: &mut Ctx<'_>| {
            each(ctx, r#""explicit" or "oauth2code""#, |c| {
                match c.auth_mode.as_str() {
                    m @ ("explicit" | "oauth2code") => Ok(m.to_owned()),
                    _ => Err(member(&c.raw, &["auth"]).to_string()),
                }
            })
        },
    ));
    all.push(check(
        "v2.credinfo.auth.objects",
        OBJECTS,
        "authInfo with explicit mode: auth.objects is an array of type descriptors (type Password, PasswordOOB, ChallengeResponse or ChallengeResponseOOB; a unique id; format A or N)",
        |ctx: &mut Ctx<'_>| {
            each(ctx, "auth.objects of well-formed type descriptors", |c| {
                if c.auth_mode != "explicit" {
                    return Ok(format!("mode {}: no objects needed", c.auth_mode));
                }
                let Some(objects) = member(&c.raw, &["auth", "objects"]).as_array() else {
                    return Err(format!("objects = {}", member(&c.raw, &["auth", "objects"])));
                };
                if let Some(p) = objects.iter().find_map(object_problem) {
                    return Err(p);
                }
                let ids: BTreeSet<&str> = objects
                    .iter()
                    .filter_map(|o| o.get("id").and_then(Value::as_str))
                    .collect();
                if ids.len() != objects.len() {
                    return Err(format!("repeated ids: {}", member(&c.raw, &["auth", "objects"])));
                }
                Ok(format!("{ids:?}"))
            })
        },
    ));
    all.push(check(
        "v2.credinfo.auth.expression",
        OBJECTS,
        "auth.expression, when present, combines the ids of auth.objects with AND, OR, XOR and parentheses",
        |ctx: &mut Ctx<'_>| {
            each(ctx, "an expression over the object ids", |c| {
                let Some(e) = member(&c.raw, &["auth"]).get("expression") else {
                    return Ok("absent (AND of the objects)".into());
                };
                let Some(e) = e.as_str() else {
                    return Err(e.to_string());
                };
                let ids: Vec<&str> = member(&c.raw, &["auth", "objects"])
                    .as_array()
                    .map(|a| a.iter().filter_map(|o| o.get("id").and_then(Value::as_str)).collect())
                    .unwrap_or_default();
                let spaced = e.replace('(', " ( ").replace(')', " ) ");
                let unknown: Vec<&str> = spaced
                    .split_whitespace()
                    .filter(|t| !["AND", "OR", "XOR", "(", ")"].contains(t) && !ids.contains(t))
                    .collect();
                if unknown.is_empty() {
                    Ok(e.to_owned())
                } else {
                    Err(format!("{e:?} names {unknown:?}, not among the object ids {ids:?}"))
                }
            })
        },
    ));
    all.push(check(
        "v2.credinfo.no-v1-auth-members",
        S,
        "the v1 members authMode, PIN and OTP are gone (replaced by auth)",
        |ctx: &mut Ctx<'_>| {
            each(ctx, "no authMode, PIN or OTP member", |c| {
                let present: Vec<&&str> = ["authMode", "PIN", "OTP"]
                    .iter()
                    .filter(|m| c.raw.get(**m).is_some())
                    .collect();
                if present.is_empty() {
                    Ok("none".into())
                } else {
                    Err(format!("present: {present:?}"))
                }
            })
        },
    ));
    all
}
