//! Failure counters of the lockout rule (Part I 7.1.2.5.1), for users' passwords and for
//! credentials' activation factors: ONE implementation for both, each step one conditional
//! update on the counter's row ([`Counter`] names the row; the macros below are the statements).
//!
//! The rule counts first (DESIGN.md: "every limit holds under concurrency: count first, then
//! act"). An attempt
//!
//! 1. **reserves** its failure slot before the secret is verified
//!    ([`Conn::reserve_attempt`]: `failures = failures + 1 WHERE NOT locked AND failures <
//!    limit`); no row changed means the secret is locked (or all its slots are taken by
//!    attempts in flight) and the attempt is refused unverified. So, whatever the
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
use crate::schema::{credential_factors as cf, users};
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

/// Runs the lockout statement `$op!` on the row of `$counter`: the `users` row (columns
/// `failed_logins`, `locked`) or the `credential_factors` row (`failures`, `locked`). This is
/// what makes one statement serve passwords and factors alike.
macro_rules! on_counter_row {
    ($counter:expr, $op:ident ( $conn:expr $(, $arg:expr)* )) => {
        match $counter {
            Counter::Login(id) => {
                let id = id.to_string();
                $op!($conn, users, &id, failed_logins, locked $(, $arg)*)
            }
            Counter::Factor(id, kind) => {
                let id = id.to_string();
                $op!($conn, cf, (&id, kind.as_str()), failures, locked $(, $arg)*)
            }
        }
    };
}

/// Step 1: `failures = failures + 1 WHERE NOT locked AND failures < limit`. The number of rows
/// changed (0 or 1).
macro_rules! reserve_slot {
    ($conn:expr, $t:ident, $key:expr, $failures:ident, $locked:ident, $limit:expr) => {
        diesel::update(
            $t::table
                .find($key)
                .filter($t::$locked.eq(false))
                .filter($t::$failures.lt($limit)),
        )
        .set($t::$failures.eq($t::$failures + 1))
        .execute($conn)?
    };
}

/// Step 2: `locked = true WHERE NOT locked AND failures >= limit`. Rows changed (0 or 1).
macro_rules! lock_slot {
    ($conn:expr, $t:ident, $key:expr, $failures:ident, $locked:ident, $limit:expr) => {
        diesel::update(
            $t::table
                .find($key)
                .filter($t::$locked.eq(false))
                .filter($t::$failures.ge($limit)),
        )
        .set($t::$locked.eq(true))
        .execute($conn)?
    };
}

/// Step 3: `failures = 0 WHERE NOT locked`. Rows changed (0 or 1).
macro_rules! clear_slots {
    ($conn:expr, $t:ident, $key:expr, $failures:ident, $locked:ident) => {
        diesel::update($t::table.find($key).filter($t::$locked.eq(false)))
            .set($t::$failures.eq(0))
            .execute($conn)?
    };
}

/// Step 4: `failures = failures - 1 WHERE failures > 0`. Rows changed (0 or 1).
macro_rules! release_slot {
    ($conn:expr, $t:ident, $key:expr, $failures:ident, $locked:ident) => {
        diesel::update($t::table.find($key).filter($t::$failures.gt(0)))
            .set($t::$failures.eq($t::$failures - 1))
            .execute($conn)?
    };
}

/// Reads `(failures, locked)`.
macro_rules! read_slots {
    ($conn:expr, $t:ident, $key:expr, $failures:ident, $locked:ident) => {
        $t::table
            .find($key)
            .select(($t::$failures, $t::$locked))
            .get_result::<(i32, bool)>($conn)
            .optional()?
    };
}

impl Conn<'_> {
    /// Reserves one failure slot of `counter` before its secret is verified, in ONE conditional
    /// update that also checks the lock (see the module doc, step 1). `true`: reserved, verify
    /// now; `false`: refused as locked — the secret is locked, all `limit` slots are taken, or
    /// the row does not exist. A `limit` below 1 counts as 1.
    pub fn reserve_attempt(&mut self, counter: Counter, limit: i32) -> Result<bool, StorageError> {
        let limit = limit.max(1);
        let n = on_counter_row!(counter, reserve_slot(&mut *self.conn, limit));
        Ok(n == 1)
    }

    /// After a wrong value (its slot stays counted): locks `counter` if its count has reached
    /// `limit` (step 2). `true` iff this call set the lock — exactly one of concurrent callers.
    pub fn lock_at_limit(&mut self, counter: Counter, limit: i32) -> Result<bool, StorageError> {
        let limit = limit.max(1);
        let n = on_counter_row!(counter, lock_slot(&mut *self.conn, limit));
        Ok(n == 1)
    }

    /// After a success, in the granting transaction: clears the counter unless the secret is
    /// locked (step 3). `false`: it locked meanwhile (or the row is gone): refuse the grant.
    pub fn clear_attempts(&mut self, counter: Counter) -> Result<bool, StorageError> {
        let n = on_counter_row!(counter, clear_slots(&mut *self.conn));
        Ok(n == 1)
    }

    /// Gives back a slot reserved by an attempt that was neither right nor wrong for this
    /// secret (step 4): one less failure, never below 0. The lock is unchanged.
    pub fn release_attempt(&mut self, counter: Counter) -> Result<(), StorageError> {
        on_counter_row!(counter, release_slot(&mut *self.conn));
        Ok(())
    }

    /// `(failures, locked)` of `counter`, if its row exists.
    pub fn attempts(&mut self, counter: Counter) -> Result<Option<(i32, bool)>, StorageError> {
        Ok(on_counter_row!(counter, read_slots(&mut *self.conn)))
    }
}
