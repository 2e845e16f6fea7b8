//! Integrity of the rows the SAM trusts: HMAC-SHA256 under keys that only the HSM can give.
//!
//! The database is untrusted storage (README "Threat model"): an insider may write any row.
//! Every security-relevant row therefore carries a `mac` column, computed by this crate on every
//! write and checked on every read, over the row's identity (its primary key, so a copy under
//! another key does not verify) and its meaning (the fields that decide what the row allows).
//! The keys come from the SAM, which derives them in the token at start
//! (`sam::Sam::open`): they live only in this process's memory (zeroised on drop) and are never
//! stored, so without the token a row cannot be forged, altered or re-keyed.
//!
//! A row whose MAC does not verify is treated as absent (every caller then answers what it
//! answers for a missing row), logged, and reported to the SAM through
//! [`crate::Store::take_violations`] so it can write an `integrity.violation` audit record.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Version tag of the row MAC encoding; bumped if the encoding ever changes.
const ROW_MAC_DOMAIN: &[u8] = b"csc-row-mac-v1";

/// The two in-memory keys: one for row MACs, one for the audit chain. Never logged.
#[derive(Clone)]
pub struct IntegrityKeys {
    rows: Arc<Zeroizing<[u8; 32]>>,
    audit: Arc<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for IntegrityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IntegrityKeys(<redacted>)")
    }
}

impl IntegrityKeys {
    /// Keys from their bytes (the SAM derives them in the token; tests use fixed bytes).
    pub fn new(rows: [u8; 32], audit: [u8; 32]) -> Self {
        IntegrityKeys {
            rows: Arc::new(Zeroizing::new(rows)),
            audit: Arc::new(Zeroizing::new(audit)),
        }
    }

    /// The HMAC state of `table`'s row whose fields (primary key first) are `fields`.
    fn row_hmac(&self, table: &str, fields: &[&[u8]]) -> HmacSha256 {
        let mut mac = hmac_with(&self.rows);
        feed(&mut mac, ROW_MAC_DOMAIN);
        feed(&mut mac, table.as_bytes());
        for f in fields {
            feed(&mut mac, f);
        }
        mac
    }

    /// The row MAC of `table`'s row whose fields (primary key first) are `fields`.
    pub(crate) fn row_mac(&self, table: &str, fields: &[&[u8]]) -> Vec<u8> {
        self.row_hmac(table, fields)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `stored` is the row MAC of these fields (constant time).
    pub(crate) fn row_mac_ok(&self, table: &str, fields: &[&[u8]], stored: Option<&[u8]>) -> bool {
        stored.is_some_and(|stored| self.row_hmac(table, fields).verify_slice(stored).is_ok())
    }

    /// An HMAC-SHA256 of `parts` (length-prefixed) under the audit key.
    pub fn audit_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = hmac_with(&self.audit);
        for p in parts {
            feed(&mut mac, p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// HMAC-SHA256 keyed with a 32-byte key. HMAC pads a key shorter than the hash's block with
/// zeros (RFC 2104 §2), so the padded block is the same key, and keying cannot fail.
fn hmac_with(key: &[u8; 32]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; 64]);
    if let Some(head) = block.get_mut(..32) {
        head.copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&(*block).into())
}

/// Length-prefixed, so that field boundaries are part of what is authenticated.
fn feed(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// A row that failed its integrity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Table name.
    pub table: &'static str,
    /// The row's primary key, printable (hex for digests).
    pub row: String,
}

/// Violations found by reads, waiting for the SAM to audit them.
#[derive(Default, Clone)]
pub(crate) struct Violations(Arc<Mutex<Vec<Violation>>>);

impl Violations {
    pub(crate) fn push(&self, v: Violation) {
        tracing::error!(table = v.table, row = %v.row, "integrity violation: a row's MAC does not verify; the row is not used");
        let mut q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() < 10_000 {
            q.push(v);
        }
    }

    pub(crate) fn any(&self) -> bool {
        !self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    pub(crate) fn take(&self) -> Vec<Violation> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keying_by_the_padded_block_is_keying_by_the_key() {
        let key = [0x5a; 32];
        let mut padded = hmac_with(&key);
        let mut plain = <HmacSha256 as KeyInit>::new_from_slice(&key).expect("any length");
        padded.update(b"row");
        plain.update(b"row");
        assert_eq!(
            padded.finalize().into_bytes(),
            plain.finalize().into_bytes()
        );
    }

    #[test]
    fn row_macs_bind_table_fields_and_boundaries() {
        let k = IntegrityKeys::new([1; 32], [2; 32]);
        let m = k.row_mac("sads", &[b"ab", b"c"]);
        assert!(k.row_mac_ok("sads", &[b"ab", b"c"], Some(&m)));
        assert!(!k.row_mac_ok("sads", &[b"a", b"bc"], Some(&m)));
        assert!(!k.row_mac_ok("users", &[b"ab", b"c"], Some(&m)));
        assert!(!k.row_mac_ok("sads", &[b"ab", b"c"], None));
        let other = IntegrityKeys::new([3; 32], [2; 32]);
        assert!(!other.row_mac_ok("sads", &[b"ab", b"c"], Some(&m)));
    }
}
