//! Provisioning on a real SoftHSM2 token and a real SQLite database (no mocks): keys made in the
//! token, certified by the HSM-held development CA, signatures verified against the issued
//! certificate, foreign chains refused, destroyed keys unusable.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cm_pkcs11::testkit::TestToken;
use cm_pkcs11::{HashAlg, Hsm, HsmError, KeyId, KeySpec, SignMechanism};
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use sam::{NewCredentialRequest, Sam, SamError};
use secrecy::SecretString;
use storage::{CredentialStatus, FactorKind, NewUser, Role, Scal, Store, StoreOptions};

struct Fixture {
    _token: TestToken,
    _dir: tempfile::TempDir,
    sam: Sam,
    hsm: Hsm,
}

fn fixture() -> Fixture {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("csc.db").display());
    let store = Store::open_or_create(&url, StoreOptions::default()).expect("store");
    let sam = Sam::open(&token.config, store, &dir.path().join("dev-ca.json")).expect("sam");
    // rows are written through the SAM's store: it holds the integrity keys
    let store = sam.store().clone();
    store
        .write(|c| {
            c.create_user(&NewUser {
                name: "alice".into(),
                password_hash: "$argon2id$unused".into(),
                role: Role::Signer,
            })
        })
        .expect("user");
    let hsm = Hsm::open(&token.config).expect("hsm");
    Fixture {
        _token: token,
        _dir: dir,
        sam,
        hsm,
    }
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

fn mechanism(spec: KeySpec) -> (SignMechanism, MessageDigest) {
    if spec.is_rsa() {
        (
            SignMechanism::RsaPkcs1v15 {
                hash: HashAlg::Sha256,
            },
            MessageDigest::sha256(),
        )
    } else {
        (
            SignMechanism::Ecdsa {
                hash: HashAlg::Sha256,
            },
            MessageDigest::sha256(),
        )
    }
}

/// Signs `data`'s SHA-256 with the credential key and verifies it against `cert`.
fn sign_and_verify(f: &Fixture, key_id: &KeyId, spec: KeySpec, cert: &X509, data: &[u8]) -> bool {
    let (mech, md) = mechanism(spec);
    let sig = f
        .hsm
        .sign_digest(key_id, &mech, &HashAlg::Sha256.digest(data))
        .expect("sign");
    let pkey = cert.public_key().expect("public key");
    let mut v = Verifier::new(md, &pkey).expect("verifier");
    v.update(data).expect("update");
    v.verify(&sig).unwrap_or(false)
}

#[test]
fn every_key_type_is_generated_in_the_token_and_certified_by_the_dev_ca() {
    let f = fixture();
    let ca = X509::from_der(f.sam.ca_certificate_der()).expect("ca");
    let ca_key = ca.public_key().expect("ca key");
    assert!(ca.verify(&ca_key).expect("verify"), "CA is self-signed");
    for spec in [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EcP256,
        KeySpec::EcP384,
    ] {
        let created = f
            .sam
            .create_credential(request(spec), &sam::Actor::new("test", sam::Role::Operator))
            .expect("create");
        let cred = &created.credential;
        assert_eq!(cred.key_spec, spec.to_string());
        let chain = cred.cert_chain_der().expect("chain");
        assert_eq!(chain.len(), 2, "signer then CA");
        assert_eq!(chain[1], f.sam.ca_certificate_der());
        assert_eq!(chain[0], created.certificate_der);
        let cert = X509::from_der(&chain[0]).expect("signer cert");
        assert!(
            cert.verify(&ca_key).expect("verify"),
            "{spec}: issued by the CA"
        );
        let text = String::from_utf8(cert.to_text().expect("text")).expect("utf8");
        assert!(
            text.contains("Digital Signature, Non Repudiation"),
            "{text}"
        );
        assert!(
            text.contains("CN = alice") || text.contains("CN=alice"),
            "{text}"
        );
        let serial = cert
            .serial_number()
            .to_bn()
            .expect("bn")
            .to_hex_str()
            .expect("hex");
        assert_eq!(
            cred.cert_serial.as_deref(),
            Some(serial.to_lowercase().as_str())
        );

        // the certified key is the key in the token, and it is not extractable
        let key_id: KeyId = cred.key_id.parse().expect("key id");
        let attrs = f.hsm.key_attributes(&key_id).expect("attributes");
        assert!(attrs.sensitive && !attrs.extractable && attrs.never_extractable);
        assert_eq!(attrs.private_value_len, 0);
        assert!(
            sign_and_verify(&f, &key_id, spec, &cert, b"hello"),
            "{spec}"
        );
        // a signature does not verify for other data: the check is real
        let (mech, md) = mechanism(spec);
        let sig = f
            .hsm
            .sign_digest(&key_id, &mech, &HashAlg::Sha256.digest(b"one"))
            .expect("sign");
        let pkey = cert.public_key().expect("pk");
        let mut v = Verifier::new(md, &pkey).expect("verifier");
        v.update(b"two").expect("update");
        assert!(!v.verify(&sig).unwrap_or(false));
    }
}

#[test]
fn the_pin_is_kept_as_an_argon2_verifier_and_otp_gives_a_uri() {
    let f = fixture();
    let mut req = request(KeySpec::EcP256);
    req.otp = sam::OtpChoice::Totp;
    req.scal = Scal::Two;
    req.multisign = 5;
    let created = f
        .sam
        .create_credential(req, &sam::Actor::new("test", sam::Role::Operator))
        .expect("create");
    let uri = created.otpauth_uri.expect("otpauth uri");
    let uri = secrecy::ExposeSecret::expose_secret(&uri);
    assert!(uri.starts_with("otpauth://totp/csc-server:"), "{uri}");
    let id = created.credential.id;
    let pin = f
        .sam
        .store()
        .read(|c| c.factor(&id, FactorKind::Pin))
        .expect("read")
        .expect("pin factor");
    // Argon2id over an HMAC computed in the HSM (sam::secrets module doc)
    assert!(
        pin.verifier.starts_with("hsm-hmac-sha256:$argon2id$"),
        "{}",
        pin.verifier
    );
    assert!(!pin.verifier.contains("123456"));
    let otp = f
        .sam
        .store()
        .read(|c| c.factor(&id, FactorKind::Otp))
        .expect("read");
    // the seed is in the token; the verifier names its key, never the seed
    let otp = otp.expect("otp factor");
    let seed = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("seed in the URI");
    assert!(
        otp.verifier.starts_with("hsm-totp:v1:") && !otp.verifier.contains(seed),
        "{}",
        otp.verifier
    );
    assert_eq!(created.credential.scal, Scal::Two);
    assert_eq!(created.credential.multisign, 5);
}

#[test]
fn bad_requests_are_refused_before_any_key_is_made() {
    let f = fixture();
    let mut req = request(KeySpec::EcP256);
    req.pin = SecretString::from("12");
    assert!(matches!(
        f.sam
            .create_credential(req, &sam::Actor::new("test", sam::Role::Operator)),
        Err(SamError::InvalidInput(_))
    ));
    let mut req = request(KeySpec::EcP256);
    req.multisign = 0;
    assert!(matches!(
        f.sam
            .create_credential(req, &sam::Actor::new("test", sam::Role::Operator)),
        Err(SamError::InvalidInput(_))
    ));
    let mut req = request(KeySpec::EcP256);
    req.user_name = "mallory".into();
    assert!(matches!(
        f.sam
            .create_credential(req, &sam::Actor::new("test", sam::Role::Operator)),
        Err(SamError::UnknownUser(_))
    ));
    let listed = f
        .sam
        .store()
        .read(|c| c.list_credentials(None))
        .expect("list");
    assert!(listed.is_empty());
}

#[test]
fn a_chain_for_another_key_is_refused_and_a_matching_one_imported() {
    let f = fixture();
    let a = f
        .sam
        .create_credential(
            request(KeySpec::EcP256),
            &sam::Actor::new("t", sam::Role::Operator),
        )
        .expect("a");
    let b = f
        .sam
        .create_credential(
            request(KeySpec::EcP256),
            &sam::Actor::new("t", sam::Role::Operator),
        )
        .expect("b");
    let b_chain = b.credential.cert_chain_der().expect("chain");
    let a_chain = a.credential.cert_chain_der().expect("chain");

    let refused = f.sam.import_certificate_chain(
        &a.credential.id,
        b_chain.clone(),
        &sam::Actor::new("t", sam::Role::Operator),
    );
    assert!(matches!(refused, Err(SamError::KeyMismatch)), "{refused:?}");
    // the CA first is also a key mismatch; garbage is an invalid chain
    let reversed: Vec<_> = a_chain.iter().rev().cloned().collect();
    assert!(matches!(
        f.sam.import_certificate_chain(
            &a.credential.id,
            reversed,
            &sam::Actor::new("t", sam::Role::Operator)
        ),
        Err(SamError::KeyMismatch)
    ));
    assert!(matches!(
        f.sam.import_certificate_chain(
            &a.credential.id,
            vec![b"junk".to_vec()],
            &sam::Actor::new("t", sam::Role::Operator)
        ),
        Err(SamError::InvalidChain(_))
    ));
    // nothing changed
    let stored = f
        .sam
        .store()
        .read(|c| c.credential(&a.credential.id))
        .expect("read")
        .expect("cred");
    assert_eq!(stored.cert_chain_der().expect("chain"), a_chain);

    // a chain whose signer is the token key but whose issuer did not sign it is refused
    let forged = vec![a_chain[0].clone(), b_chain[0].clone()];
    assert!(matches!(
        f.sam.import_certificate_chain(
            &a.credential.id,
            forged,
            &sam::Actor::new("t", sam::Role::Operator)
        ),
        Err(SamError::InvalidChain(_))
    ));

    let ok = f
        .sam
        .import_certificate_chain(
            &a.credential.id,
            vec![a_chain[0].clone()],
            &sam::Actor::new("t", sam::Role::Operator),
        )
        .expect("import own certificate");
    assert_eq!(
        ok.cert_chain_der().expect("chain"),
        vec![a_chain[0].clone()]
    );
}

#[test]
fn a_destroyed_key_can_no_longer_sign() {
    let f = fixture();
    let created = f
        .sam
        .create_credential(
            request(KeySpec::EcP256),
            &sam::Actor::new("t", sam::Role::Operator),
        )
        .expect("create");
    let key_id: KeyId = created.credential.key_id.parse().expect("key id");
    let cert = X509::from_der(&created.certificate_der).expect("cert");
    assert!(sign_and_verify(
        &f,
        &key_id,
        KeySpec::EcP256,
        &cert,
        b"before"
    ));
    f.sam
        .destroy_credential_key(
            &created.credential.id,
            &sam::Actor::new("t", sam::Role::SecurityOfficer),
        )
        .expect("destroy");
    let after = f.hsm.sign_digest(
        &key_id,
        &SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        },
        &HashAlg::Sha256.digest(b"after"),
    );
    assert!(matches!(after, Err(HsmError::KeyNotFound(_))), "{after:?}");
    let stored = f
        .sam
        .store()
        .read(|c| c.credential(&created.credential.id))
        .expect("read")
        .expect("cred");
    assert_eq!(stored.status, CredentialStatus::Disabled);
    let records = f
        .sam
        .store()
        .read(|c| c.audit_records(0, 1000))
        .expect("audit");
    let events: Vec<_> = records.iter().map(|r| r.event.as_str()).collect();
    assert!(events.contains(&"key.generate"), "{events:?}");
    assert!(events.contains(&"key.destroy"), "{events:?}");
}

#[test]
fn the_dev_ca_survives_a_restart() {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("csc.db").display());
    let store = Store::open_or_create(&url, StoreOptions::default()).expect("store");
    let ca_file = dir.path().join("dev-ca.json");
    let first = Sam::open(&token.config, store.clone(), &ca_file).expect("sam");
    let again = Sam::open(&token.config, store, &ca_file).expect("sam again");
    assert_eq!(first.ca_certificate_der(), again.ca_certificate_der());
}

#[test]
fn scal2_needs_an_otp_and_online_otp_shows_no_uri() {
    let f = fixture();
    let mut req = request(KeySpec::EcP256);
    req.scal = Scal::Two;
    assert!(matches!(
        f.sam
            .create_credential(req, &sam::Actor::new("test", sam::Role::Operator)),
        Err(SamError::InvalidInput(_))
    ));
    let mut req = request(KeySpec::EcP256);
    req.auth_mode = storage::AuthMode::Implicit;
    assert!(matches!(
        f.sam
            .create_credential(req, &sam::Actor::new("test", sam::Role::Operator)),
        Err(SamError::InvalidInput(_))
    ));
    let mut req = request(KeySpec::EcP256);
    req.scal = Scal::Two;
    req.otp = sam::OtpChoice::Online;
    req.auth_mode = storage::AuthMode::Oauth2Code;
    let created = f
        .sam
        .create_credential(req, &sam::Actor::new("test", sam::Role::Operator))
        .expect("create");
    assert!(created.otpauth_uri.is_none());
    assert_eq!(created.credential.auth_mode, storage::AuthMode::Oauth2Code);
    let otp = f
        .sam
        .store()
        .read(|c| c.factor(&created.credential.id, FactorKind::Otp))
        .expect("read")
        .expect("otp factor");
    assert_eq!(otp.verifier, sam::ONLINE_OTP);
}
