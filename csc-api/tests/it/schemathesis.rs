//! schemathesis (PyPI, pinned in `tests/schemathesis/requirements.txt`) against the running
//! server with the document the server serves at `/openapi.json`: every operation, valid and
//! invalid bodies, with and without credentials, then the stateful phase along the document's
//! links. No 5xx, and every answer a documented status with a body matching the document.
//! The checks that run and the few that do not (with why) are in
//! `tests/schemathesis/schemathesis.toml`; `unsupported_method` among them: every served path
//! asked with another method answers 405 with `Allow`. CSC v1 and v2, the TSA and OAuth 2.0 are
//! all in the document, so all are fuzzed (`tests/schemathesis/hooks.py` teaches schemathesis
//! the binary body of `POST /tsa`).
//!
//! The Python comes from `CSC_TEST_PYTHON`, which `scripts/test` sets to the virtual environment
//! it makes from `tests/*/requirements.txt`; without it this test fails, never passes.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Examples per operation and phase: the run takes well under a minute on two cores.
const MAX_EXAMPLES: &str = "50";
/// A fixed seed: the same requests on every run.
const SEED: &str = "20261123";
const TIMEOUT: Duration = Duration::from_secs(600);

fn python() -> String {
    match std::env::var("CSC_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "CSC_TEST_PYTHON is not set: run scripts/test, which makes the Python environment \
             (target/pyenv, from tests/*/requirements.txt, schemathesis included) and sets it; or \
             set it to a Python that has tests/schemathesis/requirements.txt installed"
        ),
    }
}

#[test]
fn schemathesis_finds_no_failure_against_the_served_document() {
    let python = python();
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/schemathesis/schemathesis.toml");
    let signers = Signers::new();
    // a confidential OAuth 2.0 client, so that oauth2/token and oauth2/revoke are reached
    let (client_id, secret) = crate::openapi_routes::register_client(&signers, true);
    let (server, api) = signers.serve(&[]);
    let token = api.login("alice", ALICE_PASSWORD);
    // schemathesis writes nothing to the source tree: it runs in a scratch directory
    let work = tempfile::tempdir().expect("tempdir");
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/schemathesis/hooks.py");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", api.base)])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--request-timeout", "60"])
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("CSC_ST_USER", "alice")
        .env("CSC_ST_PASSWORD", ALICE_PASSWORD)
        .env("CSC_ST_TOKEN", &token)
        .env("CSC_ST_CLIENT_ID", &client_id)
        .env("CSC_ST_CLIENT_SECRET", secret.unwrap_or_default())
        .env("NO_COLOR", "1")
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} -m schemathesis.cli: {e}"));
    // read the output while it runs (a full pipe would stall it)
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let log = server.log.lock().map(|l| l.clone()).unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            // the summary, for the CI log
            let summary = out.find("SUMMARY").map_or("", |i| &out[i..]);
            eprintln!(
                "schemathesis passed in {:.1?}:\n{summary}",
                started.elapsed()
            );
            assert!(
                out.contains("Tested: ") && out.contains(" passed"),
                "schemathesis said nothing about the operations it tested:\n{out}"
            );
        }
        Some(s) => panic!(
            "schemathesis failed ({s}) after {:.1?}. Its output:\n{out}\n{err}\nThe server's log:\n{log}",
            started.elapsed()
        ),
        None => panic!(
            "schemathesis did not finish within {TIMEOUT:?}. Its output so far:\n{out}\n{err}"
        ),
    }
}
