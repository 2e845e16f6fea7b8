//! The CSC v1 API against the real app in process (SoftHSM2 + SQLite, [`crate::kit`]): every
//! method's success path with the signature verified against the certificate, and the spec's
//! errors with their exact status and strings (spec §10-11). At the end, what is about the
//! `csc-server` binary: the purger of `serve`, the server log, two processes on one PostgreSQL
//! database.

// `&[h.clone()]` reads better than `std::slice::from_ref(&h)` in a table of requests
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::sync::{Arc, Barrier};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::{BASE, Kit};

const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const RSA: &str = "1.2.840.113549.1.1.1";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA384: &str = "2.16.840.1.101.3.4.2.2";
/// RSASSA-PSS-params: SHA-256, MGF1-SHA-256, salt 32, trailer 1 (spec §11.9 signAlgoParams).
const PSS_PARAMS: &str =
    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=";

fn digest(md: MessageDigest, data: &[u8]) -> Vec<u8> {
    openssl::hash::hash(md, data).expect("hash").to_vec()
}

fn b64(d: &[u8]) -> String {
    STANDARD.encode(d)
}

fn signer_cert(api: &impl Csc, token: &str, cred: &str) -> X509 {
    let (status, info) = api.call(
        "credentials/info",
        Some(token),
        &json!({ "credentialID": cred, "certificates": "chain" }),
    );
    assert_eq!(status, 200, "{info}");
    X509::from_der(&decode(
        info["cert"]["certificates"][0].as_str().expect("cert"),
    ))
    .expect("der")
}

/// Verifies a raw signature over `digest` (`md`: SHA-256 or SHA-384) with the certificate's
/// key: RSA PKCS#1 v1.5, or PSS with `pss_salt` (MGF1-SHA-256), or DER ECDSA.
pub(crate) fn verifies(
    cert: &X509,
    digest: &[u8],
    md: MessageDigest,
    sig: &[u8],
    pss_salt: Option<i32>,
) -> bool {
    let key = cert.public_key().expect("key");
    let mut ctx = PkeyCtx::new(&key).expect("ctx");
    ctx.verify_init().expect("init");
    if key.rsa().is_ok() {
        match pss_salt {
            Some(salt) => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS).expect("pss");
                ctx.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(salt))
                    .expect("salt");
                ctx.set_rsa_mgf1_md(openssl::md::Md::sha256())
                    .expect("mgf1");
            }
            None => ctx.set_rsa_padding(Padding::PKCS1).expect("pkcs1"),
        }
    }
    let md = match md.type_() {
        t if t == MessageDigest::sha384().type_() => openssl::md::Md::sha384(),
        _ => openssl::md::Md::sha256(),
    };
    ctx.set_signature_md(md).expect("md");
    ctx.verify(digest, sig).unwrap_or(false)
}

fn authorize(
    api: &impl Csc,
    token: &str,
    cred: &str,
    n: u32,
    hashes: Option<&[Vec<u8>]>,
) -> (u16, Value) {
    let mut body = json!({ "credentialID": cred, "numSignatures": n, "PIN": PIN });
    // SCAL 2 takes two factors: the PIN and an online OTP (sent, then read from the outbox)
    if let Some(otp) = api.online_otp(token, cred) {
        body["OTP"] = json!(otp);
    }
    if let Some(h) = hashes {
        body["hash"] = json!(h.iter().map(|d| b64(d)).collect::<Vec<_>>());
    }
    api.call("credentials/authorize", Some(token), &body)
}

fn sad_of(got: (u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(got.1["expiresIn"].as_u64().is_some_and(|s| s > 0));
    got.1["SAD"].as_str().expect("SAD").to_owned()
}

fn sign(
    api: &impl Csc,
    token: &str,
    cred: &str,
    sad: &str,
    hashes: &[Vec<u8>],
    sign_algo: &str,
    extra: Value,
) -> (u16, Value) {
    let mut body = json!({
        "credentialID": cred, "SAD": sad, "signAlgo": sign_algo,
        "hash": hashes.iter().map(|d| b64(d)).collect::<Vec<_>>(),
    });
    if let (Some(obj), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    api.call("signatures/signHash", Some(token), &body)
}

fn signatures(got: &(u16, Value)) -> Vec<Vec<u8>> {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| decode(s.as_str().expect("b64")))
        .collect()
}

#[test]
fn info_lists_exactly_the_served_methods() {
    let k = Kit::new();
    let (status, info) = k.call("info", None, &json!({ "lang": "fr-FR" }));
    assert_eq!(status, 200);
    assert_eq!(info["specs"], "1.0.4.0");
    assert_eq!(info["lang"], "en-US", "one language is served and said");
    let methods: Vec<&str> = info["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        methods,
        [
            "auth/login",
            "auth/revoke",
            "credentials/list",
            "credentials/info",
            "credentials/authorize",
            "credentials/extendTransaction",
            "credentials/sendOTP",
            "signatures/signHash",
            "signatures/timestamp"
        ]
    );
    assert_eq!(
        info["authType"],
        json!(["basic", "oauth2code", "oauth2client"])
    );
    // the absolute base URI of the OAuth 2.0 endpoints, from the request's Host (spec §11.1)
    assert_eq!(info["oauth2"], format!("{}/", BASE));
}

#[test]
fn login_refresh_and_revoke_follow_the_spec() {
    let k = Kit::new();
    let login = |user: &str, pw: &str, body: Value| k.login_with(user, pw, &body);
    let (status, ok) = login("alice", ALICE_PASSWORD, json!({ "rememberMe": true }));
    assert_eq!(status, 200, "{ok}");
    assert!(ok["expires_in"].as_u64().is_some_and(|s| s > 0));
    let access = ok["access_token"].as_str().expect("access").to_owned();
    let refresh = ok["refresh_token"].as_str().expect("refresh").to_owned();
    let (status, plain) = login("alice", ALICE_PASSWORD, json!({}));
    assert_eq!(status, 200);
    assert!(
        plain.get("refresh_token").is_none(),
        "no rememberMe, no refresh token"
    );

    assert_error(
        &login("alice", "wrong-password", json!({})),
        400,
        "authentication_error",
        "An error occurred during authentication process",
    );
    assert_error(
        &login("nobody", "whatever-password", json!({})),
        400,
        "authentication_error",
        "An error occurred during authentication process",
    );
    let raw = |header: &str, body: Value| {
        let req = k
            .post("/csc/v1/auth/login")
            .insert_header(("authorization", header))
            .set_json(&body);
        k.send(req).pair()
    };
    assert_error(
        &raw("Bearer abc", json!({})),
        401,
        "invalid_request",
        "Malformed authentication parameter.",
    );
    assert_error(
        &raw(&format!("Basic {}", b64(b"no-colon-here")), json!({})),
        400,
        "invalid_request",
        "Malformed username-password.",
    );
    let (status, _) = k.call("auth/login", None, &json!({}));
    assert_eq!(status, 401, "neither header nor refresh token");
    // a wrongly typed refresh_token is refused even beside a valid Basic header
    assert_error(
        &login("alice", ALICE_PASSWORD, json!({ "refresh_token": 7 })),
        400,
        "invalid_request",
        "Invalid string parameter: refresh_token",
    );
    assert_error(
        &k.call("auth/login", None, &json!({ "refresh_token": 7 })),
        400,
        "invalid_request",
        "Invalid string parameter: refresh_token",
    );
    assert_error(
        &k.call(
            "auth/login",
            None,
            &json!({ "refresh_token": "csc_rt_bogus" }),
        ),
        400,
        "invalid_request",
        "Invalid refresh_token",
    );
    // an access token is not a refresh token
    assert_error(
        &k.call("auth/login", None, &json!({ "refresh_token": access })),
        400,
        "invalid_request",
        "Invalid refresh_token",
    );
    let (status, renewed) = k.call("auth/login", None, &json!({ "refresh_token": refresh }));
    assert_eq!(status, 200, "{renewed}");
    let from_refresh = renewed["access_token"].as_str().expect("access").to_owned();
    assert_eq!(
        k.call("credentials/list", Some(&from_refresh), &json!({}))
            .0,
        200
    );

    // bearer problems: malformed header 400, unknown token 401
    let (status, err) = k.call("credentials/list", None, &json!({}));
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, err) = k.call("credentials/list", Some("csc_at_unknown"), &json!({}));
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // revoke: errors, then access, then refresh (which takes its access tokens along)
    assert_error(
        &k.call("auth/revoke", Some(&access), &json!({})),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter token",
    );
    assert_error(
        &k.call(
            "auth/revoke",
            Some(&access),
            &json!({ "token": access, "token_type_hint": "sad" }),
        ),
        400,
        "invalid_request",
        "Invalid string parameter token_type_hint",
    );
    assert_error(
        &k.call(
            "auth/revoke",
            Some(&access),
            &json!({ "token": "csc_at_nope" }),
        ),
        400,
        "invalid_request",
        "Invalid string parameter token",
    );
    let bob = k.login("bob", BOB_PASSWORD);
    assert_error(
        &k.call("auth/revoke", Some(&bob), &json!({ "token": access })),
        400,
        "invalid_request",
        "Invalid string parameter token",
    );
    let (status, _) = k.call(
        "auth/revoke",
        Some(&access),
        &json!({ "token": access, "token_type_hint": "access_token" }),
    );
    assert_eq!(status, 204);
    // spec §10.1: expired_token is "expired or revoked"
    let (status, err) = k.call("credentials/list", Some(&access), &json!({}));
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("expired_token"))
    );
    let other = k.login("alice", ALICE_PASSWORD);
    let (status, _) = k.call(
        "auth/revoke",
        Some(&other),
        &json!({ "token": refresh, "token_type_hint": "refresh_token" }),
    );
    assert_eq!(status, 204);
    assert_eq!(
        k.call("credentials/list", Some(&from_refresh), &json!({}))
            .0,
        401
    );
    assert_error(
        &k.call("auth/login", None, &json!({ "refresh_token": refresh })),
        400,
        "invalid_request",
        "Invalid refresh_token",
    );
    assert_eq!(k.call("credentials/list", Some(&other), &json!({})).0, 200);
}

#[test]
fn credentials_list_pages_through_the_callers_credentials_only() {
    let k = Kit::new();
    k.create(&["rsa", "ec", "scal2", "multi", "bob"]);
    let alice = k.login("alice", ALICE_PASSWORD);
    let bob = k.login("bob", BOB_PASSWORD);
    let (status, all) = k.call("credentials/list", Some(&alice), &json!({}));
    assert_eq!(status, 200);
    let mut ids: Vec<String> = serde_json::from_value(all["credentialIDs"].clone()).expect("ids");
    ids.sort();
    let mut expected: Vec<String> = ["rsa", "ec", "scal2", "multi"]
        .iter()
        .map(|n| k.id(n).to_owned())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(all.get("nextPageToken").is_none());
    let (_, b) = k.call("credentials/list", Some(&bob), &json!({}));
    assert_eq!(b["credentialIDs"], json!([k.id("bob")]));

    let mut seen = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut body = json!({ "maxResults": 1 });
        if let Some(t) = &page_token {
            body["pageToken"] = json!(t);
        }
        let (status, page) = k.call("credentials/list", Some(&alice), &body);
        assert_eq!(status, 200, "{page}");
        let ids = page["credentialIDs"].as_array().expect("ids");
        assert!(ids.len() <= 1);
        seen.extend(ids.iter().filter_map(Value::as_str).map(str::to_owned));
        match page["nextPageToken"].as_str() {
            Some(t) => page_token = Some(t.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, expected);
    assert_error(
        &k.call(
            "credentials/list",
            Some(&alice),
            &json!({ "pageToken": "!!" }),
        ),
        400,
        "invalid_request",
        "Invalid parameter pageToken",
    );
    assert_error(
        &k.call(
            "credentials/list",
            Some(&alice),
            &json!({ "userID": "bob" }),
        ),
        400,
        "invalid_request",
        "userID parameter MUST be null",
    );
}

#[test]
fn credentials_info_describes_key_certificate_and_factors() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let (status, rsa) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("rsa"), "certificates": "chain", "certInfo": true, "authInfo": true }),
    );
    assert_eq!(status, 200, "{rsa}");
    assert_eq!(rsa["key"]["status"], "enabled");
    assert_eq!(rsa["key"]["len"], 2048);
    let algos = rsa["key"]["algo"].as_array().expect("algo");
    for oid in [SHA256_RSA, RSA_PSS, RSA] {
        assert!(algos.contains(&json!(oid)), "{oid} in {algos:?}");
    }
    assert!(rsa["key"].get("curve").is_none());
    assert_eq!(rsa["cert"]["status"], "valid");
    assert_eq!(
        rsa["cert"]["certificates"].as_array().expect("chain").len(),
        2
    );
    assert_eq!(rsa["cert"]["subjectDN"], "CN=alice");
    assert!(
        rsa["cert"]["issuerDN"]
            .as_str()
            .expect("issuer")
            .starts_with("O=")
            || rsa["cert"]["issuerDN"]
                .as_str()
                .expect("issuer")
                .starts_with("CN=")
    );
    let serial = rsa["cert"]["serialNumber"].as_str().expect("serial");
    assert!(serial.chars().all(|c| c.is_ascii_hexdigit()));
    for f in ["validFrom", "validTo"] {
        let t = rsa["cert"][f].as_str().expect(f);
        assert!(t.len() == 15 && t.ends_with('Z'), "{t}");
    }
    assert_eq!(rsa["authMode"], "explicit");
    assert_eq!(rsa["SCAL"], "1");
    assert_eq!(rsa["multisign"], 1);
    assert_eq!(rsa["PIN"]["presence"], "true");
    assert_eq!(rsa["OTP"]["presence"], "false");

    let (_, ec) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("ec") }),
    );
    assert_eq!(ec["key"]["curve"], "1.2.840.10045.3.1.7");
    assert_eq!(ec["key"]["algo"].as_array().expect("algo")[0], ECDSA_SHA256);
    assert_eq!(
        ec["cert"]["certificates"].as_array().expect("single").len(),
        1
    );
    assert!(ec.get("PIN").is_none() && ec["cert"].get("subjectDN").is_none());
    let (_, none) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("ec"), "certificates": "none" }),
    );
    assert!(none["cert"].get("certificates").is_none());
    let (_, scal2) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("scal2") }),
    );
    assert_eq!(
        (scal2["SCAL"].as_str(), scal2["multisign"].as_i64()),
        (Some("2"), Some(5))
    );

    assert_error(
        &k.call(
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": k.id("bob") }),
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &k.call("credentials/info", Some(&alice), &json!({})),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        &k.call(
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": "not-a-uuid" }),
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &k.call(
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": k.id("ec"), "certificates": "all" }),
        ),
        400,
        "invalid_request",
        "Invalid parameter certificates",
    );
    // a `lang` that is not a string was accepted: schemathesis' negative testing flags it
    assert_error(
        &k.call(
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": k.id("ec"), "lang": 5 }),
        ),
        400,
        "invalid_request",
        "Invalid parameter lang",
    );
    let (status, _) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("ec"), "lang": "fr-FR" }),
    );
    assert_eq!(status, 200, "one language is served, whatever is asked");
}

#[test]
fn authorize_then_sign_with_every_algorithm_verifies_against_the_certificate() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa_cert = signer_cert(&k, &alice, k.id("rsa"));
    let ec_cert = signer_cert(&k, &alice, k.id("ec"));

    // sha256WithRSA, hashAlgo sent anyway (pyHanko does)
    let h = digest(MessageDigest::sha256(), b"document one");
    let sad = sad_of(authorize(&k, &alice, k.id("rsa"), 1, None));
    let got = sign(
        &k,
        &alice,
        k.id("rsa"),
        &sad,
        &[h.clone()],
        SHA256_RSA,
        json!({ "hashAlgo": SHA256 }),
    );
    let sig = signatures(&got);
    assert!(verifies(
        &rsa_cert,
        &h,
        MessageDigest::sha256(),
        &sig[0],
        None
    ));
    assert!(!verifies(
        &rsa_cert,
        &digest(MessageDigest::sha256(), b"other"),
        MessageDigest::sha256(),
        &sig[0],
        None
    ));

    // plain rsaEncryption with hashAlgo SHA-384
    let h = digest(MessageDigest::sha384(), b"document two");
    let sad = sad_of(authorize(&k, &alice, k.id("rsa"), 1, None));
    let sig = signatures(&sign(
        &k,
        &alice,
        k.id("rsa"),
        &sad,
        &[h.clone()],
        RSA,
        json!({ "hashAlgo": SHA384 }),
    ));
    assert!(verifies(
        &rsa_cert,
        &h,
        MessageDigest::sha384(),
        &sig[0],
        None
    ));

    // RSASSA-PSS with parameters
    let h = digest(MessageDigest::sha256(), b"document three");
    let sad = sad_of(authorize(&k, &alice, k.id("rsa"), 1, None));
    let sig = signatures(&sign(
        &k,
        &alice,
        k.id("rsa"),
        &sad,
        &[h.clone()],
        RSA_PSS,
        json!({ "signAlgoParams": PSS_PARAMS }),
    ));
    assert!(verifies(
        &rsa_cert,
        &h,
        MessageDigest::sha256(),
        &sig[0],
        Some(32)
    ));

    // ECDSA, DER-encoded
    let h = digest(MessageDigest::sha256(), b"document four");
    let sad = sad_of(authorize(&k, &alice, k.id("ec"), 1, None));
    let sig = signatures(&sign(
        &k,
        &alice,
        k.id("ec"),
        &sad,
        &[h.clone()],
        ECDSA_SHA256,
        json!({}),
    ));
    assert!(
        openssl::ecdsa::EcdsaSig::from_der(&sig[0]).is_ok(),
        "DER ECDSA-Sig-Value"
    );
    assert!(verifies(
        &ec_cert,
        &h,
        MessageDigest::sha256(),
        &sig[0],
        None
    ));

    // several hashes in one call (multisign 3), in order
    let multi_cert = signer_cert(&k, &alice, k.id("multi"));
    let hs: Vec<Vec<u8>> = (0..3)
        .map(|i| digest(MessageDigest::sha256(), format!("batch {i}").as_bytes()))
        .collect();
    let sad = sad_of(authorize(&k, &alice, k.id("multi"), 3, None));
    let sigs = signatures(&sign(
        &k,
        &alice,
        k.id("multi"),
        &sad,
        &hs,
        ECDSA_SHA256,
        json!({}),
    ));
    assert_eq!(sigs.len(), 3);
    for (h, sig) in hs.iter().zip(&sigs) {
        assert!(verifies(&multi_cert, h, MessageDigest::sha256(), sig, None));
    }
}

#[test]
fn authorize_refuses_with_the_spec_errors() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let call = |body: Value| k.call("credentials/authorize", Some(&alice), &body);
    assert_error(
        &call(json!({ "numSignatures": 1, "PIN": PIN })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("bob"), "numSignatures": 1, "PIN": PIN })),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "PIN": PIN })),
        400,
        "invalid_request",
        "Missing (or invalid type) integer parameter numSignatures",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "numSignatures": "two", "PIN": PIN })),
        400,
        "invalid_request",
        "Missing (or invalid type) integer parameter numSignatures",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "numSignatures": 0, "PIN": PIN })),
        400,
        "invalid_request",
        "Invalid value for parameter numSignatures",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "numSignatures": 2, "PIN": PIN })),
        400,
        "invalid_request",
        "Numbers of signatures is too high",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "numSignatures": 1, "PIN": "654321" })),
        400,
        "invalid_pin",
        "The PIN is invalid",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "numSignatures": 1 })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter PIN",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("scal2"), "numSignatures": 1, "PIN": PIN })),
        400,
        "invalid_request",
        "Missing (or invalid type) array parameter hash",
    );
    assert_error(
        &call(
            json!({ "credentialID": k.id("scal2"), "numSignatures": 1, "PIN": PIN, "hash": ["***"] }),
        ),
        400,
        "invalid_request",
        "Invalid Base64 hash string parameter",
    );
    // numeric strings are tolerated (the spec's own diagram sends "2")
    let (status, _) =
        call(json!({ "credentialID": k.id("multi"), "numSignatures": "2", "PIN": PIN }));
    assert_eq!(status, 200);
    // a disabled credential
    csc_api::admin::credential_destroy(k.sam(), k.id("ec")).expect("credential destroy");
    assert_error(
        &call(json!({ "credentialID": k.id("ec"), "numSignatures": 1, "PIN": PIN })),
        400,
        "invalid_request",
        "The credential identified by credentialID is disabled",
    );
}

#[test]
fn sads_are_single_use_and_bound_to_user_credential_and_hashes() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let bob = k.login("bob", BOB_PASSWORD);
    let h1 = digest(MessageDigest::sha256(), b"one");
    let h2 = digest(MessageDigest::sha256(), b"two");

    // replay of a used SAD
    let sad = sad_of(authorize(&k, &alice, k.id("ec"), 1, None));
    signatures(&sign(
        &k,
        &alice,
        k.id("ec"),
        &sad,
        &[h1.clone()],
        ECDSA_SHA256,
        json!({}),
    ));
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("ec"),
            &sad,
            &[h1.clone()],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );

    // another user's token, another credential: refused and not burnt
    let sad = sad_of(authorize(&k, &alice, k.id("ec"), 1, None));
    assert_error(
        &sign(
            &k,
            &bob,
            k.id("ec"),
            &sad,
            &[h1.clone()],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &sign(
            &k,
            &bob,
            k.id("bob"),
            &sad,
            &[h1.clone()],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("multi"),
            &sad,
            &[h1.clone()],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // malformed requests do not burn it either
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("ec"),
            &sad,
            &[vec![0u8; 20]],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid digest value length",
    );
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("ec"),
            &sad,
            &[h1.clone()],
            SHA256_RSA,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter signAlgo",
    );
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("ec"),
            &sad,
            &[h1.clone(), h2.clone()],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    signatures(&sign(
        &k,
        &alice,
        k.id("ec"),
        &sad,
        &[h1.clone()],
        ECDSA_SHA256,
        json!({}),
    ));

    // SCAL 2: only the authorized hashes, each once
    let sad = sad_of(authorize(
        &k,
        &alice,
        k.id("scal2"),
        2,
        Some(&[h1.clone(), h2.clone()]),
    ));
    let foreign = digest(MessageDigest::sha256(), b"foreign");
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("scal2"),
            &sad,
            &[foreign],
            SHA256_RSA,
            json!({}),
        ),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    signatures(&sign(
        &k,
        &alice,
        k.id("scal2"),
        &sad,
        &[h2.clone()],
        SHA256_RSA,
        json!({}),
    ));
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("scal2"),
            &sad,
            &[h2.clone()],
            SHA256_RSA,
            json!({}),
        ),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    signatures(&sign(
        &k,
        &alice,
        k.id("scal2"),
        &sad,
        &[h1.clone()],
        SHA256_RSA,
        json!({}),
    ));
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("scal2"),
            &sad,
            &[h1.clone()],
            SHA256_RSA,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
}

#[test]
fn sign_hash_validates_every_field() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let h = b64(&digest(MessageDigest::sha256(), b"x"));
    let sad = sad_of(authorize(&k, &alice, k.id("rsa"), 1, None));
    let call = |body: Value| k.call("signatures/signHash", Some(&alice), &body);
    let id = k.id("rsa");
    assert_error(
        &call(json!({ "credentialID": id, "hash": [h], "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter SAD",
    );
    assert_error(
        &call(json!({ "SAD": sad, "hash": [h], "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Missing (or invalid type) array parameter hash",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": "abc", "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Missing (or invalid type) array parameter hash",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": [], "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Empty hash array",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": ["@@"], "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Invalid Base64 hash string parameter",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": [h] })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter signAlgo",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": "1.2.3" })),
        400,
        "invalid_request",
        "Invalid parameter signAlgo",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": RSA })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter hashAlgo",
    );
    assert_error(
        &call(
            json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": RSA, "hashAlgo": "1.3.14.3.2.26" }),
        ),
        400,
        "invalid_request",
        "Invalid parameter hashAlgo",
    );
    assert_error(
        &call(
            json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": SHA256_RSA, "hashAlgo": SHA384 }),
        ),
        400,
        "invalid_request",
        "Invalid parameter hashAlgo",
    );
    assert_error(
        &call(json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": RSA_PSS })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter signAlgoParams",
    );
    assert_error(
        &call(
            json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": RSA_PSS, "signAlgoParams": "AAAA" }),
        ),
        400,
        "invalid_request",
        "Invalid parameter signAlgoParams",
    );
    assert_error(
        &call(
            json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": SHA256_RSA, "clientData": 5 }),
        ),
        400,
        "invalid_request",
        "Invalid parameter clientData",
    );
    assert_error(
        &call(json!({ "SAD": "bogus", "credentialID": id, "hash": [h], "signAlgo": SHA256_RSA })),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // after all that, the SAD is still good
    let (status, _) = call(
        json!({ "SAD": sad, "credentialID": id, "hash": [h], "signAlgo": SHA256_RSA, "clientData": "tx-1" }),
    );
    assert_eq!(status, 200);
}

/// The row of a `SELECT count(*) AS n ...` run on a database behind the server's back.
#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `serve` deletes expired SADs and tokens on its own (`purge_interval_secs`), in audited
/// transactions, so the tables that grow with traffic do not grow without end.
#[test]
fn the_server_purges_expired_sads_and_audits_it() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let s = Signers::only(&["multi"]);
    let (_server, api) = s.serve(&[
        ("CSC_SAD_TTL_SECS", "1"),
        ("CSC_PURGE_INTERVAL_SECS", "1"),
        ("CSC_PURGE_AFTER_SECS", "0"),
    ]);
    let alice = api.login("alice", ALICE_PASSWORD);
    let sad = sad_of(authorize(&api, &alice, s.id("multi"), 2, None));
    let url = s.dir().join("csc.db").display().to_string();
    let count = |sql: &str| -> i64 {
        let mut conn = SqliteConnection::establish(&url).expect("open db");
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
    };
    let purge_audited = "SELECT count(*) AS n FROM audit_log WHERE event = 'housekeeping.purge' AND detail LIKE '%\"sads\":1%'";
    // the SAD is stored, unless the purger (every second) already took it, which it audits:
    // whatever the machine's speed
    assert!(count("SELECT count(*) AS n FROM sads") == 1 || count(purge_audited) >= 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count("SELECT count(*) AS n FROM sads") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired SAD was not purged"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let audited = count(purge_audited);
    assert!(audited >= 1, "the purge is audited with its counts");
    // the purged SAD is unknown now; the live access token still works
    let h = digest(MessageDigest::sha256(), b"late");
    let r = sign(
        &api,
        &alice,
        s.id("multi"),
        &sad,
        &[h],
        ECDSA_SHA256,
        json!({}),
    );
    assert_eq!(r.0, 400, "{r:?}");
    assert_eq!(r.1["error"], "invalid_request", "{r:?}");
    let verdict = run_ok(csc(s.dir()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true);
}

#[test]
fn an_expired_sad_is_refused_and_cannot_be_extended() {
    let k = Kit::with(|c| c.sad_ttl_secs = 1);
    let alice = k.login("alice", ALICE_PASSWORD);
    let h = digest(MessageDigest::sha256(), b"late");
    let sad = sad_of(authorize(&k, &alice, k.id("multi"), 2, None));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("multi"),
            &sad,
            &[h],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "SAD expired",
    );
    assert_error(
        &k.call(
            "credentials/extendTransaction",
            Some(&alice),
            &json!({ "credentialID": k.id("multi"), "SAD": sad }),
        ),
        400,
        "invalid_request",
        "SAD expired",
    );
}

#[test]
fn extend_transaction_chains_sads_for_nested_signatures() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let cert = signer_cert(&k, &alice, k.id("multi"));
    let h1 = digest(MessageDigest::sha256(), b"first revision");
    let h2 = digest(MessageDigest::sha256(), b"second revision");
    let h3 = digest(MessageDigest::sha256(), b"third revision");
    let extend = |sad: &str, hashes: &[Vec<u8>]| {
        let mut body = json!({ "credentialID": k.id("multi"), "SAD": sad });
        if !hashes.is_empty() {
            body["hash"] = json!(hashes.iter().map(|h| b64(h)).collect::<Vec<_>>());
        }
        k.call("credentials/extendTransaction", Some(&alice), &body)
    };
    let sign_one = |sad: &str, h: &Vec<u8>| {
        let got = sign(
            &k,
            &alice,
            k.id("multi"),
            sad,
            std::slice::from_ref(h),
            ECDSA_SHA256,
            json!({}),
        );
        let sig = signatures(&got);
        assert!(verifies(&cert, h, MessageDigest::sha256(), &sig[0], None));
    };
    // spec §13.8 (SCAL 1): authorize 3 signatures binding only h1, then bind h2 and h3 as they
    // appear
    let sad1 = sad_of(authorize(&k, &alice, k.id("multi"), 3, Some(&[h1.clone()])));
    sign_one(&sad1, &h1);
    let sad2 = sad_of(extend(&sad1, &[h2.clone()]));
    assert_ne!(sad1, sad2);
    assert_error(
        &sign(
            &k,
            &alice,
            k.id("multi"),
            &sad1,
            &[h2.clone()],
            ECDSA_SHA256,
            json!({}),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    assert_error(
        &extend(&sad1, &[h3.clone()]),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    sign_one(&sad2, &h2);
    let sad3 = sad_of(extend(&sad2, &[h3.clone()]));
    sign_one(&sad3, &h3);
    // all three signatures spent: nothing left to extend or sign
    assert_error(
        &extend(&sad3, &[h1.clone()]),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // an extension may not bind more hashes than signatures remain
    let sad = sad_of(authorize(&k, &alice, k.id("multi"), 2, Some(&[h1.clone()])));
    assert_error(
        &extend(&sad, &[h2.clone(), h3.clone()]),
        400,
        "invalid_request",
        "Numbers of signatures is too high",
    );
    // a bogus SAD, another user's
    assert_error(
        &extend("bogus", &[h2.clone()]),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
}

/// SCAL 2 is strict (the SAD is linked to the hashes the signer authorized): authorize carries
/// exactly numSignatures hashes, and extendTransaction renews only hashes still bound to the
/// SAD — a hash the signer never authorized needs a new activation, and the SAD survives the
/// refusal.
#[test]
fn scal2_binds_exactly_num_signatures_hashes_and_renews_only_those() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let scal2 = k.id("scal2");
    let cert = signer_cert(&k, &alice, scal2);
    let h: Vec<_> = (0..3u8)
        .map(|i| digest(MessageDigest::sha256(), &[i]))
        .collect();
    let foreign = digest(MessageDigest::sha256(), b"never shown to the signer");
    for (n, hashes) in [(3, &h[..2]), (2, &h[..3]), (1, &h[..2])] {
        assert_error(
            &authorize(&k, &alice, scal2, n, Some(hashes)),
            400,
            "invalid_request",
            "The number of hashes must be equal to numSignatures for SCAL 2",
        );
    }
    let extend = |sad: &str, hashes: &[Vec<u8>]| {
        let body = json!({
            "credentialID": scal2, "SAD": sad,
            "hash": hashes.iter().map(|d| b64(d)).collect::<Vec<_>>(),
        });
        k.call("credentials/extendTransaction", Some(&alice), &body)
    };
    let sad1 = sad_of(authorize(&k, &alice, scal2, 3, Some(&h)));
    let sig = signatures(&sign(
        &k,
        &alice,
        scal2,
        &sad1,
        &h[..1],
        SHA256_RSA,
        json!({}),
    ));
    assert!(verifies(
        &cert,
        &h[0],
        MessageDigest::sha256(),
        &sig[0],
        None
    ));
    for wanted in [
        vec![foreign.clone()],
        vec![h[1].clone(), foreign.clone()],
        vec![h[0].clone()],
    ] {
        assert_error(
            &extend(&sad1, &wanted),
            400,
            "invalid_request",
            "Hash is not authorized by the SAD. A new credentials/authorize is required",
        );
    }
    // the same hashes, then a subset of them: renewed
    let sad2 = sad_of(extend(&sad1, &h[1..]));
    let sad3 = sad_of(extend(&sad2, &h[2..]));
    assert_error(
        &sign(&k, &alice, scal2, &sad3, &h[1..2], SHA256_RSA, json!({})),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    let sig = signatures(&sign(
        &k,
        &alice,
        scal2,
        &sad3,
        &h[2..],
        SHA256_RSA,
        json!({}),
    ));
    assert!(verifies(
        &cert,
        &h[2],
        MessageDigest::sha256(),
        &sig[0],
        None
    ));
}

/// A transaction's life is capped (`max_transaction_life_secs`): with a cap of 600 s under the
/// default SAD lifetime of 3600 s, authorize says `expiresIn` 600 and a renewal never more.
#[test]
fn renewed_sads_never_outlive_the_maximum_transaction_life() {
    let k = Kit::with(|c| c.max_transaction_life_secs = 600);
    let alice = k.login("alice", ALICE_PASSWORD);
    let multi = k.id("multi");
    let (status, got) = authorize(&k, &alice, multi, 3, None);
    assert_eq!((status, &got["expiresIn"]), (200, &json!(600)), "{got}");
    let mut sad = got["SAD"].as_str().expect("SAD").to_owned();
    for _ in 0..2 {
        let (status, got) = k.call(
            "credentials/extendTransaction",
            Some(&alice),
            &json!({ "credentialID": multi, "SAD": sad }),
        );
        assert_eq!(status, 200, "{got}");
        let expires_in = got["expiresIn"].as_u64().expect("expiresIn");
        assert!(expires_in <= 600, "capped, not a fresh hour: {got}");
        sad = got["SAD"].as_str().expect("SAD").to_owned();
    }
}

/// Whether a racer's answer is the signature (1) or the refusal of the spent SAD (0).
fn won(status: u16, v: &Value) -> usize {
    match status {
        200 => 1,
        400 => {
            assert_eq!(v["error_description"], "Invalid parameter SAD", "{v}");
            0
        }
        other => panic!("unexpected {other}: {v}"),
    }
}

fn contended_sign_hash(cred: &str, sad: &str) -> Value {
    let h = b64(&digest(MessageDigest::sha256(), b"contended"));
    json!({ "credentialID": cred, "SAD": sad, "hash": [h], "signAlgo": ECDSA_SHA256 })
}

/// Fires `n` signHash calls at once on a SAD through `apis` (round robin, one thread each)
/// and returns how many succeeded.
pub fn race(apis: &[Api], token: &str, cred: &str, sad: &str, n: usize) -> usize {
    let barrier = Arc::new(Barrier::new(n));
    let body = contended_sign_hash(cred, sad);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let api = &apis[i % apis.len()];
                let barrier = barrier.clone();
                let body = &body;
                scope.spawn(move || {
                    barrier.wait();
                    let (status, v) = api.call("signatures/signHash", Some(token), body);
                    won(status, &v)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    })
}

/// The same in process: `n` requests in flight at once on the kit's runtime, their blocking
/// work side by side on its blocking pool.
fn race_in_process(k: &Kit, token: &str, cred: &str, sad: &str, n: usize) -> usize {
    let body = contended_sign_hash(cred, sad);
    let reqs = (0..n)
        .map(|_| k.csc_request("signatures/signHash", Some(token), &body))
        .collect();
    k.send_all(reqs)
        .iter()
        .map(|r| won(r.status, &r.json()))
        .sum()
}

#[test]
fn thirty_two_concurrent_sign_hash_calls_spend_a_one_signature_sad_once() {
    spend_each_sad_once_under_32_racers(&Kit::new());
}

/// The same on PostgreSQL (row locks instead of SQLite's single writer), in one process.
#[test]
fn on_postgres_thirty_two_concurrent_sign_hash_calls_spend_a_one_signature_sad_once() {
    let db = PgDatabase::new();
    let k = Kit::with(|c| c.database_url = db.url.clone());
    spend_each_sad_once_under_32_racers(&k);
}

/// Three one-signature SADs and a two-signature one, each raced by 32 signHash calls: one
/// signature each (two for the last), one audit record per signature, the chain intact.
fn spend_each_sad_once_under_32_racers(k: &Kit) {
    let alice = k.login("alice", ALICE_PASSWORD);
    for _ in 0..3 {
        let sad = sad_of(authorize(k, &alice, k.id("ec"), 1, None));
        assert_eq!(race_in_process(k, &alice, k.id("ec"), &sad, 32), 1);
    }
    let sad = sad_of(authorize(k, &alice, k.id("multi"), 2, None));
    assert_eq!(race_in_process(k, &alice, k.id("multi"), &sad, 32), 2);
    assert!(k.audit_intact());
    let signed = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "signature.sign_hash" && r.outcome == "success")
        .count();
    assert_eq!(signed, 5, "one audit record per signature handed out");
}

#[test]
fn oversized_and_malformed_bodies_are_csc_errors_and_the_server_keeps_serving() {
    let k = Kit::with(|c| c.max_body_bytes = 65536);
    let alice = k.login("alice", ALICE_PASSWORD);
    let big = format!(
        "{{\"credentialID\":\"{}\",\"pad\":\"{}\"}}",
        k.id("ec"),
        "x".repeat(200_000)
    );
    for body in [
        big,
        "{\"credentialID\":".to_owned(),
        "[1,2,3]".to_owned(),
        "\u{0}".to_owned(),
    ] {
        let r = k.send(
            k.post("/csc/v1/credentials/info")
                .insert_header(("authorization", format!("Bearer {alice}")))
                .insert_header(("content-type", "application/json"))
                .set_payload(body),
        );
        assert_eq!(r.status, 400);
        let v: Value = serde_json::from_slice(&r.body).expect("CSC error body");
        assert_eq!(v["error"], "invalid_request");
        assert!(v["error_description"].is_string());
    }
    let (status, _) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": k.id("ec") }),
    );
    assert_eq!(status, 200);
}

#[test]
fn secrets_never_reach_the_database_or_its_audit_log() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let h = digest(MessageDigest::sha256(), b"secret-free");
    let sad = sad_of(authorize(&k, &alice, k.id("ec"), 1, None));
    signatures(&sign(
        &k,
        &alice,
        k.id("ec"),
        &sad,
        &[h],
        ECDSA_SHA256,
        json!({}),
    ));
    let _ = authorize(&k, &alice, k.id("ec"), 1, None);
    let _ = k.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": k.id("ec"), "numSignatures": 1, "PIN": "999999" }),
    );
    let db = std::fs::read(k.dir().join("csc.db")).expect("db");
    let wal = std::fs::read(k.dir().join("csc.db-wal")).unwrap_or_default();
    for secret in [PIN, "999999", ALICE_PASSWORD, sad.as_str(), alice.as_str()] {
        assert!(
            !contains_secret(&db, secret.as_bytes()) && !contains_secret(&wal, secret.as_bytes()),
            "{secret} stored in clear"
        );
    }
    assert!(k.audit_intact());
}

/// The server log is the binary's standard error: requests are logged there (line and status),
/// never a secret. The same calls as above, and an online OTP sent (its code is never logged).
#[test]
fn secrets_and_otp_codes_never_reach_the_server_log() {
    let s = Signers::only(&["ec", "scal2"]);
    let (server, api) = s.serve(&[("RUST_LOG", "debug")]);
    let alice = api.login("alice", ALICE_PASSWORD);
    let h = digest(MessageDigest::sha256(), b"secret-free");
    let sad = sad_of(authorize(&api, &alice, s.id("ec"), 1, None));
    signatures(&sign(
        &api,
        &alice,
        s.id("ec"),
        &sad,
        &[h],
        ECDSA_SHA256,
        json!({}),
    ));
    let _ = authorize(&api, &alice, s.id("ec"), 1, None);
    let _ = api.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": s.id("ec"), "numSignatures": 1, "PIN": "999999" }),
    );
    let code = api
        .online_otp(&alice, s.id("scal2"))
        .expect("an online OTP in the outbox");
    // the access log line of the last request may be written just after its answer: wait for it
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let log = loop {
        let log = server.log.lock().map(|l| l.clone()).unwrap_or_default();
        if log.contains("POST /csc/v1/credentials/sendOTP") || std::time::Instant::now() > deadline
        {
            break without_timestamps(&log);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(server);
    assert!(
        log.contains("POST /csc/v1/signatures/signHash"),
        "requests are logged: {log}"
    );
    assert!(log.contains("POST /csc/v1/credentials/sendOTP"), "{log}");
    for secret in [PIN, "999999", ALICE_PASSWORD, sad.as_str(), alice.as_str()] {
        assert!(!log.contains(secret), "{secret} in the server log");
    }
    assert!(!log.contains(&code), "the code is in the server log");
    let verdict = run_ok(csc(s.dir()).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true);
}

/// A fresh PostgreSQL database for this test, dropped on drop.
pub(crate) struct PgDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub(crate) fn new() -> PgDatabase {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        let admin = std::env::var("CSC_TEST_POSTGRES_URL").expect(
            "CSC_TEST_POSTGRES_URL is not set: run scripts/test (it starts a throwaway PostgreSQL) \
             or point it at an admin URL such as postgresql://csc@127.0.0.1:54329/postgres",
        );
        let name = format!("csc_it_{}", uuid_like());
        let mut conn = PgConnection::establish(&admin).expect("connect to PostgreSQL");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        PgDatabase { admin, name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        if let Ok(mut conn) = PgConnection::establish(&self.admin) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).expect("rand");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn two_server_processes_on_one_postgres_database_never_spend_a_sad_twice() {
    let db = PgDatabase::new();
    let env = [("CSC_DATABASE_URL", db.url.as_str())];
    let s = Signers::with_env_only(&env, &["ec", "multi"]);
    let (_a, api_a) = s.serve(&env);
    let (_b, api_b) = s.serve(&env);
    // a token from one instance works on the other: state lives in the database
    let alice = api_a.login("alice", ALICE_PASSWORD);
    assert_eq!(
        api_b.call("credentials/list", Some(&alice), &json!({})).0,
        200
    );
    let apis = [api_a, api_b];
    for round in 0..3 {
        let sad = sad_of(authorize(&apis[round % 2], &alice, s.id("ec"), 1, None));
        assert_eq!(
            race(&apis, &alice, s.id("ec"), &sad, 32),
            1,
            "round {round}"
        );
    }
    // a two-signature SAD spent from both sides yields exactly two signatures
    let sad = sad_of(authorize(&apis[0], &alice, s.id("multi"), 2, None));
    assert_eq!(race(&apis, &alice, s.id("multi"), &sad, 32), 2);
    let verdict = run_ok(csc(s.dir()).args(["audit", "verify"]).envs(env));
    assert_eq!(verdict["intact"], true, "{verdict}");
    // exactly one audit record per signature handed out (3 + 2), none for the refused racers
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    let signed: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM audit_log WHERE event = 'signature.sign_hash' AND outcome = 'success'",
    )
    .get_result(&mut conn)
    .expect("count");
    assert_eq!(signed.n, 5);
}
