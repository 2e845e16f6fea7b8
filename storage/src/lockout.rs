//! Failure counters of the lockout rule (Part I 7.1.2.5.1), for users' passwords and for
//! credentials' activation factors: ONE implementation for both, each step one change of the
//! counter's row under its lock, resealed ([`Counter`] names the row; [`Conn::step`] applies a
//! step; the row's MAC covers the count and the lock, so neither can be reset behind the
//! server's back).
//!
//! The rule counts first (every limit holds under concurrency: count first, then act). An
//! attempt
//!
//! 1. **reserves** its failure slot before the secret is verified
//!    ([`Conn::reserve_attempt`]: `failures + 1` if not locked and `failures <
//!    limit`, as one sealed row change); no row changed means the secret is locked, or all its
//!    slots are taken by attempts in flight (the SAM then waits for one, briefly, and refuses
//!    as locked otherwise); either way the attempt is not verified. So, whatever the
//!    concurrency, at most `limit` attempts are ever verified between two successes;
//! 2. on a wrong value keeps its slot counted and **sets the lock** when the count has reached
//!    the limit ([`Conn::lock_at_limit`]: `locked = true WHERE NOT locked AND failures >=
//!    limit`; exactly one caller changes the row, so the lock is audited once);
//! 3. on success **clears** the counter in the transaction that grants
//!    ([`Conn::clear_attempts`]: `failures = 0 WHERE NOT locked`; no row changed means the
//!    secret locked meanwhile and the grant must be refused);
//! 4. an attempt that was neither right nor wrong for this secret (another factor of the same
//!    activation was wrong or locked) **releases** its slot ([`Conn::release_attempt`]).
//!
//! A crash (or a lost connection) between the reservation and the outcome leaves the slot
//! counted: conservative, the secret is one attempt closer to its lock, never further. An
//! attempt still in flight holds its slot, so wrong attempts that finish meanwhile may count it
//! and lock the secret; the right value is then refused too (until an operator unlocks).
//!
//! Whether a failure set the lock, and what is audited, is the SAM's to decide.

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::models::{FactorRow, UserRow};
use crate::schema::users;
use crate::sealed::modify;
use crate::types::{CredentialId, FactorKind, UserId};

/// The failure counter of one secret: a user's password (`users.failed_logins`) or a
/// credential's activation factor (`credential_factors.failures`), with its `locked` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The password of a user.
    Login(UserId),
    /// An activation factor (PIN, OTP) of a credential.
    Factor(CredentialId, FactorKind),
}

impl Conn<'_> {
    /// Applies `step` to `(failures, locked)` of `counter`'s row, atomically under the row's
    /// lock, resealed ([`modify!`]): `true` iff the row exists, is intact and `step` changed it
    /// (`None` declines).
    fn step(
        &mut self,
        counter: Counter,
        step: impl FnOnce(i32, bool) -> Option<(i32, bool)>,
    ) -> Result<bool, StorageError> {
        let changed = match counter {
            Counter::Login(id) => {
                modify!(self, users, UserRow, id.to_string(), |r: &mut UserRow| {
                    Ok(step(r.failed_logins, r.locked).map(|(f, l)| {
                        (r.failed_logins, r.locked) = (f, l);
                    }))
                })?
            }
            Counter::Factor(id, kind) => self.modify_factor(&id, kind, |r: &mut FactorRow| {
                Ok(step(r.failures, r.locked).map(|(f, l)| {
                    (r.failures, r.locked) = (f, l);
                }))
            })?,
        };
        Ok(changed.is_some())
    }

    /// Reserves one failure slot of `counter` before its secret is verified, in one change
    /// that also checks the lock (see the module doc, step 1). `true`: reserved, verify now;
    /// `false`: refused as locked — the secret is locked, all `limit` slots are taken, or the
    /// row does not exist (or fails its MAC). A `limit` below 1 counts as 1.
    pub fn reserve_attempt(&mut self, counter: Counter, limit: i32) -> Result<bool, StorageError> {
        let limit = limit.max(1);
        self.step(counter, |f, locked| {
            (!locked && f < limit).then_some((f.saturating_add(1), false))
        })
    }

    /// After a wrong value (its slot stays counted): locks `counter` if its count has reached
    /// `limit` (step 2). `true` iff this call set the lock — exactly one of concurrent callers.
    pub fn lock_at_limit(&mut self, counter: Counter, limit: i32) -> Result<bool, StorageError> {
        let limit = limit.max(1);
        self.step(counter, |f, locked| {
            (!locked && f >= limit).then_some((f, true))
        })
    }

    /// After a success, in the granting transaction: clears the counter unless the secret is
    /// locked (step 3). `false`: it locked meanwhile (or the row is gone): refuse the grant.
    pub fn clear_attempts(&mut self, counter: Counter) -> Result<bool, StorageError> {
        self.step(counter, |_, locked| (!locked).then_some((0, false)))
    }

    /// Gives back a slot reserved by an attempt that was neither right nor wrong for this
    /// secret (step 4): one less failure, never below 0. The lock is unchanged.
    pub fn release_attempt(&mut self, counter: Counter) -> Result<(), StorageError> {
        self.step(counter, |f, locked| (f > 0).then_some((f - 1, locked)))?;
        Ok(())
    }

    /// `(failures, locked)` of `counter`, if its row exists (and is intact).
    pub fn attempts(&mut self, counter: Counter) -> Result<Option<(i32, bool)>, StorageError> {
        Ok(match counter {
            Counter::Login(id) => self.user(&id)?.map(|u| (u.failed_logins, u.locked)),
            Counter::Factor(id, kind) => self.factor(&id, kind)?.map(|f| (f.failures, f.locked)),
        })
    }
}
