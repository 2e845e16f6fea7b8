//! `oauth2/authorize` (spec §8.3.2): the authorization page.
//!
//! `GET` validates the request. A missing or unknown `client_id`, or a `redirect_uri` that is
//! not exactly one the client registered, is shown on the page and never redirected
//! (RFC 6749 §4.1.2.1); every other error is a 302 to the redirect URI with `error`,
//! `error_description` and `state`. A valid request becomes a pending row (its random handle
//! stored as SHA-256, 10 minutes) and the sign-in form. A request with `client_id` and the
//! `request_uri` of a pushed request (RFC 9126 §4, [`crate::oauth2::par`]) takes that request,
//! once, instead of the query's parameters (any other is ignored, RFC 9101 §5); an unknown,
//! used, expired or other client's `request_uri` is shown on the page, never redirected.
//! `authorization_details` (RFC 9396, [`crate::oauth2::rar`]), or the plain CSC v2 parameters
//! that are their equivalent (`hashes`, `hashAlgorithmOID`, `signatureQualifier`), make a
//! credential request whose consent step lists each document's digest (and label, if any).
//!
//! `POST` carries the handle in a hidden field; it must equal the value of an `HttpOnly`,
//! `SameSite=Strict` cookie set with the form (double submit bound to the server-side row),
//! so another site cannot submit the form in the signer's browser (CSRF). Every page is sent
//! with `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'`
//! (clickjacking), `default-src 'none'` (no script at all), `no-store` and `no-referrer`.
//!
//! Steps: sign in (user name and password, with the login lockout of Part I 7.1.2.5.1); for
//! scope `service` that is the approval and the code is issued; for scope `credential` the
//! consent step shows the client, the credential (ID, key, certificate subject, SCAL), the
//! number of signatures, the hashes and the application's description, sends an online OTP if
//! the credential has one, and asks for the PIN and OTP, which the SAM verifies
//! ([`sam::Sam::approve_credential_grant`]) before the code exists. A refusal is
//! `access_denied`. Codes are 256 random bits, single-use, short-lived, stored as SHA-256 and
//! bound to the client, the redirect URI and the PKCE challenge.

mod answer;
mod step;
pub(crate) mod validate;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use sam::{OAuthError, SamError};

use self::answer::{Answer, Origin, cookie_name, error_page, error_redirect, internal, page};
use self::validate::{Pending, validate};
use super::html::{self, LoginPage};
use super::{FormBody, Params, ParamsError};
use crate::app::AppState;
use crate::error::{ApiError, blocking};

/// `GET oauth2/authorize`.
pub async fn authorize_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let origin = Origin::of(&state, &req);
    let params = Params::parse(req.query_string().as_bytes());
    let st = state.clone();
    match blocking(move || Ok(begin(&st, &origin, params))).await {
        Ok(r) => r,
        Err(e) => internal(&state, e),
    }
    .into_response()
}

/// `POST oauth2/authorize` (the page's form).
pub async fn authorize_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<FormBody, ApiError>,
) -> HttpResponse {
    // the page answers in HTML, an oversized form too (the JSON endpoints answer JSON)
    let Ok(body) = body else {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "The form is too large or could not be read.",
        )
        .into_response();
    };
    let origin = Origin::of(&state, &req);
    let params = Params::parse(&body.0);
    let st = state.clone();
    match blocking(move || Ok(step::step(&st, &origin, params))).await {
        Ok(r) => r,
        Err(e) => internal(&state, e),
    }
    .into_response()
}

/// The GET: the client, the redirect URI, the request's validity; then a pending request and
/// the sign-in form with its cookie.
fn begin(state: &AppState, origin: &Origin, params: Result<Params, ParamsError>) -> Answer {
    let bad_page = |m: &str| error_page(state, StatusCode::BAD_REQUEST, m);
    let p = match params {
        Ok(p) => p,
        Err(ParamsError::Repeated(name)) => {
            return bad_page(&format!("The request repeats the parameter {name}."));
        }
        Err(ParamsError::Malformed) => return bad_page("The request is malformed."),
    };
    let Some(client_id) = p.get("client_id") else {
        return bad_page("The request names no client (client_id is missing).");
    };
    let client = match state.sam.oauth_client(client_id) {
        Ok(Some(c)) => c,
        Ok(None) => return bad_page("The request names an unknown client (client_id)."),
        Err(e) => return internal(state, e.into()),
    };
    if let Some(uri) = p.get("request_uri") {
        return begin_pushed(state, origin, &client, uri);
    }
    // exact match against a registered URI; otherwise never redirect (RFC 6749 §4.1.2.1)
    let (redirect_uri, given) = match state.sam.redirect_uri_for(&client, p.get("redirect_uri")) {
        Ok(r) => r,
        Err(SamError::OAuth(OAuthError::RedirectUriNotRegistered)) => {
            return bad_page(
                "The redirect URI is not registered for this application (redirect_uri).",
            );
        }
        Err(SamError::OAuth(OAuthError::NoRedirectUri)) => {
            return bad_page("The application has no registered redirect URI.");
        }
        Err(e) => return internal(state, e.into()),
    };
    let pending = match validate(&p, &client, redirect_uri, given) {
        Ok(v) => v,
        Err((error, description)) => {
            return error_redirect(
                if given {
                    p.get("redirect_uri").unwrap_or_default()
                } else {
                    client.redirect_uris.first().map_or("", String::as_str)
                },
                p.get("state"),
                error,
                &description,
            );
        }
    };
    open_page(state, origin, &client, &pending)
}

/// Prefix of the `request_uri` values of pushed requests (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// `oauth2/authorize?client_id=…&request_uri=…` (RFC 9126 §4): the pushed request, used up,
/// becomes the page's pending request. The pushed request is the whole request: every other
/// parameter beside `client_id` and `request_uri` is ignored (RFC 9101 §5, which RFC 9126
/// builds on). A `request_uri` that is unknown, used, expired or another client's is shown on
/// the page, never redirected: its redirect URI is not known to be the client's any more.
fn begin_pushed(state: &AppState, origin: &Origin, client: &sam::OAuthClient, uri: &str) -> Answer {
    let refused = || {
        error_page(
            state,
            StatusCode::BAD_REQUEST,
            "The request_uri is unknown, used, expired or not this application's.",
        )
    };
    let Some(handle) = uri.strip_prefix(REQUEST_URI_PREFIX) else {
        return refused();
    };
    let request = match state.sam.take_pushed_request(handle, &client.client_id) {
        Ok(r) => r,
        Err(SamError::OAuth(OAuthError::UnknownRequest | OAuthError::RequestExpired)) => {
            return refused();
        }
        Err(e) => return internal(state, e.into()),
    };
    let mut pending: Pending = match serde_json::from_str(&request.params) {
        Ok(p) => p,
        Err(e) => return internal(state, ApiError::Internal(format!("pushed request: {e}"))),
    };
    pending.pushed = false;
    open_page(state, origin, client, &pending)
}

/// A validated request becomes a pending row (its handle in the form and the cookie) and the
/// sign-in form.
fn open_page(
    state: &AppState,
    origin: &Origin,
    client: &sam::OAuthClient,
    pending: &Pending,
) -> Answer {
    let params_json = match serde_json::to_string(pending) {
        Ok(j) => j,
        Err(e) => return internal(state, ApiError::Internal(e.to_string())),
    };
    let ttl = state.oauth.request_ttl;
    let created = match state
        .sam
        .create_oauth_request(&client.client_id, params_json, ttl)
    {
        Ok(c) => c,
        Err(e) => return internal(state, e.into()),
    };
    let cookie = format!(
        "{}={}; Path=/oauth2/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        cookie_name(&created.request_hash),
        created.handle,
        ttl.num_seconds(),
        if origin.secure { "; Secure" } else { "" }
    );
    page(
        StatusCode::OK,
        html::login_page(&LoginPage {
            service: &state.info.name,
            client: &client.name,
            scope: &pending.scope,
            handle: &created.handle,
            user: None,
            error: None,
        }),
        Some(&pending.redirect_uri),
        Some(cookie),
    )
}
