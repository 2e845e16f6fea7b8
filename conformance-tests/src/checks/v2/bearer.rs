//! v2 §8 / the error tables of v2 §11.3-§11.10: every method but `info` and `auth/login` needs
//! `Authorization: Bearer <token>`. A missing or malformed header is 400 invalid_request (v1's
//! generic text, or v2's "Malformed authorization header"); a well-formed but unknown token is
//! 401 (v2 §10 statuses). A server that does the work without a token fails.

use serde_json::{Value, json};

use crate::checks::bearer::GENERIC;
use crate::checks::{Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Ctx, Need, sign_body_v2};
use crate::http::Auth;
use crate::report::Outcome;

/// The v2 wording of the bad-header row (v2 §11.4 and others).
const MALFORMED_V2: &str = "Malformed authorization header";

/// The Bearer-protected v2 methods and the clause of each.
const PROTECTED: &[(&str, &str)] = &[
    ("credentials/list", "v2 §11.4 credentials/list"),
    ("credentials/info", "v2 §11.5 credentials/info"),
    ("credentials/authorize", "v2 §11.6 credentials/authorize"),
    (
        "credentials/authorizeCheck",
        "v2 §11.7 credentials/authorizeCheck",
    ),
    (
        "credentials/getChallenge",
        "v2 §11.8 credentials/getChallenge",
    ),
    (
        "credentials/extendTransaction",
        "v2 §11.9 credentials/extendTransaction",
    ),
    ("signatures/signHash", "v2 §11.10 signatures/signHash"),
    ("signatures/timestamp", "v2 §11.13 signatures/timestamp"),
    ("auth/revoke", "v2 §11.3 auth/revoke"),
];

/// Whether `r` is the bad-header refusal: 400 invalid_request with either wording.
fn bad_header_refusal(r: &crate::http::Resp) -> bool {
    r.status == 400
        && r.str("error") == Some("invalid_request")
        && r.str("error_description")
            .is_some_and(|d| d == GENERIC || d.trim_end_matches('.') == MALFORMED_V2)
}

/// A request to `method` that would succeed with the token, so that only the missing header
/// can explain a refusal; the text says how complete it is.
fn good_body(ctx: &mut Ctx<'_>, method: &str) -> Need<(Value, &'static str)> {
    let primary = ctx.cfg.credentials.first().cloned().unwrap_or_default();
    Ok(match method {
        "credentials/list" => (json!({}), "a valid request"),
        "credentials/info" => (json!({ "credentialID": primary }), "a valid request"),
        "credentials/authorize" => {
            let cred = ctx.primary()?;
            let h = crypto::fresh_digest(Digest::Sha256, "bearer-authorize");
            (
                ctx.authorize_body(&cred, 1, &[h], false)?,
                "a valid request with the credential's authData",
            )
        }
        "credentials/authorizeCheck" => (
            json!({ "handle": bogus("handle") }),
            "a request with a made-up handle",
        ),
        "credentials/getChallenge" => {
            let (cred, object) = match ctx.pick("with an out-of-band OTP object", |c| c.otp_online)
            {
                Ok(c) => {
                    let object = c.otp_id.clone().unwrap_or_default();
                    (c.id, object)
                }
                Err(_) => (primary, "OTP".to_owned()),
            };
            (
                json!({ "credentialID": cred, "authObjectID": object }),
                "a request for the credential's OTP object",
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
                sign_body_v2(&cred, &sad, &[h], algo),
                "a valid request with a fresh SAD",
            )
        }
        "credentials/extendTransaction" => {
            let h = crypto::fresh_digest(Digest::Sha256, "bearer-extend");
            (
                json!({
                    "credentialID": primary,
                    "SAD": "conformance-SAD",
                    "hashes": [crypto::b64(&h)],
                    "hashAlgorithmOID": Digest::Sha256.oid(),
                }),
                "a request with a made-up SAD",
            )
        }
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
        let id = format!("v2.bearer.missing.{}", method.replace('/', "."));
        all.push(check(
            id,
            section,
            format!("{method} without an Authorization header is refused with 400 invalid_request"),
            move |ctx: &mut Ctx<'_>| {
                ctx.listed(method)?;
                let (body, what) = good_body(ctx, method)?;
                let r = ctx.http.post(method, Auth::None, &body);
                let expected = if (200..300).contains(&r.status) {
                    format!("a refusal of {what} sent without a token, not a success")
                } else {
                    format!(
                        r#"400 {{"error":"invalid_request","error_description":"{GENERIC}" (or "{MALFORMED_V2}")}}"#
                    )
                };
                Ok(Outcome::check(bad_header_refusal(&r), expected, r.brief()))
            },
        ));
    }
    all.push(check(
        "v2.bearer.malformed",
        "v2 §11.4 credentials/list",
        "an Authorization header that is not \"Bearer [token]\" is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/list")?;
            let r = ctx.http.post(
                "credentials/list",
                Auth::Raw("Token conformance"),
                &json!({}),
            );
            Ok(Outcome::check(
                bad_header_refusal(&r),
                format!(r#"400 {{"error":"invalid_request","error_description":"{GENERIC}" (or "{MALFORMED_V2}")}}"#),
                r.brief(),
            ))
        },
    ));
    all.push(check(
        "v2.bearer.unknown-token",
        "v2 §10 statuses",
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
        "v2.bearer.unknown-token.signHash",
        "v2 §10 statuses",
        "signatures/signHash with an unknown bearer token is refused with 401 (even with a valid SAD)",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("signatures/signHash")?;
            let (body, what) = good_body(ctx, "signatures/signHash")?;
            let token = bogus("token");
            let r = ctx
                .http
                .post("signatures/signHash", Auth::Bearer(&token), &body);
            Ok(Outcome::check(
                r.status == 401,
                format!("401 for {what} with a made-up token"),
                r.brief(),
            ))
        },
    ));
    all
}
