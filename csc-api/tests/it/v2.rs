//! The CSC v2.0.0.2 skin (`/csc/v2`) against the real app in process (SoftHSM2 + SQLite,
//! [`crate::kit`]): every v2 method's success path (signatures verified against the
//! certificate's public key) and its refusals with their exact status and strings; and the one
//! core under both versions (issue 12: "No rule, limit or audit record differs by version"): a
//! SAD of one version signs on the other, PIN failures on v2 lock v1, one audit record shape.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
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
const SHA1: &str = "1.3.14.3.2.26";

/// The generic text of a malformed request (spec §11: a missing or malformed Bearer header).
const MALFORMED: &str = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.";

/// `POST /csc/v2/{method}` with an optional Bearer: `(status, JSON)`.
fn v2(k: &Kit, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    k.call_v2(method, token, body)
}

/// `POST /csc/v1/{method}`.
fn v1(k: &Kit, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    k.call(method, token, body)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    openssl::sha::sha256(data).to_vec()
}

fn b64(d: &[u8]) -> String {
    STANDARD.encode(d)
}

fn b64s(ds: &[&[u8]]) -> Vec<String> {
    ds.iter().map(|d| b64(d)).collect()
}

fn sad_of(got: &(u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(
        got.1["expiresIn"].as_u64().is_some_and(|s| s > 0),
        "{}",
        got.1
    );
    got.1["SAD"].as_str().expect("SAD").to_owned()
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

/// The signer certificate, read with v2 `credentials/info`.
fn signer_cert(k: &Kit, token: &str, cred: &str) -> X509 {
    let (status, info) = v2(
        k,
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

/// Verifies a raw SHA-256 signature (RSA PKCS#1 v1.5 or PSS with `pss_salt`, or DER ECDSA)
/// over `digest` with the certificate's key ([`crate::api::verifies`]).
fn verifies(cert: &X509, digest: &[u8], sig: &[u8], pss_salt: Option<i32>) -> bool {
    crate::api::verifies(cert, digest, MessageDigest::sha256(), sig, pss_salt)
}

/// v2 `credentials/authorize` with the PIN as `authData`.
fn authorize_pin(k: &Kit, token: &str, cred: &str, n: u32, hashes: Option<&[&[u8]]>) -> String {
    let mut body = json!({
        "credentialID": cred, "numSignatures": n,
        "authData": [{ "id": "PIN", "value": PIN }],
    });
    if let Some(h) = hashes {
        body["hashes"] = json!(b64s(h));
        body["hashAlgorithmOID"] = json!(SHA256);
    }
    sad_of(&v2(k, "credentials/authorize", Some(token), &body))
}

/// v2 `credentials/getChallenge` for the online OTP (204), then the code from the outbox.
fn challenge(k: &Kit, token: &str, cred: &str) -> String {
    let resp = k.send(
        k.post("/csc/v2/credentials/getChallenge")
            .insert_header(("authorization", format!("Bearer {token}")))
            .set_json(json!({ "credentialID": cred, "authObjectID": "OTP" })),
    );
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty(), "204 has no body");
    outbox_code(&k.dir().join("otp-outbox.log"), cred).expect("the code in the outbox")
}

fn methods_of(info: &Value) -> Vec<String> {
    info["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn info_of_each_version_lists_exactly_the_methods_it_serves() {
    let k = Kit::new();
    let (status, info) = v2(&k, "info", None, &json!({ "lang": "fr-FR" }));
    assert_eq!(status, 200, "{info}");
    let got = k.send(k.get("/csc/v2/info")).pair();
    assert_eq!(got, (200, info.clone()), "GET info answers the same");
    assert_eq!(info["specs"], "2.0.0.2");
    assert_eq!(info["lang"], "en-US", "one language is served and said");
    for member in ["name", "logo", "region", "description"] {
        assert!(info[member].is_string(), "{member}");
    }
    assert_eq!(
        methods_of(&info),
        [
            "auth/login",
            "auth/revoke",
            "credentials/list",
            "credentials/info",
            "credentials/authorize",
            "credentials/authorizeCheck",
            "credentials/getChallenge",
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
    // the base URI of the oauth2/* paths (as v1) and the RFC 8414 issuer, no trailing slash
    assert_eq!(info["oauth2"], format!("{BASE}/"));
    assert_eq!(info["oauth2Issuer"], BASE);
    assert_eq!(info["asynchronousOperationMode"], false);
    assert_eq!(info["validationInfo"], false);
    // every algorithm some key can use, parameters aligned (null but for PSS)
    let algos = info["signAlgorithms"]["algos"].as_array().expect("algos");
    let params = info["signAlgorithms"]["algoParams"]
        .as_array()
        .expect("algoParams");
    assert_eq!(algos.len(), params.len());
    for oid in [SHA256_RSA, RSA, RSA_PSS, ECDSA_SHA256] {
        assert!(algos.contains(&json!(oid)), "{oid}");
    }
    for (a, p) in algos.iter().zip(params) {
        assert_eq!(p.is_string(), a == RSA_PSS, "{a}: {p}");
    }
    // hash signing only: the CMS formats a client builds around raw signature values
    assert_eq!(info["signature_formats"]["formats"], json!(["C", "P"]));
    assert_eq!(
        info["signature_formats"]["envelope_properties"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(info["conformance_levels"], json!(["Ades-B-B", "Ades-B-T"]));
    // v1 keeps its own answer
    let (_, info1) = v1(&k, "info", None, &json!({}));
    assert_eq!(info1["specs"], "1.0.4.0");
    assert!(info1.get("oauth2Issuer").is_none() && info1.get("signAlgorithms").is_none());

    // every method listed answers (not 404/405); a method not listed is not served
    for (version, info) in [("v1", &info1), ("v2", &info)] {
        for method in methods_of(info) {
            let resp = k.send(
                k.post(&format!("/csc/{version}/{method}"))
                    .set_json(json!({})),
            );
            assert!(
                resp.status != 404 && resp.status != 405,
                "{version} {method}: {}",
                resp.status
            );
        }
    }
    for (version, method) in [
        ("v1", "credentials/getChallenge"),
        ("v1", "credentials/authorizeCheck"),
        ("v2", "signatures/signDoc"),
        ("v2", "signatures/signPolling"),
    ] {
        assert!(!methods_of(if version == "v1" { &info1 } else { &info }).contains(&method.into()));
        let resp = k.send(
            k.post(&format!("/csc/{version}/{method}"))
                .set_json(json!({})),
        );
        assert_eq!(resp.status, 404, "{version} {method}");
    }

    // auth/login and auth/revoke: v1's own, served at /csc/v2 too
    let (status, login) = k
        .send(
            k.post("/csc/v2/auth/login")
                .insert_header(("authorization", crate::kit::basic("alice", ALICE_PASSWORD)))
                .set_json(json!({})),
        )
        .pair();
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().expect("token");
    let (status, _) = v2(&k, "auth/revoke", Some(token), &json!({ "token": token }));
    assert_eq!(status, 204);
    assert_error(
        &v2(&k, "credentials/list", Some(token), &json!({})),
        401,
        "expired_token",
        "The access or refresh token is expired or has been revoked",
    );
}

#[test]
fn credentials_list_describes_and_filters_the_callers_credentials() {
    let k = Kit::new();
    k.create(&["rsa", "ec", "scal2", "bob"]);
    let alice = k.login("alice", ALICE_PASSWORD);
    let mine: std::collections::BTreeSet<String> = ["rsa", "ec", "scal2"]
        .iter()
        .map(|n| k.id(n).to_owned())
        .collect();
    let list = |body: Value| v2(&k, "credentials/list", Some(&alice), &body);
    let ids = |v: &Value| -> Vec<String> {
        v["credentialIDs"]
            .as_array()
            .expect("credentialIDs")
            .iter()
            .map(|i| i.as_str().expect("id").to_owned())
            .collect()
    };

    // plain: the IDs only; v1's paging members are accepted and ignored
    let (status, got) = list(json!({ "maxResults": 1, "pageToken": "not-a-token" }));
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        ids(&got)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        mine
    );
    assert!(got.get("credentialInfos").is_none() && got.get("onlyValid").is_none());
    assert!(got.get("nextPageToken").is_none());

    // with credentialInfo: one description per ID, in order, as credentials/info gives it
    let (status, got) = list(json!({
        "credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true,
    }));
    assert_eq!(status, 200, "{got}");
    let infos = got["credentialInfos"].as_array().expect("credentialInfos");
    assert_eq!(infos.len(), ids(&got).len());
    for (info, id) in infos.iter().zip(ids(&got)) {
        assert_eq!(info["credentialID"], id.as_str());
        let (_, alone) = v2(
            &k,
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": id, "certificates": "chain", "certInfo": true, "authInfo": true }),
        );
        let mut listed = info.clone();
        listed
            .as_object_mut()
            .expect("object")
            .remove("credentialID");
        assert_eq!(
            listed, alone,
            "credentialInfos holds what credentials/info says"
        );
        assert!(
            info["cert"]["certificates"]
                .as_array()
                .expect("certs")
                .len()
                >= 2
        );
        assert!(info["cert"]["issuerDN"].is_string());
    }
    let scal2 = infos
        .iter()
        .find(|i| i["credentialID"] == k.id("scal2"))
        .expect("scal2");
    assert_eq!(scal2["auth"]["expression"], "PIN AND OTP");
    // without authInfo: the mode only
    let (_, got) = list(json!({ "credentialInfo": true }));
    let first = &got["credentialInfos"][0];
    assert_eq!(first["auth"], json!({ "mode": "explicit" }));
    assert_eq!(
        first["cert"]["certificates"].as_array().map(Vec::len),
        Some(1)
    );

    // onlyValid: a disabled key is left out, and the answer says the filter was applied
    csc_api::admin::credential_destroy(k.sam(), k.id("ec")).expect("credential destroy");
    let (status, got) = list(json!({ "onlyValid": true, "credentialInfo": true }));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["onlyValid"], true);
    assert!(!ids(&got).contains(&k.id("ec").to_owned()));
    assert_eq!(ids(&got).len(), 2);
    assert_eq!(got["credentialInfos"].as_array().map(Vec::len), Some(2));
    let (_, got) = list(json!({ "onlyValid": false }));
    assert!(ids(&got).contains(&k.id("ec").to_owned()));
    assert!(got.get("onlyValid").is_none());

    // bob sees his own only
    let bob = k.login("bob", BOB_PASSWORD);
    let (_, got) = v2(&k, "credentials/list", Some(&bob), &json!({}));
    assert_eq!(ids(&got), [k.id("bob")]);

    // refusals
    assert_error(
        &list(json!({ "userID": "alice" })),
        400,
        "invalid_request",
        "userID parameter MUST be null",
    );
    assert_error(
        &list(json!({ "credentialInfo": true, "certificates": "all" })),
        400,
        "invalid_request",
        "Invalid parameter certificates",
    );
    assert_error(
        &list(json!({ "onlyValid": "yes" })),
        400,
        "invalid_request",
        "Invalid parameter onlyValid",
    );
    assert_error(
        &v2(&k, "credentials/list", None, &json!({})),
        400,
        "invalid_request",
        MALFORMED,
    );
    assert_error(
        &v2(&k, "credentials/list", Some("nobody"), &json!({})),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );
}

#[test]
fn credentials_info_describes_the_factors_as_authentication_objects() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let info = |cred: &str| {
        let got = v2(
            &k,
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": cred, "authInfo": true, "certInfo": true }),
        );
        assert_eq!(got.0, 200, "{}", got.1);
        got.1
    };
    // the PIN alone
    let rsa = info(k.id("rsa"));
    assert_eq!(
        rsa["auth"],
        json!({
            "mode": "explicit", "expression": "PIN",
            "objects": [{ "type": "Password", "id": "PIN", "format": "A", "label": "PIN",
                          "description": "The PIN chosen for this signing key" }],
        })
    );
    for v1_only in ["authMode", "PIN", "OTP"] {
        assert!(rsa.get(v1_only).is_none(), "{v1_only}");
    }
    assert_eq!(rsa["SCAL"], "1");
    assert_eq!(rsa["multisign"], 1);
    assert_eq!(rsa["lang"], "en-US");
    assert_eq!(rsa["key"]["status"], "enabled");
    assert_eq!(rsa["key"]["len"], 2048);
    assert!(
        rsa["key"]["algo"]
            .as_array()
            .expect("algo")
            .contains(&json!(SHA256_RSA))
    );
    assert_eq!(rsa["cert"]["status"], "valid");
    assert!(rsa["cert"]["serialNumber"].is_string() && rsa["cert"]["validTo"].is_string());
    assert_eq!(
        rsa["cert"]["certificates"].as_array().map(Vec::len),
        Some(1)
    );
    // PIN and an online OTP: the code is the response to a challenge sent out of band
    let scal2 = info(k.id("scal2"));
    assert_eq!(scal2["SCAL"], "2");
    assert_eq!(scal2["multisign"], 5);
    assert_eq!(scal2["auth"]["expression"], "PIN AND OTP");
    assert_eq!(
        scal2["auth"]["objects"][1],
        json!({ "type": "ChallengeResponse", "id": "OTP", "format": "N", "label": "OTP",
                "description": "The 6-digit code sent to you on request (credentials/getChallenge)" })
    );
    // PIN and a TOTP app: a password the client-side generator makes
    let totp = k
        .credential_create("alice", &["--key", "ec-p256", "--otp"])
        .expect("credential");
    let totp = info(totp["credentialID"].as_str().expect("id"));
    assert_eq!(totp["key"]["curve"], "1.2.840.10045.3.1.7");
    assert_eq!(totp["auth"]["objects"][1]["type"], "Password");
    assert_eq!(totp["auth"]["objects"][1]["generator"], "totp");
    assert_eq!(totp["auth"]["objects"][1]["format"], "N");
    // OAuth 2.0 only: the mode, no objects
    let oauth = k
        .credential_create("alice", &["--key", "ec-p256", "--auth-mode", "oauth2code"])
        .expect("credential");
    assert_eq!(
        info(oauth["credentialID"].as_str().expect("id"))["auth"],
        json!({ "mode": "oauth2code" })
    );

    // refusals
    let call = |body: Value| v2(&k, "credentials/info", Some(&alice), &body);
    assert_error(
        &call(json!({})),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("bob") })),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &call(json!({ "credentialID": k.id("rsa"), "certificates": "some" })),
        400,
        "invalid_request",
        "Invalid parameter certificates",
    );

    // a credential-scope token (a SAD) authorizes credentials/info of its own credential only
    let sad = authorize_pin(&k, &alice, k.id("rsa"), 1, None);
    let (status, mine) = v2(
        &k,
        "credentials/info",
        Some(&sad),
        &json!({ "credentialID": k.id("rsa"), "authInfo": true, "certInfo": true }),
    );
    assert_eq!((status, &mine), (200, &rsa));
    assert_error(
        &v2(
            &k,
            "credentials/info",
            Some(&sad),
            &json!({ "credentialID": k.id("ec") }),
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert_error(
        &v2(
            &k,
            "credentials/info",
            Some("not-a-token"),
            &json!({ "credentialID": k.id("rsa") }),
        ),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );
}

#[test]
fn authorize_takes_auth_data_and_refuses_with_the_spec_errors() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let call = |body: Value| v2(&k, "credentials/authorize", Some(&alice), &body);
    let pin = json!([{ "id": "PIN", "value": PIN }]);

    // authData, and the flat PIN some v2 clients still send
    let got = call(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin,
                           "description": "contract", "clientData": "tx-1" }),
    );
    sad_of(&got);
    sad_of(&call(
        json!({ "credentialID": rsa, "numSignatures": 1, "PIN": PIN }),
    ));

    let invalid = |body: Value, description: &str| {
        assert_error(&call(body), 400, "invalid_request", description);
    };
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "PIN": PIN }),
        "Invalid parameter authData",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": { "id": "PIN" } }),
        "Missing (or invalid type) array parameter authData",
    );
    for bad in [
        json!([{ "id": "SMS", "value": "1" }]),
        json!([{ "id": "OTP", "value": "123456" }, { "id": "PIN", "value": PIN }]),
        json!([{ "id": "PIN", "value": PIN }, { "id": "PIN", "value": PIN }]),
        json!(["PIN"]),
        json!([{ "value": PIN }]),
        json!([{ "id": "PIN", "value": 123456 }]),
    ] {
        invalid(
            json!({ "credentialID": rsa, "numSignatures": 1, "authData": bad }),
            "Invalid parameter authData",
        );
    }
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": [] }),
        "Missing (or invalid type) string parameter PIN",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": [{ "id": "PIN" }] }),
        "Missing (or invalid type) string parameter PIN",
    );
    assert_error(
        &call(json!({ "credentialID": rsa, "numSignatures": 1,
                      "authData": [{ "id": "PIN", "value": "000000" }] })),
        400,
        "invalid_pin",
        "The PIN is invalid",
    );
    // hashes come with their algorithm, each of its length
    let h = b64(&sha256(b"doc"));
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "hashes": [h] }),
        "Missing (or invalid type) string parameter hashAlgorithmOID",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "hashes": [h],
                "hashAlgorithmOID": SHA1 }),
        "Invalid parameter hashAlgorithmOID",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "hashes": [h],
                "hashAlgorithmOID": SHA384 }),
        "Invalid digest value length",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "hashes": h,
                "hashAlgorithmOID": SHA256 }),
        "Missing (or invalid type) array parameter hashes",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "hashes": [],
                "hashAlgorithmOID": SHA256 }),
        "Empty hash array",
    );
    // the v1 table for the rest
    invalid(
        json!({ "numSignatures": 1, "authData": pin }),
        "Missing (or invalid type) string parameter credentialID",
    );
    invalid(
        json!({ "credentialID": k.id("bob"), "numSignatures": 1, "authData": pin }),
        "Invalid parameter credentialID",
    );
    invalid(
        json!({ "credentialID": rsa, "authData": pin }),
        "Missing (or invalid type) integer parameter numSignatures",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 0, "authData": pin }),
        "Invalid value for parameter numSignatures",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 2, "authData": pin }),
        "Numbers of signatures is too high",
    );
    invalid(
        json!({ "credentialID": rsa, "numSignatures": 1, "authData": pin, "description": 5 }),
        "Invalid parameter description",
    );
    let oauth = k
        .credential_create("alice", &["--key", "ec-p256", "--auth-mode", "oauth2code"])
        .expect("credential");
    invalid(
        json!({ "credentialID": oauth["credentialID"], "numSignatures": 1, "authData": pin }),
        "The credential must be authorized with OAuth 2.0 (authMode oauth2code)",
    );
    assert_error(
        &v2(
            &k,
            "credentials/authorize",
            None,
            &json!({ "credentialID": rsa }),
        ),
        400,
        "invalid_request",
        MALFORMED,
    );
    assert_error(
        &v2(&k, "credentials/authorize", Some("x"), &json!({})),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );
    assert!(k.audit_intact());
}

#[test]
fn one_credential_serves_both_versions_with_one_audit_record_shape() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let cert = signer_cert(&k, &alice, rsa);
    let (d1, d2) = (sha256(b"first"), sha256(b"second"));

    // authorize on v2, sign on v1
    let sad = authorize_pin(&k, &alice, rsa, 1, None);
    let got = v1(
        &k,
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": rsa, "SAD": sad, "hash": [b64(&d1)], "signAlgo": SHA256_RSA }),
    );
    assert!(verifies(&cert, &d1, &signatures(&got)[0], None));
    // authorize on v1, sign on v2
    let sad = sad_of(&v1(
        &k,
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": rsa, "numSignatures": 1, "PIN": PIN }),
    ));
    let got = v2(
        &k,
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": rsa, "SAD": sad, "hashes": [b64(&d2)], "signAlgo": SHA256_RSA,
                 "hashAlgorithmOID": SHA256, "operationMode": "S", "clientData": "tx" }),
    );
    assert!(verifies(&cert, &d2, &signatures(&got)[0], None));
    // the SAD is spent whichever version spent it
    assert_error(
        &v1(
            &k,
            "signatures/signHash",
            Some(&alice),
            &json!({ "credentialID": rsa, "SAD": sad, "hash": [b64(&d2)], "signAlgo": SHA256_RSA }),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );

    // a transaction chained across versions: authorize v1 (2 signatures), sign v2, extend v2,
    // sign v1 with the renewed SAD (ECDSA, multisign 3)
    let multi = k.id("multi");
    let ec = signer_cert(&k, &alice, multi);
    let sad = sad_of(&v1(
        &k,
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": multi, "numSignatures": 2, "PIN": PIN }),
    ));
    let got = v2(
        &k,
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": multi, "SAD": sad, "hashes": [b64(&d1)], "signAlgo": ECDSA_SHA256 }),
    );
    assert!(verifies(&ec, &d1, &signatures(&got)[0], None));
    let renewed = sad_of(&v2(
        &k,
        "credentials/extendTransaction",
        Some(&alice),
        &json!({ "credentialID": multi, "SAD": sad, "hashes": [b64(&d2)],
                 "hashAlgorithmOID": SHA256, "clientData": "tx" }),
    ));
    let got = v1(
        &k,
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": multi, "SAD": renewed, "hash": [b64(&d2)], "signAlgo": ECDSA_SHA256 }),
    );
    assert!(verifies(&ec, &d2, &signatures(&got)[0], None));
    // extendTransaction's own refusals, in v2's words
    let call = |body: Value| v2(&k, "credentials/extendTransaction", Some(&alice), &body);
    assert_error(
        &call(json!({ "credentialID": multi, "SAD": renewed, "hashes": [b64(&d1)] })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter hashAlgorithmOID",
    );
    assert_error(
        &call(json!({ "credentialID": multi })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter SAD",
    );
    assert_error(
        &call(json!({ "credentialID": multi, "SAD": renewed })),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );

    // one record shape: the signatures of either version are audited alike
    let records: Vec<_> = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "signature.sign_hash")
        .collect();
    assert_eq!(records.len(), 4, "one record per signature");
    let keys = |detail: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(detail).expect("detail");
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    for r in &records {
        assert_eq!((r.actor.as_str(), r.outcome.as_str()), ("alice", "success"));
        assert_eq!(keys(&r.detail), keys(&records[0].detail));
    }
    let authorizations = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "sad.authorize" && r.outcome == "success")
        .map(|r| keys(&r.detail))
        .collect::<Vec<_>>();
    assert_eq!(authorizations.len(), 3);
    assert!(authorizations.iter().all(|k| *k == authorizations[0]));
    assert!(k.audit_intact());
}

#[test]
fn pin_failures_on_v2_count_towards_the_lock_seen_on_v1() {
    let k = Kit::with(|c| c.max_factor_failures = 3);
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let wrong = json!({ "credentialID": rsa, "numSignatures": 1,
                        "authData": [{ "id": "PIN", "value": "000000" }] });
    for _ in 0..2 {
        assert_error(
            &v2(&k, "credentials/authorize", Some(&alice), &wrong),
            400,
            "invalid_pin",
            "The PIN is invalid",
        );
    }
    // the third failure on v1: one counter
    assert_error(
        &v1(
            &k,
            "credentials/authorize",
            Some(&alice),
            &json!({ "credentialID": rsa, "numSignatures": 1, "PIN": "000000" }),
        ),
        400,
        "invalid_pin",
        "The PIN is invalid",
    );
    assert_error(
        &v1(
            &k,
            "credentials/authorize",
            Some(&alice),
            &json!({ "credentialID": rsa, "numSignatures": 1, "PIN": PIN }),
        ),
        400,
        "invalid_request",
        "PIN locked",
    );
    assert_error(
        &v2(
            &k,
            "credentials/authorize",
            Some(&alice),
            &json!({ "credentialID": rsa, "numSignatures": 1,
                     "authData": [{ "id": "PIN", "value": PIN }] }),
        ),
        400,
        "invalid_request",
        "PIN locked",
    );
    let locks: Vec<_> = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "factor.lock")
        .collect();
    assert_eq!(locks.len(), 1, "the lock is audited once");
    let refused = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "sad.authorize" && r.outcome == "refused")
        .count();
    assert_eq!(refused, 5, "every refusal audited, whichever version");
}

#[test]
fn scal2_through_v2_binds_the_hashes_and_the_challenge_goes_out_of_band() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let scal2 = k.id("scal2");
    let cert = signer_cert(&k, &alice, scal2);
    let (h1, h2, h3) = (sha256(b"one"), sha256(b"two"), sha256(b"three"));
    let call = |body: Value| v2(&k, "credentials/authorize", Some(&alice), &body);

    // getChallenge sends the code out of band (204, the kit's outbox); it answers in authData
    let otp = challenge(&k, &alice, scal2);
    let sad = sad_of(&call(json!({
        "credentialID": scal2, "numSignatures": 2,
        "hashes": b64s(&[&h1, &h2]), "hashAlgorithmOID": SHA256,
        "authData": [{ "id": "PIN", "value": PIN }, { "id": "OTP", "value": otp }],
    })));
    // a hash outside the authorization is refused and burns nothing
    assert_error(
        &v2(
            &k,
            "signatures/signHash",
            Some(&alice),
            &json!({ "credentialID": scal2, "SAD": sad, "hashes": [b64(&h3)], "signAlgo": SHA256_RSA }),
        ),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    let got = v2(
        &k,
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": scal2, "SAD": sad, "hashes": [b64(&h1)], "signAlgo": SHA256_RSA }),
    );
    assert!(verifies(&cert, &h1, &signatures(&got)[0], None));
    // the second bound hash, on v1
    let got = v1(
        &k,
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": scal2, "SAD": sad, "hash": [b64(&h2)], "signAlgo": SHA256_RSA }),
    );
    assert!(verifies(&cert, &h2, &signatures(&got)[0], None));

    // SCAL 2 rules, exactly v1's, in v2's words
    let otp = challenge(&k, &alice, scal2);
    let factors = json!([{ "id": "PIN", "value": PIN }, { "id": "OTP", "value": otp }]);
    assert_error(
        &call(json!({ "credentialID": scal2, "numSignatures": 1, "authData": factors })),
        400,
        "invalid_request",
        "Missing (or invalid type) array parameter hashes",
    );
    assert_error(
        &call(
            json!({ "credentialID": scal2, "numSignatures": 2, "authData": factors,
                      "hashes": [b64(&h1)], "hashAlgorithmOID": SHA256 }),
        ),
        400,
        "invalid_request",
        "The number of hashes must be equal to numSignatures for SCAL 2",
    );
    // two factors: the OTP is required
    assert_error(
        &call(
            json!({ "credentialID": scal2, "numSignatures": 1, "hashes": [b64(&h1)],
                      "hashAlgorithmOID": SHA256, "authData": [{ "id": "PIN", "value": PIN }] }),
        ),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter OTP",
    );

    // credentials/sendOTP is served in v2 too (legacy)
    let resp = k.send(
        k.post("/csc/v2/credentials/sendOTP")
            .insert_header(("authorization", format!("Bearer {alice}")))
            .set_json(json!({ "credentialID": scal2 })),
    );
    assert_eq!(resp.status, 204);
    let sent = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "otp.send" && r.outcome == "success")
        .count();
    assert_eq!(
        sent, 3,
        "getChallenge and sendOTP are one act, audited alike"
    );

    // getChallenge refusals
    let challenge_of = |body: Value| v2(&k, "credentials/getChallenge", Some(&alice), &body);
    assert_error(
        &challenge_of(json!({ "credentialID": scal2, "authObjectID": "PIN" })),
        400,
        "invalid_request",
        "Invalid parameter authObjectID",
    );
    assert_error(
        &challenge_of(json!({ "credentialID": k.id("rsa"), "authObjectID": "OTP" })),
        400,
        "invalid_request",
        "Invalid parameter authObjectID",
    );
    assert_error(
        &challenge_of(json!({ "credentialID": scal2 })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter authObjectID",
    );
    assert_error(
        &challenge_of(json!({ "authObjectID": "OTP" })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        &challenge_of(json!({ "credentialID": k.id("bob"), "authObjectID": "OTP" })),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    assert!(k.audit_intact());
}

#[test]
fn sign_hash_takes_a_credential_scope_bearer_as_the_sad() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let cert = signer_cert(&k, &alice, rsa);
    let (bound, other) = (sha256(b"bound"), sha256(b"other"));
    let sign = |token: &str, body: Value| v2(&k, "signatures/signHash", Some(token), &body);
    let body =
        |d: &[u8]| json!({ "credentialID": rsa, "hashes": [b64(d)], "signAlgo": SHA256_RSA });

    // a SAD bound to one hash, presented as the Bearer, no SAD member
    let sad = authorize_pin(&k, &alice, rsa, 1, Some(&[&bound]));
    assert_error(
        &sign(&sad, body(&other)),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    let got = sign(&sad, body(&bound));
    assert!(verifies(&cert, &bound, &signatures(&got)[0], None));
    // used up: no longer a token
    assert_error(
        &sign(&sad, body(&bound)),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );
    // a count-only SAD, and the same SAD also in the body
    let sad = authorize_pin(&k, &alice, rsa, 1, None);
    let mut with_sad = body(&other);
    with_sad["SAD"] = json!(sad);
    let got = sign(&sad, with_sad);
    assert!(verifies(&cert, &other, &signatures(&got)[0], None));
    // the audit names the signer, as for a SAD in the body
    let last = k
        .audit_records()
        .into_iter()
        .rfind(|r| r.event == "signature.sign_hash")
        .expect("record");
    assert_eq!((last.actor.as_str(), last.subject.as_str()), ("alice", rsa));

    // refusals
    let sad = authorize_pin(&k, &alice, rsa, 1, None);
    let mut another = body(&bound);
    another["SAD"] = json!("another-sad");
    assert_error(
        &sign(&sad, another),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // another credential than the token's
    assert_error(
        &sign(
            &sad,
            json!({ "credentialID": k.id("ec"), "hashes": [b64(&bound)], "signAlgo": ECDSA_SHA256 }),
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // a service token needs the SAD in the body
    assert_error(
        &sign(&alice, body(&bound)),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter SAD",
    );
    assert_error(
        &sign("neither-token-nor-sad", body(&bound)),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );
    // the refusals burnt nothing
    let got = sign(&sad, body(&bound));
    assert!(verifies(&cert, &bound, &signatures(&got)[0], None));
    assert!(k.audit_intact());
}

#[test]
fn sign_hash_validates_every_field_in_v2_words() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let rsa = k.id("rsa");
    let cert = signer_cert(&k, &alice, rsa);
    let d = sha256(b"x");
    let h = b64(&d);
    let sad = authorize_pin(&k, &alice, rsa, 1, None);
    let call = |body: Value| v2(&k, "signatures/signHash", Some(&alice), &body);
    let with = |more: Value| {
        let mut b =
            json!({ "credentialID": rsa, "SAD": sad, "hashes": [h], "signAlgo": SHA256_RSA });
        if let (Some(o), Some(m)) = (b.as_object_mut(), more.as_object()) {
            for (key, v) in m {
                if v.is_null() {
                    o.remove(key);
                } else {
                    o.insert(key.clone(), v.clone());
                }
            }
        }
        b
    };
    let invalid = |more: Value, description: &str| {
        assert_error(&call(with(more)), 400, "invalid_request", description);
    };
    // no asynchronous mode
    invalid(
        json!({ "operationMode": "A", "validity_period": 60000, "response_uri": "https://app.example/done" }),
        "Invalid parameter operationMode",
    );
    invalid(
        json!({ "operationMode": "X" }),
        "Invalid parameter operationMode",
    );
    invalid(
        json!({ "validity_period": 60000 }),
        "Invalid parameter validity_period",
    );
    invalid(
        json!({ "response_uri": "https://app.example/done" }),
        "Invalid parameter response_uri",
    );
    // the v1 table, with v2's names
    invalid(
        json!({ "SAD": null }),
        "Missing (or invalid type) string parameter SAD",
    );
    invalid(
        json!({ "credentialID": null }),
        "Missing (or invalid type) string parameter credentialID",
    );
    invalid(
        json!({ "hashes": null }),
        "Missing (or invalid type) array parameter hashes",
    );
    invalid(
        json!({ "hashes": null, "hash": [h] }),
        "Missing (or invalid type) array parameter hashes",
    );
    invalid(json!({ "hashes": [] }), "Empty hash array");
    invalid(
        json!({ "hashes": ["@@"] }),
        "Invalid Base64 hash string parameter",
    );
    invalid(
        json!({ "signAlgo": null }),
        "Missing (or invalid type) string parameter signAlgo",
    );
    invalid(json!({ "signAlgo": "1.2.3" }), "Invalid parameter signAlgo");
    invalid(
        json!({ "signAlgo": RSA }),
        "Missing (or invalid type) string parameter hashAlgorithmOID",
    );
    invalid(
        json!({ "hashAlgorithmOID": SHA384 }),
        "Invalid parameter hashAlgorithmOID",
    );
    invalid(
        json!({ "signAlgo": RSA, "hashAlgorithmOID": SHA1 }),
        "Invalid parameter hashAlgorithmOID",
    );
    invalid(
        json!({ "hashes": [b64(&[0u8; 48])] }),
        "Invalid digest value length",
    );
    invalid(
        json!({ "signAlgo": RSA_PSS }),
        "Missing (or invalid type) string parameter signAlgoParams",
    );
    invalid(json!({ "clientData": 7 }), "Invalid parameter clientData");
    invalid(json!({ "SAD": "unknown" }), "Invalid parameter SAD");
    // none of that spent the SAD: rsaEncryption with hashAlgorithmOID signs
    let got = call(with(json!({ "signAlgo": RSA, "hashAlgorithmOID": SHA256 })));
    assert!(verifies(&cert, &d, &signatures(&got)[0], None));
    // RSASSA-PSS with the parameters info offers
    let (_, info) = v2(&k, "info", None, &json!({}));
    let algos = info["signAlgorithms"]["algos"].as_array().expect("algos");
    let at = algos.iter().position(|a| a == RSA_PSS).expect("PSS listed");
    let params = info["signAlgorithms"]["algoParams"][at].clone();
    let sad = authorize_pin(&k, &alice, rsa, 1, None);
    let got = call(json!({ "credentialID": rsa, "SAD": sad, "hashes": [h],
                           "signAlgo": RSA_PSS, "signAlgoParams": params }));
    assert!(verifies(&cert, &d, &signatures(&got)[0], Some(32)));
}

#[test]
fn authorize_check_has_no_handle_to_check() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let call = |body: Value| v2(&k, "credentials/authorizeCheck", Some(&alice), &body);
    assert_error(
        &call(json!({})),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter handle",
    );
    assert_error(
        &call(json!({ "handle": 5 })),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter handle",
    );
    assert_error(
        &call(json!({ "handle": "878287f37b2bv293bv2bv237bv297bvbv" })),
        400,
        "invalid_request",
        "Invalid parameter handle",
    );
    // even the handle of an authorization that happened: every one is synchronous
    let sad = authorize_pin(&k, &alice, k.id("rsa"), 1, None);
    assert_error(
        &call(json!({ "handle": sad })),
        400,
        "invalid_request",
        "Invalid parameter handle",
    );
    assert_error(
        &v2(
            &k,
            "credentials/authorizeCheck",
            None,
            &json!({ "handle": "h" }),
        ),
        400,
        "invalid_request",
        MALFORMED,
    );
    assert_error(
        &v2(
            &k,
            "credentials/authorizeCheck",
            Some("x"),
            &json!({ "handle": "h" }),
        ),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );
}

#[test]
fn a_sad_bearer_renewed_expired_or_of_a_disabled_user_is_no_token() {
    let k = Kit::with(|c| c.sad_ttl_secs = 1);
    let alice = k.login("alice", ALICE_PASSWORD);
    let multi = k.id("multi");
    let d = sha256(b"late");
    let body = json!({ "credentialID": multi, "hashes": [b64(&d)], "signAlgo": ECDSA_SHA256 });
    let no_token = |got: (u16, Value)| {
        assert_error(
            &got,
            401,
            "invalid_token",
            "The access or refresh token is invalid",
        );
    };
    // renewed by extendTransaction: the old SAD is revoked
    let old = authorize_pin(&k, &alice, multi, 2, None);
    let renewed = sad_of(&v2(
        &k,
        "credentials/extendTransaction",
        Some(&alice),
        &json!({ "credentialID": multi, "SAD": old }),
    ));
    no_token(v2(&k, "signatures/signHash", Some(&old), &body));
    no_token(v2(
        &k,
        "credentials/info",
        Some(&old),
        &json!({ "credentialID": multi }),
    ));
    // expired (the lifetime is 1 s)
    std::thread::sleep(std::time::Duration::from_millis(2100));
    no_token(v2(&k, "signatures/signHash", Some(&renewed), &body));
    // a disabled signer's SADs are revoked with the rest of their sessions
    let sad = authorize_pin(&k, &alice, multi, 1, None);
    csc_api::admin::user_disable(k.sam(), "alice").expect("user disable");
    no_token(v2(&k, "signatures/signHash", Some(&sad), &body));
    // a SAD is never a service token
    let alive = {
        csc_api::admin::user_enable(k.sam(), "alice").expect("user enable");
        let alice = k.login("alice", ALICE_PASSWORD);
        authorize_pin(&k, &alice, multi, 1, None)
    };
    no_token(v2(&k, "credentials/list", Some(&alive), &json!({})));
    no_token(v2(
        &k,
        "credentials/authorize",
        Some(&alive),
        &json!({ "credentialID": multi, "numSignatures": 1 }),
    ));
}
