//! §8.1 and the error tables of §11.3-§11.10: every method but `info` and `auth/login` needs
//! `Authorization: Bearer <token>`. A missing or malformed header is 400 invalid_request (the
//! per-method tables); a well-formed but unknown token is 401 (Table 2, "bad or expired
//! authorization token"). A server that does the work without a token fails.

use csc_types::{CredentialsInfoRequest, CredentialsListRequest, ExtendTransactionRequest};
use serde_json::{Value, json};

use super::{Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Ctx, Need, to_json};
use crate::http::Auth;
use crate::report::Outcome;

/// The generic description of the "authorization header does not match Bearer" rows.
pub(crate) const GENERIC: &str = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.";

/// The Bearer-protected methods and the section of each.
const PROTECTED: &[(&str, &str)] = &[
    ("credentials/list", "§11.4 credentials/list"),
    ("credentials/info", "§11.5 credentials/info"),
    ("credentials/authorize", "§11.6 credentials/authorize"),
    (
        "credentials/extendTransaction",
        "§11.7 credentials/extendTransaction",
    ),
    ("credentials/sendOTP", "§11.8 credentials/sendOTP"),
    ("signatures/signHash", "§11.9 signatures/signHash"),
    ("signatures/timestamp", "§11.10 signatures/timestamp"),
    ("auth/revoke", "§11.3 auth/revoke"),
];

/// A request to `method` that would succeed with the token, so that only the missing header
/// can explain a refusal; the text says how complete it is.
fn good_body(ctx: &mut Ctx<'_>, method: &str) -> Need<(Value, &'static str)> {
    let primary = ctx.cfg.credentials.first().cloned().unwrap_or_default();
    Ok(match method {
        "credentials/list" => (
            to_json(&CredentialsListRequest::default()),
            "a valid request",
        ),
        "credentials/info" => (
            to_json(&CredentialsInfoRequest {
                credential_id: primary,
                ..CredentialsInfoRequest::default()
            }),
            "a valid request",
        ),
        "credentials/authorize" => {
            let cred = ctx.primary()?;
            let h = crypto::fresh_digest(Digest::Sha256, "bearer-authorize");
            (
                to_json(&ctx.authorize_request(&cred, 1, &[h], false)?),
                "a valid request with the credential's factors",
            )
        }
        "signatures/signHash" => {
            let cred = ctx.primary()?;
            let Some((algo, d)) = Ctx::default_algo(&cred) else {
                return Err(Outcome::skip(format!(
                    "credential {} advertises no algorithm the suite drives",
                    cred.id
                )));
            };
            let h = crypto::fresh_digest(d, "bearer-signhash");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            (
                to_json(&Ctx::sign_request(&cred, &sad, &[h], algo)),
                "a valid request with a fresh SAD",
            )
        }
        "credentials/extendTransaction" => (
            to_json(&ExtendTransactionRequest {
                credential_id: primary,
                sad: "conformance-SAD".into(),
                ..ExtendTransactionRequest::default()
            }),
            "a request with a made-up SAD",
        ),
        "credentials/sendOTP" => (json!({ "credentialID": primary }), "a valid request"),
        "signatures/timestamp" => (
            json!({
                "hash": crypto::b64(&crypto::fresh_digest(Digest::Sha256, "bearer-timestamp")),
                "hashAlgo": Digest::Sha256.oid(),
            }),
            "a valid request",
        ),
        "auth/revoke" => match ctx.disposable_token() {
            Ok(t) if Some(&t) != ctx.token().ok().as_ref() => {
                (json!({ "token": t }), "a request revoking a live token")
            }
            _ => (
                json!({ "token": bogus("token") }),
                "a request with a made-up token",
            ),
        },
        _ => (json!({}), "an empty request"),
    })
}

pub fn checks() -> Vec<Check> {
    let mut all = Vec::new();
    for &(method, section) in PROTECTED {
        let id = format!("bearer.missing.{}", method.replace('/', "."));
        all.push(check(
            id,
            section,
            format!("{method} without an Authorization header is refused with 400 invalid_request"),
            move |ctx: &mut Ctx<'_>| {
                ctx.listed(method)?;
                let (body, what) = good_body(ctx, method)?;
                let r = ctx.http.post(method, Auth::None, &body);
                // sendOTP's table has its own (misspelt) text: only the code is compared there
                let description_ok =
                    method == "credentials/sendOTP" || r.str("error_description") == Some(GENERIC);
                let ok =
                    r.status == 400 && r.str("error") == Some("invalid_request") && description_ok;
                let expected = if (200..300).contains(&r.status) {
                    format!("a refusal of {what} sent without a token, not a success")
                } else {
                    format!(r#"400 {{"error":"invalid_request","error_description":"{GENERIC}"}}"#)
                };
                Ok(Outcome::check(ok, expected, r.brief()))
            },
        ));
    }
    all.push(check(
        "bearer.malformed",
        "§11.4 credentials/list",
        "an Authorization header that is not \"Bearer [token]\" is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/list")?;
            let r = ctx.http.post(
                "credentials/list",
                Auth::Raw("Token conformance"),
                &json!({}),
            );
            Ok(crate::ctx::expect_error(
                &r,
                400,
                "invalid_request",
                Some(GENERIC),
            ))
        },
    ));
    all.push(check(
        "bearer.unknown-token",
        "§10 Table 2",
        "a well-formed but unknown bearer token is refused with 401",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/list")?;
            let token = bogus("token");
            let r = ctx
                .http
                .post("credentials/list", Auth::Bearer(&token), &json!({}));
            Ok(Outcome::check(
                r.status == 401,
                "401 (bad or expired authorization token)",
                r.brief(),
            ))
        },
    ));
    all.push(check(
        "bearer.unknown-token.signHash",
        "§10 Table 2",
        "signatures/signHash with an unknown bearer token is refused with 401 (even with a valid SAD)",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("signatures/signHash")?;
            let (body, what) = good_body(ctx, "signatures/signHash")?;
            let token = bogus("token");
            let r = ctx.http.post("signatures/signHash", Auth::Bearer(&token), &body);
            Ok(Outcome::check(r.status == 401, format!("401 for {what} with a made-up token"), r.brief()))
        },
    ));
    all
}
