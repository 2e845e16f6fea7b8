//! Error type of the cryptographic module.

use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};

use crate::types::{HmacAlg, KeyId, KeySpec};

/// Everything that can go wrong when talking to the PKCS#11 token.
///
/// Messages never contain a PIN. The `Pkcs11` variant carries the raw
/// `cryptoki` error for logs; callers that answer HTTP requests should map
/// variants to their own client-facing text rather than forward the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The shared library could not be loaded or `C_Initialize` failed.
    #[error("PKCS#11 module {} could not be loaded: {source}", path.display())]
    ModuleLoad {
        /// Path of the module as given in the configuration.
        path: PathBuf,
        /// The underlying error.
        source: CkError,
    },

    /// A different PKCS#11 module is already loaded in this process (only one
    /// PKCS#11 context per process is supported, see the crate docs).
    #[error(
        "PKCS#11 module {} is already loaded in this process; cannot load {} as well",
        loaded.display(),
        requested.display()
    )]
    ModuleMismatch {
        /// The module loaded first.
        loaded: PathBuf,
        /// The module requested now.
        requested: PathBuf,
    },

    /// No initialised token with this label is present in the module.
    #[error("no initialised token with label {label:?} in the PKCS#11 module")]
    TokenNotFound {
        /// The label that was searched for.
        label: String,
    },

    /// A token label is empty or longer than the 32 bytes PKCS#11 allows.
    #[error("invalid token label {label:?}: must be 1 to 32 bytes long")]
    InvalidTokenLabel {
        /// The rejected label.
        label: String,
    },

    /// `Hsm::init_token` found no slot with an uninitialised token.
    #[error("the PKCS#11 module has no free slot to initialise token {label:?}")]
    NoFreeSlot {
        /// The label of the token that was to be created.
        label: String,
    },

    /// `CKR_PIN_INCORRECT`.
    #[error("wrong token PIN")]
    WrongPin,

    /// `CKR_PIN_LOCKED`.
    #[error("token PIN is locked")]
    PinLocked,

    /// `CKR_PIN_LEN_RANGE` while setting a PIN.
    #[error("token PIN has a length the token does not accept")]
    PinLength,

    /// No private key with this `CKA_ID` exists in the token.
    #[error("no key with id {0} in the token")]
    KeyNotFound(KeyId),

    /// The key's `CKA_LABEL` is not the owner the caller signs for: the key was re-pointed
    /// (e.g. a credential row naming another credential's key) and must not sign.
    #[error("key {0} in the token does not belong to the credential it is used for")]
    KeyNotBound(KeyId),

    /// The digest length does not match the hash algorithm of the mechanism.
    #[error("digest has {got} bytes but the hash algorithm needs {expected}")]
    DigestLength {
        /// Length required by the hash algorithm.
        expected: usize,
        /// Length received.
        got: usize,
    },

    /// The signature mechanism cannot be used with this key type (e.g. ECDSA
    /// with an RSA key).
    #[error("signature mechanism {mechanism} cannot be used with a {key} key")]
    MechanismMismatch {
        /// Short name of the mechanism (`RSA-PKCS1v15`, `RSA-PSS`, `ECDSA`).
        mechanism: &'static str,
        /// The key's type.
        key: KeySpec,
    },

    /// An RSA-PSS salt length that does not fit the key and hash.
    #[error("RSA-PSS salt length {salt_len} is too large (at most {max} for this key and hash)")]
    InvalidSaltLength {
        /// Requested salt length.
        salt_len: usize,
        /// Maximum salt length for the key and hash.
        max: usize,
    },

    /// A key in the token has a type or size this module does not support.
    #[error("key {id} in the token is not supported: {reason}")]
    UnsupportedKey {
        /// The key.
        id: KeyId,
        /// Why it was rejected.
        reason: String,
    },

    /// A secret to import as an HMAC key is shorter than the algorithm needs
    /// ([`HmacAlg::min_key_len`]).
    #[error("an HMAC-{alg} secret of {got} bytes is too short: at least {min} are needed")]
    SecretTooShort {
        /// The HMAC algorithm the key was meant for.
        alg: HmacAlg,
        /// Length of the secret given.
        got: usize,
        /// The shortest secret accepted.
        min: usize,
    },

    /// `HsmConfig` is unusable (e.g. `max_sessions == 0`).
    #[error("invalid HSM configuration: {0}")]
    Config(String),

    /// No session became free within the pool timeout.
    #[error("all {0} PKCS#11 sessions stayed busy for too long")]
    SessionPoolTimeout(usize),

    /// Any other PKCS#11 failure.
    #[error("PKCS#11 error: {0}")]
    Pkcs11(CkError),

    /// Encoding or decoding of keys or signatures failed.
    #[error("encoding error: {0}")]
    Encoding(String),

    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

impl From<CkError> for HsmError {
    fn from(e: CkError) -> Self {
        match rv_of(&e) {
            Some(RvError::PinIncorrect) => HsmError::WrongPin,
            Some(RvError::PinLocked) => HsmError::PinLocked,
            Some(RvError::PinLenRange) => HsmError::PinLength,
            _ => HsmError::Pkcs11(e),
        }
    }
}

impl From<openssl::error::ErrorStack> for HsmError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        HsmError::Encoding(e.to_string())
    }
}

/// The PKCS#11 return value inside a `cryptoki` error, if any.
pub(crate) fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Error of the `FromStr` implementations of [`KeyId`], [`KeySpec`] and
/// [`crate::HashAlg`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {value:?}")]
pub struct ParseError {
    pub(crate) what: &'static str,
    pub(crate) value: String,
}
