//! `oauth2/token` and `oauth2/revoke` (spec §8.3.3-8.3.4), with the
//! spec's error codes and descriptions; client authentication by `client_secret` in the body or
//! HTTP Basic (RFC 6749 §2.3.1). Client assertions (RFC 7521) are not supported.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, AUTHORIZATION};
use actix_web::{HttpRequest, HttpResponse, web};
use csc_types::{OAuthCredentialTokenResponse, OAuthTokenResponse};
use sam::{ClientAuth, CodeGrant, IssuedTokens};

use super::{FormBody, Params, ParamsError};
use crate::app::AppState;
use crate::auth::basic_payload;
use crate::error::{ApiError, blocking};

fn invalid_client_header() -> ApiError {
    ApiError::Csc {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: "Invalid authorization header".into(),
    }
}

/// The form body; a repeated parameter or a body that is not a form is `invalid_request`.
pub(super) fn form(body: &[u8]) -> Result<Params, ApiError> {
    Params::parse(body).map_err(|e| match e {
        ParamsError::Repeated(name) => ApiError::invalid(format!("Invalid parameter {name}")),
        ParamsError::Malformed => ApiError::malformed(),
    })
}

/// The client's credentials as sent: from `Authorization: Basic` (RFC 6749 §2.3.1: both parts
/// form-urlencoded) or the body.
pub(super) fn client_credentials(req: &HttpRequest, p: &Params) -> Result<ClientAuth, ApiError> {
    if p.get("client_assertion").is_some() || p.get("client_assertion_type").is_some() {
        return Err(ApiError::invalid("Invalid parameter client_assertion"));
    }
    if let Some(value) = req.headers().get(AUTHORIZATION) {
        let decoded = basic_payload(value).ok_or_else(invalid_client_header)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client_header)?;
        let unescape = |s: &str| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                .ok()
                .and_then(|mut v| v.pop())
                .map(|(_, v)| v)
                .ok_or_else(invalid_client_header)
        };
        let (id, secret) = (unescape(id)?, unescape(secret)?);
        if id.is_empty() {
            return Err(invalid_client_header());
        }
        if p.get("client_id").is_some_and(|b| b != id) {
            return Err(ApiError::invalid_parameter("client_id"));
        }
        if p.get("client_secret").is_some() {
            // two client authentication methods at once (RFC 6749 §2.3)
            return Err(ApiError::invalid_parameter("client_secret"));
        }
        return Ok(ClientAuth {
            client_id: id,
            secret: Some(secret).filter(|s| !s.is_empty()),
        });
    }
    let client_id = p
        .get("client_id")
        .ok_or_else(|| ApiError::invalid("Missing parameter client_id"))?;
    Ok(ClientAuth {
        client_id: client_id.to_owned(),
        secret: p.get("client_secret").map(str::to_owned),
    })
}

/// What the token endpoint answers.
enum Answer {
    Token(OAuthTokenResponse),
    Credential(OAuthCredentialTokenResponse),
}

/// A JSON answer that is never cached (`Cache-Control: no-store`, `Pragma: no-cache`): the
/// token endpoint's (200, RFC 6749 §5.1) and the pushed authorization endpoint's (201, RFC 9126
/// §2.2).
pub(crate) fn no_store_json(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

/// `POST oauth2/token`.
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: FormBody,
) -> Result<HttpResponse, ApiError> {
    let p = form(&body.0)?;
    let creds = client_credentials(&req, &p)?;
    let grant = match p.get("grant_type") {
        None => return Err(ApiError::invalid("Missing parameter grant_type")),
        Some("authorization_code") => Grant::AuthorizationCode,
        Some("client_credentials") => Grant::ClientCredentials,
        Some("refresh_token") => Grant::RefreshToken,
        Some(_) => return Err(ApiError::invalid_parameter("grant_type")),
    };
    match grant {
        Grant::AuthorizationCode if p.get("code").is_none() => {
            return Err(ApiError::invalid("Missing parameter code"));
        }
        Grant::RefreshToken if p.get("refresh_token").is_none() => {
            return Err(ApiError::invalid("Missing parameter refresh_token"));
        }
        Grant::ClientCredentials if p.get("scope").is_some_and(|s| s != "service") => {
            return Err(ApiError::bad(
                "invalid_scope",
                "client_credentials is for scope service only",
            ));
        }
        _ => {}
    }
    let answer = blocking(move || {
        let sam = &state.sam;
        let client = sam.authenticate_client(&creds)?;
        Ok(match grant {
            Grant::AuthorizationCode => {
                match sam.exchange_code(
                    &state.tokens,
                    &client,
                    p.get("code").unwrap_or_default(),
                    p.get("redirect_uri"),
                    p.get("code_verifier"),
                )? {
                    CodeGrant::Sad(issued) => Answer::Token(OAuthTokenResponse {
                        access_token: issued.sad,
                        refresh_token: None,
                        token_type: "SAD".into(),
                        expires_in: Some(issued.expires_in),
                    }),
                    // CSC v2 §8.4: a Bearer credential token, the details echoed (RFC 9396 §7)
                    CodeGrant::Authorized {
                        sad,
                        credential,
                        authorization_details,
                    } => Answer::Credential(OAuthCredentialTokenResponse {
                        token: OAuthTokenResponse {
                            access_token: sad.sad,
                            refresh_token: None,
                            token_type: "Bearer".into(),
                            expires_in: Some(sad.expires_in),
                        },
                        authorization_details: serde_json::from_str(&authorization_details)
                            .map_err(|e| {
                                ApiError::Internal(format!("stored authorization_details: {e}"))
                            })?,
                        credential_id: credential.to_string(),
                    }),
                    CodeGrant::Service(issued) => Answer::Token(bearer(issued)),
                }
            }
            Grant::ClientCredentials => Answer::Token(bearer(
                sam.client_credentials_token(&state.tokens, &client)?,
            )),
            Grant::RefreshToken => Answer::Token(bearer(sam.refresh_oauth_token(
                &state.tokens,
                &client,
                p.get("refresh_token").unwrap_or_default(),
            )?)),
        })
    })
    .await?;
    Ok(match answer {
        Answer::Token(t) => no_store_json(StatusCode::OK, &t),
        Answer::Credential(t) => no_store_json(StatusCode::OK, &t),
    })
}

/// Service tokens as a `Bearer` answer.
fn bearer(issued: IssuedTokens) -> OAuthTokenResponse {
    OAuthTokenResponse {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        token_type: "Bearer".into(),
        expires_in: Some(issued.expires_in),
    }
}

/// `POST oauth2/revoke` (RFC 7009): an access or refresh token issued to this client (a
/// refresh token takes the access tokens it minted with it), or a SAD (a credential-scope
/// token: whoever holds one may end it early). 204.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: FormBody,
) -> Result<HttpResponse, ApiError> {
    let p = form(&body.0)?;
    let creds = client_credentials(&req, &p)?;
    let token = p
        .get("token")
        .ok_or_else(|| ApiError::invalid("Missing parameter token"))?
        .to_owned();
    match p.get("token_type_hint") {
        None | Some("access_token" | "refresh_token") => {}
        Some(_) => return Err(ApiError::invalid_parameter("token_type_hint")),
    }
    blocking(move || {
        let client = state.sam.authenticate_client(&creds)?;
        Ok(state.sam.revoke_oauth_token(&client, &token)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
