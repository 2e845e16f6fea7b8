//! The suite finds real defects: `csc-conformance` against pyHanko's CSC test server
//! `certomancer-csc-dummy` (tests/conformance: its pinned requirements and a minimal Certomancer
//! configuration). That server authenticates nothing and its HMAC SADs carry no state, so a
//! used SAD signs again: the report must fail those checks by id, and still pass the
//! signatures it makes correctly (the suite is not failing everything).
//!
//! The Python comes from `CSC_TEST_PYTHON`, which `scripts/test` sets to the virtual environment
//! it makes from tests/*/requirements.txt; without it this test fails, never passes.

// Tests may panic loudly: a failing test should say where and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

mod common;

fn python() -> String {
    match std::env::var("CSC_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "CSC_TEST_PYTHON is not set: run scripts/test, which makes the Python environment \
             (target/pyenv, from tests/*/requirements.txt, including \
             tests/conformance/requirements.txt with certomancer-csc-dummy) and sets it; or set \
             it to a Python that has those packages installed"
        ),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Certomancer configuration with freshly generated keys, in `dir`.
fn certomancer_config(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let ec = || {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("pkey")
    };
    let rsa = PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("pkey");
    for (name, key) in [("root", ec()), ("signer-rsa", rsa), ("signer-ec", ec())] {
        let pem = key.private_key_to_pem_pkcs8().expect("PEM");
        std::fs::write(keys.join(format!("{name}.key.pem")), pem).expect("write key");
    }
    let cfg = dir.join("certomancer.yml");
    std::fs::copy(repo().join("tests/conformance/certomancer.yml"), &cfg).expect("copy config");
    cfg
}

/// The dummy server, killed on drop.
struct Dummy {
    child: Child,
    base: String,
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts `python -m csc_dummy CONFIG PORT SCAL` and waits until `info` answers.
fn start_dummy(python: &str, cfg: &Path, scal: u8) -> Dummy {
    let port = free_port();
    let child = Command::new(python)
        .args(["-m", "csc_dummy"])
        .arg(cfg)
        .arg(port.to_string())
        .arg(scal.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certomancer-csc-dummy");
    let mut dummy = Dummy {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = dummy.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = dummy.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("certomancer-csc-dummy exited ({status}):\n{err}");
        }
        let up = client
            .post(format!("{}/csc/v1/info", dummy.base))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .is_ok_and(|r| r.status().is_success());
        if up {
            return dummy;
        }
        assert!(
            Instant::now() < deadline,
            "certomancer-csc-dummy did not answer on {}",
            dummy.base
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn csc_conformance_reports_the_defects_of_certomancer_csc_dummy() {
    let python = python();
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = certomancer_config(work.path());
    let dummy = start_dummy(&python, &cfg, 1);
    let json = work.path().join("report.json");
    let started = Instant::now();
    let run = common::run_suite(
        &[
            "--base-url",
            &dummy.base,
            // it authenticates nothing: any token will do, and any other one is "another user"
            "--token",
            "any-token",
            "--other-token",
            "another-token",
            "--credential",
            "conformance/signer-rsa",
            "--credential",
            "conformance/signer-ec",
        ],
        &json,
    );
    let elapsed = started.elapsed();
    drop(dummy);
    println!("suite run took {elapsed:?}");

    let report = &run.report;
    let summary = format!(
        "{} passed, {} failed, {} skipped",
        report["passed"], report["failed"], report["skipped"]
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some(summary.as_str()),
        "the last line is the summary"
    );
    // the replayable SAD
    run.assert_all(
        "fail",
        &["signhash.sad-replay", "signhash.numSignatures-across-calls"],
    );
    // the missing authentication
    run.assert_all(
        "fail",
        &[
            "bearer.missing.credentials.list",
            "bearer.missing.credentials.info",
            "bearer.missing.credentials.authorize",
            "bearer.missing.signatures.signHash",
            "bearer.unknown-token",
            "bearer.unknown-token.signHash",
            "signhash.other-user",
            "credinfo.other-user",
        ],
    );
    // bare error bodies
    run.assert_all("fail", &["error.json-body"]);
    // what it does right is not failed: its signatures verify, its discovery is well-formed
    run.assert_all(
        "pass",
        &[
            "info.schema",
            "signhash.verify.sha256-rsa",
            "signhash.verify.rsa-pss-sha256",
            "signhash.verify.ecdsa-sha256",
            "credinfo.certificates.chain",
            "signhash.numSignatures-limit",
        ],
    );
    // what it does not have is skipped, with the reason (it serves signatures/timestamp but
    // does not list it: the optional method is not checked)
    run.assert_all(
        "skip",
        &[
            "extend.new-sad",
            "timestamp.token",
            "timestamp.signature",
            "timestamp.missing-hash",
        ],
    );
    run.assert_skips_say_why();
}
