//! The process-wide PKCS#11 context, the token handle [`Hsm`], its session
//! pool and key-handle cache.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::rsa::PkcsPssParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use secrecy::{ExposeSecret, SecretString};
use tracing::{debug, info, warn};

use crate::error::{HsmError, rv_of};
use crate::types::{KeyAttributes, KeyId, KeySpec, PublicKey, SignMechanism};

/// Default size of the session pool.
pub const DEFAULT_MAX_SESSIONS: usize = 8;

/// How long a caller waits for a free pooled session before giving up.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// RSA public exponent 65537.
const RSA_F4: [u8; 3] = [0x01, 0x00, 0x01];

/// Where and how to reach the token.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Path of the PKCS#11 shared library (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// Label of the token (`CKA_LABEL` of the token info, at most 32 bytes).
    pub token_label: String,
    /// The token's user PIN. Never logged.
    pub user_pin: SecretString,
    /// Maximum number of pooled read-write sessions (default 8).
    pub max_sessions: usize,
}

impl HsmConfig {
    /// A configuration with [`DEFAULT_MAX_SESSIONS`].
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        user_pin: SecretString,
    ) -> HsmConfig {
        HsmConfig {
            module: module.into(),
            token_label: token_label.into(),
            user_pin,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

// ---------------------------------------------------------------------------
// Process-wide context
// ---------------------------------------------------------------------------

/// The one PKCS#11 context of this process. SoftHSM 2.6.1 segfaults or hangs
/// when two contexts are initialised in one process, so it is created once and
/// never finalised.
struct Module {
    path: PathBuf,
    canonical: PathBuf,
    ctx: Pkcs11,
}

static MODULE: OnceLock<Module> = OnceLock::new();
/// Serialises module loading, `Hsm::open` and `Hsm::init_token`.
static GLOBAL: Mutex<()> = Mutex::new(());
/// Tokens opened in this process, by slot id: a second `Hsm::open` of the same
/// token shares the first one's sessions and cache.
static OPEN_TOKENS: Mutex<Vec<(u64, Weak<Inner>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The path of the PKCS#11 module loaded in this process, if any.
pub fn loaded_module() -> Option<&'static Path> {
    MODULE.get().map(|m| m.path.as_path())
}

/// Returns the process-wide context, loading and initialising `path` on first
/// use. The caller must hold `GLOBAL`.
fn load_module(path: &Path, _global: &MutexGuard<'_, ()>) -> Result<&'static Module, HsmError> {
    let wanted = canonical(path);
    if let Some(m) = MODULE.get() {
        return if m.canonical == wanted {
            Ok(m)
        } else {
            Err(HsmError::ModuleMismatch {
                loaded: m.path.clone(),
                requested: path.to_path_buf(),
            })
        };
    }
    let load_err = |source| HsmError::ModuleLoad {
        path: path.to_path_buf(),
        source,
    };
    let ctx = Pkcs11::new(path).map_err(load_err)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Someone else in this process (another library) initialised it.
        Err(e) if rv_of(&e) == Some(RvError::CryptokiAlreadyInitialized) => {
            warn!(module = %path.display(), "PKCS#11 module was already initialised in this process");
        }
        Err(e) => return Err(load_err(e)),
    }
    info!(module = %path.display(), "PKCS#11 module loaded");
    // GLOBAL is held, so nobody else can have set MODULE in between.
    let _ = MODULE.set(Module {
        path: path.to_path_buf(),
        canonical: wanted,
        ctx,
    });
    MODULE
        .get()
        .ok_or_else(|| HsmError::Config("PKCS#11 context vanished".into()))
}

fn check_label(label: &str) -> Result<(), HsmError> {
    if label.is_empty() || label.len() > 32 || label.ends_with(' ') {
        return Err(HsmError::InvalidTokenLabel {
            label: label.to_owned(),
        });
    }
    Ok(())
}

/// All slots holding an initialised token with this label.
fn slots_with_label(ctx: &Pkcs11, label: &str) -> Result<Vec<Slot>, HsmError> {
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_token()? {
        let info = ctx.get_token_info(slot)?;
        if info.token_initialized() && info.label().trim_end_matches([' ', '\0']) == label {
            found.push(slot);
        }
    }
    Ok(found)
}

/// Constant-time comparison of two PINs.
fn same_pin(a: &SecretString, b: &SecretString) -> bool {
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn login_user(session: &Session, pin: &SecretString) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => Ok(()),
        Err(e) if rv_of(&e) == Some(RvError::UserAlreadyLoggedIn) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------
// Hsm
// ---------------------------------------------------------------------------

/// A logged-in PKCS#11 token. Cheap to clone (one shared inner state);
/// `Send + Sync`. All methods block: call them from blocking threads.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Pkcs11,
    module: PathBuf,
    slot: Slot,
    label: String,
    pin: SecretString,
    /// Logged in once; keeps the login state of the token for every other
    /// session of this process. Never used for operations.
    _anchor: Mutex<Session>,
    pool: Mutex<PoolState>,
    freed: Condvar,
    max_sessions: usize,
    keys: RwLock<HashMap<KeyId, CachedKey>>,
}

struct PoolState {
    idle: Vec<Session>,
    open: usize,
}

#[derive(Clone, Copy)]
struct CachedKey {
    private: ObjectHandle,
    public: Option<ObjectHandle>,
    spec: KeySpec,
}

impl fmt::Debug for Hsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hsm")
            .field("module", &self.inner.module)
            .field("token_label", &self.inner.label)
            .field("slot", &self.inner.slot.id())
            .field("max_sessions", &self.inner.max_sessions)
            .finish_non_exhaustive()
    }
}

impl Hsm {
    /// Loads the module (one process-wide context in a `OnceLock`; a second
    /// call with a different module path gives [`HsmError::ModuleMismatch`]),
    /// finds the token by label (never by slot number: SoftHSM moves tokens to
    /// random slots) and logs in once with the user PIN through an "anchor"
    /// session kept for as long as any clone of this `Hsm` lives.
    ///
    /// Opening the same token again in the same process returns a handle that
    /// shares the first one's sessions and key cache; the PIN must match.
    pub fn open(cfg: &HsmConfig) -> Result<Hsm, HsmError> {
        if cfg.max_sessions == 0 {
            return Err(HsmError::Config("max_sessions must be at least 1".into()));
        }
        check_label(&cfg.token_label)?;
        let global = lock(&GLOBAL);
        let module = load_module(&cfg.module, &global)?;
        let ctx = &module.ctx;

        let slot = match slots_with_label(ctx, &cfg.token_label)?.as_slice() {
            [] => {
                return Err(HsmError::TokenNotFound {
                    label: cfg.token_label.clone(),
                });
            }
            [slot] => *slot,
            more => {
                return Err(HsmError::Config(format!(
                    "{} tokens carry the label {:?}; labels must be unique",
                    more.len(),
                    cfg.token_label
                )));
            }
        };

        let mut open_tokens = lock(&OPEN_TOKENS);
        open_tokens.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = open_tokens
            .iter()
            .find(|(id, _)| *id == slot.id())
            .and_then(|(_, w)| w.upgrade())
        {
            if !same_pin(&inner.pin, &cfg.user_pin) {
                return Err(HsmError::WrongPin);
            }
            debug!(token = %cfg.token_label, "token already open in this process; sharing it");
            return Ok(Hsm { inner });
        }

        let anchor = ctx.open_rw_session(slot)?;
        login_user(&anchor, &cfg.user_pin)?;
        let inner = Arc::new(Inner {
            ctx: ctx.clone(),
            module: module.path.clone(),
            slot,
            label: cfg.token_label.clone(),
            pin: cfg.user_pin.clone(),
            _anchor: Mutex::new(anchor),
            pool: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            max_sessions: cfg.max_sessions,
            keys: RwLock::new(HashMap::new()),
        });
        open_tokens.push((slot.id(), Arc::downgrade(&inner)));
        info!(
            module = %module.path.display(),
            token = %cfg.token_label,
            slot = slot.id(),
            max_sessions = cfg.max_sessions,
            "logged in to PKCS#11 token"
        );
        Ok(Hsm { inner })
    }

    /// Initialises a token with this label on a free slot (one whose token is
    /// not initialised) unless an initialised token with that label already
    /// exists, in which case nothing is changed and `Ok(false)` is returned.
    /// Sets the SO PIN (`C_InitToken`) and, logged in as SO, the user PIN
    /// (`C_InitPIN`). Uses the process-wide context. Returns `Ok(true)` when it
    /// created the token.
    pub fn init_token(
        module: &Path,
        label: &str,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<bool, HsmError> {
        check_label(label)?;
        let global = lock(&GLOBAL);
        let ctx = &load_module(module, &global)?.ctx;
        if !slots_with_label(ctx, label)?.is_empty() {
            return Ok(false);
        }
        let mut free = None;
        for slot in ctx.get_slots_with_token()? {
            if !ctx.get_token_info(slot)?.token_initialized() {
                free = Some(slot);
                break;
            }
        }
        let slot = free.ok_or_else(|| HsmError::NoFreeSlot {
            label: label.to_owned(),
        })?;
        ctx.init_token(slot, so_pin, label)?;
        let session = ctx.open_rw_session(slot)?;
        session.login(UserType::So, Some(so_pin))?;
        session.init_pin(user_pin)?;
        session.logout()?;
        session.close()?;
        info!(token = %label, slot = slot.id(), "initialised PKCS#11 token");
        Ok(true)
    }

    /// Label of the token.
    pub fn token_label(&self) -> &str {
        &self.inner.label
    }

    /// Path of the PKCS#11 module.
    pub fn module_path(&self) -> &Path {
        &self.inner.module
    }

    /// Cheap liveness check: the token is present and a pooled session is
    /// still logged in.
    pub fn health_check(&self) -> Result<(), HsmError> {
        let session = self.inner.session()?;
        let state = session
            .get_session_info()
            .map_err(|e| session.check(e))?
            .session_state();
        if matches!(state, SessionState::RwUser | SessionState::RoUser) {
            Ok(())
        } else {
            Err(HsmError::Config(format!(
                "token {} is not logged in (session state {state:?})",
                self.inner.label
            )))
        }
    }

    /// Generates a key pair inside the token (JT2A Part III 16) under a fresh
    /// random `CKA_ID`.
    ///
    /// The private key is `CKA_SENSITIVE`, not `CKA_EXTRACTABLE` (Part III 1,
    /// 17: it never leaves the HSM in plain), sign-only (`CKA_SIGN` true,
    /// `CKA_DECRYPT`/`CKA_UNWRAP`/`CKA_DERIVE` false) and restricted by
    /// `CKA_ALLOWED_MECHANISMS` to the signature mechanisms of its type (Part
    /// III 3, 5: one purpose per key). Only approved algorithms exist in
    /// [`KeySpec`] (Part III 2).
    pub fn generate_key(&self, spec: KeySpec, label: &str) -> Result<KeyId, HsmError> {
        let id = KeyId::random()?;
        let started = Instant::now();
        let common_private = |allowed| {
            vec![
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Id(id.as_bytes().to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::AllowedMechanisms(allowed),
            ]
        };
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Id(id.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let session = self.inner.session()?;
        let (mechanism, private) = match spec.ec_params() {
            None => {
                public.push(Attribute::ModulusBits((spec.bits() as u64).into()));
                public.push(Attribute::PublicExponent(RSA_F4.to_vec()));
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    common_private(vec![
                        cryptoki::mechanism::MechanismType::RSA_PKCS,
                        cryptoki::mechanism::MechanismType::RSA_PKCS_PSS,
                    ]),
                )
            }
            Some(params) => {
                public.push(Attribute::EcParams(params.to_vec()));
                (
                    Mechanism::EccKeyPairGen,
                    common_private(vec![cryptoki::mechanism::MechanismType::ECDSA]),
                )
            }
        };
        let (public_handle, private_handle) = session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| session.check(e))?;
        drop(session);
        self.inner.cache_put(
            id,
            CachedKey {
                private: private_handle,
                public: Some(public_handle),
                spec,
            },
        );
        info!(key = %id, %spec, elapsed_ms = started.elapsed().as_millis() as u64, "generated key pair in token");
        Ok(id)
    }

    /// Exports the public key as a DER SubjectPublicKeyInfo.
    pub fn public_key(&self, id: &KeyId) -> Result<PublicKey, HsmError> {
        let session = self.inner.session()?;
        let key = self.inner.resolve(&session, id)?;
        let public = key.public.ok_or(HsmError::KeyNotFound(*id))?;
        if key.spec.is_rsa() {
            let attrs = session
                .get_attributes(
                    public,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(|e| self.inner.key_error(&session, id, e))?;
            let (mut n, mut e) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err(HsmError::Encoding(format!(
                    "public key {id} lacks CKA_MODULUS or CKA_PUBLIC_EXPONENT"
                )));
            };
            PublicKey::from_rsa(key.spec, &n, &e)
        } else {
            let attrs = session
                .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(|e| self.inner.key_error(&session, id, e))?;
            let (mut params, mut point) = (None, None);
            for a in attrs {
                match a {
                    Attribute::EcParams(v) => params = Some(v),
                    Attribute::EcPoint(v) => point = Some(v),
                    _ => {}
                }
            }
            let (Some(params), Some(point)) = (params, point) else {
                return Err(HsmError::Encoding(format!(
                    "public key {id} lacks CKA_EC_PARAMS or CKA_EC_POINT"
                )));
            };
            if KeySpec::from_ec_params(&params) != Some(key.spec) {
                return Err(HsmError::Encoding(format!(
                    "public key {id} is on a different curve than its private key"
                )));
            }
            PublicKey::from_ec(key.spec, &point)
        }
    }

    /// Signs one digest (the signHash case) with the private key `id`.
    ///
    /// The digest length is checked against the mechanism's hash
    /// ([`HsmError::DigestLength`]) and the mechanism against the key type
    /// ([`HsmError::MechanismMismatch`]) before the token is asked.
    pub fn sign_digest(
        &self,
        id: &KeyId,
        mech: &SignMechanism,
        digest: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let mut out = self.sign_digests_inner(id, mech, std::slice::from_ref(&digest))?;
        out.pop()
            .ok_or_else(|| HsmError::Encoding("token returned no signature".into()))
    }

    /// Signs several digests with the same key on ONE session (batch
    /// signHash). All or error: on the first failure nothing is returned.
    pub fn sign_digests(
        &self,
        id: &KeyId,
        mech: &SignMechanism,
        digests: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let refs: Vec<&[u8]> = digests.iter().map(Vec::as_slice).collect();
        self.sign_digests_inner(id, mech, &refs)
    }

    fn sign_digests_inner(
        &self,
        id: &KeyId,
        mech: &SignMechanism,
        digests: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let hash = mech.hash();
        for d in digests {
            if d.len() != hash.digest_len() {
                return Err(HsmError::DigestLength {
                    expected: hash.digest_len(),
                    got: d.len(),
                });
            }
        }
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let session = self.inner.session()?;
        let key = self.inner.resolve(&session, id)?;
        if mech.is_rsa() != key.spec.is_rsa() {
            return Err(HsmError::MechanismMismatch {
                mechanism: mech.name(),
                key: key.spec,
            });
        }
        // Built here, on the signing thread: `Mechanism` is !Send.
        let mechanism = match *mech {
            SignMechanism::RsaPkcs1v15 { .. } => Mechanism::RsaPkcs,
            SignMechanism::RsaPss {
                hash,
                mgf_hash,
                salt_len,
            } => {
                let max = (key.spec.bits() / 8).saturating_sub(hash.digest_len() + 2);
                if salt_len > max {
                    return Err(HsmError::InvalidSaltLength { salt_len, max });
                }
                Mechanism::RsaPkcsPss(PkcsPssParams {
                    hash_alg: hash.mechanism_type(),
                    mgf: mgf_hash.mgf(),
                    s_len: (salt_len as u64).into(),
                })
            }
            SignMechanism::Ecdsa { .. } => Mechanism::Ecdsa,
        };
        let mut out = Vec::with_capacity(digests.len());
        for digest in digests {
            let sig = match mech {
                SignMechanism::RsaPkcs1v15 { hash } => {
                    let mut data =
                        Vec::with_capacity(hash.digest_info_prefix().len() + digest.len());
                    data.extend_from_slice(hash.digest_info_prefix());
                    data.extend_from_slice(digest);
                    session.sign(&mechanism, key.private, &data)
                }
                _ => session.sign(&mechanism, key.private, digest),
            }
            .map_err(|e| self.inner.key_error(&session, id, e))?;
            out.push(if key.spec.is_rsa() {
                sig
            } else {
                ecdsa_raw_to_der(key.spec, &sig)?
            });
        }
        Ok(out)
    }

    /// Destroys the private and the public key object with the token's own
    /// `C_DestroyObject` (JT2A Part III appendix 1.6).
    pub fn destroy_key(&self, id: &KeyId) -> Result<(), HsmError> {
        self.inner.cache_remove(id);
        let session = self.inner.session()?;
        let private = find(&session, ObjectClass::PRIVATE_KEY, id)?;
        let public = find(&session, ObjectClass::PUBLIC_KEY, id)?;
        if private.is_empty() && public.is_empty() {
            return Err(HsmError::KeyNotFound(*id));
        }
        for h in private.into_iter().chain(public) {
            match session.destroy_object(h) {
                Ok(()) => {}
                // Destroyed concurrently by someone else: that is what we want.
                Err(e) if rv_of(&e) == Some(RvError::ObjectHandleInvalid) => {}
                Err(e) => return Err(session.check(e)),
            }
        }
        // A concurrent sign may have re-cached the handle meanwhile.
        self.inner.cache_remove(id);
        info!(key = %id, "destroyed key pair in token");
        Ok(())
    }

    /// For tests and audits: the security attributes of the private key as
    /// read back from the token.
    pub fn key_attributes(&self, id: &KeyId) -> Result<KeyAttributes, HsmError> {
        let session = self.inner.session()?;
        let key = self.inner.resolve(&session, id)?;
        let secret = if key.spec.is_rsa() {
            AttributeType::PrivateExponent
        } else {
            AttributeType::Value
        };
        let attrs = session
            .get_attributes(
                key.private,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Sign,
                    AttributeType::Decrypt,
                    AttributeType::Unwrap,
                    AttributeType::Derive,
                    AttributeType::Local,
                    AttributeType::AllowedMechanisms,
                    secret,
                ],
            )
            .map_err(|e| self.inner.key_error(&session, id, e))?;
        let mut out = KeyAttributes {
            sensitive: false,
            extractable: true,
            always_sensitive: false,
            never_extractable: false,
            sign: false,
            decrypt: true,
            unwrap: true,
            derive: true,
            local: false,
            allowed_mechanisms: Vec::new(),
            private_value_len: 0,
        };
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => out.sensitive = v,
                Attribute::Extractable(v) => out.extractable = v,
                Attribute::AlwaysSensitive(v) => out.always_sensitive = v,
                Attribute::NeverExtractable(v) => out.never_extractable = v,
                Attribute::Sign(v) => out.sign = v,
                Attribute::Decrypt(v) => out.decrypt = v,
                Attribute::Unwrap(v) => out.unwrap = v,
                Attribute::Derive(v) => out.derive = v,
                Attribute::Local(v) => out.local = v,
                Attribute::AllowedMechanisms(v) => {
                    out.allowed_mechanisms = v.iter().map(ToString::to_string).collect();
                }
                Attribute::Value(v) | Attribute::PrivateExponent(v) => {
                    out.private_value_len = v.len();
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Converts the PKCS#11 ECDSA signature `r || s` into a DER `ECDSA-Sig-Value`.
fn ecdsa_raw_to_der(spec: KeySpec, raw: &[u8]) -> Result<Vec<u8>, HsmError> {
    let field = spec.bits().div_ceil(8);
    if raw.len() != 2 * field {
        return Err(HsmError::Encoding(format!(
            "ECDSA signature from the token has {} bytes, expected {}",
            raw.len(),
            2 * field
        )));
    }
    let (r, s) = raw.split_at(field);
    let sig = EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
    Ok(sig.to_der()?)
}

fn find(
    session: &PooledSession<'_>,
    class: ObjectClass,
    id: &KeyId,
) -> Result<Vec<ObjectHandle>, HsmError> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Id(id.as_bytes().to_vec()),
        ])
        .map_err(|e| session.check(e))
}

// ---------------------------------------------------------------------------
// Session pool and key cache
// ---------------------------------------------------------------------------

/// A session borrowed from the pool; returned on drop (or closed, if an
/// error showed it is unusable).
struct PooledSession<'a> {
    inner: &'a Inner,
    session: Option<Session>,
    broken: std::cell::Cell<bool>,
}

impl Deref for PooledSession<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        // Only `Drop` takes the session out.
        match &self.session {
            Some(s) => s,
            None => unreachable!("pooled session used after drop"),
        }
    }
}

impl PooledSession<'_> {
    /// Notes errors that make the session unusable, and converts the error.
    fn check(&self, e: CkError) -> HsmError {
        if matches!(
            rv_of(&e),
            Some(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::TokenNotPresent
                    | RvError::OperationActive
                    | RvError::UserNotLoggedIn
            )
        ) {
            self.broken.set(true);
        }
        e.into()
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut state = lock(&self.inner.pool);
        if self.broken.get() {
            state.open = state.open.saturating_sub(1);
            drop(state);
            warn!(token = %self.inner.label, "discarding a broken PKCS#11 session");
            drop(session);
        } else {
            state.idle.push(session);
            drop(state);
        }
        self.inner.freed.notify_one();
    }
}

impl Inner {
    /// Borrows a session, opening one if the pool is below its cap, waiting
    /// otherwise.
    fn session(&self) -> Result<PooledSession<'_>, HsmError> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut state = lock(&self.pool);
        loop {
            if let Some(s) = state.idle.pop() {
                return Ok(self.pooled(s));
            }
            if state.open < self.max_sessions {
                state.open += 1;
                drop(state);
                return match self.open_session() {
                    Ok(s) => Ok(self.pooled(s)),
                    Err(e) => {
                        lock(&self.pool).open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(HsmError::SessionPoolTimeout(self.max_sessions));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn pooled(&self, s: Session) -> PooledSession<'_> {
        PooledSession {
            inner: self,
            session: Some(s),
            broken: std::cell::Cell::new(false),
        }
    }

    fn open_session(&self) -> Result<Session, HsmError> {
        let s = self.ctx.open_rw_session(self.slot)?;
        // The anchor's login covers every session of the process; log in
        // again only if the token lost that state.
        if !matches!(s.get_session_info()?.session_state(), SessionState::RwUser) {
            warn!(token = %self.label, "token not logged in; logging in again");
            login_user(&s, &self.pin)?;
        }
        debug!(token = %self.label, "opened pooled PKCS#11 session");
        Ok(s)
    }

    fn cache_put(&self, id: KeyId, key: CachedKey) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, key);
    }

    fn cache_remove(&self, id: &KeyId) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Maps an error of an operation on key `id`: a vanished handle means the
    /// key is gone ([`HsmError::KeyNotFound`]) and is dropped from the cache.
    fn key_error(&self, session: &PooledSession<'_>, id: &KeyId, e: CkError) -> HsmError {
        match rv_of(&e) {
            Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid) => {
                self.cache_remove(id);
                HsmError::KeyNotFound(*id)
            }
            _ => session.check(e),
        }
    }

    /// The cached handles of key `id`, looked up in the token on first use.
    fn resolve(&self, session: &PooledSession<'_>, id: &KeyId) -> Result<CachedKey, HsmError> {
        if let Some(k) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(*k);
        }
        let private = match find(session, ObjectClass::PRIVATE_KEY, id)?.as_slice() {
            [] => return Err(HsmError::KeyNotFound(*id)),
            [h] => *h,
            more => {
                return Err(HsmError::UnsupportedKey {
                    id: *id,
                    reason: format!("{} private keys share this id", more.len()),
                });
            }
        };
        let public = find(session, ObjectClass::PUBLIC_KEY, id)?.first().copied();
        let attrs = session
            .get_attributes(
                private,
                &[
                    AttributeType::KeyType,
                    AttributeType::Modulus,
                    AttributeType::EcParams,
                ],
            )
            .map_err(|e| self.key_error(session, id, e))?;
        let (mut key_type, mut modulus, mut params) = (None, None, None);
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::Modulus(m) => modulus = Some(m),
                Attribute::EcParams(p) => params = Some(p),
                _ => {}
            }
        }
        let unsupported = |reason: String| HsmError::UnsupportedKey { id: *id, reason };
        let spec = match key_type {
            Some(KeyType::RSA) => {
                let n = modulus.ok_or_else(|| unsupported("RSA key without CKA_MODULUS".into()))?;
                let bits = BigNum::from_slice(&n)?.num_bits();
                let bits = usize::try_from(bits).unwrap_or(0);
                KeySpec::from_rsa_bits(bits)
                    .ok_or_else(|| unsupported(format!("RSA key of {bits} bits")))?
            }
            Some(KeyType::EC) => params
                .as_deref()
                .and_then(KeySpec::from_ec_params)
                .ok_or_else(|| unsupported("EC key on an unsupported curve".into()))?,
            other => return Err(unsupported(format!("key type {other:?}"))),
        };
        let key = CachedKey {
            private,
            public,
            spec,
        };
        self.cache_put(*id, key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsm_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Hsm>();
        assert_send_sync::<HsmError>();
    }

    #[test]
    fn pin_compare() {
        let a = SecretString::from("1234");
        assert!(same_pin(&a, &SecretString::from("1234")));
        assert!(!same_pin(&a, &SecretString::from("1235")));
        assert!(!same_pin(&a, &SecretString::from("12345")));
    }

    #[test]
    fn ecdsa_conversion_checks_length() {
        assert!(ecdsa_raw_to_der(KeySpec::EcP256, &[1u8; 63]).is_err());
        let der = ecdsa_raw_to_der(KeySpec::EcP256, &[1u8; 64]).unwrap();
        let sig = EcdsaSig::from_der(&der).unwrap();
        assert_eq!(sig.r().to_vec(), vec![1u8; 32]);
    }
}
