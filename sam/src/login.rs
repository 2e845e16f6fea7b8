//! Password login (spec §11.2 `auth/login` with HTTP Basic, and the sign-in of the OAuth 2.0
//! authorization page): the password check with its lockout (Part I 7.1.2.5.1, through
//! [`crate::lockout`]: the failure slot is reserved before the password is verified, and
//! cleared in the transaction that grants), and the operator's unlock. Passwords are kept only
//! as Argon2id verifiers and compared in constant time; an unknown or locked user costs the
//! same work as a wrong password, and the client is never told which it was.

use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use storage::{Conn, Counter, NewAuditEvent, NewUser, Role, StorageError, User, UserId};

use crate::gate::{LoginLimits, PasswordGate};
use crate::lockout::{Checked, Reservation};
use crate::roles::{Action, Actor};
use crate::tokens::{
    IssuedTokens, Minted, TokenGrant, TokenPolicy, TokenValues, end_sessions, login_success,
};
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
pub(crate) enum LoginMethod {
    /// `auth/login` with HTTP Basic.
    Basic,
    /// The sign-in form of the OAuth 2.0 authorization page.
    OAuth2,
    /// The admin API's token endpoint (`client_credentials` with an administrator's name and
    /// password, [`crate::administration`]).
    Admin,
}

impl LoginMethod {
    /// The name in audit records.
    fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Basic => "basic",
            LoginMethod::OAuth2 => "oauth2",
            LoginMethod::Admin => "admin",
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
    /// `auth/login` with HTTP Basic (spec §11.2): checks the user name and password
    /// (`Sam::password_login`) and, in the transaction that clears the user's failure count,
    /// stores an access token (and a refresh token when `remember_me`) and the `auth.login`
    /// success record (`method` `basic`). Refusals are `Ok(Err(_))`. Blocking.
    pub fn login_with_password(
        &self,
        policy: &TokenPolicy,
        name: &str,
        password: &SecretString,
        remember_me: bool,
    ) -> Result<Result<IssuedTokens, LoginRefusal>, SamError> {
        let values = TokenValues::new()?;
        let outcome = self.password_login(name, password, LoginMethod::Basic, |c, user| {
            let minted = Minted::with_values(
                values,
                policy,
                TokenGrant {
                    user: Some(user.id),
                    client_id: None,
                    with_refresh: remember_me,
                },
                None,
            );
            // the user was found active, its row locked, in this transaction
            if !minted.store(c)? {
                return Err(StorageError::Conflict("the user is not active".into()));
            }
            c.append_audit(&login_success(
                user,
                json!({ "method": "basic", "rememberMe": remember_me }),
            ))?;
            Ok(minted.issued)
        })?;
        Ok(outcome.map(|(_, issued)| issued))
    }

    /// The sign-in form of the OAuth 2.0 authorization page: checks the user name and password
    /// (`Sam::password_login`); the sign-in is recorded (`auth.login`, `method` `oauth2`,
    /// with the client) in the transaction that clears the user's failure count. Returns the
    /// user. Refusals are `Ok(Err(_))`. Blocking.
    pub fn oauth_sign_in(
        &self,
        name: &str,
        password: &SecretString,
        client_id: &str,
    ) -> Result<Result<User, LoginRefusal>, SamError> {
        let outcome = self.password_login(name, password, LoginMethod::OAuth2, |c, user| {
            c.append_audit(&login_success(
                user,
                json!({ "method": "oauth2", "client": client_id }),
            ))
        })?;
        Ok(outcome.map(|(user, _)| user))
    }

    /// Checks a user name and password under the lockout rule ([`crate::lockout`]) and, when
    /// right, runs `grant` in the transaction that clears the user's failure count.
    ///
    /// * Count first: one conditional update reserves a failure slot of the user before the
    ///   password is verified. No slot (locked, or `max_login_failures` attempts counted or in
    ///   flight): [`LoginRefusal::Locked`], the password not verified (a dummy verification
    ///   keeps the time the same). So at most `max_login_failures` passwords are verified
    ///   between two successful logins, however many arrive at once.
    /// * A wrong password keeps its slot; the failure whose count reaches the limit locks the
    ///   user — refused even with the right password until [`Sam::unlock_user`] — and is
    ///   audited as `user.lock`, once.
    /// * The right password clears the count and runs `grant` in ONE transaction, refused
    ///   ([`LoginRefusal::Locked`]) if the user locked meanwhile (concurrent failures that
    ///   counted this attempt's slot reached the limit).
    ///
    /// Refusals are audited as `auth.login` with `method`; an unknown user is
    /// [`LoginRefusal::Invalid`]. A crash between the reservation and the outcome leaves the
    /// slot counted (conservative); a storage error in the grant gives it back, best effort.
    pub(crate) fn password_login<T>(
        &self,
        name: &str,
        password: &SecretString,
        method: LoginMethod,
        grant: impl FnOnce(&mut Conn<'_>, &User) -> Result<T, StorageError>,
    ) -> Result<Result<(User, T), LoginRefusal>, SamError> {
        // user-supplied, so bounded in the audit record
        let actor: String = name.chars().take(64).collect();
        let refused = |reason: &str| {
            NewAuditEvent::new(AuditEvent::AuthLogin, &actor, &actor, "refused")
                .with_detail(json!({ "method": method.as_str(), "reason": reason }))
        };
        // A turn of the password gate before any database read or Argon2 run: beyond its
        // concurrency and queue the login is refused at once (bounded memory under a flood).
        let Some(turn) = self.login_gate.enter() else {
            tracing::warn!(load = ?self.login_gate.load(), "a login was refused: every password check is busy and the queue is full");
            return Err(SamError::LoginBusy);
        };
        let Some(user) = self.store.read(|c| c.user_by_name(name))? else {
            let _ = secrets::verify_secret(password, dummy_verifier());
            drop(turn);
            self.store
                .write(|c| c.append_audit(&refused("unknown user")))?;
            return Ok(Err(LoginRefusal::Invalid));
        };
        if user.disabled {
            let _ = secrets::verify_secret(password, dummy_verifier());
            drop(turn);
            self.store
                .write(|c| c.append_audit(&refused("user disabled")))?;
            return Ok(Err(LoginRefusal::Locked));
        }
        let lockout = self.policy.login_lockout();
        let counter = Counter::Login(user.id);

        // a slot held by logins still in flight is waited for, at most the policy's max_slot_wait
        let (got, ()) = lockout.until_not_busy(|patient| {
            let locked_record = refused("user locked");
            self.store.write_grouped(move |c| {
                Ok(match lockout.reserve(c, counter)? {
                    Reservation::Busy if patient => ((Reservation::Busy, ()), Vec::new()),
                    Reservation::Reserved => ((Reservation::Reserved, ()), Vec::new()),
                    _ => ((Reservation::Locked, ()), vec![locked_record]),
                })
            })
        })?;
        let reserved = got == Reservation::Reserved;
        if !reserved {
            let _ = secrets::verify_secret(password, dummy_verifier());
            return Ok(Err(LoginRefusal::Locked));
        }

        self.checks.count(Checked::Password);
        let right = secrets::verify_secret(password, &user.password_hash);
        // the Argon2 run is over: the next check may go while this one writes its outcome
        drop(turn);
        if !right {
            self.store.write(|c| {
                lockout.fail(
                    c,
                    counter,
                    refused("wrong password"),
                    (AuditEvent::UserLock, &actor, &actor, json!({})),
                    // the lock ends the user's sessions, in the transaction that sets it
                    |c| end_sessions(c, &user.id),
                )
            })?;
            return Ok(Err(LoginRefusal::Invalid));
        }

        let mut locked_meanwhile = false;
        let granted = self.store.write(|c| {
            // the user row locked for the grant: nothing is issued to a user locked or disabled
            // meanwhile
            let active = c
                .user_for_update(&user.id)?
                .is_some_and(|u| !u.disabled && !u.locked);
            if !active || !lockout.clear(c, counter)? {
                locked_meanwhile = true;
                return Err(StorageError::Conflict("refused: rolled back".into()));
            }
            grant(c, &user)
        });
        match granted {
            Ok(value) => Ok(Ok((user, value))),
            Err(_) if locked_meanwhile => {
                self.audit_best_effort(&refused("user locked"));
                Ok(Err(LoginRefusal::Locked))
            }
            Err(e) => {
                if let Err(released) = self.store.write(|c| lockout.release(c, counter)) {
                    tracing::error!(error = %released, "could not give back the failure slot of a login");
                }
                Err(e.into())
            }
        }
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
    pub fn disable_user(&self, name: &str, actor: &Actor) -> Result<User, SamError> {
        self.permit(actor, self.act_on_user(Action::UserDisable, name)?, name)?;
        let actor = &actor.audit_name();
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
    pub fn enable_user(&self, name: &str, actor: &Actor) -> Result<User, SamError> {
        self.permit(actor, self.act_on_user(Action::UserEnable, name)?, name)?;
        let actor = &actor.audit_name();
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

    /// Creates a user of `role` (`csc-server user add --role`), audited as `user.create` by
    /// `actor` (an operator creates signers, the security officer the administrative users).
    /// A user has one role: an administrative role is held by a user of its own, never added
    /// to a signer or another administrator (a second user of the same name is
    /// [`SamError::UserExists`]).
    pub fn add_user(
        &self,
        name: &str,
        password: &SecretString,
        role: Role,
        actor: &Actor,
    ) -> Result<User, SamError> {
        self.permit(actor, Action::UserCreate(role), name)?;
        let actor = &actor.audit_name();
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
            role,
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
    pub fn unlock_user(&self, name: &str, actor: &Actor) -> Result<User, SamError> {
        self.permit(actor, self.act_on_user(Action::UserUnlock, name)?, name)?;
        let actor = &actor.audit_name();
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

    /// What disabling, enabling or unlocking the user `name` is ([`Action::on_user`]): an
    /// administrative user is the security officer's to manage. Users never change role, so
    /// the read needs no lock; an unknown user is `signer_act` (then answered as unknown).
    pub fn act_on_user(&self, signer_act: Action, name: &str) -> Result<Action, SamError> {
        Ok(match self.store.read(|c| c.user_by_name(name))? {
            Some(u) => Action::on_user(signer_act, u.role),
            None => signer_act,
        })
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
