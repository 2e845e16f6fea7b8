//! `POST oauth2/pushed_authorize` (RFC 9126; CSC v2 §8.4): the client pushes the parameters of
//! an authorization request (those of `oauth2/authorize`, `authorization_details` included),
//! authenticated like at the token endpoint; they are validated at once (a refusal is an
//! RFC 6749 §5.2 JSON error) and stored as a pending request for `oauth2_code_ttl_secs`
//! (default 60 s, RFC 9126 §2.2's example). The answer is 201
//! `{"request_uri":"urn:ietf:params:oauth:request_uri:<256 random bits>","expires_in":N}`;
//! `oauth2/authorize?client_id=…&request_uri=…` then opens the page for it, once.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::FormBody;
use super::page::REQUEST_URI_PREFIX;
use super::page::validate::validate;
use super::token::{client_credentials, form, no_store_json};
use crate::app::AppState;
use crate::error::{ApiError, blocking};

/// The 201 answer (RFC 9126 §2.2).
#[derive(Debug, Serialize)]
struct PushedResponse {
    request_uri: String,
    expires_in: i64,
}

/// `POST oauth2/pushed_authorize`.
pub async fn pushed_authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: FormBody,
) -> Result<HttpResponse, ApiError> {
    let p = form(&body.0)?;
    let creds = client_credentials(&req, &p)?;
    // RFC 9126 §2.1: request_uri MUST NOT be provided
    if p.get("request_uri").is_some() {
        return Err(ApiError::invalid(
            "Invalid parameter request_uri: not in a pushed authorization request",
        ));
    }
    let answer = blocking(move || {
        let sam = &state.sam;
        let client = sam.authenticate_client(&creds)?;
        let (redirect_uri, given) = sam.redirect_uri_for(&client, p.get("redirect_uri"))?;
        let mut pending = match validate(&p, &client, redirect_uri, given) {
            Ok(v) => v,
            Err((error, description)) => {
                sam.refuse_pushed_request(&client.client_id, error, &description);
                return Err(ApiError::bad(error, description));
            }
        };
        pending.pushed = true;
        let params = serde_json::to_string(&pending)
            .map_err(|e| ApiError::Internal(format!("pushed request: {e}")))?;
        let ttl = state.oauth.code_ttl;
        let created = sam.push_oauth_request(&client.client_id, &pending.scope, params, ttl)?;
        Ok(PushedResponse {
            request_uri: format!("{REQUEST_URI_PREFIX}{}", created.handle),
            expires_in: ttl.num_seconds(),
        })
    })
    .await?;
    Ok(no_store_json(StatusCode::CREATED, &answer))
}
