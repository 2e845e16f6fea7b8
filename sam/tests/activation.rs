//! Key activation and signing on a real SoftHSM2 token and a real database (SQLite; PostgreSQL
//! for the cross-instance race), no mocks: authorize / extendTransaction / signHash, every
//! signature verified with OpenSSL against the credential's certificate, every refusal checked
//! not to burn the SAD. Run with cargo-nextest (one process per test: one PKCS#11 context).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cm_pkcs11::testkit::TestToken;
use cm_pkcs11::{HashAlg, Hsm, KeyId, KeySpec, SignMechanism};
use common::PgDb;
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::x509::X509;
use sam::algo::{self, AlgoError};
use sam::{
    Caller, Factors, IssuedSad, LoginRefusal, NewCredentialRequest, OtpChoice, OtpDelivery,
    OtpNotifier, Sam, SamError, SamPolicy, SignAlgoRequest,
};
use secrecy::SecretString;
use storage::{
    AuditVerdict, Credential, CredentialId, CredentialStatus, FactorKind, NewUser, Role, Sad, Scal,
    Store, StoreOptions, secret_hash,
};

/// A PIN with characters that never occur in hex, base64 or UUIDs, so the secrecy scan is exact.
const PIN: &str = "pin:S3cr3t!";
const WRONG_PIN: &str = "pin:Wr0ng?";
/// INTESI's RSASSA-PSS parameters (spec §11.9 signAlgoParams): SHA-256, MGF1-SHA-256, salt 32, trailer 1.
const INTESI_PSS: &str =
    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=";

// ---------------------------------------------------------------------------------------------
// fixture

struct Fixture {
    token: TestToken,
    _dir: tempfile::TempDir,
    sam: Sam,
    alice: Caller,
    bob: Caller,
    outbox: Arc<Outbox>,
}

/// Online OTPs as delivered, in memory: (credential, code).
#[derive(Default)]
struct Outbox(std::sync::Mutex<Vec<(CredentialId, String)>>);

impl OtpNotifier for Outbox {
    fn deliver(&self, d: &OtpDelivery<'_>) -> Result<(), String> {
        use secrecy::ExposeSecret;
        self.0
            .lock()
            .map_err(|_| "poisoned".to_owned())?
            .push((*d.credential_id, d.code.expose_secret().to_owned()));
        Ok(())
    }
}

impl Outbox {
    fn last(&self, cred: &CredentialId) -> String {
        self.0
            .lock()
            .expect("outbox")
            .iter()
            .rev()
            .find(|(c, _)| c == cred)
            .map(|(_, code)| code.clone())
            .expect("a code was sent")
    }
}

impl Fixture {
    /// PIN plus a fresh online OTP, sent and read from the outbox (SCAL 2 credentials).
    fn pin_online(&self, cred: &CredentialId) -> Factors {
        self.sam
            .send_online_otp(&self.alice, cred)
            .expect("sendOTP");
        pin_otp(PIN, &self.outbox.last(cred))
    }
}

fn add_users(store: &Store) {
    for name in ["alice", "bob"] {
        store
            .write(|c| {
                c.create_user(&NewUser {
                    name: name.into(),
                    password_hash: "$argon2id$unused".into(),
                    role: Role::Signer,
                })
            })
            .expect("user");
    }
}

fn caller(store: &Store, name: &str) -> Caller {
    let user = store
        .read(|c| c.user_by_name(name))
        .expect("read")
        .expect("user");
    Caller {
        user: user.id,
        user_name: user.name,
        token_hash: secret_hash(format!("access-token-of-{name}").as_bytes()),
    }
}

fn fixture_with(policy: SamPolicy) -> Fixture {
    fixture_on(None, policy)
}

/// A fixture on the PostgreSQL database at `url`, or (`None`) on a SQLite file of its own.
fn fixture_on(url: Option<&str>, policy: SamPolicy) -> Fixture {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = match url {
        Some(url) => Store::open(url, StoreOptions::default()).expect("PostgreSQL store"),
        None => {
            let url = format!("sqlite://{}", dir.path().join("csc.db").display());
            Store::open_or_create(&url, StoreOptions::default()).expect("store")
        }
    };
    let outbox = Arc::new(Outbox::default());
    let sam = Sam::open(&token.config, store, &dir.path().join("dev-ca.json"))
        .expect("sam")
        .with_policy(policy)
        .with_otp_notifier(outbox.clone());
    add_users(sam.store());
    let alice = caller(sam.store(), "alice");
    let bob = caller(sam.store(), "bob");
    Fixture {
        token,
        _dir: dir,
        sam,
        alice,
        bob,
        outbox,
    }
}

fn fixture() -> Fixture {
    fixture_with(SamPolicy::default())
}

struct Cred<'a> {
    user: &'a str,
    spec: KeySpec,
    scal: Scal,
    multisign: u32,
    otp: bool,
}

fn create(sam: &Sam, c: Cred<'_>) -> Credential {
    create_full(sam, c).credential
}

/// [`create`], with what is shown once (the otpauth URI of a TOTP).
fn create_full(sam: &Sam, c: Cred<'_>) -> sam::CreatedCredential {
    sam.create_credential(
        NewCredentialRequest {
            user_name: c.user.into(),
            spec: c.spec,
            scal: c.scal,
            multisign: c.multisign,
            pin: SecretString::from(PIN),
            // SCAL 2 needs a second factor: an online OTP unless a TOTP is asked for
            otp: match (c.otp, c.scal) {
                (true, _) => OtpChoice::Totp,
                (false, Scal::Two) => OtpChoice::Online,
                (false, Scal::One) => OtpChoice::None,
            },
            auth_mode: storage::AuthMode::Explicit,
            description: None,
        },
        &sam::Actor::new("test", sam::Role::Operator),
    )
    .expect("create credential")
}

fn ec(sam: &Sam, user: &str, scal: Scal, multisign: u32) -> Credential {
    create(
        sam,
        Cred {
            user,
            spec: KeySpec::EcP256,
            scal,
            multisign,
            otp: false,
        },
    )
}

fn pin() -> Factors {
    Factors {
        pin: Some(SecretString::from(PIN)),
        otp: None,
    }
}

fn pin_otp(pin: &str, otp: &str) -> Factors {
    Factors {
        pin: Some(SecretString::from(pin)),
        otp: Some(SecretString::from(otp)),
    }
}

fn wrong_pin() -> Factors {
    Factors {
        pin: Some(SecretString::from(WRONG_PIN)),
        otp: None,
    }
}

fn algo(sign_algo: &str) -> SignAlgoRequest {
    SignAlgoRequest {
        sign_algo: sign_algo.into(),
        ..SignAlgoRequest::default()
    }
}

fn es256() -> SignAlgoRequest {
    algo(algo::ECDSA_WITH_SHA256)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    HashAlg::Sha256.digest(data)
}

fn sad_record(sam: &Sam, sad: &str) -> Sad {
    sam.store()
        .read(|c| c.sad(&secret_hash(sad.as_bytes())))
        .expect("read")
        .expect("SAD record")
}

fn factor(sam: &Sam, cred: &CredentialId, kind: FactorKind) -> storage::Factor {
    sam.store()
        .read(|c| c.factor(cred, kind))
        .expect("read")
        .expect("factor")
}

fn audit(sam: &Sam) -> Vec<storage::AuditRecord> {
    sam.store()
        .read(|c| c.audit_records(0, 100_000))
        .expect("audit")
}

fn count_events(sam: &Sam, event: &str, outcome: &str) -> usize {
    audit(sam)
        .iter()
        .filter(|r| r.event == event && r.outcome == outcome)
        .count()
}

// ---------------------------------------------------------------------------------------------
// verification with OpenSSL, independently of the SAM

fn signer_key(cred: &Credential) -> PKey<Public> {
    let chain = cred.cert_chain_der().expect("chain");
    X509::from_der(&chain[0])
        .expect("certificate")
        .public_key()
        .expect("public key")
}

fn md(h: HashAlg) -> &'static MdRef {
    match h {
        HashAlg::Sha256 => Md::sha256(),
        HashAlg::Sha384 => Md::sha384(),
        HashAlg::Sha512 => Md::sha512(),
    }
}

/// Verifies `sig` over the raw `digest` with the certificate's key, as `mech` prescribes.
fn verifies(cred: &Credential, mech: &SignMechanism, digest: &[u8], sig: &[u8]) -> bool {
    let key = signer_key(cred);
    let mut ctx = PkeyCtx::new(&key).expect("ctx");
    ctx.verify_init().expect("verify_init");
    match *mech {
        SignMechanism::RsaPkcs1v15 { hash } => {
            ctx.set_rsa_padding(Padding::PKCS1).expect("padding");
            ctx.set_signature_md(md(hash)).expect("md");
        }
        SignMechanism::RsaPss {
            hash,
            mgf_hash,
            salt_len,
        } => {
            ctx.set_rsa_padding(Padding::PKCS1_PSS).expect("padding");
            ctx.set_signature_md(md(hash)).expect("md");
            ctx.set_rsa_mgf1_md(md(mgf_hash)).expect("mgf1");
            let salt = i32::try_from(salt_len).expect("salt");
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt))
                .expect("salt");
        }
        SignMechanism::Ecdsa { hash } => {
            ctx.set_signature_md(md(hash)).expect("md");
        }
    }
    ctx.verify(digest, sig).unwrap_or(false)
}

fn assert_all_verify(
    cred: &Credential,
    mech: &SignMechanism,
    digests: &[Vec<u8>],
    sigs: &[Vec<u8>],
) {
    assert_eq!(digests.len(), sigs.len(), "one signature per hash");
    for (d, s) in digests.iter().zip(sigs) {
        assert!(verifies(cred, mech, d, s), "{mech} signature must verify");
    }
    // the check is real: a signature does not verify for another digest
    let mut other = digests[0].clone();
    other[0] ^= 1;
    assert!(
        !verifies(cred, mech, &other, &sigs[0]),
        "{mech}: must not verify a different digest"
    );
}

/// Authorizes `n` signatures (SCAL 1, no hashes) and signs `digests`.
fn sign(
    f: &Fixture,
    cred: &Credential,
    digests: &[Vec<u8>],
    req: &SignAlgoRequest,
) -> Vec<Vec<u8>> {
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, digests.len() as i64, None, pin())
        .expect("authorize");
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, digests, req)
        .expect("sign_hash")
}

// ---------------------------------------------------------------------------------------------
// signatures

#[test]
fn rsa_signatures_verify_for_every_algorithm() {
    let f = fixture();
    let cred = create(
        &f.sam,
        Cred {
            user: "alice",
            spec: KeySpec::Rsa2048,
            scal: Scal::One,
            multisign: 10,
            otp: false,
        },
    );

    // sha256WithRSA, hashAlgo omitted; verified over the original data too
    let data = b"signed attributes";
    let d = vec![sha256(data)];
    let sigs = sign(&f, &cred, &d, &algo(algo::SHA256_WITH_RSA));
    let pk1 = SignMechanism::RsaPkcs1v15 {
        hash: HashAlg::Sha256,
    };
    assert_all_verify(&cred, &pk1, &d, &sigs);
    assert_eq!(
        sigs[0].len(),
        256,
        "RSA-2048 signature is the modulus length"
    );
    let key = signer_key(&cred);
    let mut v = Verifier::new(openssl::hash::MessageDigest::sha256(), &key).expect("verifier");
    v.update(data).expect("update");
    assert!(v.verify(&sigs[0]).expect("verify"));

    // sha256WithRSA with the redundant hashAlgo pyHanko always sends
    let req = SignAlgoRequest {
        hash_algo: Some(HashAlg::Sha256.oid().into()),
        ..algo(algo::SHA256_WITH_RSA)
    };
    let d = vec![sha256(b"pyhanko")];
    assert_all_verify(&cred, &pk1, &d, &sign(&f, &cred, &d, &req));

    // plain rsaEncryption + hashAlgo SHA-384, three digests in one call (INTESI)
    let req = SignAlgoRequest {
        hash_algo: Some(HashAlg::Sha384.oid().into()),
        ..algo(algo::RSA_ENCRYPTION)
    };
    let d: Vec<_> = (0..3u8).map(|i| HashAlg::Sha384.digest(&[i])).collect();
    let mech = SignMechanism::RsaPkcs1v15 {
        hash: HashAlg::Sha384,
    };
    assert_all_verify(&cred, &mech, &d, &sign(&f, &cred, &d, &req));

    // RSASSA-PSS with INTESI's parameters (salt 32)
    let req = SignAlgoRequest {
        sign_algo_params: Some(STANDARD.decode(INTESI_PSS).expect("b64")),
        ..algo(algo::RSASSA_PSS)
    };
    let d = vec![sha256(b"pss")];
    let sigs = sign(&f, &cred, &d, &req);
    let mech = SignMechanism::RsaPss {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        salt_len: 32,
    };
    assert_all_verify(&cred, &mech, &d, &sigs);
    let wrong_salt = SignMechanism::RsaPss {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        salt_len: 20,
    };
    assert!(
        !verifies(&cred, &wrong_salt, &d[0], &sigs[0]),
        "the salt length is really 32"
    );

    // RSASSA-PSS as pyHanko sends it: maximum salt (emLen - hLen - 2 = 222) and hashAlgo
    let params = pss_params_der(HashAlg::Sha256, 222);
    let req = SignAlgoRequest {
        sign_algo: algo::RSASSA_PSS.into(),
        hash_algo: Some(HashAlg::Sha256.oid().into()),
        sign_algo_params: Some(params),
    };
    let d = vec![sha256(b"pyhanko pss")];
    let sigs = sign(&f, &cred, &d, &req);
    let mech = SignMechanism::RsaPss {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        salt_len: 222,
    };
    assert_all_verify(&cred, &mech, &d, &sigs);
    assert!(!verifies(&cred, &mech_with_salt(32), &d[0], &sigs[0]));

    // one audit record per signHash call, with the certificate serial
    let records = audit(&f.sam);
    let signed: Vec<_> = records
        .iter()
        .filter(|r| r.event == "signature.sign_hash" && r.outcome == "success")
        .collect();
    assert_eq!(signed.len(), 5);
    let serial = cred.cert_serial.clone().expect("serial");
    assert!(signed.iter().all(|r| r.detail.contains(&serial)
        && r.subject == cred.id.to_string()
        && r.actor == "alice"));
    assert!(signed.iter().any(|r| r.detail.contains(r#""count":3"#)));
}

fn mech_with_salt(salt_len: usize) -> SignMechanism {
    SignMechanism::RsaPss {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        salt_len,
    }
}

/// DER RSASSA-PSS-params (hash, MGF1 with the same hash, salt, no trailer), written with yasna.
fn pss_params_der(hash: HashAlg, salt: u64) -> Vec<u8> {
    use yasna::Tag;
    use yasna::models::ObjectIdentifier;
    let oid = |s: &str| {
        ObjectIdentifier::from_slice(
            &s.split('.')
                .map(|p| p.parse::<u64>().expect("oid"))
                .collect::<Vec<_>>(),
        )
    };
    let hash_oid = oid(hash.oid());
    let write_alg = |w: yasna::DERWriter<'_>| {
        w.write_sequence(|w| {
            w.next().write_oid(&hash_oid);
            w.next().write_null();
        })
    };
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_tagged(Tag::context(0), write_alg);
            w.next().write_tagged(Tag::context(1), |w| {
                w.write_sequence(|w| {
                    w.next().write_oid(&oid("1.2.840.113549.1.1.8"));
                    write_alg(w.next());
                })
            });
            w.next()
                .write_tagged(Tag::context(2), |w| w.write_u64(salt));
        })
    })
}

#[test]
fn ec_p256_and_p384_signatures_verify() {
    let f = fixture();
    for (spec, oid, hash) in [
        (KeySpec::EcP256, algo::ECDSA_WITH_SHA256, HashAlg::Sha256),
        (KeySpec::EcP384, algo::ECDSA_WITH_SHA384, HashAlg::Sha384),
        (KeySpec::EcP256, algo::ECDSA_WITH_SHA512, HashAlg::Sha512),
    ] {
        let cred = create(
            &f.sam,
            Cred {
                user: "alice",
                spec,
                scal: Scal::Two,
                multisign: 2,
                otp: false,
            },
        );
        let d = vec![hash.digest(b"one"), hash.digest(b"two")];
        let issued = f
            .sam
            .authorize(
                &f.alice,
                &cred.id,
                2,
                Some(d.clone()),
                f.pin_online(&cred.id),
            )
            .expect("authorize");
        let req = SignAlgoRequest {
            hash_algo: Some(hash.oid().into()),
            ..algo(oid)
        };
        let sigs = f
            .sam
            .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &req)
            .expect("sign");
        // DER ECDSA-Sig-Value: a SEQUENCE
        assert!(sigs.iter().all(|s| s[0] == 0x30), "{spec}: DER signature");
        assert_all_verify(&cred, &SignMechanism::Ecdsa { hash }, &d, &sigs);
    }
}

// ---------------------------------------------------------------------------------------------
// factors

#[test]
fn a_wrong_pin_is_refused_and_counted_and_the_right_pin_resets_the_count() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    for expected in 1..=2 {
        let r = f.sam.authorize(&f.alice, &cred.id, 1, None, wrong_pin());
        assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
        let pin = factor(&f.sam, &cred.id, FactorKind::Pin);
        assert_eq!(pin.failures, expected);
        assert!(!pin.locked);
    }
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("right PIN");
    assert_eq!(issued.sad.len(), 43, "32 random bytes, base64url");
    assert_eq!(issued.expires_in, 3600);
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Pin).failures, 0);
    assert_eq!(count_events(&f.sam, "sad.authorize", "refused"), 2);
    assert_eq!(count_events(&f.sam, "sad.authorize", "success"), 1);
    // the SAD signs
    let d = vec![sha256(b"x")];
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256())
        .expect("sign");
}

#[test]
fn the_pin_locks_after_max_failures_and_then_refuses_even_the_right_pin() {
    let f = fixture_with(SamPolicy {
        max_factor_failures: 3,
        ..SamPolicy::default()
    });
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    for _ in 0..3 {
        let r = f.sam.authorize(&f.alice, &cred.id, 1, None, wrong_pin());
        assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    }
    let pin_factor = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert!(pin_factor.locked, "locked after 3 failures");
    assert_eq!(pin_factor.failures, 3);
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::PinLocked)), "{r:?}");
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, wrong_pin());
    assert!(matches!(r, Err(SamError::PinLocked)), "{r:?}");
    assert_eq!(
        factor(&f.sam, &cred.id, FactorKind::Pin).failures,
        3,
        "not counted when locked"
    );
    // an administrator unlocks it
    f.sam
        .store()
        .write(|c| c.set_factor_lock(&cred.id, FactorKind::Pin, false))
        .expect("unlock");
    f.sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("right PIN after unlock");
}

const RACERS: usize = 32;

/// How many of `results` are `InvalidPin` (verified and wrong) and `PinLocked`.
fn wrong_and_locked<T>(results: &[Result<T, SamError>]) -> (usize, usize) {
    let count =
        |f: fn(&SamError) -> bool| results.iter().filter(|r| r.as_ref().is_err_and(f)).count();
    (
        count(|e| matches!(e, SamError::InvalidPin)),
        count(|e| matches!(e, SamError::PinLocked)),
    )
}

/// Count first (Part I 7.1.2.5.1; DESIGN.md "count first, then act"): 32 concurrent wrong PINs
/// against the default limit of 5. Every PIN is refused; exactly 5 are verified — counted where
/// the SAM compares a PIN with its verifier ([`Sam::secret_checks`]), so a guess refused
/// without being verified cannot pass for one — and answered `InvalidPin`, the others
/// `PinLocked`; the factor ends locked with one `factor.lock` record; then the right PIN is
/// refused, unverified.
fn concurrent_wrong_pins_are_verified_at_most_max_failures_times(f: &Fixture) {
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let before = f.sam.secret_checks();
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let (sam, alice, id, start) =
                (f.sam.clone(), f.alice.clone(), cred.id, barrier.clone());
            std::thread::spawn(move || {
                start.wait();
                sam.authorize(&alice, &id, 1, None, wrong_pin())
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("guess"))
        .collect();
    assert_eq!(wrong_and_locked(&results), (5, RACERS - 5), "{results:?}");
    assert_eq!(f.sam.secret_checks().pins - before.pins, 5, "PINs verified");
    let pin_factor = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!((pin_factor.failures, pin_factor.locked), (5, true));
    assert_eq!(count_events(&f.sam, "factor.lock", "success"), 1);
    let refusals: Vec<_> = audit(&f.sam)
        .into_iter()
        .filter(|r| r.event == "sad.authorize" && r.outcome == "refused")
        .collect();
    assert_eq!(refusals.len(), RACERS, "every guess is audited");
    assert_eq!(
        refusals
            .iter()
            .filter(|r| r.detail.contains("wrong PIN"))
            .count(),
        5
    );
    // the right PIN after the lock: refused, and not even verified
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::PinLocked)), "{r:?}");
    assert_eq!(f.sam.secret_checks().pins - before.pins, 5);
}

/// The same for passwords (`auth/login`): 32 concurrent wrong passwords against the default
/// limit of 5 are refused, exactly 5 of them verified; the user ends locked with one
/// `user.lock` record, and the right password is then refused as locked, unverified.
fn concurrent_wrong_passwords_are_verified_at_most_max_failures_times(f: &Fixture) {
    f.sam
        .add_user(
            "carol",
            &SecretString::from("carol-password"),
            sam::Role::Signer,
            &sam::Actor::new("test", sam::Role::Operator),
        )
        .expect("carol");
    let policy = sam::TokenPolicy {
        access_ttl: chrono::Duration::minutes(30),
        refresh_ttl: chrono::Duration::hours(1),
    };
    // every guess waits for its turn of the password gate (none refused as busy): this test
    // is about the lockout, not the gate
    let gated = f.sam.clone().with_login_limits(sam::LoginLimits {
        concurrency: 4,
        queue: RACERS,
    });
    let before = gated.secret_checks();
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let (sam, start) = (gated.clone(), barrier.clone());
            std::thread::spawn(move || {
                start.wait();
                sam.login_with_password(
                    &policy,
                    "carol",
                    &SecretString::from("wrong-password"),
                    false,
                )
                .expect("checked")
                .err()
            })
        })
        .collect();
    let refusals: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("guess"))
        .collect();
    let invalid = refusals
        .iter()
        .filter(|r| **r == Some(LoginRefusal::Invalid))
        .count();
    let locked = refusals
        .iter()
        .filter(|r| **r == Some(LoginRefusal::Locked))
        .count();
    assert_eq!((invalid, locked), (5, RACERS - 5), "{refusals:?}");
    assert_eq!(
        f.sam.secret_checks().passwords - before.passwords,
        5,
        "passwords verified"
    );
    let carol = f.sam.user_by_name("carol").expect("read").expect("carol");
    assert_eq!((carol.failed_logins, carol.locked), (5, true));
    assert_eq!(count_events(&f.sam, "user.lock", "success"), 1);
    assert_eq!(count_events(&f.sam, "auth.login", "refused"), RACERS);
    let r = f
        .sam
        .login_with_password(
            &policy,
            "carol",
            &SecretString::from("carol-password"),
            false,
        )
        .expect("checked");
    assert_eq!(r.err(), Some(LoginRefusal::Locked));
    assert_eq!(f.sam.secret_checks().passwords - before.passwords, 5);
    assert_eq!(count_events(&f.sam, "auth.login", "success"), 0);
}

/// The other side of counting first: a signer's parallel activations of one credential, more
/// of them than the lockout limit, all with the right PIN, are all granted. An attempt whose
/// slots are held by attempts still in flight waits for one instead of being refused as locked.
#[test]
fn more_concurrent_right_pins_than_the_limit_are_all_granted() {
    // a bound no machine reaches: the test shows the wait, not how fast attempts settle
    let f = fixture_with(SamPolicy {
        max_slot_wait: Duration::from_secs(600),
        ..SamPolicy::default()
    });
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let (sam, alice, id, start) =
                (f.sam.clone(), f.alice.clone(), cred.id, barrier.clone());
            std::thread::spawn(move || {
                start.wait();
                sam.authorize(&alice, &id, 1, None, pin()).map(drop)
            })
        })
        .collect();
    for h in handles {
        let r = h.join().expect("activation");
        assert!(r.is_ok(), "{r:?}");
    }
    let stored = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!((stored.failures, stored.locked), (0, false));
}

#[test]
fn concurrent_wrong_pins_are_verified_at_most_max_failures_times_sqlite() {
    concurrent_wrong_pins_are_verified_at_most_max_failures_times(&fixture());
}

#[test]
fn concurrent_wrong_pins_are_verified_at_most_max_failures_times_postgres() {
    let db = PgDb::create();
    concurrent_wrong_pins_are_verified_at_most_max_failures_times(&fixture_on(
        Some(&db.url),
        SamPolicy::default(),
    ));
}

#[test]
fn concurrent_wrong_passwords_are_verified_at_most_max_failures_times_sqlite() {
    concurrent_wrong_passwords_are_verified_at_most_max_failures_times(&fixture());
}

#[test]
fn concurrent_wrong_passwords_are_verified_at_most_max_failures_times_postgres() {
    let db = PgDb::create();
    concurrent_wrong_passwords_are_verified_at_most_max_failures_times(&fixture_on(
        Some(&db.url),
        SamPolicy::default(),
    ));
}

/// A wrong value of one factor counts for that factor only: the slot the same activation
/// reserved for the other factor (not verified, or right) is given back; a success clears both.
#[test]
fn a_wrong_factor_gives_the_other_factors_slot_back() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::Two, 1);
    let h = vec![sha256(b"two factors")];
    let counts = |f: &Fixture| {
        (
            factor(&f.sam, &cred.id, FactorKind::Pin).failures,
            factor(&f.sam, &cred.id, FactorKind::Otp).failures,
        )
    };
    f.sam.send_online_otp(&f.alice, &cred.id).expect("sendOTP");
    let code = f.outbox.last(&cred.id);
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(h.clone()),
        pin_otp(WRONG_PIN, &code),
    );
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    assert_eq!(
        counts(&f),
        (1, 0),
        "the OTP was not tried: its slot is given back"
    );
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(h.clone()),
        pin_otp(PIN, "000000"),
    );
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    assert_eq!(
        counts(&f),
        (1, 1),
        "the PIN was right: its slot is given back"
    );
    f.sam
        .authorize(&f.alice, &cred.id, 1, Some(h), f.pin_online(&cred.id))
        .expect("both right");
    assert_eq!(counts(&f), (0, 0), "cleared with the grant");
}

#[test]
fn missing_factors_are_refused_without_counting() {
    let f = fixture();
    let cred = create(
        &f.sam,
        Cred {
            user: "alice",
            spec: KeySpec::EcP256,
            scal: Scal::One,
            multisign: 1,
            otp: true,
        },
    );
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, Factors::default());
    assert!(matches!(r, Err(SamError::MissingPin)), "{r:?}");
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        None,
        Factors {
            pin: None,
            otp: Some(SecretString::from("123456")),
        },
    );
    assert!(matches!(r, Err(SamError::MissingPin)), "{r:?}");
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::MissingOtp)), "{r:?}");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Pin).failures, 0);
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Otp).failures, 0);
    assert_eq!(count_events(&f.sam, "sad.authorize", "refused"), 3);
}

/// A TOTP credential of alice (SCAL `scal`) and the otpauth URI shown at its creation.
fn totp_credential(sam: &Sam, scal: Scal, multisign: u32) -> (Credential, String) {
    use secrecy::ExposeSecret;
    let created = create_full(
        sam,
        Cred {
            user: "alice",
            spec: KeySpec::EcP256,
            scal,
            multisign,
            otp: true,
        },
    );
    let uri = created.otpauth_uri.expect("otpauth URI");
    (created.credential, uri.expose_secret().to_owned())
}

/// The base32 seed in an otpauth URI.
fn seed_of(uri: &str) -> String {
    uri.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("secret in the otpauth URI")
        .to_owned()
}

/// The unix time now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The TOTP code of `step` for the otpauth URI shown at provisioning, computed with totp-rs (an
/// implementation independent of the server's) from the seed in the URI.
fn totp_code_at(uri: &str, step: u64) -> String {
    let totp = totp_rs::Totp::from_url(uri).expect("a valid otpauth URI");
    totp.generate(step * 30).to_string()
}

/// The TOTP code now. The test uses it within the ±1 step window, so no clock race.
fn current_otp(uri: &str) -> String {
    totp_code_at(uri, unix_now() / 30)
}

#[test]
fn an_otp_code_is_accepted_once() {
    let f = fixture();
    let (cred, uri) = totp_credential(&f.sam, Scal::One, 1);
    let code = current_otp(&uri);

    // a wrong OTP is refused and counted
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 500_000) % 1_000_000
    );
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(PIN, &wrong));
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Otp).failures, 1);

    // a wrong PIN with the right code: InvalidPin, and the code is not burned
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(WRONG_PIN, &code));
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    assert_eq!(
        factor(&f.sam, &cred.id, FactorKind::Otp).last_otp_step,
        None
    );

    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(PIN, &code))
        .expect("right PIN and OTP");
    let otp = factor(&f.sam, &cred.id, FactorKind::Otp);
    assert!(otp.last_otp_step.is_some(), "the step is recorded");
    assert_eq!(otp.failures, 0, "success resets the OTP count");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Pin).failures, 0);

    // the same code again: a replay
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(PIN, &code));
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Otp).failures, 1);

    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &[sha256(b"otp")], &es256())
        .expect("sign");
}

// ---------------------------------------------------------------------------------------------
// the SAD

#[test]
fn a_used_sad_is_refused() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    let d = [sha256(b"once")];
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256())
        .expect("first use");
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let r = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &issued.sad, None);
    assert!(
        matches!(r, Err(SamError::InvalidSad)),
        "a used-up SAD cannot be extended: {r:?}"
    );
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, "not-a-sad", &d, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    assert_eq!(count_events(&f.sam, "signature.sign_hash", "success"), 1);
    assert_eq!(count_events(&f.sam, "signature.refused", "refused"), 2);
}

#[test]
fn another_users_sad_is_refused_and_not_burned() {
    let f = fixture();
    let alices = ec(&f.sam, "alice", Scal::One, 1);
    let bobs = ec(&f.sam, "bob", Scal::One, 1);
    let issued = f
        .sam
        .authorize(&f.alice, &alices.id, 1, None, pin())
        .expect("authorize");
    let d = [sha256(b"contract")];

    // Bob does not even learn that Alice's credential exists
    for r in [
        f.sam
            .sign_hash(&f.bob, &alices.id, &issued.sad, &d, &es256())
            .map(|_| ()),
        f.sam.credential_of(&f.bob, &alices.id).map(|_| ()),
        f.sam
            .authorize(&f.bob, &alices.id, 1, None, pin())
            .map(|_| ()),
    ] {
        assert!(matches!(r, Err(SamError::UnknownCredential(_))), "{r:?}");
    }
    // Alice's SAD on Bob's own credential
    let r = f.sam.sign_hash(&f.bob, &bobs.id, &issued.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let r = f
        .sam
        .extend_transaction(&f.bob, &bobs.id, &issued.sad, None);
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    // a wrong-credential authorize did not count a PIN failure on Alice's credential
    assert_eq!(factor(&f.sam, &alices.id, FactorKind::Pin).failures, 0);

    // not burned: Alice still signs with it
    assert_eq!(sad_record(&f.sam, &issued.sad).remaining, 1);
    let sigs = f
        .sam
        .sign_hash(&f.alice, &alices.id, &issued.sad, &d, &es256())
        .expect("Alice signs");
    assert_all_verify(
        &alices,
        &SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        },
        &d,
        &sigs,
    );
    assert_eq!(
        f.sam.credential_of(&f.alice, &alices.id).expect("own").id,
        alices.id
    );
    // defence in depth: a SAD record naming another user is refused even on the credential
    // it names (ownership of a credential never changes, so only a forged row can do this)
    let forged = "forged-sad-for-bob";
    f.sam
        .store()
        .write(|c| {
            c.insert_sad(&storage::NewSad {
                sad_hash: secret_hash(forged.as_bytes()).to_vec(),
                user_id: f.bob.user,
                credential_id: alices.id,
                token_hash: f.bob.token_hash.to_vec(),
                remaining: 1,
                expires_at: storage::utc_now() + chrono::TimeDelta::hours(1),
                hashes: None,
                authorized_at: storage::utc_now(),
            })
        })
        .expect("insert");
    let r = f.sam.sign_hash(&f.alice, &alices.id, forged, &d, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let r = f.sam.extend_transaction(&f.alice, &alices.id, forged, None);
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    assert_eq!(sad_record(&f.sam, forged).remaining, 1);

    let refusals: Vec<_> = audit(&f.sam)
        .into_iter()
        .filter(|r| r.outcome == "refused" && r.actor == "bob")
        .collect();
    assert_eq!(
        refusals.len(),
        4,
        "every attempt by Bob is audited: {refusals:?}"
    );
}

#[test]
fn a_sad_for_another_credential_is_refused_and_not_burned() {
    let f = fixture();
    let x = ec(&f.sam, "alice", Scal::One, 1);
    let y = ec(&f.sam, "alice", Scal::One, 1);
    let issued = f
        .sam
        .authorize(&f.alice, &x.id, 1, None, pin())
        .expect("authorize");
    let d = [sha256(b"doc")];
    let r = f.sam.sign_hash(&f.alice, &y.id, &issued.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let r = f.sam.extend_transaction(&f.alice, &y.id, &issued.sad, None);
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    f.sam
        .sign_hash(&f.alice, &x.id, &issued.sad, &d, &es256())
        .expect("still good for X");
}

#[test]
fn scal2_binds_the_sad_to_its_hashes() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::Two, 3);
    let h1 = sha256(b"h1");
    let h2 = sha256(b"h2");

    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::MissingHash)), "{r:?}");
    let r = f.sam.authorize(&f.alice, &cred.id, 1, Some(vec![]), pin());
    assert!(matches!(r, Err(SamError::MissingHash)), "{r:?}");
    // exactly numSignatures hashes: neither more nor fewer
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(vec![h1.clone(), h2.clone()]),
        pin(),
    );
    assert!(matches!(r, Err(SamError::HashCountMismatch)), "{r:?}");
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 2, Some(vec![h1.clone()]), pin());
    assert!(matches!(r, Err(SamError::HashCountMismatch)), "{r:?}");
    assert_eq!(
        (
            factor(&f.sam, &cred.id, FactorKind::Pin).failures,
            f.sam.secret_checks().pins
        ),
        (0, 0),
        "refused before any factor is touched"
    );
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, Some(vec![vec![7; 20]]), pin());
    assert!(matches!(r, Err(SamError::InvalidDigestLength)), "{r:?}");

    let issued = f
        .sam
        .authorize(
            &f.alice,
            &cred.id,
            1,
            Some(vec![h1.clone()]),
            f.pin_online(&cred.id),
        )
        .expect("authorize");
    let r = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &issued.sad,
        std::slice::from_ref(&h2),
        &es256(),
    );
    assert!(matches!(r, Err(SamError::HashNotAuthorized)), "{r:?}");
    let r = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &issued.sad,
        &[h1.clone(), h1.clone()],
        &es256(),
    );
    assert!(
        matches!(r, Err(SamError::HashNotAuthorized)),
        "a hash is spendable once: {r:?}"
    );
    let rec = sad_record(&f.sam, &issued.sad);
    assert_eq!(
        (rec.remaining, rec.hashes),
        (1, Some(vec![h1.clone()])),
        "not burned"
    );
    let sigs = f
        .sam
        .sign_hash(
            &f.alice,
            &cred.id,
            &issued.sad,
            std::slice::from_ref(&h1),
            &es256(),
        )
        .expect("the authorized hash");
    assert_all_verify(
        &cred,
        &SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        },
        &[h1],
        &sigs,
    );
    let refused = audit(&f.sam)
        .into_iter()
        .filter(|r| r.event == "signature.refused")
        .count();
    assert_eq!(refused, 2);
}

#[test]
fn scal1_counts_signatures_and_binds_hashes_when_given() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 5);
    let d: Vec<_> = (0..3u8).map(|i| sha256(&[i])).collect();

    // count-only SAD for 2: three hashes are too many, and nothing is burned
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 2, None, pin())
        .expect("authorize");
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::TooManyHashes)), "{r:?}");
    assert_eq!(sad_record(&f.sam, &issued.sad).remaining, 2);
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d[..2], &es256())
        .expect("two of two");
    assert_eq!(sad_record(&f.sam, &issued.sad).remaining, 0);

    // hashes sent to authorize bind a SCAL 1 SAD too
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 2, Some(vec![d[0].clone()]), pin())
        .expect("authorize with a hash");
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d[1..2], &es256());
    assert!(matches!(r, Err(SamError::HashNotAuthorized)), "{r:?}");
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d[..1], &es256())
        .expect("the bound hash");
}

#[test]
fn invalid_requests_do_not_burn_the_sad() {
    let f = fixture();
    let cred = create(
        &f.sam,
        Cred {
            user: "alice",
            spec: KeySpec::Rsa2048,
            scal: Scal::One,
            multisign: 1,
            otp: false,
        },
    );
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    let sad = &issued.sad;
    let good = [sha256(b"good")];
    // a 48-byte hash with sha256WithRSA, and with sha512WithRSA (INTESI)
    for req in [algo(algo::SHA256_WITH_RSA), algo(algo::SHA512_WITH_RSA)] {
        let r = f.sam.sign_hash(
            &f.alice,
            &cred.id,
            sad,
            &[HashAlg::Sha384.digest(b"x")],
            &req,
        );
        assert!(matches!(r, Err(SamError::InvalidDigestLength)), "{r:?}");
    }
    let cases: Vec<(SignAlgoRequest, AlgoError)> = vec![
        (es256(), AlgoError::InvalidSignAlgo),
        (algo("1.2.840.113549.1.1.5"), AlgoError::InvalidSignAlgo),
        (algo(algo::RSA_ENCRYPTION), AlgoError::MissingHashAlgo),
        (
            SignAlgoRequest {
                hash_algo: Some("1.3.14.3.2.26".into()),
                ..algo(algo::RSA_ENCRYPTION)
            },
            AlgoError::InvalidHashAlgo,
        ),
        (
            SignAlgoRequest {
                hash_algo: Some(HashAlg::Sha512.oid().into()),
                ..algo(algo::SHA256_WITH_RSA)
            },
            AlgoError::InvalidHashAlgo,
        ),
        (algo(algo::RSASSA_PSS), AlgoError::MissingSignAlgoParams),
        (
            SignAlgoRequest {
                sign_algo_params: Some(b"junk".to_vec()),
                ..algo(algo::RSASSA_PSS)
            },
            AlgoError::InvalidSignAlgoParams,
        ),
        (
            SignAlgoRequest {
                sign_algo_params: Some(pss_params_der(HashAlg::Sha256, 223)),
                ..algo(algo::RSASSA_PSS)
            },
            AlgoError::InvalidSignAlgoParams,
        ),
    ];
    for (req, want) in cases {
        let r = f.sam.sign_hash(&f.alice, &cred.id, sad, &good, &req);
        assert!(
            matches!(r, Err(SamError::Algo(e)) if e == want),
            "{req:?}: {r:?}"
        );
    }
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, sad, &[], &algo(algo::SHA256_WITH_RSA));
    assert!(matches!(r, Err(SamError::EmptyHashes)), "{r:?}");
    assert_eq!(sad_record(&f.sam, sad).remaining, 1, "nothing burned");
    let sigs = f
        .sam
        .sign_hash(&f.alice, &cred.id, sad, &good, &algo(algo::SHA256_WITH_RSA))
        .expect("the valid request");
    assert_all_verify(
        &cred,
        &SignMechanism::RsaPkcs1v15 {
            hash: HashAlg::Sha256,
        },
        &good,
        &sigs,
    );
}

#[test]
fn an_expired_sad_is_refused() {
    let f = fixture_with(SamPolicy {
        sad_lifetime: Duration::from_secs(1),
        ..SamPolicy::default()
    });
    let cred = ec(&f.sam, "alice", Scal::One, 2);
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 2, None, pin())
        .expect("authorize");
    assert_eq!(issued.expires_in, 1);
    let d = [sha256(b"late")];
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256())
        .expect("in time");
    std::thread::sleep(Duration::from_millis(1_200));
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::SadExpired)), "{r:?}");
    let r = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &issued.sad, None);
    assert!(
        matches!(r, Err(SamError::SadExpired)),
        "an expired SAD cannot be extended: {r:?}"
    );
    assert!(!sad_record(&f.sam, &issued.sad).revoked);
}

#[test]
fn num_signatures_must_be_between_1_and_multisign() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 3);
    for n in [0, -1, i64::MIN] {
        let r = f.sam.authorize(&f.alice, &cred.id, n, None, pin());
        assert!(
            matches!(r, Err(SamError::InvalidNumSignatures)),
            "{n}: {r:?}"
        );
    }
    for n in [4, i64::from(i32::MAX) + 1, i64::MAX] {
        let r = f.sam.authorize(&f.alice, &cred.id, n, None, pin());
        assert!(matches!(r, Err(SamError::TooManySignatures)), "{n}: {r:?}");
    }
    // the request is checked before the PIN: a wrong PIN in a bad request is not counted
    let r = f.sam.authorize(&f.alice, &cred.id, 0, None, wrong_pin());
    assert!(matches!(r, Err(SamError::InvalidNumSignatures)), "{r:?}");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Pin).failures, 0);
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 3, None, pin())
        .expect("3 of 3");
    assert_eq!(sad_record(&f.sam, &issued.sad).remaining, 3);
}

#[test]
fn a_disabled_credential_is_refused() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    let set = |status| {
        f.sam
            .store()
            .write(|c| c.set_credential_status(&cred.id, status))
            .expect("status")
    };
    set(CredentialStatus::Disabled);
    let d = [sha256(b"d")];
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::CredentialDisabled)), "{r:?}");
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::CredentialDisabled)), "{r:?}");
    let r = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &issued.sad, None);
    assert!(matches!(r, Err(SamError::CredentialDisabled)), "{r:?}");
    set(CredentialStatus::Enabled);
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256())
        .expect("enabled again, the SAD was not burned");
}

// ---------------------------------------------------------------------------------------------
// extendTransaction

/// SCAL 1 keeps the spec's nested-signature flow (§13.8, §11.7): authorize(2, [h1]) -> sign h1
/// -> extend([h2]) -> sign h2; the new hash is added within the signatures left.
#[test]
fn extend_transaction_chains_sads_for_nested_signatures() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 2);
    let mech = SignMechanism::Ecdsa {
        hash: HashAlg::Sha256,
    };
    let (h1, h2, h3) = (sha256(b"h1"), sha256(b"h2"), sha256(b"h3"));

    let sad1 = f
        .sam
        .authorize(&f.alice, &cred.id, 2, Some(vec![h1.clone()]), pin())
        .expect("authorize");
    let sigs = f
        .sam
        .sign_hash(
            &f.alice,
            &cred.id,
            &sad1.sad,
            std::slice::from_ref(&h1),
            &es256(),
        )
        .expect("sign h1");
    assert_all_verify(&cred, &mech, std::slice::from_ref(&h1), &sigs);
    // h2 is not covered yet
    let r = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &sad1.sad,
        std::slice::from_ref(&h2),
        &es256(),
    );
    assert!(matches!(r, Err(SamError::HashNotAuthorized)), "{r:?}");

    // no more hashes than the signatures left
    let r = f.sam.extend_transaction(
        &f.alice,
        &cred.id,
        &sad1.sad,
        Some(vec![h2.clone(), h3.clone()]),
    );
    assert!(matches!(r, Err(SamError::TooManySignatures)), "{r:?}");
    assert!(
        !sad_record(&f.sam, &sad1.sad).revoked,
        "refusals leave the SAD alive"
    );

    let sad2 = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &sad1.sad, Some(vec![h2.clone()]))
        .expect("extend");
    assert_ne!(sad2.sad, sad1.sad);
    let rec = sad_record(&f.sam, &sad2.sad);
    assert_eq!(
        (rec.remaining, rec.hashes.clone()),
        (1, Some(vec![h2.clone()]))
    );
    // the default maximum transaction life (1 h) is the SAD lifetime: a renewal keeps the
    // first SAD's expiry
    let first = sad_record(&f.sam, &sad1.sad);
    assert_eq!(
        (rec.authorized_at, rec.expires_at),
        (first.authorized_at, first.expires_at)
    );
    assert!(sad2.expires_in <= 3600, "{sad2:?}");

    // the old SAD is dead, for signing and for extending
    let r = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &sad1.sad,
        std::slice::from_ref(&h2),
        &es256(),
    );
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let r = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &sad1.sad, Some(vec![h3.clone()]));
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");

    let sigs = f
        .sam
        .sign_hash(
            &f.alice,
            &cred.id,
            &sad2.sad,
            std::slice::from_ref(&h2),
            &es256(),
        )
        .expect("sign h2 with the new SAD");
    assert_all_verify(&cred, &mech, std::slice::from_ref(&h2), &sigs);
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &sad2.sad, &[h2], &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "used up: {r:?}");
    assert_eq!(count_events(&f.sam, "sad.extend", "success"), 1);
    assert_eq!(count_events(&f.sam, "sad.extend", "refused"), 2);
}

/// SCAL 2 is strict (Part II 3.2.1.4: the SAD is linked to the DTBS/R the signer authorized):
/// extendTransaction renews only hashes still bound to the SAD — all of them or a subset, one
/// signature each — and a hash the signer never authorized (or already signed) needs a new
/// activation; the refusal leaves the SAD alive.
#[test]
fn scal2_extend_transaction_renews_only_the_authorized_hashes() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::Two, 3);
    let mech = SignMechanism::Ecdsa {
        hash: HashAlg::Sha256,
    };
    let (h1, h2, h3, foreign) = (
        sha256(b"h1"),
        sha256(b"h2"),
        sha256(b"h3"),
        sha256(b"never authorized"),
    );
    let sad1 = f
        .sam
        .authorize(
            &f.alice,
            &cred.id,
            3,
            Some(vec![h1.clone(), h2.clone(), h3.clone()]),
            f.pin_online(&cred.id),
        )
        .expect("authorize");
    f.sam
        .sign_hash(
            &f.alice,
            &cred.id,
            &sad1.sad,
            std::slice::from_ref(&h1),
            &es256(),
        )
        .expect("sign h1");

    let extend = |sad: &str, hashes: Option<Vec<Vec<u8>>>| {
        f.sam.extend_transaction(&f.alice, &cred.id, sad, hashes)
    };
    let r = extend(&sad1.sad, None);
    assert!(matches!(r, Err(SamError::MissingHash)), "{r:?}");
    for wanted in [
        vec![foreign.clone()],
        vec![h2.clone(), foreign.clone()],
        vec![h1.clone()],
        vec![h2.clone(), h2.clone()],
    ] {
        let r = extend(&sad1.sad, Some(wanted.clone()));
        assert!(
            matches!(r, Err(SamError::HashNotRenewable)),
            "{wanted:?}: {r:?}"
        );
    }
    let rec = sad_record(&f.sam, &sad1.sad);
    assert!(!rec.revoked, "refusals leave the SAD alive");
    assert_eq!(
        (rec.remaining, rec.hashes),
        (2, Some(vec![h2.clone(), h3.clone()]))
    );

    // the same hashes: renewed as they are
    let sad2 = extend(&sad1.sad, Some(vec![h3.clone(), h2.clone()])).expect("renew both");
    let rec = sad_record(&f.sam, &sad2.sad);
    assert_eq!(
        (rec.remaining, rec.hashes),
        (2, Some(vec![h3.clone(), h2.clone()]))
    );
    // a subset: only it is renewed, one signature each
    let sad3 = extend(&sad2.sad, Some(vec![h2.clone()])).expect("renew a subset");
    let rec = sad_record(&f.sam, &sad3.sad);
    assert_eq!((rec.remaining, rec.hashes), (1, Some(vec![h2.clone()])));
    let r = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &sad3.sad,
        std::slice::from_ref(&h3),
        &es256(),
    );
    assert!(matches!(r, Err(SamError::HashNotAuthorized)), "{r:?}");
    let sigs = f
        .sam
        .sign_hash(
            &f.alice,
            &cred.id,
            &sad3.sad,
            std::slice::from_ref(&h2),
            &es256(),
        )
        .expect("sign h2");
    assert_all_verify(&cred, &mech, std::slice::from_ref(&h2), &sigs);
    assert_eq!(count_events(&f.sam, "sad.extend", "success"), 2);
    assert_eq!(count_events(&f.sam, "sad.extend", "refused"), 5);
}

/// A SAD's life is capped (Part III 6: limits on use before re-authorization): renewals keep
/// the transaction's authorization time, so with `max_transaction_life` (600 s) shorter than
/// the SAD lifetime (3600 s), every SAD of the transaction expires exactly at
/// authorized_at + 600 s, however it was renewed; a renewal asked after that is refused as
/// expired, and so is a signature.
#[test]
fn renewals_stop_at_the_maximum_transaction_life() {
    let f = fixture_with(SamPolicy {
        sad_lifetime: Duration::from_secs(3600),
        max_transaction_life: Duration::from_secs(600),
        ..SamPolicy::default()
    });
    let cap = chrono::TimeDelta::seconds(600);
    let cred = ec(&f.sam, "alice", Scal::One, 3);
    let d: Vec<_> = (0..3u8).map(|i| sha256(&[i])).collect();
    let sad1 = f
        .sam
        .authorize(&f.alice, &cred.id, 3, None, pin())
        .expect("authorize");
    assert_eq!(sad1.expires_in, 600, "min(lifetime, cap)");
    let rec1 = sad_record(&f.sam, &sad1.sad);
    let authorized_at = rec1.authorized_at;
    assert_eq!(rec1.expires_at, authorized_at + cap);
    assert!(authorized_at <= rec1.created_at);

    f.sam
        .sign_hash(&f.alice, &cred.id, &sad1.sad, &d[..1], &es256())
        .expect("one");
    let sad2 = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &sad1.sad, None)
        .expect("renew");
    let rec2 = sad_record(&f.sam, &sad2.sad);
    assert_eq!(rec2.authorized_at, authorized_at, "the renewal keeps it");
    assert_eq!(rec2.expires_at, authorized_at + cap, "not a fresh hour");
    assert!(sad2.expires_in <= 600, "{sad2:?}");
    let sad3 = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &sad2.sad, None)
        .expect("renew again");
    let rec3 = sad_record(&f.sam, &sad3.sad);
    assert_eq!(
        (rec3.authorized_at, rec3.expires_at),
        (authorized_at, authorized_at + cap)
    );

    // A SAD whose transaction began more than 600 s ago (renewed under a longer maximum, say)
    // is past its transaction's end, whatever its own expiry says.
    let late = "a-sad-whose-transaction-is-over";
    let now = storage::utc_now();
    f.sam
        .store()
        .write(|c| {
            c.insert_sad(&storage::NewSad {
                sad_hash: secret_hash(late.as_bytes()).to_vec(),
                user_id: f.alice.user,
                credential_id: cred.id,
                token_hash: f.alice.token_hash.to_vec(),
                remaining: 2,
                expires_at: now + chrono::TimeDelta::seconds(3000),
                hashes: None,
                authorized_at: now - cap - chrono::TimeDelta::seconds(1),
            })
        })
        .expect("insert");
    let r = f.sam.extend_transaction(&f.alice, &cred.id, late, None);
    assert!(matches!(r, Err(SamError::SadExpired)), "{r:?}");
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, late, &d[1..2], &es256());
    assert!(matches!(r, Err(SamError::SadExpired)), "{r:?}");
    let rec = sad_record(&f.sam, late);
    assert_eq!((rec.revoked, rec.remaining), (false, 2), "nothing spent");
}

#[test]
fn extend_transaction_renews_a_count_only_sad() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 3);
    let d: Vec<_> = (0..3u8).map(|i| sha256(&[i])).collect();
    let sad1 = f
        .sam
        .authorize(&f.alice, &cred.id, 3, None, pin())
        .expect("authorize");
    f.sam
        .sign_hash(&f.alice, &cred.id, &sad1.sad, &d[..1], &es256())
        .expect("one");
    let sad2 = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &sad1.sad, None)
        .expect("extend");
    let rec = sad_record(&f.sam, &sad2.sad);
    assert_eq!((rec.remaining, rec.hashes), (2, None));
    assert_eq!(rec.token_hash, f.alice.token_hash.to_vec());
    let r = f.sam.sign_hash(&f.alice, &cred.id, &sad2.sad, &d, &es256());
    assert!(matches!(r, Err(SamError::TooManyHashes)), "{r:?}");
    f.sam
        .sign_hash(&f.alice, &cred.id, &sad2.sad, &d[1..], &es256())
        .expect("the other two");
}

// ---------------------------------------------------------------------------------------------
// HSM failure, concurrency, secrecy

#[test]
fn an_hsm_failure_gives_the_reservation_back() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::Two, 2);
    let h = vec![sha256(b"a"), sha256(b"b")];
    let issued = f
        .sam
        .authorize(
            &f.alice,
            &cred.id,
            2,
            Some(h.clone()),
            f.pin_online(&cred.id),
        )
        .expect("authorize");
    // the key vanishes from the token behind the SAM's back
    let key_id: KeyId = cred.key_id.parse().expect("key id");
    let other: Hsm = f.token.open();
    other.destroy_key(&key_id).expect("destroy");
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &h, &es256());
    assert!(matches!(r, Err(SamError::SigningFailed)), "{r:?}");
    let rec = sad_record(&f.sam, &issued.sad);
    assert_eq!(rec.remaining, 2, "the count is given back");
    let mut back = rec.hashes.expect("hashes");
    back.sort();
    let mut want = h.clone();
    want.sort();
    assert_eq!(back, want, "the hashes are given back");
    // write-ahead audit: the record committed before the HSM was asked, then the failure that
    // voids it, for the same SAD reference and digests
    let records: Vec<_> = f
        .sam
        .store()
        .read(|c| c.audit_records(0, 1_000))
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "signature.sign_hash")
        .collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["success", "failure"]);
    let detail = |i: usize| -> serde_json::Value {
        serde_json::from_str(&records[i].detail).expect("detail is JSON")
    };
    assert_eq!(detail(0)["sad"], detail(1)["sad"]);
    assert_eq!(detail(0)["digests"], detail(1)["digests"]);
    assert!(detail(1)["error"].is_string());
}

/// 32 threads, spread over `sams` (one per "server instance"), race to spend a one-signature
/// SAD: exactly one signs, the rest get InvalidSad, and the audit chain stays intact. Several
/// rounds, because one round does not always put two threads between the check and the spend.
fn race_for_one_signature(sams: &[Sam], alice: &Caller, cred: &Credential) {
    const THREADS: usize = 32;
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let issued: IssuedSad = sams[round % sams.len()]
            .authorize(alice, &cred.id, 1, None, pin())
            .expect("authorize");
        let barrier = Arc::new(Barrier::new(THREADS));
        let digest = sha256(format!("race {round}").as_bytes());
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let sam = sams[i % sams.len()].clone();
                let (alice, id, sad, barrier, digest) = (
                    alice.clone(),
                    cred.id,
                    issued.sad.clone(),
                    Arc::clone(&barrier),
                    digest.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    sam.sign_hash(&alice, &id, &sad, &[digest], &es256())
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            ok.len(),
            1,
            "round {round}: exactly one signature: {results:?}"
        );
        for r in &results {
            assert!(
                matches!(r, Ok(_) | Err(SamError::InvalidSad)),
                "the losers get InvalidSad: {r:?}"
            );
        }
        assert_all_verify(
            cred,
            &SignMechanism::Ecdsa {
                hash: HashAlg::Sha256,
            },
            &[digest],
            ok[0],
        );
        assert_eq!(sad_record(&sams[0], &issued.sad).remaining, 0);
    }
    assert_eq!(
        count_events(&sams[0], "signature.sign_hash", "success"),
        ROUNDS
    );
    assert_eq!(
        count_events(&sams[0], "signature.refused", "refused"),
        ROUNDS * (THREADS - 1)
    );
    assert!(
        matches!(
            sams[0].store().verify_audit_chain().expect("verify"),
            AuditVerdict::Intact { .. }
        ),
        "the audit chain is intact"
    );
}

#[test]
fn concurrent_sign_hash_spends_a_one_signature_sad_once_sqlite() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    race_for_one_signature(std::slice::from_ref(&f.sam), &f.alice, &cred);
}

#[test]
fn concurrent_sign_hash_spends_a_one_signature_sad_once_postgres_two_instances() {
    let db = PgDb::create();
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("dev-ca.json");
    let open = || {
        let store = Store::open(&db.url, StoreOptions::default()).expect("PostgreSQL store");
        assert_eq!(store.backend(), storage::Backend::Postgres);
        store
    };
    // two instances: separate pools on one database, one token
    let first = Sam::open(&token.config, open(), &ca_file).expect("sam 1");
    add_users(first.store());
    let second = Sam::open(&token.config, open(), &ca_file).expect("sam 2");
    let alice = caller(first.store(), "alice");
    let cred = ec(&first, "alice", Scal::One, 1);
    race_for_one_signature(&[first.clone(), second], &alice, &cred);
    drop(first);
}

/// Count first across instances (Part I 7.1.2.5.1; an attacker may send requests in parallel
/// to every instance): 32 concurrent wrong PINs against the limit of 5, sent in turn to two
/// instances sharing one PostgreSQL database, whose batches hold the factor rows of all their
/// activations at once (storage's declared rows): exactly 5 are verified in all, the factor
/// ends locked with one `factor.lock` record; then 32 concurrent right PINs on another
/// credential, across both, are all granted and leave its counter clear.
#[test]
fn concurrent_wrong_pins_across_two_postgres_instances_are_verified_at_most_max_failures_times() {
    let db = PgDb::create();
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("dev-ca.json");
    let policy = SamPolicy {
        // a bound no machine reaches: the right PINs wait for slots held by attempts in flight
        max_slot_wait: Duration::from_secs(600),
        ..SamPolicy::default()
    };
    let open = || {
        let store = Store::open(&db.url, StoreOptions::default()).expect("PostgreSQL store");
        Sam::open(&token.config, store, &ca_file)
            .expect("sam")
            .with_policy(policy.clone())
    };
    let first = open();
    add_users(first.store());
    let sams = [first.clone(), open()];
    let alice = caller(first.store(), "alice");
    let race = |id: CredentialId, factors: fn() -> Factors| {
        let barrier = Arc::new(Barrier::new(RACERS));
        let handles: Vec<_> = (0..RACERS)
            .map(|i| {
                let (sam, alice, start) = (sams[i % 2].clone(), alice.clone(), barrier.clone());
                std::thread::spawn(move || {
                    start.wait();
                    sam.authorize(&alice, &id, 1, None, factors()).map(drop)
                })
            })
            .collect::<Vec<_>>();
        handles
            .into_iter()
            .map(|h| h.join().expect("activation"))
            .collect::<Vec<_>>()
    };
    let pins_checked = || sams.iter().map(|s| s.secret_checks().pins).sum::<u64>();

    let guessed = ec(&first, "alice", Scal::One, 1);
    let before = pins_checked();
    let results = race(guessed.id, wrong_pin);
    assert_eq!(wrong_and_locked(&results), (5, RACERS - 5), "{results:?}");
    assert_eq!(
        pins_checked() - before,
        5,
        "PINs verified on both instances"
    );
    let stored = factor(&first, &guessed.id, FactorKind::Pin);
    assert_eq!((stored.failures, stored.locked), (5, true));
    assert_eq!(count_events(&first, "factor.lock", "success"), 1);

    let used = ec(&first, "alice", Scal::One, 1);
    for r in race(used.id, pin) {
        assert!(r.is_ok(), "{r:?}");
    }
    let stored = factor(&first, &used.id, FactorKind::Pin);
    assert_eq!((stored.failures, stored.locked), (0, false));
    assert!(
        matches!(
            first.store().verify_audit_chain().expect("verify"),
            AuditVerdict::Intact { .. }
        ),
        "the audit chain is intact"
    );
}

#[test]
fn audit_records_hold_no_secrets() {
    let f = fixture();
    let (cred, uri) = totp_credential(&f.sam, Scal::Two, 2);
    let h1 = sha256(b"h1");
    let h2 = sha256(b"h2");
    let code = current_otp(&uri);
    let _ = f.sam.authorize(
        &f.alice,
        &cred.id,
        2,
        Some(vec![h1.clone(), h2.clone()]),
        pin_otp(WRONG_PIN, &code),
    );
    let sad1 = f
        .sam
        .authorize(
            &f.alice,
            &cred.id,
            2,
            Some(vec![h1.clone(), h2.clone()]),
            pin_otp(PIN, &code),
        )
        .expect("authorize");
    let _ = f.sam.sign_hash(
        &f.bob,
        &cred.id,
        &sad1.sad,
        std::slice::from_ref(&h1),
        &es256(),
    );
    let _ = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &sad1.sad,
        &[sha256(b"not authorized")],
        &es256(),
    );
    f.sam
        .sign_hash(&f.alice, &cred.id, &sad1.sad, &[h1], &es256())
        .expect("sign");
    let sad2 = f
        .sam
        .extend_transaction(&f.alice, &cred.id, &sad1.sad, Some(vec![h2.clone()]))
        .expect("extend");
    f.sam
        .sign_hash(&f.alice, &cred.id, &sad2.sad, &[h2], &es256())
        .expect("sign");
    let _ = f
        .sam
        .sign_hash(&f.alice, &cred.id, &sad2.sad, &[sha256(b"x")], &es256());

    let records = audit(&f.sam);
    let events: Vec<_> = records
        .iter()
        .map(|r| (r.event.as_str(), r.outcome.as_str()))
        .collect();
    for want in [
        ("sad.authorize", "refused"),
        ("sad.authorize", "success"),
        ("signature.refused", "refused"),
        ("signature.sign_hash", "success"),
        ("sad.extend", "success"),
    ] {
        assert!(events.contains(&want), "{want:?} audited: {events:?}");
    }
    // the 6-digit code is searched as a JSON string: bare digits may occur by chance in hex
    let quoted_code = format!("\"{code}\"");
    let seed = seed_of(&uri);
    let secrets = [
        PIN,
        WRONG_PIN,
        seed.as_str(),
        quoted_code.as_str(),
        sad1.sad.as_str(),
        sad2.sad.as_str(),
    ];
    for r in &records {
        let text = format!(
            "{} {} {} {} {}",
            r.event, r.actor, r.subject, r.outcome, r.detail
        );
        for s in secrets {
            assert!(!text.contains(s), "record {} leaks a secret: {text}", r.seq);
        }
    }
    // the SAD is referred to by its hash prefix
    let prefix = &hex::encode(secret_hash(sad1.sad.as_bytes()))[..8];
    assert!(records.iter().any(|r| r.detail.contains(prefix)));
    assert!(matches!(
        f.sam.store().verify_audit_chain().expect("verify"),
        AuditVerdict::Intact { .. }
    ));
}

/// A certificate for any key, valid from `from_days` to `to_days` relative to now.
fn certificate_valid_between(from_days: i64, to_days: i64) -> Vec<u8> {
    let key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group"),
        )
        .expect("key"),
    )
    .expect("pkey");
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("O", "Example").expect("o");
    name.append_entry_by_text("CN", "alice").expect("cn");
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().expect("builder");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    let days = |d: i64| {
        openssl::asn1::Asn1Time::from_unix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64
                + d * 86_400,
        )
        .expect("time")
    };
    b.set_not_before(&days(from_days)).expect("nb");
    b.set_not_after(&days(to_days)).expect("na");
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    b.build().to_der().expect("der")
}

#[test]
fn a_certificate_outside_its_validity_refuses_activation_and_signing() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 2);
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 2, None, pin())
        .expect("authorize");
    let d = [sha256(b"d")];
    let original = cred.cert_chain_der().expect("chain");
    for (from, to) in [(-30, -1), (1, 30)] {
        // written behind the SAM's back, as if the certificate had run out
        f.sam
            .store()
            .write(|c| {
                c.set_certificate_chain(&cred.id, &[certificate_valid_between(from, to)], None)
            })
            .expect("chain");
        let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
        assert!(
            matches!(&r, Err(SamError::CertificateExpired(s)) if s == "O=Example,CN=alice"),
            "{r:?}"
        );
        let r = f
            .sam
            .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256());
        assert!(matches!(r, Err(SamError::CertificateExpired(_))), "{r:?}");
    }
    f.sam
        .store()
        .write(|c| c.set_certificate_chain(&cred.id, &original, None))
        .expect("restore");
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &d, &es256())
        .expect("valid again, and the SAD was not burned");
}

// ---------------------------------------------------------------------------------------------
// lockout and unlock, online OTP, SCAL 2 two factors, OAuth 2.0 grants

#[test]
fn the_lock_is_audited_once_and_only_the_operator_unlock_lifts_it() {
    // Part I 7.1.2.5.1: locked after N failures until an administrator unlocks
    let f = fixture_with(SamPolicy {
        max_factor_failures: 3,
        ..SamPolicy::default()
    });
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    for _ in 0..4 {
        let _ = f.sam.authorize(&f.alice, &cred.id, 1, None, wrong_pin());
    }
    assert_eq!(count_events(&f.sam, "factor.lock", "success"), 1);
    let lock = audit(&f.sam)
        .into_iter()
        .find(|r| r.event == "factor.lock")
        .expect("lock record");
    assert_eq!(
        (lock.actor.as_str(), lock.subject),
        ("alice", cred.id.to_string())
    );
    assert!(lock.detail.contains("\"pin\""), "{}", lock.detail);
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::PinLocked)), "{r:?}");

    let unlocked = f
        .sam
        .unlock_credential(&cred.id, &sam::Actor::new("test", sam::Role::Operator))
        .expect("unlock");
    assert_eq!(unlocked, vec![FactorKind::Pin]);
    let pin_factor = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!((pin_factor.locked, pin_factor.failures), (false, 0));
    let rec = audit(&f.sam)
        .into_iter()
        .rfind(|r| r.event == "credential.unlock")
        .expect("unlock record");
    assert_eq!(rec.actor, "operator:test");
    assert!(
        rec.detail.contains("\"unlocked\":[\"pin\"]"),
        "{}",
        rec.detail
    );
    f.sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("the right PIN after the unlock");
    let r = f.sam.unlock_credential(
        &CredentialId::new(),
        &sam::Actor::new("test", sam::Role::Operator),
    );
    assert!(matches!(r, Err(SamError::UnknownCredential(_))), "{r:?}");
}

#[test]
fn an_online_otp_is_sent_used_once_and_never_recorded() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::Two, 1);
    assert_eq!(
        factor(&f.sam, &cred.id, FactorKind::Otp).verifier,
        sam::ONLINE_OTP
    );
    let h = vec![sha256(b"doc")];
    // nothing sent yet: any code is wrong (and counted)
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(h.clone()),
        pin_otp(PIN, "000000"),
    );
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    f.sam.send_online_otp(&f.alice, &cred.id).expect("sendOTP");
    let code = f.outbox.last(&cred.id);
    assert_eq!(code.len(), 6);
    // a wrong PIN does not burn the code
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(h.clone()),
        pin_otp(WRONG_PIN, &code),
    );
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, Some(h.clone()), pin_otp(PIN, &code))
        .expect("PIN and the online OTP");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Otp).failures, 0);
    // the same code again: a replay, refused and counted
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, Some(h.clone()), pin_otp(PIN, &code));
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Otp).failures, 1);
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &h, &es256())
        .expect("sign");
    // a newer code replaces an older one
    f.sam.send_online_otp(&f.alice, &cred.id).expect("sendOTP");
    let first = f.outbox.last(&cred.id);
    f.sam.send_online_otp(&f.alice, &cred.id).expect("sendOTP");
    let second = f.outbox.last(&cred.id);
    if first != second {
        let r = f
            .sam
            .authorize(&f.alice, &cred.id, 1, Some(h.clone()), pin_otp(PIN, &first));
        assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    }
    f.sam
        .authorize(
            &f.alice,
            &cred.id,
            1,
            Some(h.clone()),
            pin_otp(PIN, &second),
        )
        .expect("the newest code");

    // not for an offline OTP, not another user's credential, not when locked
    let totp = create(
        &f.sam,
        Cred {
            user: "alice",
            spec: KeySpec::EcP256,
            scal: Scal::One,
            multisign: 1,
            otp: true,
        },
    );
    let r = f.sam.send_online_otp(&f.alice, &totp.id);
    assert!(matches!(r, Err(SamError::NoOnlineOtp)), "{r:?}");
    let r = f.sam.send_online_otp(&f.bob, &cred.id);
    assert!(matches!(r, Err(SamError::UnknownCredential(_))), "{r:?}");
    f.sam
        .store()
        .write(|c| c.set_factor_lock(&cred.id, FactorKind::Otp, true))
        .expect("lock");
    let r = f.sam.send_online_otp(&f.alice, &cred.id);
    assert!(matches!(r, Err(SamError::OtpLocked)), "{r:?}");

    // the codes never reach the audit log
    let codes: Vec<String> = f
        .outbox
        .0
        .lock()
        .expect("outbox")
        .iter()
        .map(|(_, c)| format!("\"{c}\""))
        .collect();
    let records = audit(&f.sam);
    assert!(count_events(&f.sam, "otp.send", "success") >= 3);
    for r in &records {
        for c in &codes {
            assert!(
                !r.detail.contains(c.as_str()),
                "record {} leaks an OTP",
                r.seq
            );
        }
    }
}

#[test]
fn an_expired_online_otp_is_refused() {
    let f = fixture_with(SamPolicy {
        online_otp_lifetime: Duration::from_secs(1),
        ..SamPolicy::default()
    });
    let cred = ec(&f.sam, "alice", Scal::Two, 1);
    f.sam.send_online_otp(&f.alice, &cred.id).expect("sendOTP");
    let code = f.outbox.last(&cred.id);
    std::thread::sleep(Duration::from_millis(1500));
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(vec![sha256(b"late")]),
        pin_otp(PIN, &code),
    );
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
}

#[test]
fn scal2_is_never_created_or_activated_with_one_factor() {
    // Part I 3.5.2 level 2: multi-factor key authorization
    let f = fixture();
    let r = f.sam.create_credential(
        NewCredentialRequest {
            user_name: "alice".into(),
            spec: KeySpec::EcP256,
            scal: Scal::Two,
            multisign: 1,
            pin: SecretString::from(PIN),
            otp: OtpChoice::None,
            auth_mode: storage::AuthMode::Explicit,
            description: None,
        },
        &sam::Actor::new("test", sam::Role::Operator),
    );
    assert!(matches!(r, Err(SamError::InvalidInput(_))), "{:?}", r.err());
    // a PIN-only credential raised to SCAL 2 behind the SAM's back no longer verifies: it is
    // treated as absent (issue 11: the credential's MAC covers its SCAL)
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let db = f._dir.path().join("csc.db");
    {
        use diesel::prelude::*;
        let mut c = diesel::SqliteConnection::establish(&db.to_string_lossy()).expect("sqlite");
        diesel::sql_query(format!(
            "UPDATE credentials SET scal = 2 WHERE id = '{}'",
            cred.id
        ))
        .execute(&mut c)
        .expect("update");
    }
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, Some(vec![sha256(b"x")]), pin());
    assert!(matches!(r, Err(SamError::UnknownCredential(_))), "{r:?}");
    // a SCAL 2 credential with two factors refuses the PIN alone
    let two = ec(&f.sam, "alice", Scal::Two, 1);
    let r = f
        .sam
        .authorize(&f.alice, &two.id, 1, Some(vec![sha256(b"x")]), pin());
    assert!(matches!(r, Err(SamError::MissingOtp)), "{r:?}");
}

#[test]
fn oauth2code_credentials_are_activated_only_through_a_grant() {
    let f = fixture();
    let cred = f
        .sam
        .create_credential(
            NewCredentialRequest {
                user_name: "alice".into(),
                spec: KeySpec::EcP256,
                scal: Scal::Two,
                multisign: 2,
                pin: SecretString::from(PIN),
                otp: OtpChoice::Online,
                auth_mode: storage::AuthMode::Oauth2Code,
                description: None,
            },
            &sam::Actor::new("test", sam::Role::Operator),
        )
        .expect("create")
        .credential;
    let h = vec![sha256(b"one"), sha256(b"two")];
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        2,
        Some(h.clone()),
        f.pin_online(&cred.id),
    );
    assert!(matches!(r, Err(SamError::OAuthOnly)), "{r:?}");

    // the consent page: a pending request, approved with the factors, becomes a code
    f.sam
        .store()
        .write(|c| {
            c.create_oauth_client(&storage::NewOAuthClient {
                client_id: "app".into(),
                name: "App".into(),
                redirect_uris: vec!["http://127.0.0.1/cb".into()],
                secret_hash: None,
            })?;
            c.insert_oauth_request(&storage::NewOAuthRequest {
                request_hash: secret_hash(b"handle").to_vec(),
                client_id: "app".into(),
                params: "{}".into(),
                expires_at: storage::utc_now() + chrono::Duration::minutes(5),
            })
        })
        .expect("client and request");
    let grant = sam::CredentialGrant {
        credential: cred.id,
        num_signatures: 2,
        hashes: Some(h.clone()),
        binding: sam::CodeBinding {
            client_id: "app".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_given: true,
            code_challenge: None,
            pending_request: secret_hash(b"handle").to_vec(),
            code_ttl: chrono::Duration::minutes(1),
        },
        authorization_details: None,
    };
    let r = f
        .sam
        .approve_credential_grant(&f.alice, &grant, pin_otp(WRONG_PIN, "000000"));
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    let the_code = f
        .sam
        .approve_credential_grant(&f.alice, &grant, f.pin_online(&cred.id))
        .expect("approve");
    assert!(the_code.starts_with(sam::oauth::CODE_PREFIX), "{the_code}");
    // approved once only
    let r = f
        .sam
        .approve_credential_grant(&f.alice, &grant, f.pin_online(&cred.id));
    assert!(matches!(r, Err(SamError::RequestGone)), "{r:?}");
    // (the refused second approval returns no code: its transaction rolled back, counted below)
    // Its factors were right and no grant came of it: the slots it reserved are given back.
    for kind in [FactorKind::Pin, FactorKind::Otp] {
        assert_eq!(factor(&f.sam, &cred.id, kind).failures, 0, "{kind:?}");
    }

    // the token endpoint redeems the code and issues the SAD in one transaction
    let client = f.sam.oauth_client("app").expect("read").expect("client");
    let policy = sam::TokenPolicy {
        access_ttl: chrono::Duration::minutes(5),
        refresh_ttl: chrono::Duration::hours(1),
    };
    let sam::CodeGrant::Sad(issued) = f
        .sam
        .exchange_code(
            &policy,
            &client,
            &the_code,
            Some("http://127.0.0.1/cb"),
            None,
        )
        .expect("exchange")
    else {
        panic!("a credential-scope code buys a SAD")
    };
    let rec = sad_record(&f.sam, &issued.sad);
    assert_eq!((rec.remaining, rec.hashes.clone()), (2, Some(h.clone())));
    // the transaction was authorized at the consent: its maximum life counts from then
    assert!(rec.authorized_at < rec.created_at, "{rec:?}");
    assert_eq!(
        rec.expires_at,
        rec.authorized_at + chrono::TimeDelta::hours(1),
        "the default maximum (1 h) ends it before a fresh SAD lifetime (1 h from now) would"
    );
    // the same rules as any SAD: only the approved hashes, each once
    let r = f.sam.sign_hash(
        &f.alice,
        &cred.id,
        &issued.sad,
        &[sha256(b"foreign")],
        &es256(),
    );
    assert!(matches!(r, Err(SamError::HashNotAuthorized)), "{r:?}");
    let sigs = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &h, &es256())
        .expect("sign both");
    assert_all_verify(
        &cred,
        &SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        },
        &h,
        &sigs,
    );
    let r = f
        .sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &h[..1], &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    assert_eq!(count_events(&f.sam, "oauth2.consent", "success"), 1);
    assert!(
        audit(&f.sam)
            .iter()
            .any(|r| r.event == "sad.authorize" && r.detail.contains("\"via\":\"oauth2\""))
    );
    // the refused second approval rolled back: only one code was ever stored (purging
    // everything counts the rows of the table)
    let purged = f
        .sam
        .purge_expired(storage::utc_now() + chrono::Duration::days(1), 1_000)
        .expect("purge");
    assert_eq!(purged.oauth_codes, 1, "{purged:?}");
}

// ---------------------------------------------------------------------------------------------
// PIN verifiers peppered by an HSM key

#[test]
fn pin_verifiers_are_keyed_by_the_hsm_and_bound_to_the_credential() {
    let f = fixture();
    let a = ec(&f.sam, "alice", Scal::One, 1);
    let b = ec(&f.sam, "alice", Scal::One, 1);
    let va = factor(&f.sam, &a.id, FactorKind::Pin).verifier;
    let phc = va
        .strip_prefix("hsm-hmac-sha256:$argon2id$")
        .expect("peppered Argon2id verifier");
    assert!(!va.contains(PIN), "{va}");
    // Without the HSM key the verifier is useless: Argon2 over the PIN itself does not match
    // (offline guessing needs the token).
    assert!(!sam::secrets::verify_secret(
        &SecretString::from(PIN),
        &format!("$argon2id${phc}")
    ));
    // A verifier copied onto another credential does not open it.
    f.sam
        .store()
        .write(|c| c.set_factor(&b.id, FactorKind::Pin, &va))
        .expect("copy verifier");
    let r = f.sam.authorize(&f.alice, &b.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    // and its own credential still opens with the right PIN only
    let r = f.sam.authorize(&f.alice, &a.id, 1, None, wrong_pin());
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    let issued = f
        .sam
        .authorize(&f.alice, &a.id, 1, None, pin())
        .expect("right PIN");
    f.sam
        .sign_hash(&f.alice, &a.id, &issued.sad, &[sha256(b"x")], &es256())
        .expect("sign");
}

#[test]
fn an_unpeppered_pin_verifier_never_verifies() {
    // issue 11, no downgrade: a plain Argon2id verifier of a PIN someone chose (written here with
    // a valid row MAC, as only the SAM itself could) opens nothing, not even with that PIN
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let legacy = sam::secrets::hash_secret(&SecretString::from(PIN)).expect("argon2");
    assert!(legacy.starts_with("$argon2id$"));
    f.sam
        .store()
        .write(|c| c.set_factor(&cred.id, FactorKind::Pin, &legacy))
        .expect("legacy verifier");
    let r = f.sam.authorize(&f.alice, &cred.id, 1, None, pin());
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    let after = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!(
        (after.verifier.as_str(), after.failures),
        (legacy.as_str(), 1)
    );
}

// ---------------------------------------------------------------------------------------------
// the second factor's secrets are in the token (issue 11: sole control that survives an insider)

/// The SQLite database of a fixture and its write-ahead log, as bytes.
fn database_bytes(f: &Fixture) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in ["csc.db", "csc.db-wal", "csc.db-shm"] {
        bytes.extend(std::fs::read(f._dir.path().join(file)).unwrap_or_default());
    }
    assert!(bytes.len() > 4096, "the database was read");
    bytes
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_totp_seed_lives_in_the_token_and_never_in_the_database() {
    // DESIGN.md trust model: second-factor secrets live in the token as non-extractable keys
    // (REQUIREMENTS.md III 1, 17; I 3.5.2)
    let f = fixture();
    let (cred, uri) = totp_credential(&f.sam, Scal::Two, 1);
    let seed_b32 = seed_of(&uri);
    let seed = totp_rs::Secret::try_from_base32(&seed_b32)
        .expect("base32 seed")
        .as_bytes()
        .to_vec();
    assert_eq!(seed.len(), 20, "a 160-bit seed (RFC 4226 R6)");

    // the verifier holds the token key's id and the parameters, nothing else
    let verifier = factor(&f.sam, &cred.id, FactorKind::Otp).verifier;
    let parsed = sam::TotpVerifier::parse(&verifier).expect("a token-held TOTP verifier");
    assert_eq!(
        verifier,
        format!("hsm-totp:v1:{}:6:30:sha1", parsed.key),
        "nothing but the key id and the parameters"
    );

    // the key in the token: sensitive, never extractable, HMAC-SHA1 signing only
    let hsm: Hsm = f.token.open();
    let attrs = hsm
        .key_attributes(&parsed.key)
        .expect("the TOTP key is in the token");
    assert!(attrs.sensitive && !attrs.extractable, "{attrs:?}");
    assert_eq!(attrs.private_value_len, 0, "CKA_VALUE reads back empty");
    assert_eq!(attrs.allowed_mechanisms, ["CKM_SHA_1_HMAC"]);
    assert!(attrs.sign && !attrs.decrypt && !attrs.unwrap && !attrs.derive);

    // a copy of the database gives nothing: no seed, in base32 (either case) or raw
    let before = database_bytes(&f);
    for needle in [
        seed_b32.as_bytes(),
        seed_b32.to_lowercase().as_bytes(),
        seed.as_slice(),
    ] {
        assert!(!contains(&before, needle), "the seed is in the database");
    }

    // a code computed from the seed by the test verifies through authorize (the HMAC computed
    // in the token), once
    let code = current_otp(&uri);
    let h = sha256(b"totp in the token");
    let issued = f
        .sam
        .authorize(
            &f.alice,
            &cred.id,
            1,
            Some(vec![h.clone()]),
            pin_otp(PIN, &code),
        )
        .expect("the right PIN and TOTP");
    let r = f.sam.authorize(
        &f.alice,
        &cred.id,
        1,
        Some(vec![h.clone()]),
        pin_otp(PIN, &code),
    );
    assert!(matches!(r, Err(SamError::InvalidOtp)), "a replay: {r:?}");
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &[h], &es256())
        .expect("sign");
    let after = database_bytes(&f);
    assert!(!contains(&after, seed_b32.as_bytes()) && !contains(&after, &seed));
}

#[test]
fn a_plain_seed_of_an_older_database_never_verifies_until_migrated() {
    let f = fixture();
    // a credential as an older database holds it: the base32 seed itself as the OTP verifier
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let seed = openssl_random(20);
    let plain = totp_rs::Secret::from(seed).to_base32();
    f.sam
        .store()
        .write(|c| c.set_factor(&cred.id, FactorKind::Otp, &plain))
        .expect("plain seed");
    let uri = format!("otpauth://totp/csc-server:alice?secret={plain}&issuer=csc-server");
    let code = current_otp(&uri);

    // refused with the right PIN and the right code: the seed is not in the token
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(PIN, &code));
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    // refused before any factor is tried: nothing counted, the PIN not even checked
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(WRONG_PIN, &code));
    assert!(matches!(r, Err(SamError::InvalidOtp)), "{r:?}");
    let otp = factor(&f.sam, &cred.id, FactorKind::Otp);
    assert_eq!((otp.failures, otp.last_otp_step), (0, None));
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Pin).failures, 0);
    let refusals: Vec<_> = audit(&f.sam)
        .into_iter()
        .filter(|r| r.event == "sad.authorize" && r.outcome == "refused")
        .collect();
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals
            .iter()
            .all(|r| r.detail.contains("OTP secret not in the token")),
        "{refusals:?}"
    );

    // another credential's verifier that is not even base32: reported, left alone
    let broken = ec(&f.sam, "alice", Scal::One, 1);
    f.sam
        .store()
        .write(|c| c.set_factor(&broken.id, FactorKind::Otp, "not base32!"))
        .expect("broken verifier");

    // the operator's upgrade moves the seed into the token
    let report = f
        .sam
        .migrate_otp_seeds(&sam::Actor::new("test", sam::Role::SecurityOfficer))
        .expect("migrate");
    assert_eq!(report.migrated, [cred.id]);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, broken.id);
    assert_eq!(
        factor(&f.sam, &broken.id, FactorKind::Otp).verifier,
        "not base32!"
    );
    let migrated = factor(&f.sam, &cred.id, FactorKind::Otp).verifier;
    let parsed = sam::TotpVerifier::parse(&migrated).expect("now in the token form");
    assert_eq!(parsed, sam::TotpVerifier::standard(parsed.key));
    let attrs = f.token.open().key_attributes(&parsed.key).expect("key");
    assert!(attrs.sensitive && !attrs.extractable && attrs.private_value_len == 0);
    let records: Vec<_> = audit(&f.sam)
        .into_iter()
        .filter(|r| r.event == "otp.migrate")
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].actor.as_str(), records[0].subject.as_str()),
        ("security-officer:test", cred.id.to_string().as_str())
    );
    assert!(records[0].detail.contains(&parsed.key.to_string()));
    assert!(!records[0].detail.contains(&plain));

    // the same code, computed from the known seed, now verifies; once
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(PIN, &code))
        .expect("the migrated TOTP verifies");
    let r = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin_otp(PIN, &code));
    assert!(matches!(r, Err(SamError::InvalidOtp)), "replay: {r:?}");
    f.sam
        .sign_hash(&f.alice, &cred.id, &issued.sad, &[sha256(b"m")], &es256())
        .expect("sign");

    // idempotent: nothing left to move, the broken one still reported
    let again = f
        .sam
        .migrate_otp_seeds(&sam::Actor::new("test", sam::Role::SecurityOfficer))
        .expect("again");
    assert!(again.migrated.is_empty(), "{again:?}");
    assert_eq!(again.failed.len(), 1);
    assert!(matches!(
        f.sam.store().verify_audit_chain().expect("verify"),
        AuditVerdict::Intact { .. }
    ));
}

fn openssl_random(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    openssl::rand::rand_bytes(&mut b).expect("random");
    b
}

#[test]
fn the_online_otp_is_stored_as_an_hmac_computed_in_the_token() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::Two, 1);
    let other = ec(&f.sam, "alice", Scal::Two, 1);
    f.sam.send_online_otp(&f.alice, &cred.id).expect("sendOTP");
    let code = f.outbox.last(&cred.id);

    // the row holds HMAC-SHA256(pepper key in the token, tag || credential || 0 || code)
    let hsm: Hsm = f.token.open();
    let pepper = hsm
        .secret_key(sam::secrets::PIN_PEPPER_LABEL)
        .expect("the pepper key");
    let digest_of = |id: &CredentialId, code: &str| {
        let mut data = b"csc-online-otp-v1\0".to_vec();
        data.extend_from_slice(id.to_string().as_bytes());
        data.push(0);
        data.extend_from_slice(code.as_bytes());
        hsm.hmac_sha256(&pepper, &data).expect("hmac").to_vec()
    };
    let stored = stored_online_otp(&f, &cred.id);
    assert_eq!(stored, digest_of(&cred.id, &code), "the HSM HMAC");
    assert_ne!(stored, openssl::sha::sha256(code.as_bytes()).to_vec());
    let mut salted = b"csc-online-otp/v1\0".to_vec();
    salted.extend_from_slice(cred.id.to_string().as_bytes());
    salted.push(0);
    salted.extend_from_slice(code.as_bytes());
    assert_ne!(
        stored,
        openssl::sha::sha256(&salted).to_vec(),
        "not the older salted SHA-256, which a copy of the database could brute-force"
    );
    // bound to the credential: the same code of another credential has another digest
    assert_ne!(digest_of(&other.id, &code), stored);

    // the code (surrounding spaces ignored, as before) activates
    let h = sha256(b"online");
    f.sam
        .authorize(
            &f.alice,
            &cred.id,
            1,
            Some(vec![h]),
            pin_otp(PIN, &format!(" {code} ")),
        )
        .expect("the online OTP");
}

/// The stored digest of a credential's pending online OTP, read with SQL of the test's own.
fn stored_online_otp(f: &Fixture, cred: &CredentialId) -> Vec<u8> {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        code_hash: Vec<u8>,
    }
    let path = f._dir.path().join("csc.db");
    let mut conn =
        diesel::SqliteConnection::establish(&path.display().to_string()).expect("open db");
    let row: Row = diesel::sql_query("SELECT code_hash FROM online_otps WHERE credential_id = ?")
        .bind::<diesel::sql_types::Text, _>(cred.to_string())
        .get_result(&mut conn)
        .expect("the pending OTP row");
    row.code_hash
}

#[test]
fn destroying_a_credential_destroys_its_totp_key() {
    let f = fixture();
    let (cred, _) = totp_credential(&f.sam, Scal::One, 1);
    let key = sam::TotpVerifier::parse(&factor(&f.sam, &cred.id, FactorKind::Otp).verifier)
        .expect("token form")
        .key;
    let hsm: Hsm = f.token.open();
    hsm.hmac(&key, cm_pkcs11::HmacAlg::Sha1, &[0; 8])
        .expect("the key works");
    f.sam
        .destroy_credential_key(
            &cred.id,
            &sam::Actor::new("test", sam::Role::SecurityOfficer),
        )
        .expect("destroy");
    assert!(matches!(
        hsm.hmac(&key, cm_pkcs11::HmacAlg::Sha1, &[0; 8]),
        Err(cm_pkcs11::HsmError::KeyNotFound(k)) if k == key
    ));
    let destroyed: Vec<_> = audit(&f.sam)
        .into_iter()
        .filter(|r| r.event == "key.destroy")
        .collect();
    assert_eq!(destroyed.len(), 1);
    assert!(
        destroyed[0].detail.contains("\"otpKeyDestroyed\":true"),
        "{}",
        destroyed[0].detail
    );
}

// ---------------------------------------------------------------------------------------------
// a lock or a disable ends the user's sessions (issue 11)

/// The failure that locks a user's login revokes, in its transaction, every SAD of theirs (and
/// every token): a SAD obtained before the lock signs nothing after it. Another user's SAD is
/// untouched. An operator's disable does the same.
#[test]
fn a_login_lock_and_a_disable_revoke_the_users_sads() {
    let f = fixture();
    let a = ec(&f.sam, "alice", Scal::One, 2);
    let b = ec(&f.sam, "bob", Scal::One, 2);
    let sad_a = f
        .sam
        .authorize(&f.alice, &a.id, 2, None, pin())
        .expect("SAD");
    let sad_b = f.sam.authorize(&f.bob, &b.id, 2, None, pin()).expect("SAD");
    let h = [sha256(b"before")];
    f.sam
        .sign_hash(&f.alice, &a.id, &sad_a.sad, &h, &es256())
        .expect("one signature before the lock");
    let wrong = SecretString::from("not the password");
    for _ in 0..SamPolicy::default().max_login_failures {
        let r = f
            .sam
            .oauth_sign_in("alice", &wrong, "app")
            .expect("checked");
        assert!(matches!(r, Err(sam::LoginRefusal::Invalid)), "{r:?}");
    }
    let r = f.sam.sign_hash(&f.alice, &a.id, &sad_a.sad, &h, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let lock = audit(&f.sam)
        .into_iter()
        .find(|r| r.event == "user.lock")
        .expect("a user.lock record");
    assert!(lock.detail.contains("\"revokedSads\":1"), "{}", lock.detail);
    // bob's SAD is his own business
    f.sam
        .sign_hash(&f.bob, &b.id, &sad_b.sad, &h, &es256())
        .expect("bob still signs");

    f.sam
        .disable_user("bob", &sam::Actor::new("test", sam::Role::Operator))
        .expect("disable");
    let r = f.sam.sign_hash(&f.bob, &b.id, &sad_b.sad, &h, &es256());
    assert!(matches!(r, Err(SamError::InvalidSad)), "{r:?}");
    let disable = audit(&f.sam)
        .into_iter()
        .find(|r| r.event == "user.disable")
        .expect("a user.disable record");
    assert!(
        disable.detail.contains("\"revokedSads\":1"),
        "{}",
        disable.detail
    );
}

fn request(scal: Scal, otp: OtpChoice) -> NewCredentialRequest {
    NewCredentialRequest {
        user_name: "alice".into(),
        spec: KeySpec::EcP256,
        scal,
        multisign: 1,
        pin: SecretString::from(PIN),
        otp,
        auth_mode: storage::AuthMode::Explicit,
        description: None,
    }
}

fn at_level(sam: &Sam, level: u8) -> Sam {
    sam.clone().with_policy(SamPolicy {
        assurance_level: sam::AssuranceLevel::from_number(level).expect("level"),
        ..SamPolicy::default()
    })
}

/// The configured assurance level governs creation (issue 14; JT2A Part I 3.5.1-3.5.2): level 1
/// takes one factor, level 2 needs a PIN and an OTP, level 3 also SCAL 2.
#[test]
fn the_assurance_level_refuses_the_credentials_below_it_at_creation() {
    let f = fixture();
    let refused = |level: u8, scal, otp| {
        let r = at_level(&f.sam, level).create_credential(
            request(scal, otp),
            &sam::Actor::new("test", sam::Role::Operator),
        );
        match r {
            Err(SamError::AssuranceLevel { level: l, reason }) => {
                assert_eq!(l, level);
                reason
            }
            other => panic!("level {level}: {:?}", other.map(|c| c.credential.id)),
        }
    };
    let made = |level: u8, scal, otp| {
        at_level(&f.sam, level)
            .create_credential(
                request(scal, otp),
                &sam::Actor::new("test", sam::Role::Operator),
            )
            .unwrap_or_else(|e| panic!("level {level}, {scal:?}, {otp:?}: {e}"));
    };
    made(1, Scal::One, OtpChoice::None);
    made(1, Scal::Two, OtpChoice::Online);
    assert!(refused(2, Scal::One, OtpChoice::None).contains("two activation factors"));
    made(2, Scal::One, OtpChoice::Online);
    made(2, Scal::Two, OtpChoice::Totp);
    assert!(refused(3, Scal::One, OtpChoice::None).contains("two activation factors"));
    assert_eq!(
        refused(3, Scal::One, OtpChoice::Online),
        "SCAL 2 is required"
    );
    made(3, Scal::Two, OtpChoice::Online);
    // each refusal is audited against the user, naming the level
    let refusals: Vec<_> = f
        .sam
        .audit_records(0, 1000)
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "credential.create" && r.outcome == "refused")
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(refusals.iter().all(|r| r.subject == "alice"
        && r.actor == "operator:test"
        && r.detail.contains("assurance level")));
}

/// Data made under a lower level never activates under a higher one (issue 14; Part I 3.5.2):
/// the refusal comes before any factor is verified or counted, and is audited.
#[test]
fn credentials_made_below_the_level_are_refused_at_activation() {
    let f = fixture();
    let single = ec(&f.sam, "alice", Scal::One, 1);
    let (scal1_two_factors, uri) = totp_credential(&f.sam, Scal::One, 1);
    let strict = at_level(&f.sam, 3);
    let h = || Some(vec![sha256(b"level")]);
    let r = strict.authorize(&f.alice, &single.id, 1, h(), pin());
    assert!(
        matches!(r, Err(SamError::AssuranceLevel { level: 3, reason }) if reason.contains("two activation factors")),
        "{r:?}"
    );
    let r = strict.authorize(
        &f.alice,
        &scal1_two_factors.id,
        1,
        h(),
        pin_otp(PIN, &current_otp(&uri)),
    );
    assert!(
        matches!(
            r,
            Err(SamError::AssuranceLevel {
                level: 3,
                reason: "SCAL 2 is required"
            })
        ),
        "{r:?}"
    );
    // level 2 takes the two-factor SCAL 1 credential, not the PIN-only one
    let middle = at_level(&f.sam, 2);
    let r = middle.authorize(&f.alice, &single.id, 1, h(), pin());
    assert!(
        matches!(r, Err(SamError::AssuranceLevel { level: 2, .. })),
        "{r:?}"
    );
    middle
        .authorize(
            &f.alice,
            &scal1_two_factors.id,
            1,
            h(),
            pin_otp(PIN, &current_otp(&uri)),
        )
        .expect("two factors meet level 2");
    // level 1 still activates the PIN-only credential
    f.sam
        .authorize(&f.alice, &single.id, 1, h(), pin())
        .expect("level 1");
}

/// Disabling a credential while 16 activations of it run at once (issue 14, the lifecycle):
/// once `disable_credential` returns, no SAD of the credential signs — not one issued before
/// it (revoked in the disable's transaction), not one whose activation passed its checks just
/// before the disable and wrote its SAD after (the activation re-reads the credential under
/// lock in the transaction that writes the SAD) — even after the credential is enabled again.
#[test]
fn no_sad_outlives_a_disable_that_races_activations() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let operator = sam::Actor::new("test", sam::Role::Operator);
    let barrier = Arc::new(Barrier::new(RACERS / 2 + 1));
    let activations: Vec<_> = (0..RACERS / 2)
        .map(|_| {
            let (sam, alice, id, start) =
                (f.sam.clone(), f.alice.clone(), cred.id, barrier.clone());
            std::thread::spawn(move || {
                start.wait();
                sam.authorize(&alice, &id, 1, None, pin())
            })
        })
        .collect();
    barrier.wait();
    f.sam
        .disable_credential(&cred.id, &operator)
        .expect("disable");
    let issued: Vec<_> = activations
        .into_iter()
        .map(|h| h.join().expect("activation"))
        .filter_map(Result::ok)
        .collect();
    f.sam
        .enable_credential(&cred.id, &operator)
        .expect("enable");
    let d = vec![sha256(b"after the disable")];
    for sad in &issued {
        assert!(
            matches!(
                f.sam.sign_hash(&f.alice, &cred.id, &sad.sad, &d, &es256()),
                Err(SamError::InvalidSad)
            ),
            "a SAD issued around the disable still signs"
        );
    }
    // a new activation after the enable signs
    let fresh = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize after enable");
    f.sam
        .sign_hash(&f.alice, &cred.id, &fresh.sad, &d, &es256())
        .expect("sign after enable");
}

// ---------------------------------------------------------------------------------------------
// the hot cache (sam/src/hot.rs)

/// signHash takes the credential from the SAM's cache of verified rows: a disable, and an
/// enable after it, are seen by the very next signHash of this process (a stale entry would
/// answer "invalid SAD" for the SAD the disable revoked, then refuse the enabled credential).
#[test]
fn a_cached_credential_is_dropped_by_a_disable_and_an_enable_at_once() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 5);
    let operator = sam::Actor::new("test", sam::Role::Operator);
    let h = sha256(b"cached");
    // the credential is in the cache
    sign(&f, &cred, std::slice::from_ref(&h), &es256());
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    f.sam
        .disable_credential(&cred.id, &operator)
        .expect("disable");
    let refused = f
        .sam
        .sign_hash(
            &f.alice,
            &cred.id,
            &issued.sad,
            std::slice::from_ref(&h),
            &es256(),
        )
        .expect_err("disabled");
    assert!(
        matches!(refused, SamError::CredentialDisabled),
        "{refused:?}"
    );
    f.sam
        .enable_credential(&cred.id, &operator)
        .expect("enable");
    let sigs = sign(&f, &cred, std::slice::from_ref(&h), &es256());
    assert_all_verify(
        &cred,
        &SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        },
        &[h],
        &sigs,
    );
}

/// The fixture's SQLite database, opened beside the store (for SQL of the test's own).
fn raw_sqlite(f: &Fixture) -> diesel::SqliteConnection {
    use diesel::Connection;
    diesel::SqliteConnection::establish(&f._dir.path().join("csc.db").display().to_string())
        .expect("open db")
}

/// Runs `sql` (the test's own) on `db`.
fn raw_exec(db: &mut diesel::SqliteConnection, sql: &str) {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql).execute(db).expect(sql);
}

/// Polls `fut` once, with a waker that does nothing (the test polls again itself).
fn poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

// ---------------------------------------------------------------------------------------------
// the async signHash path (`Sam::sign_hash_async`, what the HTTP workers call)

/// Runs `f` to completion on a one-thread runtime, as an HTTP worker would.
fn on_worker<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn sign_hash_records(sam: &Sam) -> Vec<storage::AuditRecord> {
    sam.store()
        .read(|c| c.audit_records(0, 1_000))
        .expect("audit")
        .into_iter()
        .filter(|r| r.event.starts_with("signature."))
        .collect()
}

/// The async path signs exactly as the blocking one: a signature that verifies against the
/// certificate, the SAD spent, one `success` record written ahead, a second use refused
/// (`InvalidSad`, audited as `signature.refused`), the chain intact.
#[test]
fn sign_hash_async_signs_spends_and_audits_as_sign_hash_does() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let d = vec![sha256(b"async")];
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    let sigs = on_worker(
        f.sam
            .sign_hash_async(&f.alice, &cred.id, &issued.sad, &d, &es256()),
    )
    .expect("sign_hash_async");
    let mech = SignMechanism::Ecdsa {
        hash: HashAlg::Sha256,
    };
    assert!(verifies(&cred, &mech, &d[0], &sigs[0]));
    assert_eq!(sad_record(&f.sam, &issued.sad).remaining, 0);
    let again = on_worker(
        f.sam
            .sign_hash_async(&f.alice, &cred.id, &issued.sad, &d, &es256()),
    );
    assert!(matches!(again, Err(SamError::InvalidSad)), "{again:?}");
    let outcomes: Vec<(String, String)> = sign_hash_records(&f.sam)
        .into_iter()
        .map(|r| (r.event, r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("signature.sign_hash".to_owned(), "success".to_owned()),
            ("signature.refused".to_owned(), "refused".to_owned()),
        ]
    );
    assert!(matches!(
        f.sam.store().verify_audit_chain().expect("verify"),
        AuditVerdict::Intact { .. }
    ));
}

/// Write-ahead on the async path: when the batch holding the spend cannot commit (the
/// database refuses the `signature.sign_hash` record), no signature leaves (the HSM may have
/// signed while the batch committed: that signature is dropped), the spend is rolled back with
/// it, and once the database accepts records again the same SAD signs.
#[test]
fn a_failing_batch_releases_no_signature_on_the_async_path() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let d = vec![sha256(b"refused record")];
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    // the database refuses every signature.sign_hash record (SQL of the test's own)
    let mut db = raw_sqlite(&f);
    raw_exec(
        &mut db,
        "CREATE TRIGGER refuse_signatures BEFORE INSERT ON audit_log \
         WHEN NEW.event = 'signature.sign_hash' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    );
    let r = on_worker(
        f.sam
            .sign_hash_async(&f.alice, &cred.id, &issued.sad, &d, &es256()),
    );
    assert!(
        matches!(r, Err(SamError::Storage(storage::StorageError::Commit(_)))),
        "{r:?}"
    );
    assert_eq!(sad_record(&f.sam, &issued.sad).remaining, 1, "not spent");
    assert!(sign_hash_records(&f.sam).is_empty(), "nothing audited");
    raw_exec(&mut db, "DROP TRIGGER refuse_signatures");
    let sigs = on_worker(
        f.sam
            .sign_hash_async(&f.alice, &cred.id, &issued.sad, &d, &es256()),
    )
    .expect("signs once the record can be written");
    let mech = SignMechanism::Ecdsa {
        hash: HashAlg::Sha256,
    };
    assert!(verifies(&cred, &mech, &d[0], &sigs[0]));
}

/// A client gone mid-request: the signHash future is dropped once its spend is queued. The
/// spend still commits WITH its record (never a SAD spent unaudited), no signature leaves,
/// and the store's writer goes on serving the next request.
#[test]
fn a_dropped_sign_hash_async_still_spends_with_its_record_and_the_writer_serves_on() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let d = vec![sha256(b"gone")];
    let issued = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    // this thread holds the writer lock meanwhile, so the spend cannot commit before the drop
    f.sam
        .store()
        .write(|_| {
            let algo = es256();
            let mut fut =
                std::pin::pin!(
                    f.sam
                        .sign_hash_async(&f.alice, &cred.id, &issued.sad, &d, &algo)
                );
            // one poll runs the checks and queues the spend; then the client goes away
            assert!(poll_once(fut.as_mut()).is_pending(), "waits for the commit");
            Ok(())
        })
        .expect("write");
    // the queued job commits on the writer thread whatever became of its caller
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sad_record(&f.sam, &issued.sad).remaining != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the spend never committed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let records = sign_hash_records(&f.sam);
    assert_eq!(records.len(), 1, "the spend's record, committed with it");
    assert_eq!(
        (records[0].event.as_str(), records[0].outcome.as_str()),
        ("signature.sign_hash", "success")
    );
    // the writer is still there: the next request signs
    let next = f
        .sam
        .authorize(&f.alice, &cred.id, 1, None, pin())
        .expect("authorize");
    on_worker(
        f.sam
            .sign_hash_async(&f.alice, &cred.id, &next.sad, &d, &es256()),
    )
    .expect("the next request signs");
    assert!(matches!(
        f.sam.store().verify_audit_chain().expect("verify"),
        AuditVerdict::Intact { .. }
    ));
}

/// A client gone mid-authorize (count first, Part I 7.1.2.5.1): the activation's future is
/// dropped (1) while its slot reservation is queued: the reservation is given back once it
/// commits, so no slot stays reserved and no PIN is verified; (2) once a wrong PIN was verified
/// and its failure queued: the failure still commits, counted and audited, never given back.
#[test]
fn a_dropped_authorize_neither_keeps_its_slot_nor_loses_its_failure() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let before = f.sam.secret_checks();
    let flush = || {
        // the group commit is one queue: this job commits after every job queued before it
        f.sam
            .store()
            .write_grouped(|_| Ok(((), Vec::new())))
            .expect("flush")
    };

    // (1) this thread holds the writer lock, so the reservation cannot commit before the drop
    f.sam
        .store()
        .write(|_| {
            let mut fut = Box::pin(
                f.sam
                    .authorize_async(&f.alice, &cred.id, 1, None, wrong_pin()),
            );
            assert!(
                poll_once(fut.as_mut()).is_pending(),
                "waits for the reservation"
            );
            drop(fut);
            Ok(())
        })
        .expect("write");
    flush();
    let pin_factor = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!(
        (pin_factor.failures, pin_factor.locked),
        (0, false),
        "the abandoned reservation is given back"
    );
    assert_eq!(f.sam.secret_checks().pins, before.pins, "no PIN verified");

    // (2) the reservation commits (queued with the writer held: the PIN is verified as soon
    // as the reservation is kept in its batch, so a free writer could take the future past it
    // in its first poll); then, the writer held again, the next poll verifies the wrong PIN
    // and queues its failure; the client goes away
    let mut fut = Box::pin(
        f.sam
            .authorize_async(&f.alice, &cred.id, 1, None, wrong_pin()),
    );
    // one poll while this thread holds the writer, so no batch runs meanwhile: it must wait
    let pending_with_writer_held = |fut: std::pin::Pin<&mut _>, what: &str| {
        f.sam
            .store()
            .write(|_| {
                assert!(poll_once(fut).is_pending(), "{what}");
                Ok(())
            })
            .expect("write");
    };
    pending_with_writer_held(fut.as_mut(), "waits for the reservation");
    flush();
    assert_eq!(
        factor(&f.sam, &cred.id, FactorKind::Pin).failures,
        1,
        "reserved"
    );
    pending_with_writer_held(fut.as_mut(), "waits for the failure's commit");
    drop(fut);
    flush();
    assert_eq!(
        f.sam.secret_checks().pins - before.pins,
        1,
        "one PIN verified"
    );
    let pin_factor = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!(
        (pin_factor.failures, pin_factor.locked),
        (1, false),
        "the failure is kept"
    );
    assert_eq!(
        audit(&f.sam)
            .iter()
            .filter(|r| r.event == "sad.authorize" && r.detail.contains("wrong PIN"))
            .count(),
        1,
        "and audited"
    );
}

/// Count first when the reservation's batch does not commit (Part I 7.1.2.5.1): on SQLite an
/// activation verifies its factors as soon as its failure slots are reserved in a batch, while
/// that batch commits; if the commit fails (here the database refuses another job's audit
/// record in the same batch) the reservation is undone, so no verdict may leave: a wrong PIN
/// is answered with a storage error, not `InvalidPin`, and counts and audits nothing; a right
/// PIN gets no SAD. The factor ends as it was, and the next activation is answered as usual.
#[test]
fn an_activation_whose_reservation_did_not_commit_gets_no_verdict() {
    let f = fixture();
    let cred = ec(&f.sam, "alice", Scal::One, 1);
    let mut db = raw_sqlite(&f);
    raw_exec(
        &mut db,
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_log \
         WHEN NEW.subject = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    );
    let records = audit(&f.sam).len();
    let pins = f.sam.secret_checks().pins;
    for factors in [wrong_pin as fn() -> Factors, pin] {
        let mut fut = Box::pin(
            f.sam
                .authorize_async(&f.alice, &cred.id, 1, None, factors()),
        );
        // the writer held: the reservation and the poisoned job are queued into one batch
        f.sam
            .store()
            .write(|_| {
                assert!(poll_once(fut.as_mut()).is_pending(), "waits for its slot");
                drop(f.sam.store().write_grouped_async(|_| {
                    let poison = storage::NewAuditEvent::new(
                        storage::AuditEvent::UserCreate,
                        "t",
                        "poison",
                        "x",
                    );
                    Ok(((), vec![poison]))
                }));
                Ok(())
            })
            .expect("write");
        let r = on_worker(fut);
        assert!(
            matches!(r, Err(SamError::Storage(storage::StorageError::Commit(_)))),
            "no verdict: {r:?}"
        );
    }
    assert_eq!(
        f.sam.secret_checks().pins - pins,
        2,
        "both PINs were verified"
    );
    let stored = factor(&f.sam, &cred.id, FactorKind::Pin);
    assert_eq!(
        (stored.failures, stored.locked),
        (0, false),
        "nothing counted"
    );
    assert_eq!(
        audit(&f.sam).len(),
        records,
        "nothing audited, no SAD issued"
    );
    raw_exec(&mut db, "DROP TRIGGER refuse_poison");
    let r = on_worker(
        f.sam
            .authorize_async(&f.alice, &cred.id, 1, None, wrong_pin()),
    );
    assert!(matches!(r, Err(SamError::InvalidPin)), "{r:?}");
    assert_eq!(factor(&f.sam, &cred.id, FactorKind::Pin).failures, 1);
}

/// The async path (the HTTP worker: one thread, every activation a task on it) keeps both sides
/// of counting first: 32 concurrent wrong PINs against the limit of 5 have exactly 5 verified,
/// the rest refused as locked; and, on another credential, 32 concurrent right PINs are all
/// granted, the attempts whose slots are held by attempts in flight waiting (an async sleep,
/// the worker serving the others meanwhile) instead of being refused.
#[test]
fn async_activations_on_one_worker_keep_the_lockout_rule_both_ways_sqlite() {
    async_activations_on_one_worker_keep_the_lockout_rule_both_ways(None);
}

#[test]
fn async_activations_on_one_worker_keep_the_lockout_rule_both_ways_postgres() {
    let db = PgDb::create();
    async_activations_on_one_worker_keep_the_lockout_rule_both_ways(Some(&db.url));
}

fn async_activations_on_one_worker_keep_the_lockout_rule_both_ways(url: Option<&str>) {
    // a bound no machine reaches: the test shows the wait, not how fast attempts settle
    let f = fixture_on(
        url,
        SamPolicy {
            max_slot_wait: Duration::from_secs(600),
            ..SamPolicy::default()
        },
    );
    let worker = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let race = |id: CredentialId, factors: fn() -> Factors| {
        let tasks = tokio::task::LocalSet::new();
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                let (sam, alice) = (f.sam.clone(), f.alice.clone());
                tasks.spawn_local(async move {
                    sam.authorize_async(&alice, &id, 1, None, factors())
                        .await
                        .map(drop)
                })
            })
            .collect();
        worker.block_on(tasks.run_until(async {
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await.expect("activation"));
            }
            results
        }))
    };

    let guessed = ec(&f.sam, "alice", Scal::One, 1);
    let before = f.sam.secret_checks();
    let results = race(guessed.id, wrong_pin);
    assert_eq!(wrong_and_locked(&results), (5, RACERS - 5), "{results:?}");
    assert_eq!(f.sam.secret_checks().pins - before.pins, 5, "PINs verified");
    let stored = factor(&f.sam, &guessed.id, FactorKind::Pin);
    assert_eq!((stored.failures, stored.locked), (5, true));
    assert_eq!(count_events(&f.sam, "factor.lock", "success"), 1);

    let used = ec(&f.sam, "alice", Scal::One, 1);
    for r in race(used.id, pin) {
        assert!(r.is_ok(), "{r:?}");
    }
    let stored = factor(&f.sam, &used.id, FactorKind::Pin);
    assert_eq!((stored.failures, stored.locked), (0, false));
}
