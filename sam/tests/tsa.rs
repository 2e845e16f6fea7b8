//! The time-stamping authority's key and certificate on a real SoftHSM2 token (no mocks): a
//! data directory from before the TSA gets one at its next start without re-init; it survives
//! a restart; a `tsa.json` naming another key of the token is refused; the key is sensitive,
//! non-extractable and sign-only (Part III 1, 16, 17).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cm_pkcs11::testkit::TestToken;
use sam::{Sam, SamError, TsaSettings};
use storage::{Store, StoreOptions};

fn events(sam: &Sam, name: &str) -> usize {
    sam.audit_records(0, 1_000_000)
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == name)
        .count()
}

/// A fresh token and data directory with a SQLite store in it.
fn deployment() -> (TestToken, tempfile::TempDir, Store) {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("csc.db").display());
    let store = Store::open_or_create(&url, StoreOptions::default()).expect("store");
    (token, dir, store)
}

fn assert_tsa_refused(refused: Result<Sam, SamError>) {
    assert!(
        matches!(refused, Err(SamError::Tsa(_))),
        "{:?}",
        refused.err()
    );
}

#[test]
fn an_existing_deployment_gets_a_tsa_at_its_next_start_and_keeps_it() {
    let (token, dir, store) = deployment();
    let ca_file = dir.path().join("dev-ca.json");
    let settings = TsaSettings::new(dir.path().join("tsa.json"), "Example TSA".into());

    // a deployment initialised before the TSA: no tsa.json, no TSA key
    let before = Sam::open(&token.config, store.clone(), &ca_file).expect("sam");
    assert!(before.tsa_certificate_der().is_none());
    assert_eq!(events(&before, "tsa.create"), 0);
    // its next start creates the key in the token and the certificate, once
    let first = before.with_tsa(&settings).expect("tsa");
    let cert = first
        .tsa_certificate_der()
        .expect("TSA certificate")
        .to_vec();
    assert!(dir.path().join("tsa.json").exists());
    assert_eq!(events(&first, "tsa.create"), 1);
    let x509 = openssl::x509::X509::from_der(&cert).expect("cert");
    let ca = openssl::x509::X509::from_der(first.ca_certificate_der()).expect("CA");
    assert!(x509.verify(&ca.public_key().expect("key")).expect("verify"));
    // a restart loads the same TSA and creates nothing
    let again = Sam::open(&token.config, store, &ca_file)
        .expect("sam")
        .with_tsa(&settings)
        .expect("tsa again");
    assert_eq!(again.tsa_certificate_der(), Some(cert.as_slice()));
    assert_eq!(events(&again, "tsa.create"), 1);

    // the TSA key in the token is like every signing key: made there, sensitive, never
    // extractable, sign-only, ECDSA only, not modifiable
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tsa.json")).expect("file"))
            .expect("JSON");
    let key_id: cm_pkcs11::KeyId = file["key_id"]
        .as_str()
        .expect("key_id")
        .parse()
        .expect("id");
    let hsm = token.open();
    let attrs = hsm.key_attributes(&key_id).expect("attributes");
    assert!(
        attrs.local && attrs.sensitive && attrs.never_extractable,
        "{attrs:?}"
    );
    assert!(
        !attrs.extractable && attrs.sign && !attrs.decrypt && !attrs.derive,
        "{attrs:?}"
    );
    assert!(!attrs.modifiable && !attrs.copyable, "{attrs:?}");
    assert_eq!(attrs.allowed_mechanisms, vec!["CKM_ECDSA".to_owned()]);
    assert_eq!(attrs.private_value_len, 0);
}

#[test]
fn a_tsa_file_naming_another_key_is_refused() {
    let (token, dir, store) = deployment();
    let ca_file = dir.path().join("dev-ca.json");
    let tsa_file = dir.path().join("tsa.json");
    let settings = TsaSettings::new(tsa_file.clone(), "Example TSA".into());
    let sam = Sam::open(&token.config, store.clone(), &ca_file)
        .expect("sam")
        .with_tsa(&settings)
        .expect("tsa");
    drop(sam);
    // re-point tsa.json at the CA's key: the certificate no longer matches the key
    let ca: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ca_file).expect("ca")).expect("JSON");
    let mut tsa: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tsa_file).expect("tsa")).expect("JSON");
    tsa["key_id"] = ca["key_id"].clone();
    std::fs::write(&tsa_file, tsa.to_string()).expect("write");
    let refused = Sam::open(&token.config, store, &ca_file)
        .expect("sam")
        .with_tsa(&settings);
    assert_tsa_refused(refused);
}

#[test]
fn a_policy_that_is_not_an_oid_is_refused_before_anything_is_created() {
    let (token, dir, store) = deployment();
    let mut settings = TsaSettings::new(dir.path().join("tsa.json"), "Example TSA".into());
    settings.policy_oid = "sha256".into();
    let refused = Sam::open(&token.config, store, &dir.path().join("dev-ca.json"))
        .expect("sam")
        .with_tsa(&settings);
    assert_tsa_refused(refused);
    assert!(!dir.path().join("tsa.json").exists());
}
