//! The domain of the signing service, around the Signature Activation Module (EN 419 241 SAM,
//! JT2A Part II): the only component that can activate a signing key. It provisions signer keys
//! through the crypto module and certifies them, keeps activation factors as verifiers,
//! verifies PIN/OTP, issues single-use SADs and consumes them; and it holds the other rules of
//! the service — password login and its lockout, service tokens, OAuth 2.0 grants, the
//! operator's acts — each writing its own audit record. `csc-api` reaches the database and the
//! HSM only through this crate.

mod activation;
mod admin;
pub mod administration;
pub mod algo;
pub mod audit_export;
mod backup;
pub mod ca;
mod credentials;
pub mod csr;
mod delegation;
mod gate;
mod hot;
pub mod integrity;
mod level;
mod lifecycle;
pub mod lockout;
mod login;
pub mod oauth;
mod observe;
mod otp;
mod provision;
pub mod roles;
mod seals;
pub mod secrets;
mod service_key;
mod tokens;
pub mod totp;
pub mod tsa;
mod validity;

use std::path::Path;
use std::sync::Arc;

use cm_pkcs11::Hsm;
use storage::{NewAuditEvent, Store, StoreOptions};

pub use activation::{Caller, Factors, IssuedSad, SamPolicy, SignAlgoRequest};
pub use admin::RegisteredClient;
pub use administration::{ADMIN_SCOPE, AdminToken, DeletedUser, MAX_AUDIT_PAGE};
pub use credentials::CredentialView;
pub use gate::{GateLoad, GatePermit, LoginLimits, PasswordGate};
pub use hot::CACHE_BOUND;
pub use level::AssuranceLevel;
pub use lifecycle::{ExpiringCertificate, MAX_REASON_CHARS, RekeyCertifier, Rekeyed};
pub use lockout::SecretChecks;
pub use login::LoginRefusal;
pub use observe::{LiveCounts, Readiness};
pub use storage::AuditQuery;
// The domain's value types, owned by storage's schema and re-used here: the HTTP edge names
// them through `sam`, never through `storage` (which it does not depend on).
pub use algo::AlgoError;
pub use ca::{DevCa, IssuedCertificate};
pub use cm_pkcs11::{
    HashAlg, HsmConfig, HsmError, KeySpec, SignMechanism, VendorAttribute, point_softhsm_at,
};
pub use oauth::{
    ClientAuth, CodeBinding, CodeGrant, ConsentView, CredentialGrant, OAuthError, OpenRequest,
    OtpOffer, PendingHandle,
};
pub use tokens::{
    ACCESS_PREFIX, IssuedTokens, Principal, REFRESH_PREFIX, TokenPolicy, client_actor,
};
// plain value types of the store that the HTTP layer shows or passes back (never Store/Conn)
pub use backup::{SealedAhead, rollback_behind_seals};
pub use otp::{ONLINE_OTP, OtpDelivery, OtpNotifier, OtpType};
pub use provision::{CreatedCredential, NewCredentialRequest, OtpChoice, PendingCredential};
pub use roles::{Action, Actor};
pub use seals::AuditSealer;
pub use storage::{
    AuditEvent, AuditRecord, AuditReport, AuditSeal, AuditUpgrade, AuditVerdict, AuthMode,
    ClientDelegation, Credential, CredentialId, CredentialStatus, FactorKind, OAuthClient,
    OAuthRequest, Purged, Role, Scal, User, UserId, secret_hash, utc_now,
};
pub use totp::{OtpMigration, TotpVerifier};
pub use tsa::TsaSettings;

// the auditor's export and its offline check (Part I 7.1.5)
pub use audit_export::{ExportError, ExportReport, ExportSummary, verify_audit_export};

/// Everything that can go wrong inside the SAM. The HTTP edge maps these to CSC errors once.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    #[error(transparent)]
    Hsm(#[from] HsmError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// An administrator asked to delete their own user (the admin API).
    #[error("an administrator cannot delete themselves")]
    SelfDeletion,
    /// An administrative act the actor's role does not allow ([`roles::allows`]); audited as
    /// `access.denied`.
    #[error("the role {} may not {action}", role.as_str())]
    Forbidden { role: Role, action: &'static str },
    /// The database could not be opened (the URL is shown without its password).
    #[error("cannot open the database {url}: {source}")]
    Database {
        url: String,
        source: storage::StorageError,
    },
    #[error("no credential {0}")]
    UnknownCredential(String),
    #[error("the certificate's public key is not the credential's key in the token")]
    KeyMismatch,
    #[error("invalid certificate chain: {0}")]
    InvalidChain(String),
    /// The signer certificate is outside its validity period; carries its subject DN.
    #[error("Signing certificate '{0}' is expired.")]
    CertificateExpired(String),
    /// The credential waits for its certificate from the operator's CA (`credential create
    /// --csr`, completed by `credential import-chain`): its key signs nothing yet.
    #[error("The credential has no certificate yet: its certificate request awaits the CA.")]
    CertificatePending,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The credential does not meet the server's `assurance_level` (crate::level): refused at
    /// creation and at activation.
    #[error("the credential does not meet assurance level {level}: {reason}")]
    AssuranceLevel {
        /// The configured level.
        level: u8,
        /// What the level requires that the credential lacks.
        reason: &'static str,
    },
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

    // ---- key activation and signing (activation.rs); each is one CSC error at the HTTP edge
    /// The credential is disabled (authorize, extendTransaction, signHash).
    #[error("the credential is disabled")]
    CredentialDisabled,
    /// The credential is revoked for good: it is never enabled or rekeyed again (JT2A Part I 6.4).
    #[error("the credential is revoked")]
    CredentialRevoked,
    /// `numSignatures` < 1.
    #[error("numSignatures must be at least 1")]
    InvalidNumSignatures,
    /// `numSignatures` above the credential's `multisign`, or more hashes than signatures to
    /// bind (authorize, extendTransaction).
    #[error("too many signatures for this credential or authorization")]
    TooManySignatures,
    /// SCAL 2 (or a hash-bound SAD) without `hash` in authorize / extendTransaction.
    #[error("the hashes to authorize are missing")]
    MissingHash,
    /// SCAL 2 authorize (or OAuth 2.0 consent) whose `hash` count is not `numSignatures`: the
    /// SAD is linked to exactly the hashes it authorizes (Part II 3.2.1.4).
    #[error("a SCAL 2 activation must carry exactly numSignatures hashes")]
    HashCountMismatch,
    /// SCAL 2 extendTransaction with a hash the SAD does not (or no longer) bind: a renewal
    /// only renews what the signer authorized; a new hash needs a new activation.
    #[error("a hash not authorized by the SAD needs a new activation")]
    HashNotRenewable,
    /// signHash with an empty `hash` array.
    #[error("the hash array is empty")]
    EmptyHashes,
    /// The credential has a PIN and none was sent.
    #[error("the PIN is missing")]
    MissingPin,
    /// The credential has an OTP and none was sent.
    #[error("the OTP is missing")]
    MissingOtp,
    /// Wrong PIN (counted towards the lock).
    #[error("the PIN is invalid")]
    InvalidPin,
    /// Wrong, replayed or malformed OTP (counted towards the lock).
    #[error("the OTP is invalid")]
    InvalidOtp,
    /// The PIN is locked after too many failures; even the right PIN is refused.
    #[error("the PIN is locked")]
    PinLocked,
    /// The OTP is locked after too many failures.
    #[error("the OTP is locked")]
    OtpLocked,
    /// The SAD is unknown, revoked (extended), used up, another user's or another
    /// credential's.
    #[error("the SAD is invalid")]
    InvalidSad,
    /// The SAD has expired.
    #[error("the SAD has expired")]
    SadExpired,
    /// SCAL 2: a hash the SAD does not (or no longer) cover.
    #[error("a hash is not authorized by the SAD")]
    HashNotAuthorized,
    /// More hashes than the SAD has signatures left (SCAL 1).
    #[error("more hashes than the SAD has signatures left")]
    TooManyHashes,
    /// A hash whose length is not the digest length of the hash algorithm.
    #[error("invalid digest value length")]
    InvalidDigestLength,
    /// signAlgo / hashAlgo / signAlgoParams refused.
    #[error(transparent)]
    Algo(#[from] AlgoError),
    /// The HSM failed after the SAD was reserved; the reservation was given back.
    #[error("the HSM could not sign; the SAD reservation was given back")]
    SigningFailed,

    // ---- factors, online OTP and OAuth 2.0 (otp.rs, oauth.rs)
    /// `credentials/authorize` on a credential whose `authMode` is `oauth2code` (spec §11.6).
    #[error("the credential is authorized with OAuth 2.0 only")]
    OAuthOnly,
    /// A SCAL 2 credential without two activation factors (Part I 3.5.2 level 2).
    #[error("a SCAL 2 credential needs two activation factors")]
    TwoFactorsRequired,
    /// `credentials/sendOTP` on a credential without an online OTP.
    #[error("the credential has no online OTP")]
    NoOnlineOtp,
    /// The online OTP could not be delivered (the reason never holds the code).
    #[error("the OTP could not be delivered: {0}")]
    OtpDelivery(String),
    /// An OAuth 2.0 authorization request that was already approved, denied or expired.
    #[error("the authorization request is no longer pending")]
    RequestGone,

    // ---- service tokens and the OAuth 2.0 server (tokens.rs, oauth/)
    /// A Bearer token that is unknown, not an access token, or names nobody.
    #[error("the access token is invalid")]
    InvalidToken,
    /// A Bearer token past its expiry, or revoked.
    #[error("the access token has expired")]
    ExpiredToken,
    /// `auth/login` with a refresh token that is unknown, inactive or not an `auth/login` one.
    #[error("the refresh token is invalid")]
    InvalidRefreshToken,
    /// A token to revoke that is unknown or not the caller's.
    #[error("no such token of the caller's")]
    UnknownToken,
    /// Tokens for a user who is locked or disabled (or gone) by the time they would be stored
    /// (a lock or disable that raced a login).
    #[error("the user is locked or disabled")]
    UserInactive,
    /// `credentials/list` with a `userID` the client may not act for: unknown, not delegated
    /// to the client, or disabled.
    #[error("no user this client may act for has this userID")]
    InvalidUserId,
    /// The password checks are all busy and their queue is full (`login_concurrency`,
    /// `login_queue`): try again shortly.
    #[error("too many logins at once")]
    LoginBusy,
    /// OAuth 2.0 refusals: client authentication, authorization requests, codes, grants.
    #[error(transparent)]
    OAuth(#[from] OAuthError),

    // ---- the time-stamping authority (tsa.rs)
    /// `signatures/timestamp` with a `nonce` that is not a hex non-negative integer of at
    /// most [`tsa::MAX_NONCE_BYTES`] octets.
    #[error("the nonce is not a hex-encoded integer")]
    InvalidNonce,
    /// The TSA could not be set up or used (its file, its certificate, an encoding).
    #[error("time-stamping authority: {0}")]
    Tsa(String),

    // ---- the auditor's export (audit_export.rs)
    /// The audit log (or a seal) does not verify under the audit key: nothing is exported.
    #[error("the audit log is damaged at record {seq}: {reason}; nothing was exported")]
    AuditLogBroken { seq: i64, reason: String },
    /// `from`/`to` of an export outside the log.
    #[error("invalid export range: {0}")]
    ExportRange(String),
    /// The export could not be written to its destination.
    #[error("the audit export could not be written: {0}")]
    ExportWrite(std::io::Error),
    /// The audit seal key could not be set up or used.
    #[error("audit seal key: {0}")]
    AuditSealKey(String),
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

/// The SAM: the HSM, the store, the development CA and the activation policy.
#[derive(Clone)]
pub struct Sam {
    hsm: Hsm,
    store: Store,
    ca: Arc<DevCa>,
    policy: SamPolicy,
    /// Delivers online OTPs ([`Sam::with_otp_notifier`]); none: sendOTP fails.
    notifier: Option<Arc<dyn OtpNotifier>>,
    /// The HSM secret key that peppers PIN verifiers ([`secrets`] module doc).
    pin_key: cm_pkcs11::KeyId,
    /// Signer certificate validity periods, parsed once per chain.
    validity: Arc<validity::ValidityCache>,
    /// Verified token and credential rows of the hot path ([`hot`]).
    hot: Arc<hot::HotCache>,
    /// How many secrets were verified ([`Sam::secret_checks`]).
    checks: lockout::CheckCounter,
    /// The bound on concurrent password checks ([`Sam::with_login_limits`]).
    login_gate: PasswordGate,
    /// The time-stamping authority ([`Sam::with_tsa`]); none: time stamps fail.
    tsa: Option<Arc<tsa::Tsa>>,
    /// The key that signs audit exports ([`Sam::with_audit_seal_key`]); none: exports fail.
    audit_seal_key: Option<Arc<audit_export::SealKey>>,
}

impl Sam {
    /// Opens the token and loads (or creates, on first use) the development CA whose record
    /// lives at `ca_file`. Blocking.
    pub fn open(hsm: &HsmConfig, store: Store, ca_file: &Path) -> Result<Sam, SamError> {
        let hsm = Hsm::open(hsm)?;
        let (ca, created) = DevCa::load_or_create(&hsm, ca_file)?;
        // Created by the first open (`init`), found afterwards; see Hsm::secret_key on
        // instances sharing a token.
        let pin_key = hsm.secret_key(secrets::PIN_PEPPER_LABEL)?;
        let store = store.with_keys(integrity::derive_keys(&hsm)?);
        if created {
            store.write(|c| {
                c.append_audit(&audit_event(
                    AuditEvent::CaCreate,
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
            policy: SamPolicy::default(),
            notifier: None,
            pin_key,
            validity: Arc::default(),
            hot: Arc::default(),
            checks: lockout::CheckCounter::default(),
            login_gate: PasswordGate::new(LoginLimits::default()),
            tsa: None,
            audit_seal_key: None,
        })
    }

    /// Opens (with `create`: creates, when missing) the database at `database_url` and then
    /// the SAM over it ([`Sam::open`]). Blocking.
    pub fn connect(
        hsm: &HsmConfig,
        database_url: &str,
        create: bool,
        ca_file: &Path,
    ) -> Result<Sam, SamError> {
        let opened = if create {
            Store::open_or_create(database_url, StoreOptions::default())
        } else {
            Store::open(database_url, StoreOptions::default())
        };
        let store = opened.map_err(|source| SamError::Database {
            url: redact_url(database_url),
            source,
        })?;
        Sam::open(hsm, store, ca_file)
    }

    /// Appends an audit record outside any other transaction; a failed write is logged and
    /// otherwise ignored (the refusal or fact it records stands).
    pub(crate) fn audit_best_effort(&self, event: &NewAuditEvent) {
        if let Err(e) = self.store.write(|c| c.append_audit(event)) {
            observe::count_audit_write_failure();
            tracing::error!(error = %e, event = %event.event, "could not write an audit record");
        }
    }

    /// Audits, as `integrity.violation`, every row the store found with a bad MAC since the
    /// last call (each was treated as absent where it was read). Returns how many. Blocking
    /// only when there is something to write; the HTTP edge calls it after every request.
    pub fn audit_integrity_violations(&self) -> usize {
        let found = self.store.take_violations();
        observe::count_integrity_violations(found.len());
        for v in &found {
            self.audit_best_effort(&audit_event(
                AuditEvent::IntegrityViolation,
                "system",
                &format!("{}/{}", v.table, v.row),
                "detected",
                serde_json::json!({ "table": v.table, "row": v.row }),
            ));
        }
        found.len()
    }

    /// Whether rows with a bad MAC wait to be audited ([`Sam::audit_integrity_violations`]).
    pub fn has_integrity_violations(&self) -> bool {
        self.store.has_violations()
    }

    /// How many PINs, OTPs and passwords this SAM (and its clones) compared with their
    /// verifiers since it opened ([`SecretChecks`]).
    pub fn secret_checks(&self) -> SecretChecks {
        self.checks.snapshot()
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

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return url.to_owned();
    };
    let (Some(head), Some(userinfo), Some(tail)) = (
        url.get(..scheme + 3),
        url.get(scheme + 3..at),
        url.get(at..),
    ) else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{head}{user}:***{tail}"),
        None => url.to_owned(),
    }
}

/// An audit event; `detail` must never hold a secret (Part I 7.1.4.4).
pub fn audit_event(
    event: AuditEvent,
    actor: &str,
    subject: &str,
    outcome: &str,
    detail: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent::new(event, actor, subject, outcome).with_detail(detail)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("postgresql://csc:s3cret@db.example:5432/csc"),
            "postgresql://csc:***@db.example:5432/csc"
        );
        // no password, or no credentials at all: unchanged
        assert_eq!(
            redact_url("postgresql://csc@db.example/csc"),
            "postgresql://csc@db.example/csc"
        );
        assert_eq!(redact_url("sqlite:///data/csc.db"), "sqlite:///data/csc.db");
        // an `@` in the password: everything up to the last `@` is hidden
        assert_eq!(
            redact_url("postgresql://csc:p@ss@db/csc"),
            "postgresql://csc:***@db/csc"
        );
    }
}
