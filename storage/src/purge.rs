//! Housekeeping: what has expired is deleted in bounded batches, so the tables that grow with
//! traffic (SADs, tokens, online OTPs, OAuth 2.0 codes and pending requests: one SAD per
//! authorize) do not grow without end (the cost of a request must not grow with the
//! data). Each batch is its own short write transaction, so signing is never held up for long.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::audit::NewAuditEvent;
use crate::connection::{Conn, Store};
use crate::error::StorageError;
use crate::types::truncate_to_micros;

/// Rows deleted by [`Store::purge_expired_before`], per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sads: usize,
    pub tokens: usize,
    pub online_otps: usize,
    pub oauth_codes: usize,
    pub oauth_requests: usize,
}

impl Purged {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.sads + self.tokens + self.online_otps + self.oauth_codes + self.oauth_requests
    }
}

/// Deletes up to `limit` rows of `$table` whose `expires_at` is before `$before`: their keys
/// first, then the rows by key (neither backend has a portable `DELETE ... LIMIT`).
macro_rules! delete_expired {
    ($conn:expr, $table:ident, $key:ident: $ty:ty, $before:expr, $limit:expr) => {{
        use crate::schema::$table::dsl as t;
        let keys: Vec<$ty> = t::$table
            .select(t::$key)
            .filter(t::expires_at.lt($before))
            .limit($limit)
            .load($conn)?;
        if keys.is_empty() {
            0
        } else {
            diesel::delete(t::$table.filter(t::$key.eq_any(&keys))).execute($conn)?
        }
    }};
}

impl Conn<'_> {
    /// One batch: up to `limit` expired rows of each table. Returns what went.
    fn purge_batch(&mut self, before: NaiveDateTime, limit: i64) -> Result<Purged, StorageError> {
        let c = &mut *self.conn;
        Ok(Purged {
            sads: delete_expired!(c, sads, sad_hash: Vec<u8>, before, limit),
            tokens: delete_expired!(c, auth_tokens, token_hash: Vec<u8>, before, limit),
            online_otps: delete_expired!(c, online_otps, credential_id: String, before, limit),
            oauth_codes: delete_expired!(c, oauth_codes, code_hash: Vec<u8>, before, limit),
            oauth_requests: delete_expired!(c, oauth_requests, request_hash: Vec<u8>, before, limit),
        })
    }
}

impl Store {
    /// Deletes every SAD, token, online OTP, OAuth 2.0 code and pending request that expired
    /// before `before`, `batch` rows per table per transaction. Each transaction that deletes
    /// anything also appends a `housekeeping.purge` audit record with its counts, so nothing
    /// disappears unaudited (Part I 7.1.4.3). BLOCKING.
    pub fn purge_expired_before(
        &self,
        before: NaiveDateTime,
        batch: usize,
    ) -> Result<Purged, StorageError> {
        let before = truncate_to_micros(before);
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let mut all = Purged::default();
        loop {
            let p = self.write(|c| {
                let p = c.purge_batch(before, limit)?;
                if p.total() > 0 {
                    c.append_audit(
                        &NewAuditEvent::new(
                            crate::AuditEvent::HousekeepingPurge,
                            "system",
                            "expired",
                            "success",
                        )
                        .with_detail(serde_json::json!({
                            "expiredBefore": before.and_utc().to_rfc3339(),
                            "sads": p.sads,
                            "tokens": p.tokens,
                            "onlineOtps": p.online_otps,
                            "oauthCodes": p.oauth_codes,
                            "oauthRequests": p.oauth_requests,
                        })),
                    )?;
                }
                Ok(p)
            })?;
            all.sads += p.sads;
            all.tokens += p.tokens;
            all.online_otps += p.online_otps;
            all.oauth_codes += p.oauth_codes;
            all.oauth_requests += p.oauth_requests;
            let most = [
                p.sads,
                p.tokens,
                p.online_otps,
                p.oauth_codes,
                p.oauth_requests,
            ]
            .into_iter()
            .max()
            .unwrap_or(0);
            if most < batch.max(1) {
                return Ok(all);
            }
        }
    }
}
