//! Service access and refresh tokens (spec §8.1, §11.2-11.3): issuing them (`auth/login`, the
//! OAuth 2.0 token endpoint), resolving a Bearer token to whom it speaks for, the refresh-token
//! login, and revocation. Tokens are opaque random strings from the OS CSPRNG
//! ([`crate::secrets`]); the database holds only their SHA-256, so revocation works on every
//! instance sharing it and a copy of the database yields no usable token.
//!
//! A service token is either user-specific (`auth/login`, OAuth 2.0 authorization code: it acts
//! for one user) or a client's own (OAuth 2.0 `client_credentials`: it names no user, spec §8.1
//! "non-user-specific"). A client token acts for the owner of the credential it names, audited
//! with `client:<client_id>` as the actor ([`client_actor`]); key activation still needs the
//! signer's own factors, so a client token alone never signs.
//!
//! All methods block (database).

use std::fmt;

use serde_json::json;
use storage::{
    Conn, CredentialId, NewAuditEvent, NewToken, StorageError, Token, TokenKind, User, UserId,
    secret_hash, utc_now,
};

use crate::activation::Caller;
use crate::secrets::random_token;
use crate::{Sam, SamError};

/// Prefix of service access tokens.
pub const ACCESS_PREFIX: &str = "csc_at_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "csc_rt_";

/// Lifetimes of the service tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    pub access_ttl: chrono::Duration,
    pub refresh_ttl: chrono::Duration,
}

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

/// Service tokens just issued (plaintext, shown once). `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// SHA-256 of the refresh token if one was issued, else of the access token: what a
    /// replayed authorization code revokes.
    pub grant_hash: Vec<u8>,
    /// The access token was minted by a refresh token.
    pub from_refresh: bool,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_in", &self.expires_in)
            .field("from_refresh", &self.from_refresh)
            .finish()
    }
}

/// For whom new service tokens are issued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenGrant<'a> {
    /// The user they act for; `None`: the client's own (`client_credentials`).
    pub user: Option<UserId>,
    /// The OAuth 2.0 client they are issued to, if any.
    pub client_id: Option<&'a str>,
    /// Issue a refresh token too.
    pub with_refresh: bool,
    /// The refresh token that mints the access token, if any.
    pub parent: Option<&'a [u8]>,
}

/// Revokes a token and, for a refresh token, the access tokens it minted (RFC 7009 §2.1);
/// returns how many of those were revoked.
pub(crate) fn revoke_token_and_children(
    c: &mut Conn<'_>,
    t: &Token,
) -> Result<usize, StorageError> {
    c.revoke_token(&t.token_hash)?;
    if t.kind == TokenKind::Refresh {
        c.revoke_tokens_with_parent(&t.token_hash)
    } else {
        Ok(0)
    }
}

/// The `auth.login` success record (the refusals are the password check's).
pub(crate) fn login_success(user: &User, detail: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent::new(
        crate::AuditEvent::AuthLogin,
        &user.name,
        &user.name,
        "success",
    )
    .with_detail(detail)
}

impl Sam {
    /// Stores a new access token (and a refresh token when `grant.with_refresh`); only digests
    /// are stored. `also` runs in the same transaction (an audit record, the code the tokens
    /// were bought with).
    pub(crate) fn issue_service_tokens<R>(
        &self,
        policy: &TokenPolicy,
        grant: TokenGrant<'_>,
        also: impl FnOnce(&mut Conn<'_>, &IssuedTokens) -> Result<R, StorageError>,
    ) -> Result<IssuedTokens, SamError> {
        let now = utc_now();
        let access = format!("{ACCESS_PREFIX}{}", random_token(32)?);
        let refresh = if grant.with_refresh {
            Some(format!("{REFRESH_PREFIX}{}", random_token(32)?))
        } else {
            None
        };
        let access_hash = secret_hash(access.as_bytes()).to_vec();
        let refresh_hash = refresh.as_ref().map(|r| secret_hash(r.as_bytes()).to_vec());
        let issued = IssuedTokens {
            access_token: access,
            refresh_token: refresh,
            expires_in: u64::try_from(policy.access_ttl.num_seconds()).unwrap_or(0),
            grant_hash: refresh_hash.clone().unwrap_or_else(|| access_hash.clone()),
            from_refresh: grant.parent.is_some(),
        };
        let client_id = grant.client_id.map(str::to_owned);
        self.store.write(|c| {
            if let Some(hash) = &refresh_hash {
                c.insert_token(&NewToken {
                    token_hash: hash.clone(),
                    kind: TokenKind::Refresh,
                    user_id: grant.user,
                    client_id: client_id.clone(),
                    scope: "service".into(),
                    expires_at: now + policy.refresh_ttl,
                    parent_hash: None,
                    family: None,
                })?;
            }
            c.insert_token(&NewToken {
                token_hash: access_hash.clone(),
                kind: TokenKind::Access,
                user_id: grant.user,
                client_id: client_id.clone(),
                scope: "service".into(),
                expires_at: now + policy.access_ttl,
                parent_hash: refresh_hash.clone().or(grant.parent.map(<[u8]>::to_vec)),
                family: None,
            })?;
            also(c, &issued).map(drop)
        })?;
        Ok(issued)
    }

    /// `auth/login` with a user whose password was checked: an access token, and a refresh
    /// token when `remember_me`. Audited as `auth.login` (`method` `basic`).
    pub fn issue_login_tokens(
        &self,
        policy: &TokenPolicy,
        user: &User,
        remember_me: bool,
    ) -> Result<IssuedTokens, SamError> {
        self.issue_service_tokens(
            policy,
            TokenGrant {
                user: Some(user.id),
                client_id: None,
                with_refresh: remember_me,
                parent: None,
            },
            |c, issued| {
                c.append_audit(&login_success(
                    user,
                    json!({ "method": "basic", "rememberMe": issued.refresh_token.is_some() }),
                ))
            },
        )
    }

    /// `auth/login` with a refresh token: an `auth/login` refresh token (an OAuth 2.0 one goes
    /// to `oauth2/token`), active, mints a new access token; no new refresh token. Anything else
    /// is [`SamError::InvalidRefreshToken`]. Audited as `auth.login` (`method`
    /// `refresh_token`).
    pub fn login_with_refresh_token(
        &self,
        policy: &TokenPolicy,
        refresh_token: &str,
    ) -> Result<IssuedTokens, SamError> {
        let hash = secret_hash(refresh_token.as_bytes());
        let user = match self.store.read(|c| c.token_and_user(&hash))? {
            // an auth/login refresh token: a user's, issued to no OAuth 2.0 client
            Some((t, Some(u)))
                if t.client_id.is_none()
                    && t.kind == TokenKind::Refresh
                    && t.is_active(utc_now()) =>
            {
                u
            }
            _ => return Err(SamError::InvalidRefreshToken),
        };
        self.issue_service_tokens(
            policy,
            TokenGrant {
                user: Some(user.id),
                client_id: None,
                with_refresh: false,
                parent: Some(&hash),
            },
            |c, issued| {
                c.append_audit(&login_success(
                    &user,
                    json!({ "method": "refresh_token", "rememberMe": issued.refresh_token.is_some() }),
                ))
            },
        )
    }

    /// Resolves a service access token to whom it speaks for: unknown, not an access token or
    /// naming nobody is [`SamError::InvalidToken`]; expired or revoked is
    /// [`SamError::ExpiredToken`] (RFC 6750 `expired_token`: "expired or has been revoked").
    /// One read.
    pub fn principal_of(&self, token: &str) -> Result<Principal, SamError> {
        let token_hash = secret_hash(token.as_bytes());
        let Some((t, user)) = self.store.read(|c| c.token_and_user(&token_hash))? else {
            return Err(SamError::InvalidToken);
        };
        if t.kind != TokenKind::Access {
            return Err(SamError::InvalidToken);
        }
        if !t.is_active(utc_now()) {
            return Err(SamError::ExpiredToken);
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
            _ => Err(SamError::InvalidToken),
        }
    }

    /// The caller acting on `credential`. For a user token, its user (the SAM refuses other
    /// users' credentials as unknown later). For a client token, the credential's owner, with
    /// `client:<id>` as the audit actor; an unknown credential is
    /// [`SamError::UnknownCredential`].
    pub fn caller_for(
        &self,
        principal: &Principal,
        credential: &CredentialId,
    ) -> Result<Caller, SamError> {
        match principal {
            Principal::User(caller) => Ok(caller.clone()),
            Principal::Client {
                client_id,
                token_hash,
            } => {
                let owner = self
                    .store
                    .read(|c| c.credential(credential))?
                    .map(|c| c.user_id)
                    .ok_or_else(|| SamError::UnknownCredential(credential.to_string()))?;
                Ok(Caller {
                    user: owner,
                    user_name: client_actor(client_id),
                    token_hash: *token_hash,
                })
            }
        }
    }

    /// `auth/revoke` (spec §11.3): revokes a service token of the principal's own (a user's,
    /// or a client token's client's); a refresh token takes the access tokens it minted with
    /// it. Any other token is [`SamError::UnknownToken`]. Audited as `auth.revoke`.
    pub fn revoke_service_token(&self, principal: &Principal, token: &str) -> Result<(), SamError> {
        let (actor, user, client) = match principal {
            Principal::User(caller) => (caller.user_name.clone(), Some(caller.user), None),
            Principal::Client { client_id, .. } => {
                (client_actor(client_id), None, Some(client_id.as_str()))
            }
        };
        let owns = |t: &Token| match (user, client) {
            (Some(user), _) => t.user_id == Some(user),
            (None, client) => t.user_id.is_none() && t.client_id.as_deref() == client,
        };
        let hash = secret_hash(token.as_bytes());
        let revoked = self.store.write(|c| {
            let Some(t) = c.token(&hash)?.filter(|t| owns(t)) else {
                return Ok(false);
            };
            let children = revoke_token_and_children(c, &t)?;
            c.append_audit(
                &NewAuditEvent::new(crate::AuditEvent::AuthRevoke, &actor, &actor, "success")
                    .with_detail(json!({ "kind": t.kind.as_str(), "alsoRevoked": children })),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_debug_hides_the_tokens() {
        let t = IssuedTokens {
            access_token: "csc_at_secret-access".into(),
            refresh_token: Some("csc_rt_secret-refresh".into()),
            expires_in: 3600,
            grant_hash: vec![0; 32],
            from_refresh: false,
        };
        let s = format!("{t:?}");
        assert!(
            !s.contains("secret-access") && !s.contains("secret-refresh"),
            "{s}"
        );
    }

    #[test]
    fn client_actor_names_the_client() {
        assert_eq!(client_actor("app"), "client:app");
    }
}
