//! §11.2 auth/login: a service access token from HTTP Basic (or a refresh token).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_types::{LoginRequest, LoginResponse};
use serde_json::{Value, json};

use super::{Check, bogus, check};
use crate::Identity;
use crate::ctx::{Ctx, Need, expect_error, expect_invalid_request, to_json};
use crate::http::{Auth, Resp};
use crate::report::Outcome;

const S: &str = "§11.2 auth/login";
const MALFORMED_AUTH: &str = "Malformed authentication parameter.";

/// The user and password under test, when the server has auth/login.
fn password(ctx: &mut Ctx<'_>) -> Need<(String, String)> {
    ctx.listed("auth/login")?;
    match ctx.cfg.identity.clone() {
        Some(Identity::Login { user, password }) => Ok((user, password)),
        _ => Err(Outcome::skip(
            "needs --user and --password (the identity is a token)",
        )),
    }
}

fn basic(ctx: &mut Ctx<'_>, body: &Value) -> Need<Resp> {
    let (user, pw) = password(ctx)?;
    Ok(ctx.http.post("auth/login", Auth::Basic(&user, &pw), body))
}

/// A refresh token from a `rememberMe` login, or a skip when the server issues none.
fn refresh_token(ctx: &mut Ctx<'_>) -> Need<String> {
    let body = to_json(&LoginRequest {
        remember_me: Some(true),
        ..LoginRequest::default()
    });
    let r = basic(ctx, &body)?;
    match r.str("refresh_token") {
        Some(t) if r.status == 200 => Ok(t.to_owned()),
        _ => Err(Outcome::skip(format!(
            "no refresh_token after a rememberMe login (reauthentication is optional): {}",
            r.brief()
        ))),
    }
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "login.basic",
            S,
            "HTTP Basic credentials give 200 with an access_token string",
            |ctx: &mut Ctx<'_>| {
                let r = basic(ctx, &json!({}))?;
                let parsed = r
                    .json
                    .clone()
                    .and_then(|v| serde_json::from_value::<LoginResponse>(v).ok());
                Ok(Outcome::check(
                    r.status == 200 && parsed.is_some_and(|l| !l.access_token.is_empty()),
                    r#"200 {"access_token":"...","expires_in":...}"#,
                    r.brief(),
                ))
            },
        ),
        check(
            "login.expires-in",
            S,
            "expires_in, when returned, is a positive number of seconds",
            |ctx: &mut Ctx<'_>| {
                let r = basic(ctx, &json!({}))?;
                if r.status != 200 {
                    return Ok(Outcome::skip(format!("auth/login failed: {}", r.brief())));
                }
                Ok(match r.get("expires_in") {
                    None => Outcome::pass("absent (3600 s by default)"),
                    Some(v) => Outcome::check(
                        v.as_u64().is_some_and(|s| s > 0),
                        "a positive integer",
                        v.to_string(),
                    ),
                })
            },
        ),
        check(
            "login.wrong-password",
            S,
            "a wrong password is 400 authentication_error",
            |ctx: &mut Ctx<'_>| {
                let (user, pw) = password(ctx)?;
                let wrong = format!("{pw}-not-the-password");
                let r = ctx
                    .http
                    .post("auth/login", Auth::Basic(&user, &wrong), &json!({}));
                Ok(expect_error(
                    &r,
                    400,
                    "authentication_error",
                    Some("An error occurred during authentication process"),
                ))
            },
        ),
        check(
            "login.missing-header",
            S,
            "no Authorization header and no refresh_token is 401 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("auth/login")?;
                let r = ctx.http.post("auth/login", Auth::None, &json!({}));
                Ok(expect_error(
                    &r,
                    401,
                    "invalid_request",
                    Some(MALFORMED_AUTH),
                ))
            },
        ),
        check(
            "login.malformed-header",
            S,
            "an Authorization header that is not \"Basic [base64]\" is 401 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("auth/login")?;
                let r = ctx
                    .http
                    .post("auth/login", Auth::Raw("Bearer conformance"), &json!({}));
                Ok(expect_error(
                    &r,
                    401,
                    "invalid_request",
                    Some(MALFORMED_AUTH),
                ))
            },
        ),
        check(
            "login.malformed-credentials",
            S,
            "Basic credentials not of the form username:password are 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("auth/login")?;
                let header = format!("Basic {}", STANDARD.encode("no-colon-in-here"));
                let r = ctx.http.post("auth/login", Auth::Raw(&header), &json!({}));
                Ok(expect_invalid_request(
                    &r,
                    Some("Malformed username-password."),
                ))
            },
        ),
        check(
            "login.refresh",
            S,
            "the refresh_token of a rememberMe login gives a new access token without the header",
            |ctx: &mut Ctx<'_>| {
                let t = refresh_token(ctx)?;
                let r = ctx
                    .http
                    .post("auth/login", Auth::None, &json!({ "refresh_token": t }));
                Ok(Outcome::check(
                    r.status == 200 && r.str("access_token").is_some_and(|a| !a.is_empty()),
                    r#"200 {"access_token":"..."}"#,
                    r.brief(),
                ))
            },
        ),
        check(
            "login.refresh-token-type",
            S,
            "a refresh_token that is not a string is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                refresh_token(ctx)?;
                let r = ctx
                    .http
                    .post("auth/login", Auth::None, &json!({ "refresh_token": 7 }));
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid string parameter: refresh_token"),
                ))
            },
        ),
        check(
            "login.invalid-refresh-token",
            S,
            "an unknown refresh_token is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                refresh_token(ctx)?;
                let r = ctx.http.post(
                    "auth/login",
                    Auth::None,
                    &json!({ "refresh_token": bogus("refresh-token") }),
                );
                Ok(expect_invalid_request(&r, Some("Invalid refresh_token")))
            },
        ),
    ]
}
