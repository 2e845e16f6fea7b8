//! The rows a grouped job declares on PostgreSQL ([`crate::Store::write_grouped_declared_async`]):
//! a key activation's factor counters, the credential it reads under lock, the SADs it issues.
//!
//! A PostgreSQL batch holds the audit head from its first statement to its commit, so every
//! round trip inside it is paid by every instance's batches in turn (see the group module).
//! A job run the plain way pays one round trip for its savepoint and one per statement: a
//! key activation (`credentials/authorize`) paid three for its slot reservation and six for
//! its outcome. Declared jobs pay none of their own: the batch locks and reads every declared
//! credential and every factor of them in one statement each ([`Conn::lock_declared`]), runs
//! the jobs on those copies ([`RowBatch`]: the factor reads and changes of the lockout rule,
//! the OTP step, the credential read under lock, the SADs issued, kept in memory), and writes
//! the changed factor rows back in one statement and the new SADs in one more
//! ([`Conn::write_declared`]).
//!
//! A declared job is undone without a savepoint: the batch keeps a [`Snapshot`] of the
//! copies before it runs and restores it if the job fails. That undoes everything only if
//! the job sent no statement of its own; one that did and then failed fails the whole batch
//! (the group module checks, with [`crate::connection::sent_here`]).

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Bool, Integer, Nullable, Text};

use crate::connection::{AnyConnection, Conn};
use crate::error::StorageError;
use crate::models::{CredentialRow, FactorRow, SadRow};
use crate::schema::{credential_factors as cf, credentials, sads};
use crate::types::{CredentialId, FactorKind};

/// The rows a grouped job reads and changes, declared when it is queued
/// ([`crate::Store::write_grouped_declared_async`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredRows {
    /// Credentials whose factor rows (every kind) the job reads and changes
    /// ([`Conn::factor`], the lockout steps, [`Conn::advance_otp_step`]).
    pub factors_of: Vec<CredentialId>,
    /// Credentials the job reads under lock ([`Conn::credential_for_update`]).
    pub credentials: Vec<CredentialId>,
}

impl DeclaredRows {
    /// The factor rows of `credential`, and the credential under lock when `grant`.
    pub fn activation(credential: CredentialId, grant: bool) -> DeclaredRows {
        DeclaredRows {
            factors_of: vec![credential],
            credentials: if grant { vec![credential] } else { Vec::new() },
        }
    }
}

/// A factor row's key.
type FactorKey = (String, String);

/// The copies the declared jobs of a PostgreSQL batch run on.
#[derive(Default)]
pub(crate) struct RowBatch {
    /// The credentials whose factor rows the batch locked (those that have none included).
    factors_of: BTreeSet<String>,
    factors: HashMap<FactorKey, FactorRow>,
    changed: BTreeSet<FactorKey>,
    /// The credentials the batch locked (those that do not exist included).
    locked_credentials: BTreeSet<String>,
    credentials: HashMap<String, CredentialRow>,
    new_sads: Vec<SadRow>,
}

/// The copies as they were before a declared job ran, to restore if it fails.
pub(crate) struct Snapshot {
    factors: HashMap<FactorKey, FactorRow>,
    changed: BTreeSet<FactorKey>,
    new_sads: usize,
}

/// Writes every changed factor row of a batch back in one statement (the verifier too: a
/// declared job may change any column of its factor rows).
const WRITE_FACTORS: &str = "UPDATE credential_factors SET verifier = v.verifier, \
     failures = v.failures, locked = v.locked, last_otp_step = v.last_otp_step, mac = v.mac \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::bool[], $6::int8[], \
     $7::bytea[]) AS v(credential_id, kind, verifier, failures, locked, last_otp_step, mac) \
     WHERE credential_factors.credential_id = v.credential_id AND credential_factors.kind = v.kind";

impl Conn<'_> {
    /// Locks and reads, in one statement each, every credential in `credentials` and every
    /// factor row of the credentials in `factors_of`, in key order, as the copies the batch's
    /// declared jobs run on (PostgreSQL only). An empty set sends no statement.
    pub(crate) fn lock_declared(
        &mut self,
        factors_of: &BTreeSet<String>,
        credentials: &BTreeSet<String>,
    ) -> Result<(), StorageError> {
        let AnyConnection::Postgresql(pg) = &mut *self.conn else {
            return Err(StorageError::Commit(
                "declared rows outside PostgreSQL".into(),
            ));
        };
        let mut batch = RowBatch {
            factors_of: factors_of.clone(),
            locked_credentials: credentials.clone(),
            ..RowBatch::default()
        };
        if !credentials.is_empty() {
            let rows: Vec<CredentialRow> = credentials::table
                .filter(credentials::id.eq_any(credentials))
                .order(credentials::id)
                .for_update()
                .load(pg)?;
            batch.credentials = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        }
        if !factors_of.is_empty() {
            let rows: Vec<FactorRow> = cf::table
                .filter(cf::credential_id.eq_any(factors_of))
                .order((cf::credential_id, cf::kind))
                .for_update()
                .load(pg)?;
            batch.factors = rows
                .into_iter()
                .map(|r| ((r.credential_id.clone(), r.kind.clone()), r))
                .collect();
        }
        self.row_batch = Some(batch);
        Ok(())
    }

    /// Writes back every factor row the declared jobs changed (one statement) and inserts
    /// every SAD they issued (one more), and drops the copies. Fails unless every changed row
    /// was written.
    pub(crate) fn write_declared(&mut self) -> Result<(), StorageError> {
        let Some(mut batch) = self.row_batch.take() else {
            return Ok(());
        };
        let AnyConnection::Postgresql(pg) = &mut *self.conn else {
            return Err(StorageError::Commit(
                "declared rows outside PostgreSQL".into(),
            ));
        };
        let changed: Vec<FactorRow> = batch
            .changed
            .iter()
            .filter_map(|k| batch.factors.remove(k))
            .collect();
        if !changed.is_empty() {
            let n = diesel::sql_query(WRITE_FACTORS)
                .bind::<Array<Text>, _>(
                    changed.iter().map(|r| &r.credential_id).collect::<Vec<_>>(),
                )
                .bind::<Array<Text>, _>(changed.iter().map(|r| &r.kind).collect::<Vec<_>>())
                .bind::<Array<Text>, _>(changed.iter().map(|r| &r.verifier).collect::<Vec<_>>())
                .bind::<Array<Integer>, _>(changed.iter().map(|r| r.failures).collect::<Vec<_>>())
                .bind::<Array<Bool>, _>(changed.iter().map(|r| r.locked).collect::<Vec<_>>())
                .bind::<Array<Nullable<BigInt>>, _>(
                    changed.iter().map(|r| r.last_otp_step).collect::<Vec<_>>(),
                )
                .bind::<Array<Nullable<Binary>>, _>(
                    changed.iter().map(|r| r.mac.as_deref()).collect::<Vec<_>>(),
                )
                .execute(pg)?;
            if n != changed.len() {
                return Err(StorageError::Commit(format!(
                    "{n} of the batch's {} changed factor rows written",
                    changed.len()
                )));
            }
        }
        if !batch.new_sads.is_empty() {
            diesel::insert_into(sads::table)
                .values(&batch.new_sads)
                .execute(pg)?;
        }
        Ok(())
    }

    /// The copies before a declared job runs ([`Conn::restore_declared`] if it fails).
    pub(crate) fn snapshot_declared(&self) -> Option<Snapshot> {
        self.row_batch.as_ref().map(|b| Snapshot {
            factors: b.factors.clone(),
            changed: b.changed.clone(),
            new_sads: b.new_sads.len(),
        })
    }

    /// Undoes what a declared job did to the copies.
    pub(crate) fn restore_declared(&mut self, snapshot: Snapshot) {
        if let Some(b) = self.row_batch.as_mut() {
            b.factors = snapshot.factors;
            b.changed = snapshot.changed;
            b.new_sads.truncate(snapshot.new_sads);
        }
    }

    /// The batch's copy of a factor row, when the batch holds one (`Some(None)`: it holds the
    /// credential's factors and this kind has no row).
    pub(crate) fn factor_copy(
        &self,
        id: &CredentialId,
        kind: FactorKind,
    ) -> Option<Option<FactorRow>> {
        let batch = self.row_batch.as_ref()?;
        let id = id.to_string();
        if !batch.factors_of.contains(&id) {
            return None;
        }
        Some(batch.factors.get(&(id, kind.as_str().to_owned())).cloned())
    }

    /// Keeps a changed, resealed factor row as the batch's copy.
    pub(crate) fn keep_factor_copy(&mut self, row: FactorRow) {
        if let Some(b) = self.row_batch.as_mut() {
            let key = (row.credential_id.clone(), row.kind.clone());
            b.changed.insert(key.clone());
            b.factors.insert(key, row);
        }
    }

    /// The batch's copy of a credential read under lock, when the batch holds one.
    pub(crate) fn credential_copy(&self, id: &CredentialId) -> Option<Option<CredentialRow>> {
        let batch = self.row_batch.as_ref()?;
        let id = id.to_string();
        batch
            .locked_credentials
            .contains(&id)
            .then(|| batch.credentials.get(&id).cloned())
    }

    /// Keeps a new, sealed SAD to insert with the batch's others, when declared jobs run.
    /// Gives it back otherwise.
    pub(crate) fn defer_sad_insert(&mut self, row: SadRow) -> Option<SadRow> {
        match self.row_batch.as_mut() {
            Some(b) => {
                b.new_sads.push(row);
                None
            }
            None => Some(row),
        }
    }
}
