//! §11.4 credentials/list: the caller's credentials, paged.

use std::collections::BTreeSet;

use csc_types::{CredentialsListRequest, CredentialsListResponse};
use serde_json::json;

use super::{Check, bogus, check, labelled};
use crate::Api;
use crate::ctx::{Ctx, Need, expect_invalid_request, to_json};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "§11.4 credentials/list";
const MAX_PAGES: usize = 1000;

/// Every page of the list with `max_results` per page: (ids in order, pages, whether a
/// nextPageToken was ever returned).
fn all_pages(
    ctx: &mut Ctx<'_>,
    token: &str,
    max_results: Option<u32>,
) -> Need<(Vec<String>, usize, bool)> {
    let mut ids = Vec::new();
    let mut page_token: Option<String> = None;
    let mut paged = false;
    for page in 1..=MAX_PAGES {
        let body = to_json(&CredentialsListRequest {
            max_results,
            page_token: page_token.clone(),
            ..CredentialsListRequest::default()
        });
        let r = ctx
            .http
            .post("credentials/list", Auth::Bearer(token), &body);
        let parsed = r
            .json
            .clone()
            .filter(|_| r.status == 200)
            .and_then(|v| serde_json::from_value::<CredentialsListResponse>(v).ok());
        let Some(list) = parsed else {
            return Err(Outcome::fail(
                "200 with credentialIDs (and nextPageToken)",
                format!("page {page}: {}", r.brief()),
            ));
        };
        ids.extend(list.credential_ids);
        match list.next_page_token {
            Some(t) => {
                paged = true;
                page_token = Some(t);
            }
            None => return Ok((ids, page, paged)),
        }
    }
    Err(Outcome::fail(
        "the last page within 1000 pages",
        "nextPageToken after 1000 pages",
    ))
}

/// Whether the listed `ids` hold every credential `given` (`list.contains-credentials`).
pub(crate) fn holds_every(given: &[String], ids: &[String]) -> Outcome {
    let missing: Vec<&String> = given.iter().filter(|g| !ids.contains(g)).collect();
    Outcome::check(
        missing.is_empty(),
        format!("{} among the credentialIDs", given.join(", ")),
        if missing.is_empty() {
            format!("{ids:?}")
        } else {
            format!("missing {missing:?} from {ids:?}")
        },
    )
}

/// `list.userID-forbidden` (the same rule in v2).
pub(crate) fn user_id_forbidden(api: Api) -> Check {
    labelled(
        api,
        check(
            "list.userID-forbidden",
            S,
            "userID under a user-specific service authorization is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let user_specific = ctx
                    .auth_types()
                    .iter()
                    .any(|t| ["basic", "digest", "oauth2code"].contains(&t.as_str()));
                if !user_specific {
                    return Ok(Outcome::skip(
                        "authType lists no user-specific authorization (basic, digest, oauth2code)",
                    ));
                }
                let r = ctx.call("credentials/list", &json!({ "userID": bogus("user") }))?;
                Ok(expect_invalid_request(
                    &r,
                    Some("userID parameter MUST be null"),
                ))
            },
        ),
    )
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "list.shape",
            S,
            "the output is credentialIDs (an array of strings) and an optional nextPageToken string",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let r = ctx.call("credentials/list", &json!({}))?;
                let ok = r.status == 200
                    && r.json.clone().is_some_and(|v| {
                        serde_json::from_value::<CredentialsListResponse>(v).is_ok()
                    });
                Ok(Outcome::check(
                    ok,
                    r#"200 {"credentialIDs":[...]}"#,
                    r.brief(),
                ))
            },
        ),
        check(
            "list.contains-credentials",
            S,
            "the list (all pages) holds every credential of the user under test",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let token = ctx.token()?;
                let given = ctx.credential_ids();
                if given.is_empty() {
                    return Ok(Outcome::skip("no credential given (--credential)"));
                }
                let (ids, _, _) = all_pages(ctx, &token, None)?;
                Ok(holds_every(&given, &ids))
            },
        ),
        check(
            "list.max-results",
            S,
            "no more than maxResults credentialIDs are returned",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let r = ctx.call("credentials/list", &json!({ "maxResults": 1 }))?;
                let n = r
                    .get("credentialIDs")
                    .and_then(|v| v.as_array())
                    .map(Vec::len);
                Ok(Outcome::check(
                    r.status == 200 && n.is_some_and(|n| n <= 1),
                    "200 with at most 1 credentialID for maxResults 1",
                    r.brief(),
                ))
            },
        ),
        check(
            "list.paging",
            S,
            "following nextPageToken (maxResults 1) enumerates every credential exactly once",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let token = ctx.token()?;
                let (all, _, _) = all_pages(ctx, &token, None)?;
                let (paged, pages, _) = all_pages(ctx, &token, Some(1))?;
                let unique: BTreeSet<&String> = paged.iter().collect();
                let want: BTreeSet<&String> = all.iter().collect();
                Ok(Outcome::check(
                    unique.len() == paged.len() && unique == want,
                    format!("{} distinct credentialIDs: {want:?}", want.len()),
                    format!("{} over {pages} page(s): {paged:?}", paged.len()),
                ))
            },
        ),
        check(
            "list.invalid-page-token",
            S,
            "an invalid pageToken is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let token = ctx.token()?;
                let (_, _, paged) = all_pages(ctx, &token, Some(1))?;
                if !paged {
                    return Ok(Outcome::skip(
                        "the server returned no nextPageToken for maxResults 1 (no pagination, or one credential)",
                    ));
                }
                let r = ctx.call("credentials/list", &json!({ "pageToken": bogus("page") }))?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter pageToken"),
                ))
            },
        ),
        user_id_forbidden(Api::V1),
        check(
            "list.other-user",
            S,
            "another user's list holds none of the credentials of the user under test",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let other = ctx.other_token()?;
                let given = ctx.credential_ids();
                let (ids, _, _) = all_pages(ctx, &other, None)?;
                let leaked: Vec<&String> = given.iter().filter(|g| ids.contains(g)).collect();
                Ok(Outcome::check(
                    leaked.is_empty(),
                    "none of the user's credentialIDs",
                    if leaked.is_empty() {
                        format!("{ids:?}")
                    } else {
                        format!("the other user's list holds {leaked:?}")
                    },
                ))
            },
        ),
    ]
}
