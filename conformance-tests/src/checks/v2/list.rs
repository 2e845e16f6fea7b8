//! v2 §11.4 credentials/list: the caller's credentials, with their `credentials/info` in
//! `credentialInfos` on request, and the `onlyValid` filter.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::Api;
use crate::checks::{Check, bogus, check, list as v1_list};
use crate::ctx::{Ctx, Need, expect_invalid_request, member};
use crate::http::{Auth, Resp};
use crate::report::Outcome;

const S: &str = "v2 §11.4 credentials/list";

/// The `credentialIDs` of a 200 answer.
fn ids(r: &Resp) -> Option<Vec<String>> {
    if r.status != 200 {
        return None;
    }
    r.get("credentialIDs")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `credentials/list` with `body` and the user's token, skipping unless it is listed.
fn list(ctx: &mut Ctx<'_>, body: &Value) -> Need<Resp> {
    ctx.listed("credentials/list")?;
    ctx.call("credentials/list", body)
}

/// The `credentialInfos` entry for `id`.
fn entry<'v>(r: &'v Resp, id: &str) -> Option<&'v Value> {
    r.get("credentialInfos")?
        .as_array()?
        .iter()
        .find(|e| e.get("credentialID").and_then(Value::as_str) == Some(id))
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "v2.list.shape",
            S,
            "the output has credentialIDs, an array of strings",
            |ctx: &mut Ctx<'_>| {
                let r = list(ctx, &json!({}))?;
                Ok(Outcome::check(
                    ids(&r).is_some(),
                    r#"200 {"credentialIDs":[...]}"#,
                    r.brief(),
                ))
            },
        ),
        check(
            "v2.list.contains-credentials",
            S,
            "the list holds every credential of the user under test",
            |ctx: &mut Ctx<'_>| {
                let given = ctx.credential_ids();
                if given.is_empty() {
                    return Ok(Outcome::skip("no credential given (--credential)"));
                }
                let r = list(ctx, &json!({}))?;
                let Some(got) = ids(&r) else {
                    return Ok(Outcome::fail("200 with credentialIDs", r.brief()));
                };
                Ok(v1_list::holds_every(&given, &got))
            },
        ),
        check(
            "v2.list.credentialInfo-default-absent",
            S,
            "without credentialInfo (default false) no credentialInfos are returned",
            |ctx: &mut Ctx<'_>| {
                let r = list(ctx, &json!({}))?;
                Ok(Outcome::check(
                    r.status == 200 && r.get("credentialInfos").is_none(),
                    "200 without credentialInfos",
                    r.brief(),
                ))
            },
        ),
        check(
            "v2.list.credentialInfos",
            S,
            "credentialInfo true: credentialInfos has one entry per credentialID, each with credentialID, key, cert, auth and multisign",
            |ctx: &mut Ctx<'_>| {
                let r = list(ctx, &json!({ "credentialInfo": true }))?;
                let Some(listed) = ids(&r) else {
                    return Ok(Outcome::fail("200 with credentialIDs", r.brief()));
                };
                let infos = r
                    .get("credentialInfos")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let of_infos: BTreeSet<&str> = infos
                    .iter()
                    .filter_map(|e| e.get("credentialID").and_then(Value::as_str))
                    .collect();
                let want: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
                let incomplete: Vec<String> = infos
                    .iter()
                    .filter(|e| {
                        !(member(e, &["key", "algo"]).is_array()
                            && e.get("cert").is_some_and(Value::is_object)
                            && member(e, &["auth", "mode"]).is_string()
                            && member(e, &["multisign"]).as_u64().is_some_and(|n| n >= 1))
                    })
                    .map(Value::to_string)
                    .collect();
                Ok(Outcome::check(
                    infos.len() == listed.len() && of_infos == want && incomplete.is_empty(),
                    "credentialInfos: one complete entry per credentialID",
                    match incomplete.first() {
                        Some(e) => format!("incomplete entry {e}"),
                        None => r.brief(),
                    },
                ))
            },
        ),
        check(
            "v2.list.credentialInfos-match-info",
            S,
            "the credentialInfos entry of a credential has the key.algo and certificate credentials/info returns",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/info")?;
                let cred = ctx.primary()?;
                let r = list(
                    ctx,
                    &json!({ "credentialInfo": true, "certificates": "single" }),
                )?;
                let Some(e) = entry(&r, &cred.id) else {
                    return Ok(Outcome::fail(
                        format!("an entry with credentialID {}", cred.id),
                        r.brief(),
                    ));
                };
                let algo_ok = member(e, &["key", "algo"]).as_array().is_some_and(|a| {
                    a.iter().filter_map(Value::as_str).collect::<Vec<_>>()
                        == cred.algos.iter().map(String::as_str).collect::<Vec<_>>()
                });
                let first = member(e, &["cert", "certificates"])
                    .get(0)
                    .and_then(Value::as_str)
                    .and_then(|c| crate::crypto::parse_cert(c).ok());
                let cert_ok = first
                    .zip(cred.cert())
                    .is_some_and(|(a, b)| a.to_der().ok() == b.to_der().ok());
                Ok(Outcome::check(
                    algo_ok && cert_ok,
                    format!(
                        "key.algo {:?} and the signer's certificate, as credentials/info",
                        cred.algos
                    ),
                    e.to_string(),
                ))
            },
        ),
        check(
            "v2.list.authInfo",
            S,
            "credentialInfo and authInfo true: each entry's auth has mode, and objects for explicit mode",
            |ctx: &mut Ctx<'_>| {
                let r = list(ctx, &json!({ "credentialInfo": true, "authInfo": true }))?;
                let infos = r
                    .get("credentialInfos")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let bad: Vec<String> = infos
                    .iter()
                    .filter(|e| match member(e, &["auth", "mode"]).as_str() {
                        Some("explicit") => !member(e, &["auth", "objects"]).is_array(),
                        Some("oauth2code") => false,
                        _ => true,
                    })
                    .map(Value::to_string)
                    .collect();
                Ok(Outcome::check(
                    r.status == 200 && !infos.is_empty() && bad.is_empty(),
                    "200 with credentialInfos whose auth has mode (and objects)",
                    match bad.first() {
                        Some(b) => b.clone(),
                        None => r.brief(),
                    },
                ))
            },
        ),
        check(
            "v2.list.onlyValid",
            S,
            "onlyValid true is accepted; onlyValid in the output, when present, is a boolean; the given (valid) credentials are still listed",
            |ctx: &mut Ctx<'_>| {
                let given = ctx.credential_ids();
                let r = list(ctx, &json!({ "onlyValid": true }))?;
                let Some(got) = ids(&r) else {
                    return Ok(Outcome::fail("200 with credentialIDs", r.brief()));
                };
                let typed = r.get("onlyValid").is_none_or(Value::is_boolean);
                let missing: Vec<&String> = given.iter().filter(|g| !got.contains(g)).collect();
                Ok(Outcome::check(
                    typed && missing.is_empty(),
                    "200, onlyValid a boolean, every given credential listed",
                    if missing.is_empty() {
                        r.brief()
                    } else {
                        format!("missing {missing:?}: {}", r.brief())
                    },
                ))
            },
        ),
        check(
            "v2.list.paging-members-tolerated",
            S,
            "maxResults and pageToken (v1 members some v2 clients still send) do not make the request fail",
            |ctx: &mut Ctx<'_>| {
                let r = list(ctx, &json!({ "maxResults": 1, "pageToken": bogus("page") }))?;
                Ok(Outcome::check(
                    ids(&r).is_some(),
                    r#"200 {"credentialIDs":[...]}"#,
                    r.brief(),
                ))
            },
        ),
        check(
            "v2.list.invalid-certificates",
            S,
            "credentialInfo with a certificates value other than none, single, chain is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let r = list(
                    ctx,
                    &json!({ "credentialInfo": true, "certificates": "all" }),
                )?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter certificates"),
                ))
            },
        ),
        v1_list::user_id_forbidden(Api::V2),
        check(
            "v2.list.other-user",
            S,
            "another user's list holds none of the credentials of the user under test",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let other = ctx.other_token()?;
                let given = ctx.credential_ids();
                let r = ctx.http.post(
                    "credentials/list",
                    Auth::Bearer(&other),
                    &json!({ "credentialInfo": true }),
                );
                let Some(got) = ids(&r) else {
                    return Ok(Outcome::fail("200 with credentialIDs", r.brief()));
                };
                let leaked: Vec<&String> = given
                    .iter()
                    .filter(|g| got.contains(g) || entry(&r, g).is_some())
                    .collect();
                Ok(Outcome::check(
                    leaked.is_empty(),
                    "none of the user's credentialIDs or credentialInfos",
                    if leaked.is_empty() {
                        format!("{got:?}")
                    } else {
                        format!("leaked {leaked:?}")
                    },
                ))
            },
        ),
    ]
}
