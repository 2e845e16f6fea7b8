//! The keys that make the database untrusted storage (README "Threat model": the signer's
//! sole control survives an insider; JT2A Part II 3.2.1.2).
//!
//! Two HMAC-SHA256 secret keys live in the token, generated there by `init`, sensitive and
//! non-extractable like the PIN pepper ([`cm_pkcs11::Hsm::secret_key`]): [`INTEGRITY_KEY_LABEL`]
//! and [`AUDIT_KEY_LABEL`]. At start the SAM asks the token for one HMAC under each, over a fixed
//! label ([`ROW_KEY_INFO`], [`AUDIT_CHAIN_KEY_INFO`]), and uses the two results as the in-memory
//! keys of [`storage::IntegrityKeys`]: row MACs and the audit chain. They exist only in this
//! process's memory (zeroised on drop), are never stored, and cannot be had without the token
//! and its PIN.
//!
//! Why not a token call per row: SoftHSM2 pays about twenty system calls per operation, and the
//! hot path (`signHash`) reads and rewrites several sealed rows; the threat these MACs answer is
//! an insider with the database alone, while one who controls the server process can ask the
//! token to sign anyway. An in-memory HMAC costs about a microsecond (measured by
//! `csc-bench integrity`).

use cm_pkcs11::Hsm;
use storage::IntegrityKeys;

use crate::SamError;

/// CKA_LABEL of the token key from which row MACs are derived.
pub const INTEGRITY_KEY_LABEL: &str = "csc-integrity";
/// CKA_LABEL of the token key from which the audit chain key is derived.
pub const AUDIT_KEY_LABEL: &str = "csc-audit";
/// What the integrity key is asked to MAC to give the row key.
const ROW_KEY_INFO: &[u8] = b"csc-row-mac-key-v1";
/// What the audit key is asked to MAC to give the audit chain key.
const AUDIT_CHAIN_KEY_INFO: &[u8] = b"csc-audit-chain-key-v1";

/// Finds (or, on first use: `init`, generates) the two token keys and derives the in-memory
/// integrity keys from them. Blocking: two HSM searches and two HMACs.
pub fn derive_keys(hsm: &Hsm) -> Result<IntegrityKeys, SamError> {
    let rows_key = hsm.secret_key(INTEGRITY_KEY_LABEL)?;
    let audit_key = hsm.secret_key(AUDIT_KEY_LABEL)?;
    let rows = hsm.hmac_sha256(&rows_key, ROW_KEY_INFO)?;
    let audit = hsm.hmac_sha256(&audit_key, AUDIT_CHAIN_KEY_INFO)?;
    Ok(IntegrityKeys::new(rows, audit))
}
