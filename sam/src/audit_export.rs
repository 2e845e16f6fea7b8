//! The auditor's export of the audit log, verifiable on another machine without the token, the
//! database or any secret (JT2A Part I
//! 7.1.5: archive with its time, integrity checkable; Part I 7.1.4.3, 7.1.4.8, Part II 3.2.2.4).
//!
//! The chain's own hashes are HMACs under the audit key, which never leaves the server: nobody
//! else can check them. An export therefore carries its own evidence, made with the **audit seal
//! key**: an EC P-256 key pair generated in the token (label [`AUDIT_SEAL_KEY_LABEL`]; sensitive,
//! non-extractable, sign-only, [`crate::service_key`]), created by `init` or, for an older data
//! directory, at its next start (audited as `audit.seal_key.create`). It signs exports and
//! nothing else. Its public key (PEM SPKI, [`Sam::audit_seal_public_key_pem`]) is what the
//! auditor keeps; [`verify_audit_export`] needs nothing more.
//!
//! [`Sam::export_audit_as`] first verifies the whole chain and the seal files with the audit key
//! (a damaged log is refused, [`SamError::AuditLogBroken`]), then writes records `from..=to`
//! (checked again one by one as they are read) as JSON lines, each line ending in `\n`:
//!
//! ```text
//! {"type":"header","format":"csc-audit-export/1","from":F,"to":T,"anchor":A,"exportedAt":X,"sealKey":K}
//! {"type":"record","seq":F,"at":…,"event":…,"actor":…,"subject":…,"outcome":…,"detail":…,"prevHash":…,"hash":…}
//! {"type":"seal","seq":F,"hash":…,"at":…,"digest":d_F,"signature":…}      (0 or more per record)
//! …                                                                         (records F+1 … T)
//! {"type":"end","from":F,"to":T,"records":N,"seals":S,"digest":d_T,"lines":L,"anchor":A,"exportedAt":X,"signature":…}
//! ```
//!
//! * `anchor` is the stored hash of record `F-1` (64 zeros for `F = 1`): record `F` links to it.
//!   `sealKey` is the hex SHA-256 of the seal key's DER SubjectPublicKeyInfo. `exportedAt` and
//!   seal times are RFC 3339 UTC with microseconds. Record lines hold every column as stored
//!   (`detail` is the stored JSON text, a string), so the server's own check can be repeated
//!   by whoever holds the audit key.
//! * **The record digest** is public: `d_{F-1}` = the anchor's 32 bytes; `d_k = SHA-256(lp(D_r)
//!   ‖ d_{k-1} ‖ bytes of record line k)` (without its newline), `lp(x)` = `x` preceded by its
//!   length as 8 bytes big-endian, `D_r` = `csc-audit-export/1 record`.
//! * **A seal line** re-attests a seal of the seal files whose record is in the range, right
//!   after that record's line: `digest` is `d_seq` and `signature` (base64 DER ECDSA-SHA256 by
//!   the seal key) covers `lp(D_s) ‖ seq (8 bytes BE) ‖ lp(hash) ‖ lp(at) ‖ d_seq`,
//!   `D_s` = `csc-audit-export/1 seal`: the server says that record `seq`, whose content chain
//!   from the anchor is `d_seq`, was sealed at `at`.
//! * **The line digest** covers every byte before the end line: `L_0 = SHA-256(lp(D_l) ‖ bytes
//!   of the header line)`, then `L_i = SHA-256(lp(D_l) ‖ L_{i-1} ‖ bytes of line i)` for each
//!   record and seal line, `D_l` = `csc-audit-export/1 lines`.
//! * **The end line**'s `signature` covers `lp(D_e) ‖ from ‖ to ‖ records ‖ seals (8 bytes BE
//!   each) ‖ d_T ‖ L ‖ lp(anchor) ‖ lp(exportedAt)`, `D_e` = `csc-audit-export/1 end`.
//!
//! So nothing in a line is outside a signature: editing, inserting, deleting or reordering a
//! record or seal line changes `L` (and `d`), a seal line moved to another record or export
//! fails its own signature, truncation loses the end line (or its counts), two exports spliced
//! disagree on the header, the anchor or the digests, and an export signed by another key fails
//! against the auditor's public key. The verifier also demands each line in exactly the form the
//! server writes (re-encoded and compared byte for byte), checks numbering and links
//! (`seq` contiguous from `from`, each `prevHash` the previous `hash`) and names the first line
//! at fault.
//!
//! What the export cannot show: that the audit key's HMACs in it are right (only the token can),
//! nor records after `to`. What it shows: the server, holding the seal key, vouched at
//! `exportedAt` for exactly these records after checking them and the seals with the audit key.
//! An edited record line is caught at the next signed line (a seal line or the end), whose error
//! names the lines it covers: per-record signatures would cost a token operation per record.
//!
//! Cost: one token signature per seal line plus one (SoftHSM2: tens of microseconds each); the
//! seals of the range are held in memory (about 200 bytes each; `serve` writes at most one per
//! second of activity), the records are streamed. Export a long log by ranges (a month each).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cm_pkcs11::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use storage::{AuditPage, AuditRecord, AuditSeal, AuditVerdict};

use crate::roles::{Action, Actor, allows};
use crate::service_key::{SERVICE_KEY_SPEC, ServiceKey};
use crate::{AuditEvent, Sam, SamError, audit_event};

/// The `CKA_LABEL` of the audit seal key; only a key with this label signs exports.
pub const AUDIT_SEAL_KEY_LABEL: &str = "csc-audit-seal";
/// The `format` of the header line.
pub const EXPORT_FORMAT: &str = "csc-audit-export/1";

const RECORD_DOMAIN: &[u8] = b"csc-audit-export/1 record";
const LINES_DOMAIN: &[u8] = b"csc-audit-export/1 lines";
const SEAL_DOMAIN: &[u8] = b"csc-audit-export/1 seal";
const END_DOMAIN: &[u8] = b"csc-audit-export/1 end";

/// The loaded audit seal key.
#[derive(Debug)]
pub(crate) struct SealKey {
    key: ServiceKey,
    public: PublicKey,
    /// Hex SHA-256 of the DER SPKI.
    fingerprint: String,
}

/// What an export covers, fixed before its first line is written.
struct Plan<'a> {
    from: i64,
    to: i64,
    count: u64,
    /// The hash of record `from - 1`, hex and as bytes (`d_{from-1}`).
    anchor: &'a str,
    anchor_bytes: [u8; 32],
    exported_at: &'a str,
    /// The seals to re-attest, in record order.
    seals: &'a [AuditSeal],
}

/// What [`Sam::export_audit_as`] exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// The first record exported.
    pub from: i64,
    /// The last record exported (`from - 1`: none).
    pub to: i64,
    /// How many records.
    pub count: u64,
    /// How many seal lines.
    pub seals: u64,
}

/// What [`verify_audit_export`] found in an intact export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The first record.
    pub from: i64,
    /// The last record.
    pub to: i64,
    /// How many records.
    pub records: u64,
    /// How many seal lines (each signature verified).
    pub seals: u64,
    /// When the server made the export (RFC 3339).
    pub exported_at: String,
    /// The hash of record `from - 1`, which record `from` links to.
    pub anchor: String,
    /// Hex SHA-256 of the seal key's DER SPKI.
    pub seal_key: String,
    /// `d_to`, hex: the record digest of the whole range.
    pub digest: String,
}

/// Why an export does not verify: the first line at fault (1 is the header; 0: the public key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ExportError {
    /// The line number (from 1), or 0 for the public key.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// One line of an export (module doc); serialised exactly so, field order included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
enum Line {
    Header {
        format: String,
        from: i64,
        to: i64,
        anchor: String,
        exported_at: String,
        seal_key: String,
    },
    Record {
        seq: i64,
        at: String,
        event: String,
        actor: String,
        subject: String,
        outcome: String,
        detail: String,
        prev_hash: String,
        hash: String,
    },
    Seal {
        seq: i64,
        hash: String,
        at: String,
        digest: String,
        signature: String,
    },
    End {
        from: i64,
        to: i64,
        records: u64,
        seals: u64,
        digest: String,
        lines: String,
        anchor: String,
        exported_at: String,
        signature: String,
    },
}

/// `x` preceded by its length (8 bytes big-endian).
fn push_field(buf: &mut Vec<u8>, x: &[u8]) {
    buf.extend_from_slice(&(x.len() as u64).to_be_bytes());
    buf.extend_from_slice(x);
}

/// `SHA-256(lp(domain) ‖ prev ‖ bytes)`.
fn chain(domain: &[u8], prev: Option<&[u8; 32]>, bytes: &[u8]) -> [u8; 32] {
    let mut h = openssl::sha::Sha256::new();
    h.update(&(domain.len() as u64).to_be_bytes());
    h.update(domain);
    if let Some(p) = prev {
        h.update(p);
    }
    h.update(bytes);
    h.finish()
}

/// What a seal line's signature covers.
fn seal_message(seq: i64, hash: &str, at: &str, digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(200);
    push_field(&mut m, SEAL_DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    push_field(&mut m, hash.as_bytes());
    push_field(&mut m, at.as_bytes());
    m.extend_from_slice(digest);
    m
}

/// What the end line's signature covers.
#[allow(clippy::too_many_arguments)]
fn end_message(
    from: i64,
    to: i64,
    records: u64,
    seals: u64,
    digest: &[u8; 32],
    lines: &[u8; 32],
    anchor: &str,
    exported_at: &str,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(250);
    push_field(&mut m, END_DOMAIN);
    m.extend_from_slice(&from.to_be_bytes());
    m.extend_from_slice(&to.to_be_bytes());
    m.extend_from_slice(&records.to_be_bytes());
    m.extend_from_slice(&seals.to_be_bytes());
    m.extend_from_slice(digest);
    m.extend_from_slice(lines);
    push_field(&mut m, anchor.as_bytes());
    push_field(&mut m, exported_at.as_bytes());
    m
}

/// The 32 bytes of a 64-digit hex hash (lower case, as the server writes them).
fn hash_bytes(hex_text: &str) -> Option<[u8; 32]> {
    if hex_text.len() != 64 || hex_text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

fn line_bytes(line: &Line) -> Result<Vec<u8>, SamError> {
    serde_json::to_vec(line).map_err(|e| SamError::ExportWrite(std::io::Error::other(e)))
}

/// The running digests of a writer or a verifier.
struct Digests {
    /// `d`: over record lines, from the anchor.
    records: [u8; 32],
    /// `L`: over every line before the end.
    lines: [u8; 32],
}

impl Digests {
    fn new(anchor: [u8; 32], header: &[u8]) -> Digests {
        Digests {
            records: anchor,
            lines: chain(LINES_DOMAIN, None, header),
        }
    }

    fn record(&mut self, bytes: &[u8]) {
        self.records = chain(RECORD_DOMAIN, Some(&self.records), bytes);
        self.lines = chain(LINES_DOMAIN, Some(&self.lines), bytes);
    }

    fn seal(&mut self, bytes: &[u8]) {
        self.lines = chain(LINES_DOMAIN, Some(&self.lines), bytes);
    }
}

/// RFC 3339 UTC with microseconds, as stored timestamps are written.
fn rfc3339(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn record_line(rec: &AuditRecord) -> Line {
    Line::Record {
        seq: rec.seq,
        at: rfc3339(&rec.at),
        event: rec.event.clone(),
        actor: rec.actor.clone(),
        subject: rec.subject.clone(),
        outcome: rec.outcome.clone(),
        detail: rec.detail.clone(),
        prev_hash: rec.prev_hash.clone(),
        hash: rec.hash.clone(),
    }
}

impl Sam {
    /// Finds the audit seal key in the token by its label, or generates it (audited as
    /// `audit.seal_key.create`): `init` creates it, and a data directory from before it gets one
    /// at its next start. A key under that label that is not EC P-256 is refused. Blocking.
    pub fn with_audit_seal_key(mut self) -> Result<Sam, SamError> {
        let id = match self.hsm.key_pair_labelled(AUDIT_SEAL_KEY_LABEL)? {
            Some(id) => id,
            None => {
                let made = ServiceKey::generate(&self.hsm, AUDIT_SEAL_KEY_LABEL)?;
                // another process may have made one meanwhile: all settle on the smallest id
                let id = self
                    .hsm
                    .key_pair_labelled(AUDIT_SEAL_KEY_LABEL)?
                    .unwrap_or(made.id);
                let public = self.hsm.public_key(&made.id)?;
                self.store.write(|c| {
                    c.append_audit(&audit_event(
                        AuditEvent::AuditSealKeyCreate,
                        "system",
                        AUDIT_SEAL_KEY_LABEL,
                        "success",
                        json!({
                            "keyId": made.id.to_string(),
                            "keyAlgo": SERVICE_KEY_SPEC.as_str(),
                            "sealKey": hex::encode(openssl::sha::sha256(&public.spki_der)),
                        }),
                    ))
                })?;
                id
            }
        };
        let public = self.hsm.public_key(&id)?;
        if public.spec != SERVICE_KEY_SPEC {
            return Err(SamError::AuditSealKey(format!(
                "the key labelled {AUDIT_SEAL_KEY_LABEL} in the token is {}, not {}",
                public.spec.as_str(),
                SERVICE_KEY_SPEC.as_str()
            )));
        }
        self.audit_seal_key = Some(Arc::new(SealKey {
            key: ServiceKey {
                id,
                label: AUDIT_SEAL_KEY_LABEL,
            },
            fingerprint: hex::encode(openssl::sha::sha256(&public.spki_der)),
            public,
        }));
        Ok(self)
    }

    fn seal_key(&self) -> Result<&SealKey, SamError> {
        self.audit_seal_key.as_deref().ok_or_else(|| {
            SamError::AuditSealKey(
                "the audit seal key is not loaded (Sam::with_audit_seal_key)".into(),
            )
        })
    }

    /// The audit seal key's public key, PEM SubjectPublicKeyInfo: what an auditor needs to
    /// verify exports ([`verify_audit_export`]). For the roles that may export or verify the
    /// audit log (the auditor); another role is refused and audited as for
    /// [`Action::AuditExport`].
    pub fn audit_seal_public_key_pem(&self, actor: &Actor) -> Result<String, SamError> {
        if !allows(actor.role, Action::AuditVerify) {
            self.permit(actor, Action::AuditExport, AUDIT_SEAL_KEY_LABEL)?;
        }
        Ok(self.seal_key()?.public.to_pem())
    }

    /// Exports records `from..=to` (default: the whole log, as far as it was verified) with the
    /// seals of `seal_files` in that range, as signed JSON lines written to `out` (module doc),
    /// for the auditor ([`Action::AuditExport`]). First verifies the whole chain and every seal
    /// with the audit key and refuses a damaged log ([`SamError::AuditLogBroken`]); a range
    /// outside the log is [`SamError::ExportRange`]. Audited (write-ahead) as `audit.export`
    /// with the range and the counts. Blocking: one token signature per seal line, plus one.
    pub fn export_audit_as(
        &self,
        actor: &Actor,
        seal_files: &[PathBuf],
        from: Option<i64>,
        to: Option<i64>,
        out: &mut dyn Write,
    ) -> Result<ExportSummary, SamError> {
        self.permit(actor, Action::AuditExport, "audit-log")?;
        let key = self.seal_key()?;
        let head = match self.store.verify_audit(seal_files)?.verdict {
            AuditVerdict::Intact { records } => i64::try_from(records).unwrap_or(i64::MAX),
            AuditVerdict::Broken { seq, reason } => {
                return Err(SamError::AuditLogBroken { seq, reason });
            }
        };
        let from = from.unwrap_or(1);
        let to = to.unwrap_or(head);
        if from < 1 || to > head || to < from - 1 {
            return Err(SamError::ExportRange(format!(
                "records {from}..={to} are not a range of the log (records 1..={head})"
            )));
        }
        let count = u64::try_from(to - from + 1).unwrap_or(0);
        let seals = self.store.audit_seals_between(seal_files, from, to)?;
        let mut range = self.store.audit_range(from, to)?;
        let anchor = range.anchor.clone();
        let Some(anchor_bytes) = hash_bytes(&anchor) else {
            return Err(SamError::AuditLogBroken {
                seq: from - 1,
                reason: "the record's hash is not 64 hex digits".into(),
            });
        };
        let exported_at = rfc3339(&crate::utc_now());
        let summary = ExportSummary {
            from,
            to,
            count,
            seals: seals.len() as u64,
        };
        let actor_name = actor.audit_name();
        let detail = json!({
            "from": from,
            "to": to,
            "records": count,
            "seals": summary.seals,
            "sealKey": key.fingerprint,
            "exportedAt": exported_at,
        });
        // write-ahead: the export is on record before a line of it leaves
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::AuditExport,
                &actor_name,
                "audit-log",
                "success",
                detail.clone(),
            ))
        })?;
        let plan = Plan {
            from,
            to,
            count,
            anchor: &anchor,
            anchor_bytes,
            exported_at: &exported_at,
            seals: &seals,
        };
        let written = self.write_export(key, out, &mut range, &plan);
        if let Err(e) = &written {
            let mut failed = detail;
            if let Some(map) = failed.as_object_mut() {
                map.insert("error".into(), json!(e.to_string()));
            }
            self.audit_best_effort(&audit_event(
                AuditEvent::AuditExport,
                &actor_name,
                "audit-log",
                "failure",
                failed,
            ));
        }
        written.map(|()| summary)
    }

    /// Writes the export `plan` describes, reading its records from `range` and signing with
    /// `key` (module doc).
    fn write_export(
        &self,
        key: &SealKey,
        out: &mut dyn Write,
        range: &mut storage::AuditRange,
        plan: &Plan<'_>,
    ) -> Result<(), SamError> {
        let &Plan {
            from,
            to,
            count,
            anchor,
            anchor_bytes,
            exported_at,
            seals,
        } = plan;
        let mut emit = |bytes: &[u8]| -> Result<(), SamError> {
            out.write_all(bytes)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(SamError::ExportWrite)
        };
        let header = line_bytes(&Line::Header {
            format: EXPORT_FORMAT.to_owned(),
            from,
            to,
            anchor: anchor.to_owned(),
            exported_at: exported_at.to_owned(),
            seal_key: key.fingerprint.clone(),
        })?;
        emit(&header)?;
        let mut digests = Digests::new(anchor_bytes, &header);
        let mut pending = seals.iter().peekable();
        loop {
            let records = match self.store.audit_page(range)? {
                AuditPage::Records(records) => records,
                AuditPage::Done => break,
                AuditPage::Broken { seq, reason } => {
                    return Err(SamError::AuditLogBroken { seq, reason });
                }
            };
            for rec in &records {
                let bytes = line_bytes(&record_line(rec))?;
                digests.record(&bytes);
                emit(&bytes)?;
                while let Some(seal) = pending.next_if(|s| s.seq <= rec.seq) {
                    if seal.seq != rec.seq || seal.hash != rec.hash {
                        return Err(SamError::AuditLogBroken {
                            seq: seal.seq,
                            reason: format!(
                                "record {} is not the record sealed at {}",
                                seal.seq, seal.at
                            ),
                        });
                    }
                    let message = seal_message(seal.seq, &seal.hash, &seal.at, &digests.records);
                    let signature = key
                        .key
                        .sign_sha256(&self.hsm, &openssl::sha::sha256(&message))?;
                    let bytes = line_bytes(&Line::Seal {
                        seq: seal.seq,
                        hash: seal.hash.clone(),
                        at: seal.at.clone(),
                        digest: hex::encode(digests.records),
                        signature: STANDARD.encode(signature),
                    })?;
                    digests.seal(&bytes);
                    emit(&bytes)?;
                }
            }
        }
        let sealed = seals.len() as u64;
        let message = end_message(
            from,
            to,
            count,
            sealed,
            &digests.records,
            &digests.lines,
            anchor,
            exported_at,
        );
        let signature = key
            .key
            .sign_sha256(&self.hsm, &openssl::sha::sha256(&message))?;
        emit(&line_bytes(&Line::End {
            from,
            to,
            records: count,
            seals: sealed,
            digest: hex::encode(digests.records),
            lines: hex::encode(digests.lines),
            anchor: anchor.to_owned(),
            exported_at: exported_at.to_owned(),
            signature: STANDARD.encode(signature),
        })?)?;
        out.flush().map_err(SamError::ExportWrite)
    }
}

/// Checks an export (module doc) with nothing but the seal key's public key (PEM SPKI): no
/// token, no database, no secret. Streams: memory does not grow with the export. The first
/// line at fault is reported.
pub fn verify_audit_export(
    export: &mut dyn BufRead,
    public_key_pem: &[u8],
) -> Result<ExportReport, ExportError> {
    let fail = |line: u64, reason: String| ExportError { line, reason };
    let key = openssl::pkey::PKey::public_key_from_pem(public_key_pem)
        .map_err(|e| fail(0, format!("the seal key is not a PEM public key: {e}")))?;
    let spki = key
        .public_key_to_der()
        .map_err(|e| fail(0, format!("the seal key cannot be encoded: {e}")))?;
    let fingerprint = hex::encode(openssl::sha::sha256(&spki));
    let verifies = |message: &[u8], signature_b64: &str| -> bool {
        let Ok(signature) = STANDARD.decode(signature_b64) else {
            return false;
        };
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key)
            .and_then(|mut v| v.verify_oneshot(&signature, message))
            .unwrap_or(false)
    };

    let mut reader = LineReader::new(export);
    let (header_bytes, header) = reader
        .next()?
        .ok_or_else(|| fail(1, "the export is empty".into()))?;
    let Line::Header {
        format,
        from,
        to,
        anchor,
        exported_at,
        seal_key,
    } = header
    else {
        return Err(fail(1, "the first line is not the header".into()));
    };
    if format != EXPORT_FORMAT {
        return Err(fail(1, format!("unknown format {format:?}")));
    }
    if seal_key != fingerprint {
        return Err(fail(
            1,
            format!("the export names the seal key {seal_key}, not the given key {fingerprint}"),
        ));
    }
    let anchor_bytes =
        hash_bytes(&anchor).ok_or_else(|| fail(1, "the anchor is not a hash".into()))?;
    if from < 1 || to < from - 1 {
        return Err(fail(1, format!("{from}..={to} is not a range of records")));
    }
    let mut digests = Digests::new(anchor_bytes, &header_bytes);
    let mut records = 0u64;
    let mut seals = 0u64;
    let mut last_hash = anchor.clone();
    let mut last_seq = from - 1;
    // the last line everything up to which is proven by a verified seal signature (none yet:
    // even the header is proven only by the end line's)
    let mut attested = 0u64;
    loop {
        let n = reader.line + 1;
        let Some((bytes, line)) = reader.next()? else {
            return Err(fail(
                n,
                format!("the export ends without its end line (truncated after record {last_seq})"),
            ));
        };
        match line {
            Line::Header { .. } => return Err(fail(n, "a second header".into())),
            Line::Record {
                seq,
                ref prev_hash,
                ref hash,
                ..
            } => {
                if seq != last_seq + 1 || seq > to {
                    return Err(fail(
                        n,
                        format!(
                            "record {seq} where record {} was expected",
                            if last_seq < to {
                                (last_seq + 1).to_string()
                            } else {
                                "none (the range ends)".to_owned()
                            }
                        ),
                    ));
                }
                if *prev_hash != last_hash {
                    return Err(fail(
                        n,
                        format!("record {seq} does not link to the hash of record {last_seq}"),
                    ));
                }
                digests.record(&bytes);
                records += 1;
                last_seq = seq;
                last_hash.clone_from(hash);
            }
            Line::Seal {
                seq,
                ref hash,
                ref at,
                ref digest,
                ref signature,
            } => {
                // the line's own signature first: then a mismatch below blames the records
                let claimed = hash_bytes(digest);
                if !claimed.is_some_and(|d| verifies(&seal_message(seq, hash, at, &d), signature)) {
                    return Err(fail(
                        n,
                        format!(
                            "the seal line of record {seq} is not signed by the seal key (edited, \
                             or made with another key)"
                        ),
                    ));
                }
                if records == 0 || seq != last_seq {
                    return Err(fail(
                        n,
                        format!(
                            "the seal of record {seq} is not right after that record (lines \
                             removed, inserted or moved: {})",
                            span(attested + 1, n)
                        ),
                    ));
                }
                if *hash != last_hash || claimed != Some(digests.records) {
                    return Err(fail(
                        n,
                        format!(
                            "the records before this seal of record {seq} are not those the seal \
                             key signed: {} altered (a record edited, inserted, removed or \
                             reordered)",
                            span(attested + 1, n - 1)
                        ),
                    ));
                }
                digests.seal(&bytes);
                seals += 1;
                attested = n;
            }
            Line::End {
                from: end_from,
                to: end_to,
                records: end_records,
                seals: end_seals,
                ref digest,
                ref lines,
                anchor: ref end_anchor,
                exported_at: ref end_at,
                ref signature,
            } => {
                let (Some(claimed_digest), Some(claimed_lines)) =
                    (hash_bytes(digest), hash_bytes(lines))
                else {
                    return Err(fail(n, "the end line's digests are not hashes".into()));
                };
                let message = end_message(
                    end_from,
                    end_to,
                    end_records,
                    end_seals,
                    &claimed_digest,
                    &claimed_lines,
                    end_anchor,
                    end_at,
                );
                if !verifies(&message, signature) {
                    return Err(fail(
                        n,
                        "the end line is not signed by the seal key (edited, or made with another \
                         key)"
                            .into(),
                    ));
                }
                if (end_from, end_to, end_anchor, end_at) != (from, to, &anchor, &exported_at) {
                    return Err(fail(
                        1,
                        "the header is not the one of this export's end line (edited, or two \
                         exports spliced)"
                            .into(),
                    ));
                }
                if last_seq != to {
                    return Err(fail(
                        n,
                        format!(
                            "records {}..={to} are missing before the end line (removed, or the \
                             export truncated and closed with another end line)",
                            last_seq + 1
                        ),
                    ));
                }
                if end_records != records
                    || end_seals != seals
                    || claimed_digest != digests.records
                    || claimed_lines != digests.lines
                {
                    return Err(fail(
                        n,
                        format!(
                            "the lines before the end line are not those the seal key signed: {} \
                             altered (a line edited, inserted, removed or reordered)",
                            span(attested + 1, n - 1)
                        ),
                    ));
                }
                let after = reader.line + 1;
                if reader.next_raw()?.is_some() {
                    return Err(fail(after, "data after the end line".into()));
                }
                return Ok(ExportReport {
                    from,
                    to,
                    records,
                    seals,
                    exported_at,
                    anchor,
                    seal_key,
                    digest: digest.clone(),
                });
            }
        }
    }
}

/// "line N" or "lines A..=B" (the lines a signed checkpoint blames).
fn span(first: u64, last: u64) -> String {
    if first >= last {
        format!("line {last}")
    } else {
        format!("lines {first}..={last}")
    }
}

/// Reads an export line by line, each in exactly the form the server writes.
struct LineReader<'a> {
    input: &'a mut dyn BufRead,
    /// The number of the last line read.
    line: u64,
    buf: Vec<u8>,
}

impl<'a> LineReader<'a> {
    fn new(input: &'a mut dyn BufRead) -> LineReader<'a> {
        LineReader {
            input,
            line: 0,
            buf: Vec::with_capacity(1024),
        }
    }

    /// The next line's bytes (without its newline), `None` at the end.
    fn next_raw(&mut self) -> Result<Option<Vec<u8>>, ExportError> {
        self.buf.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| ExportError {
                line: self.line + 1,
                reason: format!("cannot read: {e}"),
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') {
            return Err(ExportError {
                line: self.line,
                reason: "the line has no end (truncated)".into(),
            });
        }
        self.buf.pop();
        Ok(Some(self.buf.clone()))
    }

    /// The next line, parsed and checked to be in the server's exact form.
    fn next(&mut self) -> Result<Option<(Vec<u8>, Line)>, ExportError> {
        let Some(bytes) = self.next_raw()? else {
            return Ok(None);
        };
        let line = self.line;
        let parsed: Line = serde_json::from_slice(&bytes).map_err(|e| ExportError {
            line,
            reason: format!("not a line of an export: {e}"),
        })?;
        if serde_json::to_vec(&parsed).ok().as_deref() != Some(bytes.as_slice()) {
            return Err(ExportError {
                line,
                reason: "the line is not in the form the server writes (edited)".into(),
            });
        }
        Ok(Some((bytes, parsed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::ZERO_HASH;

    #[test]
    fn lines_have_one_exact_form() {
        let line = Line::Seal {
            seq: 3,
            hash: "ab".into(),
            at: "2026-12-02T05:00:00.000001Z".into(),
            digest: "cd".into(),
            signature: "ef".into(),
        };
        let text =
            String::from_utf8(serde_json::to_vec(&line).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"type":"seal","seq":3,"hash":"ab","at":"2026-12-02T05:00:00.000001Z","digest":"cd","signature":"ef"}"#
        );
        // an unknown member is not a line
        let extra =
            r#"{"type":"seal","seq":3,"hash":"ab","at":"x","digest":"cd","signature":"ef","x":1}"#;
        assert!(serde_json::from_str::<Line>(extra).is_err());
        assert_eq!(hash_bytes(ZERO_HASH), Some([0; 32]));
        assert_eq!(hash_bytes(&"A".repeat(64)), None);
    }
}
