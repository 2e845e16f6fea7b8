//! Seals of the audit chain's head, kept outside the database (README "Threat model": the
//! audit chain is keyed by the token and sealed outside the database, so truncation,
//! recomputation and rollback are detected; Part I 7.1.4.3, Part II 3.2.2.4).
//!
//! A seal is one line of JSON, `{"seq":N,"hash":"…","at":"…Z","mac":"…"}`: the head of the
//! audit chain (the last record's sequence number and hash, `0` and [`ZERO_HASH`] for an empty
//! log) at time `at`, and `mac` = hex HMAC-SHA256 under the audit key over a domain tag, `seq`
//! (8 bytes big-endian), `hash` and `at` (each length-prefixed). `serve` appends one to its seal
//! file ([`SealLog`], append-only, fsynced) every second in which the head moved and when it
//! stops; the operator commands append one when they wrote records.
//!
//! The chain ([`crate::audit`]) shows any record edited, inserted, deleted or reordered, and no
//! one can recompute it without the token. What it cannot show alone is a database whose newest
//! records are gone with the head fixed up, or an older copy put back: both leave a chain that
//! is intact but shorter than (or different from) one that existed. A seal names a record that
//! existed; [`Store::verify_audit`] requires every seal to verify under the key and to match the
//! record at its `seq`. An insider who can write the database but not the seal file (kept off
//! the database host, backed up apart from the database) can no longer hide records.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditVerdict, Unconfirmed, Walk, ZERO_HASH};
use crate::connection::{Conn, Store};
use crate::error::StorageError;
use crate::integrity::IntegrityKeys;
use crate::types::utc_now;

/// Domain separation tag of a seal's MAC.
const SEAL_DOMAIN: &[u8] = b"csc-audit-seal/v1";

/// Seals compared with the database per query.
const SEAL_BATCH: usize = 1_000;

/// One seal: the chain head at a time, MACed under the audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSeal {
    /// The last record's sequence number (0: the log was empty).
    pub seq: i64,
    /// Its hash, hex, as stored.
    pub hash: String,
    /// When the head was read (RFC 3339, UTC, microseconds, `Z`).
    pub at: String,
    /// Hex HMAC-SHA256 under the audit key over `seq`, `hash` and `at`.
    pub mac: String,
}

fn seal_mac(keys: &IntegrityKeys, seq: i64, hash: &str, at: &str) -> String {
    hex::encode(keys.audit_mac(&[
        SEAL_DOMAIN,
        &seq.to_be_bytes(),
        hash.as_bytes(),
        at.as_bytes(),
    ]))
}

impl AuditSeal {
    /// A seal of `(seq, hash)` now.
    pub(crate) fn new(keys: &IntegrityKeys, seq: i64, hash: String) -> AuditSeal {
        let at = utc_now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mac = seal_mac(keys, seq, &hash, &at);
        AuditSeal { seq, hash, at, mac }
    }

    /// Whether its MAC verifies under `keys` (constant time).
    pub fn verifies(&self, keys: &IntegrityKeys) -> bool {
        let expected = seal_mac(keys, self.seq, &self.hash, &self.at);
        expected.len() == self.mac.len()
            && openssl::memcmp::eq(expected.as_bytes(), self.mac.as_bytes())
    }
}

fn seal_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::SealFile {
        path: path.display().to_string(),
        source,
    }
}

/// An append-only seal file: opened with `O_APPEND` (created mode 0600), one line per seal,
/// each fsynced before [`SealLog::append`] returns.
#[derive(Debug)]
pub struct SealLog {
    file: File,
    path: PathBuf,
}

impl SealLog {
    /// Opens (creates) the seal file at `path`; its directory must exist. A new file's
    /// directory entry is fsynced too. If the file does not end with a newline (a write torn by
    /// a crash), one is appended first, so the torn line cannot swallow the next seal (it stays
    /// a damaged line that `audit verify` reports).
    pub fn open(path: &Path) -> Result<SealLog, StorageError> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(seal_error(path))?;
        if created
            && let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(seal_error(path))?;
        }
        let len = file.metadata().map_err(seal_error(path))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(seal_error(path))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .and_then(|()| file.sync_data())
                    .map_err(seal_error(path))?;
            }
        }
        Ok(SealLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `seal` as one line and fsyncs it.
    pub fn append(&mut self, seal: &AuditSeal) -> Result<(), StorageError> {
        let mut line = serde_json::to_vec(seal)
            .map_err(|e| StorageError::Corrupt(format!("cannot encode a seal: {e}")))?;
        line.push(b'\n');
        // One write of the whole line: with O_APPEND it lands at the end in one piece.
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(seal_error(&self.path))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Result of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Intact, or the first broken record (by the chain or by a seal).
    pub verdict: AuditVerdict,
    /// The first record linked with the audit key (1 unless the log predates keyed links).
    pub keyed_from: i64,
    /// How many seals were read (each verified and compared).
    pub seals: u64,
}

/// The earliest damage found so far.
#[derive(Default)]
struct FirstDamage(Option<(i64, String)>);

impl FirstDamage {
    fn note(&mut self, seq: i64, reason: String) {
        if self.0.as_ref().is_none_or(|(s, _)| seq < *s) {
            self.0 = Some((seq, reason));
        }
    }
}

/// A seal read from a file, with where it was.
struct ReadSeal {
    seal: AuditSeal,
    line: u64,
    file: usize,
}

impl Store {
    /// A seal of the chain head now (a read and an HMAC). Needs the store's keys.
    pub fn audit_seal(&self) -> Result<AuditSeal, StorageError> {
        self.read(|c| {
            let keys = c.keys()?;
            let (seq, hash) = c.audit_head()?;
            Ok(AuditSeal::new(keys, seq, hash))
        })
    }

    /// Verifies the audit chain with the audit key ([`Store::verify_audit_chain`]) AND against
    /// the seals in `seal_files`: each seal must verify under the key and match the record at its
    /// `seq` (same hash); a seal beyond the last record means records were deleted at the tail or
    /// the database was rolled back to an older copy. The verdict names the first (lowest) broken
    /// record found by either: for a seal beyond the log, the record after the last one; for a
    /// seal whose record differs, that record; for a seal whose MAC does not verify, the record
    /// it claims (0 for a line that is not a seal at all).
    ///
    /// The files are measured before the chain's head is read, and only their lines complete by
    /// then are read, so a server appending seals meanwhile causes no false alarm: every seal
    /// read was written from a head no later than the one the chain is checked up to.
    pub fn verify_audit(&self, seal_files: &[PathBuf]) -> Result<AuditReport, StorageError> {
        Ok(self.check_audit(seal_files, Unconfirmed::Broken)?.0)
    }

    /// [`Store::verify_audit`], with the chain walked under `unconfirmed`; also returns the walk.
    pub(crate) fn check_audit(
        &self,
        seal_files: &[PathBuf],
        unconfirmed: Unconfirmed,
    ) -> Result<(AuditReport, Walk), StorageError> {
        let mut files = Vec::with_capacity(seal_files.len());
        for path in seal_files {
            let file = File::open(path).map_err(seal_error(path))?;
            let len = file.metadata().map_err(seal_error(path))?.len();
            files.push((path.as_path(), file.take(len)));
        }
        let walk = self.walk_audit_chain(unconfirmed)?;
        let mut first = FirstDamage::default();
        if let AuditVerdict::Broken { seq, reason } = &walk.verdict {
            first.note(*seq, reason.clone());
        }
        let head = walk.head_seq;
        let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        let mut seals = 0u64;
        self.read(|c| {
            let keys = c.keys()?;
            let mut batch = Vec::with_capacity(SEAL_BATCH);
            for (index, (path, file)) in files.into_iter().enumerate() {
                let name = names.get(index).map_or("?", String::as_str);
                read_seal_lines(path, file, |line, parsed| {
                    seals += 1;
                    match parsed {
                        Some(seal) if seal.seq >= 0 && seal.verifies(keys) => {
                            batch.push(ReadSeal {
                                seal,
                                line,
                                file: index,
                            });
                            if batch.len() >= SEAL_BATCH {
                                compare(c, &mut batch, head, &names, &mut first)?;
                            }
                        }
                        Some(seal) => first.note(
                            seal.seq.max(0),
                            format!(
                                "the seal on line {line} of {name} (record {}) does not verify \
                                 under the audit key: the seal file was altered",
                                seal.seq
                            ),
                        ),
                        None => first.note(
                            0,
                            format!(
                                "line {line} of {name} is not a seal (edited, or torn by a crash)"
                            ),
                        ),
                    }
                    Ok(())
                })?;
            }
            compare(c, &mut batch, head, &names, &mut first)
        })?;
        let report = AuditReport {
            verdict: match first.0 {
                Some((seq, reason)) => AuditVerdict::Broken { seq, reason },
                None => walk.verdict.clone(),
            },
            keyed_from: walk.keyed_from,
            seals,
        };
        Ok((report, walk))
    }
}

/// Reads the complete lines of the seal file `file` (at `path`, for errors) and calls `each`
/// with the line number and the seal on it (`None`: the line is not a seal); blank lines are
/// skipped, and so is a last line without its newline (still being written).
fn read_seal_lines(
    path: &Path,
    file: impl Read,
    mut each: impl FnMut(u64, Option<AuditSeal>) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut reader = BufReader::new(file);
    let mut bytes = Vec::with_capacity(256);
    let mut line = 0u64;
    loop {
        bytes.clear();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(seal_error(path))?;
        // The end, or a line still being written when the file was measured.
        if n == 0 || bytes.last() != Some(&b'\n') {
            return Ok(());
        }
        line += 1;
        let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        each(line, serde_json::from_slice::<AuditSeal>(text).ok())?;
    }
}

impl Store {
    /// The seals of `seal_files` that name a record in `from..=to` and verify under the audit
    /// key, in the order of their records (then of their time), each once: what an export
    /// re-attests ([`Store::verify_audit`] has checked the files as a whole before). Lines that
    /// are not seals, or do not verify, are left out.
    pub fn audit_seals_between(
        &self,
        seal_files: &[PathBuf],
        from: i64,
        to: i64,
    ) -> Result<Vec<AuditSeal>, StorageError> {
        let mut found = Vec::new();
        self.read(|c| {
            let keys = c.keys()?;
            for path in seal_files {
                let file = File::open(path).map_err(seal_error(path))?;
                read_seal_lines(path, file, |_, parsed| {
                    if let Some(seal) = parsed
                        && (from..=to).contains(&seal.seq)
                        && seal.verifies(keys)
                    {
                        found.push(seal);
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        found.sort_by(|a, b| (a.seq, &a.at, &a.hash).cmp(&(b.seq, &b.at, &b.hash)));
        found.dedup_by(|a, b| a.seq == b.seq && a.at == b.at && a.hash == b.hash);
        Ok(found)
    }
}

/// Compares the seals of `batch` (MACs verified) with the records at their `seq`, then empties
/// it. `head` is the last record the chain walk checked.
fn compare(
    c: &mut Conn<'_>,
    batch: &mut Vec<ReadSeal>,
    head: i64,
    names: &[String],
    first: &mut FirstDamage,
) -> Result<(), StorageError> {
    let seqs: Vec<i64> = batch
        .iter()
        .map(|s| s.seal.seq)
        .filter(|&seq| seq >= 1 && seq <= head)
        .collect();
    let stored: HashMap<i64, String> = if seqs.is_empty() {
        HashMap::new()
    } else {
        c.audit_hashes(&seqs)?.into_iter().collect()
    };
    for ReadSeal { seal, line, file } in batch.drain(..) {
        let name = names.get(file).map_or("?", String::as_str);
        let AuditSeal { seq, hash, at, .. } = seal;
        if seq > head {
            first.note(
                head + 1,
                format!(
                    "the seal of {at} (line {line} of {name}) names record {seq}, but the log \
                     ends at record {head}: records {}..={seq} were deleted, or the database was \
                     rolled back to an older copy",
                    head + 1
                ),
            );
            continue;
        }
        let actual = if seq == 0 {
            Some(ZERO_HASH)
        } else {
            stored.get(&seq).map(String::as_str)
        };
        match actual {
            Some(h) if h == hash => {}
            Some(_) => first.note(
                seq,
                format!(
                    "record {seq} is not the record sealed at {at} (line {line} of {name}): the \
                     log was rewritten, or rolled back to an older copy and written again"
                ),
            ),
            None => first.note(
                seq,
                format!("record {seq}, sealed at {at} (line {line} of {name}), is missing"),
            ),
        }
    }
    Ok(())
}
