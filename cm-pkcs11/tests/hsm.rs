//! Integration tests against a real SoftHSM2 token (no mock).
//!
//! Run with `cargo nextest run -p cm-pkcs11`: every test runs in its own
//! process with its own token directory (one PKCS#11 context per process).
//! Every signature is verified with OpenSSL against the exported public key,
//! and a signature over a different message must NOT verify.

// Tests may panic loudly: a failing test should say where and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;

use cm_pkcs11::testkit::{TestToken, softhsm_module};
use cm_pkcs11::{
    HashAlg, HmacAlg, Hsm, HsmConfig, HsmError, KeyId, KeySpec, PublicKey, SignMechanism,
};
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{Id, PKey};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use secrecy::{ExposeSecret, SecretString};

const SHA256: HashAlg = HashAlg::Sha256;
const SHA384: HashAlg = HashAlg::Sha384;
const SHA512: HashAlg = HashAlg::Sha512;

/// Verifies `sig` over `data` (which the signer hashed with the mechanism's
/// hash) with OpenSSL.
fn verifies(pk: &PublicKey, mech: &SignMechanism, data: &[u8], sig: &[u8]) -> bool {
    let pkey = PKey::public_key_from_der(&pk.spki_der).expect("exported SPKI parses");
    let mut v = Verifier::new(mech.hash().md(), &pkey).expect("verifier");
    if let SignMechanism::RsaPss {
        mgf_hash, salt_len, ..
    } = mech
    {
        v.set_rsa_padding(Padding::PKCS1_PSS).expect("pss padding");
        v.set_rsa_mgf1_md(mgf_hash.md()).expect("mgf1 md");
        v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(
            i32::try_from(*salt_len).expect("salt fits i32"),
        ))
        .expect("salt len");
    }
    v.update(data).expect("verifier update");
    v.verify(sig).unwrap_or(false)
}

/// Signs the hash of a message, checks the signature verifies over the
/// message and does not verify over another message; returns the signature.
fn sign_and_verify(hsm: &Hsm, id: &KeyId, pk: &PublicKey, mech: SignMechanism) -> Vec<u8> {
    let data = format!("document signed with {mech}").into_bytes();
    let digest = mech.hash().digest(&data);
    let sig = hsm.sign_digest(id, &mech, &digest).expect("sign_digest");
    assert!(
        verifies(pk, &mech, &data, &sig),
        "{mech}: signature must verify"
    );
    assert!(
        !verifies(pk, &mech, b"a different document", &sig),
        "{mech}: signature must not verify over a different digest"
    );
    if pk.spec.is_rsa() {
        assert_eq!(
            sig.len(),
            pk.spec.bits() / 8,
            "{mech}: RSA signature length"
        );
    } else {
        let parsed = EcdsaSig::from_der(&sig).expect("ECDSA signature is DER ECDSA-Sig-Value");
        assert_eq!(
            parsed.to_der().expect("re-encode"),
            sig,
            "{mech}: canonical DER"
        );
    }
    sig
}

/// Checks the protection attributes of a freshly generated key (JT2A Part
/// III 1, 3, 5, 16, 17) and its exported public key.
fn check_key(hsm: &Hsm, id: &KeyId, spec: KeySpec) -> PublicKey {
    let a = hsm.key_attributes(id).expect("key_attributes");
    assert!(a.sensitive, "{spec}: CKA_SENSITIVE");
    assert!(!a.extractable, "{spec}: CKA_EXTRACTABLE must be false");
    assert!(a.always_sensitive, "{spec}: CKA_ALWAYS_SENSITIVE");
    assert!(a.never_extractable, "{spec}: CKA_NEVER_EXTRACTABLE");
    assert!(a.sign, "{spec}: CKA_SIGN");
    assert!(!a.decrypt, "{spec}: CKA_DECRYPT must be false");
    assert!(!a.unwrap, "{spec}: CKA_UNWRAP must be false");
    assert!(!a.derive, "{spec}: CKA_DERIVE must be false");
    assert!(a.local, "{spec}: CKA_LOCAL (generated in the token)");
    assert!(!a.modifiable, "{spec}: CKA_MODIFIABLE must be false");
    assert!(!a.copyable, "{spec}: CKA_COPYABLE must be false");
    assert_eq!(
        a.private_value_len, 0,
        "{spec}: private value must read back empty"
    );
    let allowed: BTreeSet<&str> = a.allowed_mechanisms.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = if spec.is_rsa() {
        ["CKM_RSA_PKCS", "CKM_RSA_PKCS_PSS"].into()
    } else {
        ["CKM_ECDSA"].into()
    };
    assert_eq!(allowed, expected, "{spec}: CKA_ALLOWED_MECHANISMS");

    let pk = hsm.public_key(id).expect("public_key");
    assert_eq!(pk.spec, spec);
    let pkey = PKey::public_key_from_der(&pk.spki_der).expect("SPKI parses");
    assert_eq!(pkey.bits() as usize, spec.bits(), "{spec}: key size");
    let raw = pk.raw_public_key_bits();
    if spec.is_rsa() {
        assert_eq!(pkey.id(), Id::RSA);
        let rsa = Rsa::public_key_from_der_pkcs1(&raw).expect("raw bits are RSAPublicKey");
        assert_eq!(rsa.e().to_vec(), vec![1, 0, 1], "public exponent 65537");
        assert_eq!(rsa.n().to_vec(), pkey.rsa().expect("rsa").n().to_vec());
    } else {
        assert_eq!(pkey.id(), Id::EC);
        assert_eq!(raw.len(), 1 + 2 * spec.bits() / 8, "uncompressed point");
        assert_eq!(raw.first(), Some(&0x04));
        assert!(pk.spki_der.ends_with(&raw));
    }
    let from_pem = PKey::public_key_from_pem(pk.to_pem().as_bytes()).expect("PEM parses");
    assert_eq!(from_pem.public_key_to_der().expect("der"), pk.spki_der);
    pk
}

fn pss(hash: HashAlg, salt_len: usize) -> SignMechanism {
    SignMechanism::RsaPss {
        hash,
        mgf_hash: hash,
        salt_len,
    }
}

#[test]
fn rsa_2048_is_protected_and_signs_pkcs1_and_pss() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm
        .generate_key(KeySpec::Rsa2048, "rsa-2048")
        .expect("keygen");
    let pk = check_key(&hsm, &id, KeySpec::Rsa2048);
    for hash in [SHA256, SHA384, SHA512] {
        let mech = SignMechanism::RsaPkcs1v15 { hash };
        let a = sign_and_verify(&hsm, &id, &pk, mech);
        // PKCS#1 v1.5 is deterministic: the token really signed this digest.
        let digest = hash.digest(format!("document signed with {mech}").as_bytes());
        assert_eq!(hsm.sign_digest(&id, &mech, &digest).expect("sign"), a);
    }
    sign_and_verify(&hsm, &id, &pk, pss(SHA256, 32));
    // Salt length = digest length for SHA-384.
    sign_and_verify(&hsm, &id, &pk, pss(SHA384, 48));
    sign_and_verify(&hsm, &id, &pk, pss(SHA512, 64));
    // MGF1 hash different from the message hash: SoftHSM 2.6.1 refuses it
    // (CKR_ARGUMENTS_BAD, "Hash and MGF don't match"); other tokens may sign.
    // Either way there must be no wrong signature.
    let odd = SignMechanism::RsaPss {
        hash: SHA256,
        mgf_hash: SHA512,
        salt_len: 20,
    };
    match hsm.sign_digest(&id, &odd, &SHA256.digest(b"odd")) {
        Ok(sig) => assert!(verifies(&pk, &odd, b"odd", &sig)),
        Err(e) => assert!(matches!(e, HsmError::Pkcs11(_)), "{e:?}"),
    }
    // PSS is randomised: two signatures of one digest differ.
    let d = SHA256.digest(b"x");
    let s1 = hsm.sign_digest(&id, &pss(SHA256, 32), &d).expect("sign");
    let s2 = hsm.sign_digest(&id, &pss(SHA256, 32), &d).expect("sign");
    assert_ne!(s1, s2);
}

#[test]
fn rsa_3072_is_protected_and_signs() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm
        .generate_key(KeySpec::Rsa3072, "rsa-3072")
        .expect("keygen");
    let pk = check_key(&hsm, &id, KeySpec::Rsa3072);
    sign_and_verify(&hsm, &id, &pk, SignMechanism::RsaPkcs1v15 { hash: SHA256 });
    sign_and_verify(&hsm, &id, &pk, pss(SHA256, 32));
}

#[test]
fn rsa_4096_is_protected_and_signs() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm
        .generate_key(KeySpec::Rsa4096, "rsa-4096")
        .expect("keygen");
    let pk = check_key(&hsm, &id, KeySpec::Rsa4096);
    sign_and_verify(&hsm, &id, &pk, SignMechanism::RsaPkcs1v15 { hash: SHA256 });
    sign_and_verify(&hsm, &id, &pk, pss(SHA512, 64));
}

#[test]
fn ec_p256_is_protected_and_signs() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm
        .generate_key(KeySpec::EcP256, "ec-p256")
        .expect("keygen");
    let pk = check_key(&hsm, &id, KeySpec::EcP256);
    sign_and_verify(&hsm, &id, &pk, SignMechanism::Ecdsa { hash: SHA256 });
}

#[test]
fn ec_p384_is_protected_and_signs_sha2_family() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm
        .generate_key(KeySpec::EcP384, "ec-p384")
        .expect("keygen");
    let pk = check_key(&hsm, &id, KeySpec::EcP384);
    for hash in [SHA256, SHA384, SHA512] {
        sign_and_verify(&hsm, &id, &pk, SignMechanism::Ecdsa { hash });
    }
}

#[test]
fn a_key_signs_only_for_the_owner_its_label_names() {
    // issue 11: a key id re-pointed at another owner's key cannot sign
    let t = TestToken::new();
    let hsm = Hsm::open(&t.config).expect("open");
    let id = hsm
        .generate_key(KeySpec::EcP256, "owner-a")
        .expect("generate");
    let mech = SignMechanism::Ecdsa {
        hash: HashAlg::Sha256,
    };
    let digest = vec![openssl::sha::sha256(b"bound message").to_vec()];
    assert!(matches!(
        hsm.sign_digests_for(&id, "owner-b", &mech, &digest),
        Err(HsmError::KeyNotBound(k)) if k == id
    ));
    let sigs = hsm
        .sign_digests_for(&id, "owner-a", &mech, &digest)
        .expect("the owner signs");
    let pk = hsm.public_key(&id).expect("public key");
    assert!(verifies(&pk, &mech, b"bound message", &sigs[0]));
    // the same after a reopen: the label is read back from the token, not remembered
    drop(hsm);
    let hsm = Hsm::open(&t.config).expect("reopen");
    assert!(matches!(
        hsm.sign_digests_for(&id, "owner-b", &mech, &digest),
        Err(HsmError::KeyNotBound(_))
    ));
    hsm.sign_digests_for(&id, "owner-a", &mech, &digest)
        .expect("the owner signs after reopen");
}

#[test]
fn sign_digests_signs_a_batch_on_one_session() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm.generate_key(KeySpec::EcP256, "batch").expect("keygen");
    let pk = hsm.public_key(&id).expect("public_key");
    let mech = SignMechanism::Ecdsa { hash: SHA256 };
    let docs: Vec<Vec<u8>> = (0..10).map(|i| format!("doc {i}").into_bytes()).collect();
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| SHA256.digest(d)).collect();
    let sigs = hsm.sign_digests(&id, &mech, &digests).expect("batch");
    assert_eq!(sigs.len(), 10);
    for (i, (doc, sig)) in docs.iter().zip(&sigs).enumerate() {
        assert!(verifies(&pk, &mech, doc, sig), "signature {i} verifies");
        let other = &docs[(i + 1) % docs.len()];
        assert!(
            !verifies(&pk, &mech, other, sig),
            "signature {i} is bound to its doc"
        );
    }
    // All or error: one bad digest fails the whole batch before signing.
    let mut bad = digests.clone();
    bad[7].pop();
    assert!(matches!(
        hsm.sign_digests(&id, &mech, &bad),
        Err(HsmError::DigestLength {
            expected: 32,
            got: 31
        })
    ));
    assert!(hsm.sign_digests(&id, &mech, &[]).expect("empty").is_empty());
}

#[test]
fn destroy_key_removes_it_from_the_token() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm.generate_key(KeySpec::EcP256, "doomed").expect("keygen");
    let keep = hsm.generate_key(KeySpec::EcP256, "kept").expect("keygen");
    let mech = SignMechanism::Ecdsa { hash: SHA256 };
    let digest = SHA256.digest(b"before");
    hsm.sign_digest(&id, &mech, &digest)
        .expect("sign before destroy");

    hsm.destroy_key(&id).expect("destroy");

    let not_found = |r: Result<(), HsmError>| match r {
        Err(HsmError::KeyNotFound(k)) => assert_eq!(k, id),
        other => panic!("expected KeyNotFound, got {other:?}"),
    };
    not_found(hsm.sign_digest(&id, &mech, &digest).map(drop));
    not_found(hsm.key_attributes(&id).map(drop));
    not_found(hsm.public_key(&id).map(drop));
    not_found(hsm.destroy_key(&id));
    // The objects are gone from the token, not only from the cache: a fresh
    // handle (new sessions, empty cache) does not find them either.
    drop(hsm);
    let hsm = token.open();
    not_found(hsm.sign_digest(&id, &mech, &digest).map(drop));
    // The other key is untouched.
    hsm.sign_digest(&keep, &mech, &digest)
        .expect("other key still signs");
    let msg = HsmError::KeyNotFound(id).to_string();
    assert!(msg.contains(&id.to_string()), "{msg}");
}

#[test]
fn keys_are_found_again_after_reopen() {
    let token = TestToken::new();
    let hsm = token.open();
    let ec = hsm.generate_key(KeySpec::EcP384, "ec").expect("keygen");
    let rsa = hsm.generate_key(KeySpec::Rsa2048, "rsa").expect("keygen");
    let ec_pk = hsm.public_key(&ec).expect("pk");
    let rsa_pk = hsm.public_key(&rsa).expect("pk");
    drop(hsm);
    // New anchor session, new pool, empty cache: handles and specs come from
    // find_objects and the key attributes.
    let hsm = token.open();
    assert_eq!(hsm.public_key(&ec).expect("pk"), ec_pk);
    assert_eq!(hsm.public_key(&rsa).expect("pk"), rsa_pk);
    sign_and_verify(&hsm, &ec, &ec_pk, SignMechanism::Ecdsa { hash: SHA384 });
    sign_and_verify(&hsm, &rsa, &rsa_pk, pss(SHA256, 32));
    let unknown = KeyId::random().expect("random");
    assert!(matches!(
        hsm.sign_digest(&unknown, &SignMechanism::Ecdsa { hash: SHA256 }, &[0; 32]),
        Err(HsmError::KeyNotFound(k)) if k == unknown
    ));
}

#[test]
fn rejects_bad_digest_length_and_mismatched_mechanism() {
    let token = TestToken::new();
    let hsm = token.open();
    let ec = hsm.generate_key(KeySpec::EcP256, "ec").expect("keygen");
    let rsa = hsm.generate_key(KeySpec::Rsa2048, "rsa").expect("keygen");

    let err = hsm
        .sign_digest(&ec, &SignMechanism::Ecdsa { hash: SHA256 }, &[0u8; 31])
        .unwrap_err();
    assert!(
        matches!(
            err,
            HsmError::DigestLength {
                expected: 32,
                got: 31
            }
        ),
        "{err:?}"
    );
    let err = hsm
        .sign_digest(
            &rsa,
            &SignMechanism::RsaPkcs1v15 { hash: SHA384 },
            &[0u8; 32],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            HsmError::DigestLength {
                expected: 48,
                got: 32
            }
        ),
        "{err:?}"
    );

    let err = hsm
        .sign_digest(&rsa, &SignMechanism::Ecdsa { hash: SHA256 }, &[0u8; 32])
        .unwrap_err();
    assert!(
        matches!(
            err,
            HsmError::MechanismMismatch {
                key: KeySpec::Rsa2048,
                ..
            }
        ),
        "{err:?}"
    );
    for mech in [SignMechanism::RsaPkcs1v15 { hash: SHA256 }, pss(SHA256, 32)] {
        let err = hsm.sign_digest(&ec, &mech, &[0u8; 32]).unwrap_err();
        assert!(
            matches!(
                err,
                HsmError::MechanismMismatch {
                    key: KeySpec::EcP256,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // 2048-bit key, SHA-512: at most 256 - 64 - 2 = 190 bytes of salt.
    let err = hsm
        .sign_digest(&rsa, &pss(SHA512, 191), &[0u8; 64])
        .unwrap_err();
    assert!(
        matches!(
            err,
            HsmError::InvalidSaltLength {
                salt_len: 191,
                max: 190
            }
        ),
        "{err:?}"
    );
    let pk = hsm.public_key(&rsa).expect("pk");
    sign_and_verify(&hsm, &rsa, &pk, pss(SHA512, 190));
}

#[test]
fn wrong_pin_is_reported_without_the_pin() {
    let token = TestToken::new();
    let mut cfg = token.config.clone();
    let wrong = format!("{}9", token.config.user_pin.expose_secret());
    cfg.user_pin = SecretString::from(wrong.clone());
    let err = Hsm::open(&cfg).unwrap_err();
    assert!(matches!(err, HsmError::WrongPin), "{err:?}");
    let msg = format!("{err} {err:?} {cfg:?}");
    assert_eq!(err.to_string(), "wrong token PIN");
    assert!(!msg.contains(&wrong), "the PIN must not leak: {msg}");
    assert!(
        !msg.contains(token.config.user_pin.expose_secret()),
        "the PIN must not leak: {msg}"
    );
    // The right PIN still works afterwards.
    let hsm = token.open();
    hsm.health_check().expect("logged in");
    // And a second open of the already-open token still checks the PIN.
    let err = Hsm::open(&cfg).unwrap_err();
    assert!(matches!(err, HsmError::WrongPin), "{err:?}");
    let again = Hsm::open(&token.config).expect("same token, right PIN");
    let id = again
        .generate_key(KeySpec::EcP256, "shared")
        .expect("keygen");
    hsm.public_key(&id).expect("both handles see the key");
}

#[test]
fn missing_module_is_reported_with_its_path() {
    let path = Path::new("/nonexistent/dir/libno-such-pkcs11.so");
    let cfg = HsmConfig::new(path, "whatever", SecretString::from("1234"));
    let err = Hsm::open(&cfg).unwrap_err();
    assert!(matches!(err, HsmError::ModuleLoad { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "PKCS#11 module /nonexistent/dir/libno-such-pkcs11.so could not be loaded: "
        ),
        "{msg}"
    );
    assert!(cm_pkcs11::loaded_module().is_none());
}

#[test]
fn second_module_in_one_process_is_refused() {
    let token = TestToken::new();
    let _hsm = token.open();
    let mut cfg = token.config.clone();
    cfg.module = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so".into();
    let err = Hsm::open(&cfg).unwrap_err();
    assert!(matches!(err, HsmError::ModuleMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("opensc-pkcs11.so"), "{err}");
    // The same module through another path (symlink resolved) is accepted.
    let mut cfg = token.config.clone();
    cfg.module = std::fs::canonicalize(softhsm_module()).expect("module exists");
    Hsm::open(&cfg).expect("same module, other path");
}

#[test]
fn unknown_token_label_is_reported() {
    let token = TestToken::new();
    let mut cfg = token.config.clone();
    cfg.token_label = "no-such-token".into();
    let err = Hsm::open(&cfg).unwrap_err();
    assert!(
        matches!(&err, HsmError::TokenNotFound { label } if label == "no-such-token"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-token"), "{err}");
    cfg.token_label = "x".repeat(33);
    let err = Hsm::open(&cfg).unwrap_err();
    assert!(matches!(err, HsmError::InvalidTokenLabel { .. }), "{err:?}");
}

#[test]
fn init_token_twice_is_a_no_op() {
    let token = TestToken::new();
    let module = &token.config.module;
    let label = &token.config.token_label;
    let other = SecretString::from("87654321");
    assert!(!Hsm::init_token(module, label, &other, &other).expect("second init"));
    // The original PINs still hold: the token was not re-initialised.
    let hsm = token.open();
    let id = hsm.generate_key(KeySpec::EcP256, "k").expect("keygen");
    drop(hsm);
    assert!(!Hsm::init_token(module, label, &token.so_pin, &other).expect("third init"));
    token.open().public_key(&id).expect("key survived");
}

#[test]
fn concurrent_signing_shares_one_hsm() {
    let token = TestToken::new();
    let mut cfg = token.config.clone();
    // Fewer sessions than threads: the pool must make threads wait.
    cfg.max_sessions = 2;
    let hsm = Hsm::open(&cfg).expect("open");
    let id = hsm.generate_key(KeySpec::EcP256, "hot").expect("keygen");
    let pk = hsm.public_key(&id).expect("pk");
    let mech = SignMechanism::Ecdsa { hash: SHA256 };
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let hsm = hsm.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let doc = format!("thread {t} doc {i}").into_bytes();
                        let sig = hsm
                            .sign_digest(&id, &mech, &SHA256.digest(&doc))
                            .expect("sign");
                        (doc, sig)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut n = 0;
    for h in handles {
        for (doc, sig) in h.join().expect("thread") {
            assert!(verifies(&pk, &mech, &doc, &sig));
            n += 1;
        }
    }
    assert_eq!(n, 200);
}

#[test]
fn hsm_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Hsm>();
}

// ---- HMAC-SHA256 secret key (PIN verifier pepper) ----

#[test]
fn secret_key_is_found_again_by_label() {
    let token = TestToken::new();
    let hsm = token.open();
    let pepper = hsm.secret_key("pin-pepper").expect("create");
    assert_eq!(hsm.secret_key("pin-pepper").expect("find"), pepper);
    let other = hsm.secret_key("other-pepper").expect("create other");
    assert_ne!(other, pepper, "another label is another key");
    assert_eq!(hsm.secret_key("pin-pepper").expect("find"), pepper);
    let mac = hsm.hmac_sha256(&pepper, b"pin").expect("hmac");
    // A fresh handle (new sessions, empty cache) finds the same key in the
    // token, and it computes the same HMAC.
    drop(hsm);
    let hsm = token.open();
    assert_eq!(hsm.secret_key("pin-pepper").expect("find"), pepper);
    assert_eq!(hsm.secret_key("other-pepper").expect("find"), other);
    assert_eq!(hsm.hmac_sha256(&pepper, b"pin").expect("hmac"), mac);
    let err = hsm.secret_key("").unwrap_err();
    assert!(matches!(err, HsmError::Config(_)), "{err:?}");
}

#[test]
fn hmac_sha256_is_deterministic_and_keyed() {
    let token = TestToken::new();
    let hsm = token.open();
    let a = hsm.secret_key("pepper-a").expect("key a");
    let b = hsm.secret_key("pepper-b").expect("key b");
    let data = b"user 42, PIN 123456".to_vec();
    let mac = hsm.hmac_sha256(&a, &data).expect("hmac");
    assert_eq!(mac.len(), 32);
    assert_eq!(
        hsm.hmac_sha256(&a, &data).expect("hmac"),
        mac,
        "deterministic"
    );
    let mut changed = data.clone();
    changed[data.len() - 1] ^= 0x01;
    assert_ne!(
        hsm.hmac_sha256(&a, &changed).expect("hmac"),
        mac,
        "1-bit change of the data"
    );
    assert_ne!(hsm.hmac_sha256(&b, &data).expect("hmac"), mac, "other key");
    // Keyed: not a plain hash of the data, not a constant.
    assert_ne!(mac.to_vec(), SHA256.digest(&data));
    assert_ne!(mac, [0u8; 32]);
    assert_ne!(
        hsm.hmac_sha256(&a, b"").expect("empty data"),
        hsm.hmac_sha256(&a, b"\0").expect("one zero byte")
    );

    // Only HMAC secret keys: a signing key pair's id is not one, and the
    // secret key cannot sign digests.
    let signing = hsm.generate_key(KeySpec::EcP256, "sign").expect("keygen");
    assert!(matches!(
        hsm.hmac_sha256(&signing, &data),
        Err(HsmError::KeyNotFound(k)) if k == signing
    ));
    assert!(matches!(
        hsm.sign_digest(&a, &SignMechanism::Ecdsa { hash: SHA256 }, &[0; 32]),
        Err(HsmError::KeyNotFound(k)) if k == a
    ));
    let unknown = KeyId::random().expect("random");
    assert!(matches!(
        hsm.hmac_sha256(&unknown, &data),
        Err(HsmError::KeyNotFound(k)) if k == unknown
    ));
}

#[test]
fn secret_key_value_cannot_be_read() {
    let token = TestToken::new();
    let hsm = token.open();
    let id = hsm.secret_key("pin-pepper").expect("create");
    let a = hsm.key_attributes(&id).expect("key_attributes");
    assert!(a.sensitive, "CKA_SENSITIVE");
    assert!(!a.extractable, "CKA_EXTRACTABLE must be false");
    assert!(a.always_sensitive, "CKA_ALWAYS_SENSITIVE");
    assert!(a.never_extractable, "CKA_NEVER_EXTRACTABLE");
    assert!(a.local, "CKA_LOCAL (generated in the token)");
    assert!(a.sign, "CKA_SIGN");
    assert!(!a.decrypt, "CKA_DECRYPT must be false");
    assert!(!a.unwrap, "CKA_UNWRAP must be false");
    assert!(!a.derive, "CKA_DERIVE must be false");
    assert_eq!(a.private_value_len, 0, "CKA_VALUE must read back empty");
    assert_eq!(a.allowed_mechanisms, ["CKM_SHA256_HMAC"]);
    // Same answer through a fresh handle (key found by id, not cached).
    drop(hsm);
    assert_eq!(token.open().key_attributes(&id).expect("again"), a);
}

#[test]
fn hmac_sha256_from_many_threads() {
    let token = TestToken::new();
    let mut cfg = token.config.clone();
    cfg.max_sessions = 2;
    let hsm = Hsm::open(&cfg).expect("open");
    let key = hsm.secret_key("pin-pepper").expect("create");
    let expected: Vec<[u8; 32]> = (0..20)
        .map(|i| {
            hsm.hmac_sha256(&key, format!("pin {i}").as_bytes())
                .expect("hmac")
        })
        .collect();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let hsm = hsm.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| hsm.hmac_sha256(&key, format!("pin {i}").as_bytes()))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread").expect("hmac"), expected);
    }
    let distinct: BTreeSet<[u8; 32]> = expected.iter().copied().collect();
    assert_eq!(distinct.len(), expected.len());
}

// ---- imported HMAC secrets (TOTP seeds) ----

/// The RFC 4226 appendix D test secret, "12345678901234567890".
const RFC4226_SECRET: &[u8; 20] = b"12345678901234567890";

/// RFC 4226 appendix D: HMAC-SHA-1(secret, counter) for counters 0 to 9.
const RFC4226_HMACS: [&str; 10] = [
    "cc93cf18508d94934c64b65d8ba7667fb7cde4b0",
    "75a48a19d4cbe100644e8ac1397eea747a2d33ab",
    "0bacb7fa082fef30782211938bc1c5e70416ff44",
    "66c28227d03a2d5529262ff016a1e6ef76557ece",
    "a904c900a64b35909874b33e61c5938a8e15ed1c",
    "a37e783d7b7233c083d4f62926c7a25f238d0316",
    "bc9cd28561042c83f219324d3c607256c03272ae",
    "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa",
    "1b3c89f65e6c9e883012052823443f048b4332db",
    "1637409809a679dc698207310c8c7fc07290d9e5",
];

fn openssl_hmac(alg: HmacAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    let md = match alg {
        HmacAlg::Sha1 => openssl::hash::MessageDigest::sha1(),
        HmacAlg::Sha256 => openssl::hash::MessageDigest::sha256(),
        HmacAlg::Sha512 => openssl::hash::MessageDigest::sha512(),
    };
    let pkey = PKey::hmac(key).expect("hmac key");
    let mut signer = openssl::sign::Signer::new(md, &pkey).expect("signer");
    signer.update(data).expect("update");
    signer.sign_to_vec().expect("hmac")
}

#[test]
fn an_imported_hmac_secret_computes_rfc4226_hmacs_in_the_token() {
    let token = TestToken::new();
    let hsm = token.open();
    let seed = zeroize::Zeroizing::new(RFC4226_SECRET.to_vec());
    let key = hsm
        .import_hmac_secret("csc-totp:test", &seed, HmacAlg::Sha1)
        .expect("import");
    for (counter, expected) in (0u64..).zip(RFC4226_HMACS) {
        let mac = hsm
            .hmac(&key, HmacAlg::Sha1, &counter.to_be_bytes())
            .expect("hmac");
        assert_eq!(hex::encode(&mac), expected, "counter {counter}");
    }
    // The RFC 6238 seeds of SHA-256 and SHA-512, checked against OpenSSL.
    for (alg, seed) in [
        (
            HmacAlg::Sha256,
            b"12345678901234567890123456789012".to_vec(),
        ),
        (
            HmacAlg::Sha512,
            b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
        ),
    ] {
        let key = hsm
            .import_hmac_secret("csc-totp:test", &zeroize::Zeroizing::new(seed.clone()), alg)
            .expect("import");
        let data = 59u64.to_be_bytes();
        let mac = hsm.hmac(&key, alg, &data).expect("hmac");
        assert_eq!(mac.len(), alg.output_len());
        assert_eq!(mac, openssl_hmac(alg, &seed, &data), "{alg}");
        // one algorithm per key: the token itself refuses another one
        let other = if alg == HmacAlg::Sha256 {
            HmacAlg::Sha512
        } else {
            HmacAlg::Sha256
        };
        let err = hsm.hmac(&key, other, &data).unwrap_err();
        assert!(
            matches!(&err, HsmError::UnsupportedKey { id, .. } if *id == key),
            "{err:?}"
        );
    }
    // A fresh handle (empty cache) finds the key by id, admits it, same HMAC.
    drop(hsm);
    let hsm = token.open();
    assert_eq!(
        hex::encode(
            hsm.hmac(&key, HmacAlg::Sha1, &9u64.to_be_bytes())
                .expect("hmac")
        ),
        RFC4226_HMACS[9]
    );
    let err = hsm.hmac(&key, HmacAlg::Sha256, b"x").unwrap_err();
    assert!(matches!(err, HsmError::UnsupportedKey { .. }), "{err:?}");
}

#[test]
fn an_imported_hmac_secret_is_sensitive_and_never_extractable() {
    let token = TestToken::new();
    let hsm = token.open();
    let seed = zeroize::Zeroizing::new(RFC4226_SECRET.to_vec());
    let key = hsm
        .import_hmac_secret("csc-totp:attrs", &seed, HmacAlg::Sha1)
        .expect("import");
    let a = hsm.key_attributes(&key).expect("key_attributes");
    assert!(a.sensitive, "CKA_SENSITIVE");
    assert!(!a.extractable, "CKA_EXTRACTABLE must be false");
    assert!(a.sign, "CKA_SIGN");
    assert!(!a.decrypt, "CKA_DECRYPT must be false");
    assert!(!a.unwrap, "CKA_UNWRAP must be false");
    assert!(!a.derive, "CKA_DERIVE must be false");
    assert!(!a.local, "imported, not generated in the token");
    assert_eq!(a.private_value_len, 0, "CKA_VALUE must read back empty");
    assert_eq!(a.allowed_mechanisms, ["CKM_SHA_1_HMAC"]);
    // the same through a fresh handle (found by id in the token, not cached)
    drop(hsm);
    assert_eq!(token.open().key_attributes(&key).expect("again"), a);
}

#[test]
fn importing_refuses_short_secrets_and_empty_labels() {
    let token = TestToken::new();
    let hsm = token.open();
    for alg in HmacAlg::ALL {
        let short = zeroize::Zeroizing::new(vec![7u8; alg.min_key_len() - 1]);
        let err = hsm
            .import_hmac_secret("csc-totp:x", &short, alg)
            .unwrap_err();
        assert!(
            matches!(err, HsmError::SecretTooShort { alg: a, got, min }
                if a == alg && got == min - 1 && min == alg.output_len()),
            "{err:?}"
        );
    }
    let seed = zeroize::Zeroizing::new(RFC4226_SECRET.to_vec());
    let err = hsm
        .import_hmac_secret("", &seed, HmacAlg::Sha1)
        .unwrap_err();
    assert!(matches!(err, HsmError::Config(_)), "{err:?}");
}

#[test]
fn destroy_secret_removes_only_that_secret_key() {
    let token = TestToken::new();
    let hsm = token.open();
    let seed = zeroize::Zeroizing::new(RFC4226_SECRET.to_vec());
    let a = hsm
        .import_hmac_secret("csc-totp:a", &seed, HmacAlg::Sha1)
        .expect("import a");
    let b = hsm
        .import_hmac_secret("csc-totp:b", &seed, HmacAlg::Sha1)
        .expect("import b");
    assert_ne!(a, b, "a fresh id per import");
    let mac = hsm.hmac(&a, HmacAlg::Sha1, b"x").expect("hmac a");
    hsm.destroy_secret(&a).expect("destroy");
    assert!(matches!(
        hsm.hmac(&a, HmacAlg::Sha1, b"x"),
        Err(HsmError::KeyNotFound(k)) if k == a
    ));
    assert!(matches!(hsm.destroy_secret(&a), Err(HsmError::KeyNotFound(k)) if k == a));
    assert_eq!(hsm.hmac(&b, HmacAlg::Sha1, b"x").expect("b stays"), mac);
    // a key pair is not a secret key: destroy_secret leaves it alone
    let pair = hsm.generate_key(KeySpec::EcP256, "sign").expect("keygen");
    assert!(matches!(hsm.destroy_secret(&pair), Err(HsmError::KeyNotFound(k)) if k == pair));
    hsm.public_key(&pair).expect("the key pair is still there");
}

/// Issue 13, what differs between HSMs is configuration: the token is picked by label and, when
/// configured, by slot id and serial number; a token elsewhere or with another serial is refused.
#[test]
fn the_token_is_picked_by_slot_and_serial_when_configured() {
    let t = TestToken::new();
    let hsm = t.open();
    let (slot, serial) = (hsm.slot_id(), hsm.token_serial().unwrap());
    // SoftHSM2 offers every mechanism the server uses
    assert_eq!(hsm.missing_mechanisms().unwrap(), Vec::<String>::new());
    assert!(!serial.is_empty());
    let with = |slot_id: Option<u64>, token_serial: Option<&str>| HsmConfig {
        slot_id,
        token_serial: token_serial.map(str::to_owned),
        ..t.config.clone()
    };
    let refused = |cfg: HsmConfig| match Hsm::open(&cfg) {
        Err(HsmError::Config(m)) => m,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let m = refused(with(Some(slot.wrapping_add(1)), None));
    assert!(
        m.contains(&format!("in slot {}", slot.wrapping_add(1))),
        "{m}"
    );
    let m = refused(with(None, Some("no-such-serial")));
    assert!(m.contains("with serial number \"no-such-serial\""), "{m}");
    let m = refused(with(Some(slot), Some("no-such-serial")));
    assert!(m.contains("no token labelled"), "{m}");
    let same = Hsm::open(&with(Some(slot), Some(&serial))).expect("slot and serial match");
    assert_eq!(same.slot_id(), slot);
}

/// `login_per_session`: every pooled session logs in itself (an "already logged in" answer being
/// fine), and signing works as before.
#[test]
fn sessions_may_log_in_each_on_their_own() {
    let t = TestToken::new();
    let hsm = Hsm::open(&HsmConfig {
        login_per_session: true,
        max_sessions: 2,
        ..t.config.clone()
    })
    .unwrap();
    let id = hsm.generate_key(KeySpec::EcP256, "per-session").unwrap();
    let pk = hsm.public_key(&id).unwrap();
    let mech = SignMechanism::Ecdsa { hash: SHA256 };
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| sign_and_verify(&hsm, &id, &pk, mech));
        }
    });
    hsm.health_check().unwrap();
}

/// Vendor-defined key attributes reach the token's templates: SoftHSM2 knows none, so it refuses
/// a key generation that carries one, where the same generation without it succeeds.
#[test]
fn vendor_key_attributes_reach_the_token() {
    let t = TestToken::new();
    let hsm = Hsm::open(&HsmConfig {
        key_vendor_attributes: vec!["0x80001234=true".parse().unwrap()],
        ..t.config.clone()
    })
    .unwrap();
    let err = hsm.generate_key(KeySpec::EcP256, "vendor").unwrap_err();
    assert!(
        format!("{err}").contains("ATTRIBUTE_TYPE_INVALID")
            || format!("{err:?}").contains("AttributeTypeInvalid"),
        "{err} / {err:?}"
    );
    let err = hsm.secret_key("vendor-secret").unwrap_err();
    assert!(
        format!("{err:?}").contains("AttributeTypeInvalid"),
        "{err:?}"
    );
}
