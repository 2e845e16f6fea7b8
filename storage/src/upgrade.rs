//! The one-time upgrade step of a database made before row integrity existed
//! ([`Store::seal_unsealed_rows`], run by `csc-server integrity seal`).

use diesel::prelude::*;

use crate::connection::Store;
use crate::error::StorageError;
use crate::models::{CredentialRow, FactorRow, SadRow, TokenRow, UserRow, encode_factor_set};
use crate::oauth::{ClientRow, CodeRow, RequestRow};
use crate::schema::{
    auth_tokens, credential_factors, credentials, oauth_clients, oauth_codes, oauth_requests, sads,
    users,
};
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

/// How many rows of `$table` carry a MAC.
macro_rules! sealed_count {
    ($c:expr, $table:ident) => {
        $table::table
            .filter($table::mac.is_not_null())
            .count()
            .get_result::<i64>($c.conn)?
    };
}

/// Seals every row of `$table` (as `$row`, primary key `$key` of row `$r`); evaluates to the
/// number of rows.
macro_rules! seal_table {
    ($c:expr, $keys:expr, $table:ident, $row:ty, |$r:ident| $key:expr) => {{
        let mut rows: Vec<$row> = $table::table.load($c.conn)?;
        for $r in &mut rows {
            seal($keys, $r);
            diesel::update($table::table.find($key))
                .set(&*$r)
                .execute($c.conn)?;
        }
        (<$row as Sealed>::TABLE.to_owned(), rows.len())
    }};
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
            let already = sealed_count!(c, users)
                + sealed_count!(c, credentials)
                + sealed_count!(c, credential_factors)
                + sealed_count!(c, auth_tokens)
                + sealed_count!(c, sads)
                + sealed_count!(c, oauth_clients)
                + sealed_count!(c, oauth_requests)
                + sealed_count!(c, oauth_codes);
            if already > 0 {
                return Err(StorageError::Conflict(format!(
                    "the database is already sealed ({already} rows carry a MAC): rows without \
                     one were not written by this server and stay refused"
                )));
            }
            // the factor sets first (sealed with their credentials), and the legacy verifiers
            let factor_rows: Vec<FactorRow> = credential_factors::table.load(c.conn)?;
            let ids: Vec<String> = credentials::table.select(credentials::id).load(c.conn)?;
            for id in ids {
                let kinds: Vec<FactorKind> = factor_rows
                    .iter()
                    .filter(|f| f.credential_id == id)
                    .filter_map(|f| f.kind.parse().ok())
                    .collect();
                diesel::update(credentials::table.find(&id))
                    .set(credentials::factors.eq(encode_factor_set(&kinds)))
                    .execute(c.conn)?;
            }
            let legacy_pin_credentials = factor_rows
                .iter()
                .filter(|f| f.kind == FactorKind::Pin.as_str())
                .filter(|f| !f.verifier.starts_with("hsm-hmac-sha256:"))
                .map(|f| f.credential_id.clone())
                .collect();
            let sealed = vec![
                seal_table!(c, keys, users, UserRow, |r| r.id.clone()),
                seal_table!(c, keys, credentials, CredentialRow, |r| r.id.clone()),
                seal_table!(c, keys, credential_factors, FactorRow, |r| (
                    r.credential_id.clone(),
                    r.kind.clone()
                )),
                seal_table!(c, keys, auth_tokens, TokenRow, |r| r.token_hash.clone()),
                seal_table!(c, keys, sads, SadRow, |r| r.sad_hash.clone()),
                seal_table!(c, keys, oauth_clients, ClientRow, |r| r.client_id.clone()),
                seal_table!(c, keys, oauth_requests, RequestRow, |r| r
                    .request_hash
                    .clone()),
                seal_table!(c, keys, oauth_codes, CodeRow, |r| r.code_hash.clone()),
            ];
            Ok(SealReport {
                sealed,
                legacy_pin_credentials,
            })
        })
    }
}
