//! Key-activation factors (PIN, OTP) of credentials.

use diesel::prelude::*;

use crate::connection::{Conn, on_backend};
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{Credential, CredentialRow, Factor, FactorRow, encode_factor_set};
use crate::schema::credential_factors as cf;
use crate::schema::credentials;
use crate::schema::online_otps as oo;
use crate::sealed::{locked, modify};
use crate::types::{CredentialId, FactorKind};

/// The factors a credential requires, as its sealed factor set names them
/// ([`Conn::required_factors`]).
#[derive(Debug, Clone, Default)]
pub struct RequiredFactors {
    /// The PIN factor, if the credential requires one and its row is intact.
    pub pin: Option<Factor>,
    /// The OTP factor, if the credential requires one and its row is intact.
    pub otp: Option<Factor>,
    /// Required kinds whose row is missing or fails its MAC: the credential must not be
    /// activated (never treat them as a factor less to check).
    pub missing: Vec<FactorKind>,
}

impl Conn<'_> {
    /// The factors `credential` requires: those its sealed factor set names, each read and
    /// checked. A factor row the set does not name is not used; a named one that is missing or
    /// fails its MAC is reported as an integrity violation and listed in
    /// [`RequiredFactors::missing`].
    pub fn required_factors(
        &mut self,
        credential: &Credential,
    ) -> Result<RequiredFactors, StorageError> {
        let mut out = RequiredFactors::default();
        for &kind in &credential.factors {
            let raw = cf::table
                .find((credential.id.to_string(), kind.as_str()))
                .get_result::<FactorRow>(self.conn)
                .optional()?;
            let found = match raw {
                Some(row) => self.admit(row)?.map(Factor::try_from).transpose()?,
                None => {
                    self.violations.push(crate::integrity::Violation {
                        table: "credential_factors",
                        row: format!("{}/{} (missing)", credential.id, kind),
                    });
                    None
                }
            };
            match (kind, found) {
                (FactorKind::Pin, Some(f)) => out.pin = Some(f),
                (FactorKind::Otp, Some(f)) => out.otp = Some(f),
                (kind, None) => out.missing.push(kind),
            }
        }
        Ok(out)
    }

    /// Sets (inserts or replaces) a factor's verifier and clears its failure counter and lock.
    /// The OTP anti-replay step is kept, so re-setting a secret never re-opens used steps.
    /// [`StorageError::NotFound`] if the credential does not exist.
    pub fn set_factor(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        verifier: &str,
    ) -> Result<(), StorageError> {
        let key = (id.to_string(), kind.as_str().to_owned());
        self.atomic_conn(|c| {
            // The credential first: it must exist (NotFound otherwise) and its sealed factor set
            // gains this kind in the same transaction.
            modify!(
                c,
                credentials,
                CredentialRow,
                key.0.clone(),
                |r: &mut CredentialRow| {
                    let mut kinds = Credential::try_from_row_factors(&r.factors)?;
                    kinds.push(kind);
                    r.factors = encode_factor_set(&kinds);
                    Ok(Some(()))
                }
            )?
            .ok_or(StorageError::NotFound)?;
            let old = locked!(c, cf::table.find(key.clone()), FactorRow)?;
            let mut row = FactorRow {
                credential_id: key.0.clone(),
                kind: key.1.clone(),
                verifier: verifier.to_owned(),
                failures: 0,
                locked: false,
                // Only a step read from an intact row is kept; a forged one is dropped.
                last_otp_step: old.and_then(|o| o.last_otp_step),
                mac: None,
            };
            c.seal(&mut row)?;
            on_backend!(&mut *c.conn, cc => diesel::insert_into(cf::table)
                .values(&row)
                .on_conflict((cf::credential_id, cf::kind))
                .do_update()
                .set(&row)
                .execute(cc))
            .map_err(fk_as_not_found)?;
            Ok(())
        })
    }

    /// The factor of this kind, if the credential has one.
    pub fn factor(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
    ) -> Result<Option<Factor>, StorageError> {
        let row = match self.factor_copy(id, kind) {
            // a declared job's batch holds the row (crate::declared): its copy stands for it
            Some(copy) => copy,
            None => cf::table
                .find((id.to_string(), kind.as_str()))
                .get_result::<FactorRow>(self.conn)
                .optional()?,
        };
        self.admit_opt(row)?.map(Factor::try_from).transpose()
    }

    /// Changes one factor row atomically ([`modify!`]), or its copy when a declared job's
    /// batch holds it (crate::declared): the copy is checked as a read row would be (its MAC),
    /// changed by `f`, resealed and kept, to be written back with the batch's others. Every
    /// change of an existing factor row goes through here (the lockout steps, the OTP step,
    /// the lock, the verifier's form), so a batch's copy is never bypassed; `set_factor`, which
    /// replaces a row whole, is an operator's write and never runs in a declared job.
    pub(crate) fn modify_factor<T>(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        f: impl FnOnce(&mut FactorRow) -> Result<Option<T>, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        if let Some(copy) = self.factor_copy(id, kind) {
            let Some(mut row) = self.admit_opt(copy)? else {
                return Ok(None);
            };
            let Some(value) = f(&mut row)? else {
                return Ok(None);
            };
            self.seal(&mut row)?;
            self.keep_factor_copy(row);
            return Ok(Some(value));
        }
        let key = (id.to_string(), kind.as_str().to_owned());
        modify!(self, cf, FactorRow, key, f)
    }

    /// Every factor of `kind`, of every credential, in credential order (the operator's one-time
    /// upgrades of verifier forms walk them).
    pub fn factors_of_kind(&mut self, kind: FactorKind) -> Result<Vec<Factor>, StorageError> {
        let rows = cf::table
            .filter(cf::kind.eq(kind.as_str()))
            .order(cf::credential_id.asc())
            .load::<FactorRow>(self.conn)?;
        self.admit_all(rows)?
            .into_iter()
            .map(Factor::try_from)
            .collect()
    }

    /// Replaces a factor's verifier with `new` iff it is still `old`, atomically under the
    /// row's lock ([`modify!`]), resealed; leaves the failure counter, the lock and the OTP anti-replay step as they are (a
    /// change of the verifier's form, not of the secret). Returns whether it was replaced.
    pub fn replace_factor_verifier(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        let replaced = self.modify_factor(id, kind, |r: &mut FactorRow| {
            if r.verifier != old {
                return Ok(None);
            }
            r.verifier = new.to_owned();
            Ok(Some(()))
        })?;
        Ok(replaced.is_some())
    }

    /// Locks or unlocks a factor. Unlocking also clears the failure counter.
    pub fn set_factor_lock(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        locked: bool,
    ) -> Result<(), StorageError> {
        self.modify_factor(id, kind, |r: &mut FactorRow| {
            r.locked = locked;
            if !locked {
                r.failures = 0;
            }
            Ok(Some(()))
        })?
        .ok_or(StorageError::NotFound)
    }

    /// OTP anti-replay: records `step` as used iff it is newer than every step accepted before,
    /// in one conditional update. Returns `false` for a replayed or older step (or when the
    /// credential has no OTP factor).
    pub fn advance_otp_step(&mut self, id: &CredentialId, step: i64) -> Result<bool, StorageError> {
        let advanced = self.modify_factor(id, FactorKind::Otp, |r: &mut FactorRow| {
            if r.last_otp_step.is_some_and(|last| last >= step) {
                return Ok(None);
            }
            r.last_otp_step = Some(step);
            Ok(Some(()))
        })?;
        Ok(advanced.is_some())
    }

    /// Stores the pending online OTP of a credential (its digest: the SAM keeps an HMAC computed
    /// in the token), replacing any earlier one: only the last code sent is valid. Does not touch the failure counter or the lock.
    pub fn put_online_otp(
        &mut self,
        id: &CredentialId,
        code_hash: &[u8],
        expires_at: chrono::NaiveDateTime,
    ) -> Result<(), StorageError> {
        let expires_at = crate::types::truncate_to_micros(expires_at);
        let now = crate::types::utc_now();
        let row = (
            oo::credential_id.eq(id.to_string()),
            oo::code_hash.eq(code_hash),
            oo::expires_at.eq(expires_at),
            oo::created_at.eq(now),
        );
        on_backend!(&mut *self.conn, c => diesel::insert_into(oo::table)
            .values(row)
            .on_conflict(oo::credential_id)
            .do_update()
            .set((
                oo::code_hash.eq(code_hash),
                oo::expires_at.eq(expires_at),
                oo::created_at.eq(now),
            ))
            .execute(c))
        .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// Uses the pending online OTP: true iff `code_hash` is the pending code and it has not
    /// expired. One conditional delete, so a code is accepted at most once, also across
    /// instances. A wrong code leaves the pending one in place.
    pub fn take_online_otp(
        &mut self,
        id: &CredentialId,
        code_hash: &[u8],
        now: chrono::NaiveDateTime,
    ) -> Result<bool, StorageError> {
        let n = diesel::delete(
            oo::table
                .filter(oo::credential_id.eq(id.to_string()))
                .filter(oo::code_hash.eq(code_hash))
                .filter(oo::expires_at.gt(now)),
        )
        .execute(self.conn)?;
        Ok(n == 1)
    }
}
