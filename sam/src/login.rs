//! Password login (spec §11.2 `auth/login` with HTTP Basic, and the sign-in of the OAuth 2.0
//! authorization page): the password check with its lockout (Part I 7.1.2.5.1, through
//! [`crate::lockout`]), and the operator's unlock. Passwords are kept only as Argon2id
//! verifiers and compared in constant time; an unknown user costs the same work as a wrong
//! password, and the client is never told which it was.

use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use storage::{NewAuditEvent, NewUser, Role, StorageError, User, UserId};

use crate::gate::{LoginLimits, PasswordGate};
use crate::lockout::Counted;
use crate::tokens::end_sessions;
use crate::{AuditEvent, Sam, SamError, audit_event, secrets};

/// Why a password login was refused (the client is never told which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Unknown user or wrong password.
    Invalid,
    /// The user is locked after too many failures (even the right password is refused).
    Locked,
}

/// Where a password was presented (the `method` of the `auth.login` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// `auth/login` with HTTP Basic.
    Basic,
    /// The sign-in form of the OAuth 2.0 authorization page.
    OAuth2,
}

impl LoginMethod {
    /// The name in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Basic => "basic",
            LoginMethod::OAuth2 => "oauth2",
        }
    }
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

/// A valid login name: 1 to 64 characters among letters, digits and `. _ - @`.
fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Shortest password a user may be given.
pub const MIN_PASSWORD_CHARS: usize = 8;

impl Sam {
    /// Checks a user name and password. Each wrong password counts towards the lock; at the
    /// policy's `max_login_failures` consecutive failures the user is locked — refused even
    /// with the right password — until [`Sam::unlock_user`]; the failure that locks also ends
    /// every session of the user (all their access and refresh tokens and SADs are revoked in
    /// the same transaction, audited in the `user.lock` record). A user disabled by an operator
    /// ([`Sam::disable_user`]) is refused like a locked one. A success clears the count.
    /// Refusals are audited as `auth.login` with `method`; the success record is written with
    /// what the login buys (service tokens, a code).
    ///
    /// The check waits for a turn of the [`PasswordGate`] first: beyond its concurrency and
    /// queue it is refused at once with [`SamError::LoginBusy`], before any database read or
    /// Argon2 run. Blocking.
    pub fn check_password(
        &self,
        name: &str,
        password: &SecretString,
        method: LoginMethod,
    ) -> Result<Result<User, LoginRefusal>, SamError> {
        let Some(turn) = self.login_gate.enter() else {
            tracing::warn!(load = ?self.login_gate.load(), "a login was refused: every password check is busy and the queue is full");
            return Err(SamError::LoginBusy);
        };
        let found = self.store.read(|c| c.user_by_name(name))?;
        let verifier = found
            .as_ref()
            .map_or(dummy_verifier(), |u| u.password_hash.as_str());
        let ok = secrets::verify_secret(password, verifier);
        // the Argon2 run is over: the next check may go while this one writes its outcome
        drop(turn);
        // user-supplied, so bounded in the audit record
        let actor: String = name.chars().take(64).collect();
        let refused = |reason: &str| {
            NewAuditEvent::new(AuditEvent::AuthLogin, &actor, &actor, "refused")
                .with_detail(json!({ "method": method.as_str(), "reason": reason }))
        };
        let lockout = self.policy.login_lockout();
        let refusal = match found {
            Some(user) if user.disabled => {
                self.store
                    .write(|c| c.append_audit(&refused("user disabled")))?;
                LoginRefusal::Locked
            }
            Some(user) if user.locked => {
                self.store
                    .write(|c| c.append_audit(&refused("user locked")))?;
                LoginRefusal::Locked
            }
            Some(user) if ok => {
                if user.failed_logins > 0 {
                    self.store.write(|c| c.reset_login_failures(&user.id))?;
                }
                return Ok(Ok(user));
            }
            Some(user) => {
                self.store.write(|c| {
                    lockout.count_failure(
                        c,
                        |c, limit| {
                            let u = c.record_login_failure(&user.id, limit)?;
                            Ok(Counted {
                                failures: u.failed_logins,
                                locked: u.locked,
                            })
                        },
                        refused("wrong password"),
                        (AuditEvent::UserLock, &actor, &actor, json!({})),
                        // the lock ends the user's sessions, in the transaction that sets it
                        |c| end_sessions(c, &user.id),
                    )
                })?;
                LoginRefusal::Invalid
            }
            None => {
                self.store
                    .write(|c| c.append_audit(&refused("unknown user")))?;
                LoginRefusal::Invalid
            }
        };
        Ok(Err(refusal))
    }

    /// The bound on concurrent password checks ([`PasswordGate`]).
    pub fn login_gate(&self) -> &PasswordGate {
        &self.login_gate
    }

    /// Replaces the bound on concurrent password checks (`login_concurrency`, `login_queue`).
    pub fn with_login_limits(mut self, limits: LoginLimits) -> Sam {
        self.login_gate = PasswordGate::new(limits);
        self
    }

    /// Disables a user (`csc-server user disable`): login is refused (as for a locked user)
    /// and, in the same transaction, every access and refresh token of the user and every SAD
    /// is revoked; no client acts for the user any more ([`Sam::client_may_act_for`]). Lifted
    /// only by [`Sam::enable_user`] (not by `user unlock`). Audited as `user.disable` by
    /// `actor`, with what was revoked. Returns the user as it was before.
    pub fn disable_user(&self, name: &str, actor: &str) -> Result<User, SamError> {
        self.store
            .write(|c| {
                let Some(user) = c.user_by_name(name)? else {
                    return Ok(None);
                };
                c.set_user_disabled(&user.id, true)?;
                let mut detail = end_sessions(c, &user.id)?;
                if let Some(map) = detail.as_object_mut() {
                    map.insert("wasDisabled".into(), json!(user.disabled));
                }
                c.append_audit(&audit_event(
                    AuditEvent::UserDisable,
                    actor,
                    name,
                    "success",
                    detail,
                ))?;
                Ok(Some(user))
            })?
            .ok_or_else(|| SamError::UnknownUser(name.to_owned()))
    }

    /// Lifts an operator's disable (`csc-server user enable`); a login lock stays as it is.
    /// Audited as `user.enable` by `actor`. Returns the user as it was before.
    pub fn enable_user(&self, name: &str, actor: &str) -> Result<User, SamError> {
        self.store
            .write(|c| {
                let Some(user) = c.user_by_name(name)? else {
                    return Ok(None);
                };
                c.set_user_disabled(&user.id, false)?;
                c.append_audit(&audit_event(
                    AuditEvent::UserEnable,
                    actor,
                    name,
                    "success",
                    json!({ "wasDisabled": user.disabled }),
                ))?;
                Ok(Some(user))
            })?
            .ok_or_else(|| SamError::UnknownUser(name.to_owned()))
    }

    /// Creates a signer (`csc-server user add`), audited as `user.create` by `actor`.
    pub fn add_user(
        &self,
        name: &str,
        password: &SecretString,
        actor: &str,
    ) -> Result<User, SamError> {
        if !valid_user_name(name) {
            return Err(SamError::InvalidInput(
                "a user name has 1 to 64 characters among letters, digits and . _ - @".into(),
            ));
        }
        if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
            return Err(SamError::InvalidInput(format!(
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let new = NewUser {
            name: name.to_owned(),
            password_hash: secrets::hash_secret(password)?,
            role: Role::Signer,
        };
        self.store
            .write(|c| {
                let user = c.create_user(&new)?;
                c.append_audit(&audit_event(
                    AuditEvent::UserCreate,
                    actor,
                    name,
                    "success",
                    json!({}),
                ))?;
                Ok(user)
            })
            .map_err(|e| match e {
                StorageError::Conflict(_) => SamError::UserExists(name.to_owned()),
                e => e.into(),
            })
    }

    /// Lifts a login lock and clears the failure count (`csc-server user unlock`), audited as
    /// `user.unlock` by `actor`. Returns the user as it was before.
    pub fn unlock_user(&self, name: &str, actor: &str) -> Result<User, SamError> {
        self.store
            .write(|c| {
                let Some(user) = c.user_by_name(name)? else {
                    return Ok(None);
                };
                c.set_user_lock(&user.id, 0, false)?;
                c.append_audit(&audit_event(
                    AuditEvent::UserUnlock,
                    actor,
                    name,
                    "success",
                    json!({ "wasLocked": user.locked, "failedLogins": user.failed_logins }),
                ))?;
                Ok(Some(user))
            })?
            .ok_or_else(|| SamError::UnknownUser(name.to_owned()))
    }

    /// The user named `name`, if any.
    pub fn user_by_name(&self, name: &str) -> Result<Option<User>, SamError> {
        Ok(self.store.read(|c| c.user_by_name(name))?)
    }

    /// The user with this id, if any.
    pub fn user_by_id(&self, id: &UserId) -> Result<Option<User>, SamError> {
        Ok(self.store.read(|c| c.user(id))?)
    }
}
