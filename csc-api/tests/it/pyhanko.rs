//! pyHanko end to end: pyHanko's own CSC client (`pyhanko.sign.signers.csc_signer`, driven by
//! `tests/pyhanko/csc_e2e.py`) signs PDFs through the running server, and pyHanko's validator
//! finds every signature intact, valid and trusted with the dev CA as the only trust root.
//! One test per scenario, so nextest runs them in parallel processes.
//!
//! The Python comes from `CSC_TEST_PYTHON`, which `scripts/test` sets to the virtual environment
//! it makes from `tests/pyhanko/requirements.txt`; without it these tests fail, never pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::*;

pub(crate) fn python() -> String {
    match std::env::var("CSC_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "CSC_TEST_PYTHON is not set: run scripts/test, which makes the pyHanko environment \
             (target/pyenv, from tests/pyhanko/requirements.txt) and sets it; or set it to a \
             Python that has those packages installed"
        ),
    }
}

pub(crate) fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pyhanko/csc_e2e.py")
}

/// What one run of the script reported.
struct Run {
    pdfs: Vec<Value>,
    requests: Value,
}

/// Makes the signers (`common::Signers`), serves them, logs alice in and runs one scenario of
/// `csc_e2e.py` on credential `cred` (a name of `Signers`);
/// asserts that it succeeded, that every PDF is intact, valid and trusted, and that the server
/// received exactly one credentials/authorize and one signatures/signHash. The server is stopped
/// on return.
fn run_scenario(scenario: &str, cred: &str, batch: usize) -> (Run, Signers) {
    let python = python();
    let signers = Signers::only(&[cred]);
    let cred = signers.id(cred).to_owned();
    // The trust root as the operator sees it (`init` on an existing data directory reprints it).
    let ca_b64 = run_ok(csc(signers.dir()).arg("init"))["caCertificate"]
        .as_str()
        .expect("caCertificate")
        .to_owned();
    let (server, api) = signers.serve(&[("RUST_LOG", "warn,actix_web::middleware::logger=info")]);
    let alice = api.login("alice", ALICE_PASSWORD);
    let (status, info) = api.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": &cred, "certificates": "chain" }),
    );
    assert_eq!(status, 200, "{info}");
    let chain = info["cert"]["certificates"]
        .as_array()
        .expect("certificates");
    assert_eq!(
        chain.last().and_then(Value::as_str),
        Some(ca_b64.as_str()),
        "the chain ends with the dev CA"
    );

    // SCAL 2 takes two factors: the server sends an online OTP, read from its outbox
    let otp = api.online_otp(&alice, &cred);

    let work = tempfile::tempdir().expect("tempdir");
    let ca = work.path().join("ca.der");
    std::fs::write(&ca, decode(&ca_b64)).expect("write CA");
    let out_dir = work.path().join("out");
    let mut cmd = Command::new(&python);
    cmd.arg(script());
    if let Some(otp) = &otp {
        cmd.args(["--otp", otp]);
    }
    let out = cmd
        .args(["--base-url", &api.base, "--token", &alice, "--pin", PIN])
        .arg("--ca")
        .arg(&ca)
        .arg("--out")
        .arg(&out_dir)
        .args(["--scenario", scenario, "--credential", &cred])
        .args(["--batch", &batch.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (CSC_TEST_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let exchanges = std::fs::read_to_string(out_dir.join("requests.jsonl")).unwrap_or_default();
    let server_log = server.log.lock().map(|l| l.clone()).unwrap_or_default();
    let context = format!(
        "csc_e2e.py {scenario} exited with {}\n--- stdout\n{stdout}--- stderr\n{stderr}\
         --- HTTP exchanges\n{exchanges}--- server log\n{server_log}",
        out.status
    );
    assert!(out.status.success(), "{context}");

    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{context}")))
        .collect();
    let pdfs: Vec<Value> = lines
        .iter()
        .filter(|l| l["kind"] == "pdf")
        .cloned()
        .collect();
    assert_eq!(pdfs.len(), batch, "one line per PDF\n{context}");
    for pdf in &pdfs {
        for key in ["ok", "intact", "valid", "trusted", "bottom_line"] {
            assert_eq!(pdf[key], true, "{key} of {pdf}\n{context}");
        }
        assert_eq!(pdf["coverage"], "ENTIRE_FILE", "{pdf}");
        assert_eq!(pdf["signer"], "alice", "{pdf}");
        assert_eq!(pdf["md_algorithm"], "sha256", "{pdf}");
        let name = pdf["pdf"].as_str().expect("pdf name");
        let signed = std::fs::read(out_dir.join(name)).expect("signed PDF");
        assert!(
            signed.starts_with(b"%PDF-") && contains(&signed, b"/ByteRange"),
            "{name}"
        );
    }
    let requests = lines
        .iter()
        .find(|l| l["kind"] == "requests")
        .cloned()
        .unwrap_or_else(|| panic!("no requests line\n{context}"));
    // pyHanko's side: one authorization for the whole batch, one signHash with all its hashes
    assert_eq!(requests["authorize_calls"], 1, "{requests}");
    assert_eq!(requests["authorize_requests"], 1, "{requests}");
    assert_eq!(requests["sign_hash_requests"], 1, "{requests}");
    assert_eq!(requests["num_signatures"], batch, "{requests}");
    assert_eq!(requests["batch_hashes"], batch, "{requests}");
    // the server's side: its request log shows the same, each answered 200
    for method in ["credentials/authorize", "signatures/signHash"] {
        let line = format!("\"POST /csc/v1/{method} HTTP/1.1\" ");
        let seen: Vec<&str> = server_log.lines().filter(|l| l.contains(&line)).collect();
        assert_eq!(
            seen.len(),
            1,
            "{method} requests in the server log\n{context}"
        );
        assert!(seen[0].contains(&format!("{line}200 ")), "{}", seen[0]);
    }
    (Run { pdfs, requests }, signers)
}

#[test]
fn pyhanko_signs_with_rsa_pkcs1_v1_5() {
    let (run, _) = run_scenario("rsa-pkcs1", "rsa", 1);
    assert_eq!(run.pdfs[0]["mechanism"], "sha256_rsa");
    assert_eq!(run.requests["sign_algo"], "1.2.840.113549.1.1.11");
    assert_eq!(run.requests["sign_algo_params"], Value::Null);
}

#[test]
fn pyhanko_signs_with_rsa_pss_and_the_maximum_salt_length() {
    let (run, _) = run_scenario("rsa-pss", "rsa", 1);
    assert_eq!(run.pdfs[0]["mechanism"], "rsassa_pss");
    assert_eq!(run.requests["sign_algo"], "1.2.840.113549.1.1.10");
    // RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt 222 = 256 - 32 - 2 bytes (the most a
    // 2048-bit key allows), trailer 1: what pyHanko sends, and what the server must honour
    let params = STANDARD
        .decode(
            run.requests["sign_algo_params"]
                .as_str()
                .expect("signAlgoParams"),
        )
        .expect("base64");
    assert!(
        params.ends_with(&[0xa2, 0x04, 0x02, 0x02, 0x00, 0xde]),
        "{params:02x?}"
    );
}

#[test]
fn pyhanko_signs_with_ec_p256() {
    let (run, _) = run_scenario("ec-p256", "ec", 1);
    assert_eq!(run.pdfs[0]["mechanism"], "sha256_ecdsa");
    assert_eq!(run.requests["sign_algo"], "1.2.840.10045.4.3.2");
}

#[test]
fn pyhanko_signs_a_batch_of_three_pdfs_with_one_scal2_authorization() {
    let (run, s) = run_scenario("scal2-batch", "scal2", 3);
    assert_eq!(run.requests["sign_algo"], "1.2.840.113549.1.1.11");
    let names: std::collections::BTreeSet<&str> =
        run.pdfs.iter().filter_map(|p| p["pdf"].as_str()).collect();
    assert_eq!(names.len(), 3, "three different PDFs");
    let verdict = run_ok(csc(s.dir()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
}

/// PAdES B-T (issue 12): the signature through the CSC v1 API, its signature time-stamp from
/// the same server's RFC 3161 endpoint (`POST /tsa`, pyHanko's `HTTPTimeStamper`); pyHanko's
/// validator, with the dev CA as the only root, finds the signature and the time-stamp token
/// intact, valid and trusted (the TSA certificate in the token chains to the CA and carries the
/// critical timeStamping EKU pyHanko requires of a TSA).
#[test]
fn pyhanko_signs_at_pades_b_t_with_a_time_stamp_from_our_tsa() {
    let (run, s) = run_scenario("pades-bt", "ec", 1);
    let pdf = &run.pdfs[0];
    assert_eq!(pdf["mechanism"], "sha256_ecdsa");
    assert_eq!(pdf["subfilter"], "/ETSI.CAdES.detached", "{pdf}");
    let ts = &pdf["timestamp"];
    for key in ["intact", "valid", "trusted"] {
        assert_eq!(ts[key], true, "time-stamp {key}: {pdf}");
    }
    assert_eq!(ts["tsa"], "csc-server remote signing TSA", "{pdf}");
    assert_eq!(ts["md_algorithm"], "sha256", "{pdf}");
    // the server audited every token it gave pyHanko (pyHanko first asks for one over an
    // empty message to size the signature, then the real one), as the anonymous RFC 3161 client
    let issued: Vec<_> = crate::kit::audit_records(s.dir())
        .into_iter()
        .filter(|r| r.event == "timestamp.issue")
        .collect();
    assert!(!issued.is_empty(), "no timestamp.issue record");
    for r in &issued {
        assert_eq!(
            (r.actor.as_str(), r.outcome.as_str()),
            ("tsa", "success"),
            "{r:?}"
        );
        let detail: Value = serde_json::from_str(&r.detail).expect("detail");
        assert_eq!(detail["via"], "rfc3161", "{r:?}");
        assert_eq!(detail["serial"], r.subject.as_str(), "{r:?}");
    }
    let verdict = run_ok(csc(s.dir()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
}
