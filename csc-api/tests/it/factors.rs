//! Activation factors against the real app in process (SoftHSM2 + SQLite, [`crate::kit`]): PIN
//! lockout and the operator's unlock, login lockout, OTP single use (offline TOTP and online codes),
//! credentials/sendOTP never leaking the code, the webhook notifier, and SCAL 2 never activated
//! by one factor (JT2A Part I 7.1.2.5.1, 3.5.2; spec §11.6, §11.8).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_api::config::OtpChannel;
use openssl::hash::MessageDigest;
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::Kit;

fn sha256(data: &[u8]) -> String {
    STANDARD.encode(openssl::sha::sha256(data))
}

/// The stored `code_hash` of a credential's pending online OTP, read with SQL of the test's own.
fn stored_online_otp(db: &std::path::Path, credential: &str) -> Vec<u8> {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        code_hash: Vec<u8>,
    }
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    let row: Row = diesel::sql_query("SELECT code_hash FROM online_otps WHERE credential_id = ?")
        .bind::<diesel::sql_types::Text, _>(credential)
        .get_result(&mut conn)
        .expect("the pending OTP row");
    row.code_hash
}

fn authorize(k: &Kit, token: &str, body: Value) -> (u16, Value) {
    k.call("credentials/authorize", Some(token), &body)
}

fn events(k: &Kit, event: &str) -> Vec<crate::kit::AuditRow> {
    k.audit_records()
        .into_iter()
        .filter(|r| r.event == event)
        .collect()
}

#[test]
fn the_pin_locks_after_n_failures_refuses_the_right_pin_and_only_an_unlock_lifts_it() {
    // Part I 7.1.2.5.1: lock after too many failures until an administrator unlocks
    let k = Kit::with(|c| c.max_factor_failures = 3);
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let body = |pin: &str| json!({ "credentialID": rsa, "numSignatures": 1, "PIN": pin });
    for _ in 0..3 {
        assert_error(
            &authorize(&k, &alice, body("000000")),
            400,
            "invalid_pin",
            "The PIN is invalid",
        );
    }
    for pin in [PIN, "000000"] {
        assert_error(
            &authorize(&k, &alice, body(pin)),
            400,
            "invalid_request",
            "PIN locked",
        );
    }
    // another credential of the same signer is not affected
    let (status, _) = authorize(
        &k,
        &alice,
        json!({ "credentialID": k.id("ec"), "numSignatures": 1, "PIN": PIN }),
    );
    assert_eq!(status, 200);
    let locks = events(&k, "factor.lock");
    assert_eq!(locks.len(), 1, "the lock is audited once");
    assert_eq!(
        (locks[0].actor.as_str(), locks[0].subject.as_str()),
        ("alice", rsa)
    );

    // the operator unlocks, audited; the right PIN works again
    let out = csc_api::admin::credential_unlock(k.sam(), rsa).expect("credential unlock");
    assert_eq!(out["unlocked"], json!(["pin"]));
    let (status, got) = authorize(&k, &alice, body(PIN));
    assert_eq!(status, 200, "{got}");
    let unlocks = events(&k, "credential.unlock");
    assert_eq!(unlocks.len(), 1);
    assert_eq!(unlocks[0].actor, "operator:cli");
    // unlocking an unknown credential is an error
    assert!(
        csc_api::admin::credential_unlock(k.sam(), "00000000-0000-7000-8000-000000000000").is_err()
    );
    assert!(k.audit_intact());
}

#[test]
fn failed_logins_lock_the_user_even_against_the_right_password_until_unlocked() {
    let k = Kit::with(|c| c.max_login_failures = 3);
    let login = |pw: &str| k.login_with("bob", pw, &json!({}));
    for _ in 0..3 {
        assert_error(
            &login("wrong-password"),
            400,
            "authentication_error",
            "An error occurred during authentication process",
        );
    }
    // locked: the right password is refused with the same answer
    assert_error(
        &login(BOB_PASSWORD),
        400,
        "authentication_error",
        "An error occurred during authentication process",
    );
    // alice is not affected
    k.login("alice", ALICE_PASSWORD);
    assert_eq!(events(&k, "user.lock").len(), 1);
    let out = csc_api::admin::user_unlock(k.sam(), "bob").expect("user unlock");
    assert_eq!(
        (out["wasLocked"].clone(), out["locked"].clone()),
        (json!(true), json!(false))
    );
    let (status, _) = login(BOB_PASSWORD);
    assert_eq!(status, 200);
    let unlocks = events(&k, "user.unlock");
    assert_eq!(
        (unlocks.len(), unlocks[0].subject.as_str()),
        (1, "bob"),
        "the unlock is audited"
    );
}

/// Count first (Part I 7.1.2.5.1): 32 concurrent credentials/authorize calls with a wrong PIN
/// against the default limit of 5, through the app: every one refused (`invalid_pin` or `PIN
/// locked`), exactly 5 PINs verified (counted where the SAM compares a PIN with its verifier),
/// one `factor.lock` record; then the right PIN is refused as locked, unverified.
#[test]
fn thirty_two_concurrent_wrong_pins_are_verified_at_most_five_times() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let body = |pin: &str| json!({ "credentialID": rsa, "numSignatures": 1, "PIN": pin });
    let before = k.sam().secret_checks().pins;
    let reqs = (0..32)
        .map(|_| k.csc_request("credentials/authorize", Some(&alice), &body("000000")))
        .collect();
    let answers: Vec<(u16, Value)> = k.send_all(reqs).iter().map(|r| r.pair()).collect();
    let wrong = answers
        .iter()
        .filter(|a| a.0 == 400 && a.1["error"] == "invalid_pin")
        .count();
    let locked = answers
        .iter()
        .filter(|a| a.0 == 400 && a.1["error_description"] == "PIN locked")
        .count();
    assert_eq!((wrong, locked), (5, 27), "{answers:?}");
    assert_eq!(k.sam().secret_checks().pins - before, 5, "PINs verified");
    assert_eq!(events(&k, "factor.lock").len(), 1);
    assert_error(
        &authorize(&k, &alice, body(PIN)),
        400,
        "invalid_request",
        "PIN locked",
    );
    assert_eq!(k.sam().secret_checks().pins - before, 5);
    assert!(k.audit_intact());
}

/// The same for auth/login: 32 concurrent wrong passwords for bob against the default limit of
/// 5, exactly 5 verified, every answer the one authentication error, one `user.lock` record;
/// then bob's right password is refused too, unverified.
#[test]
fn thirty_two_concurrent_wrong_passwords_are_verified_at_most_five_times() {
    // every guess waits for its turn of the password gate: this test is about the lockout
    let k = Kit::with(|c| {
        c.login_limits = sam::LoginLimits {
            concurrency: 4,
            queue: 32,
        }
    });
    let before = k.sam().secret_checks().passwords;
    let reqs = (0..32)
        .map(|_| {
            k.post("/csc/v1/auth/login")
                .insert_header(("authorization", crate::kit::basic("bob", "wrong-password")))
                .set_json(json!({}))
        })
        .collect();
    for answer in k.send_all(reqs) {
        assert_error(
            &answer.pair(),
            400,
            "authentication_error",
            "An error occurred during authentication process",
        );
    }
    assert_eq!(
        k.sam().secret_checks().passwords - before,
        5,
        "passwords verified"
    );
    assert_eq!(events(&k, "user.lock").len(), 1);
    assert_error(
        &k.login_with("bob", BOB_PASSWORD, &json!({})),
        400,
        "authentication_error",
        "An error occurred during authentication process",
    );
    assert_eq!(k.sam().secret_checks().passwords - before, 5);
}

/// RFC 4648 base32 without padding.
fn base32(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in s.trim_end_matches('=').bytes() {
        let v = alphabet
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("base32") as u32;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// The RFC 6238 code of an otpauth URI now (HMAC-SHA1, 6 digits, 30 s), computed here with
/// OpenSSL; waits for a fresh step when the current one is about to end.
pub(crate) fn totp_now(uri: &str) -> String {
    let secret = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("secret in the otpauth URI");
    let mut now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if now % 30 > 27 {
        std::thread::sleep(std::time::Duration::from_secs(31 - now % 30));
        now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
    }
    let key = openssl::pkey::PKey::hmac(&base32(secret)).expect("key");
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha1(), &key).expect("hmac");
    signer.update(&(now / 30).to_be_bytes()).expect("update");
    let mac = signer.sign_to_vec().expect("mac");
    let offset = (mac[19] & 0x0f) as usize;
    let n = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", n % 1_000_000)
}

#[test]
fn an_otp_is_accepted_once_offline_totp_and_online_code() {
    let k = Kit::new();
    let totp = k
        .credential_create("alice", &["--key", "ec-p256", "--otp"])
        .expect("credential create");
    let totp_id = totp["credentialID"].as_str().expect("id").to_owned();
    assert_eq!(totp["otp"], "offline");
    let uri = totp["otpauth"].as_str().expect("otpauth URI").to_owned();
    let alice = k.login("alice", ALICE_PASSWORD);

    // credentials/info says truthfully which OTP each credential has (spec §11.5)
    for (id, kind, provider) in [
        (totp_id.as_str(), "offline", "totp"),
        (k.id("scal2"), "online", "csc-server"),
    ] {
        let (status, info) = k.call(
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": id, "authInfo": true }),
        );
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["OTP"]["presence"], "true");
        assert_eq!(info["OTP"]["type"], kind, "{info}");
        assert_eq!(info["OTP"]["provider"], provider);
        assert_eq!(info["OTP"]["format"], "N");
        assert_eq!(info["PIN"]["presence"], "true");
    }

    // offline: a TOTP code once, never twice
    let code = totp_now(&uri);
    let body = json!({ "credentialID": totp_id, "numSignatures": 1, "PIN": PIN, "OTP": code });
    let (status, got) = authorize(&k, &alice, body.clone());
    assert_eq!(status, 200, "{got}");
    assert_error(
        &authorize(&k, &alice, body),
        400,
        "invalid_otp",
        "The OTP is invalid",
    );

    // online: a code from credentials/sendOTP once, never twice
    let h = sha256(b"document");
    let code = k.online_otp(&alice, k.id("scal2")).expect("online OTP");
    let body = json!({
        "credentialID": k.id("scal2"), "numSignatures": 1, "hash": [h], "PIN": PIN, "OTP": code,
    });
    let (status, got) = authorize(&k, &alice, body.clone());
    assert_eq!(status, 200, "{got}");
    assert_error(
        &authorize(&k, &alice, body),
        400,
        "invalid_otp",
        "The OTP is invalid",
    );
}

#[test]
fn a_plain_totp_seed_is_refused_until_the_operator_moves_it_into_the_token() {
    let k = Kit::new();
    let created = k
        .credential_create("alice", &["--key", "ec-p256", "--otp"])
        .expect("credential create");
    let id = created["credentialID"].as_str().expect("id").to_owned();
    let db = k.dir().join("csc.db");
    // today: the verifier names a token key, the URI's seed is nowhere in the database
    let uri = created["otpauth"].as_str().expect("otpauth URI");
    let seed = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("seed");
    assert!(otp_verifier(&db, &id).starts_with("hsm-totp:v1:"));
    let bytes = std::fs::read(&db).expect("db");
    let wal = std::fs::read(k.dir().join("csc.db-wal")).unwrap_or_default();
    assert!(!contains(&bytes, seed.as_bytes()) && !contains(&wal, seed.as_bytes()));

    // as a database made before: the base32 seed itself (RFC 4226's test secret)
    let plain = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    set_otp_verifier(&db, &id, plain);
    as_before_row_integrity(&db);
    csc_api::admin::integrity_seal(k.sam()).expect("integrity seal");
    let plain_uri = format!("otpauth://totp/csc-server:alice?secret={plain}");
    let alice = k.login("alice", ALICE_PASSWORD);
    let body =
        |code: &str| json!({ "credentialID": id, "numSignatures": 1, "PIN": PIN, "OTP": code });
    assert_error(
        &authorize(&k, &alice, body(&totp_now(&plain_uri))),
        400,
        "invalid_otp",
        "The OTP is invalid",
    );

    // the documented upgrade step moves it; the same seed's codes then work, once
    let (complete, report) = csc_api::admin::credential_migrate_otp(k.sam()).expect("migrate");
    assert!(complete, "{report}");
    assert_eq!(
        report,
        json!({ "migrated": 1, "credentials": [id], "failed": [] })
    );
    let verifier = otp_verifier(&db, &id);
    assert!(verifier.starts_with("hsm-totp:v1:") && !verifier.contains(plain));
    let code = totp_now(&plain_uri);
    let (status, got) = authorize(&k, &alice, body(&code));
    assert_eq!(status, 200, "{got}");
    assert_error(
        &authorize(&k, &alice, body(&code)),
        400,
        "invalid_otp",
        "The OTP is invalid",
    );
    let (_, again) = csc_api::admin::credential_migrate_otp(k.sam()).expect("again");
    assert_eq!(again["migrated"], 0, "idempotent");
    assert_eq!(events(&k, "otp.migrate").len(), 1);
    assert!(k.audit_intact());
}

#[test]
fn send_otp_answers_204_and_the_code_reaches_only_the_outbox() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let bob = k.login("bob", BOB_PASSWORD);
    let resp = k.send(k.csc_request(
        "credentials/sendOTP",
        Some(&alice),
        &json!({ "credentialID": k.id("scal2"), "clientData": "tx-1" }),
    ));
    assert_eq!(resp.status, 204);
    let raw_headers = format!("{:?}", resp.headers);
    assert!(resp.body.is_empty(), "204 has no body");
    let outbox = k.dir().join("otp-outbox.log");
    let code = outbox_code(&outbox, k.id("scal2")).expect("the code in the outbox");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert!(!raw_headers.contains(&code));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&outbox)
            .expect("outbox")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the outbox is private");
    }
    // the code works (and proves it was the real one)
    let h = sha256(b"x");
    let (status, got) = authorize(
        &k,
        &alice,
        json!({ "credentialID": k.id("scal2"), "numSignatures": 1, "hash": [h], "PIN": PIN, "OTP": code }),
    );
    assert_eq!(status, 200, "{got}");

    // the spec's errors (spec §11.8)
    let send = |token: &str, body: Value| k.call("credentials/sendOTP", Some(token), &body);
    assert_error(
        &send(&alice, json!({})),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        &send(&bob, json!({ "credentialID": k.id("scal2") })),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &send(&alice, json!({ "credentialID": k.id("rsa") })),
        400,
        "invalid_request",
        "The credential has no online OTP",
    );
    let (status, _) = k.call(
        "credentials/sendOTP",
        None,
        &json!({ "credentialID": k.id("scal2") }),
    );
    assert_eq!(status, 400, "no bearer token");

    // Never stored in clear. Two more codes are sent (each replaces the pending one), so three
    // codes have passed through the database.
    let mut codes = vec![code];
    for _ in 0..2 {
        assert_eq!(
            send(&alice, json!({ "credentialID": k.id("scal2") })).0,
            204
        );
        codes.push(outbox_code(&outbox, k.id("scal2")).expect("the next code"));
    }
    // The row holds neither the pending code nor its plain (unsalted) SHA-256.
    let stored = stored_online_otp(&k.dir().join("csc.db"), k.id("scal2"));
    let pending = codes.last().expect("a code");
    assert_ne!(stored, pending.as_bytes(), "the code is stored in clear");
    assert_ne!(
        stored,
        openssl::sha::sha256(pending.as_bytes()),
        "the code is stored as its unsalted SHA-256"
    );
    // Nor a salted SHA-256 (the form before: tag, credential, code), which a copy of the
    // database would give up after 10^6 guesses: a 32-byte HMAC computed in the token (the SAM's
    // tests check it equals the token's HMAC).
    let mut salted = b"csc-online-otp/v1\0".to_vec();
    salted.extend_from_slice(k.id("scal2").as_bytes());
    salted.push(0);
    salted.extend_from_slice(pending.as_bytes());
    assert_ne!(stored, openssl::sha::sha256(&salted), "a salted SHA-256");
    assert_eq!(stored.len(), 32);
    // Nor do the database file and its write-ahead log hold them. The digits of ONE 6-digit
    // code may occur by chance among the hex digests and timestamps the files are full of (it
    // happened: a flaky failure); all three in the files is what a server storing codes in
    // clear shows (the WAL keeps every version of the page written during the test).
    let db = std::fs::read(k.dir().join("csc.db")).expect("db");
    let wal = std::fs::read(k.dir().join("csc.db-wal")).unwrap_or_default();
    let in_files = |c: &String| contains(&db, c.as_bytes()) || contains(&wal, c.as_bytes());
    assert!(!codes.iter().all(in_files), "the codes are stored in clear");
    for code in &codes {
        let quoted = format!("\"{code}\"");
        for r in k.audit_records() {
            assert!(
                !r.detail.contains(&quoted),
                "audit record {} holds the code",
                r.seq
            );
        }
    }
    assert!(!events(&k, "otp.send").is_empty());
}

/// A one-shot HTTP endpoint on loopback: answers 204 to every request and hands over the
/// bodies it received.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/sms", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(&stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if l.is_empty() {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = (&stream).write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

#[test]
fn the_webhook_notifier_posts_the_code_to_the_gateway() {
    let (url, received) = webhook_receiver();
    let k = Kit::with(|c| c.otp_channel = OtpChannel::Webhook(url));
    let alice = k.login("alice", ALICE_PASSWORD);
    let (status, body) = k.call(
        "credentials/sendOTP",
        Some(&alice),
        &json!({ "credentialID": k.id("scal2") }),
    );
    assert_eq!((status, body), (204, Value::Null));
    let msg = received
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the gateway got a message");
    assert_eq!(msg["credentialID"], k.id("scal2"));
    assert_eq!(msg["user"], "alice");
    assert_eq!(msg["expiresIn"], 300);
    let code = msg["otp"].as_str().expect("otp").to_owned();
    assert!(
        !k.dir().join("otp-outbox.log").exists(),
        "the webhook replaces the outbox"
    );
    let (status, got) = authorize(
        &k,
        &alice,
        json!({ "credentialID": k.id("scal2"), "numSignatures": 1, "hash": [sha256(b"w")], "PIN": PIN, "OTP": code }),
    );
    assert_eq!(status, 200, "{got}");
}

#[test]
fn scal2_is_never_created_or_activated_with_one_factor() {
    // JT2A Part I 3.5.2 level 2: SCAL 2 implies two-factor authorization
    let k = Kit::new();
    let out = k.credential_create("alice", &["--key", "ec-p256", "--scal", "2"]);
    let err = format!("{:#}", out.expect_err("SCAL 2 without an OTP is refused"));
    assert!(err.contains("second activation factor"), "{err}");

    let alice = k.login("alice", ALICE_PASSWORD);
    let h = sha256(b"one factor");
    assert_error(
        &authorize(
            &k,
            &alice,
            json!({ "credentialID": k.id("scal2"), "numSignatures": 1, "hash": [h], "PIN": PIN }),
        ),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter OTP",
    );
    assert_error(
        &authorize(
            &k,
            &alice,
            json!({ "credentialID": k.id("scal2"), "numSignatures": 1, "hash": [h], "OTP": "123456" }),
        ),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter PIN",
    );

    // a PIN-only credential raised to SCAL 2 behind the server's back fails its MAC (issue
    // 11): it is refused as a credential that does not exist
    {
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        let db = k.dir().join("csc.db");
        let mut c = SqliteConnection::establish(&db.to_string_lossy()).expect("sqlite");
        diesel::sql_query(format!(
            "UPDATE credentials SET scal = 2 WHERE id = '{}'",
            k.id("multi")
        ))
        .execute(&mut c)
        .expect("raise to SCAL 2");
    }
    assert_error(
        &authorize(
            &k,
            &alice,
            json!({ "credentialID": k.id("multi"), "numSignatures": 1, "hash": [h], "PIN": PIN }),
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
}

/// `assurance_level = 3` (issue 14; JT2A Part I 3.5.1-3.5.2): the operator's `credential create`
/// refuses a single-factor or SCAL 1 credential, and a PIN-only credential made before the level
/// was raised is refused at `credentials/authorize` with the CSC error, its PIN never tried.
#[test]
fn level_3_refuses_to_create_or_activate_single_factor_and_scal1_credentials() {
    let k = Kit::with(|c| c.assurance_level = sam::AssuranceLevel::Three);
    let err = format!(
        "{:#}",
        k.credential_create("alice", &["--key", "ec-p256"])
            .expect_err("a PIN-only credential is refused at level 3")
    );
    assert!(
        err.contains("does not meet assurance level 3: two activation factors"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        k.credential_create("alice", &["--key", "ec-p256", "--online-otp"])
            .expect_err("SCAL 1 is refused at level 3")
    );
    assert!(
        err.contains("assurance level 3: SCAL 2 is required"),
        "{err}"
    );
    let ok = k
        .credential_create(
            "alice",
            &["--key", "ec-p256", "--scal", "2", "--online-otp"],
        )
        .expect("SCAL 2 with two factors meets level 3");
    assert!(ok["credentialID"].is_string(), "{ok}");

    // a PIN-only credential from before (made by the same data under level 1)
    let older = k
        .sam()
        .clone()
        .with_policy(sam::SamPolicy::default())
        .create_credential(
            sam::NewCredentialRequest {
                user_name: "alice".into(),
                spec: sam::KeySpec::EcP256,
                scal: sam::Scal::One,
                multisign: 1,
                pin: secrecy::SecretString::from(PIN),
                otp: sam::OtpChoice::None,
                auth_mode: sam::AuthMode::Explicit,
                description: None,
            },
            &sam::Actor::new("test", sam::Role::Operator),
        )
        .expect("made under level 1")
        .credential
        .id
        .to_string();
    let alice = k.login("alice", ALICE_PASSWORD);
    assert_error(
        &authorize(
            &k,
            &alice,
            json!({ "credentialID": older, "numSignatures": 1, "hash": [sha256(b"old")], "PIN": PIN }),
        ),
        400,
        "invalid_request",
        "The credential does not meet the server's assurance level 3: two activation factors (a PIN and an OTP) are required",
    );
    // refused and audited, the PIN not counted
    assert!(
        k.audit_records()
            .iter()
            .any(|r| r.event == "sad.authorize" && r.subject == older && r.outcome != "success"),
        "{:?}",
        k.audit_records()
    );
}
