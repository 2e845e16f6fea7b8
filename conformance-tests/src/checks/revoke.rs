//! §11.3 auth/revoke: run last, since it kills a token.

use csc_types::RevokeRequest;
use serde_json::json;

use super::{Check, check};
use crate::ctx::{Ctx, expect_invalid_request, to_json};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "§11.3 auth/revoke";

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "revoke.missing-token",
            S,
            "a missing token is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("auth/revoke")?;
                let r = ctx.call("auth/revoke", &json!({}))?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Missing (or invalid type) string parameter token"),
                ))
            },
        ),
        check(
            "revoke.invalid-hint",
            S,
            "a token_type_hint other than access_token or refresh_token is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("auth/revoke")?;
                let token = ctx.token()?;
                let body = to_json(&RevokeRequest {
                    token,
                    token_type_hint: Some("SAD".into()),
                    client_data: None,
                });
                let r = ctx.call("auth/revoke", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid string parameter token_type_hint"),
                ))
            },
        ),
        check(
            "revoke.access-token",
            S,
            "revoking the access token in use is 204 No Content",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("auth/revoke")?;
                let token = ctx.disposable_token()?;
                let body = to_json(&RevokeRequest {
                    token: token.clone(),
                    token_type_hint: Some("access_token".into()),
                    client_data: None,
                });
                let r = ctx.http.post("auth/revoke", Auth::Bearer(&token), &body);
                if r.status == 204 {
                    ctx.memo.insert("revoked".into(), json!(token));
                }
                Ok(Outcome::check(
                    r.status == 204 && r.text.is_empty(),
                    "204 with no body",
                    r.brief(),
                ))
            },
        ),
        check(
            "revoke.token-unusable",
            S,
            "a revoked access token is refused at once with 401",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/list")?;
                let Some(token) = ctx
                    .memo
                    .get("revoked")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
                else {
                    return Ok(Outcome::skip("no token was revoked (revoke.access-token)"));
                };
                let r = ctx
                    .http
                    .post("credentials/list", Auth::Bearer(&token), &json!({}));
                Ok(Outcome::check(
                    r.status == 401,
                    "401 (expired or revoked token)",
                    r.brief(),
                ))
            },
        ),
    ]
}
