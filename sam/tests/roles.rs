//! Roles and separation of duties (issue 14 "Roles"; JT2A Part I 7.1.3) on a real SoftHSM2 token
//! and a real SQLite database: each role against each administrative domain function, allowed
//! or refused with [`SamError::Forbidden`], audited either way (the refusal as `access.denied`,
//! naming the role); one user never holds two roles; a signer administers nothing; nobody
//! reads or resets a PIN verifier through the SAM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cm_pkcs11::KeySpec;
use cm_pkcs11::testkit::TestToken;
use sam::roles::allows;
use sam::{Action, Actor, AuditRecord, CredentialId, NewCredentialRequest, Role, Sam, SamError};
use secrecy::SecretString;
use storage::{FactorKind, Scal, Store, StoreOptions};

struct Fixture {
    _token: TestToken,
    _dir: tempfile::TempDir,
    sam: Sam,
}

fn fixture() -> Fixture {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("csc.db").display());
    let store = Store::open_or_create(&url, StoreOptions::default()).expect("store");
    let sam = Sam::open(&token.config, store, &dir.path().join("dev-ca.json"))
        .and_then(Sam::with_audit_seal_key)
        .expect("sam");
    sam.add_user(
        "alice",
        &SecretString::from("alice-password"),
        Role::Signer,
        &operator(),
    )
    .expect("alice");
    Fixture {
        _token: token,
        _dir: dir,
        sam,
    }
}

fn operator() -> Actor {
    Actor::new("olga", Role::Operator)
}

fn officer() -> Actor {
    Actor::new("sofia", Role::SecurityOfficer)
}

fn request() -> NewCredentialRequest {
    NewCredentialRequest {
        user_name: "alice".into(),
        spec: KeySpec::EcP256,
        scal: Scal::One,
        multisign: 1,
        pin: SecretString::from("123456"),
        otp: sam::OtpChoice::None,
        auth_mode: storage::AuthMode::Explicit,
        description: None,
    }
}

fn records_after(sam: &Sam, seq: i64) -> Vec<AuditRecord> {
    sam.audit_records(seq, 1000).expect("audit")
}

fn head(sam: &Sam) -> i64 {
    records_after(sam, 0).last().map_or(0, |r| r.seq)
}

/// One administrative domain function, called as `actor`; the setup it needs is made by the
/// allowed roles beforehand (a fresh credential for each call that consumes one).
fn call(f: &Fixture, action: Action, actor: &Actor, n: usize) -> Result<(), SamError> {
    let sam = &f.sam;
    let fresh = || {
        sam.create_credential(request(), &operator())
            .expect("credential")
            .credential
    };
    match action {
        Action::UserCreate(role) => sam
            .add_user(
                &format!("u{n}"),
                &SecretString::from("a-long-password"),
                role,
                actor,
            )
            .map(drop),
        Action::UserDisable => sam.disable_user("alice", actor).map(drop),
        Action::UserEnable => sam.enable_user("alice", actor).map(drop),
        Action::UserUnlock => sam.unlock_user("alice", actor).map(drop),
        Action::CredentialCreate => sam.create_credential(request(), actor).map(drop),
        Action::CredentialCsr => sam.certificate_request(&fresh().id, None, actor).map(drop),
        Action::CredentialImportChain => {
            let c = fresh();
            let chain = c.cert_chain_der().expect("chain");
            sam.import_certificate_chain(&c.id, chain, actor).map(drop)
        }
        Action::CredentialUnlock => sam.unlock_credential(&fresh().id, actor).map(drop),
        Action::CredentialDestroy => sam.destroy_credential_key(&fresh().id, actor),
        Action::CredentialDisable => sam.disable_credential(&fresh().id, actor).map(drop),
        Action::CredentialEnable => {
            let c = fresh();
            sam.disable_credential(&c.id, &operator()).expect("disable");
            sam.enable_credential(&c.id, actor).map(drop)
        }
        Action::CredentialRevoke => sam
            .revoke_credential(&fresh().id, "key compromise", actor)
            .map(drop),
        Action::CredentialRekey => sam
            .rekey_credential(&fresh().id, None, sam::RekeyCertifier::DevCa, actor)
            .map(drop),
        Action::OtpMigrate => sam.migrate_otp_seeds(actor).map(drop),
        Action::ClientRegister => sam
            .register_client("app", &["https://app.example/cb".into()], false, actor)
            .map(drop),
        Action::ClientDelegate | Action::ClientUndelegate => {
            let client = sam
                .register_client("svc", &["https://svc.example/cb".into()], true, &officer())
                .expect("client")
                .client_id;
            if action == Action::ClientDelegate {
                sam.delegate_client(&client, "alice", actor).map(drop)
            } else {
                sam.delegate_client(&client, "alice", &officer())
                    .expect("delegate");
                sam.undelegate_client(&client, "alice", actor).map(drop)
            }
        }
        Action::TokenInit => sam.record_token_init("csc-server", actor),
        Action::IntegritySeal => sam.seal_database(actor).map(drop),
        Action::AuditUpgrade => sam.confirm_audit_switch(&[], actor).map(drop),
        Action::Backup => sam.record_backup("backup.tar", serde_json::json!({}), actor),
        Action::Restore => sam.record_restore("backup.tar", serde_json::json!({}), actor),
        Action::CredentialList => sam.credentials_with_owners_as(actor, None).map(drop),
        Action::ClientList => sam.clients_as(actor).map(drop),
        Action::AuditRead => sam.audit_records_as(actor, 0, 10).map(drop),
        Action::AuditVerify => sam.verify_audit_as(actor, &[]).map(drop),
        Action::UserList => sam.users_as(actor).map(drop),
        Action::AdministratorManage => {
            // an administrative user: disabling one is the security officer's
            let name = format!("admin{n}");
            sam.add_user(
                &name,
                &SecretString::from("password-123"),
                Role::Auditor,
                &officer(),
            )
            .expect("user");
            sam.disable_user(&name, actor).map(drop)
        }
        Action::UserDelete => {
            let name = format!("gone{n}");
            sam.add_user(
                &name,
                &SecretString::from("password-123"),
                Role::Signer,
                &operator(),
            )
            .expect("user");
            sam.delete_user_as(actor, &name).map(drop)
        }
        Action::AuditExport => sam
            .export_audit_as(actor, &[], None, None, &mut Vec::new())
            .map(drop),
    }
}

/// Each role against each administrative function: allowed exactly as the role table says,
/// refused with `Forbidden` otherwise; audited either way, the record naming the role.
#[test]
fn each_role_against_each_administrative_function() {
    let f = fixture();
    let mut n = 0;
    for role in Role::ALL {
        let actor = Actor::new(format!("{}-person", role.as_str()), *role);
        for action in Action::ALL {
            n += 1;
            let before = head(&f.sam);
            let r = call(&f, *action, &actor, n);
            // the setup's records (a fresh credential by the operator) are not the act's
            let own: Vec<AuditRecord> = records_after(&f.sam, before)
                .into_iter()
                .filter(|rec| rec.actor == actor.audit_name())
                .collect();
            if allows(*role, *action) {
                if *action == Action::IntegritySeal {
                    // allowed, and then refused by the store: a database made by this version
                    // is sealed from the start (the upgrade step is for older ones)
                    assert!(
                        matches!(
                            r,
                            Err(SamError::Storage(storage::StorageError::Conflict(_)))
                        ),
                        "{r:?}"
                    );
                    continue;
                }
                assert!(r.is_ok(), "{role:?} {action:?}: {r:?}");
                assert!(
                    own.iter().all(|rec| rec.event != "access.denied"),
                    "{role:?} {action:?}: {own:?}"
                );
                let reads = matches!(
                    action,
                    Action::CredentialList
                        | Action::ClientList
                        | Action::AuditRead
                        | Action::AuditVerify
                        // nothing to do, nothing recorded: a log begun keyed has no switch
                        // to confirm; a token without plain TOTP seeds none to migrate
                        | Action::AuditUpgrade
                        | Action::OtpMigrate
                );
                if !reads {
                    assert!(!own.is_empty(), "{role:?} {action:?}: not audited");
                }
            } else {
                match &r {
                    Err(SamError::Forbidden {
                        role: refused,
                        action: name,
                    }) => {
                        assert_eq!(refused, role);
                        assert_eq!(*name, action.as_str());
                    }
                    other => panic!("{role:?} {action:?}: {other:?}"),
                }
                assert_eq!(own.len(), 1, "{role:?} {action:?}: {own:?}");
                let rec = &own[0];
                assert_eq!(rec.event, "access.denied");
                assert_eq!(rec.outcome, "refused");
                let detail: serde_json::Value = serde_json::from_str(&rec.detail).unwrap();
                assert_eq!(detail["role"], role.as_str());
                assert_eq!(detail["action"], action.as_str());
            }
        }
    }
    // a refused user.create made no user; an allowed one did
    let mut n = 0;
    for role in Role::ALL {
        for action in Action::ALL {
            n += 1;
            if let Action::UserCreate(_) = action {
                let made = f.sam.user_by_name(&format!("u{n}")).unwrap().is_some();
                assert_eq!(made, allows(*role, *action), "{role:?} {action:?}");
            }
        }
    }
    let report = f.sam.verify_audit(&[]).expect("verify");
    assert!(
        matches!(report.verdict, sam::AuditVerdict::Intact { .. }),
        "{report:?}"
    );
}

/// A signer administers nothing, not even its own user or credentials.
#[test]
fn a_signer_cannot_administer() {
    let f = fixture();
    let alice = Actor::new("alice", Role::Signer);
    for action in Action::ALL {
        assert!(!allows(Role::Signer, *action), "{action:?}");
    }
    let r = f.sam.disable_user("alice", &alice);
    assert!(matches!(r, Err(SamError::Forbidden { .. })), "{r:?}");
    let r = f.sam.create_credential(request(), &alice);
    assert!(matches!(r, Err(SamError::Forbidden { .. })));
    assert!(
        f.sam
            .credentials_with_owners(Some("alice"))
            .unwrap()
            .is_empty()
    );
}

/// One user, one role: an administrative role is a user of its own; the name of a signer (or
/// of another administrator) cannot be given a second role.
#[test]
fn one_user_cannot_hold_two_administrative_roles() {
    let f = fixture();
    let pw = SecretString::from("a-long-password");
    f.sam
        .add_user("bob", &pw, Role::Operator, &officer())
        .expect("bob the operator");
    for role in [Role::SecurityOfficer, Role::Auditor] {
        let r = f.sam.add_user("bob", &pw, role, &officer());
        assert!(matches!(r, Err(SamError::UserExists(_))), "{r:?}");
    }
    let r = f.sam.add_user("alice", &pw, Role::Auditor, &officer());
    assert!(matches!(r, Err(SamError::UserExists(_))), "{r:?}");
    assert_eq!(
        f.sam.user_by_name("bob").unwrap().unwrap().role,
        Role::Operator
    );
    assert_eq!(
        f.sam.user_by_name("alice").unwrap().unwrap().role,
        Role::Signer
    );
    // an operator registers signers only, never administrators
    let r = f
        .sam
        .add_user("eve", &pw, Role::SecurityOfficer, &operator());
    assert!(matches!(r, Err(SamError::Forbidden { .. })), "{r:?}");
    assert!(f.sam.user_by_name("eve").unwrap().is_none());
}

/// The operator creates a credential with the signer's PIN (given by the signer, as the CLI
/// reads it) and may lift a PIN lock, but no function returns the PIN verifier nor sets a PIN:
/// what the operator gets back never holds it, and an unlock leaves it as it was.
#[test]
fn an_operator_cannot_read_or_reset_a_signers_pin_verifier() {
    let f = fixture();
    let created = f
        .sam
        .create_credential(request(), &operator())
        .expect("create");
    let id: CredentialId = created.credential.id;
    let verifier = f
        .sam
        .store()
        .read(|c| c.factor(&id, FactorKind::Pin))
        .unwrap()
        .expect("pin factor")
        .verifier;
    let shown = format!("{:?}", created.credential);
    assert!(!shown.contains(&verifier), "{shown}");
    let listed = format!("{:?}", f.sam.credentials_with_owners(None).unwrap());
    assert!(!listed.contains(&verifier));
    let audit = format!("{:?}", records_after(&f.sam, 0));
    assert!(!audit.contains(&verifier));
    assert!(!audit.contains("123456"));
    // unlock lifts the lock; the verifier (the PIN) is unchanged
    f.sam.unlock_credential(&id, &operator()).expect("unlock");
    let after = f
        .sam
        .store()
        .read(|c| c.factor(&id, FactorKind::Pin))
        .unwrap()
        .expect("pin factor")
        .verifier;
    assert_eq!(after, verifier);
}
