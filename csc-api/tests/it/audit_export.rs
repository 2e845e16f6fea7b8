//! The auditor's export through the binary (issue 14: "an auditor's export verifies against the
//! seals on another machine (a fresh data directory with only the export and the public seal
//! key)"; JT2A Part I 7.1.5 archive whose integrity is checkable, Part I 7.1.4.6 only auditors
//! read audit records, Part I 7.1.4.8 / Part II 3.2.2.4 changes to audit data detected):
//! `audit export` and `audit seal-key` on the server's host, `audit verify-export` anywhere,
//! without a token or a database.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::*;
use crate::oauth2::{sign_hash, signer_cert, verifies};

/// ecdsa-with-SHA256.
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// `csc-server --data-dir DIR audit verify-export FILE --seal-key PEM`: (exit status, the JSON
/// on standard output, standard error).
fn verify_export(dir: &Path, file: &Path, pem: &Path) -> (bool, Value, String) {
    let out = csc(dir)
        .args(["audit", "verify-export"])
        .arg(file)
        .arg("--seal-key")
        .arg(pem)
        .output()
        .expect("spawn");
    let stdout: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("stdout: {}", String::from_utf8_lossy(&out.stdout)));
    (
        out.status.success(),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Users, a credential and a signature on the server's host; the auditor's `audit export` and
/// `audit seal-key`; then, in a fresh data directory holding only those two files, `audit
/// verify-export` succeeds, a one-byte edit of a record fails naming the lines it blames, and the
/// directory is still without a token or a database afterwards (as is a data directory that did
/// not exist).
#[test]
fn an_auditors_export_verifies_on_another_machine_with_only_the_export_and_the_seal_key() {
    let signers = Signers::only(&["ec"]);
    let dir = signers.dir();
    let cred = signers.id("ec").to_owned();
    let digest = openssl::sha::sha256(b"a contract").to_vec();
    {
        let (_server, api) = signers.serve(&[]);
        let token = api.login("alice", ALICE_PASSWORD);
        let (status, auth) = api.call(
            "credentials/authorize",
            Some(&token),
            &json!({ "credentialID": cred, "numSignatures": 1,
                     "hash": [STANDARD.encode(&digest)], "PIN": PIN }),
        );
        assert_eq!(status, 200, "{auth}");
        let sad = auth["SAD"].as_str().expect("SAD");
        let (status, signed) = sign_hash(
            &api,
            &token,
            &cred,
            sad,
            std::slice::from_ref(&digest),
            ECDSA_SHA256,
        );
        assert_eq!(status, 200, "{signed}");
        let signature = decode(signed["signatures"][0].as_str().expect("signature"));
        assert!(verifies(
            &signer_cert(&api, &token, &cred),
            &digest,
            &signature
        ));
    }

    // on the server's host: the export (as the auditor, the default) and the public key
    let host_out = tempfile::tempdir().expect("tempdir");
    let export = host_out.path().join("export.jsonl");
    let summary = run_ok(csc(dir).args(["audit", "export", "--out"]).arg(&export));
    assert_eq!(summary["exported"], true, "{summary}");
    assert_eq!(summary["from"], 1);
    assert!(summary["seals"].as_u64().expect("seals") >= 1, "{summary}");
    let key = csc(dir)
        .args(["audit", "seal-key"])
        .output()
        .expect("spawn");
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let pem = String::from_utf8(key.stdout).expect("pem");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    // an operator may not export the log (Part I 7.1.4.6)
    let refused = csc(dir)
        .args(["--as", "operator", "audit", "export"])
        .output()
        .expect("spawn");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the role operator may not audit.export"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let text = std::fs::read_to_string(&export).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    let signed_line = lines
        .iter()
        .position(|l| l.contains("\"event\":\"signature.sign_hash\""))
        .expect("the signature's record is exported");
    assert!(lines[signed_line].contains(&cred), "{}", lines[signed_line]);
    assert_eq!(
        summary["to"],
        lines
            .iter()
            .filter(|l| l.contains("\"type\":\"record\""))
            .count()
    );

    // another machine: a fresh data directory with only the export and the public key
    let fresh = tempfile::tempdir().expect("tempdir");
    let there = fresh.path();
    std::fs::copy(&export, there.join("export.jsonl")).expect("copy");
    std::fs::write(there.join("seal.pem"), &pem).expect("pem");
    let (ok, report, stderr) =
        verify_export(there, &there.join("export.jsonl"), &there.join("seal.pem"));
    assert!(ok, "{report} {stderr}");
    assert_eq!(report["intact"], true);
    assert_eq!(report["records"], summary["records"]);
    assert_eq!(report["seals"], summary["seals"]);
    assert_eq!(report["to"], summary["to"]);

    // a one-byte edit of the signature's record
    let mut edited = lines.iter().map(|l| format!("{l}\n")).collect::<Vec<_>>();
    edited[signed_line] = edited[signed_line].replacen("\"outcome\":\"s", "\"outcome\":\"S", 1);
    assert_ne!(edited[signed_line], format!("{}\n", lines[signed_line]));
    std::fs::write(there.join("edited.jsonl"), edited.concat()).expect("write");
    let (ok, report, stderr) =
        verify_export(there, &there.join("edited.jsonl"), &there.join("seal.pem"));
    assert!(!ok, "{report}");
    assert_eq!(report["intact"], false);
    let line = report["line"].as_u64().expect("line");
    let edited_line = signed_line as u64 + 1;
    assert!(line > edited_line, "{report}");
    assert!(stderr.contains(&format!("line {line}:")), "{stderr}");
    // the lines the failed checkpoint blames include the edited one
    let reason = report["reason"].as_str().expect("reason");
    let blamed = reason
        .split_once(": line")
        .map(|(_, s)| s.trim_start_matches('s').trim_start())
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("no lines blamed: {reason}"));
    let (first, last) = blamed.split_once("..=").unwrap_or((blamed, blamed));
    let (first, last): (u64, u64) = (first.parse().expect("A"), last.parse().expect("B"));
    assert!(first <= edited_line && edited_line <= last, "{reason}");
    std::fs::remove_file(there.join("edited.jsonl")).expect("rm");

    // nothing of a server was made there: no token, no database, no configuration
    assert_eq!(names_in(there), ["export.jsonl", "seal.pem"]);
    let missing = there.join("no-such-data-dir");
    let (ok, _, stderr) = verify_export(
        &missing,
        &there.join("export.jsonl"),
        &there.join("seal.pem"),
    );
    assert!(ok, "{stderr}");
    assert!(!missing.exists());

    // a range to standard output (the summary then on standard error), anchored where it starts
    let part = csc(dir)
        .args(["audit", "export", "--from", "2", "--to", "3"])
        .output()
        .expect("spawn");
    assert!(
        part.status.success(),
        "{}",
        String::from_utf8_lossy(&part.stderr)
    );
    let part_text = String::from_utf8(part.stdout).expect("utf-8");
    let header: Value = serde_json::from_str(part_text.lines().next().expect("header")).unwrap();
    assert_eq!(
        (header["from"].as_i64(), header["to"].as_i64()),
        (Some(2), Some(3))
    );
    let record_1: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(header["anchor"], record_1["hash"]);
    std::fs::write(there.join("part.jsonl"), &part_text).expect("write");
    let (ok, report, stderr) =
        verify_export(there, &there.join("part.jsonl"), &there.join("seal.pem"));
    assert!(ok, "{report} {stderr}");
    assert_eq!(report["records"], 2);

    // a log edited behind the server's back is not exported: exit 1, the record named, no file
    crate::cli::tamper(dir, "UPDATE audit_log SET outcome = 'forged' WHERE seq = 2");
    let damaged = host_out.path().join("damaged.jsonl");
    let out = csc(dir)
        .args(["audit", "export", "--out"])
        .arg(&damaged)
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the audit log is damaged at record 2"),
        "{stderr}"
    );
    assert!(!damaged.exists());
    assert!(!damaged.with_extension("partial").exists());
}
