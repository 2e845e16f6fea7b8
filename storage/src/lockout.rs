//! Failure counters of the lockout rule (Part I 7.1.2.5.1), for users' passwords and for
//! credentials' activation factors: one counting statement for both ([`count_failure!`]).
//! Whether a failure set the lock, and what is audited, is the SAM's to decide.

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::models::{Factor, FactorRow, User, UserRow};
use crate::schema::{credential_factors as cf, users};
use crate::types::{CredentialId, FactorKind, UserId};
use crate::users::one_row;

/// Counts one failure of the row `$key` of `$table`, atomically, and locks it when the count
/// reaches `$lock_after` (a value below 1 locks on the first failure): ONE conditional update
/// (`failures + 1 >= lock_after` is `failures >= lock_after - 1` on the old value in SET), so
/// concurrent failures are each counted and exactly one of them reaches the limit.
macro_rules! count_failure {
    ($conn:expr, $table:ident, $key:expr, $failures:ident, $locked:ident, $lock_after:expr) => {{
        let threshold: i32 = $lock_after.saturating_sub(1);
        let n = diesel::update($table::table.find($key))
            .set((
                $table::$failures.eq($table::$failures + 1),
                $table::$locked.eq($table::$locked.or($table::$failures.ge(threshold))),
            ))
            .execute($conn)?;
        one_row(n)
    }};
}

impl Conn<'_> {
    /// Counts one failed login and locks the user at `lock_after` ([`count_failure!`]).
    /// Returns the updated user.
    pub fn record_login_failure(
        &mut self,
        id: &UserId,
        lock_after: i32,
    ) -> Result<User, StorageError> {
        let id = id.to_string();
        self.atomic(|c| {
            count_failure!(c, users, &id, failed_logins, locked, lock_after)?;
            User::try_from(users::table.find(&id).get_result::<UserRow>(c)?)
        })
    }

    /// Counts one failed verification of a credential's factor and locks it at `lock_after`
    /// ([`count_failure!`]). Returns the updated factor.
    pub fn record_factor_failure(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        lock_after: i32,
    ) -> Result<Factor, StorageError> {
        let key = (id.to_string(), kind.as_str());
        self.atomic(|c| {
            count_failure!(c, cf, (&key.0, key.1), failures, locked, lock_after)?;
            Factor::try_from(cf::table.find((&key.0, key.1)).get_result::<FactorRow>(c)?)
        })
    }

    /// Clears the failed-login counter after a successful login; the lock is unchanged.
    pub fn reset_login_failures(&mut self, id: &UserId) -> Result<(), StorageError> {
        let n = diesel::update(users::table.find(id.to_string()))
            .set(users::failed_logins.eq(0))
            .execute(self.conn)?;
        one_row(n)
    }
}
