//! The token endpoint (`oauth2/token`, spec §8.3.3; RFC 6749 §4.1.3, §4.4, §6) and
//! `oauth2/revoke` (RFC 7009) for an authenticated client ([`Sam::authenticate_client`]).

use serde_json::json;
use storage::{
    CodeRedemption, Conn, NewAuditEvent, OAuthClient, OAuthCode, StorageError, secret_hash, utc_now,
};

use super::OAuthError;
use super::grant::details_digest;
use super::pkce::{pkce_matches, valid_code_verifier};
use crate::activation::{IssuedSad, SAD_BYTES};
use crate::secrets::random_token;
use crate::tokens::{
    IssuedTokens, Minted, Refreshed, TokenGrant, TokenPolicy, TokenValues, client_actor,
    revoke_token_and_children,
};
use crate::{Sam, SamError};

/// What an authorization code was exchanged for.
#[derive(Debug)]
pub enum CodeGrant {
    /// Scope `credential`: the SAD the signer approved (`token_type` "SAD").
    Sad(IssuedSad),
    /// Scope `credential` from a request with `authorization_details` (RFC 9396, CSC v2 §8.4):
    /// the SAD the signer approved, used as a `Bearer` credential token (the v2 `signHash`
    /// takes it as the SAD), with the credential and the approved details to echo.
    Authorized {
        sad: IssuedSad,
        credential: storage::CredentialId,
        /// The approved `authorization_details` (a JSON array).
        authorization_details: String,
    },
    /// Scope `service`: a Bearer access token (and a refresh token if the signer asked to stay
    /// signed in).
    Service(IssuedTokens),
}

/// The signer of a code, by name, for the success record (the code's user id if the row is
/// gone, which the issuing checks have refused already).
fn signer_name(c: &mut Conn<'_>, code: &OAuthCode) -> Result<String, StorageError> {
    Ok(c.user(&code.user_id)?
        .map_or_else(|| code.user_id.to_string(), |u| u.name))
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

/// The `oauth2.token` refusal record of a presented code.
fn code_refusal(client: &OAuthClient, code: &OAuthCode, reason: &str) -> NewAuditEvent {
    NewAuditEvent::new(
        crate::AuditEvent::OAuth2Token,
        client_actor(&client.client_id),
        &client.client_id,
        "refused",
    )
    .with_detail(json!({
        "grant": "authorization_code", "scope": code.scope, "reason": reason,
    }))
}

/// The bindings of a code just redeemed (RFC 6749 §4.1.3, RFC 7636 §4.6): this client's, not
/// expired at `now`, `redirect_uri` repeating the authorization request's, the PKCE verifier.
/// A failure: the audit reason and the refusal.
fn check_code(
    code: &OAuthCode,
    client: &OAuthClient,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: chrono::NaiveDateTime,
) -> Result<(), (&'static str, OAuthError)> {
    if code.client_id != client.client_id {
        return Err(("code of another client", OAuthError::InvalidCode));
    }
    if code.expires_at <= now {
        return Err(("code expired", OAuthError::CodeUsedOrExpired));
    }
    let redirect_ok = match redirect_uri {
        Some(r) => r == code.redirect_uri,
        None => !code.redirect_uri_given,
    };
    if !redirect_ok {
        return Err(("redirect_uri mismatch", OAuthError::RedirectUriMismatch));
    }
    if let Some(challenge) = &code.code_challenge {
        match code_verifier {
            None => return Err(("PKCE verification failed", OAuthError::MissingCodeVerifier)),
            Some(v) if valid_code_verifier(v) && pkce_matches(v, challenge) => {}
            Some(_) => return Err(("PKCE verification failed", OAuthError::InvalidCodeVerifier)),
        }
    }
    Ok(())
}

/// Revokes what a code bought (its `issued_hash`): the token and its whole grant (the access
/// tokens it minted, the refresh tokens rotated from it and theirs), or the SAD. `true` iff
/// something was found to revoke.
fn revoke_what_the_code_bought(c: &mut Conn<'_>, code: &OAuthCode) -> Result<bool, StorageError> {
    let Some(issued) = &code.issued_hash else {
        return Ok(false);
    };
    if let Some(t) = c.token(issued)? {
        revoke_token_and_children(c, &t)?;
        return Ok(true);
    }
    c.revoke_sad(issued)?;
    Ok(c.sad(issued)?.is_some())
}

impl Sam {
    /// `grant_type=authorization_code`: in ONE transaction, redeems the code (one conditional
    /// update: any presentation uses it up), checks that it belongs to this client, is
    /// unexpired, that `redirect_uri` repeats the authorization request's and the PKCE verifier
    /// (RFC 7636 §4.6), issues what it buys and records that on the code. A code presented
    /// again revokes what it was exchanged for (RFC 6749 §4.1.2). Because the redemption and
    /// the issuing commit together, a concurrent replay either finds the code unused (and only
    /// one redemption wins the update) or finds it used with what it bought already recorded,
    /// and revokes it: no replay slips between the two (Part II 3.2.1.2, protection against
    /// replay). Refusals of a known code are audited as `oauth2.token`, in the same
    /// transaction; so is the success.
    pub fn exchange_code(
        &self,
        policy: &TokenPolicy,
        client: &OAuthClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<CodeGrant, SamError> {
        let code_hash = secret_hash(code.as_bytes());
        // what the code may buy is made up front: nothing but SQL inside the transaction
        let values = TokenValues::new()?;
        let sad = random_token(SAD_BYTES)?;
        let now = utc_now();
        let mut replayed = false;
        let outcome = self.store.write(|c| {
            let code = match c.redeem_oauth_code(&code_hash)? {
                CodeRedemption::Unknown => return Ok(Err(OAuthError::InvalidCode.into())),
                CodeRedemption::AlreadyUsed(used) => {
                    // a replay: whatever the code bought dies with it
                    replayed = true;
                    let revoked = revoke_what_the_code_bought(c, &used)?;
                    c.append_audit(&code_refusal(
                        client,
                        &used,
                        if revoked {
                            "code used twice: its tokens were revoked"
                        } else {
                            "code used twice"
                        },
                    ))?;
                    return Ok(Err(OAuthError::CodeUsedOrExpired.into()));
                }
                CodeRedemption::Redeemed(code) => code,
            };
            if let Err((reason, e)) = check_code(&code, client, redirect_uri, code_verifier, now) {
                c.append_audit(&code_refusal(client, &code, reason))?;
                return Ok(Err(e.into()));
            }
            if code.scope == "credential" {
                let issued = match self.grant_sad_for_code(c, &code, &sad)? {
                    Ok(issued) => issued,
                    Err(e) => return Ok(Err(e)),
                };
                let signer = signer_name(c, &code)?;
                c.append_audit(&issued_event(
                    &signer,
                    client,
                    "authorization_code",
                    "credential",
                ))?;
                // the approved authorization_details, kept beside the code (CSC v2 §8.4)
                let details_hash = details_digest(&code.code_hash);
                let details = match c.oauth_request(&details_hash)? {
                    Some(r) if r.client_id == code.client_id => Some(r.params),
                    _ => None,
                };
                c.delete_oauth_request(&details_hash)?;
                return Ok(Ok(match (details, code.credential_id) {
                    (Some(authorization_details), Some(credential)) => CodeGrant::Authorized {
                        sad: issued,
                        credential,
                        authorization_details,
                    },
                    _ => CodeGrant::Sad(issued),
                }));
            }
            let minted = Minted::with_values(
                values,
                policy,
                TokenGrant {
                    user: Some(code.user_id),
                    client_id: Some(&client.client_id),
                    with_refresh: code.remember,
                },
                None,
            );
            if !minted.store(c)? {
                c.append_audit(&code_refusal(
                    client,
                    &code,
                    "the signer is locked, disabled or gone",
                ))?;
                return Ok(Err(OAuthError::InvalidCode.into()));
            }
            c.set_oauth_code_issued(&code_hash, &minted.issued.grant_hash)?;
            let signer = signer_name(c, &code)?;
            c.append_audit(&issued_event(
                &signer,
                client,
                "authorization_code",
                "service",
            ))?;
            Ok(Ok(CodeGrant::Service(minted.issued)))
        })?;
        if replayed {
            tracing::warn!(client = %client.client_id, "an authorization code was presented again; revoking what it was exchanged for");
        }
        outcome
    }

    /// `grant_type=client_credentials` (confidential clients only, RFC 6749 §4.4; a public
    /// client is [`OAuthError::UnauthorizedClient`]): a service token of the client itself,
    /// naming no user; it acts only for the users an operator delegated to the client
    /// ([`Sam::client_may_act_for`]). No refresh token (§4.4.3). Audited as `oauth2.token`.
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

    /// `grant_type=refresh_token` (RFC 6749 §6): an unrevoked, unexpired refresh token of this
    /// client is rotated ([`Sam::rotate_refresh_token`]): revoked and replaced, in one
    /// transaction, by a new refresh token (same grant, same expiry) returned with the new
    /// access token. A refresh token presented again after it was replaced revokes its whole
    /// grant (a refused `oauth2.token` record says so). Unknown, revoked, another client's or
    /// not a refresh token: [`OAuthError::InvalidRefreshToken`]; expired:
    /// [`OAuthError::RefreshTokenExpired`]. Audited as `oauth2.token`.
    pub fn refresh_oauth_token(
        &self,
        policy: &TokenPolicy,
        client: &OAuthClient,
        refresh_token: &str,
    ) -> Result<IssuedTokens, SamError> {
        let refreshed = self.rotate_refresh_token(
            policy,
            refresh_token,
            Some(&client.client_id),
            |user| issued_event(&user.name, client, "refresh_token", "service"),
            |user, revoked| {
                NewAuditEvent::new(
                    crate::AuditEvent::OAuth2Token,
                    &user.name,
                    &client.client_id,
                    "refused",
                )
                .with_detail(json!({
                    "grant": "refresh_token",
                    "reason": "refresh token reused: its grant was revoked",
                    "alsoRevoked": revoked,
                }))
            },
        )?;
        match refreshed {
            Refreshed::Rotated(issued) => Ok(issued),
            Refreshed::Expired => Err(OAuthError::RefreshTokenExpired.into()),
            Refreshed::Invalid | Refreshed::Reused => Err(OAuthError::InvalidRefreshToken.into()),
        }
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
