//! Service authorization (spec §8.1, §11.2-11.3): `auth/login` with HTTP Basic or a refresh
//! token, `auth/revoke`, the password check with its lockout, and the Bearer extractor every
//! other method uses. Tokens are opaque random strings; the database holds only their SHA-256,
//! so revocation works on every instance sharing it and a copy of the database yields no usable
//! token (crates.io's model).
//!
//! A service token is either user-specific (`auth/login`, OAuth 2.0 authorization code: it acts
//! for one user) or a client's own (OAuth 2.0 `client_credentials`: it names no user, spec §8.1
//! "non-user-specific", `authType` `oauth2client`). A client token acts only for the users an
//! operator delegated to its client (`csc-server client delegate`): `credentials/list` needs
//! `userID` (the user's login name, spec §11.4 NOTE 1), and the other methods act for the owner
//! of the credential they name, audited with the client as the actor (`client:<id>`); a user
//! not delegated is answered like an unknown one (`Invalid parameter userID` / `credentialID`).
//! Key activation still needs the signer's own PIN/OTP (or the signer's approval on the OAuth
//! 2.0 consent page): a client token alone never signs.
//!
//! Password checks are bounded (`login_concurrency`, `login_queue`, [`sam::PasswordGate`]):
//! beyond the bound `auth/login` answers 429 `temporarily_unavailable` with `Retry-After`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_types::LoginResponse;
pub use sam::{ACCESS_PREFIX, IssuedTokens, Principal, REFRESH_PREFIX, client_actor};
use sam::{Caller, CredentialId, UserId};
use secrecy::SecretString;

use crate::app::AppState;
use crate::body::Body;
use crate::error::{ApiError, blocking};

/// The authenticated caller of a Bearer-protected method.
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The caller acting on `credential`. For a user token, its user (the SAM refuses other
    /// users' credentials as unknown). For a client token, the credential's owner if delegated
    /// to the client, with `client:<id>` as the audit actor; an unknown credential, or one of a
    /// user not delegated, is `Invalid parameter credentialID`. Blocking.
    pub fn caller_for(
        &self,
        state: &AppState,
        credential: &CredentialId,
    ) -> Result<Caller, ApiError> {
        Ok(state.sam.caller_for(&self.0, credential)?)
    }

    /// [`Authenticated::caller_for`] from an async handler: a user token's caller at once, a
    /// client token's (which reads the delegation) on the blocking pool.
    pub async fn caller_for_async(
        self,
        state: &web::Data<AppState>,
        credential: CredentialId,
    ) -> Result<Caller, ApiError> {
        match self.0 {
            Principal::User(caller) => Ok(caller),
            client @ Principal::Client { .. } => {
                let state = state.clone();
                blocking(move || Authenticated(client).caller_for(&state, &credential)).await
            }
        }
    }

    /// The user whose credentials `credentials/list` lists (spec §11.4 NOTE 1): a user token's
    /// own (then `userID` must be absent); for a client token, the user named by `userID` (a
    /// login name), which is then required, and whom an operator must have delegated to the
    /// client (else `Invalid parameter userID`, as for an unknown user). Blocking.
    pub fn list_user(&self, state: &AppState, user_id: Option<&str>) -> Result<UserId, ApiError> {
        match (&self.0, user_id) {
            (Principal::User(_), Some(_)) => {
                Err(ApiError::invalid("userID parameter MUST be null"))
            }
            (Principal::User(caller), None) => Ok(caller.user),
            (Principal::Client { .. }, None) => Err(ApiError::missing("string", "userID")),
            (Principal::Client { client_id, .. }, Some(name)) => {
                Ok(state.sam.list_subject_for_client(client_id, name)?)
            }
        }
    }
}

/// The decoded payload (`id:secret`) of an `Authorization: Basic` header value; `None` when the
/// value is not Basic, not base64 or not UTF-8. Shared by auth/login and the OAuth 2.0 client
/// authentication, which each say in their own terms what is wrong.
pub(crate) fn basic_payload(value: &HeaderValue) -> Option<String> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then(|| token.to_owned())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Authenticated, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = Bearer::of(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::Internal("no app state".into()))?;
            blocking(move || token.authenticate(&state)).await
        })
    }
}

/// The Bearer token of a request, present and well-formed but not yet checked. For the hot handlers
/// (signHash, authorize), which check it first thing inside their own blocking call: one trip to
/// the blocking pool per request instead of two (README "Benchmark"). No `Debug`: it holds the
/// token.
pub struct Bearer(String);

impl Bearer {
    /// A missing or malformed header is the spec's 400 (a bad token is 401, RFC 6750).
    fn of(req: &HttpRequest) -> Result<Bearer, ApiError> {
        bearer(req).map(Bearer).ok_or_else(ApiError::malformed)
    }

    /// The token as presented (CSC v2 signHash takes a credential-scope token as the SAD).
    pub(crate) fn token(&self) -> &str {
        &self.0
    }

    /// Resolves the token to whom it speaks for (401 `invalid_token` / `expired_token`).
    /// Blocking.
    pub fn authenticate(&self, state: &AppState) -> Result<Authenticated, ApiError> {
        Ok(Authenticated(state.sam.principal_of(&self.0)?))
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Bearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Bearer::of(req))
    }
}

enum LoginWith {
    Password {
        user: String,
        password: SecretString,
    },
    Refresh(String),
}

fn login_credentials(req: &HttpRequest, body: &Body) -> Result<LoginWith, ApiError> {
    // a refresh_token of the wrong type is refused whether or not a Basic header comes along
    if body
        .0
        .get("refresh_token")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return Err(ApiError::invalid("Invalid string parameter: refresh_token"));
    }
    match req.headers().get(AUTHORIZATION) {
        Some(value) => {
            let malformed = || ApiError::Csc {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_request",
                description: "Malformed authentication parameter.".into(),
            };
            let decoded = basic_payload(value).ok_or_else(malformed)?;
            let (user, password) = decoded
                .split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
                .ok_or_else(|| ApiError::invalid("Malformed username-password."))?;
            Ok(LoginWith::Password {
                user: user.to_owned(),
                password: SecretString::from(password.to_owned()),
            })
        }
        None => match body.0.get("refresh_token") {
            Some(serde_json::Value::String(t)) => Ok(LoginWith::Refresh(t.clone())),
            Some(_) => Err(ApiError::invalid("Invalid string parameter: refresh_token")),
            None => Err(ApiError::Csc {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_request",
                description: "Malformed authentication parameter.".into(),
            }),
        },
    }
}

fn authentication_error() -> ApiError {
    ApiError::bad(
        "authentication_error",
        "An error occurred during authentication process",
    )
}

/// `POST /csc/v1/auth/login` (spec §11.2).
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<LoginResponse>, ApiError> {
    body.check_client_data()?;
    let remember_me = body.opt_bool("rememberMe")?.unwrap_or(false);
    let with = login_credentials(&req, &body)?;
    blocking(move || issue_tokens(&state, with, remember_me))
        .await
        .map(web::Json)
}

fn issue_tokens(
    state: &AppState,
    with: LoginWith,
    remember_me: bool,
) -> Result<LoginResponse, ApiError> {
    let issued = match with {
        LoginWith::Password { user, password } => {
            // wrong password, unknown or locked user: one answer (Part I 7.1.2.5.1)
            match state
                .sam
                .login_with_password(&state.tokens, &user, &password, remember_me)?
            {
                Ok(issued) => issued,
                Err(_) => return Err(authentication_error()),
            }
        }
        LoginWith::Refresh(token) => state.sam.login_with_refresh_token(&state.tokens, &token)?,
    };
    Ok(LoginResponse {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        expires_in: issued.expires_in,
    })
}

/// `POST /csc/v1/auth/revoke` (spec §11.3): 204; revoking a refresh token also revokes the
/// access tokens it minted. A user revokes its own tokens; a client token, the client's own.
pub async fn revoke(
    Authenticated(principal): Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    body.check_client_data()?;
    let token = body.string("token")?.to_owned();
    // the hint is checked but only a hint (RFC 7009 §2.1): every kind is searched
    match body.0.get("token_type_hint") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(h)) if h == "access_token" || h == "refresh_token" => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid string parameter token_type_hint",
            ));
        }
    }
    blocking(move || Ok(state.sam.revoke_service_token(&principal, &token)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}
