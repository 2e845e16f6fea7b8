//! The one-time upgrade step of a database made before row integrity existed
//! ([`Store::seal_unsealed_rows`], run by `csc-server integrity seal`).

use diesel::prelude::*;

use crate::connection::Store;
use crate::error::StorageError;
use crate::models::{CredentialRow, FactorRow, SadRow, TokenRow, UserRow, encode_factor_set};
use crate::schema::{auth_tokens, credential_factors, credentials, sads, users};
use crate::sealed::{Sealed, seal};
use crate::types::FactorKind;

/// What [`Store::seal_unsealed_rows`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SealReport {
    /// Rows sealed, per table.
    pub sealed: Vec<(String, usize)>,
    /// Credentials whose PIN verifier is of the older, unpeppered form: it never verifies
    /// (no downgrade); set their PIN again.
    pub legacy_pin_credentials: Vec<String>,
}

impl Store {
    /// Seals every row that has no MAC yet, once: the upgrade step of a database made before
    /// row integrity. Each credential's factor set is taken from its factor rows as they are.
    ///
    /// Refused ([`StorageError::Conflict`]) when any row already carries a MAC: on a database
    /// that is already sealed, a row without a MAC was made or stripped behind the server's
    /// back, and sealing it would launder it. So run it once, right after upgrading, before the
    /// server serves.
    pub fn seal_unsealed_rows(&self) -> Result<SealReport, StorageError> {
        self.write(|c| {
            let keys = c.keys()?;
            let already = users::table
                .filter(users::mac.is_not_null())
                .count()
                .get_result::<i64>(c.conn)?
                + credentials::table
                    .filter(credentials::mac.is_not_null())
                    .count()
                    .get_result::<i64>(c.conn)?
                + credential_factors::table
                    .filter(credential_factors::mac.is_not_null())
                    .count()
                    .get_result::<i64>(c.conn)?
                + auth_tokens::table
                    .filter(auth_tokens::mac.is_not_null())
                    .count()
                    .get_result::<i64>(c.conn)?
                + sads::table
                    .filter(sads::mac.is_not_null())
                    .count()
                    .get_result::<i64>(c.conn)?;
            if already > 0 {
                return Err(StorageError::Conflict(format!(
                    "the database is already sealed ({already} rows carry a MAC): rows without \
                     one were not written by this server and stay refused"
                )));
            }
            let mut report = SealReport::default();
            let mut count = |table: &str, n: usize| report.sealed.push((table.to_owned(), n));

            let mut rows: Vec<UserRow> = users::table.load(c.conn)?;
            for r in &mut rows {
                seal(keys, r);
                diesel::update(users::table.find(r.id.clone()))
                    .set(&*r)
                    .execute(c.conn)?;
            }
            count(UserRow::TABLE, rows.len());

            let factor_rows: Vec<FactorRow> = credential_factors::table.load(c.conn)?;
            let mut rows: Vec<CredentialRow> = credentials::table.load(c.conn)?;
            for r in &mut rows {
                let kinds: Vec<FactorKind> = factor_rows
                    .iter()
                    .filter(|f| f.credential_id == r.id)
                    .filter_map(|f| f.kind.parse().ok())
                    .collect();
                r.factors = encode_factor_set(&kinds);
                seal(keys, r);
                diesel::update(credentials::table.find(r.id.clone()))
                    .set(&*r)
                    .execute(c.conn)?;
            }
            count(CredentialRow::TABLE, rows.len());

            let mut legacy = Vec::new();
            let n = factor_rows.len();
            for mut r in factor_rows {
                if r.kind == FactorKind::Pin.as_str() && !r.verifier.starts_with("hsm-hmac-sha256:")
                {
                    legacy.push(r.credential_id.clone());
                }
                seal(keys, &mut r);
                diesel::update(
                    credential_factors::table.find((r.credential_id.clone(), r.kind.clone())),
                )
                .set(&r)
                .execute(c.conn)?;
            }
            count(FactorRow::TABLE, n);

            let mut rows: Vec<TokenRow> = auth_tokens::table.load(c.conn)?;
            for r in &mut rows {
                seal(keys, r);
                diesel::update(auth_tokens::table.find(r.token_hash.clone()))
                    .set(&*r)
                    .execute(c.conn)?;
            }
            count(TokenRow::TABLE, rows.len());

            let mut rows: Vec<SadRow> = sads::table.load(c.conn)?;
            for r in &mut rows {
                seal(keys, r);
                diesel::update(sads::table.find(r.sad_hash.clone()))
                    .set(&*r)
                    .execute(c.conn)?;
            }
            count(SadRow::TABLE, rows.len());

            report.legacy_pin_credentials = legacy;
            Ok(report)
        })
    }
}
