//! SAD records: single-use, counted, optionally hash-bound activation data.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::connection::{AnyConnection, Conn};
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{NewSad, Sad, SadRow, encode_b64_list, parse_string_list, sad_may_sign};
use crate::schema::sads as s;
use crate::types::{UserId, truncate_to_micros, utc_now};

/// The SQL expression of [`may_sign`].
type MaySign = diesel::dsl::And<
    diesel::dsl::And<
        diesel::dsl::Eq<s::revoked, bool>,
        diesel::dsl::Gt<s::expires_at, NaiveDateTime>,
    >,
    diesel::dsl::GtEq<s::remaining, i32>,
>;

/// [`sad_may_sign`] as the SQL filter of a conditional update: not revoked, not expired at
/// `now`, at least `n` signatures left.
fn may_sign(n: i32, now: NaiveDateTime) -> MaySign {
    s::revoked
        .eq(false)
        .and(s::expires_at.gt(now))
        .and(s::remaining.ge(n))
}

/// The columns `consume_sad_hashes` and `restore_sad` read under lock.
type LockedSad = (i32, Option<String>, NaiveDateTime, bool);

/// Reads a SAD's count and hash list, locking the row on PostgreSQL (`FOR UPDATE`). On SQLite the
/// caller's IMMEDIATE transaction already holds the database write lock.
fn lock_sad(conn: &mut AnyConnection, hash: &[u8]) -> Result<Option<LockedSad>, StorageError> {
    let cols = (s::remaining, s::hashes, s::expires_at, s::revoked);
    Ok(match conn {
        AnyConnection::Postgresql(c) => s::table
            .find(hash)
            .select(cols)
            .for_update()
            .get_result::<LockedSad>(c)
            .optional()?,
        AnyConnection::Sqlite(c) => s::table
            .find(hash)
            .select(cols)
            .get_result::<LockedSad>(c)
            .optional()?,
    })
}

impl Conn<'_> {
    /// Stores a SAD. [`StorageError::Conflict`] if the hash exists, [`StorageError::NotFound`] if
    /// the user or credential does not.
    pub fn insert_sad(&mut self, new: &NewSad) -> Result<(), StorageError> {
        let row = SadRow {
            sad_hash: new.sad_hash.clone(),
            user_id: new.user_id.to_string(),
            credential_id: new.credential_id.to_string(),
            token_hash: new.token_hash.clone(),
            remaining: new.remaining,
            expires_at: truncate_to_micros(new.expires_at),
            hashes: new.hashes.as_deref().map(encode_b64_list).transpose()?,
            revoked: false,
            created_at: utc_now(),
            mac: None,
        };
        diesel::insert_into(s::table)
            .values(&row)
            .execute(self.conn)
            .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// The SAD with this hash (whatever its state: check [`Sad::is_usable`]).
    pub fn sad(&mut self, hash: &[u8]) -> Result<Option<Sad>, StorageError> {
        s::table
            .find(hash)
            .get_result::<SadRow>(self.conn)
            .optional()?
            .map(Sad::try_from)
            .transpose()
    }

    /// SCAL 1: spends `n` signatures of a SAD in ONE conditional update
    /// (`remaining >= n AND expires_at > now AND NOT revoked`); `true` iff this call won them.
    /// Concurrent callers, on one instance or several sharing PostgreSQL, can never both spend
    /// the last signature. Refuses `n < 1`, and refuses hash-bound (SCAL 2) SADs: those are
    /// spent only through [`Conn::consume_sad_hashes`].
    pub fn consume_sad(
        &mut self,
        hash: &[u8],
        n: i32,
        now: NaiveDateTime,
    ) -> Result<bool, StorageError> {
        if n < 1 {
            return Ok(false);
        }
        let now = truncate_to_micros(now);
        let changed = diesel::update(
            s::table
                .find(hash)
                .filter(may_sign(n, now))
                .filter(s::hashes.is_null()),
        )
        .set(s::remaining.eq(s::remaining - n))
        .execute(self.conn)?;
        Ok(changed == 1)
    }

    /// SCAL 2: spends the hashes `to_spend` (a multiset: each occurrence needs its own stored
    /// occurrence) and as many signatures, atomically; `true` iff all of them were still
    /// unspent and the SAD is usable at `now`. Nothing changes when it returns `false`.
    pub fn consume_sad_hashes(
        &mut self,
        hash: &[u8],
        to_spend: &[Vec<u8>],
        now: NaiveDateTime,
    ) -> Result<bool, StorageError> {
        let Ok(n) = i32::try_from(to_spend.len()) else {
            return Ok(false);
        };
        if n < 1 {
            return Ok(false);
        }
        let now = truncate_to_micros(now);
        let wanted: Vec<String> = to_spend.iter().map(|h| B64.encode(h)).collect();
        self.atomic(|c| {
            let Some((remaining, Some(old_json), expires_at, revoked)) = lock_sad(c, hash)? else {
                return Ok(false);
            };
            if !sad_may_sign(revoked, expires_at, remaining, n, now) {
                return Ok(false);
            }
            let mut left = parse_string_list(&old_json, "SAD hash list")?;
            for w in &wanted {
                match left.iter().position(|h| h == w) {
                    Some(i) => {
                        left.remove(i);
                    }
                    None => return Ok(false),
                }
            }
            let new_json = serde_json::to_string(&left)
                .map_err(|_| StorageError::Corrupt("cannot encode SAD hash list".into()))?;
            // Optimistic guard on top of the lock: the row must be exactly what was read.
            let changed = diesel::update(
                s::table
                    .find(hash)
                    .filter(s::hashes.eq(&old_json))
                    .filter(s::remaining.eq(remaining))
                    .filter(may_sign(n, now)),
            )
            .set((s::remaining.eq(s::remaining - n), s::hashes.eq(new_json)))
            .execute(c)?;
            Ok(changed == 1)
        })
    }

    /// Compensation after a failed HSM operation: gives back `n` signatures and, for SCAL 2, the
    /// `hashes` that were spent (ignored for a SCAL 1 SAD). `true` iff the SAD exists. A
    /// negative `n` counts as 0. Does not revive a revoked or expired SAD.
    pub fn restore_sad(
        &mut self,
        hash: &[u8],
        n: i32,
        hashes: &[Vec<u8>],
    ) -> Result<bool, StorageError> {
        let n = n.max(0);
        if hashes.is_empty() {
            let changed = diesel::update(s::table.find(hash))
                .set(s::remaining.eq(s::remaining + n))
                .execute(self.conn)?;
            return Ok(changed == 1);
        }
        self.atomic(|c| {
            let Some((_, old, _, _)) = lock_sad(c, hash)? else {
                return Ok(false);
            };
            let Some(old_json) = old else {
                // Not hash-bound (SCAL 1): only the count comes back.
                let changed = diesel::update(s::table.find(hash))
                    .set(s::remaining.eq(s::remaining + n))
                    .execute(c)?;
                return Ok(changed == 1);
            };
            let mut list = parse_string_list(&old_json, "SAD hash list")?;
            list.extend(hashes.iter().map(|h| B64.encode(h)));
            let new_json = serde_json::to_string(&list)
                .map_err(|_| StorageError::Corrupt("cannot encode SAD hash list".into()))?;
            let changed = diesel::update(s::table.find(hash))
                .set((s::remaining.eq(s::remaining + n), s::hashes.eq(new_json)))
                .execute(c)?;
            Ok(changed == 1)
        })
    }

    /// Revokes a SAD; `true` iff this call revoked it. Renewal (`extendTransaction`) should
    /// revoke the old SAD and insert the new one in one [`crate::Store::write`], and give up
    /// unless this returned `true`, so a SAD can be renewed only once.
    pub fn revoke_sad(&mut self, hash: &[u8]) -> Result<bool, StorageError> {
        let n = diesel::update(s::table.find(hash).filter(s::revoked.eq(false)))
            .set(s::revoked.eq(true))
            .execute(self.conn)?;
        Ok(n == 1)
    }

    /// Revokes every SAD of `user` that is not revoked yet (a lock, an operator's disable).
    /// Returns how many this call revoked.
    pub fn revoke_user_sads(&mut self, user: &UserId) -> Result<usize, StorageError> {
        Ok(diesel::update(
            s::table
                .filter(s::user_id.eq(user.to_string()))
                .filter(s::revoked.eq(false)),
        )
        .set(s::revoked.eq(true))
        .execute(self.conn)?)
    }
}
