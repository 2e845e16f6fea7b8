//! The hot path's cache of verified tokens and credentials (issue 15, `sam/src/hot.rs`): a
//! change made through this process takes effect at the next request, a change made by
//! another process (another instance on PostgreSQL) within `sam::CACHE_BOUND`, and an
//! insider's edit of a row the cache holds is caught once the bound has passed (the row is
//! read again, fails its MAC, is refused and audited). Disable, enable, rekey and revoke of a
//! credential the cache holds are in `lifecycle.rs` (`full_lifecycle` signs before each step).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use serde_json::{Value, json};

use crate::common::*;
use crate::insider::insider;
use crate::kit::Kit;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

fn digest(data: &[u8]) -> Vec<u8> {
    openssl::hash::hash(MessageDigest::sha256(), data)
        .expect("hash")
        .to_vec()
}

fn sad_of(got: (u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1["SAD"].as_str().expect("SAD").to_owned()
}

fn authorize(k: &Kit, token: &str, n: u32) -> String {
    sad_of(k.call(
        "credentials/authorize",
        Some(token),
        &json!({ "credentialID": k.id("ec"), "numSignatures": n, "PIN": PIN }),
    ))
}

fn sign(k: &Kit, token: &str, sad: &str) -> (u16, Value) {
    k.call(
        "signatures/signHash",
        Some(token),
        &json!({
            "credentialID": k.id("ec"), "SAD": sad, "signAlgo": ECDSA_SHA256,
            "hash": [STANDARD.encode(digest(b"hot path"))],
        }),
    )
}

fn violations(k: &Kit, table: &str) -> usize {
    k.audit_records()
        .iter()
        .filter(|r| r.event == "integrity.violation" && r.subject.starts_with(table))
        .count()
}

#[test]
fn a_token_revoked_or_its_users_disabled_after_use_is_refused_at_the_next_request() {
    let k = Kit::new();
    // the token and the credential are in the cache once a signature went through
    let alice = k.login("alice", ALICE_PASSWORD);
    let (sad, next) = (authorize(&k, &alice, 1), authorize(&k, &alice, 1));
    assert_eq!(sign(&k, &alice, &sad).0, 200);
    assert_eq!(
        k.call("auth/revoke", Some(&alice), &json!({ "token": alice }))
            .0,
        204
    );
    let (status, err) = sign(&k, &alice, &next);
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("expired_token")),
        "{err}"
    );

    let again = k.login("alice", ALICE_PASSWORD);
    let (sad, next) = (authorize(&k, &again, 1), authorize(&k, &again, 1));
    assert_eq!(sign(&k, &again, &sad).0, 200);
    csc_api::admin::user_disable(k.sam(), "alice").expect("disable");
    let (status, err) = sign(&k, &again, &next);
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("expired_token")),
        "{err}"
    );
    let (status, _) = k.call("credentials/list", Some(&again), &json!({}));
    assert_eq!(status, 401);
}

#[test]
fn an_insiders_edit_of_a_cached_token_or_credential_is_caught_within_the_bound() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let (sad, next) = (authorize(&k, &alice, 1), authorize(&k, &alice, 1));
    assert_eq!(sign(&k, &alice, &sad).0, 200);

    // the token's scope changed by hand: its MAC no longer verifies
    let token_hash = hex::encode(digest(alice.as_bytes()));
    let edited = insider(
        &k,
        &format!("UPDATE auth_tokens SET scope = scope || ' x' WHERE token_hash = X'{token_hash}'"),
    );
    assert_eq!(edited, 1);
    std::thread::sleep(sam::CACHE_BOUND);
    let (status, err) = sign(&k, &alice, &next);
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_token")),
        "{err}"
    );
    assert!(violations(&k, "auth_tokens/") >= 1, "violation audited");

    // the credential's signature budget raised by hand: the credential is gone for the SAM
    let fresh = k.login("alice", ALICE_PASSWORD);
    let (sad, next) = (authorize(&k, &fresh, 1), authorize(&k, &fresh, 1));
    assert_eq!(sign(&k, &fresh, &sad).0, 200);
    let edited = insider(
        &k,
        &format!(
            "UPDATE credentials SET multisign = 100000 WHERE id = '{}'",
            k.id("ec")
        ),
    );
    assert_eq!(edited, 1);
    std::thread::sleep(sam::CACHE_BOUND);
    assert_error(
        &sign(&k, &fresh, &next),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert!(violations(&k, "credentials/") >= 1, "violation audited");
    // the refused requests signed nothing
    let signed = k
        .audit_records()
        .iter()
        .filter(|r| r.event == "signature.sign_hash" && r.outcome == "success")
        .count();
    assert_eq!(signed, 2, "two signatures, no more");
}

#[test]
fn a_token_revoked_on_one_postgres_instance_is_refused_by_the_other_within_the_bound() {
    let db = crate::api::PgDatabase::new();
    let env = [("CSC_DATABASE_URL", db.url.as_str())];
    let s = Signers::with_env_only(&env, &["ec"]);
    let (_a, api_a) = s.serve(&env);
    let (_b, api_b) = s.serve(&env);
    let alice = api_a.login("alice", ALICE_PASSWORD);
    // B has the token in its cache
    assert_eq!(
        api_b.call("credentials/list", Some(&alice), &json!({})).0,
        200
    );
    assert_eq!(
        api_a
            .call("auth/revoke", Some(&alice), &json!({ "token": alice }))
            .0,
        204
    );
    // A, which revoked it, refuses it at once
    assert_eq!(
        api_a.call("credentials/list", Some(&alice), &json!({})).0,
        401
    );
    // B read it before the revocation: once the bound has passed it reads it again
    std::thread::sleep(sam::CACHE_BOUND);
    let (status, err) = api_b.call("credentials/list", Some(&alice), &json!({}));
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("expired_token")),
        "{err}"
    );
}

/// Write-ahead on the worker's path (v1 and v2 signHash await their spend's batch): when the
/// database refuses the `signature.sign_hash` record, the batch fails and no signature leaves
/// (500 `server_error`), the SAD is not spent, and once records are accepted again it signs.
#[test]
fn no_signature_leaves_when_its_batch_cannot_commit() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let sad = authorize(&k, &alice, 1);
    // the database refuses every signature.sign_hash record (SQL of the test's own)
    let db = k.dir().join("csc.db");
    refuse_audit_records(&db, "signature.sign_hash");
    let (status, v) = sign(&k, &alice, &sad);
    assert_eq!((status, &v["error"]), (500, &json!("server_error")), "{v}");
    assert!(v.get("signatures").is_none());
    let (status, v) = k.call_v2(
        "signatures/signHash",
        Some(&alice),
        &json!({
            "credentialID": k.id("ec"), "SAD": sad, "signAlgo": ECDSA_SHA256,
            "hashes": [STANDARD.encode(digest(b"hot path"))],
        }),
    );
    assert_eq!(
        (status, &v["error"]),
        (500, &json!("server_error")),
        "v2: {v}"
    );
    assert!(v.get("signatures").is_none());
    accept_audit_records(&db, "signature.sign_hash");
    let (status, v) = sign(&k, &alice, &sad);
    assert_eq!(status, 200, "the SAD was not spent: {v}");
    let signed = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "signature.sign_hash")
        .count();
    assert_eq!(signed, 1, "one record, for the one signature");
    assert!(k.audit_intact());
}
