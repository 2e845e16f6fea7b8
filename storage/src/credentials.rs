//! Credentials.

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{Credential, CredentialRow, NewCredential, User, UserRow, encode_b64_list};
use crate::schema::{credential_factors, credentials, sads, users};
use crate::sealed::{locked, modify};
use crate::types::{CredentialId, CredentialStatus, UserId, utc_now};
use crate::users::one_row;

impl Conn<'_> {
    /// Stores a new credential. [`StorageError::NotFound`] if the owner does not exist,
    /// [`StorageError::Conflict`] if the id is taken.
    pub fn create_credential(&mut self, new: &NewCredential) -> Result<Credential, StorageError> {
        let mut row = CredentialRow {
            id: new.id.to_string(),
            user_id: new.user_id.to_string(),
            key_id: new.key_id.clone(),
            key_spec: new.key_spec.clone(),
            cert_chain: encode_b64_list(&new.cert_chain)?,
            cert_serial: new.cert_serial.clone(),
            scal: new.scal.as_i32(),
            multisign: new.multisign,
            status: new.status.as_str().to_owned(),
            auth_mode: new.auth_mode.as_str().to_owned(),
            description: new.description.clone(),
            created_at: utc_now(),
            factors: String::new(),
            mac: None,
        };
        self.seal(&mut row)?;
        diesel::insert_into(credentials::table)
            .values(&row)
            .execute(self.conn)
            .map_err(fk_as_not_found)?;
        Credential::try_from(row)
    }

    /// The credential with this id.
    pub fn credential(&mut self, id: &CredentialId) -> Result<Option<Credential>, StorageError> {
        let row = credentials::table
            .find(id.to_string())
            .get_result::<CredentialRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(Credential::try_from).transpose()
    }

    /// The credential with this id, its row locked until the end of the transaction on
    /// PostgreSQL (`FOR UPDATE`; on SQLite a [`crate::Store::write`] holds the write lock). A
    /// transaction that issues a SAD reads it so: a concurrent disable, revoke or rekey (an
    /// update of the row, which revokes the credential's SADs) either waits for it, and
    /// revokes the new SAD, or commits first, and the issuing transaction sees it.
    pub fn credential_for_update(
        &mut self,
        id: &CredentialId,
    ) -> Result<Option<Credential>, StorageError> {
        let row = match self.credential_copy(id) {
            // a declared job's batch holds it locked (crate::declared)
            Some(copy) => self.admit_opt(copy)?,
            None => locked!(self, credentials::table.find(id.to_string()), CredentialRow)?,
        };
        row.map(Credential::try_from).transpose()
    }

    /// A page of the user's credentials, ordered by id: at most `limit` of them, starting after
    /// `after` (exclusive) when given.
    pub fn credentials_of_user(
        &mut self,
        user: &UserId,
        after: Option<&CredentialId>,
        limit: i64,
    ) -> Result<Vec<Credential>, StorageError> {
        let mut q = credentials::table
            .filter(credentials::user_id.eq(user.to_string()))
            .order(credentials::id.asc())
            .limit(limit.max(0))
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(credentials::id.gt(after.to_string()));
        }
        let rows = q.load::<CredentialRow>(self.conn)?;
        self.admit_all(rows)?
            .into_iter()
            .map(Credential::try_from)
            .collect()
    }

    /// Every credential with its owner, ordered by user name then credential id; only those of
    /// `user_name` when given.
    pub fn list_credentials(
        &mut self,
        user_name: Option<&str>,
    ) -> Result<Vec<(User, Credential)>, StorageError> {
        let mut q = users::table
            .inner_join(credentials::table)
            .order((users::name.asc(), credentials::id.asc()))
            .into_boxed();
        if let Some(name) = user_name {
            q = q.filter(users::name.eq(name));
        }
        let mut out = Vec::new();
        for (u, c) in q.load::<(UserRow, CredentialRow)>(self.conn)? {
            if let (Some(u), Some(c)) = (self.admit(u)?, self.admit(c)?) {
                out.push((User::try_from(u)?, Credential::try_from(c)?));
            }
        }
        Ok(out)
    }

    /// Replaces the certificate chain (DER, signer first) and the signer's hex serial number.
    pub fn set_certificate_chain(
        &mut self,
        id: &CredentialId,
        chain: &[Vec<u8>],
        serial_hex: Option<&str>,
    ) -> Result<(), StorageError> {
        let json = encode_b64_list(chain)?;
        modify!(
            self,
            credentials,
            CredentialRow,
            id.to_string(),
            |r: &mut CredentialRow| {
                r.cert_chain = json;
                r.cert_serial = serial_hex.map(str::to_owned);
                Ok(Some(()))
            }
        )?
        .ok_or(StorageError::NotFound)
    }

    /// Enables or disables a credential.
    pub fn set_credential_status(
        &mut self,
        id: &CredentialId,
        status: CredentialStatus,
    ) -> Result<(), StorageError> {
        modify!(
            self,
            credentials,
            CredentialRow,
            id.to_string(),
            |r: &mut CredentialRow| {
                r.status = status.as_str().to_owned();
                Ok(Some(()))
            }
        )?
        .ok_or(StorageError::NotFound)
    }

    /// Replaces a credential's key (rekey): the token key id, its spec, the certificate chain
    /// (DER, signer first; empty while a CSR awaits the CA) and the signer's hex serial.
    pub fn set_credential_key(
        &mut self,
        id: &CredentialId,
        key_id: &str,
        key_spec: &str,
        chain: &[Vec<u8>],
        serial_hex: Option<&str>,
    ) -> Result<(), StorageError> {
        let json = encode_b64_list(chain)?;
        modify!(
            self,
            credentials,
            CredentialRow,
            id.to_string(),
            |r: &mut CredentialRow| {
                r.key_id = key_id.to_owned();
                r.key_spec = key_spec.to_owned();
                r.cert_chain = json;
                r.cert_serial = serial_hex.map(str::to_owned);
                Ok(Some(()))
            }
        )?
        .ok_or(StorageError::NotFound)
    }

    /// Deletes a credential with its factors and SADs. [`StorageError::NotFound`] if absent.
    /// The key in the token is the caller's business.
    pub fn delete_credential(&mut self, id: &CredentialId) -> Result<(), StorageError> {
        let id = id.to_string();
        self.note_change();
        self.atomic(|c| {
            diesel::delete(
                credential_factors::table.filter(credential_factors::credential_id.eq(&id)),
            )
            .execute(c)?;
            diesel::delete(sads::table.filter(sads::credential_id.eq(&id))).execute(c)?;
            let n = diesel::delete(credentials::table.find(&id)).execute(c)?;
            one_row(n)
        })
    }
}
