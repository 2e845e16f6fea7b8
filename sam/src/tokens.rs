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

use chrono::NaiveDateTime;
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

/// The scope of every service token (`auth/login`, the OAuth 2.0 token endpoint).
pub(crate) const SERVICE_SCOPE: &str = "service";

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
}

/// The refresh token that rotation replaces: the new tokens descend from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rotation<'a> {
    /// SHA-256 of the refresh token being replaced (the new ones' `parent_hash`).
    pub parent: &'a [u8],
    /// The grant's family ([`storage::NewToken::family`]), kept.
    pub family: &'a [u8],
    /// The replaced refresh token's expiry: the new refresh token inherits it, so rotation
    /// never extends a "keep me signed in" period beyond the sign-in's.
    pub refresh_expires_at: NaiveDateTime,
}

/// New service tokens: their values (shown once) and their rows (digests only), not stored yet.
/// Made before the transaction that stores them ([`Minted::store`]).
pub(crate) struct Minted {
    pub issued: IssuedTokens,
    user: Option<UserId>,
    rows: Vec<NewToken>,
}

/// The random values of new tokens (an access token and a refresh token), made before the
/// transaction that stores them: nothing but SQL runs inside a transaction. No `Debug`.
pub(crate) struct TokenValues {
    access: String,
    refresh: String,
}

impl TokenValues {
    /// Fresh values from the OS CSPRNG.
    pub(crate) fn new() -> Result<TokenValues, SamError> {
        Ok(TokenValues {
            access: format!("{ACCESS_PREFIX}{}", random_token(32)?),
            refresh: format!("{REFRESH_PREFIX}{}", random_token(32)?),
        })
    }
}

impl Minted {
    /// Random tokens for `grant` (a refresh token when `grant.with_refresh`); with `rotation`,
    /// descendants of the refresh token it replaces.
    pub(crate) fn new(
        policy: &TokenPolicy,
        grant: TokenGrant<'_>,
        rotation: Option<Rotation<'_>>,
    ) -> Result<Minted, SamError> {
        Ok(Self::with_values(
            TokenValues::new()?,
            policy,
            grant,
            rotation,
        ))
    }

    /// [`Minted::new`] with values made earlier (the refresh value is dropped unless
    /// `grant.with_refresh`).
    pub(crate) fn with_values(
        values: TokenValues,
        policy: &TokenPolicy,
        grant: TokenGrant<'_>,
        rotation: Option<Rotation<'_>>,
    ) -> Minted {
        let now = utc_now();
        let access = values.access;
        let refresh = grant.with_refresh.then_some(values.refresh);
        let access_hash = secret_hash(access.as_bytes()).to_vec();
        let refresh_hash = refresh.as_ref().map(|r| secret_hash(r.as_bytes()).to_vec());
        // a new grant's family is its first refresh token; a rotated one keeps its family
        let family = match rotation {
            Some(r) => Some(r.family.to_vec()),
            None => refresh_hash.clone(),
        };
        let row = |hash: Vec<u8>, kind, expires_at, parent_hash| NewToken {
            token_hash: hash,
            kind,
            user_id: grant.user,
            client_id: grant.client_id.map(str::to_owned),
            scope: SERVICE_SCOPE.into(),
            expires_at,
            parent_hash,
            family: family.clone(),
        };
        let mut rows = Vec::with_capacity(2);
        if let Some(hash) = &refresh_hash {
            rows.push(row(
                hash.clone(),
                TokenKind::Refresh,
                rotation.map_or(now + policy.refresh_ttl, |r| r.refresh_expires_at),
                rotation.map(|r| r.parent.to_vec()),
            ));
        }
        rows.push(row(
            access_hash.clone(),
            TokenKind::Access,
            now + policy.access_ttl,
            refresh_hash
                .clone()
                .or_else(|| rotation.map(|r| r.parent.to_vec())),
        ));
        Minted {
            issued: IssuedTokens {
                access_token: access,
                refresh_token: refresh,
                expires_in: u64::try_from(policy.access_ttl.num_seconds()).unwrap_or(0),
                grant_hash: refresh_hash.unwrap_or(access_hash),
                from_refresh: rotation.is_some(),
            },
            user: grant.user,
            rows,
        }
    }

    /// The same tokens with another scope (`admin`: the admin API's, [`crate::administration`];
    /// every other token is `service`).
    pub(crate) fn with_scope(mut self, scope: &str) -> Minted {
        for row in &mut self.rows {
            row.scope = scope.to_owned();
        }
        self
    }

    /// Stores the tokens in the caller's transaction, unless the user they act for is locked,
    /// disabled or gone: `Ok(false)`, nothing stored. The user is read with its row locked
    /// ([`storage::Conn::user_for_update`]), so a lock or disable that commits meanwhile either
    /// comes first (and no token is stored) or after (and its revocation takes these tokens).
    pub(crate) fn store(&self, c: &mut Conn<'_>) -> Result<bool, StorageError> {
        if let Some(user) = &self.user {
            match c.user_for_update(user)? {
                Some(u) if !u.locked && !u.disabled => {}
                _ => return Ok(false),
            }
        }
        for row in &self.rows {
            c.insert_token(row)?;
        }
        Ok(true)
    }
}

/// Revokes a token and, for a refresh token, the access tokens it minted and every token of its
/// grant (its family: the refresh tokens rotated from the same sign-in and what they minted;
/// RFC 7009 §2.1 "all access tokens based on the same authorization grant"). Returns how many
/// others were revoked.
pub(crate) fn revoke_token_and_children(
    c: &mut Conn<'_>,
    t: &Token,
) -> Result<usize, StorageError> {
    c.revoke_token(&t.token_hash)?;
    if t.kind != TokenKind::Refresh {
        return Ok(0);
    }
    let children = c.revoke_tokens_with_parent(&t.token_hash)?;
    let family = match &t.family {
        Some(f) => c.revoke_token_family(f)?,
        None => 0,
    };
    Ok(children + family)
}

/// Ends every session of `user` in the caller's transaction: all their access and refresh
/// tokens and their SADs are revoked (a login lock, Part I 7.1.2.5.1; an operator's disable).
/// After it the user must authenticate again (Part I 7.1.2.1-4). Returns the counts as the
/// members of the lock's or disable's audit record.
pub(crate) fn end_sessions(
    c: &mut Conn<'_>,
    user: &UserId,
) -> Result<serde_json::Value, StorageError> {
    let tokens = c.revoke_user_tokens(user)?;
    let sads = c.revoke_user_sads(user)?;
    Ok(json!({ "revokedTokens": tokens, "revokedSads": sads }))
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

/// What presenting a refresh token came to ([`Sam::rotate_refresh_token`]).
pub(crate) enum Refreshed {
    /// The token was replaced: the new tokens.
    Rotated(IssuedTokens),
    /// Unknown, not a refresh token, another client's (or not an `auth/login` one), or its
    /// user is locked, disabled or gone.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Already replaced (or revoked): presented again, so its whole grant was revoked.
    Reused,
}

impl Sam {
    /// Stores new access (and refresh, when `grant.with_refresh`) tokens; only digests are
    /// stored. `also` runs in the same transaction (an audit record). A user who is locked or
    /// disabled by the time of the transaction gets none: [`SamError::UserInactive`].
    pub(crate) fn issue_service_tokens<R>(
        &self,
        policy: &TokenPolicy,
        grant: TokenGrant<'_>,
        also: impl FnOnce(&mut Conn<'_>, &IssuedTokens) -> Result<R, StorageError>,
    ) -> Result<IssuedTokens, SamError> {
        let minted = Minted::new(policy, grant, None)?;
        let stored = self.store.write(|c| {
            if !minted.store(c)? {
                return Ok(false);
            }
            also(c, &minted.issued).map(|_| true)
        })?;
        if stored {
            Ok(minted.issued)
        } else {
            Err(SamError::UserInactive)
        }
    }

    /// Refresh-token rotation, shared by `auth/login` (`client` `None`: a refresh token issued
    /// to no OAuth 2.0 client) and the OAuth 2.0 `refresh_token` grant (`client`: the
    /// authenticated client, whose token it must be). A valid refresh token is revoked and
    /// replaced, in ONE transaction, by a new refresh token (same grant, same expiry) and a new
    /// access token; `success` is the audit record of that. Of two concurrent presentations
    /// of one token, the conditional revocation lets exactly one rotate.
    ///
    /// A refresh token that was already replaced (or revoked) is a reuse: a copy is in other
    /// hands, or a client replays it. Every token of its grant is revoked (RFC 6819 §5.2.2.3,
    /// refresh token rotation; Part II 3.2.1.2, protection against replay) and `reused` is
    /// audited, in one transaction.
    pub(crate) fn rotate_refresh_token(
        &self,
        policy: &TokenPolicy,
        presented: &str,
        client: Option<&str>,
        success: impl FnOnce(&User) -> NewAuditEvent,
        reused: impl FnOnce(&User, usize) -> NewAuditEvent,
    ) -> Result<Refreshed, SamError> {
        let hash = secret_hash(presented.as_bytes());
        let (t, user) = match self.store.read(|c| c.token_and_user(&hash))? {
            Some((t, Some(u)))
                if t.kind == TokenKind::Refresh && t.client_id.as_deref() == client =>
            {
                (t, u)
            }
            _ => return Ok(Refreshed::Invalid),
        };
        // tokens issued before rotation existed name no family: their own hash is it
        let family = t.family.clone().unwrap_or_else(|| t.token_hash.clone());
        let end_grant = |c: &mut Conn<'_>| -> Result<(), StorageError> {
            let others = revoke_token_and_children(c, &t)? + c.revoke_token_family(&family)?;
            c.append_audit(&reused(&user, others)).map(drop)
        };
        if t.revoked {
            self.store.write(end_grant)?;
            tracing::warn!(user = %user.name, "a replaced refresh token was presented again; its grant was revoked");
            return Ok(Refreshed::Reused);
        }
        if t.expires_at <= utc_now() {
            return Ok(Refreshed::Expired);
        }
        let minted = Minted::new(
            policy,
            TokenGrant {
                user: Some(user.id),
                client_id: client,
                with_refresh: true,
            },
            Some(Rotation {
                parent: &hash,
                family: &family,
                refresh_expires_at: t.expires_at,
            }),
        )?;
        let outcome = self.store.write(|c| {
            if !c.revoke_token(&hash)? {
                // replaced meanwhile by a concurrent presentation: a reuse as well
                end_grant(c)?;
                return Ok(Refreshed::Reused);
            }
            if !minted.store(c)? {
                return Ok(Refreshed::Invalid);
            }
            c.append_audit(&success(&user))?;
            Ok(Refreshed::Rotated(minted.issued.clone()))
        })?;
        if matches!(outcome, Refreshed::Reused) {
            tracing::warn!(user = %user.name, "a refresh token was presented twice at once; its grant was revoked");
        }
        Ok(outcome)
    }

    /// `auth/login` with a refresh token (spec §11.2, RFC 6749 §1.5): an `auth/login` refresh
    /// token (an OAuth 2.0 one goes to `oauth2/token`), active, is rotated
    /// ([`Sam::rotate_refresh_token`]): the answer carries a new access token AND a new
    /// refresh token (the old one is dead; the signer's "remember me" lives on in the new one,
    /// until the original expiry). A replaced token presented again revokes the whole grant.
    /// Anything else is [`SamError::InvalidRefreshToken`]. Audited as `auth.login` (`method`
    /// `refresh_token`), a reuse as a refused `auth.login`.
    pub fn login_with_refresh_token(
        &self,
        policy: &TokenPolicy,
        refresh_token: &str,
    ) -> Result<IssuedTokens, SamError> {
        let refreshed = self.rotate_refresh_token(
            policy,
            refresh_token,
            None,
            |user| {
                login_success(
                    user,
                    json!({ "method": "refresh_token", "rememberMe": true }),
                )
            },
            |user, revoked| {
                NewAuditEvent::new(
                    crate::AuditEvent::AuthLogin,
                    &user.name,
                    &user.name,
                    "refused",
                )
                .with_detail(json!({
                    "method": "refresh_token",
                    "reason": "refresh token reused: its grant was revoked",
                    "alsoRevoked": revoked,
                }))
            },
        )?;
        match refreshed {
            Refreshed::Rotated(issued) => Ok(issued),
            Refreshed::Invalid | Refreshed::Expired | Refreshed::Reused => {
                Err(SamError::InvalidRefreshToken)
            }
        }
    }

    /// Resolves a service access token to whom it speaks for: unknown, not an access token or
    /// naming nobody is [`SamError::InvalidToken`]; expired or revoked is
    /// [`SamError::ExpiredToken`] (RFC 6750 `expired_token`: "expired or has been revoked").
    /// One read, none while the token is in the cache of verified rows ([`crate::hot`]).
    pub fn principal_of(&self, token: &str) -> Result<Principal, SamError> {
        let token_hash = secret_hash(token.as_bytes());
        let found = self.hot.token(
            &token_hash,
            || self.store.epoch(),
            || self.store.read(|c| c.token_and_user(&token_hash)),
        )?;
        let Some((t, user)) = found else {
            return Err(SamError::InvalidToken);
        };
        // an admin API token (scope `admin`) is no service token: refused as unknown
        if t.kind != TokenKind::Access || t.scope != SERVICE_SCOPE {
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
    /// `client:<id>` as the audit actor, if an operator delegated that user to the client and
    /// the user is not disabled ([`Sam::client_may_act_for`]); otherwise, and for an unknown
    /// credential, [`SamError::UnknownCredential`]: the spec's answer for a credential the
    /// caller may not use (400 `Invalid parameter credentialID`, §11.5-11.9), the same as a
    /// user token gets for another user's credential, so a client learns nothing about
    /// credentials of users it does not serve.
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
                let unknown = || SamError::UnknownCredential(credential.to_string());
                let owner = self
                    .store
                    .read(|c| c.credential(credential))?
                    .map(|c| c.user_id)
                    .ok_or_else(unknown)?;
                if !self.client_may_act_for(client_id, &owner, &credential.to_string())? {
                    return Err(unknown());
                }
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
