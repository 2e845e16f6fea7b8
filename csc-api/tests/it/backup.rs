//! Backups (issue 13, README "Backups"), through the binary: `csc-server backup FILE` copies a
//! data directory while `serve` signs, `csc-server restore FILE` brings it back in a fresh
//! directory whose audit log verifies and whose keys sign; a backup older than the live seals is
//! refused unless `--allow-rollback`; a PostgreSQL database goes through pg_dump / pg_restore
//! and still verifies (Part I 7.1.4.3: the audit log survives a restore intact, or says why).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::api::{PgDatabase, verifies};
use crate::common::*;

const ES256: &str = "1.2.840.10045.4.3.2";

/// The events of a data directory's audit log, in order (SQL of the test's own).
fn events(db: &Path) -> Vec<(i64, String, String)> {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        event: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let mut c = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    diesel::sql_query("SELECT seq, event, detail FROM audit_log ORDER BY seq")
        .load::<Row>(&mut c)
        .expect("audit records")
        .into_iter()
        .map(|r| (r.seq, r.event, r.detail))
        .collect()
}

fn stderr_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// A fresh data directory holding only the token PIN (kept apart from backups: README
/// "Backups"), and the given seal file's copy when one is given.
fn fresh_dir(pin_from: &Path, seals_from: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(pin_from.join("token.pin"), dir.path().join("token.pin")).expect("PIN");
    if let Some(seals) = seals_from {
        std::fs::copy(seals, dir.path().join("audit-seals.jsonl")).expect("seals");
    }
    dir
}

/// One authorize + signHash on the EC credential with a fresh hash; the signature is checked
/// against `cert`.
fn sign_once(api: &Api, token: &str, cred: &str, cert: &X509, n: u64) {
    let digest = openssl::sha::sha256(format!("document {n}").as_bytes());
    let hash = base64_of(&digest);
    let (status, auth) = api.call(
        "credentials/authorize",
        Some(token),
        &json!({ "credentialID": cred, "numSignatures": 1, "PIN": PIN, "hash": [hash] }),
    );
    assert_eq!(status, 200, "authorize: {auth}");
    let (status, signed) = api.call(
        "signatures/signHash",
        Some(token),
        &json!({ "credentialID": cred, "SAD": auth["SAD"], "hash": [hash], "signAlgo": ES256 }),
    );
    assert_eq!(status, 200, "signHash: {signed}");
    let sig = decode(signed["signatures"][0].as_str().expect("a signature"));
    assert!(
        verifies(cert, &digest, MessageDigest::sha256(), &sig, None),
        "the signature verifies with the credential's certificate"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn cert_of(api: &Api, token: &str, cred: &str) -> X509 {
    let (status, info) = api.call(
        "credentials/info",
        Some(token),
        &json!({ "credentialID": cred, "certificates": "single" }),
    );
    assert_eq!(status, 200, "{info}");
    X509::from_der(&decode(
        info["cert"]["certificates"][0].as_str().expect("cert"),
    ))
    .expect("der")
}

fn archive_names(file: &Path) -> Vec<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(file).expect("archive"));
    tar.entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn a_backup_taken_during_a_signing_load_restores_into_a_fresh_directory_that_verifies_and_signs() {
    let s = Signers::only(&["ec"]);
    let cred = s.id("ec").to_owned();
    let (server, api) = s.serve(&[]);
    let token = api.login("alice", ALICE_PASSWORD);
    let cert = cert_of(&api, &token, &cred);

    // the load: two signers' threads doing authorize + signHash until the backup is done
    let stop = Arc::new(AtomicBool::new(false));
    let signed = Arc::new(AtomicU64::new(0));
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let load: Vec<_> = (0..2u64)
        .map(|t| {
            let (stop, signed, first_tx) = (stop.clone(), signed.clone(), first_tx.clone());
            let (base, cred, cert) = (server.base.clone(), cred.clone(), cert.clone());
            std::thread::spawn(move || {
                let api = Api::new(&base);
                let token = api.login("alice", ALICE_PASSWORD);
                let mut n = t * 1_000_000;
                while !stop.load(Ordering::SeqCst) {
                    sign_once(&api, &token, &cred, &cert, n);
                    n += 1;
                    signed.fetch_add(1, Ordering::SeqCst);
                    let _ = first_tx.send(());
                }
            })
        })
        .collect();
    first_rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the load signs");
    let before = signed.load(Ordering::SeqCst);

    let archive = s.dir().join("backup.tar");
    let backup = run_ok(csc(s.dir()).arg("backup").arg(&archive));
    // the load ran from before the backup began until it finished, however long that took
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join()
            .expect("every signature of the load succeeded and verified");
    }
    assert!(before >= 1);
    let head = backup["auditHead"]["seq"].as_i64().expect("audit head");
    assert_eq!(backup["format"], "csc-server-backup/1");

    // what the archive holds, and what it never holds (README "Backups")
    let names = archive_names(&archive);
    assert_eq!(names[0], "manifest.json");
    assert_eq!(names[1], "csc.db");
    for want in ["dev-ca.json", "tsa.json"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("softhsm-tokens/")));
    for never in [
        "token.pin",
        "token.so-pin",
        "audit-seals.jsonl",
        "otp-outbox.log",
    ] {
        assert!(
            !names.iter().any(|n| n.ends_with(never)),
            "{never} is never in a backup: {names:?}"
        );
    }
    let bytes = std::fs::read(&archive).expect("archive");
    for pin_file in ["token.pin", "token.so-pin"] {
        let pin = std::fs::read_to_string(s.dir().join(pin_file)).expect("PIN file");
        assert!(
            !contains_secret(&bytes, pin.trim().as_bytes()),
            "{pin_file}"
        );
    }
    // the live log audited the backup before the copy was taken, so the copy holds it
    let live = events(&s.dir().join("csc.db"));
    let (created_seq, _, detail) = live
        .iter()
        .find(|(_, e, _)| e == "backup.create")
        .expect("backup.create in the live log")
        .clone();
    assert!(created_seq <= head);
    assert!(detail.contains("csc-server-backup/1"), "{detail}");
    drop(server);

    // restore into a fresh directory that holds only the token PIN
    let fresh = fresh_dir(s.dir(), None);
    let restored = run_ok(csc(fresh.path()).arg("restore").arg(&archive));
    assert_eq!(restored["audit"]["intact"], true, "{restored}");
    assert_eq!(restored["rolledBack"], false);
    assert_eq!(restored["auditHead"]["seq"], head);
    let verdict = run_ok(csc(fresh.path()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
    // the backup's records, then the restore's own
    assert_eq!(verdict["records"], head + 1);
    let log = events(&fresh.path().join("csc.db"));
    let (last_seq, last_event, last_detail) = log.last().expect("records").clone();
    assert_eq!(
        (last_seq, last_event.as_str()),
        (head + 1, "backup.restore")
    );
    assert!(
        last_detail.contains("\"rolledBack\":false"),
        "{last_detail}"
    );
    assert!(log.iter().any(|(_, e, _)| e == "backup.create"));
    assert!(
        log.iter().any(|(_, e, _)| e == "signature.sign_hash"),
        "the load's signatures before the copy are in it"
    );
    assert_eq!(
        restored["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter(|f| f
                .as_str()
                .is_some_and(|f| !f.starts_with("softhsm-tokens/")))
            .count(),
        3,
        "csc.db, dev-ca.json, tsa.json: {restored}"
    );

    // and it signs: the same key in the restored token, the same certificate
    let (server, api) = {
        let mut cmd = csc(fresh.path());
        cmd.arg("serve");
        let server = start(cmd);
        let api = Api::new(&server.base);
        (server, api)
    };
    let token = api.login("alice", ALICE_PASSWORD);
    let restored_cert = cert_of(&api, &token, &cred);
    assert_eq!(
        restored_cert.to_der().expect("der"),
        cert.to_der().expect("der")
    );
    sign_once(&api, &token, &cred, &restored_cert, 42);
    drop(server);
    let verdict = run_ok(csc(fresh.path()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
}

/// `(seq, line)` of the highest record a seal file seals (its first line naming it).
fn highest_seal(path: &Path) -> (i64, usize) {
    let text = std::fs::read_to_string(path).expect("seal file");
    let mut best = (-1, 0);
    for (i, line) in text.lines().enumerate() {
        let seal: Value = serde_json::from_str(line).expect("a seal");
        let seq = seal["seq"].as_i64().expect("seq");
        if seq > best.0 {
            best = (seq, i + 1);
        }
    }
    best
}

#[test]
fn restore_refuses_a_backup_older_than_the_live_seals_unless_allow_rollback_is_given() {
    let s = Signers::only(&["ec"]);
    let old = s.dir().join("old.tar");
    let backup = run_ok(csc(s.dir()).arg("backup").arg(&old));
    let head = backup["auditHead"]["seq"].as_i64().expect("head");
    // the live server goes on: an operator act, sealed in the live seal file
    run_ok(
        csc(s.dir())
            .args(["user", "add", "carol"])
            .env("CSC_PASSWORD", "carol-password"),
    );
    let live_seals = s.dir().join("audit-seals.jsonl");
    let (sealed, line) = highest_seal(&live_seals);
    assert!(sealed > head);

    // the target holds the live seals (the file kept apart from the database, brought back)
    let target = fresh_dir(s.dir(), Some(&live_seals));
    let seals = target.path().join("audit-seals.jsonl");
    let out = csc(target.path())
        .arg("restore")
        .arg(&old)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_line(&out),
        format!(
            "error: the backup ends at audit record {head}, older than record {sealed} sealed on \
             line {line} of {}: restoring it would roll the audit log back (pass \
             --allow-rollback to restore it anyway)",
            seals.display()
        )
    );
    assert!(out.stdout.is_empty());
    // nothing was written
    let mut left: Vec<String> = std::fs::read_dir(target.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["audit-seals.jsonl", "token.pin"]);

    // with the flag: restored, the rolled-back seal file moved aside, the act audited
    let restored = run_ok(
        csc(target.path())
            .arg("restore")
            .arg(&old)
            .arg("--allow-rollback"),
    );
    assert_eq!(restored["rolledBack"], true, "{restored}");
    assert_eq!(restored["audit"]["intact"], true, "{restored}");
    let aside = PathBuf::from(restored["sealsMovedTo"].as_str().expect("moved aside"));
    assert!(
        aside
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("audit-seals.jsonl.rolled-back-")),
        "{}",
        aside.display()
    );
    assert_eq!(
        std::fs::read(&aside).expect("old seals"),
        std::fs::read(&live_seals).expect("live seals")
    );
    let verdict = run_ok(csc(target.path()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
    let log = events(&target.path().join("csc.db"));
    let (_, event, detail) = log.last().expect("records").clone();
    assert_eq!(event, "backup.restore");
    let detail: Value = serde_json::from_str(&detail).expect("detail");
    assert_eq!(detail["allowRollback"], true);
    assert_eq!(detail["rolledBack"], true);
    assert_eq!(detail["liveSealedRecord"], sealed);
    assert_eq!(detail["auditHead"]["seq"], head);
    // the old seals still tell what was lost
    let out = csc(target.path())
        .args(["audit", "verify", "--seals"])
        .arg(&aside)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["intact"], false);
    assert_eq!(report["firstBrokenRecord"], head + 1);

    // restoring into a directory that is not fresh is refused
    let out = csc(target.path())
        .arg("restore")
        .arg(&old)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_line(&out),
        format!(
            "error: {} exists: restore writes only into a fresh data directory",
            target.path().join("csc.db").display()
        )
    );

    // a damaged archive (one byte of the database copy changed) is refused, nothing left behind
    let damaged = s.dir().join("damaged.tar");
    let mut bytes = std::fs::read(&old).expect("archive");
    let db_offset = tar::Archive::new(std::fs::File::open(&old).expect("archive"))
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .find(|e| e.path().expect("path").to_str() == Some("csc.db"))
        .map(|e| e.raw_file_position() + e.size() / 2)
        .expect("csc.db in the archive");
    bytes[usize::try_from(db_offset).expect("offset")] ^= 0x01;
    std::fs::write(&damaged, bytes).expect("write");
    let clean = fresh_dir(s.dir(), None);
    let out = csc(clean.path())
        .arg("restore")
        .arg(&damaged)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_line(&out),
        "error: csc.db in the archive does not match its manifest: the backup is damaged"
    );
    let left: Vec<_> = std::fs::read_dir(clean.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["token.pin"]);

    // a backup of a quiet server (nothing after it) restores beside its seals without the flag:
    // moving a data directory to another host loses nothing
    let newest = s.dir().join("newest.tar");
    let backup = run_ok(csc(s.dir()).arg("backup").arg(&newest));
    let (sealed, _) = highest_seal(&live_seals);
    assert_eq!(backup["auditHead"]["seq"], sealed);
    let moved = fresh_dir(s.dir(), Some(&live_seals));
    let restored = run_ok(csc(moved.path()).arg("restore").arg(&newest));
    assert_eq!(restored["rolledBack"], false);
    assert_eq!(restored["audit"]["intact"], true, "{restored}");
    assert!(
        restored["audit"]["seals"].as_u64().expect("seals") >= 3,
        "the live seals were checked against the restored log: {restored}"
    );
}

/// The PostgreSQL client tools of the server's major version or later: PATH, else Debian's.
fn pg_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[test]
fn a_postgres_database_dumped_and_restored_with_pg_dump_and_pg_restore_verifies() {
    let db = PgDatabase::new();
    let s = Signers::with_env_only(&[("CSC_DATABASE_URL", db.url.as_str())], &["ec"]);
    let env = [("CSC_DATABASE_URL", db.url.as_str())];
    let cred = s.id("ec").to_owned();
    let (server, api) = s.serve(&env);
    let token = api.login("alice", ALICE_PASSWORD);
    let cert = cert_of(&api, &token, &cred);
    sign_once(&api, &token, &cred, &cert, 1);
    sign_once(&api, &token, &cred, &cert, 2);
    drop(server);

    // `backup` is for SQLite; it says what to use instead
    let out = csc(s.dir())
        .envs(env)
        .arg("backup")
        .arg(s.dir().join("x.tar"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_line(&out),
        "error: the database is PostgreSQL: back it up with pg_dump (README \"Backups\"); \
         `csc-server backup` copies SQLite databases"
    );
    let before = run_ok(csc(s.dir()).envs(env).args(["audit", "verify"]));
    assert_eq!(before["intact"], true, "{before}");

    // README "Backups": pg_dump -Fc, then pg_restore into a new database
    let dump = s.dir().join("csc.pgdump");
    let status = std::process::Command::new(pg_tool("pg_dump"))
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(&dump)
        .arg(format!("--dbname={}", db.url))
        .status()
        .expect("pg_dump");
    assert!(status.success());
    let restored_db = PgDatabase::new();
    let status = std::process::Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .arg(format!("--dbname={}", restored_db.url))
        .arg(&dump)
        .status()
        .expect("pg_restore");
    assert!(status.success());
    let renv = [("CSC_DATABASE_URL", restored_db.url.as_str())];
    let after = run_ok(csc(s.dir()).envs(renv).args(["audit", "verify"]));
    assert_eq!(after["intact"], true, "{after}");
    assert_eq!(after["records"], before["records"]);
    assert!(after["seals"].as_u64().expect("seals") >= 1, "{after}");

    // and the restored database serves and signs with the same token
    let (server, api) = s.serve(&renv);
    let token = api.login("alice", ALICE_PASSWORD);
    sign_once(&api, &token, &cred, &cert, 3);
    drop(server);
    let verdict = run_ok(csc(s.dir()).envs(renv).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
}
