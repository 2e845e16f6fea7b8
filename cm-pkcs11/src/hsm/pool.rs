//! The session pool of a token and its key-handle cache.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use openssl::bn::BigNum;
use tracing::{debug, warn};

use super::module::login_user;
use super::{Inner, lock};
use crate::error::{HsmError, rv_of};
use crate::types::{KeyId, KeySpec};

/// Default size of the session pool.
pub const DEFAULT_MAX_SESSIONS: usize = 8;

/// How long a caller waits for a free pooled session before giving up.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The pooled sessions of a token: the idle ones, and how many are open
/// (idle or borrowed).
pub(super) struct PoolState {
    idle: Vec<Session>,
    open: usize,
}

impl PoolState {
    /// A pool without sessions.
    pub(super) fn new() -> PoolState {
        PoolState {
            idle: Vec::new(),
            open: 0,
        }
    }
}

/// The handles of a key pair, and its type, as cached per `CKA_ID`.
#[derive(Clone, Copy)]
pub(super) struct CachedKey {
    pub(super) private: ObjectHandle,
    pub(super) public: Option<ObjectHandle>,
    pub(super) spec: KeySpec,
    /// SHA-256 of the private key's `CKA_LABEL`: the owner it is bound to
    /// ([`crate::Hsm::sign_digests_for`]).
    pub(super) label_digest: [u8; 32],
}

/// A session borrowed from the pool; returned on drop (or closed, if an
/// error showed it is unusable).
pub(super) struct PooledSession<'a> {
    inner: &'a Inner,
    session: Option<Session>,
    broken: Cell<bool>,
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
    pub(super) fn check(&self, e: CkError) -> HsmError {
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
    pub(super) fn session(&self) -> Result<PooledSession<'_>, HsmError> {
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
            broken: Cell::new(false),
        }
    }

    fn open_session(&self) -> Result<Session, HsmError> {
        let s = self.ctx.open_rw_session(self.slot)?;
        // The anchor's login covers every session of the process; log in
        // again only if the token lost that state, or on every session when
        // configured so (`HsmConfig::login_per_session`).
        if self.login_per_session {
            login_user(&s, &self.pin)?;
        } else if !matches!(s.get_session_info()?.session_state(), SessionState::RwUser) {
            warn!(token = %self.label, "token not logged in; logging in again");
            login_user(&s, &self.pin)?;
        }
        debug!(token = %self.label, "opened pooled PKCS#11 session");
        Ok(s)
    }

    /// The configured vendor-defined attributes of generated and imported
    /// keys ([`crate::HsmConfig::key_vendor_attributes`]).
    pub(super) fn vendor_attributes(&self) -> impl Iterator<Item = Attribute> + '_ {
        self.key_vendor_attributes.iter().map(|a| a.attribute())
    }

    pub(super) fn cache_put(&self, id: KeyId, key: CachedKey) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, key);
    }

    pub(super) fn cache_remove(&self, id: &KeyId) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        self.secrets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Maps an error of an operation on key `id`: a vanished handle means the
    /// key is gone ([`HsmError::KeyNotFound`]) and is dropped from the cache.
    pub(super) fn key_error(
        &self,
        session: &PooledSession<'_>,
        id: &KeyId,
        e: CkError,
    ) -> HsmError {
        match rv_of(&e) {
            Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid) => {
                self.cache_remove(id);
                HsmError::KeyNotFound(*id)
            }
            _ => session.check(e),
        }
    }

    /// The cached handles of key `id`, looked up in the token on first use.
    pub(super) fn resolve(
        &self,
        session: &PooledSession<'_>,
        id: &KeyId,
    ) -> Result<CachedKey, HsmError> {
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
                    AttributeType::Label,
                ],
            )
            .map_err(|e| self.key_error(session, id, e))?;
        let (mut key_type, mut modulus, mut params, mut label) = (None, None, None, Vec::new());
        for a in attrs {
            match a {
                Attribute::Label(l) => label = l,
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
            label_digest: openssl::sha::sha256(&label),
        };
        self.cache_put(*id, key);
        Ok(key)
    }
}

/// The objects of class `class` with `CKA_ID` `id`.
pub(super) fn find(
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
