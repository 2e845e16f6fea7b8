//! Loading the one process-wide PKCS#11 context, and opening ([`Hsm::open`])
//! and initialising ([`Hsm::init_token`]) tokens through it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::{ExposeSecret, SecretString};
use tracing::{debug, info, warn};

use super::pool::{DEFAULT_MAX_SESSIONS, PoolState};
use super::{Hsm, Inner, lock};
use crate::error::{HsmError, rv_of};

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
    /// The PKCS#11 slot id the token must be in; `None`: any slot. The label must match too.
    /// For modules whose slot ids are stable (network HSM partitions); never for SoftHSM2, whose
    /// tokens move to a random slot when initialised.
    pub slot_id: Option<u64>,
    /// The serial number the token must report (`serialNumber` of `C_GetTokenInfo`, trailing
    /// blanks ignored); `None`: any. The label must match too.
    pub token_serial: Option<String>,
    /// Whether every pooled session logs in itself (`C_Login` on each new session, an
    /// "already logged in" answer being fine) instead of relying on the login of the anchor
    /// session, which PKCS#11 shares with every session of the application: for modules that
    /// keep the login per session or lose it across a network reconnect.
    pub login_per_session: bool,
    /// Vendor-defined attributes added to the template of every key the server generates or
    /// imports (signing key pairs' private keys, HMAC secret keys): what an HSM may need beyond
    /// the standard protections, which they cannot override.
    pub key_vendor_attributes: Vec<VendorAttribute>,
}

/// A vendor-defined PKCS#11 attribute (`CKA_VENDOR_DEFINED` and above) and its value, written
/// `0xTYPE=true`, `0xTYPE=false` (a `CK_BBOOL`) or `0xTYPE=hex:0102…` (bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorAttribute {
    /// The attribute type, at least `CKA_VENDOR_DEFINED` (0x80000000).
    pub attribute_type: u64,
    /// The value as the module receives it.
    pub value: Vec<u8>,
}

impl VendorAttribute {
    /// `CKA_VENDOR_DEFINED`: the first attribute type a vendor may define.
    pub const VENDOR_DEFINED: u64 = 0x8000_0000;

    /// The cryptoki attribute.
    pub(crate) fn attribute(&self) -> cryptoki::object::Attribute {
        cryptoki::object::Attribute::VendorDefined((
            cryptoki::object::AttributeType::VendorDefined(self.attribute_type as _),
            self.value.clone(),
        ))
    }
}

impl std::str::FromStr for VendorAttribute {
    type Err = HsmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            HsmError::Config(format!(
                "vendor attribute {s:?}: {why} (expected 0xTYPE=true, 0xTYPE=false or \
                 0xTYPE=hex:BYTES with TYPE at least 0x80000000)"
            ))
        };
        let (ty, value) = s.trim().split_once('=').ok_or_else(|| bad("no `=`"))?;
        let ty = ty.trim();
        let digits = ty
            .strip_prefix("0x")
            .or_else(|| ty.strip_prefix("0X"))
            .ok_or_else(|| bad("the type is not hexadecimal"))?;
        let attribute_type =
            u64::from_str_radix(digits, 16).map_err(|_| bad("the type is not hexadecimal"))?;
        if !(Self::VENDOR_DEFINED..=u64::from(u32::MAX)).contains(&attribute_type) {
            return Err(bad("not a vendor-defined attribute type"));
        }
        let value = match value.trim() {
            "true" => vec![1],
            "false" => vec![0],
            v => match v.strip_prefix("hex:") {
                Some(h) => hex_bytes(h).ok_or_else(|| bad("the bytes are not hexadecimal"))?,
                None => return Err(bad("the value is neither a boolean nor hex:BYTES")),
            },
        };
        Ok(VendorAttribute {
            attribute_type,
            value,
        })
    }
}

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    if h.is_empty() || !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
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
            slot_id: None,
            token_serial: None,
            login_per_session: false,
            key_vendor_attributes: Vec::new(),
        }
    }
}

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

/// The slots holding the token `cfg` names: its label, and its slot id and serial number when
/// configured.
fn matching_slots(ctx: &Pkcs11, cfg: &HsmConfig) -> Result<Vec<Slot>, HsmError> {
    let mut found = Vec::new();
    for slot in slots_with_label(ctx, &cfg.token_label)? {
        if cfg.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        if let Some(serial) = &cfg.token_serial {
            let info = ctx.get_token_info(slot)?;
            if info.serial_number().trim_end_matches([' ', '\0']) != serial.trim_end() {
                continue;
            }
        }
        found.push(slot);
    }
    Ok(found)
}

/// Constant-time comparison of two PINs.
fn same_pin(a: &SecretString, b: &SecretString) -> bool {
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Logs `session` in as the user; a token already logged in is fine.
pub(super) fn login_user(session: &Session, pin: &SecretString) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => Ok(()),
        Err(e) if rv_of(&e) == Some(RvError::UserAlreadyLoggedIn) => Ok(()),
        Err(e) => Err(e.into()),
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
    /// shares the first one's sessions and key cache (and its session and key
    /// template settings); the PIN must match. `slot_id` and `token_serial`
    /// are checked every time.
    pub fn open(cfg: &HsmConfig) -> Result<Hsm, HsmError> {
        if cfg.max_sessions == 0 {
            return Err(HsmError::Config("max_sessions must be at least 1".into()));
        }
        check_label(&cfg.token_label)?;
        let global = lock(&GLOBAL);
        let module = load_module(&cfg.module, &global)?;
        let ctx = &module.ctx;

        let slot = match matching_slots(ctx, cfg)?.as_slice() {
            [] if cfg.slot_id.is_none() && cfg.token_serial.is_none() => {
                return Err(HsmError::TokenNotFound {
                    label: cfg.token_label.clone(),
                });
            }
            [] => {
                return Err(HsmError::Config(format!(
                    "no token labelled {:?}{}{}",
                    cfg.token_label,
                    cfg.slot_id
                        .map(|id| format!(" in slot {id}"))
                        .unwrap_or_default(),
                    cfg.token_serial
                        .as_ref()
                        .map(|s| format!(" with serial number {s:?}"))
                        .unwrap_or_default(),
                )));
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
            pool: Mutex::new(PoolState::new()),
            freed: Condvar::new(),
            max_sessions: cfg.max_sessions,
            login_per_session: cfg.login_per_session,
            key_vendor_attributes: cfg.key_vendor_attributes.clone(),
            keys: RwLock::new(HashMap::new()),
            secrets: RwLock::new(HashMap::new()),
            secret_create: Mutex::new(()),
        });
        open_tokens.push((slot.id(), Arc::downgrade(&inner)));
        let hsm = Hsm { inner };
        match hsm.missing_mechanisms() {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => warn!(
                token = %cfg.token_label,
                missing = %missing.join(", "),
                "the token does not list mechanisms the server uses: what needs them will fail"
            ),
            Err(e) => {
                warn!(token = %cfg.token_label, error = %e, "cannot list the token's mechanisms")
            }
        }
        info!(
            module = %module.path.display(),
            token = %cfg.token_label,
            slot = slot.id(),
            max_sessions = cfg.max_sessions,
            "logged in to PKCS#11 token"
        );
        Ok(hsm)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_attributes_parse_strictly() {
        let a: VendorAttribute = "0x80000001=true".parse().unwrap();
        assert_eq!((a.attribute_type, a.value), (0x8000_0001, vec![1]));
        let a: VendorAttribute = " 0X8000ABCD = hex:00ff10 ".parse().unwrap();
        assert_eq!(
            (a.attribute_type, a.value),
            (0x8000_abcd, vec![0, 0xff, 0x10])
        );
        assert_eq!(
            "0x80000002=false".parse::<VendorAttribute>().unwrap().value,
            vec![0]
        );
        // standard attributes (CKA_SENSITIVE = 0x103, CKA_EXTRACTABLE = 0x162) cannot be touched
        for bad in [
            "0x103=false",
            "0x162=true",
            "0x100000000=true",
            "80000001=true",
            "0x80000001",
            "0x80000001=yes",
            "0x80000001=hex:abc",
            "0x80000001=hex:",
            "0x8000zz01=true",
        ] {
            assert!(bad.parse::<VendorAttribute>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pin_compare() {
        let a = SecretString::from("1234");
        assert!(same_pin(&a, &SecretString::from("1234")));
        assert!(!same_pin(&a, &SecretString::from("1235")));
        assert!(!same_pin(&a, &SecretString::from("12345")));
    }
}
