//! Roles on the command line (issue 14 "Roles"): `init` makes the first security officer,
//! `user add --role`, and every command acts as a role (`--as`, default: the role the command
//! needs), named in its audit records; a role that may not do a command is refused, exit 1,
//! and the refusal audited.

use std::path::Path;

use crate::common::*;
use crate::kit::audit_records;

fn fails(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn init(dir: &Path) {
    run_ok(csc(dir).arg("init"));
    run_ok(
        csc(dir)
            .args(["user", "add", "alice"])
            .env("CSC_PASSWORD", "correct horse battery"),
    );
}

#[test]
fn init_creates_the_first_security_officer_once_and_plain_init_still_works() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    // the former contract: `init` without options, no password asked
    let plain = run_ok(csc(&dir).arg("init"));
    assert_eq!(plain["securityOfficer"], serde_json::Value::Null);
    // the first security officer: default name, password from CSC_SO_PASSWORD
    let first = run_ok(
        csc(&dir)
            .args(["init", "--security-officer"])
            .env("CSC_SO_PASSWORD", "officer password 1"),
    );
    assert_eq!(first["securityOfficer"]["name"], "security-officer");
    assert_eq!(first["securityOfficer"]["created"], true);
    // idempotent
    let again = run_ok(
        csc(&dir)
            .arg("init")
            .env("CSC_SO_PASSWORD", "officer password 1"),
    );
    assert_eq!(again["securityOfficer"]["created"], false);
    // or named, the password on standard input
    let out = run_with_stdin(
        csc(&dir).args(["init", "--security-officer", "sofia"]),
        "officer password 2\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = audit_records(&dir);
    let created: Vec<_> = audit.iter().filter(|r| r.event == "user.create").collect();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(created.iter().all(|r| r.actor == "security-officer:cli"));
    // a signer's name cannot become a security officer
    run_ok(
        csc(&dir)
            .args(["user", "add", "alice"])
            .env("CSC_PASSWORD", "correct horse battery"),
    );
    let err = fails(
        csc(&dir)
            .args(["init", "--security-officer", "alice"])
            .env("CSC_SO_PASSWORD", "officer password 3"),
    );
    assert!(err.contains("exists as signer"), "{err}");
}

#[test]
fn every_command_acts_as_a_role_named_in_the_audit_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&dir);
    // defaults: the role the command needs
    run_ok(csc(&dir).args(["user", "disable", "alice"]));
    run_ok(csc(&dir).args([
        "client",
        "add",
        "app",
        "--redirect-uri",
        "https://app.example/cb",
    ]));
    run_ok(
        csc(&dir)
            .args(["user", "add", "olga", "--role", "operator"])
            .env("CSC_PASSWORD", "operator password"),
    );
    let audit = audit_records(&dir);
    let actor = |event: &str, subject: &str| {
        audit
            .iter()
            .find(|r| r.event == event && (subject.is_empty() || r.subject == subject))
            .map(|r| r.actor.clone())
            .expect(event)
    };
    assert_eq!(actor("user.create", "alice"), "operator:cli");
    assert_eq!(actor("user.disable", "alice"), "operator:cli");
    assert_eq!(actor("client.register", ""), "security-officer:cli");
    assert_eq!(actor("user.create", "olga"), "security-officer:cli");
    // `audit verify` as the auditor (its default) still reads every record
    assert_eq!(run_ok(csc(&dir).args(["audit", "verify"]))["intact"], true);
}

/// Table-driven: each `--as ROLE` against commands of each kind; refused commands exit 1 with
/// the reason, change nothing and are audited as `access.denied` naming the role.
#[test]
fn a_role_that_may_not_do_a_command_is_refused_and_audited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    init(&dir);
    let cases: &[(&str, &[&str], &[&str])] = &[
        // (command, allowed roles, its arguments)
        ("user.disable", &["operator"], &["user", "disable", "alice"]),
        ("user.enable", &["operator"], &["user", "enable", "alice"]),
        ("user.unlock", &["operator"], &["user", "unlock", "alice"]),
        (
            "client.register",
            &["security-officer"],
            &[
                "client",
                "add",
                "app",
                "--redirect-uri",
                "https://app.example/cb",
            ],
        ),
        ("client.list", &["security-officer"], &["client", "list"]),
        ("credential.list", &["operator"], &["credential", "list"]),
        ("audit.verify", &["auditor"], &["audit", "verify"]),
    ];
    for (action, allowed, args) in cases {
        for role in ["signer", "operator", "security-officer", "auditor"] {
            let before = audit_records(&dir).len();
            let out = csc(&dir)
                .args(["--as", role])
                .args(*args)
                .output()
                .expect("spawn");
            let after = audit_records(&dir);
            let new = after.get(before..).unwrap_or_default();
            if allowed.contains(&role) {
                assert!(
                    out.status.success(),
                    "{role} {action}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(new.iter().all(|r| r.event != "access.denied"), "{new:?}");
            } else {
                assert!(!out.status.success(), "{role} {action}");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains(&format!("the role {role} may not {action}")),
                    "{role} {action}: {err}"
                );
                assert_eq!(new.len(), 1, "{role} {action}: {new:?}");
                assert_eq!(new[0].event, "access.denied");
                assert_eq!(new[0].actor, format!("{role}:cli"));
                assert_eq!(new[0].outcome, "refused");
            }
        }
    }
    // a refused user add made no user: the operator adds signers, never an auditor
    let err = fails(
        csc(&dir)
            .args([
                "--as", "operator", "user", "add", "eve", "--role", "auditor",
            ])
            .env("CSC_PASSWORD", "auditor password"),
    );
    assert!(err.contains("may not user.create.auditor"), "{err}");
    assert!(
        !audit_records(&dir)
            .iter()
            .any(|r| r.event == "user.create" && r.subject == "eve")
    );
    // an unknown role is a usage error
    let err = fails(csc(&dir).args(["--as", "root", "credential", "list"]));
    assert!(err.contains("is not a role"), "{err}");
}

/// `restore` checks the role before it writes anything: an operator's restore leaves the
/// target directory as it was (the archive is never even read).
#[test]
fn a_restore_by_a_role_that_may_not_restore_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let err = fails(
        csc(&target)
            .args(["--as", "operator", "restore"])
            .arg(tmp.path().join("no-such-backup.tar")),
    );
    assert!(
        err.contains("the role operator may not backup.restore"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&target)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "restore wrote {left:?}");
}
