//! The insider test kit (issue 11; DESIGN.md trust model: the HSM is the root of trust, the
//! database is not). Each test edits the database behind the server's back with SQL of its own,
//! as a DBA (or a restored backup, or an injection elsewhere) would, then checks that the real
//! app (SoftHSM2 + SQLite, [`crate::kit`]) refuses what the edit was meant to gain, with the
//! answer a missing row gets, and that an `integrity.violation` audit record names the row.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::Kit;

const SHA256_ECDSA: &str = "1.2.840.10045.4.3.2";

fn digest(data: &[u8]) -> Vec<u8> {
    openssl::sha::sha256(data).to_vec()
}

fn b64(d: &[u8]) -> String {
    STANDARD.encode(d)
}

/// SQL as the insider: straight to the database file.
pub(crate) fn insider(k: &Kit, sql: &str) -> usize {
    let db = k.dir().join("csc.db");
    let mut c = SqliteConnection::establish(&db.to_string_lossy()).expect("open the database");
    diesel::sql_query(sql).execute(&mut c).expect(sql)
}

/// Gives credential `to` the `kind` factor row of credential `from`: its verifier and its MAC.
fn copy_factor_row(k: &Kit, from: &str, to: &str, kind: &str) {
    let of = |col: &str| {
        format!(
            "(SELECT {col} FROM credential_factors WHERE credential_id = '{from}' AND kind = '{kind}')"
        )
    };
    insider(
        k,
        &format!(
            "UPDATE credential_factors SET verifier = {}, mac = {}
             WHERE credential_id = '{to}' AND kind = '{kind}'",
            of("verifier"),
            of("mac")
        ),
    );
}

/// The SQL literal of a byte string.
fn blob(bytes: &[u8]) -> String {
    format!("X'{}'", hex::encode(bytes))
}

fn authorize_ec(k: &Kit, token: &str, n: u32) -> (u16, Value) {
    k.call(
        "credentials/authorize",
        Some(token),
        &json!({ "credentialID": k.id("ec"), "numSignatures": n, "PIN": PIN }),
    )
}

fn sad_of(got: (u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1["SAD"].as_str().expect("SAD").to_owned()
}

fn sign_ec(k: &Kit, token: &str, sad: &str) -> (u16, Value) {
    k.call(
        "signatures/signHash",
        Some(token),
        &json!({
            "credentialID": k.id("ec"), "SAD": sad, "signAlgo": SHA256_ECDSA,
            "hash": [b64(&digest(b"insider"))],
        }),
    )
}

/// Asserts an `integrity.violation` record names `table`/`row` (a prefix of the row is enough).
fn assert_violation(k: &Kit, table: &str, row: &str) {
    let subject = format!("{table}/{row}");
    let found = k
        .audit_records()
        .into_iter()
        .any(|r| r.event == "integrity.violation" && r.subject.starts_with(&subject));
    assert!(found, "no integrity.violation audited for {subject}");
}

#[test]
fn a_sad_row_forged_or_copied_under_a_chosen_value_signs_nothing() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let real = sad_of(authorize_ec(&k, &alice, 1));
    let real_hash = digest(real.as_bytes());
    // a copy of the real row (with its MAC) under the hash of a value the insider chose, with
    // more signatures; and a row made from nothing
    let chosen = "insider-chosen-sad";
    let chosen_hash = digest(chosen.as_bytes());
    insider(
        &k,
        &format!(
            "INSERT INTO sads (sad_hash, user_id, credential_id, token_hash, remaining, expires_at,
                               hashes, revoked, created_at, mac)
             SELECT {}, user_id, credential_id, token_hash, remaining, expires_at, hashes,
                    revoked, created_at, mac FROM sads WHERE sad_hash = {}",
            blob(&chosen_hash),
            blob(&real_hash)
        ),
    );
    assert_error(
        &sign_ec(&k, &alice, chosen),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    assert_violation(&k, "sads", &hex::encode(chosen_hash));
    let made = "insider-made-sad";
    insider(
        &k,
        &format!(
            "INSERT INTO sads (sad_hash, user_id, credential_id, token_hash, remaining, expires_at,
                               hashes, revoked, created_at, mac)
             SELECT {}, user_id, credential_id, token_hash, 100, expires_at, NULL, 0, created_at,
                    NULL FROM sads WHERE sad_hash = {}",
            blob(&digest(made.as_bytes())),
            blob(&real_hash)
        ),
    );
    assert_error(
        &sign_ec(&k, &alice, made),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // the real SAD still signs once: the insider's rows took nothing from it
    assert_eq!(sign_ec(&k, &alice, &real).0, 200);
}

#[test]
fn an_inflated_remaining_count_is_refused() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let sad = sad_of(authorize_ec(&k, &alice, 1));
    let hash = digest(sad.as_bytes());
    assert_eq!(sign_ec(&k, &alice, &sad).0, 200);
    // spent; the insider gives it 100 more
    insider(
        &k,
        &format!(
            "UPDATE sads SET remaining = 100 WHERE sad_hash = {}",
            blob(&hash)
        ),
    );
    assert_error(
        &sign_ec(&k, &alice, &sad),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    assert_violation(&k, "sads", &hex::encode(hash));
}

#[test]
fn a_token_row_copied_under_a_chosen_value_is_refused() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let chosen = "csc_at_insider-chosen-token";
    let chosen_hash = digest(chosen.as_bytes());
    insider(
        &k,
        &format!(
            "INSERT INTO auth_tokens (token_hash, kind, user_id, client_id, scope, expires_at,
                                      revoked, created_at, parent_hash, mac)
             SELECT {}, kind, user_id, client_id, scope, expires_at, revoked, created_at,
                    parent_hash, mac FROM auth_tokens WHERE token_hash = {}",
            blob(&chosen_hash),
            blob(&digest(alice.as_bytes()))
        ),
    );
    let (status, err) = k.call("credentials/list", Some(chosen), &json!({}));
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_token")),
        "{err}"
    );
    assert_violation(&k, "auth_tokens", &hex::encode(chosen_hash));
    // and a revoked token un-revoked by hand stays dead
    assert_eq!(
        k.call("auth/revoke", Some(&alice), &json!({ "token": alice }))
            .0,
        204,
        "revoke"
    );
    insider(
        &k,
        &format!(
            "UPDATE auth_tokens SET revoked = 0 WHERE token_hash = {}",
            blob(&digest(alice.as_bytes()))
        ),
    );
    let (status, _) = k.call("credentials/list", Some(&alice), &json!({}));
    assert_eq!(status, 401);
}

#[test]
fn a_key_id_re_pointed_at_another_credential_signs_nothing() {
    let k = Kit::new();
    let (ec, bob) = (k.id("ec").to_owned(), k.id("bob").to_owned());
    let alice = k.login("alice", ALICE_PASSWORD);
    // alice's credential now names bob's key
    insider(
        &k,
        &format!(
            "UPDATE credentials SET key_id = (SELECT key_id FROM credentials WHERE id = '{bob}')
             WHERE id = '{ec}'"
        ),
    );
    assert_error(
        &authorize_ec(&k, &alice, 1),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_violation(&k, "credentials", &ec);
}

#[test]
fn a_copied_or_downgraded_pin_verifier_opens_nothing() {
    let k = Kit::new();
    let (ec, bob) = (k.id("ec").to_owned(), k.id("bob").to_owned());
    let alice = k.login("alice", ALICE_PASSWORD);
    // bob's verifier and MAC copied onto alice's PIN row: the MAC binds the credential
    copy_factor_row(&k, &bob, &ec, "pin");
    assert_error(
        &authorize_ec(&k, &alice, 1),
        400,
        "invalid_request",
        "PIN locked",
    );
    assert_violation(&k, "credential_factors", &format!("{ec}/pin"));
    // a plain Argon2id verifier of a PIN the insider chose, MAC left as it was
    let chosen = sam::secrets::hash_secret(&secrecy::SecretString::from("999999")).expect("hash");
    insider(
        &k,
        &format!(
            "UPDATE credential_factors SET verifier = '{chosen}'
             WHERE credential_id = '{ec}' AND kind = 'pin'"
        ),
    );
    let (status, err) = k.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": ec, "numSignatures": 1, "PIN": "999999" }),
    );
    assert_eq!(
        (status, err["error_description"].as_str()),
        (400, Some("PIN locked")),
        "{err}"
    );
}

#[test]
fn a_deleted_pin_row_does_not_drop_the_pin() {
    let k = Kit::new();
    let ec = k.id("ec").to_owned();
    let alice = k.login("alice", ALICE_PASSWORD);
    insider(
        &k,
        &format!("DELETE FROM credential_factors WHERE credential_id = '{ec}' AND kind = 'pin'"),
    );
    // without a PIN, and with one: never a SAD
    let (status, err) = k.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": ec, "numSignatures": 1 }),
    );
    assert_eq!(status, 400, "{err}");
    assert_error(
        &authorize_ec(&k, &alice, 1),
        400,
        "invalid_request",
        "PIN locked",
    );
    assert_violation(&k, "credential_factors", &format!("{ec}/pin (missing)"));
}

#[test]
fn a_reset_failure_counter_does_not_reopen_a_locked_pin() {
    let k = Kit::with(|c| c.max_factor_failures = 3);
    let ec = k.id("ec").to_owned();
    let alice = k.login("alice", ALICE_PASSWORD);
    for _ in 0..3 {
        let (status, _) = k.call(
            "credentials/authorize",
            Some(&alice),
            &json!({ "credentialID": ec, "numSignatures": 1, "PIN": "000000" }),
        );
        assert_eq!(status, 400);
    }
    assert_error(
        &authorize_ec(&k, &alice, 1),
        400,
        "invalid_request",
        "PIN locked",
    );
    insider(
        &k,
        &format!(
            "UPDATE credential_factors SET failures = 0, locked = 0
             WHERE credential_id = '{ec}' AND kind = 'pin'"
        ),
    );
    assert_error(
        &authorize_ec(&k, &alice, 1),
        400,
        "invalid_request",
        "PIN locked",
    );
    assert_violation(&k, "credential_factors", &format!("{ec}/pin"));
}

#[test]
fn a_swapped_password_hash_or_lifted_login_lock_is_refused() {
    let k = Kit::new();
    let unknown = k.login_with("nobody", "whatever", &json!({}));
    // alice's password hash replaced by bob's: bob's password does not open alice's account
    insider(
        &k,
        "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE name = 'bob')
         WHERE name = 'alice'",
    );
    let got = k.login_with("alice", BOB_PASSWORD, &json!({}));
    assert_eq!(got, unknown, "answered as for a user that does not exist");
    let got = k.login_with("alice", ALICE_PASSWORD, &json!({}));
    assert_eq!(got, unknown);
    assert!(
        k.audit_records()
            .iter()
            .any(|r| r.event == "integrity.violation" && r.subject.starts_with("users/")),
        "violation audited"
    );
}

#[test]
fn a_swapped_otp_configuration_is_refused() {
    // two TOTP credentials of alice: the insider gives the first the second's OTP factor row
    // (verifier and MAC), e.g. to use a seed whose codes they can compute
    let k = Kit::new();
    let first = k
        .credential_create("alice", &["--key", "ec-p256", "--otp"])
        .expect("first");
    let second = k
        .credential_create("alice", &["--key", "ec-p256", "--otp"])
        .expect("second");
    let (a, b) = (
        first["credentialID"].as_str().expect("id").to_owned(),
        second["credentialID"].as_str().expect("id").to_owned(),
    );
    copy_factor_row(&k, &b, &a, "otp");
    let alice = k.login("alice", ALICE_PASSWORD);
    let (status, err) = k.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": a, "numSignatures": 1, "PIN": PIN, "OTP": "123456" }),
    );
    assert_eq!(
        (status, err["error_description"].as_str()),
        (400, Some("OTP locked")),
        "{err}"
    );
    assert_violation(&k, "credential_factors", &format!("{a}/otp"));
}
