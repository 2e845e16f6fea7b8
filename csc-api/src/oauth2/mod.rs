//! The OAuth 2.0 authorization server of CSC v1.0.4.0 §8.3, at the
//! `oauth2` base URI that `info` advertises:
//!
//! * `GET/POST oauth2/authorize` ([`page`]): a server-rendered HTML page without JavaScript where
//!   the signer signs in and, for scope `credential`, approves the credential, the number of
//!   signatures and the hashes with the credential's PIN/OTP; then a 302 to the client's
//!   registered redirect URI with a single-use, short-lived `code` and the `state`.
//! * `POST oauth2/token` ([`token`]): `authorization_code` (scopes `service` and
//!   `credential`), `client_credentials` and `refresh_token` (scope `service`). A credential
//!   code yields a SAD with `token_type` "SAD".
//! * `POST oauth2/revoke` ([`token::revoke`]): access and refresh tokens, and SADs.
//! * CSC v2 §8.4 ([`rar`], [`par`], [`metadata`]): `authorization_details` (RFC 9396) on
//!   `oauth2/authorize` and on `POST oauth2/pushed_authorize` (RFC 9126, whose `request_uri`
//!   then opens the page); such a code yields a `Bearer` credential token (the SAD) with the
//!   approved details and `credentialID` echoed; the metadata of RFC 8414 at
//!   `/.well-known/oauth-authorization-server`. The plain CSC v2 parameters (`hashes`,
//!   `hashAlgorithmOID`, `signatureQualifier`; PKCE required) make the same request
//!   ([`rar::from_params`]).
//! * A body over [`MAX_FORM_BYTES`] is a 400 `invalid_request` JSON error ([`FormBody`]; the
//!   page: its HTML error page), never actix's plain 413.
//!
//! Clients are registered by the operator (`csc-server client add`): exact redirect URIs, a
//! secret for confidential clients (stored as SHA-256); public clients must use PKCE S256
//! (RFC 7636). Codes, page handles and secrets are stored only as digests. Refusals are audited.

mod html;
pub mod metadata;
pub mod page;
pub mod par;
pub mod rar;
pub mod token;

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};

use crate::app::AppState;

/// Largest form body accepted by the OAuth 2.0 endpoints (the consent form carries no hashes).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The routes, mounted at `/oauth2` (the `oauth2` base URI is the server's root).
pub fn scope() -> actix_web::Scope {
    web::scope("/oauth2")
        .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
        .route("/authorize", web::get().to(page::authorize_get))
        .route("/authorize", web::post().to(page::authorize_post))
        .route("/token", web::post().to(token::token))
        .route("/revoke", web::post().to(token::revoke))
        .route("/pushed_authorize", web::post().to(par::pushed_authorize))
}

/// A form body of the OAuth 2.0 endpoints, at most [`MAX_FORM_BYTES`]: a body too large (or
/// unreadable) is an RFC 6749 §5.2 error (400 `invalid_request`), like every other refusal
/// here, not actix's plain 413; the same status and code the CSC methods give an oversized
/// body (`crate::body`), with a description that says why.
pub struct FormBody(pub web::Bytes);

impl actix_web::FromRequest for FormBody {
    type Error = crate::error::ApiError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<FormBody, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            bytes.await.map(FormBody).map_err(|e| {
                match e.as_error::<actix_web::error::PayloadError>() {
                    Some(actix_web::error::PayloadError::Overflow) => {
                        crate::error::ApiError::invalid(format!(
                            "Request body too large (at most {MAX_FORM_BYTES} bytes)"
                        ))
                    }
                    _ => {
                        tracing::debug!(error = %e, "OAuth 2.0 request body refused");
                        crate::error::ApiError::malformed()
                    }
                }
            })
        })
    }
}

/// The server's absolute base URL without a trailing slash: the configured `public_url`, else
/// the request's scheme and Host (behind a proxy, configure `public_url`).
pub fn public_base(state: &AppState, req: &HttpRequest) -> String {
    if let Some(url) = &state.oauth.public_url {
        return url.clone();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// A query string or form body as name → value. A parameter sent twice is refused and an empty
/// value counts as absent (RFC 6749 §3.1, §3.2).
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

/// Why a query string or form could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// Not `application/x-www-form-urlencoded` UTF-8.
    Malformed,
    /// This parameter came more than once.
    Repeated(String),
}

impl Params {
    /// Parses `a=1&b=2`.
    pub fn parse(bytes: &[u8]) -> Result<Params, ParamsError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(bytes).map_err(|_| ParamsError::Malformed)?;
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(ParamsError::Repeated(k));
            }
        }
        Ok(Params(map))
    }

    /// A parameter, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_repeats_and_ignore_empty_values() {
        let p = Params::parse(b"a=1&b=&c=x%20y").expect("parse");
        assert_eq!(
            (p.get("a"), p.get("b"), p.get("c")),
            (Some("1"), None, Some("x y"))
        );
        assert_eq!(
            Params::parse(b"a=1&a=2").err(),
            Some(ParamsError::Repeated("a".into()))
        );
    }
}
