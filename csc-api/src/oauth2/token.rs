//! `oauth2/token` and `oauth2/revoke` (spec §8.3.3-8.3.4, REFERENCE §5.12-5.13), with the
//! spec's error codes and descriptions; client authentication by `client_secret` in the body or
//! HTTP Basic (RFC 6749 §2.3.1). Client assertions (RFC 7521) are not supported.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, AUTHORIZATION};
use actix_web::{HttpRequest, HttpResponse, web};
use csc_types::OAuthTokenResponse;
use serde_json::json;
use storage::{
    CodeRedemption, NewAuditEvent, OAuthClient, OAuthCode, TokenKind, secret_hash, utc_now,
};

use super::{Params, ParamsError, digest_matches, s256, valid_code_verifier};
use crate::app::AppState;
use crate::auth::{basic_payload, client_actor, issue_service_tokens, revoke_token_and_children};
use crate::error::{ApiError, blocking};

/// `invalid_grant` with the spec's description.
fn invalid_grant(description: &'static str) -> ApiError {
    ApiError::bad("invalid_grant", description)
}

fn invalid_client_header() -> ApiError {
    ApiError::Csc {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: "Invalid authorization header".into(),
    }
}

/// The form body; a repeated parameter or a body that is not a form is `invalid_request`.
fn form(body: &[u8]) -> Result<Params, ApiError> {
    Params::parse(body).map_err(|e| match e {
        ParamsError::Repeated(name) => ApiError::invalid(format!("Invalid parameter {name}")),
        ParamsError::Malformed => ApiError::malformed(),
    })
}

/// The client's credentials as sent: from `Authorization: Basic` (RFC 6749 §2.3.1: both parts
/// form-urlencoded) or the body.
struct ClientCredentials {
    client_id: String,
    secret: Option<String>,
}

fn client_credentials(req: &HttpRequest, p: &Params) -> Result<ClientCredentials, ApiError> {
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
        return Ok(ClientCredentials {
            client_id: id,
            secret: Some(secret).filter(|s| !s.is_empty()),
        });
    }
    let client_id = p
        .get("client_id")
        .ok_or_else(|| ApiError::invalid("Missing parameter client_id"))?;
    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        secret: p.get("client_secret").map(str::to_owned),
    })
}

/// Authenticates the client (blocking): known, and a confidential client's secret right
/// (compared as SHA-256 digests in constant time). Failures are audited as
/// `oauth2.client_auth`.
fn authenticate_client(
    state: &AppState,
    creds: &ClientCredentials,
) -> Result<OAuthClient, ApiError> {
    let store = state.sam.store();
    let found = store.read(|c| c.oauth_client(&creds.client_id))?;
    let refusal = match (&found, &creds.secret) {
        (None, _) => Some(ApiError::invalid_parameter("client_id")),
        (Some(c), None) if c.is_confidential() => Some(ApiError::Csc {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_request",
            description: "Client authorization required".into(),
        }),
        (Some(c), Some(secret)) => match &c.secret_hash {
            Some(stored) if digest_matches(secret, stored) => None,
            // a wrong secret, or a secret for a public client
            _ => Some(ApiError::invalid_parameter("client_secret")),
        },
        (Some(_), None) => None,
    };
    match (found, refusal) {
        (Some(client), None) => Ok(client),
        (_, refusal) => {
            let actor: String = creds.client_id.chars().take(64).collect();
            store.write(|c| {
                c.append_audit(
                    &NewAuditEvent::new(
                        sam::AuditEvent::OAuth2ClientAuth,
                        client_actor(&actor),
                        &actor,
                        "refused",
                    )
                    .with_detail(json!({ "secretGiven": creds.secret.is_some() })),
                )
            })?;
            Err(refusal.unwrap_or_else(|| ApiError::invalid_parameter("client_id")))
        }
    }
}

/// An answer of the token endpoint: JSON, never cached (RFC 6749 §5.1).
fn token_response(body: &OAuthTokenResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// Whether S256(`verifier`) is `challenge`, compared in constant time.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let computed = s256(verifier);
    computed.len() == challenge.len()
        && openssl::memcmp::eq(computed.as_bytes(), challenge.as_bytes())
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
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p = form(&body)?;
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
        let client = authenticate_client(&state, &creds)?;
        match grant {
            Grant::AuthorizationCode => exchange_code(&state, &client, &p),
            Grant::ClientCredentials => client_token(&state, &client),
            Grant::RefreshToken => refresh(&state, &client, &p),
        }
    })
    .await?;
    Ok(token_response(&answer))
}

/// Audits a token issued at the token endpoint.
fn audit_issue(
    state: &AppState,
    actor: &str,
    client: &OAuthClient,
    grant: &str,
    scope: &str,
) -> Result<(), ApiError> {
    state.sam.store().write(|c| {
        c.append_audit(
            &NewAuditEvent::new(
                sam::AuditEvent::OAuth2Token,
                actor,
                &client.client_id,
                "success",
            )
            .with_detail(json!({ "grant": grant, "scope": scope })),
        )
    })?;
    Ok(())
}

/// `grant_type=authorization_code`: redeems the code once (one conditional update), then
/// checks it belongs to this client, is unexpired, that `redirect_uri` repeats the
/// authorization request's, and the PKCE verifier (RFC 7636 §4.6). Any presentation uses the
/// code up; a code presented again revokes what it was exchanged for (RFC 6749 §4.1.2).
fn exchange_code(
    state: &AppState,
    client: &OAuthClient,
    p: &Params,
) -> Result<OAuthTokenResponse, ApiError> {
    let code = p.get("code").unwrap_or_default();
    let code_hash = secret_hash(code.as_bytes());
    let store = state.sam.store();
    let refuse = |c: &OAuthCode, reason: &str, err: ApiError| -> Result<ApiError, ApiError> {
        store.write(|conn| {
            conn.append_audit(
                &NewAuditEvent::new(
                    sam::AuditEvent::OAuth2Token,
                    client_actor(&client.client_id),
                    &client.client_id,
                    "refused",
                )
                .with_detail(json!({
                    "grant": "authorization_code", "scope": c.scope, "reason": reason,
                })),
            )
        })?;
        Ok(err)
    };
    let redeemed = match store.write(|c| c.redeem_oauth_code(&code_hash))? {
        CodeRedemption::Unknown => return Err(invalid_grant("Invalid parameter code")),
        CodeRedemption::AlreadyUsed(used) => {
            // a replay: whatever the code bought dies with it
            let revoked = store.write(|c| {
                let Some(issued) = &used.issued_hash else {
                    return Ok(false);
                };
                if let Some(t) = c.token(issued)? {
                    revoke_token_and_children(c, &t)?;
                    return Ok(true);
                }
                c.revoke_sad(issued)
            })?;
            tracing::warn!(client = %client.client_id, "an authorization code was presented again; revoking what it was exchanged for");
            return Err(refuse(
                &used,
                if revoked {
                    "code used twice: its tokens were revoked"
                } else {
                    "code used twice"
                },
                invalid_grant("Authorization code is invalid or expired"),
            )?);
        }
        CodeRedemption::Redeemed(c) => c,
    };
    if redeemed.client_id != client.client_id {
        return Err(refuse(
            &redeemed,
            "code of another client",
            invalid_grant("Invalid parameter code"),
        )?);
    }
    if redeemed.expires_at <= utc_now() {
        return Err(refuse(
            &redeemed,
            "code expired",
            invalid_grant("Authorization code is invalid or expired"),
        )?);
    }
    let redirect_ok = match p.get("redirect_uri") {
        Some(r) => r == redeemed.redirect_uri,
        None => !redeemed.redirect_uri_given,
    };
    if !redirect_ok {
        return Err(refuse(
            &redeemed,
            "redirect_uri mismatch",
            invalid_grant(
                "redirect_uri parameter does not match redirect_uri parameter of authorization request",
            ),
        )?);
    }
    if let Some(challenge) = &redeemed.code_challenge {
        let verified = match p.get("code_verifier") {
            None => Err("Missing parameter code_verifier"),
            Some(v) if valid_code_verifier(v) && pkce_matches(v, challenge) => Ok(()),
            Some(_) => Err("Invalid parameter code_verifier"),
        };
        if let Err(description) = verified {
            return Err(refuse(
                &redeemed,
                "PKCE verification failed",
                invalid_grant(description),
            )?);
        }
    }

    let user = store
        .read(|c| c.user(&redeemed.user_id))?
        .ok_or_else(|| invalid_grant("Invalid parameter code"))?;
    if redeemed.scope == "credential" {
        let issued = state.sam.issue_sad_for_code(&redeemed)?;
        audit_issue(
            state,
            &user.name,
            client,
            "authorization_code",
            "credential",
        )?;
        return Ok(OAuthTokenResponse {
            access_token: issued.sad,
            refresh_token: None,
            token_type: "SAD".into(),
            expires_in: Some(issued.expires_in),
        });
    }
    let issued = issue_service_tokens(
        state,
        Some(&user),
        Some(&client.client_id),
        redeemed.remember,
        None,
    )?;
    store.write(|c| c.set_oauth_code_issued(&code_hash, &issued.grant_hash))?;
    audit_issue(state, &user.name, client, "authorization_code", "service")?;
    Ok(OAuthTokenResponse {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        token_type: "Bearer".into(),
        expires_in: Some(issued.expires_in),
    })
}

/// `grant_type=client_credentials` (confidential clients only, RFC 6749 §4.4): a service token
/// of the client itself, naming no user (see [`crate::auth`] for what it may do). No refresh
/// token (§4.4.3).
fn client_token(state: &AppState, client: &OAuthClient) -> Result<OAuthTokenResponse, ApiError> {
    if !client.is_confidential() {
        return Err(ApiError::bad(
            "unauthorized_client",
            "The client is not allowed to use client_credentials",
        ));
    }
    let issued = issue_service_tokens(state, None, Some(&client.client_id), false, None)?;
    audit_issue(
        state,
        &client_actor(&client.client_id),
        client,
        "client_credentials",
        "service",
    )?;
    Ok(OAuthTokenResponse {
        access_token: issued.access_token,
        refresh_token: None,
        token_type: "Bearer".into(),
        expires_in: Some(issued.expires_in),
    })
}

/// `grant_type=refresh_token`: a refresh token of this client mints a new access token (the
/// refresh token is kept: no rotation).
fn refresh(
    state: &AppState,
    client: &OAuthClient,
    p: &Params,
) -> Result<OAuthTokenResponse, ApiError> {
    let hash = secret_hash(p.get("refresh_token").unwrap_or_default().as_bytes());
    let found = state.sam.store().read(|c| {
        let Some(t) = c.token(&hash)? else {
            return Ok(None);
        };
        let user = match t.user_id {
            Some(id) => c.user(&id)?,
            None => None,
        };
        Ok(Some((t, user)))
    })?;
    let (t, user) = match found {
        Some((t, Some(user)))
            if t.kind == TokenKind::Refresh
                && !t.revoked
                && t.client_id.as_deref() == Some(&client.client_id) =>
        {
            (t, user)
        }
        _ => return Err(invalid_grant("Invalid parameter refresh_token")),
    };
    if t.expires_at <= utc_now() {
        return Err(invalid_grant("Refresh token expired"));
    }
    let issued = issue_service_tokens(
        state,
        Some(&user),
        Some(&client.client_id),
        false,
        Some(hash.to_vec()),
    )?;
    audit_issue(state, &user.name, client, "refresh_token", "service")?;
    Ok(OAuthTokenResponse {
        access_token: issued.access_token,
        refresh_token: None,
        token_type: "Bearer".into(),
        expires_in: Some(issued.expires_in),
    })
}

/// `POST oauth2/revoke` (RFC 7009): an access or refresh token issued to this client (a
/// refresh token takes the access tokens it minted with it), or a SAD (a credential-scope
/// token: whoever holds one may end it early). 204.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p = form(&body)?;
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
        let client = authenticate_client(&state, &creds)?;
        let hash = secret_hash(token.as_bytes());
        let actor = client_actor(&client.client_id);
        let revoked = state.sam.store().write(|c| {
            let what = match c.token(&hash)? {
                Some(t) if t.client_id.as_deref() == Some(&client.client_id) => {
                    let children = revoke_token_and_children(c, &t)?;
                    Some(json!({ "kind": t.kind.as_str(), "alsoRevoked": children }))
                }
                Some(_) => None,
                None => match c.sad(&hash)? {
                    Some(_) => {
                        c.revoke_sad(&hash)?;
                        Some(json!({ "kind": "SAD" }))
                    }
                    None => None,
                },
            };
            let Some(detail) = what else {
                return Ok(false);
            };
            c.append_audit(
                &NewAuditEvent::new(
                    sam::AuditEvent::OAuth2Revoke,
                    &actor,
                    &client.client_id,
                    "success",
                )
                .with_detail(detail),
            )?;
            Ok(true)
        })?;
        if revoked {
            Ok(())
        } else {
            Err(ApiError::invalid("Invalid string parameter token"))
        }
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
