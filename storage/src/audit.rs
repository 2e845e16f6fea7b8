//! The append-only, hash-chained audit log.
//!
//! Record `n` stores `prev_hash` = hash of record `n-1` (64 zeros for record 1) and
//! `hash = hex(SHA-256(canonical bytes))`, where the canonical bytes are a domain tag, `seq` as
//! 8 bytes big-endian, then `at` (RFC 3339, UTC, microseconds, `Z`), `event`, `actor`,
//! `subject`, `outcome`, `detail` (the stored JSON text) and `prev_hash`, each preceded by its
//! length as 8 bytes big-endian. The single row of `audit_head` holds the last `(seq, hash)`,
//! so deleting the newest records is detected too.

use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::prelude::*;

use crate::connection::{AnyConnection, Conn, Store};
use crate::error::StorageError;
use crate::schema::{audit_head, audit_log};
use crate::types::utc_now;

/// `prev_hash` of the first record, and the head hash of an empty log.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation tag of the canonical encoding (version 1).
const HASH_DOMAIN: &[u8] = b"csc-audit-log/v1";

/// Rows per query when verifying.
const VERIFY_PAGE: i64 = 10_000;

/// Every kind of audit record, by its stored name. One list, so a reader of the log (and an
/// auditor's search) knows every event there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// `auth.login`: a service login (`auth/login`, the OAuth 2.0 sign-in), accepted or refused.
    AuthLogin,
    /// `auth.revoke`: `auth/revoke`.
    AuthRevoke,
    /// `ca.create`: the development CA was created.
    CaCreate,
    /// `client.delegate`: an operator let a client's own tokens act for a user.
    ClientDelegate,
    /// `client.refused`: a client's own token was refused acting for a user who was not
    /// delegated to it (or is disabled).
    ClientRefused,
    /// `client.register`: an OAuth 2.0 client was registered.
    ClientRegister,
    /// `client.undelegate`: an operator withdrew a client's delegation for a user.
    ClientUndelegate,
    /// `credential.create`: a credential was created (key, certificate, factors).
    CredentialCreate,
    /// `credential.import_chain`: a certificate chain was imported for a credential.
    CredentialImportChain,
    /// `credential.unlock`: an operator lifted a factor lock.
    CredentialUnlock,
    /// `factor.lock`: a PIN or OTP locked after too many failures.
    FactorLock,
    /// `housekeeping.purge`: expired SADs, tokens, OTPs and codes were deleted.
    HousekeepingPurge,
    /// `key.destroy`: a signing key was destroyed in the token.
    KeyDestroy,
    /// `key.generate`: a key pair was generated in the token.
    KeyGenerate,
    /// `oauth2.authorize`: the OAuth 2.0 authorization page: sign-in, denial.
    OAuth2Authorize,
    /// `oauth2.client_auth`: an OAuth 2.0 client authentication was refused.
    OAuth2ClientAuth,
    /// `oauth2.consent`: a signer approved (or failed to approve) a credential grant.
    OAuth2Consent,
    /// `oauth2.revoke`: `oauth2/revoke`.
    OAuth2Revoke,
    /// `oauth2.token`: `oauth2/token`: a grant redeemed or refused.
    OAuth2Token,
    /// `otp.send`: an online OTP was sent.
    OtpSend,
    /// `sad.authorize`: `credentials/authorize`: a SAD issued or refused.
    SadAuthorize,
    /// `sad.extend`: `credentials/extendTransaction`.
    SadExtend,
    /// `signature.refused`: a signHash refused before anything was spent.
    SignatureRefused,
    /// `signature.sign_hash`: a signHash: the write-ahead record and its failure.
    SignatureSignHash,
    /// `token.init`: the token was initialised.
    TokenInit,
    /// `user.create`: a user was created.
    UserCreate,
    /// `user.disable`: an operator disabled a user (login refused, tokens and SADs revoked).
    UserDisable,
    /// `user.enable`: an operator lifted a disable.
    UserEnable,
    /// `user.lock`: a user locked after too many failed logins (tokens and SADs revoked).
    UserLock,
    /// `user.unlock`: an operator lifted a login lock.
    UserUnlock,
}

impl AuditEvent {
    /// The name stored in the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::AuthLogin => "auth.login",
            AuditEvent::AuthRevoke => "auth.revoke",
            AuditEvent::CaCreate => "ca.create",
            AuditEvent::ClientDelegate => "client.delegate",
            AuditEvent::ClientRefused => "client.refused",
            AuditEvent::ClientRegister => "client.register",
            AuditEvent::ClientUndelegate => "client.undelegate",
            AuditEvent::CredentialCreate => "credential.create",
            AuditEvent::CredentialImportChain => "credential.import_chain",
            AuditEvent::CredentialUnlock => "credential.unlock",
            AuditEvent::FactorLock => "factor.lock",
            AuditEvent::HousekeepingPurge => "housekeeping.purge",
            AuditEvent::KeyDestroy => "key.destroy",
            AuditEvent::KeyGenerate => "key.generate",
            AuditEvent::OAuth2Authorize => "oauth2.authorize",
            AuditEvent::OAuth2ClientAuth => "oauth2.client_auth",
            AuditEvent::OAuth2Consent => "oauth2.consent",
            AuditEvent::OAuth2Revoke => "oauth2.revoke",
            AuditEvent::OAuth2Token => "oauth2.token",
            AuditEvent::OtpSend => "otp.send",
            AuditEvent::SadAuthorize => "sad.authorize",
            AuditEvent::SadExtend => "sad.extend",
            AuditEvent::SignatureRefused => "signature.refused",
            AuditEvent::SignatureSignHash => "signature.sign_hash",
            AuditEvent::TokenInit => "token.init",
            AuditEvent::UserCreate => "user.create",
            AuditEvent::UserDisable => "user.disable",
            AuditEvent::UserEnable => "user.enable",
            AuditEvent::UserLock => "user.lock",
            AuditEvent::UserUnlock => "user.unlock",
        }
    }
}

impl std::fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to append. Never put secrets (PINs, OTPs, passwords, SADs, tokens) in any field.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// Event type, e.g. "signature.sign_hash".
    pub event: String,
    /// Who did it (user name, client id, "system").
    pub actor: String,
    /// What it was done to (credential id, certificate serial, user name).
    pub subject: String,
    /// "ok", "denied", "error", ...
    pub outcome: String,
    /// Further facts, a JSON object (stored as its compact serialisation).
    pub detail: serde_json::Value,
}

impl NewAuditEvent {
    /// An event with an empty `detail` object.
    pub fn new(
        event: AuditEvent,
        actor: impl Into<String>,
        subject: impl Into<String>,
        outcome: impl Into<String>,
    ) -> Self {
        NewAuditEvent {
            event: event.as_str().to_owned(),
            actor: actor.into(),
            subject: subject.into(),
            outcome: outcome.into(),
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets `detail`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended (UTC, microseconds).
    pub at: NaiveDateTime,
    /// Event type.
    pub event: String,
    /// Who did it.
    pub actor: String,
    /// What it was done to.
    pub subject: String,
    /// Result.
    pub outcome: String,
    /// JSON object text, exactly as hashed.
    pub detail: String,
    /// Hex hash of the previous record ([`ZERO_HASH`] for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this record's canonical bytes.
    pub hash: String,
}

/// Result of [`Store::verify_audit_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every record links and hashes correctly, and the head matches the last one.
    Intact {
        /// Number of records checked.
        records: u64,
    },
    /// The first record at which the chain is broken.
    Broken {
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

fn push_field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// The last two decimal digits of `v`, as ASCII.
fn two(v: u32) -> [u8; 2] {
    [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]
}

/// Appends `t` as a length-prefixed `YYYY-MM-DDTHH:MM:SS.ffffffZ` (what chrono's
/// `%Y-%m-%dT%H:%M:%S%.6fZ` prints), without going through the formatting machinery.
fn push_at(buf: &mut Vec<u8>, t: &NaiveDateTime) {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let s = t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        push_field(buf, s.as_bytes());
        return;
    }
    let year = year as u32;
    let nanos = t.nanosecond();
    // chrono keeps a leap second as second 59 with nanos >= 1e9 and prints it as ":60".
    let sec = t.second() + nanos / 1_000_000_000;
    let micros = (nanos % 1_000_000_000) / 1_000;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    b[0..2].copy_from_slice(&two(year / 100));
    b[2..4].copy_from_slice(&two(year % 100));
    b[5..7].copy_from_slice(&two(t.month()));
    b[8..10].copy_from_slice(&two(t.day()));
    b[11..13].copy_from_slice(&two(t.hour()));
    b[14..16].copy_from_slice(&two(t.minute()));
    b[17..19].copy_from_slice(&two(sec));
    b[20..22].copy_from_slice(&two(micros / 10_000));
    b[22..24].copy_from_slice(&two(micros / 100 % 100));
    b[24..26].copy_from_slice(&two(micros % 100));
    push_field(buf, &b);
}

impl AuditRecord {
    /// The hex hash this record must carry, computed from its other fields (its own `hash`
    /// field is ignored).
    pub fn compute_hash(&self) -> String {
        let mut buf = Vec::with_capacity(256);
        hex::encode(self.digest(&mut buf))
    }

    /// SHA-256 of the canonical bytes, built in `buf` (cleared first, reusable).
    fn digest(&self, buf: &mut Vec<u8>) -> [u8; 32] {
        buf.clear();
        push_field(buf, HASH_DOMAIN);
        buf.extend_from_slice(&self.seq.to_be_bytes());
        push_at(buf, &self.at);
        push_field(buf, self.event.as_bytes());
        push_field(buf, self.actor.as_bytes());
        push_field(buf, self.subject.as_bytes());
        push_field(buf, self.outcome.as_bytes());
        push_field(buf, self.detail.as_bytes());
        push_field(buf, self.prev_hash.as_bytes());
        openssl::sha::sha256(buf)
    }
}

impl Conn<'_> {
    /// Appends a record to the chain and returns it.
    ///
    /// Runs atomically (in the caller's [`Store::write`] transaction, or its own). It first
    /// increments the head's `seq`, which takes the head row lock on PostgreSQL (the write lock
    /// on SQLite), so appends from any number of threads and processes serialise; that lock is
    /// held until commit, so make this the last call of a transaction. To append many events in
    /// one transaction use [`Conn::append_audit_batch`] (one head update for all of them).
    pub fn append_audit(&mut self, ev: &NewAuditEvent) -> Result<AuditRecord, StorageError> {
        self.append_audit_batch(std::slice::from_ref(ev))?
            .pop()
            .ok_or_else(|| StorageError::Corrupt("audit append produced no record".into()))
    }

    /// Appends several records, in order, atomically, with one head update: the efficient way
    /// to write many events (an audit buffer, imports).
    pub fn append_audit_batch(
        &mut self,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRecord>, StorageError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let count = i64::try_from(events.len())
            .map_err(|_| StorageError::Corrupt("too many audit events in one batch".into()))?;
        let details = events
            .iter()
            .map(|ev| serde_json::to_string(&ev.detail))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| StorageError::Corrupt("cannot encode audit detail".into()))?;
        self.atomic(|c| {
            // FIRST the increment: it takes the lock that serialises every appender.
            let n = diesel::update(audit_head::table.find(1))
                .set(audit_head::seq.eq(audit_head::seq + count))
                .execute(c)?;
            if n != 1 {
                return Err(StorageError::Corrupt(
                    "the audit head row is missing".into(),
                ));
            }
            let (last_seq, mut prev_hash) = audit_head::table
                .find(1)
                .select((audit_head::seq, audit_head::hash))
                .get_result::<(i64, String)>(c)?;
            let at = utc_now();
            let mut buf = Vec::with_capacity(512);
            let mut records = Vec::with_capacity(events.len());
            for ((seq, ev), detail) in (last_seq - count + 1..).zip(events).zip(details) {
                let mut rec = AuditRecord {
                    seq,
                    at,
                    event: ev.event.clone(),
                    actor: ev.actor.clone(),
                    subject: ev.subject.clone(),
                    outcome: ev.outcome.clone(),
                    detail,
                    prev_hash,
                    hash: String::new(),
                };
                rec.hash = hex::encode(rec.digest(&mut buf));
                prev_hash = rec.hash.clone();
                records.push(rec);
            }
            match &mut *c {
                // Multi-row INSERT saves round trips (9 parameters a row, far below the limit).
                AnyConnection::Postgresql(pg) => {
                    for chunk in records.chunks(1_000) {
                        diesel::insert_into(audit_log::table)
                            .values(chunk)
                            .execute(pg)?;
                    }
                }
                // In-process, with a cached prepared statement: one row at a time is as fast.
                AnyConnection::Sqlite(sqlite) => {
                    for rec in &records {
                        diesel::insert_into(audit_log::table)
                            .values(rec)
                            .execute(sqlite)?;
                    }
                }
            }
            diesel::update(audit_head::table.find(1))
                .set(audit_head::hash.eq(&prev_hash))
                .execute(c)?;
            Ok(records)
        })
    }

    /// Up to `limit` records with `seq > after_seq`, in order.
    pub fn audit_records(
        &mut self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        Ok(audit_log::table
            .filter(audit_log::seq.gt(after_seq))
            .order(audit_log::seq.asc())
            .limit(limit.max(0))
            .load::<AuditRecord>(self.conn)?)
    }

    /// The chain head: `(seq, hash)` of the last record, `(0, ZERO_HASH)` for an empty log.
    /// This is what a seal signs.
    pub fn audit_head(&mut self) -> Result<(i64, String), StorageError> {
        audit_head::table
            .find(1)
            .select((audit_head::seq, audit_head::hash))
            .get_result::<(i64, String)>(self.conn)
            .optional()?
            .ok_or_else(|| StorageError::Corrupt("the audit head row is missing".into()))
    }
}

fn broken(seq: i64, reason: impl Into<String>) -> Result<AuditVerdict, StorageError> {
    Ok(AuditVerdict::Broken {
        seq,
        reason: reason.into(),
    })
}

impl Store {
    /// Verifies the whole audit chain, streaming it in pages: every record's hash, the
    /// `prev_hash` links, sequence numbers contiguous from 1 (deletions), and that the head
    /// equals the last record (deletion at the tail). Returns the FIRST broken record.
    ///
    /// Safe while other writers append: the head is read first and only records up to it are
    /// checked.
    pub fn verify_audit_chain(&self) -> Result<AuditVerdict, StorageError> {
        self.read(|c| {
            let (head_seq, head_hash) = c.audit_head()?;
            if head_seq < 0 {
                return broken(0, "the audit head has a negative sequence number");
            }
            let mut last_seq = 0i64;
            let mut prev_hash = ZERO_HASH.to_owned();
            let mut buf = Vec::with_capacity(512);
            let mut hex_buf = [0u8; 64];
            while last_seq < head_seq {
                let page = audit_log::table
                    .filter(audit_log::seq.gt(last_seq))
                    .filter(audit_log::seq.le(head_seq))
                    .order(audit_log::seq.asc())
                    .limit(VERIFY_PAGE)
                    .load::<AuditRecord>(c.conn)?;
                if page.is_empty() {
                    break;
                }
                for rec in page {
                    let expected = last_seq + 1;
                    if rec.seq != expected {
                        return broken(
                            expected,
                            format!("record {expected} is missing (the next one is {})", rec.seq),
                        );
                    }
                    if rec.prev_hash != prev_hash {
                        return broken(
                            rec.seq,
                            format!("prev_hash does not match the hash of record {}", rec.seq - 1),
                        );
                    }
                    let digest = rec.digest(&mut buf);
                    // Cannot fail: 32 bytes always fit 64 hex digits.
                    let _ = hex::encode_to_slice(digest, &mut hex_buf);
                    if hex_buf.as_slice() != rec.hash.as_bytes() {
                        return broken(rec.seq, "the record's content does not match its hash");
                    }
                    last_seq = rec.seq;
                    prev_hash = rec.hash;
                }
            }
            if last_seq != head_seq {
                return broken(
                    last_seq + 1,
                    format!(
                        "records {}..={head_seq} are missing at the tail (the head says {head_seq})",
                        last_seq + 1
                    ),
                );
            }
            if prev_hash != head_hash {
                return broken(head_seq, "the audit head hash does not match the last record");
            }
            // Rows past the head that no append accounts for (forged, or a head rolled back).
            let beyond = audit_log::table
                .filter(audit_log::seq.gt(head_seq))
                .select(audit_log::seq)
                .order(audit_log::seq.asc())
                .first::<i64>(c.conn)
                .optional()?;
            if let Some(seq) = beyond {
                // A concurrent append moves the head; only a head that stayed put is suspect.
                let (now_seq, _) = c.audit_head()?;
                if now_seq == head_seq {
                    return broken(seq, "record lies beyond the audit head");
                }
            }
            Ok(AuditVerdict::Intact {
                records: head_seq.unsigned_abs(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime};

    #[test]
    fn fast_timestamp_matches_chrono() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default();
        let times = [
            NaiveTime::from_hms_micro_opt(0, 0, 0, 0),
            NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999),
            NaiveTime::from_hms_micro_opt(9, 5, 7, 1_020),
            NaiveTime::from_hms_nano_opt(23, 59, 59, 1_250_000_000),
        ];
        for t in times.into_iter().flatten() {
            let dt = NaiveDateTime::new(date, t);
            let mut fast = Vec::new();
            push_at(&mut fast, &dt);
            let mut slow = Vec::new();
            push_field(
                &mut slow,
                dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().as_bytes(),
            );
            assert_eq!(fast, slow, "{dt}");
        }
    }

    #[test]
    fn hash_is_stable_and_field_sensitive() {
        let rec = AuditRecord {
            seq: 1,
            at: NaiveDateTime::new(
                NaiveDate::from_ymd_opt(2026, 1, 2).unwrap_or_default(),
                NaiveTime::from_hms_micro_opt(3, 4, 5, 6).unwrap_or_default(),
            ),
            event: "e".into(),
            actor: "a".into(),
            subject: "s".into(),
            outcome: "ok".into(),
            detail: "{}".into(),
            prev_hash: ZERO_HASH.into(),
            hash: String::new(),
        };
        let h = rec.compute_hash();
        assert_eq!(h.len(), 64);
        assert_eq!(h, rec.compute_hash());
        // Moving a byte between adjacent fields changes the hash (length prefixes).
        let shifted = AuditRecord {
            event: "ea".into(),
            actor: String::new(),
            ..rec.clone()
        };
        assert_ne!(h, shifted.compute_hash());
    }
}
