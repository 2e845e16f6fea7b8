//! The `csc-server` command contract, driven as operators and scripts drive it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use openssl::x509::X509;
use serde_json::Value;

use crate::common::*;

fn init_with_user(dir: &Path) {
    run_ok(csc(dir).arg("init"));
    run_ok(
        csc(dir)
            .args(["user", "add", "alice"])
            .env("CSC_PASSWORD", "correct horse battery"),
    );
}

fn create(dir: &Path, key: &str, extra: &[&str]) -> Value {
    run_ok(
        csc(dir)
            .args(["credential", "create", "alice", "--key", key])
            .args(extra)
            .env("CSC_PIN", "246810"),
    )
}

#[test]
fn init_is_idempotent_and_keeps_the_token_pin_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let first = run_ok(csc(&dir).arg("init"));
    assert_eq!(first["tokenCreated"], true);
    let second = run_ok(csc(&dir).arg("init"));
    assert_eq!(second["tokenCreated"], false);
    assert_eq!(first["caCertificate"], second["caCertificate"]);
    for f in ["token.pin", "token.so-pin"] {
        let mode = std::fs::metadata(dir.join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
    assert_eq!(mode & 0o077, 0, "data dir is private");
    assert!(dir.join("softhsm2.conf").exists() && dir.join("csc.db").exists());
}

#[test]
fn a_command_before_init_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = csc(&tmp.path().join("nothing"))
        .args(["credential", "list"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("csc-server init"), "{err}");
}

#[test]
fn credentials_of_every_key_type_come_with_a_dev_ca_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_with_user(dir);
    let ca_b64 = run_ok(csc(dir).arg("init"))["caCertificate"]
        .as_str()
        .expect("ca")
        .to_owned();
    let ca = X509::from_der(&decode(&ca_b64)).expect("ca der");
    let ca_key = ca.public_key().expect("ca key");
    for key in ["rsa-2048", "rsa-3072", "ec-p256", "ec-p384"] {
        let c = create(dir, key, &[]);
        assert_eq!(c["keyAlgo"], key);
        assert_eq!(c["SCAL"], "1");
        assert_eq!(c["multisign"], 1);
        assert!(c.get("otpauth").is_none());
        let cert = X509::from_der(&decode(c["certificate"].as_str().expect("cert"))).expect("der");
        assert!(cert.verify(&ca_key).expect("verify"), "{key}");
        assert_eq!(c["certificates"][1], ca_b64.as_str());
    }
    let otp = create(
        dir,
        "ec-p256",
        &["--scal", "2", "--multisign", "10", "--otp"],
    );
    assert_eq!(otp["SCAL"], "2");
    assert_eq!(otp["multisign"], 10);
    assert!(
        otp["otpauth"]
            .as_str()
            .expect("uri")
            .starts_with("otpauth://totp/")
    );

    let all = run_ok(csc(dir).args(["credential", "list"]));
    assert_eq!(all.as_array().expect("array").len(), 5);
    let mine = run_ok(csc(dir).args(["credential", "list", "alice"]));
    assert_eq!(mine.as_array().expect("array").len(), 5);
    let out = csc(dir)
        .args(["credential", "list", "bob"])
        .output()
        .expect("spawn");
    assert!(!out.status.success(), "unknown user is an error");

    // refused inputs
    let out = csc(dir)
        .args(["credential", "create", "alice", "--key", "rsa-1024"])
        .env("CSC_PIN", "246810")
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let out = csc(dir)
        .args(["credential", "create", "nobody", "--key", "ec-p256"])
        .env("CSC_PIN", "246810")
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}

#[test]
fn secrets_are_read_from_stdin_and_never_printed_or_stored_in_clear() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    run_ok(csc(dir).arg("init"));
    let out = run_with_stdin(
        csc(dir).args(["user", "add", "bob"]),
        "pa55word-from-stdin\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out2 = run_with_stdin(
        csc(dir).args(["credential", "create", "bob", "--key", "ec-p256"]),
        "97531864\n",
    );
    assert!(
        out2.status.success(),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
    let dup = run_with_stdin(csc(dir).args(["user", "add", "bob"]), "another-password\n");
    assert!(!dup.status.success(), "duplicate user refused");
    for o in [&out, &out2, &dup] {
        for secret in ["pa55word-from-stdin", "97531864", "another-password"] {
            assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
            assert!(!String::from_utf8_lossy(&o.stderr).contains(secret));
        }
    }
    let db = std::fs::read(dir.join("csc.db")).expect("db");
    let wal = std::fs::read(dir.join("csc.db-wal")).unwrap_or_default();
    for secret in [&b"pa55word-from-stdin"[..], b"97531864"] {
        assert!(!contains(&db, secret) && !contains(&wal, secret));
    }
    let empty = run_with_stdin(csc(dir).args(["user", "add", "carol"]), "");
    assert!(!empty.status.success(), "no password, no user");
}

#[test]
fn a_foreign_chain_is_refused_and_destroy_disables_the_credential() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_with_user(dir);
    let a = create(dir, "ec-p256", &[]);
    let b = create(dir, "ec-p256", &[]);
    let pem_of = |c: &Value| {
        let mut pem = Vec::new();
        for cert in c["certificates"].as_array().expect("chain") {
            let x = X509::from_der(&decode(cert.as_str().expect("b64"))).expect("der");
            pem.extend(x.to_pem().expect("pem"));
        }
        pem
    };
    let b_pem = tmp.path().join("b.pem");
    std::fs::write(&b_pem, pem_of(&b)).expect("write");
    let a_id = a["credentialID"].as_str().expect("id");
    let out = csc(dir)
        .args(["credential", "import-chain", a_id])
        .arg(&b_pem)
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the credential's key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a_pem = tmp.path().join("a.pem");
    std::fs::write(&a_pem, pem_of(&a)).expect("write");
    let imported = run_ok(
        csc(dir)
            .args(["credential", "import-chain", a_id])
            .arg(&a_pem),
    );
    assert_eq!(imported["certificates"], a["certificates"]);

    let destroyed = run_ok(csc(dir).args(["credential", "destroy", a_id]));
    assert_eq!(destroyed["status"], "disabled");
    let list = run_ok(csc(dir).args(["credential", "list", "alice"]));
    let a_now = list
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["credentialID"] == a_id)
        .expect("still listed");
    assert_eq!(a_now["status"], "disabled");
    let again = csc(dir)
        .args(["credential", "destroy", a_id])
        .output()
        .expect("spawn");
    assert!(!again.status.success(), "a key cannot be destroyed twice");

    let verdict = run_ok(csc(dir).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true);
    assert!(verdict["records"].as_i64().expect("count") >= 6);
}

#[test]
fn migrate_otp_moves_plain_totp_seeds_into_the_token_once() {
    // README "Upgrading": the one-time step for databases made before TOTP seeds moved into
    // the token
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_with_user(dir);
    let nothing = run_ok(csc(dir).args(["credential", "migrate-otp"]));
    assert_eq!(
        nothing,
        serde_json::json!({ "migrated": 0, "credentials": [], "failed": [] })
    );
    let a = create(dir, "ec-p256", &["--otp"]);
    let b = create(dir, "ec-p256", &["--otp"]);
    let (a_id, b_id) = (
        a["credentialID"].as_str().expect("id"),
        b["credentialID"].as_str().expect("id"),
    );
    let db = dir.join("csc.db");
    // as a database made before: a plain seed, and a verifier that is neither a seed nor a
    // token key; sealed by the first upgrade step
    set_otp_verifier(&db, a_id, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    set_otp_verifier(&db, b_id, "hsm-totp:v1:broken");
    as_before_row_integrity(&db);
    run_ok(csc(dir).args(["integrity", "seal"]));
    // the broken one is reported, exit 1, left alone; the seed is moved
    let out = csc(dir)
        .args(["credential", "migrate-otp"])
        .output()
        .expect("spawn");
    assert!(!out.status.success(), "a failure exits 1");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["migrated"], 1, "{report}");
    assert_eq!(report["credentials"], serde_json::json!([a_id]));
    assert_eq!(report["failed"][0]["credentialID"], b_id);
    assert!(otp_verifier(&db, a_id).starts_with("hsm-totp:v1:"));
    assert_eq!(otp_verifier(&db, b_id), "hsm-totp:v1:broken");
    assert_eq!(run_ok(csc(dir).args(["audit", "verify"]))["intact"], true);
}

#[test]
fn serve_answers_info_and_turns_bad_bodies_into_csc_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    run_ok(csc(dir).arg("init"));
    let mut cmd = csc(dir);
    cmd.arg("serve");
    let server = start(cmd);
    let (status, info) = post(&server.base, "/csc/v1/info", "{}");
    assert_eq!(status, 200);
    assert_eq!(info["specs"], "1.0.4.0");
    assert!(info["authType"].is_array() && info["methods"].is_array());
    let (status, err) = post(&server.base, "/csc/v1/info", "{not json");
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_request");
    assert!(err["error_description"].is_string());
    let (status, err) = post(&server.base, "/csc/v1/nothing", "{}");
    assert_eq!(status, 404);
    assert_eq!(err["error"], "invalid_request");
    // still serving
    let (status, _) = post(&server.base, "/csc/v1/info", "");
    assert_eq!(status, 200);
}

#[test]
fn demo_initialises_a_signer_and_serves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = csc(tmp.path());
    cmd.arg("demo");
    let started = Instant::now();
    let server = start(cmd);
    let demo: Value = serde_json::from_str(&server.first_stdout).expect("demo summary");
    assert_eq!(demo["user"], "demo");
    assert_eq!(demo["credentials"].as_array().expect("array").len(), 3);
    let (status, info) = post(&server.base, "/csc/v1/info", "{}");
    assert_eq!(status, 200);
    assert_eq!(info["specs"], "1.0.4.0");
    eprintln!("demo ready in {:?}", started.elapsed());
    drop(server);
    // a second demo on the same data dir reuses everything
    let mut cmd = csc(tmp.path());
    cmd.arg("demo");
    let server = start(cmd);
    let again: Value = serde_json::from_str(&server.first_stdout).expect("demo summary");
    assert_eq!(again["credentials"], demo["credentials"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs SQL directly on a data directory's SQLite database, behind the server's back.
pub(crate) fn tamper(dir: &Path, sql: &str) {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let url = dir.join("csc.db").display().to_string();
    let mut conn = SqliteConnection::establish(&url).expect("open db");
    for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
        diesel::sql_query(statement)
            .execute(&mut conn)
            .expect("tamper");
    }
}

#[test]
fn audit_verify_names_the_first_edited_deleted_or_reordered_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init_with_user(&dir);
    create(&dir, "ec-p256", &[]);
    create(&dir, "ec-p256", &[]);
    let intact = run_ok(csc(&dir).args(["audit", "verify"]));
    assert_eq!(intact["intact"], true, "{intact}");
    let records = intact["records"].as_i64().expect("records");
    assert!(records >= 6, "{intact}");

    let cases = [
        (
            "edit",
            "UPDATE audit_log SET outcome = 'refused' WHERE seq = 3",
            3,
        ),
        (
            "edit-actor",
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 5",
            5,
        ),
        ("delete", "DELETE FROM audit_log WHERE seq = 4", 4),
        (
            "reorder",
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -2",
            2,
        ),
        (
            "truncate",
            &format!("DELETE FROM audit_log WHERE seq = {records}"),
            records,
        ),
    ];
    for (name, sql, expected) in cases {
        let copy = tmp.path().join(name);
        copy_dir(&dir, &copy);
        tamper(&copy, sql);
        let out = csc(&copy)
            .args(["audit", "verify"])
            .output()
            .expect("spawn");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: tampering must fail verify"
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
        assert_eq!(report["intact"], false, "{name}");
        assert_eq!(report["firstBrokenRecord"], expected, "{name}: {report}");
        assert!(report["reason"].is_string());
    }
}

#[test]
fn integrity_seal_upgrades_an_old_database_once() {
    // issue 11: the documented upgrade step of a database made before row integrity
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init_with_user(&dir);
    let cred = create(&dir, "ec-p256", &[]);
    let id = cred["credentialID"]
        .as_str()
        .expect("credentialID")
        .to_owned();
    // a sealed database refuses to be sealed again
    let out = csc(&dir)
        .args(["integrity", "seal"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already sealed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    as_before_row_integrity(&dir.join("csc.db"));
    let listed = run_ok(csc(&dir).args(["credential", "list"]));
    assert!(
        !listed.to_string().contains(&id),
        "unsealed rows are not used: {listed}"
    );
    let report = run_ok(csc(&dir).args(["integrity", "seal"]));
    assert_eq!(report["sealed"]["credentials"], 1, "{report}");
    assert_eq!(report["setPinAgain"], serde_json::json!([]), "{report}");
    let listed = run_ok(csc(&dir).args(["credential", "list"]));
    assert!(listed.to_string().contains(&id), "{listed}");
    let audit = crate::kit::audit_records(&dir);
    assert!(audit.iter().any(|r| r.event == "integrity.seal"));
}

/// Issue 14: `credential disable`, `enable`, `rekey` (with `--csr` too) and `revoke` as
/// commands: each prints the credential as it is now, a revocation needs `--reason`, a revoked
/// credential is never enabled again, and `audit verify` passes after them.
#[test]
fn credential_lifecycle_commands_follow_the_contract() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init_with_user(dir);
    let id = create(dir, "ec-p256", &[])["credentialID"]
        .as_str()
        .expect("id")
        .to_owned();
    let run = |args: &[&str]| run_ok(csc(dir).args(["credential"]).args(args));
    assert_eq!(run(&["disable", &id])["status"], "disabled");
    assert_eq!(run(&["enable", &id])["status"], "enabled");
    let old_serial = run(&["list"])[0]["certificateSerial"].clone();
    let rekeyed = run(&["rekey", &id, "--key", "ec-p384"]);
    assert_eq!(rekeyed["credentialID"], id.as_str());
    assert_eq!(rekeyed["keyAlgo"], "ec-p384");
    assert_eq!(rekeyed["certificateStatus"], "valid");
    assert_eq!(rekeyed["oldKeyDestroyed"], true);
    assert_ne!(rekeyed["certificateSerial"], old_serial);
    let pending = run(&["rekey", &id, "--csr", "--subject", "CN=Alice Example"]);
    assert_eq!(pending["certificateStatus"], "pending");
    assert!(
        pending["csr"]
            .as_str()
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE REQUEST-----"))
    );
    // no reason: clap refuses before anything happens
    let out = csc(dir)
        .args(["credential", "revoke", &id])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let revoked = run(&["revoke", &id, "--reason", "superseded"]);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["keyDestroyed"], true);
    let out = csc(dir)
        .args(["credential", "enable", &id])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = run_ok(csc(dir).args(["audit", "verify"]));
    assert_eq!(verify["intact"], true, "{verify}");
    let events: Vec<String> = crate::kit::audit_records(dir)
        .into_iter()
        .filter(|r| r.subject == id)
        .map(|r| format!("{} {}", r.event, r.outcome))
        .collect();
    for want in [
        "credential.disable success",
        "credential.enable success",
        "credential.rekey success",
        "credential.csr success",
        "credential.revoke success",
        "credential.enable refused",
    ] {
        assert!(events.iter().any(|e| e == want), "{want} in {events:?}");
    }
}
