//! Client delegations: which users an OAuth 2.0 client's own tokens (`client_credentials`, which
//! name no user) may act for. An operator grants and withdraws them (`csc-server client
//! delegate|undelegate`); whether a client may act is the SAM's to decide.
//!
//! Each row is sealed with a MAC ([`crate::integrity`]) binding the client and the user: an
//! insider cannot add a delegation, nor re-point one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::connection::{Conn, on_backend};
use crate::error::{StorageError, fk_as_not_found};
use crate::schema::client_delegations as cd;
use crate::sealed::{Sealed, sealed, text};
use crate::types::{UserId, utc_now};

/// A user an OAuth 2.0 client may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDelegation {
    /// The client (`client_id`).
    pub client_id: String,
    /// The user it may act for.
    pub user_id: UserId,
    /// When the operator delegated (UTC).
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = cd)]
#[diesel(treat_none_as_null = true)]
struct DelegationRow {
    client_id: String,
    user_id: String,
    created_at: NaiveDateTime,
    mac: Option<Vec<u8>>,
}

// the MAC binds the pair: a row naming another user (or client) does not verify
sealed!(DelegationRow, "client_delegations", |r| id: format!("{}/{}", r.client_id, r.user_id), fields: [
    text(&r.client_id),
    text(&r.user_id),
]);

impl TryFrom<DelegationRow> for ClientDelegation {
    type Error = StorageError;
    fn try_from(r: DelegationRow) -> Result<Self, StorageError> {
        Ok(ClientDelegation {
            client_id: r.client_id,
            user_id: r
                .user_id
                .parse()
                .map_err(|_| StorageError::Corrupt("invalid user id in the database".into()))?,
            created_at: r.created_at,
        })
    }
}

impl Conn<'_> {
    /// Lets `client_id`'s own tokens act for `user`: `true` iff this call added the delegation
    /// (`false`: it existed already, unchanged). [`StorageError::NotFound`] if the client or the
    /// user does not exist.
    pub fn insert_client_delegation(
        &mut self,
        client_id: &str,
        user: &UserId,
    ) -> Result<bool, StorageError> {
        let mut row = DelegationRow {
            client_id: client_id.to_owned(),
            user_id: user.to_string(),
            created_at: utc_now(),
            mac: None,
        };
        self.seal(&mut row)?;
        let n = on_backend!(&mut *self.conn, c => diesel::insert_into(cd::table)
            .values(&row)
            .on_conflict((cd::client_id, cd::user_id))
            .do_nothing()
            .execute(c))
        .map_err(fk_as_not_found)?;
        Ok(n == 1)
    }

    /// Withdraws a delegation: `true` iff this call removed it.
    pub fn delete_client_delegation(
        &mut self,
        client_id: &str,
        user: &UserId,
    ) -> Result<bool, StorageError> {
        Ok(diesel::delete(cd::table.find((client_id, user.to_string()))).execute(self.conn)? == 1)
    }

    /// The delegation of `user` to `client_id`, if any.
    pub fn client_delegation(
        &mut self,
        client_id: &str,
        user: &UserId,
    ) -> Result<Option<ClientDelegation>, StorageError> {
        let row = cd::table
            .find((client_id, user.to_string()))
            .get_result::<DelegationRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?
            .map(ClientDelegation::try_from)
            .transpose()
    }

    /// Every delegation, by client then user id.
    pub fn list_client_delegations(&mut self) -> Result<Vec<ClientDelegation>, StorageError> {
        let rows = cd::table
            .order((cd::client_id.asc(), cd::user_id.asc()))
            .load::<DelegationRow>(self.conn)?;
        self.admit_all(rows)?
            .into_iter()
            .map(ClientDelegation::try_from)
            .collect()
    }
}
