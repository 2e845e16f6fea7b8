//! Login lockout (Part I 7.1.2.5.1): consecutive failed logins counted atomically, the user
//! locked at a limit until an administrator unlocks it ([`Conn::set_user_lock`]).

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::models::{User, UserRow};
use crate::schema::users;
use crate::types::UserId;
use crate::users::one_row;

impl Conn<'_> {
    /// Counts one failed login, atomically, and locks the user when the count reaches
    /// `lock_after` (a value below 1 locks on the first failure). Returns the updated user, so
    /// the caller can tell whether this failure set the lock (`locked && failed_logins ==
    /// lock_after`: exactly one of several concurrent failures sees that).
    pub fn record_login_failure(
        &mut self,
        id: &UserId,
        lock_after: i32,
    ) -> Result<User, StorageError> {
        let id = id.to_string();
        let threshold = lock_after.saturating_sub(1);
        self.atomic(|c| {
            let n = diesel::update(users::table.find(&id))
                .set((
                    users::failed_logins.eq(users::failed_logins + 1),
                    users::locked.eq(users::locked.or(users::failed_logins.ge(threshold))),
                ))
                .execute(c)?;
            one_row(n)?;
            User::try_from(users::table.find(&id).get_result::<UserRow>(c)?)
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
