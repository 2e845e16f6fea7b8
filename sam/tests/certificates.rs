//! The key identifiers of every certificate the development CA issues (issue 13): the CA's
//! self-signed certificate, signer certificates and the TSA certificate each carry a 20-byte
//! subjectKeyIdentifier = SHA-1 of their subjectPublicKey (RFC 5280 §4.2.1.2 method 1) and an
//! authorityKeyIdentifier = the CA's (RFC 5280 §4.2.1.1), so the chain matches up and
//! `openssl verify -x509_strict` accepts it. A data directory whose CA and TSA certificates were
//! made before (empty identifiers) gets them certified again, same keys, at the next open.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;

use cm_pkcs11::testkit::TestToken;
use cm_pkcs11::{Hsm, KeyId, KeySpec};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509, X509NameBuilder};
use sam::{NewCredentialRequest, Sam, TsaSettings};
use secrecy::SecretString;
use storage::{NewUser, Role, Scal, Store, StoreOptions};

fn open(token: &TestToken, dir: &Path) -> Sam {
    let url = format!("sqlite://{}", dir.join("csc.db").display());
    let store = Store::open_or_create(&url, StoreOptions::default()).expect("store");
    Sam::open(&token.config, store, &dir.join("dev-ca.json"))
        .expect("sam")
        .with_tsa(&tsa_settings(dir))
        .expect("tsa")
}

fn tsa_settings(dir: &Path) -> TsaSettings {
    TsaSettings::new(dir.join("tsa.json"), "Example TSA".into())
}

fn add_user(sam: &Sam) {
    sam.store()
        .write(|c| {
            c.create_user(&NewUser {
                name: "alice".into(),
                password_hash: "$argon2id$unused".into(),
                role: Role::Signer,
            })
        })
        .expect("user");
}

fn request(spec: KeySpec) -> NewCredentialRequest {
    NewCredentialRequest {
        user_name: "alice".into(),
        spec,
        scal: Scal::One,
        multisign: 1,
        pin: SecretString::from("123456"),
        otp: sam::OtpChoice::None,
        auth_mode: storage::AuthMode::Explicit,
        description: None,
    }
}

/// SHA-1 of the subjectPublicKey BIT STRING's value, computed independently of the server (the
/// SPKI parsed by OpenSSL's DER of the public key: the BIT STRING is its last element).
fn expected_key_id(cert: &X509) -> Vec<u8> {
    let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
    // the last element of the SPKI SEQUENCE is the BIT STRING; its value starts after the
    // unused-bits octet. Find it by re-encoding: the raw key is the tail of the SPKI.
    let raw = raw_public_key(&spki);
    openssl::sha::sha1(&raw).to_vec()
}

/// The value of the subjectPublicKey BIT STRING of a DER SPKI (minimal DER walker for the test).
fn raw_public_key(spki: &[u8]) -> Vec<u8> {
    fn header(b: &[u8]) -> (usize, usize) {
        // (header length, content length)
        let l = b[1] as usize;
        if l < 0x80 {
            (2, l)
        } else {
            let n = l & 0x7f;
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | b[2 + i] as usize;
            }
            (2 + n, len)
        }
    }
    let (h, _) = header(spki);
    let inner = &spki[h..];
    let (ah, alen) = header(inner); // AlgorithmIdentifier
    let bits = &inner[ah + alen..];
    assert_eq!(bits[0], 0x03, "BIT STRING");
    let (bh, blen) = header(bits);
    assert_eq!(bits[bh], 0, "no unused bits");
    bits[bh + 1..bh + blen].to_vec()
}

fn ski(cert: &X509) -> Vec<u8> {
    cert.subject_key_id()
        .expect("subjectKeyIdentifier")
        .as_slice()
        .to_vec()
}

fn aki(cert: &X509) -> Vec<u8> {
    cert.authority_key_id()
        .expect("authorityKeyIdentifier keyIdentifier")
        .as_slice()
        .to_vec()
}

/// Asserts the identifiers of `leaf` issued by `ca` and runs `openssl verify -x509_strict`.
fn assert_chain(dir: &Path, ca: &X509, leaf: &X509, purpose: Option<&str>) {
    assert_eq!(ski(ca).len(), 20);
    assert_eq!(ski(ca), expected_key_id(ca), "CA SKI = SHA-1 of its key");
    assert_eq!(aki(ca), ski(ca), "the root's AKI is its own SKI");
    assert_eq!(ski(leaf).len(), 20);
    assert_eq!(
        ski(leaf),
        expected_key_id(leaf),
        "leaf SKI = SHA-1 of its key"
    );
    assert_eq!(aki(leaf), ski(ca), "leaf AKI = CA SKI");
    let ca_file = dir.join("ca.pem");
    let leaf_file = dir.join("leaf.pem");
    std::fs::write(&ca_file, ca.to_pem().unwrap()).unwrap();
    std::fs::write(&leaf_file, leaf.to_pem().unwrap()).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-CAfile"])
        .arg(&ca_file);
    if let Some(purpose) = purpose {
        cmd.args(["-purpose", purpose]);
    }
    let out = cmd.arg(&leaf_file).output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl verify -x509_strict: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_issued_certificate_has_key_identifiers_that_match_up_the_chain() {
    let token = TestToken::new();
    let dir = tempfile::tempdir().unwrap();
    let sam = open(&token, dir.path());
    add_user(&sam);
    let ca = X509::from_der(sam.ca_certificate_der()).unwrap();
    for spec in [KeySpec::Rsa2048, KeySpec::EcP256, KeySpec::EcP384] {
        let created = sam
            .create_credential(request(spec), &sam::Actor::new("test", sam::Role::Operator))
            .unwrap();
        let leaf = X509::from_der(&created.certificate_der).unwrap();
        assert_chain(dir.path(), &ca, &leaf, None);
    }
    let tsa = X509::from_der(sam.tsa_certificate_der().expect("tsa")).unwrap();
    assert_chain(dir.path(), &ca, &tsa, Some("timestampsign"));
}

/// A certificate over `key` (a token public key) as a pre-issue-13 server made it: no key
/// identifiers at all here (they were empty then; either way not the key's), signed by a
/// throwaway key (the load only checks that the certificate's key is the token's).
fn old_style_certificate(key: &PKey<openssl::pkey::Public>, cn: &str) -> Vec<u8> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let signer = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&signer, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

fn rewrite_key_file(hsm: &Hsm, path: &Path, cn: &str) {
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key_id: KeyId = file["key_id"].as_str().unwrap().parse().unwrap();
    let key = hsm.public_key(&key_id).unwrap().to_openssl().unwrap();
    use base64::Engine;
    file["certificate"] = base64::engine::general_purpose::STANDARD
        .encode(old_style_certificate(&key, cn))
        .into();
    std::fs::write(path, file.to_string()).unwrap();
}

#[test]
fn a_data_directory_from_before_gets_its_ca_and_tsa_keys_certified_again() {
    let token = TestToken::new();
    let dir = tempfile::tempdir().unwrap();
    drop(open(&token, dir.path()));
    let hsm = Hsm::open(&token.config).unwrap();
    rewrite_key_file(&hsm, &dir.path().join("dev-ca.json"), "old CA");
    rewrite_key_file(&hsm, &dir.path().join("tsa.json"), "old TSA");
    let sam = open(&token, dir.path());
    add_user(&sam);
    let ca = X509::from_der(sam.ca_certificate_der()).unwrap();
    assert!(
        ca.verify(&ca.public_key().unwrap()).unwrap(),
        "self-signed again"
    );
    let tsa = X509::from_der(sam.tsa_certificate_der().unwrap()).unwrap();
    assert_chain(dir.path(), &ca, &tsa, Some("timestampsign"));
    let created = sam
        .create_credential(
            request(KeySpec::EcP256),
            &sam::Actor::new("test", sam::Role::Operator),
        )
        .unwrap();
    assert_chain(
        dir.path(),
        &ca,
        &X509::from_der(&created.certificate_der).unwrap(),
        None,
    );
    // the files were replaced: the next open finds them right and keeps them
    let ca_file = std::fs::read(dir.path().join("dev-ca.json")).unwrap();
    let tsa_file = std::fs::read(dir.path().join("tsa.json")).unwrap();
    drop(sam);
    drop(open(&token, dir.path()));
    assert_eq!(
        std::fs::read(dir.path().join("dev-ca.json")).unwrap(),
        ca_file
    );
    assert_eq!(
        std::fs::read(dir.path().join("tsa.json")).unwrap(),
        tsa_file
    );
}
