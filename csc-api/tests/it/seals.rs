//! An audit log an insider cannot rewrite (issue 11; Part II 3.2.2.4, Part I 7.1.4.3), through
//! the binary: the commands and `serve` seal the chain head in `DATA_DIR/audit-seals.jsonl`, and
//! `csc-server audit verify` checks the chain with the token and against those seals. The
//! insider here has the SQLite file and SQL, not the token.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::tamper;
use crate::common::*;

/// Every column of an audit record, as the insider reads it.
#[derive(Debug, Clone, diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    at: chrono::NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Text)]
    event: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    actor: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    subject: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    prev_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    hash: String,
}

fn stored(dir: &Path) -> Vec<Stored> {
    use diesel::{Connection, RunQueryDsl};
    let mut db = diesel::SqliteConnection::establish(&dir.join("csc.db").display().to_string())
        .expect("open db");
    diesel::sql_query("SELECT * FROM audit_log ORDER BY seq")
        .load(&mut db)
        .expect("audit records")
}

/// `(seq, hash)` of the last record.
fn head(dir: &Path) -> (i64, String) {
    let last = stored(dir).pop().expect("a record");
    (last.seq, last.hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash an insider without the token can compute: plain SHA-256 of the canonical bytes
/// (README "Audit log"; what every record carried before keyed links).
fn plain_hash(r: &Stored) -> String {
    fn push(buf: &mut Vec<u8>, bytes: &[u8]) {
        buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    let mut buf = Vec::new();
    push(&mut buf, b"csc-audit-log/v1");
    buf.extend_from_slice(&r.seq.to_be_bytes());
    let at = r.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    push(&mut buf, at.as_bytes());
    for field in [
        &r.event,
        &r.actor,
        &r.subject,
        &r.outcome,
        &r.detail,
        &r.prev_hash,
    ] {
        push(&mut buf, field.as_bytes());
    }
    hex(&openssl::sha::sha256(&buf))
}

/// Recomputes the chain from record `from` on with plain SHA-256, relinked, head fixed up.
fn rewrite_plain(dir: &Path, from: i64) {
    let mut prev = "0".repeat(64);
    let mut sql = String::new();
    for mut r in stored(dir) {
        if r.seq >= from {
            r.prev_hash = prev.clone();
            r.hash = plain_hash(&r);
            sql.push_str(&format!(
                "UPDATE audit_log SET prev_hash = '{}', hash = '{}' WHERE seq = {};",
                r.prev_hash, r.hash, r.seq
            ));
        }
        prev = r.hash;
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET hash = '{prev}' WHERE id = 1"
    ));
    tamper(dir, &sql);
}

fn seal_file(dir: &Path) -> PathBuf {
    dir.join("audit-seals.jsonl")
}

/// The seals in a data directory's seal file, in order.
fn seals(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(seal_file(dir))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a seal is one JSON object per line"))
        .collect()
}

/// `audit verify` with extra arguments: exit code and report.
fn verify(dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = csc(dir)
        .args(["audit", "verify"])
        .args(args)
        .output()
        .expect("spawn");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

#[track_caller]
fn assert_damaged_at(dir: &Path, args: &[&str], seq: i64) -> String {
    let (code, report) = verify(dir, args);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["firstBrokenRecord"], seq, "{report}");
    report["reason"].as_str().expect("reason").to_owned()
}

/// A data directory with alice and one credential, every command sealed.
fn setup(dir: &Path) {
    run_ok(csc(dir).arg("init"));
    run_ok(
        csc(dir)
            .args(["user", "add", "alice"])
            .env("CSC_PASSWORD", ALICE_PASSWORD),
    );
    run_ok(
        csc(dir)
            .args(["credential", "create", "alice", "--key", "ec-p256"])
            .env("CSC_PIN", PIN),
    );
}

#[test]
fn a_clean_log_and_its_seals_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    // init, user add and credential create each sealed the head they left
    let sealed = seals(dir);
    assert_eq!(sealed.len(), 3, "{sealed:?}");
    let (seq, hash) = head(dir);
    assert_eq!(
        (&sealed[2]["seq"], &sealed[2]["hash"]),
        (&seq.into(), &hash.into())
    );
    // a command that writes no record writes no seal
    run_ok(csc(dir).args(["credential", "list"]));
    assert_eq!(seals(dir).len(), 3);

    let (code, report) = verify(dir, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["intact"], true);
    assert_eq!(report["records"], seq);
    assert_eq!(report["seals"], 3);
    assert_eq!(report["keyedFrom"], 1);
    // a copy of the seal file elsewhere (--seals), and verify itself wrote no seal
    let copy = tmp.path().join("seals-copy.jsonl");
    std::fs::copy(seal_file(dir), &copy).expect("copy");
    let (code, report) = verify(dir, &["--seals", copy.to_str().expect("utf-8")]);
    assert_eq!((code, &report["seals"]), (Some(0), &3.into()), "{report}");
    assert_eq!(seals(dir).len(), 3);
    // a seal file that is not there is an error (exit 1), not "no seals"
    let out = csc(dir)
        .args(["audit", "verify", "--seals"])
        .arg(tmp.path().join("missing.jsonl"))
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.jsonl"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_tail_deleted_with_the_head_fixed_up_is_found_by_the_seals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    let (last, _) = head(dir);
    let keep = last - 2;
    let kept = stored(dir)
        .into_iter()
        .find(|r| r.seq == keep)
        .expect("record");
    tamper(
        dir,
        &format!(
            "DELETE FROM audit_log WHERE seq > {keep}; UPDATE audit_head SET seq = {keep}, hash = '{}' WHERE id = 1",
            kept.hash
        ),
    );
    // the chain alone cannot tell (an empty seal file: no seals)
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    let (code, report) = verify(dir, &["--seals", empty.to_str().expect("utf-8")]);
    assert_eq!(
        (code, &report["intact"]),
        (Some(0), &true.into()),
        "{report}"
    );
    // the seal of the last record can
    let reason = assert_damaged_at(dir, &[], keep + 1);
    assert!(reason.contains("deleted"), "{reason}");
}

#[test]
fn a_database_rolled_back_to_an_older_copy_is_found_by_the_seals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    run_ok(csc(&dir).arg("init"));
    run_ok(
        csc(&dir)
            .args(["user", "add", "alice"])
            .env("CSC_PASSWORD", ALICE_PASSWORD),
    );
    let (old_head, _) = head(&dir);
    // the backup: the database files only (no process has them open)
    let backup = tmp.path().join("backup");
    std::fs::create_dir(&backup).expect("mkdir");
    let db_files = ["csc.db", "csc.db-wal", "csc.db-shm"];
    for f in db_files {
        if dir.join(f).exists() {
            std::fs::copy(dir.join(f), backup.join(f)).expect("copy");
        }
    }
    // more records, sealed
    run_ok(
        csc(&dir)
            .args(["credential", "create", "alice", "--key", "ec-p256"])
            .env("CSC_PIN", PIN),
    );
    assert!(head(&dir).0 > old_head);
    let (code, _) = verify(&dir, &[]);
    assert_eq!(code, Some(0));
    // the old copy put back
    for f in db_files {
        let _ = std::fs::remove_file(dir.join(f));
        if backup.join(f).exists() {
            std::fs::copy(backup.join(f), dir.join(f)).expect("restore");
        }
    }
    assert_eq!(head(&dir).0, old_head);
    let reason = assert_damaged_at(&dir, &[], old_head + 1);
    assert!(reason.contains("rolled back"), "{reason}");
}

#[test]
fn an_edited_seal_line_is_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    let text = std::fs::read_to_string(seal_file(dir)).expect("seals");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // the second seal, moved one second earlier (its MAC covers the time)
    let mut seal: Value = serde_json::from_str(&lines[1]).expect("seal");
    let seq = seal["seq"].as_i64().expect("seq");
    let at = seal["at"].as_str().expect("at").to_owned();
    let earlier = chrono::NaiveDateTime::parse_from_str(&at, "%Y-%m-%dT%H:%M:%S%.6fZ")
        .expect("time")
        - chrono::Duration::seconds(1);
    seal["at"] = earlier.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().into();
    lines[1] = seal.to_string();
    std::fs::write(seal_file(dir), lines.join("\n") + "\n").expect("write");
    let reason = assert_damaged_at(dir, &[], seq);
    assert!(reason.contains("does not verify"), "{reason}");
}

#[test]
fn a_record_edited_and_the_chain_recomputed_without_the_token_is_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    tamper(dir, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
    rewrite_plain(dir, 3);
    // without the seals too: the chain itself needs the token
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    let reason = assert_damaged_at(dir, &["--seals", empty.to_str().expect("utf-8")], 3);
    assert!(reason.contains("audit key"), "{reason}");
    assert_damaged_at(dir, &[], 3);
}

#[test]
fn a_log_from_before_keyed_links_is_confirmed_once_by_audit_upgrade() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    // what the migration leaves of a log written by the older version: plain SHA-256 records,
    // the switch point after them, unconfirmed; and no seal file yet
    let (plain, _) = head(dir);
    rewrite_plain(dir, 1);
    tamper(
        dir,
        &format!(
            "UPDATE audit_head SET keyed_from = {}, keyed_mac = NULL WHERE id = 1",
            plain + 1
        ),
    );
    std::fs::remove_file(seal_file(dir)).expect("no seals");
    let reason = assert_damaged_at(dir, &[], 1);
    assert!(reason.contains("csc-server audit upgrade"), "{reason}");

    let upgraded = run_ok(csc(dir).args(["audit", "upgrade"]));
    assert_eq!(
        upgraded,
        serde_json::json!({ "keyedFrom": plain + 1, "plainRecords": plain, "confirmed": true })
    );
    let (code, report) = verify(dir, &[]);
    assert_eq!(code, Some(0), "{report}");
    // the upgrade is audited (and sealed)
    assert_eq!(report["records"], plain + 1);
    assert_eq!(stored(dir).pop().expect("record").event, "audit.upgrade");
    assert_eq!(seals(dir).len(), 1);
    let again = run_ok(csc(dir).args(["audit", "upgrade"]));
    assert_eq!(again["confirmed"], false);
}

/// Waits for `done`, polling; fails after `timeout` (generous: no assumption about speed).
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM (what systemd and `docker stop` send) and the exit status.
fn terminate(server: &mut Server) -> ExitStatus {
    let pid = server.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let mut status = None;
    wait_for("the server to stop", Duration::from_secs(120), || {
        status = server.child.try_wait().expect("wait");
        status.is_some()
    });
    status.expect("exited")
}

fn login_alice(server: &Server) {
    let api = Api::new(&server.base);
    api.login("alice", ALICE_PASSWORD);
}

#[test]
fn serve_seals_the_head_within_seconds_of_activity() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    let before = seals(dir).len();
    let mut cmd = csc(dir);
    cmd.arg("serve");
    let server = start(cmd);
    // the head at start is sealed
    wait_for("the seal at start", Duration::from_secs(60), || {
        seals(dir).len() > before
    });
    login_alice(&server);
    let (seq, hash) = head(dir);
    assert_eq!(stored(dir).pop().expect("record").event, "auth.login");
    wait_for(
        "a seal of the head after the login",
        Duration::from_secs(60),
        || {
            seals(dir)
                .last()
                .is_some_and(|s| s["seq"] == seq && s["hash"] == hash.as_str())
        },
    );
    // and verify agrees, while the server runs
    let (code, report) = verify(dir, &[]);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn serve_seals_the_head_when_stopped_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    setup(dir);
    let mut cmd = csc(dir);
    // no periodic seal during this test: only the one at start and the one at shutdown
    cmd.arg("serve").env("CSC_AUDIT_SEAL_INTERVAL_SECS", "3600");
    let mut server = start(cmd);
    let at_start = head(dir);
    wait_for("the seal at start", Duration::from_secs(60), || {
        seals(dir).last().is_some_and(|s| s["seq"] == at_start.0)
    });
    login_alice(&server);
    let (seq, hash) = head(dir);
    assert!(seq > at_start.0);
    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
    let last = seals(dir).pop().expect("a seal");
    assert_eq!((&last["seq"], &last["hash"]), (&seq.into(), &hash.into()));
    let (code, report) = verify(dir, &[]);
    assert_eq!(code, Some(0), "{report}");
}
