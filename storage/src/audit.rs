//! The append-only audit log, chained with HMAC-SHA256 under the audit key (an audit log an
//! insider cannot rewrite; Part I 7.1.4.3, Part II 3.2.2.4, Part III 14).
//!
//! Record `n` stores `prev_hash` = hash of record `n-1` (64 zeros for record 1) and
//! `hash = hex(HMAC-SHA256(audit key, canonical bytes))`, where the canonical bytes are a domain
//! tag, `seq` as 8 bytes big-endian, then `at` (RFC 3339, UTC, microseconds, `Z`), `event`,
//! `actor`, `subject`, `outcome`, `detail` (the stored JSON text) and `prev_hash`, each preceded
//! by its length as 8 bytes big-endian. The audit key ([`IntegrityKeys`]) is derived in the token
//! at start and lives only in the server's memory, so whoever edits, inserts or deletes a record
//! cannot recompute the hashes after it without the token. The single row of `audit_head` holds
//! the last `(seq, hash)`; copies of it, MACed under the same key, are appended to a seal file
//! outside the database ([`crate::seal`]), so deleting the newest records (and fixing up the
//! head) or restoring an older copy of the database is detected too.
//!
//! **Records from before keyed links.** A database written by an older version holds records
//! hashed with plain SHA-256 (domain tag `csc-audit-log/v1`, no key). The migration that brought
//! keyed links recorded the switch point, `audit_head.keyed_from` (1 for a database created
//! since: nothing is plain): records before it are checked with the plain rule, records from it
//! with the keyed rule. A switch point above 1 counts only when `audit_head.keyed_mac`, an HMAC
//! under the audit key over the switch point and the hash of the record before it, verifies: it
//! is written once by [`Store::confirm_audit_switch`] (`csc-server audit upgrade`), after the
//! whole chain verified. Without it [`Store::verify_audit_chain`] reports the log broken at record
//! 1 (nothing before the switch is authenticated), so an insider cannot move the switch point
//! past records and recompute them with plain SHA-256.

use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};

use crate::connection::{AnyConnection, Conn, Store};
use crate::error::StorageError;
use crate::integrity::IntegrityKeys;
use crate::schema::{audit_head, audit_log};
use crate::types::utc_now;

/// `prev_hash` of the first record, and the head hash of an empty log.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation tag of the canonical encoding of records before keyed links (plain
/// SHA-256).
const PLAIN_DOMAIN: &[u8] = b"csc-audit-log/v1";

/// Domain separation tag of the canonical encoding of keyed records (HMAC-SHA256 under the audit
/// key).
const KEYED_DOMAIN: &[u8] = b"csc-audit-log/v2-hmac";

/// Domain separation tag of the MAC that confirms the switch point (`audit_head.keyed_mac`).
const SWITCH_DOMAIN: &[u8] = b"csc-audit-switch/v1";

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
    /// `audit.upgrade`: the operator confirmed the switch of an older log to keyed links
    /// (`csc-server audit upgrade`).
    AuditUpgrade,
    /// `backup.create`: an operator took an online backup (`csc-server backup`).
    BackupCreate,
    /// `backup.restore`: a backup was restored into this data directory (`csc-server restore`),
    /// written in the restored log.
    BackupRestore,
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
    /// `credential.csr`: a certificate request was signed with a credential's key.
    CredentialCsr,
    /// `credential.unlock`: an operator lifted a factor lock.
    CredentialUnlock,
    /// `credential.disable`: an operator suspended a credential (its SADs revoked).
    CredentialDisable,
    /// `credential.enable`: an operator lifted a suspension.
    CredentialEnable,
    /// `credential.revoke`: a credential was revoked for good, with a reason (its SADs revoked,
    /// its key destroyed).
    CredentialRevoke,
    /// `credential.rekey`: a credential got a new key and certificate; the old key destroyed.
    CredentialRekey,
    /// `factor.lock`: a PIN or OTP locked after too many failures.
    FactorLock,
    /// `housekeeping.purge`: expired SADs, tokens, OTPs and codes were deleted.
    HousekeepingPurge,
    /// `integrity.violation`: a row whose MAC does not verify (edited, forged or copied behind
    /// the server's back) was found and not used; the subject names the table and the row.
    IntegrityViolation,
    /// `integrity.seal`: the one-time upgrade step sealed the rows of an older database.
    IntegritySeal,
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
    /// `otp.migrate`: the plain TOTP seed of an older database was moved into the token.
    OtpMigrate,
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
    /// `timestamp.issue`: a time-stamp token (`signatures/timestamp`, `POST /tsa`): the
    /// write-ahead record, and its failure.
    TimestampIssue,
    /// `token.init`: the token was initialised.
    TokenInit,
    /// `tsa.create`: the time-stamping authority's key and certificate were created.
    TsaCreate,
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
    /// `access.denied`: an administrative act refused to the actor's role (JT2A Part I 7.1.4.1).
    AccessDenied,
    /// `user.delete`: a user was deleted with all their credentials, keys destroyed.
    UserDelete,
    /// `user.list`: an administrator read the list of users (the admin API).
    UserList,
    /// `credential.read`: an administrator read credentials (the admin API).
    CredentialRead,
    /// `client.list`: an administrator read the registered clients (the admin API).
    ClientList,
    /// `audit.read`: an auditor searched the audit log (Part I 7.1.4.5-6).
    AuditRead,
    /// `audit.verify`: an auditor verified the audit chain and its seals over the admin API.
    AuditVerify,
    /// `audit.export`: an auditor exported a range of the audit log, signed by the audit seal
    /// key (Part I 7.1.5).
    AuditExport,
    /// `audit.seal_key.create`: the audit seal key (EC P-256, signs exports) was generated in
    /// the token.
    AuditSealKeyCreate,
}

impl AuditEvent {
    /// The name stored in the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::AuthLogin => "auth.login",
            AuditEvent::AuthRevoke => "auth.revoke",
            AuditEvent::AuditUpgrade => "audit.upgrade",
            AuditEvent::BackupCreate => "backup.create",
            AuditEvent::BackupRestore => "backup.restore",
            AuditEvent::CaCreate => "ca.create",
            AuditEvent::ClientDelegate => "client.delegate",
            AuditEvent::ClientRefused => "client.refused",
            AuditEvent::ClientRegister => "client.register",
            AuditEvent::ClientUndelegate => "client.undelegate",
            AuditEvent::CredentialCreate => "credential.create",
            AuditEvent::CredentialImportChain => "credential.import_chain",
            AuditEvent::CredentialCsr => "credential.csr",
            AuditEvent::CredentialUnlock => "credential.unlock",
            AuditEvent::CredentialDisable => "credential.disable",
            AuditEvent::CredentialEnable => "credential.enable",
            AuditEvent::CredentialRevoke => "credential.revoke",
            AuditEvent::CredentialRekey => "credential.rekey",
            AuditEvent::FactorLock => "factor.lock",
            AuditEvent::HousekeepingPurge => "housekeeping.purge",
            AuditEvent::IntegrityViolation => "integrity.violation",
            AuditEvent::IntegritySeal => "integrity.seal",
            AuditEvent::KeyDestroy => "key.destroy",
            AuditEvent::KeyGenerate => "key.generate",
            AuditEvent::OAuth2Authorize => "oauth2.authorize",
            AuditEvent::OAuth2ClientAuth => "oauth2.client_auth",
            AuditEvent::OAuth2Consent => "oauth2.consent",
            AuditEvent::OAuth2Revoke => "oauth2.revoke",
            AuditEvent::OAuth2Token => "oauth2.token",
            AuditEvent::OtpMigrate => "otp.migrate",
            AuditEvent::OtpSend => "otp.send",
            AuditEvent::SadAuthorize => "sad.authorize",
            AuditEvent::SadExtend => "sad.extend",
            AuditEvent::SignatureRefused => "signature.refused",
            AuditEvent::SignatureSignHash => "signature.sign_hash",
            AuditEvent::TimestampIssue => "timestamp.issue",
            AuditEvent::TokenInit => "token.init",
            AuditEvent::TsaCreate => "tsa.create",
            AuditEvent::UserCreate => "user.create",
            AuditEvent::UserDisable => "user.disable",
            AuditEvent::UserEnable => "user.enable",
            AuditEvent::UserLock => "user.lock",
            AuditEvent::UserUnlock => "user.unlock",
            AuditEvent::AccessDenied => "access.denied",
            AuditEvent::UserDelete => "user.delete",
            AuditEvent::UserList => "user.list",
            AuditEvent::CredentialRead => "credential.read",
            AuditEvent::ClientList => "client.list",
            AuditEvent::AuditRead => "audit.read",
            AuditEvent::AuditVerify => "audit.verify",
            AuditEvent::AuditExport => "audit.export",
            AuditEvent::AuditSealKeyCreate => "audit.seal_key.create",
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
    /// Hex HMAC-SHA256 under the audit key of this record's canonical bytes (plain SHA-256 for
    /// records before the switch point, see the module doc).
    pub hash: String,
}

/// A search of the audit log ([`Conn::search_audit`]): every filter that is set must match
/// exactly (times inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records at or after this time (UTC).
    pub from: Option<NaiveDateTime>,
    /// Only records at or before this time (UTC).
    pub to: Option<NaiveDateTime>,
    pub event: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub outcome: Option<String>,
    /// Only records with `seq` above this (the cursor of the previous page; 0 from the start).
    pub after: i64,
    /// At most this many records.
    pub limit: i64,
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
    /// The hex hash this record must carry under the keyed rule, computed from its other fields
    /// (its own `hash` field is ignored).
    pub fn compute_hash(&self, keys: &IntegrityKeys) -> String {
        let mut buf = Vec::with_capacity(256);
        hex::encode(self.keyed_digest(keys, &mut buf))
    }

    /// The hex hash under the rule of records written before keyed links (plain SHA-256, no
    /// key): what anyone can compute, and what records before the switch point carry.
    pub fn compute_plain_hash(&self) -> String {
        let mut buf = Vec::with_capacity(256);
        hex::encode(self.plain_digest(&mut buf))
    }

    /// The canonical bytes under `domain`, built in `buf` (cleared first, reusable).
    fn canonical(&self, domain: &[u8], buf: &mut Vec<u8>) {
        buf.clear();
        push_field(buf, domain);
        buf.extend_from_slice(&self.seq.to_be_bytes());
        push_at(buf, &self.at);
        push_field(buf, self.event.as_bytes());
        push_field(buf, self.actor.as_bytes());
        push_field(buf, self.subject.as_bytes());
        push_field(buf, self.outcome.as_bytes());
        push_field(buf, self.detail.as_bytes());
        push_field(buf, self.prev_hash.as_bytes());
    }

    /// HMAC-SHA256 under the audit key of the canonical bytes.
    fn keyed_digest(&self, keys: &IntegrityKeys, buf: &mut Vec<u8>) -> [u8; 32] {
        self.canonical(KEYED_DOMAIN, buf);
        keys.audit_mac(&[buf.as_slice()])
    }

    /// SHA-256 of the canonical bytes of the plain rule.
    fn plain_digest(&self, buf: &mut Vec<u8>) -> [u8; 32] {
        self.canonical(PLAIN_DOMAIN, buf);
        openssl::sha::sha256(buf)
    }
}

/// The MAC that confirms `keyed_from` as the switch point, bound to the hash of the record
/// before it (hex).
fn switch_mac(keys: &IntegrityKeys, keyed_from: i64, hash_before: &str) -> String {
    hex::encode(keys.audit_mac(&[
        SWITCH_DOMAIN,
        &keyed_from.to_be_bytes(),
        hash_before.as_bytes(),
    ]))
}

/// Whether two hex strings are equal (constant time when their lengths are).
fn hex_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// Inserts a batch of records given as arrays (`$2`: the seqs, `$3`: the time they share, then
/// a column each) and sets the head's hash to `$1` (the last record's), in one statement.
const INSERT_RECORDS_SET_HEAD: &str = "WITH head AS (UPDATE audit_head SET hash = $1 WHERE id = 1) \
     INSERT INTO audit_log (seq, at, event, actor, subject, outcome, detail, prev_hash, hash) \
     SELECT r.seq, $3, r.event, r.actor, r.subject, r.outcome, r.detail, r.prev_hash, r.hash \
     FROM unnest($2::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::text[]) AS r(seq, event, actor, subject, outcome, detail, prev_hash, hash)";

/// One column of `records`, for an array parameter.
fn column(records: &[AuditRecord], field: impl Fn(&AuditRecord) -> &String) -> Vec<&str> {
    records.iter().map(|r| field(r).as_str()).collect()
}

/// The head row: the last record and the switch point.
struct HeadRow {
    seq: i64,
    hash: String,
    keyed_from: i64,
    keyed_mac: Option<String>,
}

impl Conn<'_> {
    /// Appends a record to the chain (linked with the audit key: the store needs its
    /// [`IntegrityKeys`], else [`StorageError::NoIntegrityKeys`]) and returns it.
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
        self.append_records(events, true)
    }

    /// [`Conn::append_audit_batch`] at the end of a group-commit batch, whose transaction fails
    /// whole if this fails: no savepoint of its own. On PostgreSQL two round trips (the head
    /// moved and read back, then the records inserted and the head's hash set in one
    /// statement) instead of five.
    pub(crate) fn append_audit_for_batch(
        &mut self,
        events: &[NewAuditEvent],
    ) -> Result<(), StorageError> {
        self.append_records(events, false).map(drop)
    }

    /// Appends `events`, with their own savepoint when `own_savepoint` (else the caller's
    /// transaction fails whole if this fails).
    fn append_records(
        &mut self,
        events: &[NewAuditEvent],
        own_savepoint: bool,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let count = i64::try_from(events.len())
            .map_err(|_| StorageError::Corrupt("too many audit events in one batch".into()))?;
        let keys = self.keys()?;
        let details = events
            .iter()
            .map(|ev| serde_json::to_string(&ev.detail))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| StorageError::Corrupt("cannot encode audit detail".into()))?;
        let append = |c: &mut AnyConnection| {
            // FIRST the increment: it takes the lock that serialises every appender.
            let increment = diesel::update(audit_head::table.find(1))
                .set(audit_head::seq.eq(audit_head::seq + count));
            let head = match &mut *c {
                // one round trip
                AnyConnection::Postgresql(pg) => increment
                    .returning((audit_head::seq, audit_head::hash))
                    .get_result::<(i64, String)>(pg)
                    .optional()?,
                AnyConnection::Sqlite(sqlite) => match increment.execute(sqlite)? {
                    1 => Some(
                        audit_head::table
                            .find(1)
                            .select((audit_head::seq, audit_head::hash))
                            .get_result::<(i64, String)>(sqlite)?,
                    ),
                    _ => None,
                },
            };
            let Some((last_seq, mut prev_hash)) = head else {
                return Err(StorageError::Corrupt(
                    "the audit head row is missing".into(),
                ));
            };
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
                rec.hash = hex::encode(rec.keyed_digest(keys, &mut buf));
                prev_hash = rec.hash.clone();
                records.push(rec);
            }
            match &mut *c {
                // ONE statement inserts every record (arrays, one parameter a column) and sets
                // the head's hash
                AnyConnection::Postgresql(pg) => {
                    let inserted = diesel::sql_query(INSERT_RECORDS_SET_HEAD)
                        .bind::<Text, _>(&prev_hash)
                        .bind::<Array<BigInt>, _>(records.iter().map(|r| r.seq).collect::<Vec<_>>())
                        .bind::<Timestamp, _>(at)
                        .bind::<Array<Text>, _>(column(&records, |r| &r.event))
                        .bind::<Array<Text>, _>(column(&records, |r| &r.actor))
                        .bind::<Array<Text>, _>(column(&records, |r| &r.subject))
                        .bind::<Array<Text>, _>(column(&records, |r| &r.outcome))
                        .bind::<Array<Text>, _>(column(&records, |r| &r.detail))
                        .bind::<Array<Text>, _>(column(&records, |r| &r.prev_hash))
                        .bind::<Array<Text>, _>(column(&records, |r| &r.hash))
                        .execute(pg)?;
                    if inserted != records.len() {
                        return Err(StorageError::Commit(format!(
                            "{inserted} of {} audit records inserted",
                            records.len()
                        )));
                    }
                }
                // In-process, with a cached prepared statement: one row at a time is as fast.
                AnyConnection::Sqlite(sqlite) => {
                    for rec in &records {
                        diesel::insert_into(audit_log::table)
                            .values(rec)
                            .execute(sqlite)?;
                    }
                    diesel::update(audit_head::table.find(1))
                        .set(audit_head::hash.eq(&prev_hash))
                        .execute(sqlite)?;
                }
            }
            Ok(records)
        };
        if own_savepoint {
            self.atomic(append)
        } else {
            append(self.conn)
        }
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

    /// Up to `q.limit` records with `seq > q.after` that match every filter of `q`, in order
    /// (the auditor's search, Part I 7.1.4.5: by time, type, user, subject and outcome).
    pub fn search_audit(&mut self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StorageError> {
        let mut query = audit_log::table
            .filter(audit_log::seq.gt(q.after))
            .order(audit_log::seq.asc())
            .limit(q.limit.max(0))
            .into_boxed();
        if let Some(from) = q.from {
            query = query.filter(audit_log::at.ge(from));
        }
        if let Some(to) = q.to {
            query = query.filter(audit_log::at.le(to));
        }
        if let Some(event) = &q.event {
            query = query.filter(audit_log::event.eq(event.clone()));
        }
        if let Some(actor) = &q.actor {
            query = query.filter(audit_log::actor.eq(actor.clone()));
        }
        if let Some(subject) = &q.subject {
            query = query.filter(audit_log::subject.eq(subject.clone()));
        }
        if let Some(outcome) = &q.outcome {
            query = query.filter(audit_log::outcome.eq(outcome.clone()));
        }
        Ok(query.load::<AuditRecord>(self.conn)?)
    }

    /// The chain head: `(seq, hash)` of the last record, `(0, ZERO_HASH)` for an empty log.
    /// This is what a seal MACs ([`crate::seal`]).
    pub fn audit_head(&mut self) -> Result<(i64, String), StorageError> {
        audit_head::table
            .find(1)
            .select((audit_head::seq, audit_head::hash))
            .get_result::<(i64, String)>(self.conn)
            .optional()?
            .ok_or_else(|| StorageError::Corrupt("the audit head row is missing".into()))
    }

    /// The first record linked with the audit key: 1, unless the log was begun by a version
    /// without keyed links (module doc).
    pub fn audit_keyed_from(&mut self) -> Result<i64, StorageError> {
        Ok(self.head_row()?.keyed_from)
    }

    fn head_row(&mut self) -> Result<HeadRow, StorageError> {
        let (seq, hash, keyed_from, keyed_mac) = audit_head::table
            .find(1)
            .select((
                audit_head::seq,
                audit_head::hash,
                audit_head::keyed_from,
                audit_head::keyed_mac,
            ))
            .get_result::<(i64, String, i64, Option<String>)>(self.conn)
            .optional()?
            .ok_or_else(|| StorageError::Corrupt("the audit head row is missing".into()))?;
        Ok(HeadRow {
            seq,
            hash,
            keyed_from,
            keyed_mac,
        })
    }

    /// `(seq, hash)` of the records among `seqs` that exist (to compare with seals).
    pub(crate) fn audit_hashes(
        &mut self,
        seqs: &[i64],
    ) -> Result<Vec<(i64, String)>, StorageError> {
        Ok(audit_log::table
            .filter(audit_log::seq.eq_any(seqs))
            .select((audit_log::seq, audit_log::hash))
            .load::<(i64, String)>(self.conn)?)
    }
}

/// Checks one record of a walk: it is record `expected`, links to `prev_hash`, and its hash
/// is right under its rule (plain before `keyed_from`, keyed from it). `None` when it is; else
/// the broken record and why. `buf` and `hex_buf` are scratch space.
fn check_record(
    rec: &AuditRecord,
    expected: i64,
    prev_hash: &str,
    keyed_from: i64,
    keys: &IntegrityKeys,
    buf: &mut Vec<u8>,
    hex_buf: &mut [u8; 64],
) -> Option<(i64, String)> {
    if rec.seq != expected {
        return Some((
            expected,
            format!("record {expected} is missing (the next one is {})", rec.seq),
        ));
    }
    if rec.prev_hash != prev_hash {
        return Some((
            rec.seq,
            format!(
                "prev_hash does not match the hash of record {}",
                rec.seq - 1
            ),
        ));
    }
    let digest = if rec.seq < keyed_from {
        rec.plain_digest(buf)
    } else {
        rec.keyed_digest(keys, buf)
    };
    // Cannot fail: 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(digest, hex_buf);
    if hex_buf.as_slice() != rec.hash.as_bytes() {
        return Some((
            rec.seq,
            if rec.seq < keyed_from {
                "the record's content does not match its hash (plain SHA-256: before the switch to keyed links)"
            } else {
                "the record's content does not match its hash under the audit key"
            }
            .to_owned(),
        ));
    }
    None
}

fn broken(seq: i64, reason: impl Into<String>) -> Result<AuditVerdict, StorageError> {
    Ok(AuditVerdict::Broken {
        seq,
        reason: reason.into(),
    })
}

/// How [`walk`] treats a switch point above 1 without its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unconfirmed {
    /// As damage (verification).
    Broken,
    /// As acceptable (the walk that precedes confirming it). A MAC that is present is checked
    /// either way.
    Accepted,
}

/// What a walk of the chain found.
pub(crate) struct Walk {
    pub(crate) verdict: AuditVerdict,
    /// The head read at the start: only records up to it were checked.
    pub(crate) head_seq: i64,
    /// The switch point.
    pub(crate) keyed_from: i64,
    /// Whether the switch point is above 1 and has no MAC yet.
    pub(crate) unconfirmed: bool,
    /// The hash of record `keyed_from - 1`, when the walk reached it.
    pub(crate) hash_before_switch: Option<String>,
}

/// Walks the whole chain, streaming it in pages: every record's hash (the plain rule before the
/// switch point, the keyed rule from it), the `prev_hash` links, sequence numbers contiguous from
/// 1 (deletions), the switch point's MAC, and that the head equals the last record (deletion at
/// the tail). The verdict names the FIRST broken record.
///
/// Safe while other writers append: the head is read first and only records up to it are
/// checked.
fn walk(c: &mut Conn<'_>, unconfirmed: Unconfirmed) -> Result<Walk, StorageError> {
    let keys = c.keys()?;
    let head = c.head_row()?;
    let mut hash_before_switch = None;
    let verdict = walk_records(c, keys, &head, unconfirmed, &mut hash_before_switch)?;
    Ok(Walk {
        verdict,
        head_seq: head.seq,
        keyed_from: head.keyed_from,
        unconfirmed: head.keyed_from > 1 && head.keyed_mac.is_none(),
        hash_before_switch,
    })
}

fn walk_records(
    c: &mut Conn<'_>,
    keys: &IntegrityKeys,
    head: &HeadRow,
    unconfirmed: Unconfirmed,
    hash_before_switch: &mut Option<String>,
) -> Result<AuditVerdict, StorageError> {
    let (head_seq, keyed_from) = (head.seq, head.keyed_from);
    if head_seq < 0 {
        return broken(0, "the audit head has a negative sequence number");
    }
    if keyed_from < 1 {
        return broken(
            1,
            format!("the switch point to keyed links ({keyed_from}) is not a record number"),
        );
    }
    if keyed_from > 1 && head.keyed_mac.is_none() && unconfirmed == Unconfirmed::Broken {
        return broken(
            1,
            format!(
                "records 1..={} were hashed without the audit key (before keyed links) and the \
                 switch to keyed links at record {keyed_from} is not confirmed, so none of them \
                 is authenticated: after upgrading from a version without keyed links, run \
                 `csc-server audit upgrade` once",
                keyed_from - 1
            ),
        );
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
            if let Some((seq, reason)) = check_record(
                &rec,
                last_seq + 1,
                &prev_hash,
                keyed_from,
                keys,
                &mut buf,
                &mut hex_buf,
            ) {
                return broken(seq, reason);
            }
            if rec.seq == keyed_from - 1 {
                if let Some(mac) = &head.keyed_mac
                    && !hex_eq(mac, &switch_mac(keys, keyed_from, &rec.hash))
                {
                    return broken(
                        1,
                        format!(
                            "the switch to keyed links at record {keyed_from} does not verify under \
                             the audit key (it was moved or forged), so records 1..={} are not \
                             authenticated",
                            keyed_from - 1
                        ),
                    );
                }
                *hash_before_switch = Some(rec.hash.clone());
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
    if prev_hash != head.hash {
        return broken(
            head_seq,
            "the audit head hash does not match the last record",
        );
    }
    if keyed_from > head_seq + 1 {
        return broken(
            head_seq + 1,
            format!(
                "the switch to keyed links is at record {keyed_from}, beyond the last record \
                 ({head_seq}): records were deleted at the tail"
            ),
        );
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
}

/// What [`Store::confirm_audit_switch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditUpgrade {
    /// Every record is keyed (a log begun by this version, or an empty one): nothing to confirm.
    AllKeyed,
    /// The switch point is confirmed: records before `keyed_from` are plain, from it keyed.
    Confirmed {
        /// The first keyed record.
        keyed_from: i64,
        /// Whether this call confirmed it (`false`: it had been before).
        now: bool,
    },
    /// The chain is damaged (or the switch point carries a MAC that does not verify): nothing
    /// was confirmed.
    Refused {
        /// The first broken record.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

impl Store {
    /// Verifies the whole audit chain with the audit key ([`walk`]): every record's hash, the
    /// links, contiguous sequence numbers, the switch point and the head. Returns the FIRST
    /// broken record. Needs the store's [`IntegrityKeys`] ([`StorageError::NoIntegrityKeys`]).
    ///
    /// The chain alone cannot show records deleted at the tail with the head fixed up, nor a
    /// restored older copy of the database: [`Store::verify_audit`] adds the seals for that.
    pub fn verify_audit_chain(&self) -> Result<AuditVerdict, StorageError> {
        Ok(self.read(|c| walk(c, Unconfirmed::Broken))?.verdict)
    }

    /// [`walk`], for [`Store::verify_audit`] and [`Store::confirm_audit_switch`].
    pub(crate) fn walk_audit_chain(&self, unconfirmed: Unconfirmed) -> Result<Walk, StorageError> {
        self.read(|c| walk(c, unconfirmed))
    }

    /// The upgrade step of a log begun by a version without keyed links (module doc): verifies
    /// the whole chain (plain before the switch point, keyed from it) and the seals in
    /// `seal_files` as [`Store::verify_audit`] does, and, when all is intact and the switch point
    /// has no MAC yet, writes the MAC and appends `event(keyed_from)` in the same transaction.
    /// Refuses when the switch point already carries a MAC that does not verify (it was moved:
    /// confirming it again would bless the move), and when a seal does not match (records the
    /// seals saw keyed were rewritten, e.g. after the switch point was reset and moved). Run
    /// once by the operator (`csc-server audit upgrade`), never automatically: an insider who
    /// resets the switch point cannot get it confirmed by a restart.
    pub fn confirm_audit_switch(
        &self,
        seal_files: &[std::path::PathBuf],
        event: impl FnOnce(i64) -> crate::audit::NewAuditEvent,
    ) -> Result<AuditUpgrade, StorageError> {
        let (report, walked) = self.check_audit(seal_files, Unconfirmed::Accepted)?;
        if let AuditVerdict::Broken { seq, reason } = report.verdict {
            return Ok(AuditUpgrade::Refused { seq, reason });
        }
        let keyed_from = walked.keyed_from;
        if keyed_from <= 1 {
            return Ok(AuditUpgrade::AllKeyed);
        }
        if !walked.unconfirmed {
            return Ok(AuditUpgrade::Confirmed {
                keyed_from,
                now: false,
            });
        }
        let Some(hash_before) = walked.hash_before_switch else {
            // An intact walk with a switch point above 1 reached the record before it.
            return Err(StorageError::Corrupt(
                "the record before the switch to keyed links was not found".into(),
            ));
        };
        let ev = event(keyed_from);
        self.write(|c| {
            let mac = switch_mac(c.keys()?, keyed_from, &hash_before);
            let n = diesel::update(
                audit_head::table
                    .find(1)
                    .filter(audit_head::keyed_from.eq(keyed_from))
                    .filter(audit_head::keyed_mac.is_null()),
            )
            .set(audit_head::keyed_mac.eq(Some(mac)))
            .execute(c.conn)?;
            if n != 1 {
                return Err(StorageError::Conflict(
                    "the switch to keyed links changed while it was being confirmed".into(),
                ));
            }
            c.append_audit(&ev)?;
            Ok(())
        })?;
        Ok(AuditUpgrade::Confirmed {
            keyed_from,
            now: true,
        })
    }
}

/// A range of records `from..=to` read for an export ([`Store::audit_range`]): each page is
/// checked as [`Store::verify_audit_chain`] checks the whole chain (numbers, links, hashes under
/// the audit key), so a record edited after a verification is never handed out as intact.
#[derive(Debug, Clone)]
pub struct AuditRange {
    /// The hash of record `from - 1` ([`ZERO_HASH`] when `from` is 1): what record `from` links
    /// to, as stored.
    pub anchor: String,
    next: i64,
    to: i64,
    keyed_from: i64,
    prev_hash: String,
}

/// One page of an [`AuditRange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditPage {
    /// The next records, checked (never empty).
    Records(Vec<AuditRecord>),
    /// The range is exhausted.
    Done,
    /// The first record of the page that is not intact.
    Broken {
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

impl Store {
    /// Starts reading records `from..=to` (`from >= 1`; `to < from`: an empty range) for an
    /// export; the anchor is read now, each record when its page is ([`Store::audit_page`]).
    pub fn audit_range(&self, from: i64, to: i64) -> Result<AuditRange, StorageError> {
        if from < 1 {
            return Err(StorageError::Corrupt(format!(
                "record numbers start at 1, not {from}"
            )));
        }
        self.read(|c| {
            let keyed_from = c.head_row()?.keyed_from;
            let anchor = if from == 1 {
                ZERO_HASH.to_owned()
            } else {
                audit_log::table
                    .find(from - 1)
                    .select(audit_log::hash)
                    .get_result::<String>(c.conn)
                    .optional()?
                    .ok_or_else(|| {
                        StorageError::Corrupt(format!("record {} is missing", from - 1))
                    })?
            };
            Ok(AuditRange {
                prev_hash: anchor.clone(),
                anchor,
                next: from,
                to,
                keyed_from,
            })
        })
    }

    /// The next page (at most 10,000 records) of `range`, each record checked.
    pub fn audit_page(&self, range: &mut AuditRange) -> Result<AuditPage, StorageError> {
        if range.next > range.to {
            return Ok(AuditPage::Done);
        }
        self.read(|c| {
            let keys = c.keys()?;
            let page = audit_log::table
                .filter(audit_log::seq.ge(range.next))
                .filter(audit_log::seq.le(range.to))
                .order(audit_log::seq.asc())
                .limit(VERIFY_PAGE)
                .load::<AuditRecord>(c.conn)?;
            if page.is_empty() {
                return Ok(AuditPage::Broken {
                    seq: range.next,
                    reason: format!("records {}..={} are missing", range.next, range.to),
                });
            }
            let mut buf = Vec::with_capacity(512);
            let mut hex_buf = [0u8; 64];
            for rec in &page {
                if let Some((seq, reason)) = check_record(
                    rec,
                    range.next,
                    &range.prev_hash,
                    range.keyed_from,
                    keys,
                    &mut buf,
                    &mut hex_buf,
                ) {
                    return Ok(AuditPage::Broken { seq, reason });
                }
                range.next = rec.seq + 1;
                range.prev_hash.clone_from(&rec.hash);
            }
            Ok(AuditPage::Records(page))
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
        let keys = IntegrityKeys::new([1; 32], [2; 32]);
        let h = rec.compute_hash(&keys);
        assert_eq!(h.len(), 64);
        assert_eq!(h, rec.compute_hash(&keys));
        // Another audit key, or no key at all, gives another hash.
        assert_ne!(h, rec.compute_hash(&IntegrityKeys::new([1; 32], [3; 32])));
        assert_ne!(h, rec.compute_plain_hash());
        // The plain rule is exactly that of the records written before keyed links (they must
        // still verify): SHA-256 of the v1 canonical bytes, computed independently.
        assert_eq!(
            rec.compute_plain_hash(),
            "dbf3818feb527c192fa4feb393d558e9b6033ec654df9f5b58ab32249063d5be"
        );
        // Moving a byte between adjacent fields changes the hash (length prefixes).
        let shifted = AuditRecord {
            event: "ea".into(),
            actor: String::new(),
            ..rec.clone()
        };
        assert_ne!(h, shifted.compute_hash(&keys));
    }
}
