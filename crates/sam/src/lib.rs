//! The Signature Activation Module (EN 419 241 SAM, JT2A Part II): the only component that can
//! activate a signing key. It provisions signer keys through the crypto module and certifies
//! them, keeps activation factors as verifiers, and (with the signing core) verifies PIN/OTP,
//! issues single-use SADs and consumes them. `csc-api` reaches the HSM only through this crate.

pub mod ca;
mod provision;
pub mod secrets;

use std::path::Path;
use std::sync::Arc;

use cm_pkcs11::Hsm;
use storage::{NewAuditEvent, Store};

pub use ca::{DevCa, IssuedCertificate};
pub use cm_pkcs11::{HashAlg, HsmConfig, HsmError, KeySpec, point_softhsm_at};
pub use provision::{CreatedCredential, NewCredentialRequest};

/// Everything that can go wrong inside the SAM. The HTTP edge maps these to CSC errors once.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    #[error(transparent)]
    Hsm(#[from] HsmError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("no credential {0}")]
    UnknownCredential(String),
    #[error("the certificate's public key is not the credential's key in the token")]
    KeyMismatch,
    #[error("invalid certificate chain: {0}")]
    InvalidChain(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("development CA: {0}")]
    Ca(String),
    #[error("certificate building failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("secret hashing failed: {0}")]
    Hashing(String),
    #[error("the OS random generator failed: {0}")]
    Random(String),
}

/// Creates the token unless one with `label` exists (see [`cm_pkcs11::Hsm::init_token`]).
pub fn init_token(
    module: &Path,
    label: &str,
    so_pin: &secrecy::SecretString,
    user_pin: &secrecy::SecretString,
) -> Result<bool, SamError> {
    Ok(Hsm::init_token(module, label, so_pin, user_pin)?)
}

/// The SAM: the HSM, the store and the development CA.
#[derive(Clone)]
pub struct Sam {
    hsm: Hsm,
    store: Store,
    ca: Arc<DevCa>,
}

impl Sam {
    /// Opens the token and loads (or creates, on first use) the development CA whose record
    /// lives at `ca_file`. Blocking.
    pub fn open(hsm: &HsmConfig, store: Store, ca_file: &Path) -> Result<Sam, SamError> {
        let hsm = Hsm::open(hsm)?;
        let (ca, created) = DevCa::load_or_create(&hsm, ca_file)?;
        if created {
            store.write(|c| {
                c.append_audit(&audit_event(
                    "ca.create",
                    "system",
                    "dev-ca",
                    "success",
                    serde_json::json!({}),
                ))
            })?;
        }
        Ok(Sam {
            hsm,
            store,
            ca: Arc::new(ca),
        })
    }

    /// The store the SAM writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The development CA certificate (DER), the trust anchor of the credentials it issued.
    pub fn ca_certificate_der(&self) -> &[u8] {
        self.ca.certificate_der()
    }
}

/// An audit event; `detail` must never hold a secret (Part I 7.1.4.4).
pub fn audit_event(
    event: &str,
    actor: &str,
    subject: &str,
    outcome: &str,
    detail: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent::new(event, actor, subject, outcome).with_detail(detail)
}
