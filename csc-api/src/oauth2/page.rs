//! `oauth2/authorize` (spec §8.3.2, REFERENCE §5.11): the authorization page.
//!
//! `GET` validates the request. A missing or unknown `client_id`, or a `redirect_uri` that is
//! not exactly one the client registered, is shown on the page and never redirected
//! (RFC 6749 §4.1.2.1); every other error is a 302 to the redirect URI with `error`,
//! `error_description` and `state`. A valid request becomes a pending row (its random handle
//! stored as SHA-256, 10 minutes) and the sign-in form.
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

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sam::{Caller, CredentialGrant, Factors, OtpType, SamError, secrets};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use storage::{
    CredentialId, CredentialStatus, FactorKind, NewAuditEvent, NewOAuthCode, NewOAuthRequest,
    OAuthClient, OAuthRequest, Scal, User, secret_hash, utc_now,
};

use super::html::{self, ConsentPage, CredentialView, LoginPage};
use super::{Params, ParamsError};
use crate::app::AppState;
use crate::auth::{authenticate, client_actor};
use crate::error::{ApiError, blocking};

/// Prefix of authorization codes.
const CODE_PREFIX: &str = "csc_ac_";
/// Cookie name prefix; the name ends with 16 hex digits of the handle's digest, so requests in
/// several tabs do not disturb each other.
const COOKIE_PREFIX: &str = "csc_oauth_";
/// The most hashes one request may carry (it must fit a URL anyway).
const MAX_HASHES: usize = 64;

/// The validated request, kept server-side while the signer is on the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// `service` or `credential`.
    scope: String,
    /// Where the answer goes (the request's, or the client's default).
    redirect_uri: String,
    redirect_uri_given: bool,
    state: Option<String>,
    code_challenge: Option<String>,
    credential_id: Option<String>,
    num_signatures: Option<i64>,
    /// base64url without padding, as shown to the signer.
    hashes: Vec<String>,
    description: Option<String>,
}

/// What a page answer needs from the request, taken before going off the async worker.
#[derive(Clone)]
struct Origin {
    secure: bool,
    cookie_header: Option<String>,
}

impl Origin {
    fn of(state: &AppState, req: &HttpRequest) -> Origin {
        Origin {
            secure: super::public_base(state, req).starts_with("https://"),
            cookie_header: req
                .headers()
                .get_all(header::COOKIE)
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .reduce(|a, b| format!("{a}; {b}")),
        }
    }

    /// The value of cookie `name`.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookie_header.as_deref()?.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }
}

fn cookie_name(request_hash: &[u8]) -> String {
    format!("{COOKIE_PREFIX}{}", hex_prefix(request_hash))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The origin a form on the page may submit to and be redirected to (CSP `form-action`
/// applies to the redirect after the POST): ours, and the redirect URI's.
fn redirect_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        other => Some(format!("{other}:")),
    }
}

/// A page's answer, built off the async worker (an `HttpResponse` is not `Send`).
enum Answer {
    Page {
        status: StatusCode,
        body: String,
        /// The redirect URI the page's form may lead to (CSP `form-action`).
        redirect_to: Option<String>,
        cookie: Option<String>,
    },
    /// A 302 to this location.
    Redirect(String),
}

impl Answer {
    /// The HTTP answer, with the page's security headers.
    fn into_response(self) -> HttpResponse {
        match self {
            Answer::Redirect(location) => HttpResponse::Found()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .finish(),
            Answer::Page {
                status,
                body,
                redirect_to,
                cookie,
            } => {
                let form_action = match redirect_to.as_deref().and_then(redirect_source) {
                    Some(src) => format!("'self' {src}"),
                    None => "'self'".to_owned(),
                };
                let csp = format!(
                    "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; \
                     frame-ancestors 'none'; base-uri 'none'"
                );
                let mut r = HttpResponse::build(status);
                r.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
                    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
                    .insert_header((header::CONTENT_SECURITY_POLICY, csp))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .insert_header((header::PRAGMA, "no-cache"))
                    .insert_header((header::REFERRER_POLICY, "no-referrer"))
                    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
                if let Some(c) = cookie
                    && let Ok(v) = HeaderValue::from_str(&c)
                {
                    r.append_header((header::SET_COOKIE, v));
                }
                r.body(body)
            }
        }
    }
}

fn page(
    status: StatusCode,
    body: String,
    redirect_to: Option<&str>,
    cookie: Option<String>,
) -> Answer {
    Answer::Page {
        status,
        body,
        redirect_to: redirect_to.map(str::to_owned),
        cookie,
    }
}

fn error_page(state: &AppState, status: StatusCode, message: &str) -> Answer {
    page(
        status,
        html::error_page(&state.info.name, message),
        None,
        None,
    )
}

/// A 302 to `uri` with `params` added to its query (RFC 6749 §4.1.2).
fn redirect(uri: &str, params: &[(&str, &str)]) -> Answer {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            Answer::Redirect(url.to_string())
        }
        // registered URIs are checked at registration; this is a guard
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            html::error_page("", "The redirect URI is invalid."),
            None,
            None,
        ),
    }
}

/// The error redirect of RFC 6749 §4.1.2.1, with the `state`.
fn error_redirect(uri: &str, state: Option<&str>, error: &str, description: &str) -> Answer {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect(uri, &params)
}

fn success_redirect(p: &Pending, code: &str) -> Answer {
    let mut params = vec![("code", code)];
    if let Some(s) = &p.state {
        params.push(("state", s.as_str()));
    }
    redirect(&p.redirect_uri, &params)
}

/// Internal trouble on the page: logged, shown as a page (the redirect URI may be unknown).
fn internal(state: &AppState, e: ApiError) -> Answer {
    tracing::error!(error = %e, "oauth2/authorize failed");
    error_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        "The service could not handle this request. Please try again later.",
    )
}

fn audit(state: &AppState, actor: &str, client: &str, outcome: &str, detail: serde_json::Value) {
    let ev = NewAuditEvent::new(sam::AuditEvent::OAuth2Authorize, actor, client, outcome)
        .with_detail(detail);
    if let Err(e) = state.sam.store().write(|c| c.append_audit(&ev)) {
        tracing::error!(error = %e, "could not write an audit record");
    }
}

/// `hash`: base64url values, comma-separated (padding and standard base64 tolerated).
fn parse_hashes(value: &str) -> Option<Vec<Vec<u8>>> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.len() > MAX_HASHES {
        return None;
    }
    items
        .iter()
        .map(|h| {
            let h = h.trim_end_matches('=');
            URL_SAFE_NO_PAD
                .decode(h)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(h))
                .ok()
                .filter(|d| !d.is_empty())
        })
        .collect()
}

/// Validates a request after the client and redirect URI are known to be good; an `Err` is
/// the `(error, error_description)` of the redirect.
fn validate(
    p: &Params,
    client: &OAuthClient,
    redirect_uri: String,
    redirect_uri_given: bool,
) -> Result<Pending, (&'static str, String)> {
    let bad = |d: &str| ("invalid_request", d.to_owned());
    match p.get("response_type") {
        None => return Err(bad("Missing parameter response_type")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "Only response_type code is supported".into(),
            ));
        }
    }
    let scope = match p.get("scope") {
        None | Some("service") => "service",
        Some("credential") => "credential",
        Some(_) => return Err(("invalid_scope", "Invalid parameter scope".into())),
    };
    let state = p.get("state").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > 255) {
        return Err(bad("Invalid parameter state"));
    }
    // PKCE (RFC 7636): S256 only; required of public clients
    let code_challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, None) if client.is_confidential() => None,
        (None, None) => {
            return Err(bad(
                "Missing parameter code_challenge: a public client must use PKCE (S256)",
            ));
        }
        (None, Some(_)) => return Err(bad("Missing parameter code_challenge")),
        (Some(_), method) if method != Some("S256") => {
            return Err(bad("Invalid parameter code_challenge_method: only S256"));
        }
        (Some(c), _) => {
            if c.len() != 43 || URL_SAFE_NO_PAD.decode(c).is_err() {
                return Err(bad("Invalid parameter code_challenge"));
            }
            Some(c.to_owned())
        }
    };
    let description = p.get("description").map(str::to_owned);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(bad("Invalid parameter description"));
    }
    let (credential_id, num_signatures, hashes) = if scope == "credential" {
        let id = p
            .get("credentialID")
            .ok_or_else(|| bad("Missing parameter credentialID"))?;
        let id: CredentialId = id
            .parse()
            .map_err(|_| bad("Invalid parameter credentialID"))?;
        let n = p
            .get("numSignatures")
            .ok_or_else(|| bad("Missing parameter numSignatures"))?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("Invalid parameter numSignatures"))?;
        let hashes = match p.get("hash") {
            None => vec![],
            Some(h) => parse_hashes(h).ok_or_else(|| bad("Invalid parameter hash"))?,
        };
        (
            Some(id.to_string()),
            Some(n),
            hashes.iter().map(|h| URL_SAFE_NO_PAD.encode(h)).collect(),
        )
    } else {
        for name in ["credentialID", "numSignatures", "hash"] {
            if p.get(name).is_some() {
                return Err(bad(&format!(
                    "Invalid parameter {name}: only for scope credential"
                )));
            }
        }
        (None, None, vec![])
    };
    Ok(Pending {
        scope: scope.into(),
        redirect_uri,
        redirect_uri_given,
        state,
        code_challenge,
        credential_id,
        num_signatures,
        hashes,
        description,
    })
}

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
    let client = match state.sam.store().read(|c| c.oauth_client(client_id)) {
        Ok(Some(c)) => c,
        Ok(None) => return bad_page("The request names an unknown client (client_id)."),
        Err(e) => return internal(state, e.into()),
    };
    // exact match against a registered URI; otherwise never redirect (RFC 6749 §4.1.2.1)
    let (redirect_uri, given) = match p.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => (r.to_owned(), true),
        Some(_) => {
            audit(
                state,
                &client_actor(&client.client_id),
                &client.client_id,
                "refused",
                json!({ "reason": "redirect_uri not registered" }),
            );
            return bad_page(
                "The redirect URI is not registered for this application (redirect_uri).",
            );
        }
        None => match client.redirect_uris.first() {
            Some(r) => (r.clone(), false),
            None => return bad_page("The application has no registered redirect URI."),
        },
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
    let handle = match secrets::random_token(32) {
        Ok(h) => h,
        Err(e) => return internal(state, e.into()),
    };
    let request_hash = secret_hash(handle.as_bytes()).to_vec();
    let params_json = match serde_json::to_string(&pending) {
        Ok(j) => j,
        Err(e) => return internal(state, ApiError::Internal(e.to_string())),
    };
    let ttl = state.oauth.request_ttl;
    if let Err(e) = state.sam.store().write(|c| {
        c.insert_oauth_request(&NewOAuthRequest {
            request_hash: request_hash.clone(),
            client_id: client.client_id.clone(),
            params: params_json.clone(),
            expires_at: utc_now() + ttl,
        })
    }) {
        return internal(state, e.into());
    }
    let cookie = format!(
        "{}={handle}; Path=/oauth2/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        cookie_name(&request_hash),
        ttl.num_seconds(),
        if origin.secure { "; Secure" } else { "" }
    );
    page(
        StatusCode::OK,
        html::login_page(&LoginPage {
            service: &state.info.name,
            client: &client.name,
            scope: &pending.scope,
            handle: &handle,
            user: None,
            error: None,
        }),
        Some(&pending.redirect_uri),
        Some(cookie),
    )
}

/// `POST oauth2/authorize` (the page's form).
pub async fn authorize_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let origin = Origin::of(&state, &req);
    let params = Params::parse(&body);
    let st = state.clone();
    match blocking(move || Ok(step(&st, &origin, params))).await {
        Ok(r) => r,
        Err(e) => internal(&state, e),
    }
    .into_response()
}

/// Everything a POST step knows.
struct Step<'a> {
    state: &'a AppState,
    handle: String,
    request: OAuthRequest,
    pending: Pending,
    client: OAuthClient,
}

fn step(state: &AppState, origin: &Origin, params: Result<Params, ParamsError>) -> Answer {
    let bad_page = |status: StatusCode, m: &str| error_page(state, status, m);
    let Ok(p) = params else {
        return bad_page(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    let Some(handle) = p.get("request").map(str::to_owned) else {
        return bad_page(
            StatusCode::BAD_REQUEST,
            "The form names no sign-in request.",
        );
    };
    let request_hash = secret_hash(handle.as_bytes());
    // CSRF: the hidden field must equal the cookie set with the form
    let cookie_ok = origin.cookie(&cookie_name(&request_hash)).is_some_and(|v| {
        v.len() == handle.len() && openssl::memcmp::eq(v.as_bytes(), handle.as_bytes())
    });
    let found = match state.sam.store().read(|c| {
        let Some(r) = c.oauth_request(&request_hash)? else {
            return Ok(None);
        };
        Ok(c.oauth_client(&r.client_id)?.map(|client| (r, client)))
    }) {
        Ok(f) => f,
        Err(e) => return internal(state, e.into()),
    };
    let Some((request, client)) = found else {
        return bad_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request is unknown, finished or expired.",
        );
    };
    if !cookie_ok {
        audit(
            state,
            &client_actor(&client.client_id),
            &client.client_id,
            "refused",
            json!({ "reason": "the form and its cookie differ (CSRF check)" }),
        );
        return bad_page(
            StatusCode::FORBIDDEN,
            "This form could not be verified (it must be sent from this page, with cookies enabled).",
        );
    }
    if request.expires_at <= utc_now() {
        let _ = state
            .sam
            .store()
            .write(|c| c.delete_oauth_request(&request_hash));
        return bad_page(StatusCode::BAD_REQUEST, "This sign-in request has expired.");
    }
    let pending: Pending = match serde_json::from_str(&request.params) {
        Ok(p) => p,
        Err(e) => return internal(state, ApiError::Internal(format!("pending request: {e}"))),
    };
    let s = Step {
        state,
        handle,
        request,
        pending,
        client,
    };
    let result = match (p.get("action"), s.request.user_id) {
        (Some("deny"), user) => Ok(s.deny(user)),
        (Some("login") | None, None) => s.login(&p),
        (Some("approve") | None, Some(user)) => s.approve(&p, user),
        (Some("resend"), Some(user)) => s.resend(user),
        _ => Ok(bad_page(StatusCode::BAD_REQUEST, "Unexpected form action.")),
    };
    result.unwrap_or_else(|e| internal(state, e))
}

impl Step<'_> {
    fn request_hash(&self) -> &[u8] {
        &self.request.request_hash
    }

    /// Ends the request with an error redirect.
    fn finish_with_error(&self, error: &str, description: &str) -> Result<Answer, ApiError> {
        self.state
            .sam
            .store()
            .write(|c| c.delete_oauth_request(self.request_hash()))?;
        audit(
            self.state,
            &client_actor(&self.client.client_id),
            &self.client.client_id,
            "refused",
            json!({ "scope": self.pending.scope, "error": error, "reason": description }),
        );
        Ok(error_redirect(
            &self.pending.redirect_uri,
            self.pending.state.as_deref(),
            error,
            description,
        ))
    }

    fn deny(&self, _user: Option<storage::UserId>) -> Answer {
        self.finish_with_error("access_denied", "The user refused the request")
            .unwrap_or_else(|e| internal(self.state, e))
    }

    fn login_page(&self, user: Option<&str>, error: Option<&str>) -> Answer {
        page(
            StatusCode::OK,
            html::login_page(&LoginPage {
                service: &self.state.info.name,
                client: &self.client.name,
                scope: &self.pending.scope,
                handle: &self.handle,
                user,
                error,
            }),
            Some(&self.pending.redirect_uri),
            None,
        )
    }

    fn new_code() -> Result<(String, [u8; 32]), ApiError> {
        let code = format!("{CODE_PREFIX}{}", secrets::random_token(32)?);
        let hash = secret_hash(code.as_bytes());
        Ok((code, hash))
    }

    /// The sign-in step.
    fn login(&self, p: &Params) -> Result<Answer, ApiError> {
        let (Some(name), Some(password)) = (p.get("username"), p.get("password")) else {
            return Ok(self.login_page(
                p.get("username"),
                Some("Enter your user name and password."),
            ));
        };
        let password = SecretString::from(password.to_owned());
        let user = match authenticate(
            self.state,
            name,
            &password,
            crate::auth::LoginMethod::OAuth2,
        )? {
            Ok(u) => u,
            Err(_) => {
                return Ok(self.login_page(
                    Some(name),
                    Some("Sign-in failed: wrong user name or password, or the account is locked."),
                ));
            }
        };
        self.state.sam.store().write(|c| {
            c.append_audit(
                &NewAuditEvent::new(
                    sam::AuditEvent::AuthLogin,
                    &user.name,
                    &user.name,
                    "success",
                )
                .with_detail(json!({ "method": "oauth2", "client": self.client.client_id })),
            )
        })?;
        if self.pending.scope == "service" {
            return self.issue_service_code(&user, p.get("remember").is_some());
        }
        self.start_consent(&user)
    }

    /// Scope `service`: signing in is the approval.
    fn issue_service_code(&self, user: &User, remember: bool) -> Result<Answer, ApiError> {
        let (code, code_hash) = Self::new_code()?;
        let expires_at = utc_now() + self.state.oauth.code_ttl;
        let issued = self.state.sam.store().write(|c| {
            if !c.delete_oauth_request(self.request_hash())? {
                return Ok(false);
            }
            c.insert_oauth_code(&NewOAuthCode {
                code_hash: code_hash.to_vec(),
                client_id: self.client.client_id.clone(),
                user_id: user.id,
                scope: "service".into(),
                redirect_uri: self.pending.redirect_uri.clone(),
                redirect_uri_given: self.pending.redirect_uri_given,
                code_challenge: self.pending.code_challenge.clone(),
                credential_id: None,
                num_signatures: None,
                hashes: None,
                remember,
                expires_at,
            })?;
            c.append_audit(
                &NewAuditEvent::new(
                    sam::AuditEvent::OAuth2Authorize,
                    &user.name,
                    &self.client.client_id,
                    "success",
                )
                .with_detail(json!({ "scope": "service", "remember": remember })),
            )?;
            Ok(true)
        })?;
        if !issued {
            return Ok(error_page(
                self.state,
                StatusCode::BAD_REQUEST,
                "This sign-in request was already answered.",
            ));
        }
        Ok(success_redirect(&self.pending, &code))
    }

    fn caller(&self, user: &User) -> Caller {
        let mut token_hash = [0u8; 32];
        if self.request_hash().len() == 32 {
            token_hash.copy_from_slice(self.request_hash());
        }
        Caller {
            user: user.id,
            user_name: user.name.clone(),
            token_hash,
        }
    }

    fn credential_id(&self) -> Result<CredentialId, ApiError> {
        self.pending
            .credential_id
            .as_deref()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| ApiError::Internal("pending request without a credential".into()))
    }

    /// Scope `credential`, after sign-in: checks what can be checked before the factors, binds
    /// the request to the signer, sends an online OTP, shows the consent step.
    fn start_consent(&self, user: &User) -> Result<Answer, ApiError> {
        let id = self.credential_id()?;
        let found = self.state.sam.store().read(|c| c.credential(&id))?;
        let Some(cred) = found.filter(|c| c.user_id == user.id) else {
            return self.finish_with_error("invalid_request", "Invalid parameter credentialID");
        };
        if cred.status != CredentialStatus::Enabled {
            return self.finish_with_error(
                "access_denied",
                "The credential identified by credentialID is disabled",
            );
        }
        let num = self.pending.num_signatures.unwrap_or(0);
        if num > i64::from(cred.multisign) || self.pending.hashes.len() as i64 > num {
            return self.finish_with_error("invalid_request", "Numbers of signatures is too high");
        }
        if cred.scal == Scal::Two && self.pending.hashes.is_empty() {
            // spec §8.3.2: hash SHALL be sent for a SCAL 2 credential
            return self.finish_with_error("invalid_request", "Missing parameter hash");
        }
        if !self
            .state
            .sam
            .store()
            .write(|c| c.bind_oauth_request_user(self.request_hash(), &user.id, utc_now()))?
        {
            return Ok(error_page(
                self.state,
                StatusCode::BAD_REQUEST,
                "This sign-in request was already answered.",
            ));
        }
        let (notice, error) = self.send_online_otp(user, &id)?;
        if let Some(locked) = error.filter(|e| *e == "OTP locked") {
            return self.finish_with_error("access_denied", locked);
        }
        self.consent_page(user, error, notice)
    }

    /// Sends an online OTP if the credential has one: `(notice, error)` for the page.
    fn send_online_otp(
        &self,
        user: &User,
        id: &CredentialId,
    ) -> Result<(Option<&'static str>, Option<&'static str>), ApiError> {
        let otp = self
            .state
            .sam
            .store()
            .read(|c| c.factor(id, FactorKind::Otp))?;
        if !otp.is_some_and(|f| OtpType::of(&f) == OtpType::Online) {
            return Ok((None, None));
        }
        Ok(
            match self.state.sam.send_online_otp(&self.caller(user), id) {
                Ok(()) => (Some("A one-time code was sent to you."), None),
                Err(SamError::OtpLocked) => (None, Some("OTP locked")),
                Err(SamError::OtpDelivery(_)) => (
                    None,
                    Some("The one-time code could not be sent. Try \"Send a new code\" later."),
                ),
                Err(e @ SamError::Storage(_)) => return Err(e.into()),
                Err(_) => (None, Some("No one-time code can be sent for this key.")),
            },
        )
    }

    fn consent_page(
        &self,
        user: &User,
        error: Option<&str>,
        notice: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let id = self.credential_id()?;
        let (cred, pin, otp) = self.state.sam.store().read(|c| {
            Ok((
                c.credential(&id)?,
                c.factor(&id, FactorKind::Pin)?.is_some(),
                c.factor(&id, FactorKind::Otp)?.map(|f| OtpType::of(&f)),
            ))
        })?;
        let cred = cred.ok_or_else(|| ApiError::Internal("the credential vanished".into()))?;
        let subject = cred
            .cert_chain_der()?
            .first()
            .and_then(|der| openssl::x509::X509::from_der(der).ok())
            .map(|c| crate::certinfo::rfc4514(c.subject_name()));
        let view = CredentialView {
            id: cred.id.to_string(),
            description: cred.description.clone(),
            key: cred.key_spec.clone(),
            subject,
            scal: cred.scal.as_str().into(),
        };
        Ok(page(
            StatusCode::OK,
            html::consent_page(&ConsentPage {
                service: &self.state.info.name,
                client: &self.client.name,
                user: &user.name,
                handle: &self.handle,
                credential: &view,
                num_signatures: self.pending.num_signatures.unwrap_or(0),
                hashes: &self.pending.hashes,
                description: self.pending.description.as_deref(),
                pin,
                otp: otp.map(OtpType::csc_type),
                error,
                notice,
            }),
            Some(&self.pending.redirect_uri),
            None,
        ))
    }

    fn signer(&self, user_id: storage::UserId) -> Result<User, ApiError> {
        self.state
            .sam
            .store()
            .read(|c| c.user(&user_id))?
            .ok_or_else(|| ApiError::Internal("the signer vanished".into()))
    }

    fn resend(&self, user_id: storage::UserId) -> Result<Answer, ApiError> {
        let user = self.signer(user_id)?;
        let (notice, error) = self.send_online_otp(&user, &self.credential_id()?)?;
        let notice = notice.map(|_| "A new one-time code was sent to you.");
        self.consent_page(&user, error, notice)
    }

    /// The consent step's approval: the SAM verifies PIN and OTP and stores the code.
    fn approve(&self, p: &Params, user_id: storage::UserId) -> Result<Answer, ApiError> {
        let user = self.signer(user_id)?;
        let id = self.credential_id()?;
        let hashes = self
            .pending
            .hashes
            .iter()
            .map(|h| URL_SAFE_NO_PAD.decode(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::Internal(format!("pending hashes: {e}")))?;
        let factors = Factors {
            pin: p.get("PIN").map(|s| SecretString::from(s.to_owned())),
            otp: p
                .get("OTP")
                .map(|s| SecretString::from(s.trim().to_owned())),
        };
        let (code, code_hash) = Self::new_code()?;
        let grant = CredentialGrant {
            credential: id,
            num_signatures: self.pending.num_signatures.unwrap_or(0),
            hashes: (!hashes.is_empty()).then_some(hashes),
            client_id: self.client.client_id.clone(),
            redirect_uri: self.pending.redirect_uri.clone(),
            redirect_uri_given: self.pending.redirect_uri_given,
            code_challenge: self.pending.code_challenge.clone(),
            code_hash,
            code_expires_at: utc_now() + self.state.oauth.code_ttl,
            pending_request: self.request_hash().to_vec(),
        };
        let again = |msg: &str| self.consent_page(&user, Some(msg), None);
        match self
            .state
            .sam
            .approve_credential_grant(&self.caller(&user), &grant, factors)
        {
            Ok(()) => Ok(success_redirect(&self.pending, &code)),
            Err(SamError::InvalidPin) => again("The PIN is invalid."),
            Err(SamError::MissingPin) => again("Enter the PIN of this key."),
            Err(SamError::InvalidOtp) => again("The one-time code is invalid or expired."),
            Err(SamError::MissingOtp) => again("Enter the one-time code."),
            Err(SamError::PinLocked) => self.finish_with_error("access_denied", "PIN locked"),
            Err(SamError::OtpLocked) => self.finish_with_error("access_denied", "OTP locked"),
            Err(SamError::RequestGone) => Ok(error_page(
                self.state,
                StatusCode::BAD_REQUEST,
                "This sign-in request was already answered.",
            )),
            Err(e) => match ApiError::from(e) {
                ApiError::Csc { description, .. } => {
                    self.finish_with_error("invalid_request", &description)
                }
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_comma_separated_base64url() {
        let h = parse_hashes("AAEC,_-8").expect("parse");
        assert_eq!(h, vec![vec![0, 1, 2], vec![0xff, 0xef]]);
        assert!(parse_hashes("AA==,").is_none(), "an empty element");
        assert!(parse_hashes("%%%").is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let o = Origin {
            secure: false,
            cookie_header: Some("a=1; csc_oauth_00=v; b=2".into()),
        };
        assert_eq!(o.cookie("csc_oauth_00"), Some("v"));
        assert_eq!(o.cookie("c"), None);
    }

    #[test]
    fn form_action_allows_the_redirect_origin() {
        assert_eq!(
            redirect_source("http://127.0.0.1:9/cb?x=1").as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            redirect_source("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
    }
}
