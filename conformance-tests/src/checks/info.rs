//! §11.1 info (v2 §11.1): service discovery, no authentication. The checks v1 and v2 share are
//! built here for either API; v2's own members are checked in `v2::info`.

use csc_types::InfoResponse;
use serde_json::{Value, json};

use super::{Check, check, labelled};
use crate::Api;
use crate::ctx::{Ctx, member};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "§11.1 info";

/// The method names of Table 4 (§11), `info` and `oauth2/*` included.
pub(crate) const METHODS: &[&str] = &[
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/extendTransaction",
    "credentials/sendOTP",
    "signatures/signHash",
    "signatures/timestamp",
    "oauth2/authorize",
    "oauth2/token",
    "oauth2/revoke",
];

/// The method names the v2.0.0.2 method table adds to Table 4 (it keeps all of v1's;
/// `credentials/sendOTP` is still listed there although no clause defines it;
/// `oauth2/pushed_authorize` is §8.4 PAR).
const METHODS_ADDED_IN_V2: &[&str] = &[
    "credentials/authorizeCheck",
    "credentials/getChallenge",
    "signatures/signDoc",
    "signatures/signPolling",
    "oauth2/pushed_authorize",
];

const AUTH_TYPES: &[&str] = &[
    "external",
    "TLS",
    "basic",
    "digest",
    "oauth2code",
    "oauth2client",
];

pub(crate) fn string_member(v: &Value, name: &str, max: Option<usize>) -> Outcome {
    match v.get(name) {
        Some(Value::String(s)) if !s.is_empty() && max.is_none_or(|m| s.chars().count() <= m) => {
            Outcome::pass(format!("{name} = {s:?}"))
        }
        other => Outcome::fail(
            match max {
                Some(m) => format!("{name}: a non-empty string of at most {m} characters"),
                None => format!("{name}: a non-empty string"),
            },
            format!("{other:?}"),
        ),
    }
}

/// RFC 5646 in outline: a 2-3 (or 4-8) letter language, then alphanumeric subtags of 1-8.
pub(crate) fn looks_like_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// `info.status` and `info.content-type`: 200 with a JSON object, without authentication.
pub(crate) fn answer_checks(api: Api) -> Vec<Check> {
    let all = vec![
        check(
            "info.status",
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
            "info.content-type",
            "§7.1 format of the API",
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
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// The members v1 and v2 share, `specs` to `authType` (v2 `specs` is of version 2).
pub(crate) fn member_checks(api: Api) -> Vec<Check> {
    let (major, example) = match api {
        Api::V1 => ("1", "1.0.4.0"),
        Api::V2 => ("2", "2.0.0.2"),
    };
    let all = vec![
        check(
            "info.specs",
            S,
            format!("specs is a string Major.Minor.x.y of version {major}"),
            move |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = member(&v, &["specs"]).as_str().is_some_and(|s| {
                    let parts: Vec<&str> = s.split('.').collect();
                    parts.len() == 4
                        && parts
                            .iter()
                            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                        && parts.first() == Some(&major)
                });
                Ok(Outcome::check(
                    ok,
                    format!(r#"a string like "{example}""#),
                    member(&v, &["specs"]).to_string(),
                ))
            },
        ),
        check(
            "info.name",
            S,
            "name is a string of at most 255 characters",
            |ctx: &mut Ctx<'_>| Ok(string_member(&ctx.info()?, "name", Some(255))),
        ),
        check(
            "info.logo",
            S,
            "logo is the URI of an image",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                // v1 checks the URI scheme; v2 is content with a "://"
                let uri = |s: &str| match ctx.api {
                    Api::V1 => s.split_once("://").is_some_and(|(scheme, rest)| {
                        !scheme.is_empty()
                            && scheme
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                            && !rest.is_empty()
                    }),
                    Api::V2 => s.contains("://"),
                };
                let ok = member(&v, &["logo"])
                    .as_str()
                    .is_some_and(|s| uri(s) || s.starts_with("data:image/"));
                Ok(Outcome::check(
                    ok,
                    "a URI string",
                    member(&v, &["logo"]).to_string(),
                ))
            },
        ),
        check(
            "info.region",
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
            "info.lang",
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
            "info.description",
            S,
            "description is a string of at most 255 characters",
            |ctx: &mut Ctx<'_>| Ok(string_member(&ctx.info()?, "description", Some(255))),
        ),
        check(
            "info.authType",
            S,
            "authType is a non-empty array of external, TLS, basic, digest, oauth2code, oauth2client",
            |ctx: &mut Ctx<'_>| {
                let v = ctx.info()?;
                let ok = member(&v, &["authType"]).as_array().is_some_and(|a| {
                    !a.is_empty()
                        && a.iter()
                            .all(|t| t.as_str().is_some_and(|t| AUTH_TYPES.contains(&t)))
                });
                Ok(Outcome::check(
                    ok,
                    format!("a non-empty subset of {AUTH_TYPES:?}"),
                    member(&v, &["authType"]).to_string(),
                ))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// `info.methods`: only the method names of the API's method table.
pub(crate) fn methods_check(api: Api) -> Check {
    let (added, rule, expected) = match api {
        Api::V1 => (
            &[][..],
            "methods is an array of the method names of Table 4",
            "only method names of Table 4",
        ),
        Api::V2 => (
            METHODS_ADDED_IN_V2,
            "methods is an array of the method names of the v2 method table",
            "only v2 method names",
        ),
    };
    let c = check("info.methods", S, rule, move |ctx: &mut Ctx<'_>| {
        let v = ctx.info()?;
        let Some(a) = member(&v, &["methods"]).as_array() else {
            return Ok(Outcome::fail(
                "an array of strings",
                member(&v, &["methods"]).to_string(),
            ));
        };
        let unknown: Vec<String> = a
            .iter()
            .filter(|m| {
                !m.as_str()
                    .is_some_and(|m| METHODS.contains(&m) || added.contains(&m))
            })
            .map(Value::to_string)
            .collect();
        Ok(Outcome::check(
            unknown.is_empty(),
            expected,
            if unknown.is_empty() {
                member(&v, &["methods"]).to_string()
            } else {
                format!("unknown: {}", unknown.join(", "))
            },
        ))
    });
    labelled(api, c)
}

/// `info.lang-fallback`: an unsupported lang is not refused.
pub(crate) fn lang_fallback_check(api: Api) -> Check {
    let c = check(
        "info.lang-fallback",
        S,
        "an unsupported lang is answered in the service's own language, not refused",
        |ctx: &mut Ctx<'_>| {
            let r = ctx
                .http
                .post("info", Auth::None, &json!({ "lang": "zz-ZZ" }));
            let ok = r.status == 200 && r.str("lang").is_some_and(looks_like_language_tag);
            Ok(Outcome::check(ok, "200 with the service's lang", r.brief()))
        },
    );
    labelled(api, c)
}

/// Every v1 check, in order; v2 (`v2::info`) puts its own checks among the shared ones.
pub fn checks() -> Vec<Check> {
    let api = Api::V1;
    let mut all = answer_checks(api);
    all.push(check(
        "info.schema",
        S,
        "the output has every REQUIRED member with its type (specs, name, logo, region, lang, description, authType, methods)",
        |ctx: &mut Ctx<'_>| {
            let v = ctx.info()?;
            Ok(match serde_json::from_value::<InfoResponse>(v.clone()) {
                Ok(_) => Outcome::pass("deserializes as the v1.0.4.0 info output"),
                Err(e) => Outcome::fail(
                    "the info output members with their types",
                    format!("{e}: {v}"),
                ),
            })
        },
    ));
    all.extend(member_checks(api));
    all.push(check(
        "info.oauth2",
        S,
        "oauth2 (the authorization server's base URI) is present when authType lists oauth2code or oauth2client",
        |ctx: &mut Ctx<'_>| {
            let v = ctx.info()?;
            let oauth = ctx.auth_types().iter().any(|t| t.starts_with("oauth2"));
            if !oauth {
                return Ok(Outcome::skip(
                    "authType lists no oauth2 value: oauth2 is not required",
                ));
            }
            Ok(Outcome::check(
                member(&v, &["oauth2"])
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "oauth2: a base URI string",
                member(&v, &["oauth2"]).to_string(),
            ))
        },
    ));
    all.push(methods_check(api));
    all.push(lang_fallback_check(api));
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn language_tags() {
        assert!(super::looks_like_language_tag("en-US"));
        assert!(super::looks_like_language_tag("en"));
        assert!(!super::looks_like_language_tag("english language"));
        assert!(!super::looks_like_language_tag(""));
    }
}
