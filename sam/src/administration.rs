//! Remote administration (the admin API; JT2A Part II 3.1.2.1): how an administrative user (a `users` row
//! whose role is operator, security officer or auditor) becomes an [`Actor`], and the
//! administrative acts the command line did not need.
//!
//! * **Admin tokens.** An administrator's name and password (the password login with its one
//!   lockout, [`Sam::password_login`]) buy an opaque access token of scope `admin`
//!   ([`Sam::admin_login`], OAuth 2.0 `client_credentials`, RFC 6749 §4.4), stored as its
//!   SHA-256 only, like every service token. An admin token is never a service token (the CSC
//!   API refuses it as unknown) and a service token is never an admin token
//!   ([`Sam::admin_actor_of_token`]). A signer gets none, even with the right password.
//! * **The role is read on every call**, from the MAC-checked user row: a disabled, locked,
//!   deleted or demoted administrator's token stops at once; a disable also revokes it.
//! * **Reads are audited** (Part I 7.1.4.1 "all access attempts"): listing users, credentials
//!   and clients, searching and verifying the audit log each append their record.
//! * **Deleting a user** ([`Sam::delete_user_as`]) destroys the keys of all their credentials
//!   in the token, then deletes the user and everything of theirs in one transaction. It is the
//!   security officer's act (it destroys keys); nobody deletes themselves.
//!
//! No function here returns or sets a PIN or OTP verifier.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde_json::json;
use storage::{
    AuditEvent, AuditQuery, AuditRecord, Credential, CredentialId, CredentialStatus, Role,
    StorageError, TokenKind, User, secret_hash, utc_now,
};

use crate::login::{LoginMethod, LoginRefusal};
use crate::roles::{Action, Actor};
use crate::tokens::{Minted, TokenGrant, TokenPolicy, TokenValues, end_sessions, login_success};
use crate::{Sam, SamError, audit_event};

/// The scope of admin API tokens.
pub const ADMIN_SCOPE: &str = "admin";

/// The most audit records one search returns.
pub const MAX_AUDIT_PAGE: i64 = 1000;

/// An admin API access token just issued (plaintext, shown once). `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A user deleted by [`Sam::delete_user_as`].
#[derive(Debug, Clone)]
pub struct DeletedUser {
    pub user: User,
    /// Their credentials, all deleted, their keys destroyed in the token.
    pub credentials: Vec<CredentialId>,
}

/// Whether `role` administers (operator, security officer, auditor).
pub fn is_administrative(role: Role) -> bool {
    role != Role::Signer
}

impl Sam {
    /// The admin API's token endpoint: checks `name` and `password` under the login lockout
    /// ([`Sam::password_login`], audited as `auth.login` with `method` `admin`) and issues an
    /// access token of scope `admin` living `ttl`, in the transaction that clears the failure
    /// count. A signer (right password or not), an unknown, locked or disabled user, or a wrong
    /// password: `Ok(Err(_))`, nothing issued. Blocking.
    pub fn admin_login(
        &self,
        ttl: chrono::Duration,
        name: &str,
        password: &SecretString,
    ) -> Result<Result<AdminToken, LoginRefusal>, SamError> {
        let values = TokenValues::new()?;
        let policy = TokenPolicy {
            access_ttl: ttl,
            refresh_ttl: ttl,
        };
        let outcome = self.password_login(name, password, LoginMethod::Admin, |c, user| {
            if !is_administrative(user.role) {
                // the right password of a signer: no admin token (refused below)
                return Ok(None);
            }
            let grant = TokenGrant {
                user: Some(user.id),
                client_id: None,
                with_refresh: false,
            };
            let minted = Minted::with_values(values, &policy, grant, None).with_scope(ADMIN_SCOPE);
            // the user was found active, its row locked, in this transaction
            if !minted.store(c)? {
                return Err(StorageError::Conflict("the user is not active".into()));
            }
            c.append_audit(&login_success(
                user,
                json!({ "method": "admin", "grant": "client_credentials", "role": user.role.as_str() }),
            ))?;
            Ok(Some(minted.issued))
        })?;
        match outcome {
            Ok((_, Some(issued))) => Ok(Ok(AdminToken {
                access_token: issued.access_token,
                expires_in: issued.expires_in,
            })),
            Ok((user, None)) => {
                let actor: String = user.name.chars().take(64).collect();
                self.store.write(|c| {
                    c.append_audit(&audit_event(
                        AuditEvent::AuthLogin,
                        &actor,
                        &actor,
                        "refused",
                        json!({ "method": "admin", "reason": "not an administrative user" }),
                    ))
                })?;
                Ok(Err(LoginRefusal::Invalid))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// The administrator an admin token speaks for, with the role of their user row now.
    /// Unknown, not an access token, not of scope `admin` (a CSC service token), or naming a
    /// user who is gone, a signer, disabled or locked: [`SamError::InvalidToken`]; expired or
    /// revoked: [`SamError::ExpiredToken`]. One read.
    pub fn admin_actor_of_token(&self, token: &str) -> Result<Actor, SamError> {
        let hash = secret_hash(token.as_bytes());
        let Some((t, user)) = self.store.read(|c| c.token_and_user(&hash))? else {
            return Err(SamError::InvalidToken);
        };
        if t.kind != TokenKind::Access || t.scope != ADMIN_SCOPE {
            return Err(SamError::InvalidToken);
        }
        if !t.is_active(utc_now()) {
            return Err(SamError::ExpiredToken);
        }
        match user {
            Some(u) if is_administrative(u.role) && !u.disabled && !u.locked => {
                Ok(Actor::new(u.name, u.role))
            }
            _ => Err(SamError::InvalidToken),
        }
    }

    /// The administrator named `name` (a verified TLS client certificate's subject CN), with
    /// the role of their user row now; anyone else (unknown, a signer, disabled or locked) is
    /// [`SamError::InvalidToken`]. One read.
    pub fn admin_actor_named(&self, name: &str) -> Result<Actor, SamError> {
        match self.store.read(|c| c.user_by_name(name))? {
            Some(u) if is_administrative(u.role) && !u.disabled && !u.locked => {
                Ok(Actor::new(u.name, u.role))
            }
            _ => Err(SamError::InvalidToken),
        }
    }

    /// Appends the audit record of a read by `actor` (the read is refused if it cannot be
    /// recorded).
    fn record_read(
        &self,
        actor: &Actor,
        event: AuditEvent,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), SamError> {
        self.store.write(|c| {
            c.append_audit(&audit_event(
                event,
                &actor.audit_name(),
                subject,
                "success",
                detail,
            ))
        })?;
        Ok(())
    }

    /// Every user (name, role, state), for the operator; audited as `user.list`.
    pub fn users_as(&self, actor: &Actor) -> Result<Vec<User>, SamError> {
        self.permit(actor, Action::UserList, "users")?;
        let users = self.store.read(|c| c.list_users())?;
        self.record_read(
            actor,
            AuditEvent::UserList,
            "users",
            json!({ "count": users.len() }),
        )?;
        Ok(users)
    }

    /// The credentials with their owners (`user_name`'s only when given), for the operator;
    /// audited as `credential.read` ([`Sam::credentials_with_owners_as`] is the CLI's, which
    /// writes nothing).
    pub fn list_credentials_as(
        &self,
        actor: &Actor,
        user_name: Option<&str>,
    ) -> Result<Vec<(User, Credential)>, SamError> {
        let list = self.credentials_with_owners_as(actor, user_name)?;
        self.record_read(
            actor,
            AuditEvent::CredentialRead,
            user_name.unwrap_or("credentials"),
            json!({ "count": list.len() }),
        )?;
        Ok(list)
    }

    /// One credential with its owner, for the operator; audited as `credential.read`.
    pub fn credential_as(
        &self,
        actor: &Actor,
        id: &CredentialId,
    ) -> Result<(User, Credential), SamError> {
        let subject = id.to_string();
        self.permit(actor, Action::CredentialList, &subject)?;
        let credential = self
            .store
            .read(|c| c.credential(id))?
            .ok_or_else(|| SamError::UnknownCredential(subject.clone()))?;
        let owner = self.owner_of(&credential)?;
        self.record_read(actor, AuditEvent::CredentialRead, &subject, json!({}))?;
        Ok((owner, credential))
    }

    /// The registered OAuth 2.0 clients and their delegations, for the security officer;
    /// audited as `client.list`.
    #[allow(clippy::type_complexity)]
    pub fn list_clients_as(
        &self,
        actor: &Actor,
    ) -> Result<(Vec<storage::OAuthClient>, Vec<(String, String)>), SamError> {
        let clients = self.clients_as(actor)?;
        self.record_read(
            actor,
            AuditEvent::ClientList,
            "clients",
            json!({ "count": clients.0.len() }),
        )?;
        Ok(clients)
    }

    /// The audit records matching `query` (at most [`MAX_AUDIT_PAGE`]), for the auditor
    /// (Part I 7.1.4.5-6: search by time, type and user; only auditors read the log); audited
    /// as `audit.read` with the filters, after the search (so a page never holds its own
    /// record).
    pub fn search_audit_as(
        &self,
        actor: &Actor,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, SamError> {
        self.permit(actor, Action::AuditRead, "audit-log")?;
        let query = AuditQuery {
            limit: query.limit.clamp(0, MAX_AUDIT_PAGE),
            ..query.clone()
        };
        let records = self.store.read(|c| c.search_audit(&query))?;
        let time = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.and_utc().to_rfc3339());
        self.record_read(
            actor,
            AuditEvent::AuditRead,
            "audit-log",
            json!({
                "from": time(query.from), "to": time(query.to), "event": query.event,
                "actor": query.actor, "subject": query.subject, "outcome": query.outcome,
                "after": query.after, "limit": query.limit, "returned": records.len(),
            }),
        )?;
        Ok(records)
    }

    /// [`Sam::verify_audit_as`], audited as `audit.verify` with the verdict.
    pub fn verify_audit_recorded_as(
        &self,
        actor: &Actor,
        seal_files: &[PathBuf],
    ) -> Result<storage::AuditReport, SamError> {
        let report = self.verify_audit_as(actor, seal_files)?;
        let intact = matches!(report.verdict, storage::AuditVerdict::Intact { .. });
        self.record_read(
            actor,
            AuditEvent::AuditVerify,
            "audit-log",
            json!({ "intact": intact, "seals": report.seals }),
        )?;
        Ok(report)
    }

    /// [`Sam::export_audit_as`] of records `from..=to` (the admin API's export, one range per
    /// call): without `to`, up to the log's head or `max_records`, whichever comes first.
    pub fn export_audit_range_as(
        &self,
        actor: &Actor,
        seal_files: &[PathBuf],
        from: i64,
        to: Option<i64>,
        max_records: i64,
        out: &mut dyn std::io::Write,
    ) -> Result<crate::ExportSummary, SamError> {
        let to = match to {
            Some(to) => to,
            None => {
                let (head, _) = self.store.read(|c| c.audit_head())?;
                head.min(from.saturating_add(max_records.saturating_sub(1)))
            }
        };
        self.export_audit_as(actor, seal_files, Some(from), Some(to), out)
    }

    /// Deletes the user `name` with all their credentials, for the security officer:
    /// first every credential's key (and TOTP key) is destroyed in the token (each audited as
    /// `key.destroy`; a key already gone is skipped), then, in one transaction, the user, their
    /// credentials, tokens, SADs, OAuth 2.0 codes and client delegations are deleted and
    /// `user.delete` is recorded with the credential IDs. Deleting oneself is refused
    /// ([`SamError::SelfDeletion`]); an unknown user is [`SamError::UnknownUser`].
    pub fn delete_user_as(&self, actor: &Actor, name: &str) -> Result<DeletedUser, SamError> {
        self.permit(actor, Action::UserDelete, name)?;
        let audit_actor = actor.audit_name();
        if actor.name == name {
            self.audit_best_effort(&audit_event(
                AuditEvent::UserDelete,
                &audit_actor,
                name,
                "refused",
                json!({ "reason": "an administrator does not delete themselves" }),
            ));
            return Err(SamError::SelfDeletion);
        }
        let user = self
            .store
            .read(|c| c.user_by_name(name))?
            .ok_or_else(|| SamError::UnknownUser(name.to_owned()))?;
        let credentials: Vec<Credential> = self
            .store
            .read(|c| c.list_credentials(Some(name)))?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        // first nothing of theirs is usable (a failure half-way leaves it so): the user disabled,
        // their sessions and SADs ended, their credentials disabled
        self.store.write(|c| {
            c.set_user_disabled(&user.id, true)?;
            end_sessions(c, &user.id)?;
            for credential in &credentials {
                if credential.status == CredentialStatus::Enabled {
                    c.set_credential_status(&credential.id, CredentialStatus::Disabled)?;
                }
            }
            Ok(())
        })?;
        for credential in &credentials {
            // a revoked or destroyed credential's key is gone already
            if credential.status == CredentialStatus::Revoked
                || !self.key_in_token(&credential.key_id)?
            {
                continue;
            }
            let key_id = crate::activation::key_id_of(credential)?;
            self.destroy_keys(&credential.id, &key_id, &audit_actor)?;
        }
        let ids: Vec<CredentialId> = credentials.iter().map(|c| c.id).collect();
        let listed: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.store.write(|c| {
            c.delete_user(&user.id)?;
            c.append_audit(&audit_event(
                AuditEvent::UserDelete,
                &audit_actor,
                name,
                "success",
                json!({ "role": user.role.as_str(), "credentials": listed }),
            ))
        })?;
        Ok(DeletedUser {
            user,
            credentials: ids,
        })
    }
}
