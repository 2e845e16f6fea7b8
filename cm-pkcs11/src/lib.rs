//! Cryptographic module (CM) of the CSC remote signing server: drives any
//! PKCS#11 token through `cryptoki`.
//!
//! It loads a module by path, finds its token by label, and keeps one
//! process-wide PKCS#11 context, a pool of logged-in sessions and a key-handle
//! cache. It generates non-extractable, sign-only key pairs inside the token
//! (JT2A Part III 1, 3, 5, 16, 17), exports public keys, signs digests with
//! approved algorithms only (Part III 2: RSA >= 2048, P-256/P-384, SHA-2) and
//! destroys keys with the token's own mechanism (Part III appendix 1.6).
//! It also keeps non-extractable HMAC secret keys in the token: generated
//! there ([`Hsm::secret_key`], [`Hsm::hmac_sha256`]: the pepper of the SAM's
//! PIN verifiers and its integrity keys) or imported once
//! ([`Hsm::import_hmac_secret`], [`Hsm::hmac`]: signers' TOTP seeds); the
//! secret never leaves the HSM again (Part III 1, 17).
//!
//! It knows nothing about users, SADs, HTTP or databases.
//!
//! Rules that follow from SoftHSM2 / cryptoki behaviour measured on this
//! project:
//! * one PKCS#11 context per process (a second one segfaults SoftHSM), so run
//!   tests that touch a token under cargo-nextest (one process per test);
//! * `SOFTHSM2_CONF` is read at `C_Initialize`: set it before any thread
//!   starts, see [`point_softhsm_at`];
//! * all methods of [`Hsm`] block; call them from blocking threads.

mod error;
mod hsm;
mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{HsmError, ParseError};
pub use hsm::{DEFAULT_MAX_SESSIONS, Hsm, HsmConfig, VendorAttribute, loaded_module};
pub use types::{HashAlg, HmacAlg, KeyAttributes, KeyId, KeySpec, PublicKey, SignMechanism};

use std::path::Path;

/// Environment variable SoftHSM2 reads its configuration file from.
pub const SOFTHSM2_CONF_ENV: &str = "SOFTHSM2_CONF";

/// Points SoftHSM2 at the configuration file `conf` by setting `SOFTHSM2_CONF`
/// in the current process. SoftHSM reads it when the module is initialised,
/// i.e. on the first [`Hsm::open`] / [`Hsm::init_token`].
///
/// # Safety
///
/// This calls [`std::env::set_var`], which is unsound while another thread
/// may read or write the environment. Call it before any other thread of the
/// process exists: first thing in `main`, before an async runtime or a
/// thread pool is started, or at the start of a test that runs in its own
/// process (cargo-nextest) before the test starts a runtime or threads.
#[allow(unsafe_code)]
pub unsafe fn point_softhsm_at(conf: &Path) {
    // SAFETY: the caller guarantees that no other thread exists (see the
    // `# Safety` section above), so nothing reads or writes the environment
    // concurrently.
    unsafe {
        std::env::set_var(SOFTHSM2_CONF_ENV, conf);
    }
}
