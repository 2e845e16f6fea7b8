//! The token endpoint (`oauth2/token`, spec §8.3.3; RFC 6749 §4.1.3, §4.4, §6) and
//! `oauth2/revoke` (RFC 7009) for an authenticated client ([`Sam::authenticate_client`]).

use serde_json::json;
use storage::{
    CodeRedemption, NewAuditEvent, OAuthClient, OAuthCode, TokenKind, secret_hash, utc_now,
};

use super::OAuthError;
use super::pkce::{pkce_matches, valid_code_verifier};
use crate::activation::IssuedSad;
use crate::tokens::{
    IssuedTokens, TokenGrant, TokenPolicy, client_actor, revoke_token_and_children,
};
use crate::{Sam, SamError};

/// What an authorization code was exchanged for.
#[derive(Debug)]
pub enum CodeGrant {
    /// Scope `credential`: the SAD the signer approved (`token_type` "SAD").
    Sad(IssuedSad),
    /// Scope `service`: a Bearer access token (and a refresh token if the signer asked to stay
    /// signed in).
    Service(IssuedTokens),
}

/// The `oauth2.token` success record.
fn issued_event(actor: &str, client: &OAuthClient, grant: &str, scope: &str) -> NewAuditEvent {
    NewAuditEvent::new(
        crate::AuditEvent::OAuth2Token,
        actor,
        &client.client_id,
        "success",
    )
    .with_detail(json!({ "grant": grant, "scope": scope }))
}

impl Sam {
    /// `grant_type=authorization_code`: redeems the code once (one conditional update), then
    /// checks it belongs to this client, is unexpired, that `redirect_uri` repeats the
    /// authorization request's, and the PKCE verifier (RFC 7636 §4.6). Any presentation uses the
    /// code up; a code presented again revokes what it was exchanged for (RFC 6749 §4.1.2).
    /// Refusals of a known code are audited as `oauth2.token`; so is the success.
    pub fn exchange_code(
        &self,
        policy: &TokenPolicy,
        client: &OAuthClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<CodeGrant, SamError> {
        let code_hash = secret_hash(code.as_bytes());
        let refuse = |c: &OAuthCode, reason: &str, err: OAuthError| -> SamError {
            let event = NewAuditEvent::new(
                crate::AuditEvent::OAuth2Token,
                client_actor(&client.client_id),
                &client.client_id,
                "refused",
            )
            .with_detail(json!({
                "grant": "authorization_code", "scope": c.scope, "reason": reason,
            }));
            match self.store.write(|conn| conn.append_audit(&event)) {
                Ok(_) => err.into(),
                Err(e) => e.into(),
            }
        };
        let redeemed = match self.store.write(|c| c.redeem_oauth_code(&code_hash))? {
            CodeRedemption::Unknown => return Err(OAuthError::InvalidCode.into()),
            CodeRedemption::AlreadyUsed(used) => {
                // a replay: whatever the code bought dies with it
                let revoked = self.store.write(|c| {
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
                    OAuthError::CodeUsedOrExpired,
                ));
            }
            CodeRedemption::Redeemed(c) => c,
        };
        if redeemed.client_id != client.client_id {
            return Err(refuse(
                &redeemed,
                "code of another client",
                OAuthError::InvalidCode,
            ));
        }
        if redeemed.expires_at <= utc_now() {
            return Err(refuse(
                &redeemed,
                "code expired",
                OAuthError::CodeUsedOrExpired,
            ));
        }
        let redirect_ok = match redirect_uri {
            Some(r) => r == redeemed.redirect_uri,
            None => !redeemed.redirect_uri_given,
        };
        if !redirect_ok {
            return Err(refuse(
                &redeemed,
                "redirect_uri mismatch",
                OAuthError::RedirectUriMismatch,
            ));
        }
        if let Some(challenge) = &redeemed.code_challenge {
            let verified = match code_verifier {
                None => Err(OAuthError::MissingCodeVerifier),
                Some(v) if valid_code_verifier(v) && pkce_matches(v, challenge) => Ok(()),
                Some(_) => Err(OAuthError::InvalidCodeVerifier),
            };
            if let Err(e) = verified {
                return Err(refuse(&redeemed, "PKCE verification failed", e));
            }
        }

        let user = self
            .store
            .read(|c| c.user(&redeemed.user_id))?
            .ok_or(OAuthError::InvalidCode)?;
        if redeemed.scope == "credential" {
            let issued = self.issue_sad_for_code(&redeemed)?;
            self.store.write(|c| {
                c.append_audit(&issued_event(
                    &user.name,
                    client,
                    "authorization_code",
                    "credential",
                ))
            })?;
            return Ok(CodeGrant::Sad(issued));
        }
        let issued = self.issue_service_tokens(
            policy,
            TokenGrant {
                user: Some(user.id),
                client_id: Some(&client.client_id),
                with_refresh: redeemed.remember,
                parent: None,
            },
            |c, issued| {
                c.set_oauth_code_issued(&code_hash, &issued.grant_hash)?;
                c.append_audit(&issued_event(
                    &user.name,
                    client,
                    "authorization_code",
                    "service",
                ))
            },
        )?;
        Ok(CodeGrant::Service(issued))
    }

    /// `grant_type=client_credentials` (confidential clients only, RFC 6749 §4.4; a public
    /// client is [`OAuthError::UnauthorizedClient`]): a service token of the client itself,
    /// naming no user. No refresh token (§4.4.3). Audited as `oauth2.token`.
    pub fn client_credentials_token(
        &self,
        policy: &TokenPolicy,
        client: &OAuthClient,
    ) -> Result<IssuedTokens, SamError> {
        if !client.is_confidential() {
            return Err(OAuthError::UnauthorizedClient.into());
        }
        self.issue_service_tokens(
            policy,
            TokenGrant {
                user: None,
                client_id: Some(&client.client_id),
                with_refresh: false,
                parent: None,
            },
            |c, _| {
                c.append_audit(&issued_event(
                    &client_actor(&client.client_id),
                    client,
                    "client_credentials",
                    "service",
                ))
            },
        )
    }

    /// `grant_type=refresh_token`: an unrevoked refresh token of this client mints a new access
    /// token (the refresh token is kept: no rotation). Unknown, revoked, another client's or
    /// not a refresh token: [`OAuthError::InvalidRefreshToken`]; expired:
    /// [`OAuthError::RefreshTokenExpired`]. Audited as `oauth2.token`.
    pub fn refresh_oauth_token(
        &self,
        policy: &TokenPolicy,
        client: &OAuthClient,
        refresh_token: &str,
    ) -> Result<IssuedTokens, SamError> {
        let hash = secret_hash(refresh_token.as_bytes());
        let (t, user) = match self.store.read(|c| c.token_and_user(&hash))? {
            Some((t, Some(user)))
                if t.kind == TokenKind::Refresh
                    && !t.revoked
                    && t.client_id.as_deref() == Some(&client.client_id) =>
            {
                (t, user)
            }
            _ => return Err(OAuthError::InvalidRefreshToken.into()),
        };
        if t.expires_at <= utc_now() {
            return Err(OAuthError::RefreshTokenExpired.into());
        }
        self.issue_service_tokens(
            policy,
            TokenGrant {
                user: Some(user.id),
                client_id: Some(&client.client_id),
                with_refresh: false,
                parent: Some(&hash),
            },
            |c, _| {
                c.append_audit(&issued_event(
                    &user.name,
                    client,
                    "refresh_token",
                    "service",
                ))
            },
        )
    }

    /// `oauth2/revoke` (RFC 7009): an access or refresh token issued to this client (a refresh
    /// token takes the access tokens it minted with it), or a SAD (a credential-scope token:
    /// whoever holds one may end it early). Anything else is [`SamError::UnknownToken`].
    /// Audited as `oauth2.revoke`.
    pub fn revoke_oauth_token(&self, client: &OAuthClient, token: &str) -> Result<(), SamError> {
        let hash = secret_hash(token.as_bytes());
        let actor = client_actor(&client.client_id);
        let revoked = self.store.write(|c| {
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
                    crate::AuditEvent::OAuth2Revoke,
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
            Err(SamError::UnknownToken)
        }
    }
}
