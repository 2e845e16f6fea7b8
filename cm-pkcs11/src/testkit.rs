//! Throwaway SoftHSM2 tokens for integration tests (feature `testkit`).
//!
//! Each [`TestToken`] lives in its own temporary token directory. Because a
//! process may hold only one PKCS#11 context, and because `SOFTHSM2_CONF` must
//! be set before the module is initialised, a test process may create exactly
//! one `TestToken`, and only under cargo-nextest (one process per test).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::SecretString;

use crate::{Hsm, HsmConfig, point_softhsm_at};

/// Default path of the SoftHSM2 module on Debian.
pub const DEFAULT_SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Environment variable overriding the module path.
pub const MODULE_ENV: &str = "CSC_PKCS11_MODULE";

static CREATED: AtomicBool = AtomicBool::new(false);

/// The SoftHSM2 module: `$CSC_PKCS11_MODULE`, else
/// `/usr/lib/softhsm/libsofthsm2.so`.
pub fn softhsm_module() -> PathBuf {
    std::env::var_os(MODULE_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOFTHSM_MODULE), PathBuf::from)
}

/// A freshly initialised SoftHSM2 token in a temporary directory.
pub struct TestToken {
    /// Holds `tokens/` and `softhsm2.conf`; removed on drop.
    pub dir: tempfile::TempDir,
    /// Module, random token label, random user PIN, 8 sessions.
    pub config: HsmConfig,
    /// The random SO PIN.
    pub so_pin: SecretString,
}

/// Fails the calling test with `msg`. A test kit reports a broken test setup
/// by panicking (see the `# Panics` sections), which fails the test loudly;
/// this is the kit's one place that panics.
#[allow(clippy::panic)] // test support only (feature `testkit`), never in the server
#[track_caller]
fn fail(msg: std::fmt::Arguments<'_>) -> ! {
    panic!("{msg}")
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut b) {
        fail(format_args!(
            "testkit: OS random number generator failed: {e}"
        ));
    }
    hex::encode(b)
}

impl TestToken {
    /// Creates the temp dir and its `softhsm2.conf`, points `SOFTHSM2_CONF`
    /// at it, and initialises a token with a random label and random PINs.
    ///
    /// Call it first in the test, before the test starts an async runtime or
    /// any thread: setting the environment variable is only sound while no
    /// other thread runs (see [`point_softhsm_at`]).
    ///
    /// # Panics
    /// When not running under cargo-nextest's process-per-test mode, when
    /// called twice in one process, when the PKCS#11 context already exists,
    /// or when SoftHSM fails: this is a test kit.
    pub fn new() -> TestToken {
        let mode = std::env::var("NEXTEST_EXECUTION_MODE").unwrap_or_default();
        assert!(
            mode == "process-per-test",
            "cm_pkcs11::testkit::TestToken needs one process per test: run the tests with \
             `cargo nextest run` (NEXTEST_EXECUTION_MODE={mode:?}). Plain `cargo test` runs \
             tests as threads of one process, and a second PKCS#11 context crashes SoftHSM2."
        );
        assert!(
            !CREATED.swap(true, Ordering::SeqCst),
            "cm_pkcs11::testkit::TestToken::new called twice in one process: only one \
             SoftHSM2 configuration can be used per process"
        );
        if let Some(loaded) = crate::loaded_module() {
            fail(format_args!(
                "cm_pkcs11::testkit::TestToken::new called after the PKCS#11 module {} was \
                 initialised: SOFTHSM2_CONF would be ignored",
                loaded.display()
            ));
        }

        let dir = match tempfile::Builder::new().prefix("cm-pkcs11-").tempdir() {
            Ok(d) => d,
            Err(e) => fail(format_args!("testkit: cannot create a temp dir: {e}")),
        };
        let tokens = dir.path().join("tokens");
        if let Err(e) = std::fs::create_dir(&tokens) {
            fail(format_args!(
                "testkit: cannot create {}: {e}",
                tokens.display()
            ));
        }
        let conf = dir.path().join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        );
        if let Err(e) = std::fs::write(&conf, text) {
            fail(format_args!(
                "testkit: cannot write {}: {e}",
                conf.display()
            ));
        }
        #[allow(unsafe_code)]
        // SAFETY: the nextest check above makes this process run this one test, and the
        // `CREATED` and `loaded_module` checks make this the first token of the process, before
        // it opened the PKCS#11 module. A test calls `TestToken::new` before it starts a runtime
        // or threads (the documented contract of `new`), so no other thread reads or writes
        // the environment now.
        unsafe {
            point_softhsm_at(&conf);
        }

        let module = softhsm_module();
        let label = format!("cm-test-{}", random_hex(4));
        let so_pin = SecretString::from(random_hex(8));
        let user_pin = SecretString::from(random_hex(6));
        match Hsm::init_token(&module, &label, &so_pin, &user_pin) {
            Ok(true) => {}
            Ok(false) => fail(format_args!(
                "testkit: token {label} already existed in a fresh directory"
            )),
            Err(e) => fail(format_args!(
                "testkit: cannot initialise a SoftHSM2 token: {e}"
            )),
        }
        TestToken {
            dir,
            config: HsmConfig::new(module, label, user_pin),
            so_pin,
        }
    }

    /// Opens the token with its configuration.
    ///
    /// # Panics
    /// When the token cannot be opened.
    pub fn open(&self) -> Hsm {
        match Hsm::open(&self.config) {
            Ok(h) => h,
            Err(e) => fail(format_args!("testkit: cannot open the test token: {e}")),
        }
    }
}

impl Default for TestToken {
    fn default() -> Self {
        TestToken::new()
    }
}
