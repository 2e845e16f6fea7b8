//! Service authorization (spec §8.1, §11.2-11.3): `auth/login` with HTTP Basic or a refresh
//! token, `auth/revoke`, and the Bearer extractor every other method uses. Tokens are opaque
//! random strings; the database holds only their SHA-256, so revocation works on every instance
//! sharing it and a copy of the database yields no usable token (crates.io's model).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_types::LoginResponse;
use sam::{Caller, secrets};
use secrecy::SecretString;
use serde_json::json;
use storage::{NewAuditEvent, NewToken, TokenKind, secret_hash, utc_now};

use crate::app::AppState;
use crate::body::Body;
use crate::error::{ApiError, blocking};

const ACCESS_PREFIX: &str = "csc_at_";
const REFRESH_PREFIX: &str = "csc_rt_";

/// The authenticated caller of a Bearer-protected method.
pub struct Authenticated(pub Caller);

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
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            // a missing or malformed header is the spec's 400; a bad token is 401 (RFC 6750)
            let token = token.ok_or_else(ApiError::malformed)?;
            let state = state.ok_or_else(|| ApiError::Internal("no app state".into()))?;
            blocking(move || caller_of(&state, &token))
                .await
                .map(Authenticated)
        })
    }
}

/// Resolves an access token to its caller.
fn caller_of(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let token_hash = secret_hash(token.as_bytes());
    let found = state.sam.store().read(|c| {
        let Some(t) = c.token(&token_hash)? else {
            return Ok(None);
        };
        let user = match &t.user_id {
            Some(id) => c.user(id)?,
            None => None,
        };
        Ok(Some((t, user)))
    })?;
    let Some((t, Some(user))) = found else {
        return Err(ApiError::Token {
            error: "invalid_token",
        });
    };
    if t.kind != TokenKind::Access {
        return Err(ApiError::Token {
            error: "invalid_token",
        });
    }
    if !t.is_active(utc_now()) {
        return Err(ApiError::Token {
            error: "expired_token",
        });
    }
    Ok(Caller {
        user: user.id,
        user_name: user.name,
        token_hash,
    })
}

/// A verifier that no password matches, so an unknown user costs as much as a wrong password.
fn dummy_verifier() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        secrets::random_token(32)
            .and_then(|p| secrets::hash_secret(&SecretString::from(p)))
            .unwrap_or_default()
    })
}

enum LoginWith {
    Password {
        user: String,
        password: SecretString,
    },
    Refresh(String),
}

fn login_credentials(req: &HttpRequest, body: &Body) -> Result<LoginWith, ApiError> {
    match req.headers().get(AUTHORIZATION) {
        Some(value) => {
            let malformed = || ApiError::Csc {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_request",
                description: "Malformed authentication parameter.".into(),
            };
            let value = value.to_str().map_err(|_| malformed())?;
            let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(malformed());
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(malformed)?;
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
            let found = store.read(|c| c.user_by_name(&user))?;
            let verifier = found
                .as_ref()
                .map_or(dummy_verifier(), |u| u.password_hash.as_str());
            let ok = secrets::verify_secret(&password, verifier) && found.is_some();
            let Some(found) = found.filter(|_| ok) else {
                store.write(|c| {
                    c.append_audit(
                        &NewAuditEvent::new("auth.login", &user, &user, "refused")
                            .with_detail(json!({ "method": "basic" })),
                    )
                })?;
                return Err(authentication_error());
            };
            (found, None)
        }
        LoginWith::Refresh(token) => {
            let hash = secret_hash(token.as_bytes());
            let found = store.read(|c| {
                let Some(t) = c.token(&hash)? else {
                    return Ok(None);
                };
                let Some(user_id) = t.user_id else {
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
    let now = utc_now();
    let access = format!("{ACCESS_PREFIX}{}", secrets::random_token(32)?);
    let refresh = if remember_me && parent.is_none() {
        Some(format!("{REFRESH_PREFIX}{}", secrets::random_token(32)?))
    } else {
        None
    };
    let refresh_hash = refresh.as_ref().map(|r| secret_hash(r.as_bytes()).to_vec());
    let access_ttl = state.tokens.access_ttl;
    let refresh_ttl = state.tokens.refresh_ttl;
    store.write(|c| {
        if let Some(hash) = &refresh_hash {
            c.insert_token(&NewToken {
                token_hash: hash.clone(),
                kind: TokenKind::Refresh,
                user_id: Some(user.id),
                client_id: None,
                scope: "service".into(),
                expires_at: now + refresh_ttl,
                parent_hash: None,
            })?;
        }
        c.insert_token(&NewToken {
            token_hash: secret_hash(access.as_bytes()).to_vec(),
            kind: TokenKind::Access,
            user_id: Some(user.id),
            client_id: None,
            scope: "service".into(),
            expires_at: now + access_ttl,
            parent_hash: refresh_hash.clone().or_else(|| parent.clone()),
        })?;
        c.append_audit(
            &NewAuditEvent::new("auth.login", &user.name, &user.name, "success").with_detail(
                json!({
                    "method": if parent.is_some() { "refresh_token" } else { "basic" },
                    "rememberMe": refresh.is_some(),
                }),
            ),
        )
    })?;
    Ok(LoginResponse {
        access_token: access,
        refresh_token: refresh,
        expires_in: u64::try_from(access_ttl.num_seconds()).unwrap_or(0),
    })
}

/// `POST /csc/v1/auth/revoke` (spec §11.3): 204; revoking a refresh token also revokes the
/// access tokens it minted.
pub async fn revoke(
    Authenticated(caller): Authenticated,
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
    blocking(move || {
        let hash = secret_hash(token.as_bytes());
        let store = state.sam.store();
        let revoked = store.write(|c| {
            let Some(t) = c.token(&hash)?.filter(|t| t.user_id == Some(caller.user)) else {
                return Ok(None);
            };
            c.revoke_token(&hash)?;
            let children = if t.kind == TokenKind::Refresh {
                c.revoke_tokens_with_parent(&hash)?
            } else {
                0
            };
            c.append_audit(
                &NewAuditEvent::new(
                    "auth.revoke",
                    &caller.user_name,
                    &caller.user_name,
                    "success",
                )
                .with_detail(json!({ "kind": t.kind.as_str(), "alsoRevoked": children })),
            )?;
            Ok(Some(()))
        })?;
        revoked.ok_or_else(|| ApiError::invalid("Invalid string parameter token"))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
