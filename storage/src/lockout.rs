//! Failure counters of the lockout rule (Part I 7.1.2.5.1), for users' passwords and for
//! credentials' activation factors: one counting statement for both ([`count_failure!`]).
//! Whether a failure set the lock, and what is audited, is the SAM's to decide.

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::models::{Factor, FactorRow, User, UserRow};
use crate::schema::{credential_factors as cf, users};
use crate::sealed::modify;
use crate::types::{CredentialId, FactorKind, UserId};

/// THE counting rule, for passwords and factors: one more failure, and the lock once the count
/// reaches `lock_after` (a value below 1 locks on the first failure). Applied under the row's
/// lock by [`modify!`], so concurrent failures are each counted.
fn count_failure(failures: i32, locked: bool, lock_after: i32) -> (i32, bool) {
    let failures = failures.saturating_add(1);
    (failures, locked || failures >= lock_after)
}

impl Conn<'_> {
    /// Counts one failed login and locks the user at `lock_after` ([`count_failure!`]).
    /// Returns the updated user.
    pub fn record_login_failure(
        &mut self,
        id: &UserId,
        lock_after: i32,
    ) -> Result<User, StorageError> {
        let row = modify!(self, users, UserRow, id.to_string(), |r: &mut UserRow| {
            (r.failed_logins, r.locked) = count_failure(r.failed_logins, r.locked, lock_after);
            Ok(Some(()))
        })?;
        let row = row.ok_or(StorageError::NotFound);
        row.and_then(|()| self.user(id)?.ok_or(StorageError::NotFound))
    }

    /// Counts one failed verification of a credential's factor and locks it at `lock_after`
    /// ([`count_failure!`]). Returns the updated factor.
    pub fn record_factor_failure(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        lock_after: i32,
    ) -> Result<Factor, StorageError> {
        let key = (id.to_string(), kind.as_str().to_owned());
        let row = modify!(self, cf, FactorRow, key, |r: &mut FactorRow| {
            (r.failures, r.locked) = count_failure(r.failures, r.locked, lock_after);
            Ok(Some(()))
        })?;
        row.ok_or(StorageError::NotFound)?;
        self.factor(id, kind)?.ok_or(StorageError::NotFound)
    }

    /// Clears the failed-login counter after a successful login; the lock is unchanged.
    pub fn reset_login_failures(&mut self, id: &UserId) -> Result<(), StorageError> {
        modify!(self, users, UserRow, id.to_string(), |r: &mut UserRow| {
            r.failed_logins = 0;
            Ok(Some(()))
        })?
        .ok_or(StorageError::NotFound)
    }
}
