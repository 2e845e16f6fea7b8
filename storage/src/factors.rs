//! Key-activation factors (PIN, OTP) of credentials.

use diesel::prelude::*;

use crate::connection::{Conn, on_backend};
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{Factor, FactorRow};
use crate::schema::credential_factors as cf;
use crate::schema::online_otps as oo;
use crate::types::{CredentialId, FactorKind};
use crate::users::one_row;

impl Conn<'_> {
    /// Sets (inserts or replaces) a factor's verifier and clears its failure counter and lock.
    /// The OTP anti-replay step is kept, so re-setting a secret never re-opens used steps.
    /// [`StorageError::NotFound`] if the credential does not exist.
    pub fn set_factor(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        verifier: &str,
    ) -> Result<(), StorageError> {
        let row = FactorRow {
            credential_id: id.to_string(),
            kind: kind.as_str().to_owned(),
            verifier: verifier.to_owned(),
            failures: 0,
            locked: false,
            last_otp_step: None,
            mac: None,
        };
        on_backend!(&mut *self.conn, c => diesel::insert_into(cf::table)
            .values(&row)
            .on_conflict((cf::credential_id, cf::kind))
            .do_update()
            .set((
                cf::verifier.eq(verifier),
                cf::failures.eq(0),
                cf::locked.eq(false),
            ))
            .execute(c))
        .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// The factor of this kind, if the credential has one.
    pub fn factor(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
    ) -> Result<Option<Factor>, StorageError> {
        cf::table
            .find((id.to_string(), kind.as_str()))
            .get_result::<FactorRow>(self.conn)
            .optional()?
            .map(Factor::try_from)
            .transpose()
    }

    /// Locks or unlocks a factor. Unlocking also clears the failure counter.
    pub fn set_factor_lock(
        &mut self,
        id: &CredentialId,
        kind: FactorKind,
        locked: bool,
    ) -> Result<(), StorageError> {
        let target = cf::table.find((id.to_string(), kind.as_str()));
        let n = if locked {
            diesel::update(target)
                .set(cf::locked.eq(true))
                .execute(self.conn)?
        } else {
            diesel::update(target)
                .set((cf::locked.eq(false), cf::failures.eq(0)))
                .execute(self.conn)?
        };
        one_row(n)
    }

    /// OTP anti-replay: records `step` as used iff it is newer than every step accepted before,
    /// in one conditional update. Returns `false` for a replayed or older step (or when the
    /// credential has no OTP factor).
    pub fn advance_otp_step(&mut self, id: &CredentialId, step: i64) -> Result<bool, StorageError> {
        let n = diesel::update(
            cf::table
                .find((id.to_string(), FactorKind::Otp.as_str()))
                .filter(cf::last_otp_step.is_null().or(cf::last_otp_step.lt(step))),
        )
        .set(cf::last_otp_step.eq(step))
        .execute(self.conn)?;
        Ok(n == 1)
    }

    /// Stores the pending online OTP of a credential (its SHA-256 digest), replacing any earlier
    /// one: only the last code sent is valid. Does not touch the failure counter or the lock.
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
