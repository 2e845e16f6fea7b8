//! The token handle [`Hsm`]: key generation, public key export, signing and
//! destruction of key pairs.
//!
//! The rest of the handle lives in submodules: loading the process-wide
//! PKCS#11 context, opening and initialising tokens ([`module`]), the session
//! pool and key-handle cache ([`pool`]) and the HMAC secret keys ([`secret`]).

mod module;
mod pool;
mod secret;
mod timer;

pub use module::{HsmConfig, VendorAttribute, loaded_module};
pub use pool::DEFAULT_MAX_SESSIONS;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::rsa::PkcsPssParams;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::Slot;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use secrecy::SecretString;
use tracing::info;

use crate::error::{HsmError, rv_of};
use crate::types::{KeyAttributes, KeyId, KeySpec, PublicKey, SignMechanism};
use pool::{CachedKey, PoolState, find};
use timer::CallTimer;

/// RSA public exponent 65537.
const RSA_F4: [u8; 3] = [0x01, 0x00, 0x01];

/// Locks `m`, taking the guard over if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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
    /// [`HsmConfig::login_per_session`].
    login_per_session: bool,
    /// [`HsmConfig::key_vendor_attributes`].
    key_vendor_attributes: Vec<module::VendorAttribute>,
    keys: RwLock<HashMap<KeyId, CachedKey>>,
    /// Handles of the HMAC secret keys ([`Hsm::secret_key`],
    /// [`Hsm::import_hmac_secret`]), by `CKA_ID`, with the algorithm they
    /// were admitted for. Only keys that passed
    /// [`secret::secret_key_problem`] are cached.
    secrets: RwLock<HashMap<KeyId, secret::CachedSecret>>,
    /// Serialises the find-or-create of [`Hsm::secret_key`] inside this
    /// process (other processes sharing the token are not covered).
    secret_create: Mutex<()>,
}

impl fmt::Debug for Hsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hsm")
            .field("module", &self.inner.module)
            .field("token_label", &self.inner.label)
            .field("slot", &self.inner.slot.id())
            .field("max_sessions", &self.inner.max_sessions)
            .field("login_per_session", &self.inner.login_per_session)
            .finish_non_exhaustive()
    }
}

impl Hsm {
    /// Label of the token.
    pub fn token_label(&self) -> &str {
        &self.inner.label
    }

    /// The PKCS#11 slot id of the token (see [`HsmConfig::slot_id`]).
    pub fn slot_id(&self) -> u64 {
        self.inner.slot.id()
    }

    /// The token's serial number as it reports it (see [`HsmConfig::token_serial`]).
    pub fn token_serial(&self) -> Result<String, HsmError> {
        let info = self.inner.ctx.get_token_info(self.inner.slot)?;
        Ok(info
            .serial_number()
            .trim_end_matches([' ', '\0'])
            .to_owned())
    }

    /// The mechanisms the server uses that the token does not list
    /// (`C_GetMechanismList`), by name: what it signs with (`CKM_RSA_PKCS`
    /// over a DigestInfo, `CKM_RSA_PKCS_PSS` and `CKM_ECDSA` over a digest:
    /// signHash only ever has digests, so no hash-and-sign mechanism is
    /// needed), generates keys with, and computes HMACs with. Empty on
    /// SoftHSM2 and kryoptic. [`Hsm::open`] logs a warning naming them.
    pub fn missing_mechanisms(&self) -> Result<Vec<String>, HsmError> {
        use cryptoki::error::{Error as CkError, RvError};
        use cryptoki::mechanism::MechanismType as M;
        // C_GetMechanismInfo of each mechanism used, rather than C_GetMechanismList: the list
        // holds vendor and newer mechanisms cryptoki cannot name, and it logs an ERROR for each
        // (30 lines at every start on SoftHSM2)
        let mut missing = Vec::new();
        for m in [
            M::RSA_PKCS,
            M::RSA_PKCS_PSS,
            M::ECDSA,
            M::RSA_PKCS_KEY_PAIR_GEN,
            M::ECC_KEY_PAIR_GEN,
            M::GENERIC_SECRET_KEY_GEN,
            M::SHA256_HMAC,
            M::SHA1_HMAC,
        ] {
            match self.inner.ctx.get_mechanism_info(self.inner.slot, m) {
                Ok(_) => {}
                Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => missing.push(m.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(missing)
    }

    /// Path of the PKCS#11 module.
    pub fn module_path(&self) -> &Path {
        &self.inner.module
    }

    /// Cheap liveness check: the token is present and a pooled session is
    /// still logged in.
    pub fn health_check(&self) -> Result<(), HsmError> {
        let _timer = CallTimer::start("session_check");
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
    /// III 3, 5: one purpose per key), and neither `CKA_MODIFIABLE` nor
    /// `CKA_COPYABLE`: its `CKA_LABEL` names its owner for good
    /// ([`Hsm::sign_digests_for`]). Only approved algorithms exist in
    /// [`KeySpec`] (Part III 2).
    pub fn generate_key(&self, spec: KeySpec, label: &str) -> Result<KeyId, HsmError> {
        let _timer = CallTimer::start("generate_key");
        let id = KeyId::random()?;
        let started = Instant::now();
        let common_private = |allowed| {
            let mut template = vec![
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Modifiable(false),
                Attribute::Copyable(false),
                Attribute::Id(id.as_bytes().to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::AllowedMechanisms(allowed),
            ];
            template.extend(self.inner.vendor_attributes());
            template
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
                label_digest: openssl::sha::sha256(label.as_bytes()),
            },
        );
        info!(key = %id, %spec, elapsed_ms = started.elapsed().as_millis() as u64, "generated key pair in token");
        Ok(id)
    }

    /// The key pair whose private key is labelled `label`, the one with the
    /// smallest `CKA_ID` when several are (as [`Hsm::secret_key`] settles
    /// duplicates: every process picks the same one); `None` when there is
    /// none. For the server's own signing keys, found by their label (the
    /// audit seal key). Searches the token: for start-up, not a hot path.
    pub fn key_pair_labelled(&self, label: &str) -> Result<Option<KeyId>, HsmError> {
        let session = self.inner.session()?;
        let found = secret::smallest_id(
            &session,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ],
            &format!("a private key labelled {label:?}"),
        )?;
        Ok(found.map(|(id, _)| id))
    }

    /// Exports the public key as a DER SubjectPublicKeyInfo.
    pub fn public_key(&self, id: &KeyId) -> Result<PublicKey, HsmError> {
        let _timer = CallTimer::start("public_key");
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

    /// [`Hsm::sign_digests`] with a key that must belong to `owner`: its `CKA_LABEL` (set at
    /// generation, not modifiable) must be `owner`, otherwise [`HsmError::KeyNotBound`] and nothing
    /// is signed. The SAM signs for a credential with its credential ID as `owner`, so a key id
    /// re-pointed at another credential's key (or the CA's) cannot sign (JT2A Part II 3.1.1.3: the
    /// key assigned to the signer). One comparison of cached digests: free on the hot path.
    pub fn sign_digests_for(
        &self,
        id: &KeyId,
        owner: &str,
        mech: &SignMechanism,
        digests: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let refs: Vec<&[u8]> = digests.iter().map(Vec::as_slice).collect();
        self.sign_inner(id, Some(owner), mech, &refs)
    }

    fn sign_digests_inner(
        &self,
        id: &KeyId,
        mech: &SignMechanism,
        digests: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        self.sign_inner(id, None, mech, digests)
    }

    fn sign_inner(
        &self,
        id: &KeyId,
        owner: Option<&str>,
        mech: &SignMechanism,
        digests: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, HsmError> {
        let _timer = CallTimer::start("sign");
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
        if let Some(owner) = owner
            && openssl::sha::sha256(owner.as_bytes()) != key.label_digest
        {
            return Err(HsmError::KeyNotBound(*id));
        }
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
        let _timer = CallTimer::start("destroy_key");
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
    /// read back from the token, or of the secret key if `id` is one made by
    /// [`Hsm::secret_key`] or [`Hsm::import_hmac_secret`] (then
    /// `private_value_len` is the length of its `CKA_VALUE` as read back).
    /// Reading attributes admits nothing: a secret key is found by id
    /// whatever its protections.
    pub fn key_attributes(&self, id: &KeyId) -> Result<KeyAttributes, HsmError> {
        let session = self.inner.session()?;
        let (handle, secret) = match self.inner.resolve(&session, id) {
            Ok(key) if key.spec.is_rsa() => (key.private, AttributeType::PrivateExponent),
            Ok(key) => (key.private, AttributeType::Value),
            Err(HsmError::KeyNotFound(_)) => {
                (self.inner.find_secret(&session, id)?, AttributeType::Value)
            }
            Err(e) => return Err(e),
        };
        let attrs = session
            .get_attributes(
                handle,
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
                    AttributeType::Modifiable,
                    AttributeType::Copyable,
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
            modifiable: true,
            copyable: true,
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
                Attribute::Modifiable(v) => out.modifiable = v,
                Attribute::Copyable(v) => out.copyable = v,
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
    fn ecdsa_conversion_checks_length() {
        assert!(ecdsa_raw_to_der(KeySpec::EcP256, &[1u8; 63]).is_err());
        let der = ecdsa_raw_to_der(KeySpec::EcP256, &[1u8; 64]).unwrap();
        let sig = EcdsaSig::from_der(&der).unwrap();
        assert_eq!(sig.r().to_vec(), vec![1u8; 32]);
    }
}
