//! The v2 mode finds real defects, as the v1 mode does against certomancer-csc-dummy
//! (`dummy.rs`): `csc-conformance --api v2` against a small, deliberately defective CSC v2
//! server written here (no public v2 test server exists to pin). It signs correctly
//! (RSA PKCS#1 v1.5 over SHA-256, under a self-signed certificate) but authenticates nothing
//! and accepts any SAD it ever issued again and again (and checks few inputs). Its
//! `signatures/timestamp` answers every request with the same canned RFC 3161 token (a real,
//! well-signed one, over another hash, with a nonce of its own). The report must fail
//! those rules by id, pass the signatures and the token structure it gets right, and exit 1.

// Tests may panic loudly: a failing test should say where and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};

mod common;

const CREDENTIAL: &str = "defective-rsa";
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";

/// The canned time-stamp token: `openssl ts -reply` over SHA-256("conformance") with a nonce
/// of its own, by a TSA certificate with a critical extendedKeyUsage timeStamping.
fn canned_token() -> String {
    include_str!("../src/testdata/tst-fixture.b64")
        .split_whitespace()
        .collect()
}

/// The server's one key and its self-signed certificate (base64 DER).
struct Signer {
    key: PKey<Private>,
    cert: String,
}

impl Signer {
    fn new() -> Signer {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "Defective v2 signer")
            .expect("CN");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        let serial = BigNum::from_u32(7).and_then(|n| n.to_asn1_integer());
        b.set_serial_number(&serial.expect("serial"))
            .expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
            .expect("not before");
        b.set_not_after(&Asn1Time::days_from_now(30).expect("time"))
            .expect("not after");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        let cert = STANDARD.encode(b.build().to_der().expect("DER"));
        Signer { key, cert }
    }

    /// RSASSA-PKCS1-v1_5 over the DigestInfo of a SHA-256 digest; `None` for a value that is
    /// not one.
    fn sign(&self, digest: &[u8]) -> Option<Vec<u8>> {
        let mut ctx = PkeyCtx::new(&self.key).ok()?;
        ctx.sign_init().ok()?;
        ctx.set_rsa_padding(Padding::PKCS1).ok()?;
        ctx.set_signature_md(Md::sha256()).ok()?;
        let mut sig = Vec::new();
        ctx.sign_to_vec(digest, &mut sig).ok()?;
        Some(sig)
    }
}

fn error(description: &str) -> (u16, Value) {
    (
        400,
        json!({ "error": "invalid_request", "error_description": description }),
    )
}

/// The defective server's answer to `method` (no token is ever looked at).
fn answer(signer: &Signer, method: &str, body: &Value) -> (u16, Value) {
    let credential_ok = body["credentialID"] == CREDENTIAL;
    match method {
        "info" => (
            200,
            json!({
                "specs": "2.0.0.2",
                "name": "Defective v2",
                "logo": "https://defective.example/logo.png",
                "region": "BE",
                "lang": "en-US",
                "description": "A CSC v2 server that authenticates nothing and replays SADs",
                "authType": ["external"],
                "methods": [
                    "credentials/list",
                    "credentials/info",
                    "credentials/authorize",
                    "signatures/signHash",
                    "signatures/timestamp",
                ],
                "signAlgorithms": { "algos": [SHA256_RSA] },
                "signature_formats": { "formats": ["C"] },
                "conformance_levels": ["Ades-B-B"],
            }),
        ),
        "credentials/list" => (200, json!({ "credentialIDs": [CREDENTIAL] })),
        "credentials/info" if credential_ok => (
            200,
            json!({
                "key": { "status": "enabled", "algo": [SHA256_RSA], "len": 2048 },
                "cert": { "status": "valid", "certificates": [signer.cert] },
                "auth": { "mode": "explicit", "objects": [] },
                "SCAL": "1",
                "multisign": 1,
            }),
        ),
        "credentials/authorize" if credential_ok => {
            (200, json!({ "SAD": "defective-sad", "expiresIn": 300 }))
        }
        "signatures/signHash" if credential_ok => {
            if body["SAD"] != "defective-sad" {
                return error("Invalid parameter SAD");
            }
            let Some(hashes) = body["hashes"].as_array() else {
                return error("Missing (or invalid type) array parameter hashes");
            };
            let signatures: Option<Vec<String>> = hashes
                .iter()
                .map(|h| {
                    let digest = STANDARD.decode(h.as_str()?).ok()?;
                    signer.sign(&digest).map(|s| STANDARD.encode(s))
                })
                .collect();
            match signatures {
                Some(s) => (200, json!({ "signatures": s })),
                None => error("Invalid digest value length"),
            }
        }
        "signatures/timestamp" => (200, json!({ "timestamp": canned_token() })),
        "credentials/info" | "credentials/authorize" | "signatures/signHash" => {
            error("Invalid parameter credentialID")
        }
        _ => (
            404,
            json!({ "error": "invalid_request", "error_description": "no such method" }),
        ),
    }
}

/// Serves one HTTP/1.1 request on `stream` and closes it.
fn serve(signer: &Signer, stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, out) = match path.strip_prefix("/csc/v2/") {
        Some(method) => answer(signer, method, &body),
        None => (404, json!({ "error": "invalid_request" })),
    };
    let text = out.to_string();
    let reason = if status == 200 { "OK" } else { "Error" };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Starts the server on a free port: its base URL.
fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let signer = Arc::new(Signer::new());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let signer = signer.clone();
            std::thread::spawn(move || serve(&signer, stream));
        }
    });
    base
}

#[test]
fn csc_conformance_v2_reports_the_defects_of_a_defective_v2_server() {
    let base = start();
    let work = tempfile::tempdir().expect("tempdir");
    let json = work.path().join("report.json");
    let run = common::run_suite(
        &[
            "--api",
            "v2",
            "--base-url",
            &base,
            "--token",
            "any-token",
            "--other-token",
            "another-token",
            "--credential",
            CREDENTIAL,
        ],
        &json,
    );
    assert!(
        run.stdout.starts_with("CSC 2.0.0.2 conformance of "),
        "{}",
        run.stdout
    );
    assert_eq!(run.report["spec"], "2.0.0.2");
    // the replayable SAD
    run.assert_all(
        "fail",
        &["v2.signhash.sad-replay", "v2.signhash.numSignatures-limit"],
    );
    // the missing authentication
    run.assert_all(
        "fail",
        &[
            "v2.bearer.missing.credentials.list",
            "v2.bearer.missing.credentials.info",
            "v2.bearer.missing.credentials.authorize",
            "v2.bearer.missing.signatures.signHash",
            "v2.bearer.unknown-token",
            "v2.bearer.unknown-token.signHash",
            "v2.signhash.other-user",
            "v2.credinfo.other-user",
            "v2.list.other-user",
            "v2.bearer.missing.signatures.timestamp",
            "v2.timestamp.unknown-token",
        ],
    );
    // the canned time-stamp token: not over the hash sent, no nonce, the same serial each
    // time, and no input ever refused
    run.assert_all(
        "fail",
        &[
            "v2.timestamp.messageImprint.sha256",
            "v2.timestamp.messageImprint.sha384",
            "v2.timestamp.nonce",
            "v2.timestamp.serial-unique",
            "v2.timestamp.missing-hash",
            "v2.timestamp.empty-hash",
            "v2.timestamp.invalid-base64",
            "v2.timestamp.digest-length",
            "v2.timestamp.invalid-hashAlgo",
            "v2.timestamp.invalid-nonce",
        ],
    );
    // what it does right passes: its discovery, its credential, its signatures
    run.assert_all(
        "pass",
        &[
            "v2.info.specs",
            "v2.info.signAlgorithms",
            "v2.info.signAlgorithms-cover-credentials",
            "v2.credinfo.auth.objects",
            "v2.credinfo.no-v1-auth-members",
            "v2.credinfo.key.len",
            "v2.authorize.sad",
            "v2.signhash.verify.sha256-rsa",
            "v2.timestamp.token",
            "v2.timestamp.signature",
            "v2.timestamp.signer-eku",
        ],
    );
    // what it does not have is skipped, with the reason
    run.assert_all("skip", &["v2.getChallenge.challenge", "v2.extend.new-sad"]);
    run.assert_skips_say_why();
}
