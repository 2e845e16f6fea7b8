//! Key activation and signing: `credentials/authorize`, `credentials/extendTransaction` and
//! `signatures/signHash` (CSC v1.0.4.0 §11.6, §11.7, §11.9).
//!
//! The SAM verifies the activation factors (PIN and TOTP), issues the SAD and is the only code
//! that reaches [`cm_pkcs11::Hsm::sign_digests`] (Part II 3.2.1.1). A SAD is
//!
//! * 32 bytes from the OS CSPRNG, base64url (Part II 3.2.2.2), stored only as its SHA-256
//!   (Part II 3.1.1.2): a copy of the database yields no usable SAD;
//! * bound to the user, the credential, the signatures still allowed, the expiry, and — for
//!   SCAL 2, or whenever `hash` was sent — the multiset of authorized hashes, each spendable
//!   once (Part II 3.2.1.4). The access token's hash is recorded with it for the audit trail;
//!   the binding is to the token's *subject* (the user), so a client that refreshes its access
//!   token mid-transaction keeps its SAD;
//! * spent by ONE atomic conditional update in storage, so concurrent requests, on one process
//!   or several sharing PostgreSQL, never spend more signatures than authorized (Part III 6,
//!   Part II 3.2.1.2 replay protection).
//!
//! Every request is validated completely before anything is spent, so a refused request never
//! burns a valid SAD. Every refusal is audited (Part I 7.1.4.1 "all access attempts"), and every
//! signature returned has its audit record committed first (Part I 7.1.4.3-4). Secrets (PIN,
//! OTP, SAD) never reach a record; a SAD is referred to by the first 8 hex digits of its
//! SHA-256.
//!
//! All methods block (Argon2, database, HSM): the HTTP layer calls them inside `web::block`,
//! except [`Sam::sign_hash_async`], which awaits its database work and signs on the caller's
//! thread (the HTTP worker), and [`Sam::authorize_async`], which awaits its two grouped writes
//! (the slot reservation, then the outcome with the SAD) and checks the factors there. The
//! blocking [`Sam::sign_hash`] and [`Sam::authorize`] are those futures run on the calling
//! thread (one implementation of each rule).
//!
//! This module holds the request types, the policy and the checks every activation shares;
//! [`factors`] verifies the PIN and OTP (with their lockout) and grants in one transaction;
//! [`sad`] issues, renews and spends SADs and signs.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::NaiveDateTime;
use cm_pkcs11::{KeyId, KeySpec, SignMechanism};
use secrecy::SecretString;
use serde_json::json;
use storage::{
    AuthMode, Conn, Counter, Credential, CredentialId, CredentialStatus, DeclaredRows, Durable,
    FactorKind, Grouped, NewSad, RequiredFactors, Sad, Scal, StorageError, UserId, secret_hash,
    utc_now,
};

use crate::algo::resolve_mechanism;
use crate::lockout::{Checked, Lockout, Reservation};
use crate::otp::{OtpType, online_otp_digest};
use crate::secrets::{PinMatch, random_token, verify_pin};
use crate::totp::{TotpVerifier, totp_step};
use crate::{AuditEvent, Sam, SamError, audit_event};
use factors::Pace;

mod bearer;
mod factors;
mod sad;

pub(crate) use sad::{key_id_of, sad_ref};

/// Bytes of randomness in a SAD (256 bits).
pub(crate) const SAD_BYTES: usize = 32;
/// Digest lengths of the approved hashes (SHA-256/384/512, Part III 2).
const DIGEST_LENGTHS: [usize; 3] = [32, 48, 64];

/// How activation behaves. Changed only by the operator's configuration (Part II 3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamPolicy {
    /// Lifetime of a SAD from `authorize` or `extendTransaction` (CSC default 3600 s), within
    /// `max_transaction_life`.
    pub sad_lifetime: Duration,
    /// How long a transaction may last from its activation (the factors verified by
    /// `authorize` or the OAuth 2.0 consent), renewals by `extendTransaction` included: no SAD
    /// of it outlives its authorization time + this (default 1 hour; Part III 6: limits on use
    /// before re-authorization). Without it, renewals would extend a SAD without end.
    pub max_transaction_life: Duration,
    /// Consecutive failed PIN (or OTP) verifications after which the factor locks, until an
    /// administrator unlocks it (Part I 7.1.2.5.1).
    pub max_factor_failures: i32,
    /// Consecutive failed logins after which the user locks, until an administrator unlocks
    /// it (Part I 7.1.2.5.1).
    pub max_login_failures: i32,
    /// Lifetime of an online OTP sent by `credentials/sendOTP` (default 300 s).
    pub online_otp_lifetime: Duration,
    /// How long an attempt (PIN, OTP, password) waits for a failure slot held by attempts still
    /// in flight before it is refused as locked (default 5 s; the lockout counts first).
    pub max_slot_wait: Duration,
    /// The server's assurance level (Part I 3.5.1-3.5.2; crate::level), checked at creation
    /// and at every activation.
    pub assurance_level: crate::AssuranceLevel,
}

impl Default for SamPolicy {
    fn default() -> Self {
        SamPolicy {
            sad_lifetime: Duration::from_secs(3600),
            max_transaction_life: Duration::from_secs(3600),
            max_factor_failures: 5,
            max_login_failures: 5,
            online_otp_lifetime: Duration::from_secs(300),
            max_slot_wait: Duration::from_secs(5),
            assurance_level: crate::AssuranceLevel::One,
        }
    }
}

impl SamPolicy {
    /// The lockout of activation factors.
    pub(crate) fn factor_lockout(&self) -> Lockout {
        Lockout::new(self.max_factor_failures).with_slot_wait(self.max_slot_wait)
    }

    /// The lockout of passwords.
    pub(crate) fn login_lockout(&self) -> Lockout {
        Lockout::new(self.max_login_failures).with_slot_wait(self.max_slot_wait)
    }

    /// When the transaction activated at `authorized_at` ends (`None`: beyond the calendar,
    /// no cap).
    pub(crate) fn transaction_end(&self, authorized_at: NaiveDateTime) -> Option<NaiveDateTime> {
        chrono::TimeDelta::from_std(self.max_transaction_life)
            .ok()
            .and_then(|d| authorized_at.checked_add_signed(d))
    }

    /// When a SAD of the transaction activated at `authorized_at`, (re)issued at `now`,
    /// expires: `now` + the SAD lifetime, but never after the end of the transaction
    /// ([`SamPolicy::transaction_end`]).
    pub(crate) fn sad_expiry(
        &self,
        authorized_at: NaiveDateTime,
        now: NaiveDateTime,
    ) -> Result<NaiveDateTime, SamError> {
        let by_lifetime = chrono::TimeDelta::from_std(self.sad_lifetime)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .ok_or_else(|| SamError::InvalidInput("the SAD lifetime is out of range".into()))?;
        Ok(match self.transaction_end(authorized_at) {
            Some(end) => by_lifetime.min(end),
            None => by_lifetime,
        })
    }
}

/// Whole seconds from `now` until `expires_at` (`expiresIn`; 0 once past).
pub(crate) fn seconds_until(expires_at: NaiveDateTime, now: NaiveDateTime) -> u64 {
    u64::try_from((expires_at - now).num_seconds()).unwrap_or(0)
}

/// Who is asking: the user behind the service access token, and the token's hash (stored with
/// the SAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the access token acts for.
    pub user: UserId,
    /// Their login name (the audit actor).
    pub user_name: String,
    /// SHA-256 of the access token ([`storage::secret_hash`]).
    pub token_hash: [u8; 32],
}

/// The activation factors sent to `credentials/authorize`.
#[derive(Debug, Default)]
pub struct Factors {
    /// `PIN`.
    pub pin: Option<SecretString>,
    /// `OTP`.
    pub otp: Option<SecretString>,
}

/// A SAD just issued. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedSad {
    /// The opaque SAD: 32 bytes from the OS CSPRNG, base64url without padding.
    pub sad: String,
    /// Seconds until it expires (`expiresIn`).
    pub expires_in: u64,
}

impl fmt::Debug for IssuedSad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSad")
            .field("sad", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The algorithm fields of a signHash request, as sent (OIDs as dotted strings,
/// `sign_algo_params` already base64-decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignAlgoRequest {
    /// `signAlgo`.
    pub sign_algo: String,
    /// `hashAlgo`.
    pub hash_algo: Option<String>,
    /// `signAlgoParams` (DER).
    pub sign_algo_params: Option<Vec<u8>>,
}

/// What a renewed (or new) SAD gets: the signatures left and the hashes bound (if any).
type Renewal = (i32, Option<Vec<Vec<u8>>>);

/// Which entry point asks for a key activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// `credentials/authorize` (refused for `oauth2code` credentials).
    Authorize,
    /// The OAuth 2.0 consent page (scope `credential`).
    OAuth2,
}

/// A key activation to verify: who, which credential, how many signatures, which hashes.
pub(crate) struct ActivationRequest<'a> {
    /// The audit event of the outcome.
    pub event: AuditEvent,
    pub caller: &'a Caller,
    pub credential: &'a CredentialId,
    pub num_signatures: i64,
    pub hashes: Option<Vec<Vec<u8>>>,
    pub via: Via,
}

/// What a verified activation grants.
#[derive(Debug, Clone)]
pub(crate) struct Granted {
    /// The credential, as read before the factors were checked.
    pub credential: Credential,
    /// Signatures authorized.
    pub num: i32,
    /// Hashes bound (SCAL 2, or SCAL 1 when sent).
    pub hashes: Option<Vec<Vec<u8>>>,
}

/// `Some(hashes)` unless absent or empty.
fn non_empty(hashes: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    hashes.filter(|h| !h.is_empty())
}

/// Every hash has the length of an approved digest. (At authorize time the algorithm is not
/// known yet; a hash no algorithm could sign is refused early.)
fn check_digest_lengths(hashes: &[Vec<u8>]) -> Result<(), SamError> {
    if hashes.iter().all(|h| DIGEST_LENGTHS.contains(&h.len())) {
        Ok(())
    } else {
        Err(SamError::InvalidDigestLength)
    }
}

/// The credential if it is `caller`'s; a credential of another user is "unknown", so its
/// existence is never revealed.
fn owned(
    caller: &Caller,
    id: &CredentialId,
    found: Option<Credential>,
) -> Result<Credential, SamError> {
    match found {
        Some(c) if c.user_id == caller.user => Ok(c),
        _ => Err(SamError::UnknownCredential(id.to_string())),
    }
}

/// The checks of the request itself that every key activation makes before any factor is
/// touched: `1 <= num_signatures <= multisign`; SCAL 2 needs exactly `num_signatures` hashes
/// (the SAD is linked to the DTBS/R it authorizes, Part II 3.2.1.4; spec §11.6: the count
/// SHOULD equal numSignatures and the server MAY refuse otherwise); SCAL 1, no more hashes
/// than signatures; approved digest lengths. Returns the count and the hashes to bind.
fn check_request(
    cred: &Credential,
    num_signatures: i64,
    hashes: Option<Vec<Vec<u8>>>,
) -> Result<Renewal, SamError> {
    let num = match i32::try_from(num_signatures) {
        Ok(n) if n >= 1 => n,
        Ok(_) => return Err(SamError::InvalidNumSignatures),
        Err(_) if num_signatures < 1 => return Err(SamError::InvalidNumSignatures),
        Err(_) => return Err(SamError::TooManySignatures),
    };
    if num > cred.multisign {
        return Err(SamError::TooManySignatures);
    }
    let hashes = non_empty(hashes);
    let count = hashes.as_ref().map_or(0, Vec::len);
    match (&hashes, cred.scal) {
        (None, Scal::Two) => return Err(SamError::MissingHash),
        (Some(_), Scal::Two) if i32::try_from(count) != Ok(num) => {
            return Err(SamError::HashCountMismatch);
        }
        (Some(_), Scal::One) if i32::try_from(count).map_or(true, |n| n > num) => {
            return Err(SamError::TooManySignatures);
        }
        (Some(h), _) => check_digest_lengths(h)?,
        (None, Scal::One) => {}
    }
    Ok((num, hashes))
}

/// Whether the credential is still enabled, read under lock in the transaction that issues a
/// SAD for it ([`storage::Conn::credential_for_update`]): a disable, revoke or rekey
/// committed since the first check is seen, and one committing later revokes the new SAD
/// (JT2A Part I 6.4: a SAD from before a disable never signs after enable).
pub(crate) fn still_enabled(c: &mut Conn<'_>, id: &CredentialId) -> Result<bool, StorageError> {
    Ok(c.credential_for_update(id)?
        .is_some_and(|cred| cred.status == CredentialStatus::Enabled))
}

impl Sam {
    /// [`owned`], enabled, and its certificate within its validity period.
    pub(crate) fn usable(
        &self,
        caller: &Caller,
        id: &CredentialId,
        found: Option<Credential>,
    ) -> Result<Credential, SamError> {
        let credential = owned(caller, id, found)?;
        if credential.status != CredentialStatus::Enabled {
            return Err(SamError::CredentialDisabled);
        }
        self.validity.check(&credential)?;
        Ok(credential)
    }

    /// The checks a key activation makes before it asks for the factors, without activating
    /// or auditing: the credential is the caller's, enabled and certified now ([`Sam::usable`]),
    /// and the request passes [`check_request`]. For the OAuth 2.0 consent page, which checks
    /// before it shows the form; the activation itself checks again.
    pub fn check_activation(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        num_signatures: i64,
        hashes: Option<Vec<Vec<u8>>>,
    ) -> Result<(), SamError> {
        let found = self.store.read(|c| c.credential(credential))?;
        let cred = self.usable(caller, credential, found)?;
        check_request(&cred, num_signatures, hashes)?;
        Ok(())
    }

    /// Replaces the activation policy.
    pub fn with_policy(mut self, policy: SamPolicy) -> Sam {
        self.policy = policy;
        self
    }

    /// The activation policy.
    pub fn policy(&self) -> &SamPolicy {
        &self.policy
    }

    /// The credential if it belongs to `caller.user`, else [`SamError::UnknownCredential`]
    /// (also when it exists but is someone else's). For credentials/info.
    pub fn credential_of(
        &self,
        caller: &Caller,
        credential: &CredentialId,
    ) -> Result<Credential, SamError> {
        let found = self.store.read(|c| c.credential(credential))?;
        owned(caller, credential, found)
    }

    /// Audits a refusal (best effort: a failed audit write is logged, and the refusal stands)
    /// and returns it.
    pub(crate) fn refuse(
        &self,
        event: AuditEvent,
        caller: &Caller,
        subject: &str,
        error: SamError,
        detail: serde_json::Value,
    ) -> SamError {
        // Storage trouble is not a refusal: there is nothing to audit about the request.
        if matches!(error, SamError::Storage(_)) {
            return error;
        }
        self.audit_best_effort(&refusal_event(event, caller, subject, &error, detail));
        // A refusal may come from a row that failed its integrity check: say so now.
        self.audit_integrity_violations();
        error
    }

    /// Runs `f` in one write transaction. A refusal (`Ok(Err(e))`) rolls back everything `f`
    /// did and is returned as is; so does a storage error.
    fn write_or_rollback<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<Result<T, SamError>, StorageError>,
    ) -> Result<T, SamError> {
        let mut refusal = None;
        let result = self.store.write(|c| match f(c)? {
            Ok(v) => Ok(v),
            Err(e) => {
                refusal = Some(e);
                Err(StorageError::Conflict("refused: rolled back".into()))
            }
        });
        match (result, refusal) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
        }
    }
}

/// A `refused` audit record whose reason is the error's message (never a secret).
pub(crate) fn refusal_event(
    event: AuditEvent,
    caller: &Caller,
    subject: &str,
    error: &SamError,
    mut detail: serde_json::Value,
) -> storage::NewAuditEvent {
    if let Some(map) = detail.as_object_mut() {
        map.insert("reason".into(), json!(error.to_string()));
    }
    audit_event(event, &caller.user_name, subject, "refused", detail)
}

/// Runs `f` to completion on this thread, parked between polls (the blocking
/// [`Sam::sign_hash`], [`Sam::authorize`]; what it awaits is woken by the store's writer thread).
pub(crate) fn wait<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::sad::covers;
    use super::*;

    #[test]
    fn multiset_cover() {
        let a = vec![1u8; 32];
        let b = vec![2u8; 32];
        let ab = vec![a.clone(), b.clone()];
        let aa = vec![a.clone(), a.clone()];
        assert!(covers(&ab, &ab[1..]));
        assert!(covers(&aa, &aa));
        assert!(!covers(&ab, &aa));
        assert!(!covers(&ab[..1], &ab[1..]));
        assert!(covers(&ab[..1], &[]));
    }

    #[test]
    fn sad_reference_is_eight_hex_digits() {
        let h = secret_hash(b"sad");
        let r = sad_ref(&h);
        assert_eq!(r.len(), 8);
        assert!(hex::encode(h).starts_with(&r));
    }

    #[test]
    fn issued_sad_debug_hides_the_sad() {
        let s = IssuedSad {
            sad: "secret-sad-value".into(),
            expires_in: 3600,
        };
        assert!(!format!("{s:?}").contains("secret-sad-value"));
    }

    #[test]
    fn a_sad_never_outlives_its_transaction() {
        let p = SamPolicy {
            sad_lifetime: Duration::from_secs(3600),
            max_transaction_life: Duration::from_secs(600),
            ..SamPolicy::default()
        };
        let t0 = utc_now();
        let at = |s: i64| t0 + chrono::TimeDelta::seconds(s);
        // authorize: min(lifetime, cap)
        assert_eq!(p.sad_expiry(t0, t0).ok(), Some(at(600)));
        // a renewal 100 s later still ends with the transaction, not 3600 s after the renewal
        assert_eq!(p.sad_expiry(t0, at(100)).ok(), Some(at(600)));
        // a cap longer than the lifetime: the lifetime counts from the renewal
        let long = SamPolicy {
            max_transaction_life: Duration::from_secs(7200),
            ..p
        };
        assert_eq!(long.sad_expiry(t0, at(100)).ok(), Some(at(3700)));
        assert_eq!(long.sad_expiry(t0, at(5000)).ok(), Some(at(7200)));
        assert_eq!(seconds_until(at(600), at(100)), 500);
        assert_eq!(seconds_until(at(600), at(700)), 0);
    }

    #[test]
    fn default_policy() {
        let p = SamPolicy::default();
        assert_eq!(p.sad_lifetime, Duration::from_secs(3600));
        assert_eq!(p.max_transaction_life, Duration::from_secs(3600));
        assert_eq!(p.max_factor_failures, 5);
        assert_eq!(p.online_otp_lifetime, Duration::from_secs(300));
    }
}
