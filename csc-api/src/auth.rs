//! Service authorization (spec §8.1, §11.2-11.3): `auth/login` with HTTP Basic or a refresh
//! token, `auth/revoke`, the password check with its lockout, and the Bearer extractor every
//! other method uses. Tokens are opaque random strings; the database holds only their SHA-256,
//! so revocation works on every instance sharing it and a copy of the database yields no usable
//! token (crates.io's model).
//!
//! A service token is either user-specific (`auth/login`, OAuth 2.0 authorization code: it acts
//! for one user) or a client's own (OAuth 2.0 `client_credentials`: it names no user, spec §8.1
//! "non-user-specific", `authType` `oauth2client`). With a client token, `credentials/list`
//! needs `userID` (the user's login name, spec §11.4 NOTE 1) and the other methods act for the
//! owner of the credential they name, audited with the client as the actor (`client:<id>`).
//! Key activation still needs the signer's own PIN/OTP (or the signer's approval on the OAuth
//! 2.0 consent page): a client token alone never signs.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_types::LoginResponse;
use sam::{Caller, secrets};
use secrecy::SecretString;
use serde_json::json;
use storage::{
    CredentialId, NewAuditEvent, NewToken, TokenKind, User, UserId, secret_hash, utc_now,
};

use crate::app::AppState;
use crate::body::Body;
use crate::error::{ApiError, blocking};

/// Prefix of service access tokens.
pub const ACCESS_PREFIX: &str = "csc_at_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "csc_rt_";

/// Who a service access token speaks for.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user-specific token.
    User(Caller),
    /// A client's own token (`client_credentials`), naming no user.
    Client {
        client_id: String,
        token_hash: [u8; 32],
    },
}

/// The audit actor of an OAuth 2.0 client acting on its own (`client:<client_id>`).
pub fn client_actor(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// The authenticated caller of a Bearer-protected method.
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The caller acting on `credential`. For a user token, its user (the SAM refuses other
    /// users' credentials as unknown). For a client token, the credential's owner, with
    /// `client:<id>` as the audit actor; an unknown credential is `Invalid parameter
    /// credentialID`. Blocking.
    pub fn caller_for(
        &self,
        state: &AppState,
        credential: &CredentialId,
    ) -> Result<Caller, ApiError> {
        match &self.0 {
            Principal::User(caller) => Ok(caller.clone()),
            Principal::Client {
                client_id,
                token_hash,
            } => {
                let owner = state
                    .sam
                    .store()
                    .read(|c| c.credential(credential))?
                    .map(|c| c.user_id)
                    .ok_or_else(|| ApiError::invalid_parameter("credentialID"))?;
                Ok(Caller {
                    user: owner,
                    user_name: client_actor(client_id),
                    token_hash: *token_hash,
                })
            }
        }
    }

    /// The user whose credentials `credentials/list` lists (spec §11.4 NOTE 1): a user token's
    /// own (then `userID` must be absent); for a client token, the user named by `userID` (a
    /// login name), which is then required. Blocking.
    pub fn list_user(&self, state: &AppState, user_id: Option<&str>) -> Result<UserId, ApiError> {
        match (&self.0, user_id) {
            (Principal::User(_), Some(_)) => {
                Err(ApiError::invalid("userID parameter MUST be null"))
            }
            (Principal::User(caller), None) => Ok(caller.user),
            (Principal::Client { .. }, None) => Err(ApiError::missing("string", "userID")),
            (Principal::Client { .. }, Some(name)) => state
                .sam
                .store()
                .read(|c| c.user_by_name(name))?
                .map(|u| u.id)
                .ok_or_else(|| ApiError::invalid_parameter("userID")),
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

/// The Bearer token of a request, present and well-formed but not yet checked. For the hot
/// handlers (signHash, authorize), which check it first thing inside their own blocking call:
/// one trip to the blocking pool per request instead of two (issue 6). No `Debug`: it holds the
/// token.
pub struct Bearer(String);

impl Bearer {
    /// A missing or malformed header is the spec's 400 (a bad token is 401, RFC 6750).
    fn of(req: &HttpRequest) -> Result<Bearer, ApiError> {
        bearer(req).map(Bearer).ok_or_else(ApiError::malformed)
    }

    /// Resolves the token to whom it speaks for (401 `invalid_token` / `expired_token`).
    /// Blocking.
    pub fn authenticate(&self, state: &AppState) -> Result<Authenticated, ApiError> {
        principal_of(state, &self.0).map(Authenticated)
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Bearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Bearer::of(req))
    }
}

/// Resolves an access token to whom it speaks for.
fn principal_of(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let token_hash = secret_hash(token.as_bytes());
    let found = state.sam.store().read(|c| c.token_and_user(&token_hash))?;
    let invalid = ApiError::Token {
        error: "invalid_token",
    };
    let Some((t, user)) = found else {
        return Err(invalid);
    };
    if t.kind != TokenKind::Access {
        return Err(invalid);
    }
    if !t.is_active(utc_now()) {
        return Err(ApiError::Token {
            error: "expired_token",
        });
    }
    match (user, t.user_id, t.client_id) {
        (Some(user), _, _) => Ok(Principal::User(Caller {
            user: user.id,
            user_name: user.name,
            token_hash,
        })),
        (None, None, Some(client_id)) => Ok(Principal::Client {
            client_id,
            token_hash,
        }),
        _ => Err(invalid),
    }
}

pub use sam::{LoginMethod, LoginRefusal};

/// Checks a user name and password with the login lockout (see [`sam::Sam::check_password`]).
/// Blocking.
pub fn authenticate(
    state: &AppState,
    name: &str,
    password: &SecretString,
    method: LoginMethod,
) -> Result<Result<User, LoginRefusal>, ApiError> {
    Ok(state.sam.check_password(name, password, method)?)
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
    let store = state.sam.store();
    let (user, parent) = match with {
        LoginWith::Password { user, password } => {
            // wrong password, unknown or locked user: one answer (Part I 7.1.2.5.1)
            match authenticate(state, &user, &password, LoginMethod::Basic)? {
                Ok(user) => (user, None),
                Err(_) => return Err(authentication_error()),
            }
        }
        LoginWith::Refresh(token) => {
            let hash = secret_hash(token.as_bytes());
            let found = store.read(|c| {
                let Some(t) = c.token(&hash)? else {
                    return Ok(None);
                };
                // auth/login refresh tokens only (an OAuth 2.0 one goes to oauth2/token)
                let (Some(user_id), None) = (t.user_id, &t.client_id) else {
                    return Ok(None);
                };
                Ok(c.user(&user_id)?.map(|u| (t, u)))
            })?;
            match found {
                Some((t, u)) if t.kind == TokenKind::Refresh && t.is_active(utc_now()) => {
                    (u, Some(hash.to_vec()))
                }
                _ => return Err(ApiError::invalid("Invalid refresh_token")),
            }
        }
    };
    let issued = issue_service_tokens(
        state,
        Some(&user),
        None,
        remember_me && parent.is_none(),
        parent,
    )?;
    store.write(|c| {
        c.append_audit(
            &NewAuditEvent::new(
                sam::AuditEvent::AuthLogin,
                &user.name,
                &user.name,
                "success",
            )
            .with_detail(json!({
                "method": if issued.from_refresh { "refresh_token" } else { "basic" },
                "rememberMe": issued.refresh_token.is_some(),
            })),
        )
    })?;
    Ok(LoginResponse {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        expires_in: issued.expires_in,
    })
}

/// Service tokens just issued (plaintext, shown once).
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    /// SHA-256 of the refresh token if one was issued, else of the access token: what a
    /// replayed authorization code revokes.
    pub grant_hash: Vec<u8>,
    /// The access token was minted by a refresh token.
    pub from_refresh: bool,
}

/// Stores a new access token (and a refresh token when `with_refresh`) for `user` (or, with
/// no user, for `client_id`: `client_credentials`); `parent` is the refresh token that mints
/// the access token, if any. Only digests are stored. Blocking.
pub fn issue_service_tokens(
    state: &AppState,
    user: Option<&User>,
    client_id: Option<&str>,
    with_refresh: bool,
    parent: Option<Vec<u8>>,
) -> Result<IssuedTokens, ApiError> {
    let now = utc_now();
    let access = format!("{ACCESS_PREFIX}{}", secrets::random_token(32)?);
    let refresh = if with_refresh {
        Some(format!("{REFRESH_PREFIX}{}", secrets::random_token(32)?))
    } else {
        None
    };
    let access_hash = secret_hash(access.as_bytes()).to_vec();
    let refresh_hash = refresh.as_ref().map(|r| secret_hash(r.as_bytes()).to_vec());
    let access_ttl = state.tokens.access_ttl;
    let refresh_ttl = state.tokens.refresh_ttl;
    let user_id = user.map(|u| u.id);
    let from_refresh = parent.is_some();
    state.sam.store().write(|c| {
        if let Some(hash) = &refresh_hash {
            c.insert_token(&NewToken {
                token_hash: hash.clone(),
                kind: TokenKind::Refresh,
                user_id,
                client_id: client_id.map(str::to_owned),
                scope: "service".into(),
                expires_at: now + refresh_ttl,
                parent_hash: None,
            })?;
        }
        c.insert_token(&NewToken {
            token_hash: access_hash.clone(),
            kind: TokenKind::Access,
            user_id,
            client_id: client_id.map(str::to_owned),
            scope: "service".into(),
            expires_at: now + access_ttl,
            parent_hash: refresh_hash.clone().or(parent),
        })
    })?;
    Ok(IssuedTokens {
        access_token: access,
        refresh_token: refresh,
        expires_in: u64::try_from(access_ttl.num_seconds()).unwrap_or(0),
        grant_hash: refresh_hash.unwrap_or(access_hash),
        from_refresh,
    })
}

/// Which stored tokens a caller may revoke.
type TokenFilter = Box<dyn Fn(&storage::Token) -> bool + Send>;

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
    let (actor, owns): (String, TokenFilter) = match principal {
        Principal::User(caller) => {
            let user = caller.user;
            (caller.user_name, Box::new(move |t| t.user_id == Some(user)))
        }
        Principal::Client { client_id, .. } => (
            client_actor(&client_id),
            Box::new(move |t| t.user_id.is_none() && t.client_id.as_deref() == Some(&client_id)),
        ),
    };
    blocking(move || {
        let hash = secret_hash(token.as_bytes());
        let revoked = state.sam.store().write(|c| {
            let Some(t) = c.token(&hash)?.filter(|t| owns(t)) else {
                return Ok(None);
            };
            let children = revoke_token_and_children(c, &t)?;
            c.append_audit(
                &NewAuditEvent::new(sam::AuditEvent::AuthRevoke, &actor, &actor, "success")
                    .with_detail(json!({ "kind": t.kind.as_str(), "alsoRevoked": children })),
            )?;
            Ok(Some(()))
        })?;
        revoked.ok_or_else(|| ApiError::invalid("Invalid string parameter token"))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes a token and, for a refresh token, the access tokens it minted (RFC 7009 §2.1);
/// returns how many of those were revoked.
pub fn revoke_token_and_children(
    c: &mut storage::Conn<'_>,
    t: &storage::Token,
) -> Result<usize, storage::StorageError> {
    c.revoke_token(&t.token_hash)?;
    if t.kind == TokenKind::Refresh {
        c.revoke_tokens_with_parent(&t.token_hash)
    } else {
        Ok(0)
    }
}
