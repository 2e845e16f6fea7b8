//! SAD records: single-use, counted, optionally hash-bound activation data.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, Binary, Integer, Nullable, Text};

use crate::connection::{AnyConnection, Conn};
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{NewSad, Sad, SadRow, encode_b64_list, parse_string_list, sad_may_sign};
use crate::schema::sads as s;
use crate::sealed::{locked, modify};
use crate::types::{CredentialId, UserId, truncate_to_micros, utc_now};

/// What a signHash spends of a SAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SadSpend {
    /// SCAL 1: this many signatures (a SAD not bound to hashes).
    Count(i32),
    /// SCAL 2: these hashes (a multiset), and as many signatures.
    Hashes(Vec<Vec<u8>>),
}

/// The SADs a PostgreSQL batch locked for its declared spends
/// ([`crate::Store::spend_grouped_staged`]), by hash, as the spends before left them, and which
/// of them were spent (to write back at the end of the declared spends).
pub(crate) struct SadBatch {
    rows: HashMap<Vec<u8>, SadRow>,
    spent: BTreeSet<Vec<u8>>,
}

/// What a spend changes (the count, the hash list, the MAC), for every spent SAD of a batch at
/// once.
const WRITE_SPENT_SADS: &str = "UPDATE sads SET remaining = v.remaining, hashes = v.hashes, \
     mac = v.mac FROM unnest($1::bytea[], $2::int4[], $3::text[], $4::bytea[]) \
     AS v(sad_hash, remaining, hashes, mac) WHERE sads.sad_hash = v.sad_hash";

/// THE spending rule on a SAD row: `true` and the row changed iff the SAD may give what
/// `spend` asks at `now` ([`sad_may_sign`]; for hashes, each occurrence still unspent).
fn apply_spend(r: &mut SadRow, spend: &SadSpend, now: NaiveDateTime) -> Result<bool, StorageError> {
    match spend {
        SadSpend::Count(n) => {
            let n = *n;
            if n < 1
                || r.hashes.is_some()
                || !sad_may_sign(r.revoked, r.expires_at, r.remaining, n, now)
            {
                return Ok(false);
            }
            r.remaining -= n;
            Ok(true)
        }
        SadSpend::Hashes(to_spend) => {
            let Ok(n) = i32::try_from(to_spend.len()) else {
                return Ok(false);
            };
            let Some(old_json) = r.hashes.as_deref() else {
                return Ok(false);
            };
            if n < 1 || !sad_may_sign(r.revoked, r.expires_at, r.remaining, n, now) {
                return Ok(false);
            }
            let mut left = parse_string_list(old_json, "SAD hash list")?;
            for h in to_spend {
                let w = B64.encode(h);
                match left.iter().position(|x| *x == w) {
                    Some(i) => {
                        left.remove(i);
                    }
                    None => return Ok(false),
                }
            }
            r.hashes = Some(
                serde_json::to_string(&left)
                    .map_err(|_| StorageError::Corrupt("cannot encode SAD hash list".into()))?,
            );
            r.remaining -= n;
            Ok(true)
        }
    }
}

impl Conn<'_> {
    /// Stores a SAD. [`StorageError::Conflict`] if the hash exists, [`StorageError::NotFound`] if
    /// the user or credential does not.
    pub fn insert_sad(&mut self, new: &NewSad) -> Result<(), StorageError> {
        let mut row = SadRow {
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
            authorized_at: truncate_to_micros(new.authorized_at),
        };
        self.seal(&mut row)?;
        // a declared job's batch inserts its SADs together (crate::declared)
        let Some(row) = self.defer_sad_insert(row) else {
            return Ok(());
        };
        diesel::insert_into(s::table)
            .values(&row)
            .execute(self.conn)
            .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// The SAD with this hash (whatever its state: check [`Sad::is_usable`]).
    pub fn sad(&mut self, hash: &[u8]) -> Result<Option<Sad>, StorageError> {
        let row = s::table
            .find(hash)
            .get_result::<SadRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(Sad::try_from).transpose()
    }

    /// SCAL 1: spends `n` signatures of a SAD atomically, under the row's lock, if
    /// [`sad_may_sign`] at `now`; `true` iff this call won them. Concurrent callers, on one
    /// instance or several sharing PostgreSQL, can never both spend the last signature. Refuses
    /// `n < 1`, and refuses hash-bound (SCAL 2) SADs: those are spent only with
    /// [`SadSpend::Hashes`].
    pub fn consume_sad(
        &mut self,
        hash: &[u8],
        n: i32,
        now: NaiveDateTime,
    ) -> Result<bool, StorageError> {
        self.spend_locked(hash, &SadSpend::Count(n), now)
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
        self.spend_locked(hash, &SadSpend::Hashes(to_spend.to_vec()), now)
    }

    /// signHash's spend with ONE read of the SAD: reads the row under its lock (absent when
    /// its MAC does not verify, as [`Conn::sad`]), hands it to `check`, which refuses (`Err`)
    /// or says what to spend, and spends that under the same lock by the rule of
    /// [`Conn::consume_sad`] / [`Conn::consume_sad_hashes`]. Atomic: in the caller's
    /// transaction, or its own.
    ///
    /// `Ok(Err(e))`: `check` refused, nothing changed. `Ok(Ok(None))`: `check` passed but the
    /// spend does not apply to the row (the spending rule refused it), nothing changed.
    /// `Ok(Ok(Some(spend)))`: spent. The row `check` sees is the row as it is, locked: a lost
    /// race is judged on the winner's result, and no one can change the row before the spend.
    ///
    /// In a PostgreSQL batch's declared spends ([`crate::Store::spend_grouped_staged`]), a SAD
    /// the batch locked is read from and spent on the batch's copy ([`SadBatch`]), written
    /// back with the others at the end of the declared spends.
    pub fn spend_sad_checked<E>(
        &mut self,
        hash: &[u8],
        now: NaiveDateTime,
        check: impl FnOnce(Option<&Sad>) -> Result<SadSpend, E>,
    ) -> Result<Result<Option<SadSpend>, E>, StorageError> {
        let now = truncate_to_micros(now);
        if let Some(copy) = self.sad_batch.as_ref().and_then(|b| b.rows.get(hash)) {
            // the batch's copy, checked as read (its MAC first), stands for the row
            let row = self.admit(copy.clone())?;
            return self.spend_checked(row, now, check, Conn::keep_batch_copy);
        }
        // a read under lock, then one write: nothing half-done to undo, so no savepoint
        self.in_transaction(|c| {
            let row = locked!(c, s::table.find(hash), SadRow)?;
            c.spend_checked(row, now, check, Conn::write_spent_row)
        })
    }

    /// [`Conn::spend_sad_checked`] on `row` (read under lock, its MAC verified; `None` when
    /// absent): `check` on it, then the spend it names, kept by `keep`.
    fn spend_checked<E>(
        &mut self,
        row: Option<SadRow>,
        now: NaiveDateTime,
        check: impl FnOnce(Option<&Sad>) -> Result<SadSpend, E>,
        keep: fn(&mut Self, SadRow) -> Result<bool, StorageError>,
    ) -> Result<Result<Option<SadSpend>, E>, StorageError> {
        let sad = row.clone().map(Sad::try_from).transpose()?;
        let spend = match check(sad.as_ref()) {
            Ok(spend) => spend,
            Err(e) => return Ok(Err(e)),
        };
        let Some(row) = row else {
            return Ok(Ok(None));
        };
        Ok(Ok(self.spend_row(row, &spend, now, keep)?.then_some(spend)))
    }

    /// Keeps a spent, resealed SAD row as the batch's copy, to be written back with the
    /// others ([`Conn::write_spent_sads`]).
    fn keep_batch_copy(&mut self, row: SadRow) -> Result<bool, StorageError> {
        let batch = self
            .sad_batch
            .as_mut()
            .ok_or_else(|| StorageError::Commit("the batch's SADs are gone".into()))?;
        batch.spent.insert(row.sad_hash.clone());
        batch.rows.insert(row.sad_hash.clone(), row);
        Ok(true)
    }

    /// Locks and reads every SAD of `hashes` in one statement, in the order of their hashes,
    /// as the copies the batch's declared spends run on (PostgreSQL; nothing on SQLite, whose
    /// write transaction holds the database). A hash with no row has no copy: a spend of it
    /// reads the table, and finds nothing or what a job of the batch inserted. No hash, no
    /// statement.
    pub(crate) fn lock_sads(&mut self, hashes: &[Vec<u8>]) -> Result<(), StorageError> {
        let AnyConnection::Postgresql(pg) = &mut *self.conn else {
            return Ok(());
        };
        let rows: Vec<SadRow> = if hashes.is_empty() {
            Vec::new()
        } else {
            s::table
                .filter(s::sad_hash.eq_any(hashes))
                .order(s::sad_hash)
                .for_update()
                .load(pg)?
        };
        self.sad_batch = Some(SadBatch {
            rows: rows.into_iter().map(|r| (r.sad_hash.clone(), r)).collect(),
            spent: BTreeSet::new(),
        });
        Ok(())
    }

    /// Writes back every SAD the batch's declared spends changed, in one statement, and drops
    /// the batch's copies. Fails unless every one of those rows was written.
    pub(crate) fn write_spent_sads(&mut self) -> Result<(), StorageError> {
        let Some(mut batch) = self.sad_batch.take() else {
            return Ok(());
        };
        if batch.spent.is_empty() {
            return Ok(());
        }
        let AnyConnection::Postgresql(pg) = &mut *self.conn else {
            return Err(StorageError::Commit("SAD copies outside PostgreSQL".into()));
        };
        let spent: Vec<SadRow> = batch
            .spent
            .iter()
            .filter_map(|h| batch.rows.remove(h))
            .collect();
        let n = diesel::sql_query(WRITE_SPENT_SADS)
            .bind::<Array<Binary>, _>(spent.iter().map(|r| &r.sad_hash).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(spent.iter().map(|r| r.remaining).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                spent
                    .iter()
                    .map(|r| r.hashes.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Binary>>, _>(
                spent.iter().map(|r| r.mac.as_deref()).collect::<Vec<_>>(),
            )
            .execute(pg)?;
        if n != spent.len() {
            return Err(StorageError::Commit(format!(
                "{n} of the batch's {} spent SADs written",
                spent.len()
            )));
        }
        Ok(())
    }

    /// Spends `spend` under the row's lock and reseals the row.
    fn spend_locked(
        &mut self,
        hash: &[u8],
        spend: &SadSpend,
        now: NaiveDateTime,
    ) -> Result<bool, StorageError> {
        let now = truncate_to_micros(now);
        // a read under lock, then one write: nothing half-done to undo, so no savepoint
        self.in_transaction(|c| {
            let Some(row) = locked!(c, s::table.find(hash), SadRow)? else {
                return Ok(false);
            };
            c.spend_row(row, spend, now, Conn::write_spent_row)
        })
    }

    /// Spends `spend` from `row`, read under its lock in this transaction, if [`apply_spend`]
    /// allows it at `now`, reseals it and hands it to `keep` (the table, or a batch's copy).
    /// `true` iff spent and kept.
    fn spend_row(
        &mut self,
        mut row: SadRow,
        spend: &SadSpend,
        now: NaiveDateTime,
        keep: fn(&mut Self, SadRow) -> Result<bool, StorageError>,
    ) -> Result<bool, StorageError> {
        if !apply_spend(&mut row, spend, now)? {
            return Ok(false);
        }
        self.seal(&mut row)?;
        keep(self, row)
    }

    /// Writes what a spend changed of `row` (the hot path of signHash: only the count, the
    /// hash list and the MAC, no timestamps formatted again). `true` iff the row was there.
    fn write_spent_row(&mut self, row: SadRow) -> Result<bool, StorageError> {
        let n = diesel::update(s::table.find(&row.sad_hash))
            .set((
                s::remaining.eq(row.remaining),
                s::hashes.eq(&row.hashes),
                s::mac.eq(&row.mac),
            ))
            .execute(self.conn)?;
        Ok(n == 1)
    }

    /// Compensation after a failed HSM operation: gives back `n` signatures and, for SCAL 2, the
    /// `hashes` that were spent (ignored for a SCAL 1 SAD). `true` iff the SAD exists (and is
    /// intact). A negative `n` counts as 0. Does not revive a revoked or expired SAD.
    pub fn restore_sad(
        &mut self,
        hash: &[u8],
        n: i32,
        hashes: &[Vec<u8>],
    ) -> Result<bool, StorageError> {
        let n = n.max(0);
        let restored = modify!(self, s, SadRow, hash.to_vec(), |r: &mut SadRow| {
            r.remaining = r.remaining.saturating_add(n);
            if let Some(old_json) = r.hashes.as_deref()
                && !hashes.is_empty()
            {
                let mut list = parse_string_list(old_json, "SAD hash list")?;
                list.extend(hashes.iter().map(|h| B64.encode(h)));
                r.hashes =
                    Some(serde_json::to_string(&list).map_err(|_| {
                        StorageError::Corrupt("cannot encode SAD hash list".into())
                    })?);
            }
            Ok(Some(()))
        })?;
        Ok(restored.is_some())
    }

    /// Revokes a SAD; `true` iff this call revoked it. Renewal (`extendTransaction`) should
    /// revoke the old SAD and insert the new one in one [`crate::Store::write`], and give up
    /// unless this returned `true`, so a SAD can be renewed only once.
    pub fn revoke_sad(&mut self, hash: &[u8]) -> Result<bool, StorageError> {
        let revoked = modify!(self, s, SadRow, hash.to_vec(), |r: &mut SadRow| {
            if r.revoked {
                return Ok(None);
            }
            r.revoked = true;
            Ok(Some(()))
        })?;
        Ok(revoked.is_some())
    }

    /// Revokes every SAD of `credential` that is not revoked yet (a disable, revoke or rekey of
    /// the credential). Returns how many this call revoked.
    pub fn revoke_credential_sads(
        &mut self,
        credential: &CredentialId,
    ) -> Result<usize, StorageError> {
        let theirs: Vec<Vec<u8>> = s::table
            .filter(s::credential_id.eq(credential.to_string()))
            .filter(s::revoked.eq(false))
            .select(s::sad_hash)
            .load(self.conn)?;
        self.revoke_sads(&theirs)
    }

    /// Revokes every SAD of `user` that is not revoked yet (a lock, an operator's disable).
    /// Returns how many this call revoked.
    pub fn revoke_user_sads(&mut self, user: &UserId) -> Result<usize, StorageError> {
        let theirs: Vec<Vec<u8>> = s::table
            .filter(s::user_id.eq(user.to_string()))
            .filter(s::revoked.eq(false))
            .select(s::sad_hash)
            .load(self.conn)?;
        self.revoke_sads(&theirs)
    }

    /// Revokes each of these SADs (each a sealed change, [`Conn::revoke_sad`]); how many this
    /// call revoked.
    fn revoke_sads(&mut self, hashes: &[Vec<u8>]) -> Result<usize, StorageError> {
        let mut n = 0;
        for hash in hashes {
            if self.revoke_sad(hash)? {
                n += 1;
            }
        }
        Ok(n)
    }
}
