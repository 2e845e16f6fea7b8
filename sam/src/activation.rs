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
//! All methods block (Argon2, database, HSM): the HTTP layer calls them inside `web::block`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::NaiveDateTime;
use cm_pkcs11::{KeyId, KeySpec, SignMechanism};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use storage::{
    AuthMode, Conn, Credential, CredentialId, CredentialStatus, Factor, FactorKind, Grouped,
    NewSad, Sad, Scal, StorageError, UserId, secret_hash, utc_now,
};

use crate::algo::resolve_mechanism;
use crate::lockout::{Counted, Lockout};
use crate::otp::{OtpType, online_otp_hash};
use crate::secrets::{PinMatch, pin_verifier, random_token, verify_pin};
use crate::{AuditEvent, Sam, SamError, audit_event};

/// Bytes of randomness in a SAD (256 bits).
pub(crate) const SAD_BYTES: usize = 32;
/// Digest lengths of the approved hashes (SHA-256/384/512, Part III 2).
const DIGEST_LENGTHS: [usize; 3] = [32, 48, 64];

/// How activation behaves. Changed only by the operator's configuration (Part II 3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamPolicy {
    /// Lifetime of a SAD from `authorize` or `extendTransaction` (CSC default 3600 s).
    pub sad_lifetime: Duration,
    /// Consecutive failed PIN (or OTP) verifications after which the factor locks, until an
    /// administrator unlocks it (Part I 7.1.2.5.1).
    pub max_factor_failures: i32,
    /// Consecutive failed logins after which the user locks, until an administrator unlocks
    /// it (Part I 7.1.2.5.1).
    pub max_login_failures: i32,
    /// Lifetime of an online OTP sent by `credentials/sendOTP` (default 300 s).
    pub online_otp_lifetime: Duration,
}

impl Default for SamPolicy {
    fn default() -> Self {
        SamPolicy {
            sad_lifetime: Duration::from_secs(3600),
            max_factor_failures: 5,
            max_login_failures: 5,
            online_otp_lifetime: Duration::from_secs(300),
        }
    }
}

impl SamPolicy {
    /// The lockout of activation factors.
    pub(crate) fn factor_lockout(&self) -> Lockout {
        Lockout::new(self.max_factor_failures)
    }

    /// The lockout of passwords.
    pub(crate) fn login_lockout(&self) -> Lockout {
        Lockout::new(self.max_login_failures)
    }
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

/// The proof an OTP was right, spent in the granting transaction.
enum OtpProof {
    /// The TOTP time step of an offline code.
    Step(i64),
    /// The digest of an online code.
    Online([u8; 32]),
}

/// The audit reference of a SAD: the first 8 hex digits of its SHA-256.
pub(crate) fn sad_ref(sad_hash: &[u8]) -> String {
    hex::encode(sad_hash.get(..4).unwrap_or(sad_hash))
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

/// Whether the multiset `bound` contains every element of the multiset `wanted`.
fn covers(bound: &[Vec<u8>], wanted: &[Vec<u8>]) -> bool {
    let mut left: Vec<&[u8]> = bound.iter().map(Vec::as_slice).collect();
    wanted
        .iter()
        .all(|w| match left.iter().position(|h| *h == w.as_slice()) {
            Some(i) => {
                left.swap_remove(i);
                true
            }
            None => false,
        })
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

/// The SAD checks shared by extendTransaction and signHash: it exists, is not revoked, belongs
/// to this caller and this credential, has not expired and has signatures left.
fn check_sad<'s>(
    sad: Option<&'s Sad>,
    caller: &Caller,
    credential: &CredentialId,
    now: NaiveDateTime,
) -> Result<&'s Sad, SamError> {
    let sad = sad.ok_or(SamError::InvalidSad)?;
    if sad.user_id != caller.user || sad.credential_id != *credential {
        return Err(SamError::InvalidSad);
    }
    // storage's one rule decides; the expiry only chooses the answer's words
    if sad.is_usable(now) {
        Ok(sad)
    } else if !sad.revoked && sad.expires_at <= now {
        Err(SamError::SadExpired)
    } else {
        Err(SamError::InvalidSad)
    }
}

/// Why a signHash request may not spend `hashes` from `sad` (SCAL 2: every hash must be
/// covered; SCAL 1: no more hashes than signatures left).
fn check_spend(sad: &Sad, scal: Scal, hashes: &[Vec<u8>]) -> Result<(), SamError> {
    match &sad.hashes {
        Some(bound) if !covers(bound, hashes) => return Err(SamError::HashNotAuthorized),
        // A count-only SAD never signs for a SCAL 2 credential (e.g. one raised to SCAL 2
        // after the SAD was issued).
        None if scal == Scal::Two => return Err(SamError::HashNotAuthorized),
        _ => {}
    }
    if i32::try_from(hashes.len()).map_or(true, |n| n > sad.remaining) {
        return Err(SamError::TooManyHashes);
    }
    Ok(())
}

/// Parses the stored key spec and key id of a credential.
fn key_of(credential: &Credential) -> Result<(KeySpec, KeyId), SamError> {
    let spec = credential
        .key_spec
        .parse()
        .map_err(|_| SamError::InvalidInput("stored key spec is malformed".into()))?;
    Ok((spec, key_id_of(credential)?))
}

/// Parses the stored key id (the CKA_ID in the token) of a credential.
pub(crate) fn key_id_of(credential: &Credential) -> Result<KeyId, SamError> {
    credential
        .key_id
        .parse()
        .map_err(|_| SamError::InvalidInput("stored key id is malformed".into()))
}

/// The TOTP of a credential (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, one step of skew —
/// what provisioning hands out in the otpauth URI).
fn totp_of(factor: &Factor) -> Result<totp_rs::Totp, SamError> {
    let secret = totp_rs::Secret::try_from_base32(&factor.verifier)
        .map_err(|_| SamError::InvalidInput("stored OTP secret is malformed".into()))?;
    crate::provision::totp_builder(secret)
        .build()
        .map_err(|e| SamError::InvalidInput(format!("stored OTP secret is unusable: {e}")))
}

/// The time step an OTP code belongs to, if it is valid now (±1 step).
fn otp_step(factor: &Factor, code: &SecretString) -> Result<Option<i64>, SamError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SamError::InvalidInput("the system clock is before 1970".into()))?
        .as_secs();
    Ok(totp_of(factor)?
        .check(code.expose_secret(), now)
        .and_then(|step| i64::try_from(step).ok()))
}

/// The checks of the request itself that every key activation makes before any factor is
/// touched: `1 <= num_signatures <= multisign`; SCAL 2 needs hashes; no more hashes than
/// signatures; approved digest lengths. Returns the count and the hashes to bind.
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
    match &hashes {
        None if cred.scal == Scal::Two => return Err(SamError::MissingHash),
        Some(h) if h.len() > num as usize => return Err(SamError::TooManySignatures),
        Some(h) => check_digest_lengths(h)?,
        None => {}
    }
    Ok((num, hashes))
}

fn lock_error(kind: FactorKind) -> SamError {
    match kind {
        FactorKind::Pin => SamError::PinLocked,
        FactorKind::Otp => SamError::OtpLocked,
    }
}

fn invalid_factor(kind: FactorKind) -> SamError {
    match kind {
        FactorKind::Pin => SamError::InvalidPin,
        FactorKind::Otp => SamError::InvalidOtp,
    }
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

    /// `credentials/authorize` (explicit mode): verifies every factor the credential has and
    /// issues a SAD for `num_signatures` signatures (Part II 3.2.1.1, I 3.5.2).
    ///
    /// * The credential must be the caller's ([`SamError::UnknownCredential`]) and enabled; a
    ///   credential whose `authMode` is `oauth2code` is refused ([`SamError::OAuthOnly`], spec
    ///   §11.6: "SHALL NOT be used" for it).
    /// * `1 <= num_signatures <= multisign`.
    /// * SCAL 2 requires `hashes` (1..=num_signatures of them; fewer is allowed, the rest come
    ///   with extendTransaction, spec §13.8) and binds the SAD to exactly that multiset
    ///   (Part II 3.2.1.4). SCAL 1 binds them too when they are sent (the spec lets the server
    ///   bind a SAD to the hashes it was given): such a SAD then signs only those hashes.
    /// * SCAL 2 is never activated by one factor: a SCAL 2 credential without both a PIN and an
    ///   OTP is refused ([`SamError::TwoFactorsRequired`]; JT2A Part I 3.5.2 level 2).
    ///   Provisioning refuses to make one; this guards older data.
    /// * Each hash must have an approved digest length (32, 48 or 64 bytes).
    /// * PIN: Argon2id over an HMAC keyed in the HSM ([`crate::secrets`]; an older plain
    ///   Argon2id verifier is upgraded on success); a locked PIN refuses even the right PIN; a
    ///   wrong one counts towards the lock (Part I 7.1.2.5.1), and the failure that sets the
    ///   lock is audited as `factor.lock`. The PIN is checked before the OTP, so a wrong PIN
    ///   never burns an OTP.
    /// * OTP: an offline RFC 6238 TOTP, whose accepted time step is recorded atomically so a
    ///   code works once; or an online OTP sent by [`Sam::send_online_otp`], used up by one
    ///   conditional delete. A replayed or wrong code is [`SamError::InvalidOtp`] and counts
    ///   like a PIN failure.
    ///
    /// Parallel wrong guesses that all start before the lock is written are each verified, so
    /// at most (max_factor_failures + concurrent requests - 1) guesses are possible; a right
    /// guess among them is still refused if the lock committed before its SAD is written.
    ///
    /// Audited as `sad.authorize` (success or refused, with the reason).
    pub fn authorize(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        num_signatures: i64,
        hashes: Option<Vec<Vec<u8>>>,
        factors: Factors,
    ) -> Result<IssuedSad, SamError> {
        let sad = random_token(SAD_BYTES)?;
        let sad_hash = secret_hash(sad.as_bytes());
        let now = utc_now();
        let expires_at = self.expiry(now)?;
        let lifetime = self.policy.sad_lifetime.as_secs();
        self.activate(
            &ActivationRequest {
                event: AuditEvent::SadAuthorize,
                caller,
                credential,
                num_signatures,
                hashes,
                via: Via::Authorize,
            },
            factors,
            {
                let (user, credential, token_hash) = (caller.user, *credential, caller.token_hash);
                move |c, granted| {
                    c.insert_sad(&NewSad {
                        sad_hash: sad_hash.to_vec(),
                        user_id: user,
                        credential_id: credential,
                        token_hash: token_hash.to_vec(),
                        remaining: granted.num,
                        expires_at,
                        hashes: granted.hashes.clone(),
                    })?;
                    Ok(Ok(
                        json!({ "sad": sad_ref(&sad_hash), "expiresIn": lifetime }),
                    ))
                }
            },
        )?;
        Ok(IssuedSad {
            sad,
            expires_in: lifetime,
        })
    }

    /// The shared core of key activation (`credentials/authorize` and the OAuth 2.0 consent
    /// page): validates the request, verifies every factor of the credential (see
    /// [`Sam::authorize`] for the rules), and — in ONE transaction that also re-checks the
    /// locks, spends the OTP and clears the failure counters — runs `grant`, which writes what
    /// the activation yields (a SAD, an authorization code) and returns audit details, then
    /// audits the success under `req.event`. A refusal from `grant` rolls the whole transaction
    /// back; factor refusals commit their bookkeeping (failure count, lock, audit).
    pub(crate) fn activate(
        &self,
        req: &ActivationRequest<'_>,
        factors: Factors,
        grant: impl FnOnce(
            &mut Conn<'_>,
            &Granted,
        ) -> Result<Result<serde_json::Value, SamError>, StorageError>
        + Send
        + 'static,
    ) -> Result<Granted, SamError> {
        let ActivationRequest {
            event,
            caller,
            credential,
            num_signatures,
            via,
            ..
        } = *req;
        let subject = credential.to_string();
        let refuse = |e: SamError| self.refuse(event, caller, &subject, e, json!({}));

        let found = self.store.read(|c| {
            let Some(cred) = c.credential(credential)? else {
                return Ok(None);
            };
            if cred.user_id != caller.user {
                return Ok(Some((cred, None, None)));
            }
            let pin = c.factor(credential, FactorKind::Pin)?;
            let otp = c.factor(credential, FactorKind::Otp)?;
            Ok(Some((cred, pin, otp)))
        })?;
        let (found, pin_factor, otp_factor) = match found {
            Some((c, p, o)) => (Some(c), p, o),
            None => (None, None, None),
        };
        let cred = self.usable(caller, credential, found).map_err(refuse)?;
        if via == Via::Authorize && cred.auth_mode == AuthMode::Oauth2Code {
            return Err(refuse(SamError::OAuthOnly));
        }

        // The request itself, before any factor is touched.
        let (num, hashes) =
            check_request(&cred, num_signatures, req.hashes.clone()).map_err(refuse)?;
        // Level 2 key authorization is multi-factor (Part I 3.5.2): never one factor for SCAL 2.
        if cred.scal == Scal::Two && (pin_factor.is_none() || otp_factor.is_none()) {
            return Err(refuse(SamError::TwoFactorsRequired));
        }

        // Every factor the credential has must be presented, and none may be locked.
        let pin = match &pin_factor {
            Some(f) => Some((
                f,
                factors
                    .pin
                    .as_ref()
                    .ok_or_else(|| refuse(SamError::MissingPin))?,
            )),
            None => None,
        };
        let otp = match &otp_factor {
            Some(f) => Some((
                f,
                factors
                    .otp
                    .as_ref()
                    .ok_or_else(|| refuse(SamError::MissingOtp))?,
            )),
            None => None,
        };
        for factor in [pin_factor.as_ref(), otp_factor.as_ref()]
            .into_iter()
            .flatten()
        {
            if factor.locked {
                return Err(refuse(lock_error(factor.kind)));
            }
        }

        // PIN first: a wrong PIN must not burn the OTP code.
        let mut upgraded_pin = None;
        if let Some((factor, given)) = pin {
            match verify_pin(
                &self.hsm,
                &self.pin_key,
                credential,
                given,
                &factor.verifier,
            )? {
                PinMatch::No => {
                    return Err(self.factor_failure(
                        event,
                        caller,
                        &cred,
                        FactorKind::Pin,
                        "wrong PIN",
                    )?);
                }
                PinMatch::Yes => {}
                // an older, unpeppered verifier: replaced in the granting transaction
                PinMatch::YesUpgrade => {
                    upgraded_pin = Some(pin_verifier(&self.hsm, &self.pin_key, credential, given)?);
                }
            }
        }
        // An offline OTP is checked against the clock here and its step spent in the
        // transaction; an online OTP is checked and spent there in one conditional delete.
        let otp_proof = match otp {
            Some((factor, given)) => match OtpType::of(factor) {
                OtpType::Online => Some(OtpProof::Online(online_otp_hash(credential, given))),
                OtpType::Totp => match otp_step(factor, given)? {
                    Some(step) => Some(OtpProof::Step(step)),
                    None => {
                        return Err(self.factor_failure(
                            event,
                            caller,
                            &cred,
                            FactorKind::Otp,
                            "wrong OTP",
                        )?);
                    }
                },
            },
            None => None,
        };

        let granted = Granted {
            credential: cred,
            num,
            hashes,
        };
        let factor_names: Vec<&str> = [pin_factor.as_ref(), otp_factor.as_ref()]
            .into_iter()
            .flatten()
            .map(|f| f.kind.as_str())
            .collect();
        let lockout = self.policy.factor_lockout();
        let now = utc_now();
        // One transaction (group-committed with concurrent requests): re-check the locks (a
        // concurrent failure may have locked a factor since the read above), spend the OTP,
        // clear the failure counters, grant, audit. Factor refusals found here commit their
        // own bookkeeping (failure count, audit); a refusal from `grant` rolls the job back.
        // The job may run on another thread: it owns what it uses.
        let grant_refusal = Arc::new(Mutex::new(None));
        let job = {
            let (event, caller, subject, credential) =
                (event, caller.clone(), subject.clone(), *credential);
            let granted = granted.clone();
            let grant_refusal = Arc::clone(&grant_refusal);
            move |c: &mut Conn<'_>| -> Result<Grouped<Result<(), SamError>>, StorageError> {
                let mut fresh = Vec::with_capacity(2);
                for kind in [FactorKind::Pin, FactorKind::Otp] {
                    if let Some(f) = c.factor(&credential, kind)? {
                        if f.locked {
                            let err = lock_error(kind);
                            let refusal = refusal_event(event, &caller, &subject, &err, json!({}));
                            return Ok((Err(err), vec![refusal]));
                        }
                        fresh.push(f);
                    }
                }
                let otp_refusal = match &otp_proof {
                    Some(OtpProof::Step(step)) if !c.advance_otp_step(&credential, *step)? => {
                        Some("OTP code already used")
                    }
                    Some(OtpProof::Online(code_hash))
                        if !c.take_online_otp(&credential, code_hash, now)? =>
                    {
                        Some("wrong, used or expired online OTP")
                    }
                    _ => None,
                };
                if let Some(what) = otp_refusal {
                    let err = SamError::InvalidOtp;
                    record_failure(
                        c,
                        event,
                        &caller,
                        &subject,
                        &credential,
                        FactorKind::Otp,
                        lockout,
                        &err,
                        what,
                    )?;
                    return Ok((Err(err), Vec::new()));
                }
                for f in fresh.iter().filter(|f| f.failures > 0) {
                    c.reset_factor_failures(&credential, f.kind)?;
                }
                if let Some(verifier) = &upgraded_pin {
                    c.set_factor(&credential, FactorKind::Pin, verifier)?;
                }
                let mut detail = match grant(c, &granted)? {
                    Ok(d) => d,
                    Err(e) => {
                        *grant_refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                        return Err(StorageError::Conflict("refused: rolled back".into()));
                    }
                };
                if let Some(map) = detail.as_object_mut() {
                    map.insert("numSignatures".into(), json!(granted.num));
                    map.insert(
                        "boundHashes".into(),
                        json!(granted.hashes.as_ref().map_or(0, Vec::len)),
                    );
                    map.insert("SCAL".into(), json!(granted.credential.scal.as_str()));
                    map.insert("factors".into(), json!(factor_names));
                    map.insert(
                        "certificateSerial".into(),
                        json!(granted.credential.cert_serial),
                    );
                }
                let success = audit_event(event, &caller.user_name, &subject, "success", detail);
                Ok((Ok(()), vec![success]))
            }
        };
        let outcome = self.store.write_grouped(job);
        let refused = grant_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (outcome, refused) {
            (Err(_), Some(e)) => Err(refuse(e)),
            (outcome, _) => {
                outcome??;
                Ok(granted)
            }
        }
    }

    /// `credentials/extendTransaction`: renews a partly used, unexpired SAD into a new one with
    /// the same remaining count and a fresh lifetime; the old SAD dies (spec §11.7, §13.8;
    /// Part II appendix 1: batch signing by renewing SAD tokens).
    ///
    /// * The old SAD must be the caller's and the credential's, not revoked, with signatures
    ///   left ([`SamError::InvalidSad`]) and unexpired ([`SamError::SadExpired`]).
    /// * A hash-bound SAD (SCAL 2, or SCAL 1 authorized with hashes) keeps its unspent hashes
    ///   and adds the new ones; SCAL 2 requires new hashes ([`SamError::MissingHash`]). The
    ///   bound hashes may not outnumber the signatures left ([`SamError::TooManySignatures`]).
    ///   Hashes sent for a count-only SCAL 1 SAD bind the new SAD to them.
    /// * In ONE transaction: the old SAD is revoked (only one of two concurrent extensions can
    ///   win), re-read under that lock (a signature spent concurrently is not handed out
    ///   again), the new SAD stored and the renewal audited (`sad.extend`). A refusal found in
    ///   the transaction rolls it back, so the old SAD is untouched.
    pub fn extend_transaction(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: Option<Vec<Vec<u8>>>,
    ) -> Result<IssuedSad, SamError> {
        const EVENT: AuditEvent = AuditEvent::SadExtend;
        let subject = credential.to_string();
        let old_hash = secret_hash(sad.as_bytes());
        let old_ref = sad_ref(&old_hash);
        let refuse =
            |e: SamError| self.refuse(EVENT, caller, &subject, e, json!({ "sad": old_ref }));
        let now = utc_now();

        let (found, old) = self
            .store
            .read(|c| Ok((c.credential(credential)?, c.sad(&old_hash)?)))?;
        let cred = self.usable(caller, credential, found).map_err(refuse)?;
        let new_hashes = non_empty(hashes);
        if let Some(h) = &new_hashes {
            check_digest_lengths(h).map_err(refuse)?;
        }
        let plan = |old: Option<&Sad>| -> Result<Renewal, SamError> {
            let old = check_sad(old, caller, credential, now)?;
            if cred.scal == Scal::Two && new_hashes.is_none() {
                return Err(SamError::MissingHash);
            }
            let bound = match (&old.hashes, &new_hashes) {
                (None, None) => None,
                (old_h, new_h) => {
                    let mut all = old_h.clone().unwrap_or_default();
                    all.extend(new_h.iter().flatten().cloned());
                    if i32::try_from(all.len()).map_or(true, |n| n > old.remaining) {
                        return Err(SamError::TooManySignatures);
                    }
                    Some(all)
                }
            };
            Ok((old.remaining, bound))
        };
        // Everything checked before the transaction, so an obvious refusal costs no write.
        plan(old.as_ref()).map_err(refuse)?;

        let sad = random_token(SAD_BYTES)?;
        let new_hash = secret_hash(sad.as_bytes());
        let expires_at = self.expiry(now)?;
        let renewed = self.write_or_rollback(|c| {
            if !c.revoke_sad(&old_hash)? {
                return Ok(Err(SamError::InvalidSad));
            }
            // Re-read after the revocation, which locks the row: a signature spent since the
            // first read is not handed out again.
            let fresh = c.sad(&old_hash)?.map(|s| Sad {
                revoked: false,
                ..s
            });
            let (remaining, bound) = match plan(fresh.as_ref()) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            let bound_count = bound.as_ref().map(Vec::len);
            c.insert_sad(&NewSad {
                sad_hash: new_hash.to_vec(),
                user_id: caller.user,
                credential_id: *credential,
                token_hash: caller.token_hash.to_vec(),
                remaining,
                expires_at,
                hashes: bound,
            })?;
            c.append_audit(&audit_event(
                EVENT,
                &caller.user_name,
                &subject,
                "success",
                json!({
                    "sad": old_ref,
                    "newSad": sad_ref(&new_hash),
                    "remaining": remaining,
                    "boundHashes": bound_count,
                    "addedHashes": new_hashes.as_ref().map_or(0, Vec::len),
                    "expiresIn": self.policy.sad_lifetime.as_secs(),
                }),
            ))?;
            Ok(Ok(()))
        });
        match renewed {
            Ok(()) => Ok(IssuedSad {
                sad,
                expires_in: self.policy.sad_lifetime.as_secs(),
            }),
            Err(e @ SamError::Storage(_)) => Err(e),
            Err(e) => Err(refuse(e)),
        }
    }

    /// `signatures/signHash`: signs `hashes` (raw digests, in order) with the credential's
    /// key, spending the SAD (Part II 3.2.1.1, Part III 6).
    ///
    /// Everything is validated before anything is spent: the credential (the caller's,
    /// enabled), the algorithm ([`resolve_mechanism`]), each digest's length, and the SAD
    /// (known, not revoked, this user's and this credential's, unexpired, signatures left; SCAL
    /// 2: every hash covered). Refusals are audited as `signature.refused` and burn nothing.
    ///
    /// Then ONE transaction spends the SAD by an atomic conditional update (SCAL 1
    /// `consume_sad`, hash-bound `consume_sad_hashes`) and writes the `signature.sign_hash`
    /// record (credential, certificate serial, count, algorithm, SAD reference, digests); it is
    /// committed (fsynced on SQLite, group-committed with concurrent requests) BEFORE the HSM is
    /// asked, so no signature can leave without its record (Part I 7.1.4.3-4: write-ahead
    /// audit). Losing a race is diagnosed again and never signs. If the HSM then fails, the
    /// reservation is given back (count and hashes), a `failure` record for the same SAD
    /// reference follows, and [`SamError::SigningFailed`] is returned (Part III 13).
    ///
    /// Cost per request: one read (credential and SAD), one shared write transaction, one HSM
    /// batch; the certificate's validity period is parsed once per chain.
    pub fn sign_hash(
        &self,
        caller: &Caller,
        credential: &CredentialId,
        sad: &str,
        hashes: &[Vec<u8>],
        mechanism: &SignAlgoRequest,
    ) -> Result<Vec<Vec<u8>>, SamError> {
        let subject = credential.to_string();
        let sad_hash = secret_hash(sad.as_bytes());
        let sad_reference = sad_ref(&sad_hash);
        let refuse = |e: SamError| {
            self.refuse(
                AuditEvent::SignatureRefused,
                caller,
                &subject,
                e,
                json!({
                    "sad": sad_reference,
                    "count": hashes.len(),
                    // client input: bounded, so a refusal cannot flood the log
                    "signAlgo": mechanism.sign_algo.chars().take(64).collect::<String>(),
                }),
            )
        };
        let now = utc_now();

        let (found, sad_record) = self
            .store
            .read(|c| Ok((c.credential(credential)?, c.sad(&sad_hash)?)))?;
        let cred = self.usable(caller, credential, found).map_err(refuse)?;
        if hashes.is_empty() {
            return Err(refuse(SamError::EmptyHashes));
        }
        let (spec, key_id) = key_of(&cred)?;
        let mech: SignMechanism = resolve_mechanism(
            spec,
            &mechanism.sign_algo,
            mechanism.hash_algo.as_deref(),
            mechanism.sign_algo_params.as_deref(),
        )
        .map_err(|e| refuse(e.into()))?;
        let digest_len = mech.hash().digest_len();
        if hashes.iter().any(|h| h.len() != digest_len) {
            return Err(refuse(SamError::InvalidDigestLength));
        }
        let record = check_sad(sad_record.as_ref(), caller, credential, now).map_err(refuse)?;
        check_spend(record, cred.scal, hashes).map_err(refuse)?;
        let hash_bound = record.hashes.is_some();
        let count = i32::try_from(hashes.len()).map_err(|_| refuse(SamError::TooManyHashes))?;

        let base = json!({
            "sad": sad_reference,
            "count": count,
            "certificateSerial": cred.cert_serial,
            "signAlgo": mechanism.sign_algo,
            "hashAlgo": mech.hash().oid(),
            "mechanism": mech.to_string(),
            "digests": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        let record = |outcome: &str, detail: serde_json::Value| {
            audit_event(
                AuditEvent::SignatureSignHash,
                &caller.user_name,
                &subject,
                outcome,
                detail,
            )
        };
        let signed_record = record("success", base.clone());

        // Spend and audit in ONE transaction (group-committed with concurrent requests): one
        // conditional update spends the SAD and, only if it won, the record is written with it
        // (write-ahead: committed before the HSM is asked, so no signature can ever leave
        // without its record). On a lost race, say why from the row as it is now.
        let spend = {
            let hashes = hashes.to_vec();
            move |c: &mut Conn<'_>| {
                let won = if hash_bound {
                    c.consume_sad_hashes(&sad_hash, &hashes, now)?
                } else {
                    c.consume_sad(&sad_hash, count, now)?
                };
                if won {
                    Ok((None, vec![signed_record]))
                } else {
                    Ok((Some(c.sad(&sad_hash)?), Vec::new()))
                }
            }
        };
        if let Some(current) = self.store.write_grouped(spend)? {
            let why = check_sad(current.as_ref(), caller, credential, now)
                .and_then(|s| check_spend(s, cred.scal, hashes))
                .err()
                .unwrap_or(SamError::InvalidSad);
            return Err(refuse(why));
        }

        match self.hsm.sign_digests(&key_id, &mech, hashes) {
            Ok(signatures) => Ok(signatures),
            Err(hsm_error) => {
                tracing::error!(error = %hsm_error, credential = %subject, "the HSM failed to sign; giving the SAD reservation back");
                // The success record above stands (it was the authorisation to sign); this
                // one, for the same SAD reference and digests, says no signature came of it.
                let mut detail = base;
                if let Some(map) = detail.as_object_mut() {
                    map.insert("error".into(), json!(hsm_error.to_string()));
                }
                let event = record("failure", detail);
                let spent: &[Vec<u8>] = if hash_bound { hashes } else { &[] };
                self.store.write(|c| {
                    c.restore_sad(&sad_hash, count, spent)?;
                    c.append_audit(&event)
                })?;
                Err(SamError::SigningFailed)
            }
        }
    }

    /// `csc-server credential unlock`: an operator lifts the lock of a credential's activation
    /// factors (PIN, OTP) and clears their failure counters (Part I 7.1.2.5.1: locked "until an
    /// administrator unlocks"). Returns the factors that were locked. Audited as
    /// `credential.unlock`, also when nothing was locked.
    pub fn unlock_credential(
        &self,
        credential: &CredentialId,
        actor: &str,
    ) -> Result<Vec<FactorKind>, SamError> {
        let subject = credential.to_string();
        self.store
            .write(|c| {
                if c.credential(credential)?.is_none() {
                    return Err(StorageError::NotFound);
                }
                let mut was_locked = Vec::new();
                let mut present = Vec::new();
                for kind in [FactorKind::Pin, FactorKind::Otp] {
                    if let Some(f) = c.factor(credential, kind)? {
                        present.push(kind.as_str());
                        if f.locked {
                            was_locked.push(kind);
                        }
                        if f.locked || f.failures > 0 {
                            c.set_factor_lock(credential, kind, false)?;
                        }
                    }
                }
                c.append_audit(&audit_event(
                    AuditEvent::CredentialUnlock,
                    actor,
                    &subject,
                    "success",
                    json!({
                        "unlocked": was_locked.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                        "factors": present,
                    }),
                ))?;
                Ok(was_locked)
            })
            .map_err(|e| match e {
                StorageError::NotFound => SamError::UnknownCredential(subject.clone()),
                e => e.into(),
            })
    }

    /// `now` + the SAD lifetime.
    pub(crate) fn expiry(&self, now: NaiveDateTime) -> Result<NaiveDateTime, SamError> {
        chrono::TimeDelta::from_std(self.policy.sad_lifetime)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .ok_or_else(|| SamError::InvalidInput("the SAD lifetime is out of range".into()))
    }

    /// Counts a failed factor verification (atomically, locking at the policy's limit) and
    /// audits it in the same transaction; returns the error to give the client.
    fn factor_failure(
        &self,
        event: AuditEvent,
        caller: &Caller,
        credential: &Credential,
        kind: FactorKind,
        what: &str,
    ) -> Result<SamError, SamError> {
        let err = invalid_factor(kind);
        let subject = credential.id.to_string();
        let lockout = self.policy.factor_lockout();
        self.store.write(|c| {
            record_failure(
                c,
                event,
                caller,
                &subject,
                &credential.id,
                kind,
                lockout,
                &err,
                what,
            )
        })?;
        Ok(err)
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
        let ev = refusal_event(event, caller, subject, &error, detail);
        if let Err(e) = self.store.write(|c| c.append_audit(&ev)) {
            tracing::error!(error = %e, event = event.as_str(), "could not write an audit record");
        }
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

/// Counts one failed verification of `kind` and audits the refusal, under the lockout rule
/// ([`crate::lockout`]): the failure that sets the lock is also audited as `factor.lock`
/// (Part I 7.1.2.5.1, 7.1.4.1).
#[allow(clippy::too_many_arguments)]
fn record_failure(
    c: &mut Conn<'_>,
    event: AuditEvent,
    caller: &Caller,
    subject: &str,
    credential: &CredentialId,
    kind: FactorKind,
    lockout: Lockout,
    err: &SamError,
    what: &str,
) -> Result<(), StorageError> {
    lockout.count_failure(
        c,
        |c, limit| {
            let f = c.record_factor_failure(credential, kind, limit)?;
            Ok(Counted {
                failures: f.failures,
                locked: f.locked,
            })
        },
        refusal_event(
            event,
            caller,
            subject,
            err,
            json!({ "factor": kind.as_str(), "detail": what }),
        ),
        (
            AuditEvent::FactorLock,
            &caller.user_name,
            subject,
            json!({ "factor": kind.as_str() }),
        ),
    )?;
    Ok(())
}

/// A `refused` audit record whose reason is the error's message (never a secret).
fn refusal_event(
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

#[cfg(test)]
mod tests {
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
    fn default_policy() {
        let p = SamPolicy::default();
        assert_eq!(p.sad_lifetime, Duration::from_secs(3600));
        assert_eq!(p.max_factor_failures, 5);
        assert_eq!(p.online_otp_lifetime, Duration::from_secs(300));
    }
}
