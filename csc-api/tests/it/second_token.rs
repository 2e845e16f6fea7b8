//! Any PKCS#11 token, proven (issue 13): the whole signing path against a second, independent
//! PKCS#11 implementation, kryoptic (the Rust soft token; `tests/kryoptic`, built by
//! `scripts/kryoptic-module`), so the cryptographic module does not rest on SoftHSM2's quirks.
//! The token is made with `pkcs11-tool` as an operator would (not by `init`), then the real
//! `csc-server` binary runs against it: `init` on the existing token, credentials of every key
//! type, authorize + signHash with every algorithm each key offers (verified with the
//! certificate's key), and the token-held keys: the PIN pepper, the integrity and audit keys, a
//! TOTP seed (a SCAL 2 credential authorizes), the TSA key (a time-stamp verifies) and the dev CA.
//!
//! kryoptic returns `CKA_EC_POINT` raw (not DER-wrapped) unless `KRYOPTIC_EC_POINT_ENCODING=DER`:
//! the variable is removed, so the server's acceptance of both forms is what is tested.
//!
//! The module comes from `CSC_TEST_KRYOPTIC_MODULE`, which `scripts/test` sets; without it these
//! tests fail, never pass, unless `CSC_TEST_SKIP_KRYOPTIC=1` says to skip them.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::common::*;

/// The token's user PIN: all digits, given as `CSC_TOKEN_PIN` (it used to be refused as a
/// number, issue 13); kryoptic reports a minimum PIN length of 8.
const TOKEN_PIN: &str = "43218765";
const SO_PIN: &str = "12345678";
const LABEL: &str = "csc-server";

/// RSASSA-PSS-params: SHA-256, MGF1-SHA-256, salt 32, trailer 1 (spec §11.9 signAlgoParams).
const PSS_PARAMS: &str =
    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=";
const SHA512: &str = "2.16.840.1.101.3.4.2.3";

/// The kryoptic module, or `None` when the skip is asked for explicitly.
fn module() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CSC_TEST_KRYOPTIC_MODULE")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    if std::env::var("CSC_TEST_SKIP_KRYOPTIC").as_deref() == Ok("1") {
        eprintln!("CSC_TEST_SKIP_KRYOPTIC=1: the second-token tests are skipped");
        return None;
    }
    panic!(
        "CSC_TEST_KRYOPTIC_MODULE is not set: run scripts/test, which builds kryoptic \
         (scripts/kryoptic-module: target/kryoptic/libkryoptic_pkcs11.so) and sets it; or set it \
         to that path yourself (CSC_TEST_SKIP_KRYOPTIC=1 skips these tests)"
    )
}

/// A kryoptic token of its own (an SQLite store in a temporary directory) and a data directory.
struct Kryoptic {
    tmp: tempfile::TempDir,
    module: PathBuf,
}

impl Kryoptic {
    /// Makes the token with `pkcs11-tool` (STACK-NOTES §6): label, SO PIN, user PIN.
    fn new(module: PathBuf) -> Kryoptic {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("data")).expect("data dir");
        let k = Kryoptic { tmp, module };
        std::fs::write(
            k.conf(),
            format!(
                "[[slots]]\nslot = 0\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                k.tmp.path().join("token.sql").display()
            ),
        )
        .expect("kryoptic.conf");
        k.tool(&["--init-token", "--label", LABEL, "--so-pin", SO_PIN]);
        k.tool(&[
            "--token-label",
            LABEL,
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--pin",
            TOKEN_PIN,
        ]);
        k
    }

    fn conf(&self) -> PathBuf {
        self.tmp.path().join("kryoptic.conf")
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// `pkcs11-tool` on the token; its standard output.
    fn tool(&self, args: &[&str]) -> String {
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&self.module)
            .args(args)
            .env("KRYOPTIC_CONF", self.conf())
            .env_remove("KRYOPTIC_EC_POINT_ENCODING")
            .output()
            .expect("pkcs11-tool (opensc; scripts/install-deps --test)");
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `csc-server` on the data directory, configured for the kryoptic token as an operator
    /// would: module, token label and PIN from the environment.
    fn csc(&self, args: &[&str]) -> Command {
        let mut c = csc(&self.dir());
        c.args(args)
            .env("CSC_PKCS11_MODULE", &self.module)
            .env("CSC_TOKEN_LABEL", LABEL)
            .env("CSC_TOKEN_PIN", TOKEN_PIN)
            .env("KRYOPTIC_CONF", self.conf())
            .env_remove("KRYOPTIC_EC_POINT_ENCODING");
        c
    }

    /// `init` on the existing token, and signer alice.
    fn init(&self) -> Value {
        let report = run_ok(&mut self.csc(&["init"]));
        assert_eq!(report["tokenCreated"], false, "{report}");
        assert_eq!(report["tokenLabel"], LABEL, "{report}");
        run_ok(
            self.csc(&["user", "add", "alice"])
                .env("CSC_PASSWORD", ALICE_PASSWORD),
        );
        report
    }

    fn credential(&self, args: &[&str]) -> Value {
        let mut c = self.csc(&["credential", "create", "alice"]);
        c.args(args).env("CSC_PIN", PIN);
        run_ok(&mut c)
    }

    fn serve(&self) -> (Server, Api) {
        let server = start(self.csc(&["serve"]));
        let api = Api::new(&server.base);
        (server, api)
    }

    /// `audit verify` of the data directory (the server stopped): the chain verifies under the
    /// audit key in the kryoptic token.
    fn assert_audit_intact(&self) {
        let report = run_ok(&mut self.csc(&["audit", "verify"]));
        assert_eq!(report["intact"], true, "{report}");
        assert!(
            report["records"].as_u64().is_some_and(|n| n > 0),
            "{report}"
        );
    }
}

fn md_of(name: &str) -> MessageDigest {
    match name {
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        _ => MessageDigest::sha256(),
    }
}

/// Verifies a signature over `digest` with the certificate's key: RSA PKCS#1 v1.5 or PSS
/// (salt 32, MGF1-SHA-256), or DER ECDSA.
fn verifies(cert: &X509, digest: &[u8], md: MessageDigest, sig: &[u8], pss: bool) -> bool {
    let key = cert.public_key().expect("key");
    let mut ctx = PkeyCtx::new(&key).expect("ctx");
    ctx.verify_init().expect("init");
    if key.rsa().is_ok() {
        if pss {
            ctx.set_rsa_padding(Padding::PKCS1_PSS).expect("pss");
            ctx.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(32))
                .expect("salt");
            ctx.set_rsa_mgf1_md(openssl::md::Md::sha256())
                .expect("mgf1");
        } else {
            ctx.set_rsa_padding(Padding::PKCS1).expect("pkcs1");
        }
    }
    let md = match md.size() {
        48 => openssl::md::Md::sha384(),
        64 => openssl::md::Md::sha512(),
        _ => openssl::md::Md::sha256(),
    };
    ctx.set_signature_md(md).expect("md");
    ctx.verify(digest, sig).unwrap_or(false)
}

/// The signer certificate of a credential, and the algorithms its key offers (`key/algo`).
fn cert_and_algos(api: &Api, token: &str, cred: &str) -> (X509, Vec<String>) {
    let (status, info) = api.call(
        "credentials/info",
        Some(token),
        &json!({ "credentialID": cred, "certificates": "chain" }),
    );
    assert_eq!(status, 200, "{info}");
    let cert = X509::from_der(&decode(
        info["cert"]["certificates"][0].as_str().expect("cert"),
    ))
    .expect("der");
    let algos = info["key"]["algo"]
        .as_array()
        .expect("key/algo")
        .iter()
        .map(|a| a.as_str().expect("OID").to_owned())
        .collect();
    (cert, algos)
}

/// Authorizes one signature (PIN, and `otp` when given) and signs `digest`: the signature.
fn authorize_and_sign(
    api: &Api,
    token: &str,
    cred: &str,
    otp: Option<&str>,
    digest: &[u8],
    sign: Value,
) -> Vec<u8> {
    let mut body = json!({ "credentialID": cred, "numSignatures": 1, "PIN": PIN,
        "hash": [STANDARD.encode(digest)] });
    if let Some(otp) = otp {
        body["OTP"] = json!(otp);
    }
    let (status, auth) = api.call("credentials/authorize", Some(token), &body);
    assert_eq!(status, 200, "authorize {cred}: {auth}");
    let mut body = json!({ "credentialID": cred, "SAD": auth["SAD"],
        "hash": [STANDARD.encode(digest)] });
    if let (Some(obj), Some(more)) = (body.as_object_mut(), sign.as_object()) {
        obj.extend(more.clone());
    }
    let (status, v) = api.call("signatures/signHash", Some(token), &body);
    assert_eq!(status, 200, "signHash {cred} {sign}: {v}");
    decode(v["signatures"][0].as_str().expect("one signature"))
}

/// Signs with every algorithm the credential's key offers and verifies each signature with the
/// certificate's key; returns how many it checked.
fn sign_with_every_algorithm(api: &Api, token: &str, cred: &str) -> usize {
    let (cert, algos) = cert_and_algos(api, token, cred);
    assert!(!algos.is_empty(), "{cred} offers no algorithm");
    for algo in &algos {
        // (hash, signHash parameters beyond the hash, PSS)
        let (md, sign, pss) = match algo.as_str() {
            "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => ("sha256", json!({}), false),
            "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => ("sha384", json!({}), false),
            "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => ("sha512", json!({}), false),
            // rsaEncryption: PKCS#1 v1.5 with the hash named apart
            "1.2.840.113549.1.1.1" => ("sha512", json!({ "hashAlgo": SHA512 }), false),
            "1.2.840.113549.1.1.10" => ("sha256", json!({ "signAlgoParams": PSS_PARAMS }), true),
            other => panic!("{cred} offers an algorithm this test does not know: {other}"),
        };
        let mut sign = sign;
        sign["signAlgo"] = json!(algo);
        let digest = openssl::hash::hash(md_of(md), format!("{cred} {algo}").as_bytes())
            .expect("hash")
            .to_vec();
        let sig = authorize_and_sign(api, token, cred, None, &digest, sign);
        assert!(
            verifies(&cert, &digest, md_of(md), &sig, pss),
            "the {algo} signature of {cred} does not verify with its certificate"
        );
    }
    algos.len()
}

/// Every key type the server offers, each algorithm of each, signed in kryoptic and verified;
/// a wrong PIN is refused (the PIN pepper HMAC runs in kryoptic); the audit log verifies.
#[test]
fn kryoptic_signs_with_every_key_type_and_algorithm() {
    let Some(module) = module() else { return };
    let k = Kryoptic::new(module);
    k.init();
    let mut creds = Vec::new();
    for key in ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"] {
        let c = k.credential(&["--key", key]);
        creds.push((key, c["credentialID"].as_str().expect("id").to_owned()));
    }
    let (server, api) = k.serve();
    let alice = api.login("alice", ALICE_PASSWORD);
    let mut checked = 0;
    for (key, cred) in &creds {
        let n = sign_with_every_algorithm(&api, &alice, cred);
        assert_eq!(n, if key.starts_with("ec") { 3 } else { 5 }, "{key}");
        checked += n;
    }
    assert_eq!(checked, 2 * 3 + 3 * 5);
    // kryoptic lists every mechanism the server uses (`Hsm::open` warns otherwise)
    let log = server.log.lock().expect("log").clone();
    assert!(!log.contains("does not list mechanisms"), "{log}");
    // the PIN verifier's pepper is an HMAC key in kryoptic: a wrong PIN is told apart
    let (_, ec) = &creds[0];
    let got = api.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": ec, "numSignatures": 1, "PIN": "000000" }),
    );
    assert_error(&got, 400, "invalid_pin", "The PIN is invalid");
    drop(server);
    k.assert_audit_intact();
}

/// The token-held keys other than signers' keys live in kryoptic and work: a SCAL 2 credential
/// whose TOTP seed is an HMAC key in the token authorizes and signs, a time-stamp token from the
/// TSA key verifies against the dev CA (both keys in the token), the integrity and audit keys are
/// there and `audit verify` passes; `credential destroy` removes the key pair and the TOTP key;
/// the token may be pinned to its slot (`pkcs11_slot`) and sessions may log in one by one.
#[test]
fn kryoptic_holds_the_pepper_integrity_audit_totp_and_tsa_keys() {
    let Some(module) = module() else { return };
    let k = Kryoptic::new(module);
    let report = k.init();
    let scal2 = k.credential(&["--key", "ec-p256", "--scal", "2", "--otp"]);
    let cred = scal2["credentialID"].as_str().expect("id").to_owned();
    let uri = scal2["otpauth"].as_str().expect("otpauth URI").to_owned();

    // the keys an operator finds in the token
    let objects = k.tool(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        TOKEN_PIN,
        "--list-objects",
    ]);
    for label in [
        "csc-pin-pepper".to_owned(),
        "csc-integrity".to_owned(),
        "csc-audit".to_owned(),
        "csc-tsa".to_owned(),
        "csc-dev-ca".to_owned(),
        format!("csc-totp:{cred}"),
    ] {
        assert!(
            objects.contains(&format!("label:      {label}")),
            "{label} is not in the kryoptic token:\n{objects}"
        );
    }

    let (server, api) = k.serve();
    let alice = api.login("alice", ALICE_PASSWORD);
    let (cert, _) = cert_and_algos(&api, &alice, &cred);
    let digest = openssl::sha::sha256(b"two factors in kryoptic").to_vec();
    let otp = crate::factors::totp_now(&uri);
    let sig = authorize_and_sign(
        &api,
        &alice,
        &cred,
        Some(&otp),
        &digest,
        json!({ "signAlgo": "1.2.840.10045.4.3.2" }),
    );
    assert!(verifies(
        &cert,
        &digest,
        MessageDigest::sha256(),
        &sig,
        false
    ));
    // SCAL 2 without the OTP is refused
    let got = api.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": &cred, "numSignatures": 1, "PIN": PIN,
            "hash": [STANDARD.encode(&digest)] }),
    );
    assert_error(
        &got,
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter OTP",
    );

    // a time-stamp token signed in kryoptic by the TSA key, checked by OpenSSL against the dev CA
    let (status, ts) = api.call(
        "signatures/timestamp",
        Some(&alice),
        &json!({ "hash": STANDARD.encode(&digest), "hashAlgo": "2.16.840.1.101.3.4.2.1" }),
    );
    assert_eq!(status, 200, "{ts}");
    let work = k.tmp.path();
    let token_file = work.join("ts.der");
    std::fs::write(
        &token_file,
        decode(ts["timestamp"].as_str().expect("token")),
    )
    .expect("write");
    let ca = X509::from_der(&decode(
        report["caCertificate"].as_str().expect("caCertificate"),
    ))
    .expect("CA");
    let ca_file = work.join("ca.pem");
    std::fs::write(&ca_file, ca.to_pem().expect("pem")).expect("write");
    assert_openssl_ts_verifies(&token_file, &digest, &ca_file);

    // the TOTP key goes with the credential
    drop(server);
    run_ok(&mut k.csc(&["credential", "destroy", &cred]));
    let objects = k.tool(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        TOKEN_PIN,
        "--list-objects",
    ]);
    assert!(
        !objects.contains(&format!("csc-totp:{cred}")) && !objects.contains(&cred),
        "{objects}"
    );
    k.assert_audit_intact();

    // what differs between HSMs is configuration: kryoptic's slot ids are stable (its
    // configuration names slot 0), so the token may be pinned to its slot, and the sessions
    // may log in one by one
    let out = k
        .csc(&["credential", "list"])
        .env("CSC_PKCS11_SLOT", "1")
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no token labelled \"csc-server\" in slot 1"),
        "{err}"
    );
    let list = run_ok(
        k.csc(&["credential", "list"])
            .env("CSC_PKCS11_SLOT", "0")
            .env("CSC_HSM_LOGIN_PER_SESSION", "true")
            .env("CSC_HSM_MAX_SESSIONS", "2"),
    );
    assert_eq!(list[0]["credentialID"], cred.as_str(), "{list}");
    assert_eq!(list[0]["status"], "disabled", "destroyed: {list}");
}

/// `openssl ts -verify` of a time-stamp token over `digest` with `ca` as the only trust root.
fn assert_openssl_ts_verifies(token: &Path, digest: &[u8], ca: &Path) {
    let out = Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in"])
        .arg(token)
        .arg("-digest")
        .arg(hex::encode(digest))
        .arg("-CAfile")
        .arg(ca)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("Verification: OK"),
        "{text}"
    );
}
