//! The time-stamping authority's two doors (the SAM makes and audits the tokens, `sam::tsa`):
//!
//! * `signatures/timestamp` (spec v1 §11.10; v2 §11.13 is the same method, and this handler
//!   serves it unchanged): Bearer service token, JSON `{hash, hashAlgo, nonce?, clientData?}`
//!   → `{"timestamp": base64 DER TimeStampToken}`;
//! * `POST /tsa`, the plain RFC 3161 HTTP transport (§3.4): `application/timestamp-query` in,
//!   `application/timestamp-reply` out, so any PDF tool can use the same authority. A request
//!   the TSA cannot serve is answered 200 with a `TimeStampResp` whose status is rejection and
//!   whose `PKIFailureInfo` says why (RFC 3161 §2.4.2); a body that is not a time-stamp query
//!   by its Content-Type is 415, one larger than [`MAX_QUERY_BYTES`] is 413.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_types::TimestampResponse;

use crate::app::AppState;
use crate::auth::Bearer;
use crate::body::Body;
use crate::error::{ApiError, blocking};

/// The media type of an RFC 3161 request (RFC 3161 §3.4).
pub const QUERY_TYPE: &str = "application/timestamp-query";
/// The media type of an RFC 3161 response.
pub const REPLY_TYPE: &str = "application/timestamp-reply";
/// The largest `/tsa` body read: a `TimeStampReq` with a SHA-512 imprint, a nonce and a
/// policy is about 150 octets; 16 KiB leaves room for extensions and refuses floods.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// `signatures/timestamp`. The token, the body and the signing are handled in one blocking
/// call, the token first (a bad token is 401 whatever the body).
pub async fn timestamp(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<TimestampResponse>, ApiError> {
    let token = blocking(move || {
        let auth = bearer.authenticate(&state)?;
        let r = parse(&body)?;
        Ok(state
            .sam
            .timestamp(&auth.0, &r.hash_algo, &r.hash, r.nonce.as_deref())?)
    })
    .await?;
    Ok(web::Json(TimestampResponse {
        timestamp: STANDARD.encode(token),
    }))
}

/// A timestamp request, read.
struct TimestampRequest {
    hash: Vec<u8>,
    hash_algo: String,
    nonce: Option<String>,
}

/// The request's fields in the order of the spec's error table (§11.10): `hash` (missing,
/// empty, not base64), `hashAlgo`, `nonce`, `clientData`. The SAM then checks the algorithm
/// (`Invalid parameter hashAlgo`), the digest length (`Invalid digest value length`) and the
/// nonce's value (`Invalid parameter nonce`).
fn parse(body: &Body) -> Result<TimestampRequest, ApiError> {
    let hash = body.string("hash")?;
    if hash.is_empty() {
        return Err(ApiError::invalid("Empty hash parameter"));
    }
    let hash = STANDARD
        .decode(hash)
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::invalid("Invalid Base64 hash string parameter"))?;
    let hash_algo = body.string("hashAlgo")?.to_owned();
    let nonce = body.opt_string("nonce")?.map(str::to_owned);
    body.check_client_data()?;
    Ok(TimestampRequest {
        hash,
        hash_algo,
        nonce,
    })
}

/// Whether the request says it carries an RFC 3161 query (parameters such as a charset are
/// ignored; the type is compared without regard to case).
fn is_query(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(QUERY_TYPE))
}

/// `POST /tsa`: RFC 3161 over HTTP, no authentication (a public TSA, like any a PDF tool is
/// pointed at; every token is audited with the actor `tsa`).
pub async fn rfc3161(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    if !is_query(&req) {
        return Err(ApiError::Csc {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error: "invalid_request",
            description: format!("The request body must be {QUERY_TYPE}").into(),
        });
    }
    let query = body.map_err(|e| {
        tracing::debug!(error = %e, "time-stamp query refused");
        ApiError::Csc {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "invalid_request",
            description: format!("A time-stamp query is at most {MAX_QUERY_BYTES} bytes").into(),
        }
    })?;
    let reply = blocking(move || Ok(state.sam.tsa_respond(&query)?)).await?;
    Ok(HttpResponse::Ok().content_type(REPLY_TYPE).body(reply))
}
