//! The auditor's export (issue 14 "export as JSON lines with the seals; verify"; JT2A Part I
//! 7.1.5 archive whose integrity is checkable, Part I 7.1.4.3 and 7.1.4.8 / Part II 3.2.2.4
//! changes to audit data detected), on a real SoftHSM2 token and a real SQLite database: an
//! export verifies with the seal key's public key alone, and every tampering — a record or seal
//! line edited, inserted, deleted or reordered, truncation, two exports spliced, another key —
//! fails at the line it names; a damaged log is never exported.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;

use cm_pkcs11::KeySpec;
use cm_pkcs11::testkit::TestToken;
use sam::{Actor, ExportError, NewCredentialRequest, Role, Sam, SamError, verify_audit_export};
use secrecy::SecretString;
use storage::{Scal, Store, StoreOptions};

struct Fixture {
    _token: TestToken,
    dir: tempfile::TempDir,
    sam: Sam,
    seals: PathBuf,
}

fn auditor() -> Actor {
    Actor::new("audrey", Role::Auditor)
}

fn operator() -> Actor {
    Actor::new("olga", Role::Operator)
}

/// A SAM with its seal key on the database at `url`, and `users` added with a seal after each
/// (and one before), so that exports carry seal lines.
fn with_users(
    token: &TestToken,
    dir: &std::path::Path,
    url: &str,
    users: &[&str],
) -> (Sam, PathBuf, sam::AuditSealer) {
    let store = Store::open_or_create(url, StoreOptions::default()).expect("store");
    let sam = Sam::open(&token.config, store, &dir.join("dev-ca.json"))
        .and_then(Sam::with_audit_seal_key)
        .expect("sam");
    let seals = dir.join("audit-seals.jsonl");
    let mut sealer = sam.audit_sealer(&seals).expect("sealer");
    sealer.seal_if_moved().expect("seal");
    for name in users {
        sam.add_user(
            name,
            &SecretString::from("a-long-password"),
            Role::Signer,
            &operator(),
        )
        .expect("user");
        sealer.seal_if_moved().expect("seal");
    }
    (sam, seals, sealer)
}

/// [`with_users`] on SQLite, and a credential (sealed too).
fn fixture() -> Fixture {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("csc.db").display());
    let (sam, seals, mut sealer) = with_users(&token, dir.path(), &url, &["alice", "bob"]);
    sam.create_credential(
        NewCredentialRequest {
            user_name: "alice".into(),
            spec: KeySpec::EcP256,
            scal: Scal::One,
            multisign: 1,
            pin: SecretString::from("123456"),
            otp: sam::OtpChoice::None,
            auth_mode: storage::AuthMode::Explicit,
            description: None,
        },
        &operator(),
    )
    .expect("credential");
    sealer.seal_if_moved().expect("seal");
    Fixture {
        _token: token,
        dir,
        sam,
        seals,
    }
}

impl Fixture {
    fn export(&self, from: Option<i64>, to: Option<i64>) -> String {
        let mut out = Vec::new();
        self.sam
            .export_audit_as(
                &auditor(),
                std::slice::from_ref(&self.seals),
                from,
                to,
                &mut out,
            )
            .expect("export");
        String::from_utf8(out).expect("utf-8")
    }

    fn pem(&self) -> String {
        self.sam
            .audit_seal_public_key_pem(&auditor())
            .expect("public key")
    }
}

fn verify(export: &str, pem: &str) -> Result<sam::ExportReport, ExportError> {
    verify_audit_export(&mut export.as_bytes(), pem.as_bytes())
}

fn lines(export: &str) -> Vec<String> {
    export.lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn kind(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    v["type"].as_str().expect("type").to_owned()
}

/// Index (0-based) of the first line of `kind` at or after `from`.
fn find(lines: &[String], kind_wanted: &str, from: usize) -> usize {
    (from..lines.len())
        .find(|&i| kind(&lines[i]) == kind_wanted)
        .unwrap_or_else(|| panic!("no {kind_wanted} line after {from}"))
}

fn refused(export: &str, pem: &str) -> ExportError {
    match verify(export, pem) {
        Err(e) => e,
        Ok(report) => panic!("a tampered export verified: {report:?}"),
    }
}

/// An export verifies with the public key alone (Part I 7.1.5: integrity checkable on the
/// archive); a range export too, anchored at the record before it; each export is audited as
/// `audit.export` by the auditor, with its range and counts.
#[test]
fn an_export_verifies_with_the_seal_key_alone_and_is_audited() {
    let f = fixture();
    let export = f.export(None, None);
    let report = verify(&export, &f.pem()).expect("intact");
    let all = f.sam.audit_records(0, 1000).expect("records");
    // the export's own record comes after the range it exports
    let exported = all.iter().filter(|r| r.event != "audit.export").count() as u64;
    assert_eq!(
        (report.from, report.to, report.records),
        (1, exported as i64, exported)
    );
    assert!(report.seals >= 4, "{report:?}");
    assert_eq!(report.anchor, storage::ZERO_HASH);
    // every record is there, as stored
    let records: Vec<serde_json::Value> = lines(&export)
        .iter()
        .filter(|l| kind(l) == "record")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (line, rec) in records.iter().zip(&all) {
        assert_eq!(line["seq"], rec.seq);
        assert_eq!(line["event"], rec.event.as_str());
        assert_eq!(line["actor"], rec.actor.as_str());
        assert_eq!(line["detail"], rec.detail.as_str());
        assert_eq!(line["prevHash"], rec.prev_hash.as_str());
        assert_eq!(line["hash"], rec.hash.as_str());
    }
    let audit = all.last().expect("audit.export");
    assert_eq!(audit.event, "audit.export");
    assert_eq!(audit.actor, "auditor:audrey");
    let detail: serde_json::Value = serde_json::from_str(&audit.detail).unwrap();
    assert_eq!(detail["from"], 1);
    assert_eq!(detail["to"], exported);
    assert_eq!(detail["records"], exported);
    assert_eq!(detail["seals"], report.seals);

    // a range: anchored at the hash of the record before it
    let part = f.export(Some(3), Some(5));
    let report = verify(&part, &f.pem()).expect("range intact");
    assert_eq!((report.from, report.to, report.records), (3, 5, 3));
    assert_eq!(report.anchor, all[1].hash);
}

/// Every kind of tampering fails, at the line that proves it (Part I 7.1.4.8: changes to audit
/// data detected).
#[test]
fn every_tampering_of_an_export_fails_at_its_line() {
    let f = fixture();
    let pem = f.pem();
    let original = lines(&f.export(None, None));
    let first_record = find(&original, "record", 0);
    let first_seal = find(&original, "seal", 0);
    let end = original.len() - 1;
    assert_eq!(kind(&original[end]), "end");
    // a record line followed by another record line, and the seal after them
    let r = (first_seal + 1..end)
        .find(|&i| kind(&original[i]) == "record" && kind(&original[i + 1]) == "record")
        .expect("two records in a row");
    let seal_after_r = find(&original, "seal", r);

    // a one-byte edit of a record: the next signed checkpoint fails, naming the lines it covers
    let mut t = original.clone();
    t[r] = t[r].replacen("\"event\":\"", "\"event\":\"X", 1);
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, seal_after_r as u64 + 1, "{e}");
    assert!(e.reason.contains(&format!("..={}", seal_after_r)), "{e}");
    assert!(e.reason.contains("not those the seal key signed"), "{e}");

    // a record's hash edited: the next record no longer links to it
    let mut t = original.clone();
    let v: serde_json::Value = serde_json::from_str(&t[r]).unwrap();
    let hash = v["hash"].as_str().unwrap().to_owned();
    t[r] = t[r].replace(&hash, &"0".repeat(64));
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, r as u64 + 2, "{e}");
    assert!(e.reason.contains("does not link"), "{e}");

    // a record line deleted, inserted twice, or two swapped
    let mut t = original.clone();
    t.remove(r);
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, r as u64 + 1, "{e}");
    assert!(e.reason.contains("was expected"), "{e}");
    let mut t = original.clone();
    t.insert(r, original[r].clone());
    assert_eq!(refused(&join(&t), &pem).line, r as u64 + 2);
    let mut t = original.clone();
    t.swap(r, r + 1);
    assert_eq!(refused(&join(&t), &pem).line, r as u64 + 1);

    // a seal line edited: its own signature fails
    let mut t = original.clone();
    t[first_seal] = t[first_seal].replacen("\"at\":\"20", "\"at\":\"19", 1);
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, first_seal as u64 + 1, "{e}");
    assert!(e.reason.contains("not signed by the seal key"), "{e}");

    // a seal line deleted: the end line's counts and digests no longer match
    let mut t = original.clone();
    t.remove(first_seal);
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, end as u64, "{e}");
    // ... inserted twice (a valid seal line, once too many)
    let mut t = original.clone();
    t.insert(first_seal, original[first_seal].clone());
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, end as u64 + 2, "{e}");
    // ... moved after another record
    let mut t = original.clone();
    let seal = t.remove(first_seal);
    let next_record = find(&t, "record", first_seal);
    t.insert(next_record + 1, seal);
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, next_record as u64 + 2, "{e}");
    assert!(e.reason.contains("not right after that record"), "{e}");

    // truncated: without its end line, and in the middle of a line
    let e = refused(&join(&original[..end]), &pem);
    assert_eq!(e.line, end as u64 + 1, "{e}");
    assert!(e.reason.contains("without its end line"), "{e}");
    let whole = join(&original);
    let e = refused(&whole[..whole.len() - 10], &pem);
    assert_eq!(e.line, end as u64 + 1, "{e}");
    // ... and after its end line, more
    let mut t = original.clone();
    t.push(original[first_record].clone());
    assert_eq!(refused(&join(&t), &pem).line, end as u64 + 2);

    // a header edited (the range, the anchor) or a line not in the server's exact form
    let mut t = original.clone();
    t[0] = t[0].replacen("\"from\":1", "\"from\":2", 1);
    assert!(verify(&join(&t), &pem).is_err());
    let mut t = original.clone();
    t[r] = t[r].replacen("{\"type\"", "{ \"type\"", 1);
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, r as u64 + 1, "{e}");
    assert!(e.reason.contains("form the server writes"), "{e}");
    let mut t = original.clone();
    t[r] = t[r].replacen("}", ",\"note\":\"x\"}", 1);
    assert_eq!(refused(&join(&t), &pem).line, r as u64 + 1);
}

/// Two exports spliced (the head of one, the tail of another), or one export truncated and
/// closed with the end line of a shorter one, fail: their header, anchor and digests disagree.
#[test]
fn spliced_exports_fail() {
    let f = fixture();
    let pem = f.pem();
    let head = f.sam.audit_records(0, 1000).expect("records").len() as i64;
    let a = lines(&f.export(Some(1), Some(4)));
    let b = lines(&f.export(Some(5), Some(head)));
    verify(&join(&a), &pem).expect("a");
    verify(&join(&b), &pem).expect("b");
    // a's header and records, then b's records and end
    let mut spliced: Vec<String> = a[..a.len() - 1].to_vec();
    spliced.extend_from_slice(&b[1..]);
    let e = refused(&join(&spliced), &pem);
    assert_eq!(e.line, a.len() as u64, "{e}");
    assert!(e.reason.contains("record 5 where record none"), "{e}");
    // the whole log, cut after record 4 and closed with a's end line
    let whole = lines(&f.export(None, None));
    let cut = (0..whole.len())
        .find(|&i| whole[i].contains("\"type\":\"record\",\"seq\":5,"))
        .expect("record 5");
    let mut t = whole[..cut].to_vec();
    t.push(a[a.len() - 1].clone());
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, 1, "{e}");
    // the same range exported twice: each verifies, their parts do not mix
    let a2 = lines(&f.export(Some(1), Some(4)));
    let mut t = a2[..a2.len() - 1].to_vec();
    t.push(a[a.len() - 1].clone());
    assert!(verify(&join(&t), &pem).is_err());
}

/// Another key's public key does not verify an export, and an export re-signed with another
/// key does not verify against the server's.
#[test]
fn another_key_fails() {
    let f = fixture();
    let export = f.export(None, None);
    let other = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let other_pem = String::from_utf8(other.public_key_to_pem().unwrap()).unwrap();
    let e = refused(&export, &other_pem);
    assert_eq!(e.line, 1, "{e}");
    assert!(e.reason.contains("seal key"), "{e}");
    let e = refused(&export, "not a key");
    assert_eq!(e.line, 0, "{e}");
}

/// The digests are public, so whoever edits a record can recompute every digest of the export
/// (done here independently of the server's code, from the format in `sam::audit_export`'s
/// documentation): only the seal key's signatures then stand in the way. This test fails if the
/// verifier stopped checking signatures.
#[test]
fn a_recomputed_export_fails_on_its_signatures() {
    use base64::Engine;
    let f = fixture();
    let pem = f.pem();
    let original = lines(&f.export(None, None));
    let first_seal = find(&original, "seal", 0);
    let r = find(&original, "record", first_seal);
    let mut t = original.clone();
    t[r] = t[r].replacen("\"event\":\"", "\"event\":\"X", 1);
    recompute(&mut t);
    let e = refused(&join(&t), &pem);
    let next_seal = find(&t, "seal", r);
    assert_eq!(e.line, next_seal as u64 + 1, "{e}");
    assert!(e.reason.contains("not signed by the seal key"), "{e}");
    // recomputing an untouched export reproduces it exactly: the test's digests are the format's
    let mut same = original.clone();
    recompute(&mut same);
    assert_eq!(same, original);
    // and with a seal line's signature replaced by a valid one over other content: refused
    let mut t = original.clone();
    let other: serde_json::Value =
        serde_json::from_str(&t[find(&t, "seal", first_seal + 1)]).unwrap();
    let own: serde_json::Value = serde_json::from_str(&t[first_seal]).unwrap();
    t[first_seal] = t[first_seal].replace(
        own["signature"].as_str().unwrap(),
        other["signature"].as_str().unwrap(),
    );
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(other["signature"].as_str().unwrap())
            .is_ok()
    );
    let e = refused(&join(&t), &pem);
    assert_eq!(e.line, first_seal as u64 + 1, "{e}");
}

fn lp(h: &mut openssl::sha::Sha256, x: &[u8]) {
    h.update(&(x.len() as u64).to_be_bytes());
    h.update(x);
}

fn step(domain: &[u8], prev: Option<&[u8]>, bytes: &[u8]) -> Vec<u8> {
    let mut h = openssl::sha::Sha256::new();
    lp(&mut h, domain);
    if let Some(p) = prev {
        h.update(p);
    }
    h.update(bytes);
    h.finish().to_vec()
}

/// Rewrites every digest of the export (seal lines' `digest`, the end line's `digest` and
/// `lines`) to match its lines as they are now; signatures are left as they were.
fn recompute(t: &mut [String]) {
    let header: serde_json::Value = serde_json::from_str(&t[0]).unwrap();
    let mut d = hex::decode(header["anchor"].as_str().unwrap()).unwrap();
    let mut l = step(b"csc-audit-export/1 lines", None, t[0].as_bytes());
    for line in t.iter_mut().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str().unwrap() {
            "record" => {
                d = step(b"csc-audit-export/1 record", Some(&d), line.as_bytes());
                l = step(b"csc-audit-export/1 lines", Some(&l), line.as_bytes());
            }
            "seal" => {
                *line = line.replace(v["digest"].as_str().unwrap(), &hex::encode(&d));
                l = step(b"csc-audit-export/1 lines", Some(&l), line.as_bytes());
            }
            _ => {
                *line = line
                    .replace(v["digest"].as_str().unwrap(), &hex::encode(&d))
                    .replace(v["lines"].as_str().unwrap(), &hex::encode(&l));
            }
        }
    }
}

/// A log that does not verify under the audit key is not exported (Part I 7.1.4.3): the error
/// names the first broken record and nothing is written; nor is a range outside the log; and
/// roles other than the auditor may not take the seal key's public key through the SAM.
#[test]
fn a_damaged_log_or_a_bad_range_is_not_exported() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let f = fixture();
    let mut out = Vec::new();
    let head = f.sam.audit_records(0, 1000).expect("records").len() as i64;
    for (from, to) in [(Some(0), None), (None, Some(head + 1)), (Some(5), Some(3))] {
        match f.sam.export_audit_as(
            &auditor(),
            std::slice::from_ref(&f.seals),
            from,
            to,
            &mut out,
        ) {
            Err(SamError::ExportRange(_)) => {}
            other => panic!("{from:?}..{to:?}: {other:?}"),
        }
    }
    assert!(out.is_empty());
    assert!(matches!(
        f.sam.audit_seal_public_key_pem(&operator()),
        Err(SamError::Forbidden { .. })
    ));

    let mut db =
        SqliteConnection::establish(f.dir.path().join("csc.db").to_str().unwrap()).unwrap();
    diesel::sql_query("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 3")
        .execute(&mut db)
        .unwrap();
    match f.sam.export_audit_as(
        &auditor(),
        std::slice::from_ref(&f.seals),
        None,
        None,
        &mut out,
    ) {
        Err(SamError::AuditLogBroken { seq, .. }) => assert_eq!(seq, 3),
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty(), "nothing of a damaged log is written");
}

/// The audit seal key is generated in the token once — by the first start after an upgrade when
/// the data directory is older than it — audited as `audit.seal_key.create`, and found again by
/// its label afterwards: sensitive, never extractable, generated in the token, sign-only
/// (Part III 1, 3, 16, 17).
#[test]
fn the_seal_key_is_made_once_in_the_token_and_found_again() {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("csc.db").display());
    let open = || {
        let store = Store::open(&url, StoreOptions::default()).expect("store");
        Sam::open(&token.config, store, &dir.path().join("dev-ca.json")).expect("sam")
    };
    Store::open_or_create(&url, StoreOptions::default()).expect("create");
    // a data directory from before the seal key: no key, no record, and no export
    let before = open();
    let created = |sam: &Sam| {
        sam.audit_records(0, 1000)
            .expect("records")
            .into_iter()
            .filter(|r| r.event == "audit.seal_key.create")
            .collect::<Vec<_>>()
    };
    assert!(created(&before).is_empty());
    assert!(matches!(
        before.export_audit_as(&auditor(), &[], None, None, &mut Vec::new()),
        Err(SamError::AuditSealKey(_))
    ));
    let first = before.with_audit_seal_key().expect("seal key");
    let records = created(&first);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].actor, "system");
    let pem = first.audit_seal_public_key_pem(&auditor()).expect("pem");
    // found again by its label at the next start: the same key, no second record
    let again = open().with_audit_seal_key().expect("seal key again");
    assert_eq!(
        again.audit_seal_public_key_pem(&auditor()).expect("pem"),
        pem
    );
    assert_eq!(created(&again).len(), 1);

    let hsm = token.open();
    let id = hsm
        .key_pair_labelled("csc-audit-seal")
        .expect("search")
        .expect("the key");
    let detail: serde_json::Value = serde_json::from_str(&records[0].detail).unwrap();
    assert_eq!(detail["keyId"], id.to_string());
    let attrs = hsm.key_attributes(&id).expect("attributes");
    assert!(attrs.sensitive && attrs.never_extractable && attrs.local && attrs.sign);
    assert!(!attrs.extractable && !attrs.decrypt && !attrs.modifiable && !attrs.copyable);
    assert_eq!(attrs.private_value_len, 0);
    assert_eq!(
        hsm.public_key(&id).expect("public").to_pem(),
        pem,
        "the PEM is the token key's"
    );
}

/// The same on PostgreSQL: a range read in pages from the other backend verifies, and an edit
/// made with SQL behind the server's back stops the export (Part I 7.1.5, 7.1.4.8).
#[test]
fn an_export_from_postgresql_verifies_and_a_damaged_one_is_refused() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let db = common::PgDb::create();
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (sam, seals, _) = with_users(&token, dir.path(), &db.url, &["alice", "bob", "carol"]);
    let mut out = Vec::new();
    let summary = sam
        .export_audit_as(
            &auditor(),
            std::slice::from_ref(&seals),
            Some(2),
            None,
            &mut out,
        )
        .expect("export");
    let pem = sam.audit_seal_public_key_pem(&auditor()).expect("pem");
    let report = verify_audit_export(&mut out.as_slice(), pem.as_bytes()).expect("intact");
    assert_eq!((report.from, report.to), (summary.from, summary.to));
    assert_eq!(
        (report.records, report.seals),
        (summary.count, summary.seals)
    );
    // the seal of the head at start (record 2) and one after each user
    assert_eq!(summary.seals, 4);

    let mut conn = PgConnection::establish(&db.url).expect("connect");
    diesel::sql_query("UPDATE audit_log SET actor = 'nobody' WHERE seq = 4")
        .execute(&mut conn)
        .expect("tamper");
    let mut out = Vec::new();
    match sam.export_audit_as(&auditor(), &[seals], None, None, &mut out) {
        Err(SamError::AuditLogBroken { seq, .. }) => assert_eq!(seq, 4),
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty());
}
