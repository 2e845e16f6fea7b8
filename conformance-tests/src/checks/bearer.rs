//! §8.1 and the error tables of §11.3-§11.10: every method but `info` and `auth/login` needs
//! `Authorization: Bearer <token>`. A missing or malformed header is 400 invalid_request (the
//! per-method tables); a well-formed but unknown token is 401 (Table 2, "bad or expired
//! authorization token"). A server that does the work without a token fails. The same checks
//! run in v2 (v2 §8, the tables of v2 §11.3-§11.13, v2 §10 statuses) over the v2 methods,
//! accepting v2's "Malformed authorization header" too.

use csc_types::{CredentialsInfoRequest, CredentialsListRequest, ExtendTransactionRequest};
use serde_json::{Value, json};

use super::{Check, bogus, check, labelled};
use crate::Api;
use crate::crypto::{self, Digest};
use crate::ctx::{Ctx, Need, to_json, with_hashes};
use crate::http::{Auth, Resp};
use crate::report::Outcome;

/// The generic description of the "authorization header does not match Bearer" rows.
pub(crate) const GENERIC: &str = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.";

/// The v2 wording of the bad-header row (v2 §11.4 and others).
const MALFORMED_V2: &str = "Malformed authorization header";

/// The Bearer-protected methods and the section of each (v1 numbering; the v2 catalogue cites
/// the v2 clause).
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

/// The Bearer-protected v2 methods and the clause of each (v2.0.0.2 numbering).
const PROTECTED_V2: &[(&str, &str)] = &[
    ("credentials/list", "§11.4 credentials/list"),
    ("credentials/info", "§11.5 credentials/info"),
    ("credentials/authorize", "§11.6 credentials/authorize"),
    (
        "credentials/authorizeCheck",
        "§11.7 credentials/authorizeCheck",
    ),
    ("credentials/getChallenge", "§11.8 credentials/getChallenge"),
    (
        "credentials/extendTransaction",
        "§11.9 credentials/extendTransaction",
    ),
    ("signatures/signHash", "§11.10 signatures/signHash"),
    ("signatures/timestamp", "§11.13 signatures/timestamp"),
    ("auth/revoke", "§11.3 auth/revoke"),
];

/// Whether `r` is the bad-header refusal of `api`: 400 invalid_request with the generic text
/// (v2: or v2's "Malformed authorization header"; sendOTP's v1 table has its own, misspelt,
/// text: only the code is compared there).
fn bad_header_refusal(api: Api, method: &str, r: &Resp) -> bool {
    let description = r.str("error_description");
    let description_ok = match api {
        Api::V1 => method == "credentials/sendOTP" || description == Some(GENERIC),
        Api::V2 => {
            description.is_some_and(|d| d == GENERIC || d.trim_end_matches('.') == MALFORMED_V2)
        }
    };
    r.status == 400 && r.str("error") == Some("invalid_request") && description_ok
}

/// What the bad-header refusal of `api` looks like, for messages.
fn bad_header_expected(api: Api) -> String {
    match api {
        Api::V1 => format!(r#"400 {{"error":"invalid_request","error_description":"{GENERIC}"}}"#),
        Api::V2 => format!(
            r#"400 {{"error":"invalid_request","error_description":"{GENERIC}" (or "{MALFORMED_V2}")}}"#
        ),
    }
}

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
            let what = match ctx.api {
                Api::V1 => "a valid request with the credential's factors",
                Api::V2 => "a valid request with the credential's authData",
            };
            (ctx.authorize_body(&cred, 1, &[h], false)?, what)
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
                ctx.sign_body(&cred, &sad, &[h], algo),
                "a valid request with a fresh SAD",
            )
        }
        "credentials/extendTransaction" => {
            let body = to_json(&ExtendTransactionRequest {
                credential_id: primary,
                sad: "conformance-SAD".into(),
                ..ExtendTransactionRequest::default()
            });
            // v2 sends hashes as a SCAL 2 request would
            let body = match ctx.api {
                Api::V1 => body,
                Api::V2 => with_hashes(
                    body,
                    &[crypto::fresh_digest(Digest::Sha256, "bearer-extend")],
                ),
            };
            (body, "a request with a made-up SAD")
        }
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

/// The checks of `api`'s catalogue.
pub(crate) fn checks_for(api: Api) -> Vec<Check> {
    let protected = match api {
        Api::V1 => PROTECTED,
        Api::V2 => PROTECTED_V2,
    };
    let mut all = Vec::new();
    for &(method, section) in protected {
        let id = format!("bearer.missing.{}", method.replace('/', "."));
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
                    bad_header_expected(ctx.api)
                };
                Ok(Outcome::check(
                    bad_header_refusal(ctx.api, method, &r),
                    expected,
                    r.brief(),
                ))
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
            Ok(Outcome::check(
                bad_header_refusal(ctx.api, "credentials/list", &r),
                bad_header_expected(ctx.api),
                r.brief(),
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
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// Every v1 check.
pub fn checks() -> Vec<Check> {
    checks_for(Api::V1)
}
