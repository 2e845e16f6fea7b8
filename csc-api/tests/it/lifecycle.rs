//! The credential lifecycle (issue 14) in process on the kit: disable, enable, rekey and revoke
//! through the operator's functions behind `csc-server credential ...`, with the CSC API
//! refusing what a credential that is not enabled must never do (authorize,
//! extendTransaction, signHash v1 and v2) and the SADs issued before each step dying with it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::Kit;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const DISABLED: &str = "The credential identified by credentialID is disabled";

fn b64(d: &[u8]) -> String {
    STANDARD.encode(d)
}

fn hash(data: &[u8]) -> Vec<u8> {
    openssl::hash::hash(MessageDigest::sha256(), data)
        .expect("hash")
        .to_vec()
}

fn authorize(k: &Kit, token: &str, cred: &str, n: u32) -> (u16, Value) {
    k.call(
        "credentials/authorize",
        Some(token),
        &json!({ "credentialID": cred, "numSignatures": n, "PIN": PIN }),
    )
}

fn sad_of(got: (u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1["SAD"].as_str().expect("SAD").to_owned()
}

fn sign(k: &Kit, token: &str, cred: &str, sad: &str, h: &[u8]) -> (u16, Value) {
    k.call(
        "signatures/signHash",
        Some(token),
        &json!({ "credentialID": cred, "SAD": sad, "hash": [b64(h)], "signAlgo": ECDSA_SHA256 }),
    )
}

fn sign_v2(k: &Kit, token: &str, cred: &str, sad: &str, h: &[u8]) -> (u16, Value) {
    k.call_v2(
        "signatures/signHash",
        Some(token),
        &json!({ "credentialID": cred, "SAD": sad, "hashes": [b64(h)],
                 "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256 }),
    )
}

fn extend(k: &Kit, token: &str, cred: &str, sad: &str) -> (u16, Value) {
    k.call(
        "credentials/extendTransaction",
        Some(token),
        &json!({ "credentialID": cred, "SAD": sad }),
    )
}

fn signer_cert(k: &Kit, token: &str, cred: &str) -> X509 {
    let (status, info) = k.call(
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

/// Signs `h` and checks the signature against the certificate `credentials/info` shows now.
fn signs_verified(k: &Kit, token: &str, cred: &str, sad: &str, h: &[u8]) {
    let got = sign(k, token, cred, sad, h);
    assert_eq!(got.0, 200, "{}", got.1);
    let sig = decode(got.1["signatures"][0].as_str().expect("signature"));
    let cert = signer_cert(k, token, cred);
    assert!(crate::api::verifies(
        &cert,
        h,
        MessageDigest::sha256(),
        &sig,
        None
    ));
}

fn key_id(k: &Kit, cred: &str) -> String {
    k.sam()
        .credentials_with_owners(None)
        .expect("list")
        .into_iter()
        .find(|(_, c)| c.id.to_string() == cred)
        .map(|(_, c)| c.key_id)
        .expect("credential")
}

fn records(k: &Kit, event: &str, cred: &str) -> Vec<Value> {
    k.audit_records()
        .into_iter()
        .filter(|r| r.event == event && r.subject == cred)
        .map(|r| {
            let mut d: Value = serde_json::from_str(&r.detail).expect("detail");
            d["outcome"] = json!(r.outcome);
            d["actor"] = json!(r.actor);
            d
        })
        .collect()
}

#[test]
fn full_lifecycle_create_sign_disable_enable_rekey_revoke() {
    full_lifecycle(&Kit::new());
}

/// The same on PostgreSQL (row locks: `FOR UPDATE` on the credential while a SAD is issued).
#[test]
fn on_postgres_full_lifecycle_create_sign_disable_enable_rekey_revoke() {
    let db = crate::api::PgDatabase::new();
    full_lifecycle(&Kit::with(|c| c.database_url = db.url.clone()));
}

fn full_lifecycle(k: &Kit) {
    let alice = k.login("alice", ALICE_PASSWORD);
    let cred = k.id("multi"); // EC P-256, multisign 3
    let (h1, h2, h3) = (hash(b"one"), hash(b"two"), hash(b"three"));

    // create -> sign
    let before_disable = sad_of(authorize(k, &alice, cred, 3));
    signs_verified(k, &alice, cred, &before_disable, &h1);

    // disable: every call refused with the spec's words, the live SAD too (v1 and v2)
    let out = csc_api::admin::credential_disable(k.sam(), cred).expect("disable");
    assert_eq!(out["status"], "disabled");
    for got in [
        authorize(k, &alice, cred, 1),
        sign(k, &alice, cred, &before_disable, &h2),
        sign_v2(k, &alice, cred, &before_disable, &h2),
        extend(k, &alice, cred, &before_disable),
    ] {
        assert_error(&got, 400, "invalid_request", DISABLED);
    }

    // enable: signs again, but never with a SAD issued before the disable
    let out = csc_api::admin::credential_enable(k.sam(), cred).expect("enable");
    assert_eq!(out["status"], "enabled");
    assert_error(
        &sign(k, &alice, cred, &before_disable, &h2),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    assert_error(
        &extend(k, &alice, cred, &before_disable),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let before_rekey = sad_of(authorize(k, &alice, cred, 3));
    signs_verified(k, &alice, cred, &before_rekey, &h2);

    // rekey: same ID, new key and certificate; the old key is gone from the token and the
    // SAD issued before signs nothing
    let old_key = key_id(k, cred);
    let old_cert = signer_cert(k, &alice, cred);
    assert!(k.sam().key_in_token(&old_key).expect("token"));
    let out = csc_api::admin::credential_rekey(k.sam(), cred, None, sam::RekeyCertifier::DevCa)
        .expect("rekey");
    assert_eq!(out["credentialID"], cred);
    assert_eq!(out["status"], "enabled");
    assert_eq!(out["certificateStatus"], "valid");
    assert_eq!(out["keyAlgo"], "ec-p256");
    let new_key = key_id(k, cred);
    assert_ne!(new_key, old_key);
    assert!(!k.sam().key_in_token(&old_key).expect("token"));
    assert!(k.sam().key_in_token(&new_key).expect("token"));
    let new_cert = signer_cert(k, &alice, cred);
    assert_ne!(
        new_cert.serial_number().to_bn().expect("bn"),
        old_cert.serial_number().to_bn().expect("bn")
    );
    assert!(
        !new_cert
            .public_key()
            .expect("key")
            .public_eq(&old_cert.public_key().expect("key"))
    );
    assert_error(
        &sign(k, &alice, cred, &before_rekey, &h3),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let after_rekey = sad_of(authorize(k, &alice, cred, 3));
    signs_verified(k, &alice, cred, &after_rekey, &h3);

    // revoke: refused for ever, enable and rekey refused, the key gone from the token
    let out = csc_api::admin::credential_revoke(k.sam(), cred, "key compromise").expect("revoke");
    assert_eq!(out["status"], "revoked");
    assert!(!k.sam().key_in_token(&new_key).expect("token"));
    for got in [
        authorize(k, &alice, cred, 1),
        sign(k, &alice, cred, &after_rekey, &h1),
        sign_v2(k, &alice, cred, &after_rekey, &h1),
    ] {
        assert_error(&got, 400, "invalid_request", DISABLED);
    }
    let refused = csc_api::admin::credential_enable(k.sam(), cred).expect_err("enable revoked");
    assert!(refused.to_string().contains("revoked"), "{refused}");
    let refused = csc_api::admin::credential_rekey(k.sam(), cred, None, sam::RekeyCertifier::DevCa)
        .expect_err("rekey revoked");
    assert!(refused.to_string().contains("revoked"), "{refused}");
    let refused = csc_api::admin::credential_revoke(k.sam(), cred, "again").expect_err("revoke");
    assert!(refused.to_string().contains("revoked"), "{refused}");
    assert_eq!(
        csc_api::admin::credential_list(k.sam(), Some("alice")).expect("list")[0]["status"],
        "revoked"
    );

    // every step audited, by the CLI's actor, and the chain intact
    let disable = records(k, "credential.disable", cred);
    assert_eq!(disable.len(), 1);
    assert_eq!(disable[0]["sadsRevoked"], 1);
    assert_eq!(disable[0]["actor"], "operator:cli");
    let enable = records(k, "credential.enable", cred);
    assert_eq!(
        enable
            .iter()
            .map(|r| r["outcome"].clone())
            .collect::<Vec<_>>(),
        [json!("success"), json!("refused")]
    );
    let rekey = records(k, "credential.rekey", cred);
    assert_eq!(rekey[0]["outcome"], "success");
    assert_eq!(rekey[0]["oldKeyId"], json!(old_key));
    assert_eq!(rekey[0]["newKeyId"], json!(new_key));
    assert_eq!(
        rekey[0]["oldCertificateSerial"],
        json!(
            old_cert
                .serial_number()
                .to_bn()
                .and_then(|b| b.to_hex_str().map(|s| s.to_lowercase()))
                .expect("hex")
        )
    );
    assert!(rekey[0]["newCertificateSerial"].is_string());
    assert_eq!(rekey[0]["sadsRevoked"], 1);
    assert_eq!(rekey.last().expect("refusal")["outcome"], "refused");
    let revoke = records(k, "credential.revoke", cred);
    assert_eq!(revoke[0]["outcome"], "success");
    assert_eq!(revoke[0]["reason"], "key compromise");
    assert_eq!(revoke[0]["sadsRevoked"], 1);
    assert_eq!(revoke.last().expect("refusal")["outcome"], "refused");
    let destroyed: Vec<Value> = records(k, "key.destroy", cred)
        .into_iter()
        .map(|r| r["keyId"].clone())
        .collect();
    assert_eq!(destroyed, [json!(old_key), json!(new_key)]);
    assert!(k.audit_intact());
}

#[test]
fn a_revocation_needs_a_reason() {
    let k = Kit::new();
    let cred = k.id("ec");
    let refused = csc_api::admin::credential_revoke(k.sam(), cred, "  ").expect_err("no reason");
    assert!(refused.to_string().contains("reason"), "{refused}");
    let alice = k.login("alice", ALICE_PASSWORD);
    sad_of(authorize(&k, &alice, cred, 1));
    assert!(k.sam().key_in_token(&key_id(&k, cred)).expect("token"));
}

/// A certificate near expiry: counted by `/metrics` (`csc_certificates_expiring`, enabled
/// credentials only) within `cert_expiry_warning_days`, its notAfter shown by `credential
/// list`, while `credentials/info` keeps the spec's `cert.status` `valid`.
#[test]
fn certificates_near_expiry_are_counted_by_the_metrics() {
    use crate::observability::{scrape, value};
    // the development CA certifies for 730 days: a 731-day window holds every new certificate
    let k = Kit::with(|c| c.cert_expiry_warning_days = 731);
    k.create(&["rsa", "ec"]);
    let m = scrape(&k);
    assert_eq!(value(&m, "csc_certificates_expiring", &[]), Some(2.0));
    csc_api::admin::credential_disable(k.sam(), k.id("rsa")).expect("disable");
    let m = scrape(&k);
    assert_eq!(value(&m, "csc_certificates_expiring", &[]), Some(1.0));
    let expiring = k.sam().expiring_certificates(731).expect("expiring");
    assert_eq!(expiring.len(), 1);
    assert_eq!(expiring[0].credential.to_string(), k.id("ec"));
    assert_eq!(expiring[0].user, "alice");
    // a window short of the certificates' end, or none, counts nothing
    assert!(k.sam().expiring_certificates(30).expect("30").is_empty());
    assert!(k.sam().expiring_certificates(0).expect("0").is_empty());

    let list = csc_api::admin::credential_list(k.sam(), Some("alice")).expect("list");
    let ec = list
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["credentialID"] == k.id("ec"))
        .expect("ec");
    let not_after =
        chrono::DateTime::parse_from_rfc3339(ec["certificateNotAfter"].as_str().expect("notAfter"))
            .expect("RFC 3339");
    assert_eq!(
        (not_after.timestamp() - expiring[0].not_after).abs(),
        0,
        "the list and the gauge read the same certificate"
    );
    let alice = k.login("alice", ALICE_PASSWORD);
    // credentials/info reports it too (v1 and v2): the whole days left between the gauge's
    // notAfter and the moment of the answer, which lies between `start` and the check (so a
    // second boundary crossed on the way is no failure: no dependence on the machine's speed)
    let not_after = expiring[0].not_after;
    let start = chrono::Utc::now().timestamp();
    let days_left_since_start = |v: &Value| {
        let n = v.as_i64().unwrap_or_else(|| panic!("expiresInDays {v}"));
        let now = chrono::Utc::now().timestamp();
        assert!(
            (not_after - now) / 86_400 <= n && n <= (not_after - start) / 86_400,
            "{n} days between {start} and {now} for notAfter {not_after}"
        );
        assert!(
            (729..=730).contains(&n),
            "{n}: a certificate of 730 days made a moment ago"
        );
        n
    };
    let (status, info) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("ec") }),
    );
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["cert"]["status"], "valid");
    days_left_since_start(&info["cert"]["expiresInDays"]);
    let (status, v2) = k.call_v2(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("ec") }),
    );
    assert_eq!(status, 200, "{v2}");
    days_left_since_start(&v2["cert"]["expiresInDays"]);
    // not for the disabled credential, nor outside the window
    let (_, rsa) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("rsa") }),
    );
    assert!(rsa["cert"].get("expiresInDays").is_none(), "{rsa}");
    // (one kit per process, so the window the HTTP answer uses is fixed: the rule itself is
    // the SAM's, asked with other windows)
    let owned = k
        .sam()
        .credentials_with_owners(Some("alice"))
        .expect("credentials");
    let ec = &owned
        .iter()
        .find(|(_, c)| c.id.to_string() == k.id("ec"))
        .expect("ec")
        .1;
    let rule = |days| k.sam().certificate_expires_in_days(ec, days).expect("rule");
    let by_rule = rule(731).expect("in the 731-day window");
    days_left_since_start(&json!(by_rule));
    assert_eq!(rule(30), None, "outside the window");
    assert_eq!(rule(0), None, "no window");
}

/// `credential destroy` leaves a credential without a key: it is never enabled again.
#[test]
fn a_credential_whose_key_was_destroyed_is_not_enabled() {
    let k = Kit::new();
    let cred = k.id("ec");
    let key = key_id(&k, cred);
    csc_api::admin::credential_destroy(k.sam(), cred).expect("destroy");
    assert!(!k.sam().key_in_token(&key).expect("token"));
    let refused = csc_api::admin::credential_enable(k.sam(), cred).expect_err("enable");
    assert!(
        refused.to_string().contains("no longer in the token"),
        "{refused}"
    );
    assert_eq!(
        records(&k, "credential.enable", cred)[0]["outcome"],
        "refused"
    );
    let alice = k.login("alice", ALICE_PASSWORD);
    assert_error(
        &authorize(&k, &alice, cred, 1),
        400,
        "invalid_request",
        DISABLED,
    );
}
