//! Users.

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::models::{NewUser, User, UserRow};
use crate::schema::users;
use crate::sealed::{locked, modify};
use crate::types::{UserId, utc_now};

impl Conn<'_> {
    /// Creates a user with a fresh id. [`StorageError::Conflict`] if the name is taken.
    pub fn create_user(&mut self, new: &NewUser) -> Result<User, StorageError> {
        let mut row = UserRow {
            id: UserId::new().to_string(),
            name: new.name.clone(),
            password_hash: new.password_hash.clone(),
            role: new.role.as_str().to_owned(),
            failed_logins: 0,
            locked: false,
            created_at: utc_now(),
            mac: None,
            disabled: false,
        };
        self.seal(&mut row)?;
        diesel::insert_into(users::table)
            .values(&row)
            .execute(self.conn)
            .map_err(|e| match StorageError::from(e) {
                StorageError::Conflict(_) => {
                    StorageError::Conflict("a user with this name already exists".into())
                }
                other => other,
            })?;
        User::try_from(row)
    }

    /// The user with this login name.
    pub fn user_by_name(&mut self, name: &str) -> Result<Option<User>, StorageError> {
        let row = users::table
            .filter(users::name.eq(name))
            .get_result::<UserRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(User::try_from).transpose()
    }

    /// The user with this id.
    pub fn user(&mut self, id: &UserId) -> Result<Option<User>, StorageError> {
        let row = users::table
            .find(id.to_string())
            .get_result::<UserRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(User::try_from).transpose()
    }

    /// All users, ordered by name.
    pub fn list_users(&mut self) -> Result<Vec<User>, StorageError> {
        let rows = users::table
            .order(users::name.asc())
            .load::<UserRow>(self.conn)?;
        self.admit_all(rows)?
            .into_iter()
            .map(User::try_from)
            .collect()
    }

    /// Sets the failed-login counter and the lock flag. [`StorageError::NotFound`] if no such
    /// user.
    pub fn set_user_lock(
        &mut self,
        id: &UserId,
        failed_logins: i32,
        locked: bool,
    ) -> Result<(), StorageError> {
        modify!(self, users, UserRow, id.to_string(), |r: &mut UserRow| {
            r.failed_logins = failed_logins;
            r.locked = locked;
            Ok(Some(()))
        })?
        .ok_or(StorageError::NotFound)
    }

    /// Sets the operator's `disabled` flag. [`StorageError::NotFound`] if no such user.
    pub fn set_user_disabled(&mut self, id: &UserId, disabled: bool) -> Result<(), StorageError> {
        modify!(self, users, UserRow, id.to_string(), |r: &mut UserRow| {
            r.disabled = disabled;
            Ok(Some(()))
        })?
        .ok_or(StorageError::NotFound)
    }

    /// The user with this id, its row locked until the end of the transaction on PostgreSQL
    /// (`FOR UPDATE`; on SQLite a [`crate::Store::write`] holds the database write lock). A
    /// transaction that issues something for a user reads it so: a concurrent lock or disable
    /// (an update of the same row) then either waits for it, and revokes what it issued, or
    /// commits first, and the issuing transaction sees it.
    pub fn user_for_update(&mut self, id: &UserId) -> Result<Option<User>, StorageError> {
        locked!(self, users::table.find(id.to_string()), UserRow)?
            .map(User::try_from)
            .transpose()
    }

    /// Replaces the password hash (an Argon2 PHC string). [`StorageError::NotFound`] if no such
    /// user.
    pub fn set_user_password(
        &mut self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<(), StorageError> {
        modify!(self, users, UserRow, id.to_string(), |r: &mut UserRow| {
            r.password_hash = password_hash.to_owned();
            Ok(Some(()))
        })?
        .ok_or(StorageError::NotFound)
    }
}

impl Conn<'_> {
    /// Deletes a user and everything of theirs, in one transaction: their credentials (with
    /// factors, SADs, online OTPs and OAuth 2.0 codes, by cascade), tokens, SADs, pending OAuth
    /// 2.0 requests and codes, and client delegations. The keys in the token are the caller's
    /// business. [`StorageError::NotFound`] if no such user.
    pub fn delete_user(&mut self, id: &UserId) -> Result<(), StorageError> {
        use crate::schema::{
            auth_tokens, client_delegations, credentials, oauth_codes, oauth_requests, sads,
        };
        let id = id.to_string();
        // cached token and credential rows of this user drop at once (`Store::epoch`)
        self.note_change();
        self.atomic(|c| {
            diesel::delete(sads::table.filter(sads::user_id.eq(&id))).execute(c)?;
            diesel::delete(oauth_codes::table.filter(oauth_codes::user_id.eq(&id))).execute(c)?;
            diesel::delete(oauth_requests::table.filter(oauth_requests::user_id.eq(&id)))
                .execute(c)?;
            diesel::delete(auth_tokens::table.filter(auth_tokens::user_id.eq(&id))).execute(c)?;
            diesel::delete(client_delegations::table.filter(client_delegations::user_id.eq(&id)))
                .execute(c)?;
            // factors, online OTPs and the rest follow their credential (ON DELETE CASCADE)
            diesel::delete(credentials::table.filter(credentials::user_id.eq(&id))).execute(c)?;
            let n = diesel::delete(users::table.find(&id)).execute(c)?;
            one_row(n)
        })
    }
}

/// `Ok` if an update touched a row, [`StorageError::NotFound`] otherwise.
pub(crate) fn one_row(n: usize) -> Result<(), StorageError> {
    if n == 0 {
        Err(StorageError::NotFound)
    } else {
        Ok(())
    }
}
