//! Sealed rows: what each security-relevant row's MAC covers, and the read and write helpers
//! that make every read check it and every write rewrite it ([`crate::integrity`]).
//!
//! Each MAC binds the row's identity (its primary key) and its meaning: the fields that decide
//! what the row allows. Creation times and free text (names, descriptions) are left out: an
//! insider who edits them gains nothing.

use chrono::NaiveDateTime;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::integrity::{IntegrityKeys, Violation};
use crate::models::{CredentialRow, FactorRow, SadRow, TokenRow, UserRow};

/// A row type with a `mac` column.
pub(crate) trait Sealed {
    /// The table's name (part of what the MAC covers).
    const TABLE: &'static str;
    /// The covered fields, primary key first, each encoded with the functions below.
    fn fields(&self) -> Vec<Vec<u8>>;
    /// The stored MAC, if any.
    fn mac(&self) -> Option<&[u8]>;
    /// Sets the MAC.
    fn set_mac(&mut self, mac: Vec<u8>);
    /// The primary key, printable, for the violation report.
    fn row_id(&self) -> String;
}

pub(crate) fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
pub(crate) fn bytes(b: &[u8]) -> Vec<u8> {
    b.to_vec()
}
pub(crate) fn int(i: i64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}
pub(crate) fn flag(b: bool) -> Vec<u8> {
    vec![u8::from(b)]
}
pub(crate) fn time(t: NaiveDateTime) -> Vec<u8> {
    int(t.and_utc().timestamp_micros())
}
/// `None` and `Some` encode differently (a leading tag), also for `Some` of an empty value.
pub(crate) fn opt(v: Option<Vec<u8>>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(mut v) => {
            v.insert(0, 1);
            v
        }
    }
}

/// Computes and sets `row`'s MAC.
pub(crate) fn seal<R: Sealed>(keys: &IntegrityKeys, row: &mut R) {
    let fields = row.fields();
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    row.set_mac(keys.row_mac(R::TABLE, &refs));
}

/// Whether `row`'s MAC verifies.
pub(crate) fn intact<R: Sealed>(keys: &IntegrityKeys, row: &R) -> bool {
    let fields = row.fields();
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    keys.row_mac_ok(R::TABLE, &refs, row.mac())
}

impl Conn<'_> {
    /// Seals a row about to be written.
    pub(crate) fn seal<R: Sealed>(&self, row: &mut R) -> Result<(), StorageError> {
        seal(self.keys()?, row);
        Ok(())
    }

    /// A row just read, if its MAC verifies; otherwise `None` (the row is treated as absent)
    /// and the violation is reported.
    pub(crate) fn admit<R: Sealed>(&self, row: R) -> Result<Option<R>, StorageError> {
        if intact(self.keys()?, &row) {
            return Ok(Some(row));
        }
        self.violations.push(Violation {
            table: R::TABLE,
            row: row.row_id(),
        });
        Ok(None)
    }

    /// [`Conn::admit`] for an optional row.
    pub(crate) fn admit_opt<R: Sealed>(&self, row: Option<R>) -> Result<Option<R>, StorageError> {
        match row {
            Some(r) => self.admit(r),
            None => Ok(None),
        }
    }

    /// [`Conn::admit`] for many rows: those that fail are left out (and reported).
    pub(crate) fn admit_all<R: Sealed>(&self, rows: Vec<R>) -> Result<Vec<R>, StorageError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(r) = self.admit(r)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Reads one row of `$query` (a `find`) under a row lock on PostgreSQL (`FOR UPDATE`; on SQLite
/// the write transaction already holds the database lock), as `$row` type, then checks its MAC.
/// Evaluates to `Result<Option<$row>, StorageError>`.
macro_rules! locked {
    ($c:expr, $query:expr, $row:ty) => {{
        let c: &mut $crate::connection::Conn<'_> = $c;
        let found = match &mut *c.conn {
            $crate::connection::AnyConnection::Postgresql(pg) => {
                $query.for_update().get_result::<$row>(pg).optional()?
            }
            $crate::connection::AnyConnection::Sqlite(sq) => {
                $query.get_result::<$row>(sq).optional()?
            }
        };
        c.admit_opt(found)
    }};
}
pub(crate) use locked;

/// Changes one sealed row atomically: reads it under lock ([`locked!`]), lets `$f` change it
/// (`$f: FnOnce(&mut Row) -> Result<Option<T>>`; `None` leaves the row as it is), reseals it and
/// writes it back whole. Evaluates to `Result<Option<T>, StorageError>`: `None` when the row is
/// absent (or its MAC is bad) or `$f` declined.
macro_rules! modify {
    ($conn:expr, $table:ident, $row:ty, $key:expr, $f:expr) => {{
        let key = $key;
        $conn.atomic_conn(|c| {
            let Some(mut row) = $crate::sealed::locked!(c, $table::table.find(key.clone()), $row)?
            else {
                return Ok(None);
            };
            let Some(value) = $crate::sealed::apply(&mut row, $f)? else {
                return Ok(None);
            };
            c.seal(&mut row)?;
            let n = diesel::update($table::table.find(key))
                .set(&row)
                .execute(c.conn)?;
            Ok((n == 1).then_some(value))
        })
    }};
}
pub(crate) use modify;

/// Gives [`modify!`]'s closure its type.
pub(crate) fn apply<R, T>(
    row: &mut R,
    f: impl FnOnce(&mut R) -> Result<Option<T>, StorageError>,
) -> Result<Option<T>, StorageError> {
    f(row)
}

impl Sealed for UserRow {
    const TABLE: &'static str = "users";
    fn fields(&self) -> Vec<Vec<u8>> {
        vec![
            text(&self.id),
            text(&self.name),
            text(&self.password_hash),
            text(&self.role),
            int(self.failed_logins.into()),
            flag(self.locked),
        ]
    }
    fn mac(&self) -> Option<&[u8]> {
        self.mac.as_deref()
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = Some(mac);
    }
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

impl Sealed for CredentialRow {
    const TABLE: &'static str = "credentials";
    fn fields(&self) -> Vec<Vec<u8>> {
        vec![
            text(&self.id),
            text(&self.user_id),
            text(&self.key_id),
            text(&self.key_spec),
            text(&self.cert_chain),
            int(self.scal.into()),
            int(self.multisign.into()),
            text(&self.status),
            text(&self.auth_mode),
            text(&self.factors),
        ]
    }
    fn mac(&self) -> Option<&[u8]> {
        self.mac.as_deref()
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = Some(mac);
    }
    fn row_id(&self) -> String {
        self.id.clone()
    }
}

impl Sealed for FactorRow {
    const TABLE: &'static str = "credential_factors";
    fn fields(&self) -> Vec<Vec<u8>> {
        vec![
            text(&self.credential_id),
            text(&self.kind),
            text(&self.verifier),
            int(self.failures.into()),
            flag(self.locked),
            opt(self.last_otp_step.map(int)),
        ]
    }
    fn mac(&self) -> Option<&[u8]> {
        self.mac.as_deref()
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = Some(mac);
    }
    fn row_id(&self) -> String {
        format!("{}/{}", self.credential_id, self.kind)
    }
}

impl Sealed for TokenRow {
    const TABLE: &'static str = "auth_tokens";
    fn fields(&self) -> Vec<Vec<u8>> {
        vec![
            bytes(&self.token_hash),
            text(&self.kind),
            opt(self.user_id.as_deref().map(text)),
            opt(self.client_id.as_deref().map(text)),
            text(&self.scope),
            time(self.expires_at),
            flag(self.revoked),
            opt(self.parent_hash.as_deref().map(bytes)),
        ]
    }
    fn mac(&self) -> Option<&[u8]> {
        self.mac.as_deref()
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = Some(mac);
    }
    fn row_id(&self) -> String {
        hex::encode(&self.token_hash)
    }
}

impl Sealed for SadRow {
    const TABLE: &'static str = "sads";
    fn fields(&self) -> Vec<Vec<u8>> {
        vec![
            bytes(&self.sad_hash),
            text(&self.user_id),
            text(&self.credential_id),
            bytes(&self.token_hash),
            int(self.remaining.into()),
            time(self.expires_at),
            opt(self.hashes.as_deref().map(text)),
            flag(self.revoked),
        ]
    }
    fn mac(&self) -> Option<&[u8]> {
        self.mac.as_deref()
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = Some(mac);
    }
    fn row_id(&self) -> String {
        hex::encode(&self.sad_hash)
    }
}
