//! Sealed rows: what each security-relevant row's MAC covers, and the read and write helpers
//! that make every read check it and every write rewrite it ([`crate::integrity`]).
//!
//! Each MAC binds the row's identity (its primary key) and its meaning: the fields that decide
//! what the row allows. Creation times and free text (names, descriptions) are left out: an
//! insider who edits them gains nothing.

use std::borrow::Cow;

use chrono::NaiveDateTime;

use crate::connection::Conn;
use crate::error::StorageError;
use crate::integrity::{IntegrityKeys, Violation};
use crate::models::{CredentialRow, FactorRow, SadRow, TokenRow, UserRow};

/// A row type with a `mac` column.
pub(crate) trait Sealed {
    /// The table's name (part of what the MAC covers).
    const TABLE: &'static str;
    /// The covered fields, primary key first, each encoded with the functions below (borrowed
    /// where they can be: a certificate chain is not copied to be MACed).
    fn fields(&self) -> Vec<Cow<'_, [u8]>>;
    /// The stored MAC, if any.
    fn mac(&self) -> Option<&[u8]>;
    /// Sets the MAC.
    fn set_mac(&mut self, mac: Vec<u8>);
    /// The primary key, printable, for the violation report.
    fn row_id(&self) -> String;
}

pub(crate) fn text(s: &str) -> Cow<'_, [u8]> {
    Cow::Borrowed(s.as_bytes())
}
pub(crate) fn bytes(b: &[u8]) -> Cow<'_, [u8]> {
    Cow::Borrowed(b)
}
pub(crate) fn int(i: i64) -> Cow<'static, [u8]> {
    Cow::Owned(i.to_be_bytes().to_vec())
}
pub(crate) fn flag(b: bool) -> Cow<'static, [u8]> {
    Cow::Borrowed(if b { &[1] } else { &[0] })
}
pub(crate) fn time(t: NaiveDateTime) -> Cow<'static, [u8]> {
    int(t.and_utc().timestamp_micros())
}
/// `None` and `Some` encode differently (a leading tag), also for `Some` of an empty value.
pub(crate) fn opt(v: Option<Cow<'_, [u8]>>) -> Cow<'_, [u8]> {
    match v {
        None => Cow::Borrowed(&[0]),
        Some(v) => {
            let mut tagged = Vec::with_capacity(v.len() + 1);
            tagged.push(1);
            tagged.extend_from_slice(&v);
            Cow::Owned(tagged)
        }
    }
}

/// Computes and sets `row`'s MAC.
pub(crate) fn seal<R: Sealed>(keys: &IntegrityKeys, row: &mut R) {
    let fields = row.fields();
    let refs: Vec<&[u8]> = fields.iter().map(AsRef::as_ref).collect();
    let mac = keys.row_mac(R::TABLE, &refs);
    drop(fields);
    row.set_mac(mac);
}

/// Whether `row`'s MAC verifies.
pub(crate) fn intact<R: Sealed>(keys: &IntegrityKeys, row: &R) -> bool {
    let fields = row.fields();
    let refs: Vec<&[u8]> = fields.iter().map(AsRef::as_ref).collect();
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
        // a read under lock, then one write: nothing half-done to undo, so no savepoint
        $conn.in_transaction(|c| {
            let Some(mut row) = $crate::sealed::locked!(c, $table::table.find(key.clone()), $row)?
            else {
                return Ok(None);
            };
            let Some(value) = $crate::sealed::apply(&mut row, $f)? else {
                return Ok(None);
            };
            c.seal(&mut row)?;
            c.note_change_of(<$row as $crate::sealed::Sealed>::TABLE);
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

/// Implements [`Sealed`] for a row type with a `mac: Option<Vec<u8>>` field.
macro_rules! sealed {
    ($row:ty, $table:literal, |$r:ident| id: $id:expr, fields: [$($f:expr),* $(,)?]) => {
        impl Sealed for $row {
            const TABLE: &'static str = $table;
            fn fields(&self) -> Vec<std::borrow::Cow<'_, [u8]>> {
                let $r = self;
                vec![$($f),*]
            }
            fn mac(&self) -> Option<&[u8]> {
                self.mac.as_deref()
            }
            fn set_mac(&mut self, mac: Vec<u8>) {
                self.mac = Some(mac);
            }
            fn row_id(&self) -> String {
                let $r = self;
                $id
            }
        }
    };
}

pub(crate) use sealed;

sealed!(UserRow, "users", |r| id: r.id.clone(), fields: [
    text(&r.id),
    text(&r.name),
    text(&r.password_hash),
    text(&r.role),
    int(r.failed_logins.into()),
    flag(r.locked),
    flag(r.disabled),
]);

sealed!(CredentialRow, "credentials", |r| id: r.id.clone(), fields: [
    text(&r.id),
    text(&r.user_id),
    text(&r.key_id),
    text(&r.key_spec),
    text(&r.cert_chain),
    int(r.scal.into()),
    int(r.multisign.into()),
    text(&r.status),
    text(&r.auth_mode),
    text(&r.factors),
]);

sealed!(FactorRow, "credential_factors", |r| id: format!("{}/{}", r.credential_id, r.kind), fields: [
    text(&r.credential_id),
    text(&r.kind),
    text(&r.verifier),
    int(r.failures.into()),
    flag(r.locked),
    opt(r.last_otp_step.map(int)),
]);

sealed!(TokenRow, "auth_tokens", |r| id: hex::encode(&r.token_hash), fields: [
    bytes(&r.token_hash),
    text(&r.kind),
    opt(r.user_id.as_deref().map(text)),
    opt(r.client_id.as_deref().map(text)),
    text(&r.scope),
    time(r.expires_at),
    flag(r.revoked),
    opt(r.parent_hash.as_deref().map(bytes)),
    opt(r.family.as_deref().map(bytes)),
]);

sealed!(SadRow, "sads", |r| id: hex::encode(&r.sad_hash), fields: [
    bytes(&r.sad_hash),
    text(&r.user_id),
    text(&r.credential_id),
    bytes(&r.token_hash),
    int(r.remaining.into()),
    time(r.expires_at),
    opt(r.hashes.as_deref().map(text)),
    flag(r.revoked),
    time(r.authorized_at),
]);
