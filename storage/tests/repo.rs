//! Repository tests, run once per backend against real databases: an SQLite file in a temp dir,
//! and a fresh PostgreSQL database per test on the server named by `CSC_TEST_POSTGRES_URL`.
//!
//! Each scenario is a function taking `&TestDb` (which derefs to `Store`); `both!` generates
//! `sqlite::<name>` and `postgres::<name>` tests from it. This is the crate's only integration
//! test binary (link time matters on 2 cores): add tests here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;
use storage::*;

const PG_ENV: &str = "CSC_TEST_POSTGRES_URL";

// ---------------------------------------------------------------------------------------------
// harness

enum Raw {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        admin_url: String,
        db_name: String,
    },
}

/// A store on a fresh database, dropped (PostgreSQL) or deleted (SQLite) afterwards.
struct TestDb {
    store: Option<Store>,
    raw: Raw,
}

impl Deref for TestDb {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("store is present until drop")
    }
}

fn opts(pool_size: u32) -> StoreOptions {
    StoreOptions {
        pool_size,
        ..StoreOptions::default()
    }
}

/// `admin` with its database name replaced by `db`.
fn with_database(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{db}{query}", &base[..host_end])
}

/// Fixed integrity keys: these tests are about storage, the SAM derives real ones in the token.
fn test_keys() -> IntegrityKeys {
    IntegrityKeys::new([7; 32], [8; 32])
}

impl TestDb {
    fn sqlite(pool_size: u32) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("csc.sqlite");
        let url = format!("sqlite://{}", path.display());
        let store = Store::open_or_create(&url, opts(pool_size))
            .expect("open SQLite store")
            .with_keys(test_keys());
        assert_eq!(store.backend(), Backend::Sqlite);
        TestDb {
            store: Some(store),
            raw: Raw::Sqlite { path, _dir: dir },
        }
    }

    fn postgres(pool_size: u32) -> TestDb {
        let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| {
            panic!(
                "{PG_ENV} is not set. The PostgreSQL variants of these tests need a server: \
                 start one (e.g. initdb -A trust -U csc; pg_ctl -o '-p 54329 -c \
                 listen_addresses=127.0.0.1' start) and export \
                 {PG_ENV}=postgresql://csc@127.0.0.1:54329/postgres (an account that may \
                 CREATE DATABASE)"
            )
        });
        let db_name = format!("csc_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin)
            .expect("CREATE DATABASE");
        let url = with_database(&admin_url, &db_name);
        let store = Store::open(&url, opts(pool_size))
            .expect("open PostgreSQL store")
            .with_keys(test_keys());
        assert_eq!(store.backend(), Backend::Postgres);
        TestDb {
            store: Some(store),
            raw: Raw::Postgres {
                url,
                admin_url,
                db_name,
            },
        }
    }

    /// Runs one SQL statement on a connection of its own, outside the store (the tamperer).
    fn exec_raw(&self, sql: &str) -> usize {
        match &self.raw {
            Raw::Sqlite { path, .. } => {
                let mut c =
                    SqliteConnection::establish(&path.to_string_lossy()).expect("raw sqlite");
                diesel::sql_query(sql).execute(&mut c).expect(sql)
            }
            Raw::Postgres { url, .. } => {
                let mut c = PgConnection::establish(url).expect("raw pg");
                diesel::sql_query(sql).execute(&mut c).expect(sql)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.store.take());
        if let Raw::Postgres {
            admin_url, db_name, ..
        } = &self.raw
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            // Best effort.
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

/// Generates `sqlite::$name` and `postgres::$name` from `fn $name(&TestDb)`; an optional
/// `pool = N` sets the pool size.
macro_rules! both {
    ($($name:ident $(pool = $pool:literal)?),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let db = super::TestDb::sqlite(both!(@pool $($pool)?));
                    super::$name(&db);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let db = super::TestDb::postgres(both!(@pool $($pool)?));
                    super::$name(&db);
                }
            )*
        }
    };
    (@pool $pool:literal) => { $pool };
    (@pool) => { 4 };
}

both!(
    audit_search_filters_and_pages,
    user_delete_takes_everything_of_theirs,
    sealed_rows_edited_behind_the_store_are_absent_and_reported,
    sealed_rows_need_the_keys,
    sealed_oauth_and_delegation_rows_edited_behind_the_store_are_refused,
    sealing_an_old_database_happens_once,
    online_otp_single_use,
    login_lockout,
    login_lockout_concurrent pool = 16,
    factor_lockout_concurrent pool = 16,
    oauth_clients_and_requests,
    oauth_codes_single_use pool = 8,
    client_tokens_have_no_user,
    client_delegations,
    token_families_and_user_revocation,
    user_disable_and_row_read,
    users,
    credentials,
    factors,
    otp_anti_replay,
    factor_verifier_replaced_only_if_unchanged,
    tokens,
    sad_consume_counts,
    sad_expired_and_revoked,
    sad_hash_multiset,
    sad_concurrent_consume pool = 16,
    sad_concurrent_consume_hashes pool = 16,
    audit_concurrent_append_and_verify pool = 8,
    audit_tamper_edit,
    audit_tamper_delete_middle,
    audit_tamper_swap,
    audit_tamper_delete_last,
    audit_tamper_forged_beyond_head,
    audit_rewritten_with_plain_sha256,
    audit_rewritten_with_a_wrong_key,
    audit_switch_point_moved,
    audit_tail_deleted_head_fixed_up,
    audit_rolled_back_and_written_again,
    audit_seal_file_edited,
    audit_seals_of_an_intact_log,
    audit_log_from_before_keyed_links,
    audit_switch_reset_after_the_upgrade,
    audit_batch,
    write_rolls_back_on_err,
    atomic_methods_inside_write,
    purge_in_batches,
    grouped_concurrent_consume pool = 16,
    grouped_failed_job_is_undone_alone pool = 16,
    grouped_async_jobs_queued_behind_a_writer_commit_together pool = 16,
    grouped_async_jobs_of_a_failed_batch_all_fail,
    staged_jobs_say_what_ran_then_whether_it_is_durable,
    declared_spends_of_one_batch_see_each_other,
    a_declared_spend_and_a_revoke_in_one_batch_leave_an_intact_row,
    a_declared_spend_of_an_edited_sad_is_refused_and_reported,
    a_declared_spend_without_records_is_kept,
    declared_activations_of_one_batch_see_each_other,
    a_failing_declared_activation_is_undone_alone,
    a_declared_activation_of_an_edited_factor_is_refused_and_reported,
    timestamps_round_trip,
    live_counts_are_exactly_the_usable_rows,
    grouped_inside_a_write_is_refused,
);

// ---------------------------------------------------------------------------------------------
// fixtures

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn new_user(store: &Store, name: &str) -> User {
    store
        .write(|c| {
            c.create_user(&NewUser {
                name: name.into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                role: Role::Signer,
            })
        })
        .expect("create user")
}

fn new_credential_for(user: &User, scal: Scal) -> NewCredential {
    NewCredential {
        id: CredentialId::new(),
        user_id: user.id,
        key_id: "a1b2c3".into(),
        key_spec: "ec-p256".into(),
        cert_chain: vec![],
        cert_serial: None,
        scal,
        multisign: 5,
        status: CredentialStatus::Enabled,
        auth_mode: AuthMode::Explicit,
        description: Some("test key".into()),
    }
}

fn new_credential(store: &Store, user: &User, scal: Scal) -> Credential {
    let new = new_credential_for(user, scal);
    store
        .write(|c| c.create_credential(&new))
        .expect("create credential")
}

fn sad_for(
    store: &Store,
    cred: &Credential,
    remaining: i32,
    ttl: chrono::Duration,
    hashes: Option<Vec<Vec<u8>>>,
) -> Vec<u8> {
    let sad_hash = secret_hash(uuid::Uuid::new_v4().as_bytes()).to_vec();
    let new = NewSad {
        sad_hash: sad_hash.clone(),
        user_id: cred.user_id,
        credential_id: cred.id,
        token_hash: secret_hash(b"access token").to_vec(),
        remaining,
        expires_at: utc_now() + ttl,
        hashes,
        authorized_at: utc_now() - chrono::Duration::seconds(90),
    };
    store.write(|c| c.insert_sad(&new)).expect("insert sad");
    sad_hash
}

/// The actors of the audit records, in chain order.
fn audit_actors(store: &Store) -> Vec<String> {
    store
        .read(|c| c.audit_records(0, 100))
        .expect("audit records")
        .into_iter()
        .map(|r| r.actor)
        .collect()
}

fn remaining(store: &Store, sad: &[u8]) -> i32 {
    store
        .read(|c| c.sad(sad))
        .expect("read sad")
        .expect("sad exists")
        .remaining
}

// ---------------------------------------------------------------------------------------------
// users, credentials, factors, tokens

fn users(db: &TestDb) {
    let bob = new_user(db, "bob");
    let alice = new_user(db, "alice");
    assert_eq!(bob.role, Role::Signer);
    assert_eq!((bob.failed_logins, bob.locked), (0, false));

    let dup = db.write(|c| {
        c.create_user(&NewUser {
            name: "bob".into(),
            password_hash: "x".into(),
            role: Role::Operator,
        })
    });
    assert!(matches!(dup, Err(StorageError::Conflict(_))), "{dup:?}");

    let found = db.read(|c| c.user_by_name("bob")).unwrap();
    assert_eq!(found.as_ref(), Some(&bob));
    assert_eq!(db.read(|c| c.user(&alice.id)).unwrap(), Some(alice.clone()));
    assert_eq!(db.read(|c| c.user_by_name("carol")).unwrap(), None);
    assert_eq!(db.read(|c| c.user(&UserId::new())).unwrap(), None);

    let names: Vec<String> = db
        .read(|c| c.list_users())
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    db.write(|c| c.set_user_lock(&bob.id, 5, true)).unwrap();
    let bob2 = db.read(|c| c.user(&bob.id)).unwrap().unwrap();
    assert_eq!((bob2.failed_logins, bob2.locked), (5, true));
    db.write(|c| c.set_user_password(&bob.id, "$argon2id$new"))
        .unwrap();
    assert_eq!(
        db.read(|c| c.user(&bob.id)).unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    let missing = db.write(|c| c.set_user_lock(&UserId::new(), 0, false));
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );
    // Debug never shows the password hash.
    assert!(!format!("{bob2:?}").contains("argon2"));
}

fn credentials(db: &TestDb) {
    let alice = new_user(db, "alice");
    let bob = new_user(db, "bob");
    let mut ids: Vec<CredentialId> = (0..5)
        .map(|_| new_credential(db, &alice, Scal::One).id)
        .collect();
    let bobs = new_credential(db, &bob, Scal::Two);
    ids.sort_by_key(|id| id.to_string());

    let first = db.read(|c| c.credential(&ids[0])).unwrap().unwrap();
    assert_eq!(first.user_id, alice.id);
    assert_eq!(first.scal, Scal::One);
    assert_eq!(first.multisign, 5);
    assert_eq!(first.status, CredentialStatus::Enabled);
    assert_eq!(first.auth_mode, AuthMode::Explicit);
    assert_eq!(first.description.as_deref(), Some("test key"));
    assert_eq!(first.cert_chain_der().unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(
        db.read(|c| c.credential(&CredentialId::new())).unwrap(),
        None
    );

    // Paging by id.
    let mut paged = Vec::new();
    let mut after: Option<CredentialId> = None;
    loop {
        let page = db
            .read(|c| c.credentials_of_user(&alice.id, after.as_ref(), 2))
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|c| c.id);
        paged.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(paged, ids);
    assert!(
        db.read(|c| c.credentials_of_user(&bob.id, None, 10))
            .unwrap()
            .len()
            == 1
    );

    let all = db.read(|c| c.list_credentials(None)).unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].0.name, "alice");
    assert_eq!(all[5].0.name, "bob");
    assert_eq!(all[5].1.id, bobs.id);
    let only_bob = db.read(|c| c.list_credentials(Some("bob"))).unwrap();
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0].1, bobs);

    // Chain round trip: arbitrary bytes, signer first.
    let chain = vec![
        vec![0x30, 0x82, 0x00, 0xff, 0x00],
        (0..=255).collect::<Vec<u8>>(),
    ];
    db.write(|c| c.set_certificate_chain(&ids[1], &chain, Some("0a1b")))
        .unwrap();
    let cred = db.read(|c| c.credential(&ids[1])).unwrap().unwrap();
    assert_eq!(cred.cert_chain_der().unwrap(), chain);
    assert_eq!(cred.cert_serial.as_deref(), Some("0a1b"));
    db.write(|c| c.set_certificate_chain(&ids[1], &[], None))
        .unwrap();
    let cred = db.read(|c| c.credential(&ids[1])).unwrap().unwrap();
    assert!(cred.cert_chain_der().unwrap().is_empty());
    assert_eq!(cred.cert_serial, None);

    db.write(|c| c.set_credential_status(&ids[2], CredentialStatus::Disabled))
        .unwrap();
    assert_eq!(
        db.read(|c| c.credential(&ids[2])).unwrap().unwrap().status,
        CredentialStatus::Disabled
    );

    // Delete takes factors and SADs along.
    db.write(|c| c.set_factor(&ids[3], FactorKind::Pin, "$argon2id$pin"))
        .unwrap();
    let cred3 = db.read(|c| c.credential(&ids[3])).unwrap().unwrap();
    let sad = sad_for(db, &cred3, 1, secs(60), None);
    db.write(|c| c.delete_credential(&ids[3])).unwrap();
    assert_eq!(db.read(|c| c.credential(&ids[3])).unwrap(), None);
    assert_eq!(
        db.read(|c| c.factor(&ids[3], FactorKind::Pin)).unwrap(),
        None
    );
    assert_eq!(db.read(|c| c.sad(&sad)).unwrap(), None);
    let again = db.write(|c| c.delete_credential(&ids[3]));
    assert!(matches!(again, Err(StorageError::NotFound)), "{again:?}");

    // Unknown owner, duplicate id.
    let ghost = User {
        id: UserId::new(),
        ..alice.clone()
    };
    let orphan = new_credential_for(&ghost, Scal::One);
    let r = db.write(|c| c.create_credential(&orphan));
    assert!(matches!(r, Err(StorageError::NotFound)), "{r:?}");
    let mut dup = new_credential_for(&alice, Scal::One);
    dup.id = ids[0];
    let r = db.write(|c| c.create_credential(&dup));
    assert!(matches!(r, Err(StorageError::Conflict(_))), "{r:?}");
}

fn factors(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    assert_eq!(
        db.read(|c| c.factor(&cred.id, FactorKind::Pin)).unwrap(),
        None
    );

    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$one"))
        .unwrap();
    let f = db
        .read(|c| c.factor(&cred.id, FactorKind::Pin))
        .unwrap()
        .unwrap();
    assert_eq!(f.verifier, "$argon2id$one");
    assert_eq!((f.failures, f.locked, f.last_otp_step), (0, false, None));
    assert!(
        !format!("{f:?}").contains("argon2"),
        "Debug redacts the verifier"
    );

    // Slots are reserved up to the limit, then refused; the lock is set once, at the limit.
    let pin = Counter::Factor(cred.id, FactorKind::Pin);
    let attempts = |db: &TestDb| db.read(|c| c.attempts(pin)).unwrap().unwrap();
    for expected in 1..=3 {
        assert!(db.write(|c| c.reserve_attempt(pin, 3)).unwrap());
        assert_eq!(attempts(db), (expected, false));
    }
    assert!(
        !db.write(|c| c.reserve_attempt(pin, 3)).unwrap(),
        "all slots taken"
    );
    assert_eq!(attempts(db), (3, false));
    assert!(db.write(|c| c.lock_at_limit(pin, 3)).unwrap());
    assert!(!db.write(|c| c.lock_at_limit(pin, 3)).unwrap(), "set once");
    assert_eq!(attempts(db), (3, true));
    assert!(
        !db.write(|c| c.clear_attempts(pin)).unwrap(),
        "locked: no clearing"
    );
    assert_eq!(attempts(db), (3, true));

    // Unlock resets the counter; below the limit nothing locks; a release gives one slot back.
    db.write(|c| c.set_factor_lock(&cred.id, FactorKind::Pin, false))
        .unwrap();
    assert_eq!(attempts(db), (0, false));
    assert!(db.write(|c| c.reserve_attempt(pin, 3)).unwrap());
    assert!(db.write(|c| c.reserve_attempt(pin, 3)).unwrap());
    assert!(!db.write(|c| c.lock_at_limit(pin, 3)).unwrap());
    db.write(|c| c.release_attempt(pin)).unwrap();
    assert_eq!(attempts(db), (1, false));
    assert!(db.write(|c| c.clear_attempts(pin)).unwrap());
    assert_eq!(attempts(db), (0, false));
    db.write(|c| c.release_attempt(pin)).unwrap();
    assert_eq!(attempts(db), (0, false), "never below 0");

    // Upsert replaces the verifier and clears counter and lock.
    db.write(|c| c.reserve_attempt(pin, 3)).unwrap();
    db.write(|c| c.set_factor_lock(&cred.id, FactorKind::Pin, true))
        .unwrap();
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$two"))
        .unwrap();
    let f = db
        .read(|c| c.factor(&cred.id, FactorKind::Pin))
        .unwrap()
        .unwrap();
    assert_eq!(
        (f.verifier.as_str(), f.failures, f.locked),
        ("$argon2id$two", 0, false)
    );

    // The OTP factor is separate.
    db.write(|c| c.set_factor(&cred.id, FactorKind::Otp, "JBSWY3DPEHPK3PXP"))
        .unwrap();
    let otp = db
        .read(|c| c.factor(&cred.id, FactorKind::Otp))
        .unwrap()
        .unwrap();
    assert_eq!(otp.kind, FactorKind::Otp);
    assert_eq!(otp.failures, 0);

    // A limit below 1 counts as 1; an unknown factor has no slot to reserve, clear or read.
    let otp_counter = Counter::Factor(cred.id, FactorKind::Otp);
    assert!(db.write(|c| c.reserve_attempt(otp_counter, 0)).unwrap());
    assert!(!db.write(|c| c.reserve_attempt(otp_counter, 0)).unwrap());
    assert!(db.write(|c| c.lock_at_limit(otp_counter, -2)).unwrap());
    let other = Counter::Factor(new_credential(db, &alice, Scal::One).id, FactorKind::Pin);
    assert!(!db.write(|c| c.reserve_attempt(other, 3)).unwrap());
    assert!(!db.write(|c| c.clear_attempts(other)).unwrap());
    assert_eq!(db.read(|c| c.attempts(other)).unwrap(), None);
    let r = db.write(|c| c.set_factor(&CredentialId::new(), FactorKind::Pin, "x"));
    assert!(matches!(r, Err(StorageError::NotFound)), "{r:?}");
}

fn otp_anti_replay(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    // No OTP factor yet: nothing to advance.
    assert!(!db.write(|c| c.advance_otp_step(&cred.id, 10)).unwrap());
    db.write(|c| c.set_factor(&cred.id, FactorKind::Otp, "secret"))
        .unwrap();
    assert!(db.write(|c| c.advance_otp_step(&cred.id, 1_000)).unwrap());
    assert!(
        !db.write(|c| c.advance_otp_step(&cred.id, 1_000)).unwrap(),
        "same step twice"
    );
    assert!(
        !db.write(|c| c.advance_otp_step(&cred.id, 999)).unwrap(),
        "older step"
    );
    assert!(db.read(|c| c.advance_otp_step(&cred.id, 1_001)).unwrap());
    // Re-setting the secret keeps the anti-replay step.
    db.write(|c| c.set_factor(&cred.id, FactorKind::Otp, "secret2"))
        .unwrap();
    let f = db
        .read(|c| c.factor(&cred.id, FactorKind::Otp))
        .unwrap()
        .unwrap();
    assert_eq!(f.last_otp_step, Some(1_001));
    assert!(!db.write(|c| c.advance_otp_step(&cred.id, 1_001)).unwrap());
}

fn factor_verifier_replaced_only_if_unchanged(db: &TestDb) {
    let alice = new_user(db, "alice");
    let a = new_credential(db, &alice, Scal::Two);
    let b = new_credential(db, &alice, Scal::One);
    db.write(|c| c.set_factor(&a.id, FactorKind::Otp, "JBSWY3DPEHPK3PXP"))
        .unwrap();
    db.write(|c| c.set_factor(&b.id, FactorKind::Otp, "online"))
        .unwrap();
    db.write(|c| c.set_factor(&b.id, FactorKind::Pin, "$argon2id$pin"))
        .unwrap();
    let mut ids = [a.id, b.id];
    ids.sort_by_key(ToString::to_string);
    let otps = db.read(|c| c.factors_of_kind(FactorKind::Otp)).unwrap();
    assert_eq!(
        otps.iter().map(|f| f.credential_id).collect::<Vec<_>>(),
        ids,
        "every OTP factor, in credential order, no PIN"
    );
    // counters, lock and anti-replay step survive the replacement
    let otp = Counter::Factor(a.id, FactorKind::Otp);
    for _ in 0..2 {
        assert!(db.write(|c| c.reserve_attempt(otp, 2)).unwrap());
    }
    assert!(db.write(|c| c.lock_at_limit(otp, 2)).unwrap());
    assert!(db.write(|c| c.advance_otp_step(&a.id, 77)).unwrap());
    assert!(
        !db.write(|c| c.replace_factor_verifier(&a.id, FactorKind::Otp, "stale", "hsm-totp:x"))
            .unwrap(),
        "not replaced: the verifier is not the one expected"
    );
    assert!(
        db.write(|c| c.replace_factor_verifier(
            &a.id,
            FactorKind::Otp,
            "JBSWY3DPEHPK3PXP",
            "hsm-totp:x"
        ))
        .unwrap()
    );
    let f = db
        .read(|c| c.factor(&a.id, FactorKind::Otp))
        .unwrap()
        .unwrap();
    assert_eq!(
        (f.verifier.as_str(), f.failures, f.locked, f.last_otp_step),
        ("hsm-totp:x", 2, true, Some(77))
    );
    // the other credential and the PIN are untouched; a missing factor is not replaced
    let other = db
        .read(|c| c.factor(&b.id, FactorKind::Otp))
        .unwrap()
        .unwrap();
    assert_eq!(other.verifier, "online");
    assert!(
        !db.write(|c| c.replace_factor_verifier(
            &CredentialId::new(),
            FactorKind::Otp,
            "JBSWY3DPEHPK3PXP",
            "x"
        ))
        .unwrap()
    );
}

fn tokens(db: &TestDb) {
    let alice = new_user(db, "alice");
    let now = utc_now();
    let refresh = NewToken {
        token_hash: secret_hash(b"refresh-1").to_vec(),
        kind: TokenKind::Refresh,
        user_id: Some(alice.id),
        client_id: Some("client-a".into()),
        scope: "service".into(),
        expires_at: now + secs(3600),
        parent_hash: None,
        family: None,
    };
    let access = |name: &[u8]| NewToken {
        token_hash: secret_hash(name).to_vec(),
        kind: TokenKind::Access,
        user_id: Some(alice.id),
        client_id: None,
        scope: "service credential".into(),
        expires_at: now + secs(300),
        parent_hash: Some(refresh.token_hash.clone()),
        family: None,
    };
    db.write(|c| {
        c.insert_token(&refresh)?;
        c.insert_token(&access(b"access-1"))?;
        c.insert_token(&access(b"access-2"))
    })
    .unwrap();

    let t = db.read(|c| c.token(&refresh.token_hash)).unwrap().unwrap();
    assert_eq!(t.kind, TokenKind::Refresh);
    assert_eq!(t.user_id, Some(alice.id));
    assert_eq!(t.client_id.as_deref(), Some("client-a"));
    assert_eq!(t.scope, "service");
    assert_eq!(t.expires_at, truncate_to_micros(now + secs(3600)));
    assert_eq!(t.parent_hash, None);
    assert!(t.is_active(utc_now()));
    let a1 = db
        .read(|c| c.token(&secret_hash(b"access-1")))
        .unwrap()
        .unwrap();
    assert_eq!(
        a1.parent_hash.as_deref(),
        Some(refresh.token_hash.as_slice())
    );
    assert_eq!(a1.client_id, None);
    assert_eq!(db.read(|c| c.token(&secret_hash(b"nope"))).unwrap(), None);

    let dup = db.write(|c| c.insert_token(&refresh));
    assert!(matches!(dup, Err(StorageError::Conflict(_))), "{dup:?}");

    assert!(
        db.write(|c| c.revoke_token(&secret_hash(b"access-1")))
            .unwrap()
    );
    assert!(
        !db.write(|c| c.revoke_token(&secret_hash(b"access-1")))
            .unwrap()
    );
    assert!(!db.write(|c| c.revoke_token(&secret_hash(b"nope"))).unwrap());
    let a1 = db
        .read(|c| c.token(&secret_hash(b"access-1")))
        .unwrap()
        .unwrap();
    assert!(a1.revoked && !a1.is_active(utc_now()));

    // Only access-2 was still active among the children.
    assert_eq!(
        db.write(|c| c.revoke_tokens_with_parent(&refresh.token_hash))
            .unwrap(),
        1
    );
    assert!(
        db.read(|c| c.token(&secret_hash(b"access-2")))
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !db.read(|c| c.token(&refresh.token_hash))
            .unwrap()
            .unwrap()
            .revoked
    );

    // Purge removes what expired.
    let purged = db.purge_expired_before(now + secs(400), 1_000).unwrap();
    assert_eq!((purged.tokens, purged.total()), (2, 2));
    assert!(db.read(|c| c.token(&refresh.token_hash)).unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// SADs

fn sad_consume_counts(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let sad = sad_for(db, &cred, 5, secs(300), None);
    let consume = |n: i32| db.write(|c| c.consume_sad(&sad, n, utc_now())).unwrap();

    let stored = db.read(|c| c.sad(&sad)).unwrap().unwrap();
    assert_eq!(stored.credential_id, cred.id);
    assert_eq!(stored.user_id, alice.id);
    assert_eq!(stored.hashes, None);
    assert!(stored.is_usable(utc_now()));
    // the transaction's authorization time is kept as given (sad_for: 90 s before creation)
    assert!(
        stored.authorized_at < stored.created_at - secs(80),
        "{stored:?}"
    );

    assert!(consume(2));
    assert!(consume(2));
    assert!(!consume(2), "only 1 left");
    assert_eq!(remaining(db, &sad), 1);
    assert!(!consume(0));
    assert!(!consume(-3), "a negative count must not add signatures");
    assert_eq!(remaining(db, &sad), 1);
    assert!(consume(1));
    assert!(!consume(1), "exhausted");
    assert_eq!(remaining(db, &sad), 0);

    // Compensation gives the count back.
    assert!(db.write(|c| c.restore_sad(&sad, 2, &[])).unwrap());
    assert_eq!(remaining(db, &sad), 2);
    assert!(consume(2));
    assert!(
        !db.write(|c| c.restore_sad(&secret_hash(b"none"), 1, &[]))
            .unwrap()
    );
    assert!(
        !db.write(|c| c.consume_sad(&secret_hash(b"none"), 1, utc_now()))
            .unwrap()
    );

    // Duplicate SAD hash.
    let dup = NewSad {
        sad_hash: sad.clone(),
        user_id: alice.id,
        credential_id: cred.id,
        token_hash: vec![1],
        remaining: 1,
        expires_at: utc_now(),
        hashes: None,
        authorized_at: utc_now(),
    };
    let r = db.write(|c| c.insert_sad(&dup));
    assert!(matches!(r, Err(StorageError::Conflict(_))), "{r:?}");
}

/// The live counts (`/metrics`) count exactly the rows `Sad::is_usable` and `Token::is_active`
/// accept: each rule's SQL form and its Rust form agree on each way a row stops being usable.
fn live_counts_are_exactly_the_usable_rows(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let now = utc_now();
    let usable = sad_for(db, &cred, 3, secs(300), None);
    let last_one = sad_for(db, &cred, 1, secs(300), None);
    let expired = sad_for(db, &cred, 3, secs(-60), None);
    let spent = sad_for(db, &cred, 1, secs(300), None);
    assert!(db.write(|c| c.consume_sad(&spent, 1, now)).unwrap());
    let revoked = sad_for(db, &cred, 3, secs(300), None);
    assert!(db.write(|c| c.revoke_sad(&revoked)).unwrap());
    let scal2 = sad_for(db, &cred, 1, secs(300), Some(vec![b"h".to_vec()]));

    let usable_now: Vec<bool> = [&usable, &last_one, &expired, &spent, &revoked, &scal2]
        .iter()
        .map(|h| db.read(|c| c.sad(h)).unwrap().unwrap().is_usable(now))
        .collect();
    assert_eq!(usable_now, [true, true, false, false, false, true]);
    assert_eq!(db.read(|c| c.live_counts(now)).unwrap().sads, 3);
    // at a later `now` the ones that expire in between leave both counts alike
    let later = now + secs(3600);
    assert_eq!(db.read(|c| c.live_counts(later)).unwrap().sads, 0);
    assert!(
        !db.read(|c| c.sad(&usable))
            .unwrap()
            .unwrap()
            .is_usable(later)
    );
    // and at an earlier one the expired SAD was still live
    let earlier = now - secs(120);
    assert!(
        db.read(|c| c.sad(&expired))
            .unwrap()
            .unwrap()
            .is_usable(earlier)
    );
    assert_eq!(db.read(|c| c.live_counts(earlier)).unwrap().sads, 4);

    let token = |name: &[u8], kind: TokenKind, ttl: i64| {
        let new = NewToken {
            token_hash: secret_hash(name).to_vec(),
            kind,
            user_id: Some(alice.id),
            client_id: None,
            scope: "service".into(),
            expires_at: now + secs(ttl),
            parent_hash: None,
            family: None,
        };
        db.write(|c| c.insert_token(&new)).unwrap();
        new.token_hash
    };
    let active = token(b"live-access", TokenKind::Access, 300);
    let refresh = token(b"live-refresh", TokenKind::Refresh, 300);
    let expired = token(b"expired-access", TokenKind::Access, -60);
    let revoked = token(b"revoked-access", TokenKind::Access, 300);
    assert!(db.write(|c| c.revoke_token(&revoked)).unwrap());
    let active_now: Vec<bool> = [&active, &refresh, &expired, &revoked]
        .iter()
        .map(|h| db.read(|c| c.token(h)).unwrap().unwrap().is_active(now))
        .collect();
    assert_eq!(active_now, [true, true, false, false]);
    let counts = db.read(|c| c.live_counts(now)).unwrap();
    assert_eq!((counts.access_tokens, counts.refresh_tokens), (1, 1));
    let counts = db.read(|c| c.live_counts(earlier)).unwrap();
    assert_eq!((counts.access_tokens, counts.refresh_tokens), (2, 1));
    assert!(
        db.read(|c| c.token(&expired))
            .unwrap()
            .unwrap()
            .is_active(earlier)
    );
}

fn sad_expired_and_revoked(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);

    let expired = sad_for(db, &cred, 3, secs(-1), None);
    assert!(!db.write(|c| c.consume_sad(&expired, 1, utc_now())).unwrap());
    assert_eq!(remaining(db, &expired), 3);
    // Still valid for a caller whose `now` is before the expiry.
    let before = utc_now() - secs(10);
    assert!(db.write(|c| c.consume_sad(&expired, 1, before)).unwrap());

    let sad = sad_for(db, &cred, 3, secs(300), None);
    assert!(db.write(|c| c.revoke_sad(&sad)).unwrap());
    assert!(!db.write(|c| c.revoke_sad(&sad)).unwrap());
    assert!(!db.write(|c| c.consume_sad(&sad, 1, utc_now())).unwrap());
    assert_eq!(remaining(db, &sad), 3);
    assert!(
        !db.read(|c| c.sad(&sad))
            .unwrap()
            .unwrap()
            .is_usable(utc_now())
    );

    // Hash-bound SADs are refused by the count-only consume, and honour expiry/revocation.
    let h = vec![b"h1".to_vec()];
    let scal2 = sad_for(db, &cred, 1, secs(300), Some(h.clone()));
    assert!(!db.write(|c| c.consume_sad(&scal2, 1, utc_now())).unwrap());
    let scal2_expired = sad_for(db, &cred, 1, secs(-1), Some(h.clone()));
    assert!(
        !db.write(|c| c.consume_sad_hashes(&scal2_expired, &h, utc_now()))
            .unwrap()
    );
    assert!(db.write(|c| c.revoke_sad(&scal2)).unwrap());
    assert!(
        !db.write(|c| c.consume_sad_hashes(&scal2, &h, utc_now()))
            .unwrap()
    );
}

fn sad_hash_multiset(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    let a = secret_hash(b"doc a").to_vec();
    let b = secret_hash(b"doc b").to_vec();
    let c_ = secret_hash(b"doc c").to_vec();
    let sad = sad_for(
        db,
        &cred,
        3,
        secs(300),
        Some(vec![a.clone(), b.clone(), a.clone()]),
    );
    let spend = |hs: &[Vec<u8>]| {
        db.write(|c| c.consume_sad_hashes(&sad, hs, utc_now()))
            .unwrap()
    };

    let stored = db.read(|c| c.sad(&sad)).unwrap().unwrap();
    assert_eq!(stored.hashes, Some(vec![a.clone(), b.clone(), a.clone()]));

    assert!(!spend(std::slice::from_ref(&c_)), "foreign hash");
    assert!(!spend(&[]), "nothing to spend");
    assert!(!spend(&[b.clone(), b.clone()]), "b is there once");
    assert_eq!(remaining(db, &sad), 3, "a refused spend changes nothing");
    assert!(spend(std::slice::from_ref(&a)));
    assert!(
        spend(&[b.clone(), a.clone()]),
        "the duplicate a authorises a second signature"
    );
    assert!(!spend(std::slice::from_ref(&a)), "a spent twice already");
    assert!(!spend(std::slice::from_ref(&b)), "b spent");
    let stored = db.read(|c| c.sad(&sad)).unwrap().unwrap();
    assert_eq!((stored.remaining, stored.hashes), (0, Some(vec![])));

    // Compensation returns count and hashes.
    assert!(
        db.write(|c| c.restore_sad(&sad, 1, std::slice::from_ref(&b)))
            .unwrap()
    );
    assert_eq!(remaining(db, &sad), 1);
    assert!(spend(std::slice::from_ref(&b)));
    assert!(!spend(std::slice::from_ref(&b)));

    // A duplicate pair authorises exactly two signatures of the same hash.
    let pair = sad_for(db, &cred, 2, secs(300), Some(vec![c_.clone(), c_.clone()]));
    assert!(
        db.write(|c| c.consume_sad_hashes(&pair, &[c_.clone(), c_.clone()], utc_now()))
            .unwrap()
    );
    assert!(
        !db.write(|c| c.consume_sad_hashes(&pair, std::slice::from_ref(&c_), utc_now()))
            .unwrap()
    );

    // More hashes than signatures left is refused even if they are listed.
    let tight = sad_for(db, &cred, 1, secs(300), Some(vec![a.clone(), b.clone()]));
    assert!(
        !db.write(|c| c.consume_sad_hashes(&tight, &[a.clone(), b.clone()], utc_now()))
            .unwrap()
    );
    assert!(
        db.read(|c| c.consume_sad_hashes(&tight, std::slice::from_ref(&b), utc_now()))
            .unwrap()
    );
}

/// 16 threads, each on its own pooled connection, race for the last signature.
fn sad_concurrent_consume(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    for round in 0..3 {
        let sad = sad_for(db, &cred, 1, secs(300), None);
        let barrier = Arc::new(Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let store: Store = (**db).clone();
                let sad = sad.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    // Wait outside the transaction: on SQLite a waiting BEGIN IMMEDIATE holder
                    // would block the others.
                    barrier.wait();
                    // Half in an explicit write transaction, half as a bare statement.
                    let run = |c: &mut Conn<'_>| c.consume_sad(&sad, 1, utc_now());
                    if (i + round) % 2 == 0 {
                        store.write(run)
                    } else {
                        store.read(run)
                    }
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("consume"))
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1, "round {round}");
        assert_eq!(remaining(db, &sad), 0);
    }
}

fn sad_concurrent_consume_hashes(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    let h = secret_hash(b"the one document").to_vec();
    let sad = sad_for(db, &cred, 2, secs(300), Some(vec![h.clone()]));
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let store: Store = (**db).clone();
            let (sad, h, barrier) = (sad.clone(), h.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                store.write(|c| c.consume_sad_hashes(&sad, &[h], utc_now()))
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("consume"))
        .filter(|won| *won)
        .count();
    assert_eq!(wins, 1);
    assert_eq!(remaining(db, &sad), 1);
}

// ---------------------------------------------------------------------------------------------
// audit

fn event(i: usize) -> NewAuditEvent {
    NewAuditEvent::new(
        AuditEvent::SignatureSignHash,
        format!("user{}", i % 7),
        "cred-1",
        "ok",
    )
    .with_detail(json!({ "i": i, "hashes": 1, "note": "ünïcödé \"quoted\"" }))
}

fn fill_chain(db: &TestDb, n: usize) {
    db.write(|c| {
        for i in 0..n {
            c.append_audit(&event(i))?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: n as u64 }
    );
}

fn assert_broken_at(db: &TestDb, expected: i64) {
    match db.verify_audit_chain().unwrap() {
        AuditVerdict::Broken { seq, reason } => {
            assert_eq!(seq, expected, "reason: {reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Broken at {expected}, got {other:?}"),
    }
}

fn audit_concurrent_append_and_verify(db: &TestDb) {
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 0 }
    );
    let started = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store: Store = (**db).clone();
            thread::spawn(move || {
                for i in 0..250 {
                    store
                        .write(|c| c.append_audit(&event(t * 1000 + i)))
                        .expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("appender");
    }
    let appended = started.elapsed();

    let started = Instant::now();
    let verdict = db.verify_audit_chain().unwrap();
    let verified = started.elapsed();
    eprintln!(
        "[{:?}] 1000 audit appends from 4 threads: {appended:?}; verify_audit_chain: {verified:?}",
        db.backend()
    );
    assert_eq!(verdict, AuditVerdict::Intact { records: 1000 });

    let records = db.read(|c| c.audit_records(0, 2000)).unwrap();
    assert_eq!(records.len(), 1000);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.hash, r.compute_hash(&test_keys()));
    }
    assert_eq!(records[0].prev_hash, ZERO_HASH);
    let page = db.read(|c| c.audit_records(990, 5)).unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [991, 992, 993, 994, 995]
    );
    let head = db.read(|c| c.audit_head()).unwrap();
    assert_eq!(head, (1000, records[999].hash.clone()));
    // The detail is stored as compact JSON, exactly as hashed.
    let detail: serde_json::Value = serde_json::from_str(&records[0].detail).unwrap();
    assert_eq!(detail["note"], "ünïcödé \"quoted\"");
}

fn audit_tamper_edit(db: &TestDb) {
    fill_chain(db, 30);
    assert_eq!(
        db.exec_raw("UPDATE audit_log SET outcome = 'denied' WHERE seq = 10"),
        1
    );
    assert_broken_at(db, 10);
    // A second, later break does not hide the first.
    db.exec_raw("DELETE FROM audit_log WHERE seq = 20");
    assert_broken_at(db, 10);
}

fn audit_tamper_delete_middle(db: &TestDb) {
    fill_chain(db, 30);
    assert_eq!(db.exec_raw("DELETE FROM audit_log WHERE seq = 20"), 1);
    assert_broken_at(db, 20);
}

fn audit_tamper_swap(db: &TestDb) {
    fill_chain(db, 30);
    // Swap the contents of records 15 and 16 (reordering).
    db.exec_raw("UPDATE audit_log SET seq = -1 WHERE seq = 15");
    db.exec_raw("UPDATE audit_log SET seq = 15 WHERE seq = 16");
    db.exec_raw("UPDATE audit_log SET seq = 16 WHERE seq = -1");
    assert_broken_at(db, 15);
}

fn audit_tamper_delete_last(db: &TestDb) {
    fill_chain(db, 30);
    assert_eq!(db.exec_raw("DELETE FROM audit_log WHERE seq = 30"), 1);
    assert_broken_at(db, 30);
}

fn audit_tamper_forged_beyond_head(db: &TestDb) {
    fill_chain(db, 5);
    // A record written past the head (copy of record 5 as 6, head untouched).
    db.exec_raw(
        "INSERT INTO audit_log (seq, at, event, actor, subject, outcome, detail, prev_hash, hash) \
         SELECT 6, at, event, actor, subject, outcome, detail, hash, hash FROM audit_log WHERE seq = 5",
    );
    assert_broken_at(db, 6);
}

// An insider has the database, not the token: the tests below do what they could do with SQL
// (and hashes of their own), then ask verify (issue 11; Part II 3.2.2.4, Part I 7.1.4.3).

fn all_records(db: &TestDb) -> Vec<AuditRecord> {
    db.read(|c| c.audit_records(0, 1_000_000)).unwrap()
}

/// Rewrites the records from `from` on as an insider would: each relinked to the one before it
/// and given `hash_of(record)`, then the head fixed up to the last one.
fn rewrite_chain(db: &TestDb, from: i64, hash_of: impl Fn(&AuditRecord) -> String) {
    let mut prev = ZERO_HASH.to_owned();
    for mut r in all_records(db) {
        if r.seq >= from {
            r.prev_hash = prev.clone();
            r.hash = hash_of(&r);
            db.exec_raw(&format!(
                "UPDATE audit_log SET prev_hash = '{}', hash = '{}' WHERE seq = {}",
                r.prev_hash, r.hash, r.seq
            ));
        }
        prev = r.hash;
    }
    db.exec_raw(&format!(
        "UPDATE audit_head SET hash = '{prev}' WHERE id = 1"
    ));
}

fn head_hash(db: &TestDb, seq: i64) -> String {
    all_records(db)
        .into_iter()
        .find(|r| r.seq == seq)
        .map(|r| r.hash)
        .unwrap()
}

fn audit_rewritten_with_plain_sha256(db: &TestDb) {
    fill_chain(db, 30);
    db.exec_raw("UPDATE audit_log SET outcome = 'denied' WHERE seq = 10");
    // Anyone can compute plain SHA-256 (the rule of records before keyed links).
    rewrite_chain(db, 10, AuditRecord::compute_plain_hash);
    assert_broken_at(db, 10);
}

fn audit_rewritten_with_a_wrong_key(db: &TestDb) {
    fill_chain(db, 30);
    db.exec_raw("UPDATE audit_log SET outcome = 'denied' WHERE seq = 10");
    let guessed = IntegrityKeys::new([7; 32], [9; 32]);
    rewrite_chain(db, 10, |r| r.compute_hash(&guessed));
    assert_broken_at(db, 10);
    // The same rewrite under the right key (which only the token gives) would pass: the check
    // is the key, not something else about the rewrite.
    rewrite_chain(db, 10, |r| r.compute_hash(&test_keys()));
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 30 }
    );
}

fn audit_switch_point_moved(db: &TestDb) {
    fill_chain(db, 30);
    db.exec_raw("UPDATE audit_log SET outcome = 'denied' WHERE seq = 10");
    // The whole log recomputed with plain SHA-256 and declared older than keyed links.
    rewrite_chain(db, 1, AuditRecord::compute_plain_hash);
    db.exec_raw("UPDATE audit_head SET keyed_from = 31 WHERE id = 1");
    // Unconfirmed: nothing before the switch point is authenticated.
    assert_broken_at(db, 1);
    // A MAC of one's own for it does not verify.
    let forged = hex_of(&IntegrityKeys::new([7; 32], [9; 32]).audit_mac(&[b"31"]));
    db.exec_raw(&format!(
        "UPDATE audit_head SET keyed_mac = '{forged}' WHERE id = 1"
    ));
    assert_broken_at(db, 1);
    // ... and the upgrade step refuses to bless a switch point whose MAC does not verify.
    assert!(matches!(
        db.confirm_audit_switch(&[], |_| event(0)).unwrap(),
        AuditUpgrade::Refused { seq: 1, .. }
    ));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A seal file in a temp dir of its own.
struct Seals {
    dir: tempfile::TempDir,
}

impl Seals {
    fn new() -> Seals {
        Seals {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("audit-seals.jsonl")
    }

    /// Appends a seal of the current head.
    fn seal(&self, db: &TestDb) -> AuditSeal {
        let seal = db.audit_seal().unwrap();
        SealLog::open(&self.path()).unwrap().append(&seal).unwrap();
        seal
    }

    fn verify(&self, db: &TestDb) -> AuditReport {
        db.verify_audit(&[self.path()]).unwrap()
    }
}

fn assert_seals_broken_at(report: &AuditReport, expected: i64) {
    match &report.verdict {
        AuditVerdict::Broken { seq, reason } => {
            assert_eq!(*seq, expected, "reason: {reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Broken at {expected}, got {other:?}"),
    }
}

fn audit_tail_deleted_head_fixed_up(db: &TestDb) {
    let seals = Seals::new();
    fill_chain(db, 20);
    seals.seal(db);
    fill_chain_more(db, 10);
    assert_eq!(seals.seal(db).seq, 30);
    // Delete the newest records and fix up the head: the chain alone cannot tell.
    db.exec_raw("DELETE FROM audit_log WHERE seq > 25");
    let h25 = head_hash(db, 25);
    db.exec_raw(&format!(
        "UPDATE audit_head SET seq = 25, hash = '{h25}' WHERE id = 1"
    ));
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 25 }
    );
    // The seal of record 30 can.
    let report = seals.verify(db);
    assert_seals_broken_at(&report, 26);
    assert_eq!(report.seals, 2);
}

/// Appends `n` more records.
fn fill_chain_more(db: &TestDb, n: usize) {
    db.write(|c| {
        for i in 0..n {
            c.append_audit(&event(1_000 + i))?;
        }
        Ok(())
    })
    .unwrap();
}

fn audit_rolled_back_and_written_again(db: &TestDb) {
    let seals = Seals::new();
    fill_chain(db, 5);
    seals.seal(db);
    fill_chain_more(db, 5);
    seals.seal(db);
    // Back to the state after record 5 (what restoring an older copy gives), then the server
    // goes on writing: a chain that verifies, but records 6.. are not the sealed ones.
    db.exec_raw("DELETE FROM audit_log WHERE seq > 5");
    let h5 = head_hash(db, 5);
    db.exec_raw(&format!(
        "UPDATE audit_head SET seq = 5, hash = '{h5}' WHERE id = 1"
    ));
    db.write(|c| {
        for i in 0..7 {
            c.append_audit(&event(5_000 + i))?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 12 }
    );
    // Record 10 is not the one sealed as 10.
    assert_seals_broken_at(&seals.verify(db), 10);
}

fn audit_seal_file_edited(db: &TestDb) {
    let seals = Seals::new();
    fill_chain(db, 5);
    let five = seals.seal(db);
    fill_chain_more(db, 5);
    seals.seal(db);
    assert_eq!(
        seals.verify(db).verdict,
        AuditVerdict::Intact { records: 10 }
    );
    let text = std::fs::read_to_string(seals.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    // The tail deleted and the head fixed up, and the seal of record 10 rewritten to name
    // record 5 (its seq and hash: what the seal file of a log of 5 records would say).
    db.exec_raw("DELETE FROM audit_log WHERE seq > 5");
    db.exec_raw(&format!(
        "UPDATE audit_head SET seq = 5, hash = '{}' WHERE id = 1",
        five.hash
    ));
    let ten: AuditSeal = serde_json::from_str(lines[1]).unwrap();
    let forged = AuditSeal {
        seq: 5,
        hash: five.hash.clone(),
        ..ten
    };
    std::fs::write(
        seals.path(),
        format!(
            "{}
{}
",
            lines[0],
            serde_json::to_string(&forged).unwrap()
        ),
    )
    .unwrap();
    // Its MAC does not verify (the seal names record 5).
    assert_seals_broken_at(&seals.verify(db), 5);
    // Nor does a line that is no seal at all.
    std::fs::write(
        seals.path(),
        format!(
            "{}
not a seal
",
            lines[0]
        ),
    )
    .unwrap();
    assert_seals_broken_at(&seals.verify(db), 0);
    // Without the seal of record 10, the shortened log passes: the seal file must be kept where
    // the insider cannot edit it.
    std::fs::write(
        seals.path(),
        format!(
            "{}
",
            lines[0]
        ),
    )
    .unwrap();
    assert_eq!(
        seals.verify(db).verdict,
        AuditVerdict::Intact { records: 5 }
    );
}

fn audit_seals_of_an_intact_log(db: &TestDb) {
    let seals = Seals::new();
    // An empty log has a seal too.
    assert_eq!(seals.seal(db).seq, 0);
    for _ in 0..3 {
        fill_chain_more(db, 4);
        seals.seal(db);
    }
    let report = seals.verify(db);
    assert_eq!(report.verdict, AuditVerdict::Intact { records: 12 });
    assert_eq!((report.seals, report.keyed_from), (4, 1));
    // More than one batch of seals is compared (SEAL_BATCH is 1,000): 1,500 seals of one head.
    let one = std::fs::read_to_string(seals.path())
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let many = format!("{one}\n").repeat(1_500);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(seals.path())
        .unwrap();
    std::io::Write::write_all(&mut f, many.as_bytes()).unwrap();
    // A line still being written (no newline yet) is left for next time.
    std::io::Write::write_all(&mut f, b"{\"seq\":").unwrap();
    let report = seals.verify(db);
    assert_eq!(report.verdict, AuditVerdict::Intact { records: 12 });
    assert_eq!(report.seals, 1_504);
    // A seal file that is not there is an error, not "no seals".
    let missing = seals.dir.path().join("missing.jsonl");
    assert!(matches!(
        db.verify_audit(&[missing]),
        Err(StorageError::SealFile { .. })
    ));
}

/// What a database begun by a version without keyed links looks like after the migration:
/// records 1..=n hashed with plain SHA-256, the switch point at n + 1, unconfirmed.
fn make_legacy(db: &TestDb, n: usize) {
    fill_chain(db, n);
    rewrite_chain(db, 1, AuditRecord::compute_plain_hash);
    db.exec_raw(&format!(
        "UPDATE audit_head SET keyed_from = {}, keyed_mac = NULL WHERE id = 1",
        n + 1
    ));
}

fn audit_log_from_before_keyed_links(db: &TestDb) {
    // The migration itself: undone and applied again on a log of 4 records, it puts the switch
    // point after the head.
    fill_chain(db, 4);
    db.exec_raw("DELETE FROM __diesel_schema_migrations WHERE version = '20261202000100'");
    db.exec_raw("ALTER TABLE audit_head DROP COLUMN keyed_mac");
    db.exec_raw("ALTER TABLE audit_head DROP COLUMN keyed_from");
    let reopened = reopen(db);
    assert_eq!(reopened.read(|c| c.audit_keyed_from()).unwrap(), 5);
    drop(reopened);

    let db = &fresh_like(db);
    make_legacy(db, 10);
    // Not confirmed yet: nothing is authenticated, verify says so at record 1.
    assert_broken_at(db, 1);
    // The server goes on writing, keyed.
    fill_chain_more(db, 5);
    assert_broken_at(db, 1);
    // A damaged plain part is not confirmed.
    db.exec_raw("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
    assert_eq!(
        db.confirm_audit_switch(&[], |_| event(0)).unwrap(),
        AuditUpgrade::Refused {
            seq: 3,
            reason: "the record's content does not match its hash (plain SHA-256: before the switch to keyed links)".into()
        }
    );
    db.exec_raw("UPDATE audit_log SET actor = 'user2' WHERE seq = 3");
    // The upgrade step: once, audited (record 16).
    let upgrade = NewAuditEvent::new(AuditEvent::AuditUpgrade, "operator", "audit-log", "success");
    assert_eq!(
        db.confirm_audit_switch(&[], |_| upgrade.clone()).unwrap(),
        AuditUpgrade::Confirmed {
            keyed_from: 11,
            now: true
        }
    );
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 16 }
    );
    assert_eq!(all_records(db)[15].event, "audit.upgrade");
    assert_eq!(
        db.confirm_audit_switch(&[], |_| upgrade.clone()).unwrap(),
        AuditUpgrade::Confirmed {
            keyed_from: 11,
            now: false
        }
    );
    // The plain records are now pinned: an edit recomputed with plain SHA-256 (the keyed
    // records after them too) changes the hash of record 10, which the switch point's MAC binds.
    db.exec_raw("UPDATE audit_log SET outcome = 'denied' WHERE seq = 4");
    rewrite_chain(db, 4, AuditRecord::compute_plain_hash);
    match db.verify_audit_chain().unwrap() {
        AuditVerdict::Broken { seq, reason } => {
            assert_eq!(seq, 1);
            assert!(
                reason.contains("does not verify under the audit key"),
                "{reason}"
            );
        }
        other => panic!("expected Broken, got {other:?}"),
    }
}

fn audit_switch_reset_after_the_upgrade(db: &TestDb) {
    let seals = Seals::new();
    make_legacy(db, 10);
    fill_chain_more(db, 5);
    // a seal written by the new version before the upgrade (record 15)
    seals.seal(db);
    assert_eq!(
        db.confirm_audit_switch(&[seals.path()], |_| event(0))
            .unwrap(),
        AuditUpgrade::Confirmed {
            keyed_from: 11,
            now: true
        }
    );
    seals.seal(db);
    assert_eq!(
        seals.verify(db).verdict,
        AuditVerdict::Intact { records: 16 }
    );
    // The insider resets the switch point past the upgrade's record and rewrites records
    // 11..=16 under the plain rule: unconfirmed again.
    rewrite_chain(db, 11, AuditRecord::compute_plain_hash);
    db.exec_raw("UPDATE audit_head SET keyed_from = 17, keyed_mac = NULL WHERE id = 1");
    assert_broken_at(db, 1);
    // A second upgrade checks the seals and refuses: record 15 is not the one sealed.
    assert!(matches!(
        db.confirm_audit_switch(&[seals.path()], |_| event(0))
            .unwrap(),
        AuditUpgrade::Refused { seq: 15, .. }
    ));
    // Without the seals it could not tell (README: run it once, with the seal file at hand);
    // and the seals still show the rewrite afterwards.
    assert!(matches!(
        db.confirm_audit_switch(&[], |_| event(0)).unwrap(),
        AuditUpgrade::Confirmed {
            keyed_from: 17,
            now: true
        }
    ));
    assert_seals_broken_at(&seals.verify(db), 15);
}

/// A second store on `db`'s database (runs pending migrations), with the test keys.
fn reopen(db: &TestDb) -> Store {
    let url = match &db.raw {
        Raw::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        Raw::Postgres { url, .. } => url.clone(),
    };
    Store::open(&url, opts(2)).unwrap().with_keys(test_keys())
}

/// A fresh database of `db`'s backend.
fn fresh_like(db: &TestDb) -> TestDb {
    match db.backend() {
        Backend::Sqlite => TestDb::sqlite(4),
        Backend::Postgres => TestDb::postgres(4),
    }
}

fn audit_batch(db: &TestDb) {
    let first = db.write(|c| c.append_audit(&event(0))).unwrap();
    assert!(db.write(|c| c.append_audit_batch(&[])).unwrap().is_empty());
    let events: Vec<_> = (1..=2_500).map(event).collect();
    let recs = db.write(|c| c.append_audit_batch(&events)).unwrap();
    assert_eq!(recs.len(), 2_500);
    assert_eq!(
        (recs[0].seq, recs[0].prev_hash.as_str()),
        (2, first.hash.as_str())
    );
    assert_eq!(recs[2_499].seq, 2_501);
    assert_eq!(
        db.read(|c| c.audit_head()).unwrap(),
        (2_501, recs[2_499].hash.clone())
    );
    let last = db.write(|c| c.append_audit(&event(9))).unwrap();
    assert_eq!(
        (last.seq, last.prev_hash.as_str()),
        (2_502, recs[2_499].hash.as_str())
    );
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 2_502 }
    );
}

fn write_rolls_back_on_err(db: &TestDb) {
    let r: Result<(), StorageError> = db.write(|c| {
        let u = c.create_user(&NewUser {
            name: "ghost".into(),
            password_hash: "x".into(),
            role: Role::Operator,
        })?;
        c.append_audit(&NewAuditEvent::new(
            AuditEvent::UserCreate,
            "admin",
            u.name,
            "ok",
        ))?;
        Err(StorageError::Corrupt("caller changed its mind".into()))
    });
    assert!(matches!(r, Err(StorageError::Corrupt(_))));
    assert_eq!(db.read(|c| c.user_by_name("ghost")).unwrap(), None);
    assert_eq!(
        db.read(|c| c.audit_head()).unwrap(),
        (0, ZERO_HASH.to_owned())
    );
    assert!(db.read(|c| c.audit_records(0, 10)).unwrap().is_empty());
    // The pool connection is clean afterwards.
    fill_chain(db, 3);
}

/// Multi-statement methods run in a savepoint inside `write` and in their own transaction
/// inside `read`.
fn atomic_methods_inside_write(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    let h = secret_hash(b"x").to_vec();
    let sad = sad_for(db, &cred, 1, secs(300), Some(vec![h.clone()]));
    let (won, rec) = db
        .write(|c| {
            let won = c.consume_sad_hashes(&sad, std::slice::from_ref(&h), utc_now())?;
            let rec = c.append_audit(
                &NewAuditEvent::new(
                    AuditEvent::SignatureSignHash,
                    "alice",
                    cred.id.to_string(),
                    "ok",
                )
                .with_detail(json!({ "credential": cred.id })),
            )?;
            Ok((won, rec))
        })
        .unwrap();
    assert!(won);
    assert_eq!(rec.seq, 1);
    let rec2 = db
        .read(|c| c.append_audit(&NewAuditEvent::new(AuditEvent::AuthLogin, "y", "z", "ok")))
        .unwrap();
    assert_eq!((rec2.seq, rec2.prev_hash.as_str()), (2, rec.hash.as_str()));
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 2 }
    );
}

/// Housekeeping deletes exactly what expired before the cut-off, in as many batches as it
/// takes, and leaves everything else (live rows, the audit chain) alone.
fn purge_in_batches(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let other = new_credential(db, &alice, Scal::One);
    let expired: Vec<Vec<u8>> = (0..7)
        .map(|_| sad_for(db, &cred, 1, secs(-60), None))
        .collect();
    let live: Vec<Vec<u8>> = (0..3)
        .map(|_| sad_for(db, &cred, 1, secs(600), None))
        .collect();
    for (i, ttl) in [-60, -60, -60, -60, -60, 600, 600].into_iter().enumerate() {
        db.write(|c| {
            c.insert_token(&NewToken {
                token_hash: secret_hash(format!("t{i}").as_bytes()).to_vec(),
                kind: TokenKind::Access,
                user_id: Some(alice.id),
                client_id: None,
                scope: "service".into(),
                expires_at: utc_now() + secs(ttl),
                parent_hash: None,
                family: None,
            })
        })
        .unwrap();
    }
    db.write(|c| c.put_online_otp(&cred.id, b"h1", utc_now() - secs(60)))
        .unwrap();
    db.write(|c| c.put_online_otp(&other.id, b"h2", utc_now() + secs(60)))
        .unwrap();
    fill_chain(db, 3);

    let purged = db.purge_expired_before(utc_now(), 2).unwrap();
    assert_eq!(
        purged,
        Purged {
            sads: 7,
            tokens: 5,
            online_otps: 1,
            ..Purged::default()
        }
    );
    for h in &expired {
        assert!(db.read(|c| c.sad(h)).unwrap().is_none());
    }
    for h in &live {
        assert!(db.read(|c| c.sad(h)).unwrap().is_some());
    }
    for i in 5..7 {
        let h = secret_hash(format!("t{i}").as_bytes());
        assert!(
            db.read(|c| c.token(&h)).unwrap().is_some(),
            "live token t{i}"
        );
    }
    assert!(
        db.write(|c| c.take_online_otp(&other.id, b"h2", utc_now()))
            .unwrap()
    );
    assert_eq!(
        db.purge_expired_before(utc_now(), 2).unwrap(),
        Purged::default()
    );
    // every deleting transaction audited its counts; they add up to what went
    let records = db.read(|c| c.audit_records(0, 100)).unwrap();
    let purges: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| r.event == "housekeeping.purge")
        .map(|r| serde_json::from_str(&r.detail).unwrap())
        .collect();
    assert_eq!(purges.len(), 4, "7 SADs in batches of 2: 4 transactions");
    let sum = |k: &str| purges.iter().map(|d| d[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("sads"), sum("tokens"), sum("onlineOtps")), (7, 5, 1));
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact {
            records: 3 + purges.len() as u64
        }
    );
}

/// A grouped job that spends one signature of `sad` and audits whether job `i` won it.
fn consume_one(
    sad: Vec<u8>,
    i: usize,
) -> impl FnOnce(&mut Conn<'_>) -> Result<(bool, Vec<NewAuditEvent>), StorageError> + Send + 'static
{
    move |c| {
        let won = c.consume_sad(&sad, 1, utc_now())?;
        let ev = NewAuditEvent::new(AuditEvent::SignatureSignHash, format!("t{i}"), "cred", "ok")
            .with_detail(json!({ "won": won }));
        Ok((won, vec![ev]))
    }
}

/// Group commit (`write_grouped`): 16 threads race for a one-signature SAD, each job auditing
/// its outcome in the same transaction. Exactly one wins per round, every job's record is in an
/// intact chain, and on SQLite the jobs really shared transactions.
fn grouped_concurrent_consume(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    const THREADS: usize = 16;
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let sad = sad_for(db, &cred, 1, secs(300), None);
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let store: Store = (**db).clone();
                let (sad, barrier) = (sad.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    store.write_grouped(consume_one(sad, i))
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("grouped consume"))
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1, "round {round}");
        assert_eq!(remaining(db, &sad), 0);
    }
    let records = db.read(|c| c.audit_records(0, 1_000)).unwrap();
    // the users/credentials/SADs above were written without audit: only the jobs' records
    assert_eq!(records.len(), THREADS * ROUNDS);
    let won = records.iter().filter(|r| r.detail.contains("true")).count();
    assert_eq!(won, ROUNDS);
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact {
            records: (THREADS * ROUNDS) as u64
        }
    );
    let (batches, jobs) = db.group_commit_stats();
    assert_eq!(jobs, (THREADS * ROUNDS) as u64);
    assert!(batches >= 1 && batches <= jobs, "{batches} {jobs}");
}

/// A job of a batch built by [`one_batch_of`], with what it declares.
enum Queued {
    /// A plain grouped job (`Store::write_grouped_async`).
    Plain(BoxedJob<bool>),
    /// A declared spend of a SAD (`Store::spend_grouped_staged`, signHash's).
    Spend(Vec<u8>, BoxedJob<bool>),
    /// A job declaring rows (`Store::write_grouped_declared_async`, a key activation's).
    Rows(DeclaredRows, BoxedJob<bool>),
}

/// `jobs` queued in order while this thread holds the writer, so that they run as ONE batch;
/// their outcomes in queue order once their batch is settled (a job whose batch failed: `Err`).
fn one_batch_of(db: &TestDb, jobs: Vec<Queued>) -> Outcomes {
    enum Waiting<A, S> {
        Awaited(A),
        Staged(S),
    }
    let before = db.group_commit_stats();
    let n = jobs.len() as u64;
    let waiting: Vec<_> = db
        .write(|_| {
            Ok(jobs
                .into_iter()
                .map(|job| match job {
                    Queued::Plain(j) => Waiting::Awaited(Box::pin(db.write_grouped_async(j))
                        as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>),
                    Queued::Rows(rows, j) => {
                        Waiting::Awaited(Box::pin(db.write_grouped_declared_async(rows, j)) as _)
                    }
                    Queued::Spend(sad, j) => Waiting::Staged(db.spend_grouped_staged(&sad, j)),
                })
                .collect())
        })
        .unwrap();
    let outcomes = waiting
        .into_iter()
        .map(|w| match w {
            Waiting::Awaited(f) => block_on(f),
            Waiting::Staged(staged) => block_on(async {
                let (ran, durable) = staged.ran().await;
                let settled = durable.settled().await;
                ran.and_then(|won| settled.map(|()| won))
            }),
        })
        .collect();
    let after = db.group_commit_stats();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, n),
        "one transaction for the {n} jobs"
    );
    outcomes
}

/// Declared spends and plain grouped jobs in ONE batch ([`one_batch_of`], the plain ones queued
/// first): the spends' outcomes, then the others'.
fn one_batch_of_spends(
    db: &TestDb,
    spends: Vec<(Vec<u8>, BoxedJob<bool>)>,
    others: Vec<BoxedJob<bool>>,
) -> (Outcomes, Outcomes) {
    let n = others.len();
    let mut jobs: Vec<Queued> = others.into_iter().map(Queued::Plain).collect();
    jobs.extend(spends.into_iter().map(|(sad, j)| Queued::Spend(sad, j)));
    let mut outcomes = one_batch_of(db, jobs);
    let spends = outcomes.split_off(n);
    (spends, outcomes)
}

/// The outcomes of a batch's jobs, in queue order.
type Outcomes = Vec<Result<bool, StorageError>>;

/// `spend_one` boxed, with the SAD it declares.
fn declared(sad: &[u8], h: &[u8], actor: &str) -> (Vec<u8>, BoxedJob<bool>) {
    (
        sad.to_vec(),
        Box::new(spend_one(sad.to_vec(), h.to_vec(), actor.to_owned())),
    )
}

/// Declared spends of the same SADs in one batch (on PostgreSQL: locked and read in one
/// statement, spent on the batch's copies, written back in one) follow each other as separate
/// transactions would: of three spends of a two-signature SAD two win, a hash-bound SAD gives
/// each of its hashes once, the rows stay intact (their MACs verify) with exactly what is left,
/// and one record per spend won is in an intact chain.
fn declared_spends_of_one_batch_see_each_other(db: &TestDb) {
    let alice = new_user(db, "alice");
    let one = new_credential(db, &alice, Scal::One);
    let two = new_credential(db, &alice, Scal::Two);
    let h = |s: &str| secret_hash(s.as_bytes()).to_vec();
    let counted = sad_for(db, &one, 2, secs(300), None);
    let bound = sad_for(db, &two, 2, secs(300), Some(vec![h("a"), h("b")]));
    let untouched = sad_for(db, &one, 1, secs(300), None);
    let (spends, _) = one_batch_of_spends(
        db,
        vec![
            declared(&counted, &[], "s0"),
            declared(&bound, &h("a"), "s1"),
            declared(&counted, &[], "s2"),
            declared(&bound, &h("a"), "s3"),
            declared(&counted, &[], "s4"),
            declared(&bound, &h("b"), "s5"),
            declared(&h("no such SAD"), &[], "s6"),
        ],
        Vec::new(),
    );
    let won: Vec<bool> = spends.into_iter().map(|r| r.expect("settled")).collect();
    assert_eq!(won, [true, true, true, false, false, true, false]);
    assert!(db.take_violations().is_empty(), "every row read intact");
    assert_eq!(remaining(db, &counted), 0);
    let left = db.read(|c| c.sad(&bound)).unwrap().expect("intact SAD");
    assert_eq!((left.remaining, left.hashes), (0, Some(Vec::new())));
    assert_eq!(remaining(db, &untouched), 1);
    assert_eq!(audit_actors(db), ["s0", "s1", "s2", "s5"]);
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 4 }
    );
}

/// A plain grouped job revoking a SAD and a declared spend of it in one batch: whichever runs
/// first (PostgreSQL runs the declared spends first, SQLite the queue's order), the row ends
/// revoked, intact (the spend's copy was written back before the revoke read the row), and
/// spent at most once, with a record iff it was.
fn a_declared_spend_and_a_revoke_in_one_batch_leave_an_intact_row(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let sad = sad_for(db, &cred, 1, secs(300), None);
    let revoke: BoxedJob<bool> = {
        let sad = sad.clone();
        Box::new(move |c| Ok((c.revoke_sad(&sad)?, Vec::new())))
    };
    let (spends, others) =
        one_batch_of_spends(db, vec![declared(&sad, &[], "spender")], vec![revoke]);
    let won = spends.into_iter().next().expect("one").expect("settled");
    assert!(
        others.into_iter().next().expect("one").expect("settled"),
        "revoked"
    );
    let row = db
        .read(|c| c.sad(&sad))
        .unwrap()
        .expect("the row is intact");
    assert!(db.take_violations().is_empty());
    assert!(row.revoked);
    assert_eq!(row.remaining, if won { 0 } else { 1 });
    match db.backend() {
        Backend::Postgres => assert!(won, "the declared spend ran first"),
        Backend::Sqlite => assert!(!won, "the revoke ran first"),
    }
    let records = db.read(|c| c.audit_records(0, 100)).unwrap();
    assert_eq!(records.len(), usize::from(won));
}

/// A SAD whose row was edited behind the store (its MAC no longer verifies) is absent to a
/// declared spend, as to every read: refused, the row left as the editor left it, and the
/// violation reported for the SAM to audit.
fn a_declared_spend_of_an_edited_sad_is_refused_and_reported(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let sad = sad_for(db, &cred, 1, secs(300), None);
    let intact = sad_for(db, &cred, 1, secs(300), None);
    let hex_lit = match db.raw {
        Raw::Sqlite { .. } => format!("X'{}'", hex_of(&sad)),
        Raw::Postgres { .. } => format!("'\\x{}'::bytea", hex_of(&sad)),
    };
    assert_eq!(
        db.exec_raw(&format!(
            "UPDATE sads SET remaining = 50 WHERE sad_hash = {hex_lit}"
        )),
        1
    );
    let (spends, _) = one_batch_of_spends(
        db,
        vec![declared(&sad, &[], "s0"), declared(&intact, &[], "s1")],
        Vec::new(),
    );
    let won: Vec<bool> = spends.into_iter().map(|r| r.expect("settled")).collect();
    assert_eq!(won, [false, true]);
    let violations = db.take_violations();
    assert!(
        !violations.is_empty()
            && violations
                .iter()
                .all(|v| v.table == "sads" && v.row == hex_of(&sad)),
        "{violations:?}"
    );
    assert_eq!(db.read(|c| c.sad(&sad)).unwrap(), None, "still refused");
    assert_eq!(remaining(db, &intact), 0);
}

/// A declared spend whose job audits nothing (a batch with no record to append) is kept all the
/// same, and the chain is untouched.
fn a_declared_spend_without_records_is_kept(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let sad = sad_for(db, &cred, 2, secs(300), None);
    let silent: BoxedJob<bool> = {
        let spend = spend_one(sad.clone(), Vec::new(), "s0".into());
        Box::new(move |c| spend(c).map(|(won, _)| (won, Vec::new())))
    };
    let (spends, _) = one_batch_of_spends(db, vec![(sad.clone(), silent)], Vec::new());
    assert!(spends[0].as_ref().expect("settled"), "won");
    assert_eq!(remaining(db, &sad), 1);
    assert!(db.take_violations().is_empty());
    assert!(db.read(|c| c.audit_records(0, 100)).unwrap().is_empty());
}

/// On PostgreSQL a batch of declared spends costs the same round trips however many spends it
/// holds (its SADs are locked and read in one statement and written back in one): a batch of
/// two spends and a batch of eight, queued the same way, send the same number of statements
/// (per-job statements would add three a spend: eighteen more).
#[test]
fn postgres_a_batch_of_declared_spends_costs_the_same_round_trips_however_many() {
    let db = TestDb::postgres(4);
    let alice = new_user(&db, "alice");
    let one = new_credential(&db, &alice, Scal::One);
    let two = new_credential(&db, &alice, Scal::Two);
    let h = |s: &str| secret_hash(s.as_bytes()).to_vec();
    let mut sent = Vec::new();
    for n in [2, 8] {
        let counted = sad_for(&db, &one, n, secs(300), None);
        let bound = sad_for(&db, &two, 1, secs(300), Some(vec![h("a")]));
        // the first spends the hash-bound SAD, the others the counted one
        let mut spends = vec![declared(&bound, &h("a"), "s0")];
        spends.extend((1..n).map(|i| declared(&counted, &[], &format!("s{i}"))));
        let before = db.statements();
        let (outcomes, _) = one_batch_of_spends(&db, spends, Vec::new());
        sent.push(db.statements() - before);
        assert!(outcomes.into_iter().all(|won| won.expect("settled")));
        assert_eq!(remaining(&db, &counted), 1);
    }
    assert_eq!(
        sent[0], sent[1],
        "statements for 2 and for 8 spends: {sent:?}"
    );
}

/// On PostgreSQL a declared spend runs without a savepoint, so one that fails (`Err`) cannot be
/// undone alone: its whole batch fails and leaves nothing, the other declared spends and the
/// plain jobs included (every one of them told so), and the next batch spends the same SAD.
#[test]
fn postgres_a_failing_declared_spend_undoes_its_batch() {
    let db = TestDb::postgres(4);
    let alice = new_user(&db, "alice");
    let cred = new_credential(&db, &alice, Scal::One);
    let sad = sad_for(&db, &cred, 2, secs(300), None);
    let failing: BoxedJob<bool> = {
        let spend = spend_one(sad.clone(), Vec::new(), "s1".into());
        Box::new(move |c| {
            let (won, _) = spend(c)?;
            assert!(won, "spent before failing");
            Err(StorageError::Corrupt("the job gives up".into()))
        })
    };
    let (spends, others) = one_batch_of_spends(
        &db,
        vec![declared(&sad, &[], "s0"), (sad.clone(), failing)],
        vec![user_job("bob", false)],
    );
    for outcome in spends.iter().chain(&others) {
        assert!(outcome.is_err(), "{outcome:?}");
    }
    assert_eq!(remaining(&db, &sad), 2, "nothing spent");
    assert!(db.read(|c| c.user_by_name("bob")).unwrap().is_none());
    assert!(db.read(|c| c.audit_records(0, 100)).unwrap().is_empty());
    let (spends, _) = one_batch_of_spends(&db, vec![declared(&sad, &[], "s2")], Vec::new());
    assert!(
        spends[0].as_ref().expect("settled"),
        "the next batch spends it"
    );
    assert_eq!(remaining(&db, &sad), 1);
}

/// The slot reservation of a key activation as a declared job (the SAM's): reserves a failure
/// slot of `cred`'s PIN under a limit of 2, audited as `actor` when it got one.
fn reserve_pin(cred: &Credential, actor: &str) -> Queued {
    let (id, actor) = (cred.id, actor.to_owned());
    Queued::Rows(
        DeclaredRows::activation(id, false),
        Box::new(move |c| {
            let got = c.reserve_attempt(Counter::Factor(id, FactorKind::Pin), 2)?;
            let events = if got {
                vec![NewAuditEvent::new(
                    AuditEvent::SadAuthorize,
                    actor,
                    id.to_string(),
                    "reserved",
                )]
            } else {
                Vec::new()
            };
            Ok((got, events))
        }),
    )
}

/// The outcome of a key activation as a declared job (the SAM's): reads the credential under
/// lock, clears the PIN's counter and issues the SAD `sad` (one signature); when `fail`, gives
/// up after all that (`Err`), as a refused grant does.
fn grant_pin(cred: &Credential, sad: &[u8], actor: &str, fail: bool) -> Queued {
    let (id, user, sad, actor) = (cred.id, cred.user_id, sad.to_vec(), actor.to_owned());
    Queued::Rows(
        DeclaredRows::activation(id, true),
        Box::new(move |c| {
            let enabled = c
                .credential_for_update(&id)?
                .is_some_and(|cr| cr.status == CredentialStatus::Enabled);
            if !enabled || !c.clear_attempts(Counter::Factor(id, FactorKind::Pin))? {
                return Ok((false, Vec::new()));
            }
            c.insert_sad(&NewSad {
                sad_hash: sad,
                user_id: user,
                credential_id: id,
                token_hash: secret_hash(b"access token").to_vec(),
                remaining: 1,
                expires_at: utc_now() + secs(300),
                hashes: None,
                authorized_at: utc_now(),
            })?;
            if fail {
                return Err(StorageError::Conflict("refused: rolled back".into()));
            }
            let ev = NewAuditEvent::new(AuditEvent::SadAuthorize, actor, id.to_string(), "ok");
            Ok((true, vec![ev]))
        }),
    )
}

/// `cred`'s PIN failures as stored (its row read, MAC checked).
fn pin_failures(db: &TestDb, cred: &Credential) -> i32 {
    db.read(|c| c.factor(&cred.id, FactorKind::Pin))
        .unwrap()
        .expect("an intact PIN row")
        .failures
}

/// Key activations' declared jobs in one batch (on PostgreSQL: the factor rows and the
/// credentials locked and read in one statement each, changed on the batch's copies, written
/// back and the new SADs inserted in one each) follow each other as separate transactions
/// would (Part I 7.1.2.5.1: the lockout counts first): of three reservations under a limit of
/// 2 the third is refused, the grant clears the counter, so the reservation after it gets a
/// slot again; another credential's rows are untouched; the rows end intact, the SAD issued
/// is stored and spendable, and one record per job that audited is in an intact chain.
fn declared_activations_of_one_batch_see_each_other(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let other = new_credential(db, &alice, Scal::One);
    for id in [cred.id, other.id] {
        db.write(|c| c.set_factor(&id, FactorKind::Pin, "$argon2id$pin"))
            .unwrap();
    }
    let sad = secret_hash(b"issued in the batch").to_vec();
    let outcomes = one_batch_of(
        db,
        vec![
            reserve_pin(&cred, "r0"),
            reserve_pin(&cred, "r1"),
            reserve_pin(&cred, "r2"),
            grant_pin(&cred, &sad, "g3", false),
            reserve_pin(&cred, "r4"),
            reserve_pin(&other, "o5"),
        ],
    );
    let got: Vec<bool> = outcomes.into_iter().map(|r| r.expect("settled")).collect();
    assert_eq!(got, [true, true, false, true, true, true]);
    assert_eq!(
        pin_failures(db, &cred),
        1,
        "cleared by the grant, then one slot"
    );
    assert_eq!(pin_failures(db, &other), 1);
    assert!(db.take_violations().is_empty(), "every row intact");
    assert_eq!(remaining(db, &sad), 1, "the SAD issued is stored");
    assert_eq!(audit_actors(db), ["r0", "r1", "g3", "r4", "o5"]);
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 5 }
    );
}

/// A declared job that fails (a grant refused after it cleared the counter and issued its SAD)
/// is undone alone (on PostgreSQL by restoring the batch's copies, on SQLite by its
/// savepoint): the reservation after it sees the counter as the job before it left it, so it
/// gets the second slot of two; the refused SAD is not stored; the others commit.
fn a_failing_declared_activation_is_undone_alone(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$pin"))
        .unwrap();
    let refused = secret_hash(b"refused").to_vec();
    let issued = secret_hash(b"issued").to_vec();
    let outcomes = one_batch_of(
        db,
        vec![
            reserve_pin(&cred, "r0"),
            grant_pin(&cred, &refused, "g1", true),
            reserve_pin(&cred, "r2"),
            reserve_pin(&cred, "r3"),
            grant_pin(&cred, &issued, "g4", false),
        ],
    );
    assert!(
        matches!(outcomes[1], Err(StorageError::Conflict(_))),
        "{outcomes:?}"
    );
    let got: Vec<bool> = [0, 2, 3, 4]
        .iter()
        .map(|&i| *outcomes[i].as_ref().expect("settled"))
        .collect();
    assert_eq!(got, [true, true, false, true]);
    assert_eq!(pin_failures(db, &cred), 0, "cleared by the last grant");
    assert!(
        db.read(|c| c.sad(&refused)).unwrap().is_none(),
        "refused SAD not stored"
    );
    assert_eq!(remaining(db, &issued), 1);
    assert_eq!(audit_actors(db), ["r0", "r2", "g4"]);
}

/// A factor row edited behind the store (its MAC no longer verifies) is absent to a declared
/// job, as to every read: the reservation is refused (as locked, by the lockout rule), the
/// row is left as the editor left it, and the violation is reported for the SAM to audit.
fn a_declared_activation_of_an_edited_factor_is_refused_and_reported(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$pin"))
        .unwrap();
    assert_eq!(
        db.exec_raw(&format!(
            "UPDATE credential_factors SET verifier = 'edited' WHERE credential_id = '{}'",
            cred.id
        )),
        1
    );
    let outcomes = one_batch_of(db, vec![reserve_pin(&cred, "r0")]);
    assert!(!outcomes[0].as_ref().expect("settled"), "refused");
    let violations = db.take_violations();
    assert!(
        !violations.is_empty() && violations.iter().all(|v| v.table == "credential_factors"),
        "{violations:?}"
    );
    assert!(
        db.read(|c| c.factor(&cred.id, FactorKind::Pin))
            .unwrap()
            .is_none()
    );
}

/// On PostgreSQL a declared job that sent a statement of its own (here an audit record it
/// appended itself) and then failed cannot be undone by restoring the copies: its whole batch
/// fails and leaves nothing (every job told so), and the next batch runs as usual.
#[test]
fn postgres_a_declared_activation_that_wrote_and_failed_undoes_its_batch() {
    let db = TestDb::postgres(4);
    let alice = new_user(&db, "alice");
    let cred = new_credential(&db, &alice, Scal::One);
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$pin"))
        .unwrap();
    let id = cred.id;
    let wrote_and_failed = Queued::Rows(
        DeclaredRows::activation(id, false),
        Box::new(move |c| {
            assert!(c.reserve_attempt(Counter::Factor(id, FactorKind::Pin), 2)?);
            c.append_audit(&NewAuditEvent::new(
                AuditEvent::SadAuthorize,
                "w1",
                id.to_string(),
                "x",
            ))?;
            Err(StorageError::Corrupt("the job gives up".into()))
        }),
    );
    let outcomes = one_batch_of(
        &db,
        vec![
            Queued::Plain(user_job("bob", false)),
            reserve_pin(&cred, "r0"),
            wrote_and_failed,
        ],
    );
    for outcome in &outcomes {
        assert!(outcome.is_err(), "{outcome:?}");
    }
    assert_eq!(pin_failures(&db, &cred), 0, "nothing reserved");
    assert!(db.read(|c| c.user_by_name("bob")).unwrap().is_none());
    assert!(db.read(|c| c.audit_records(0, 100)).unwrap().is_empty());
    let outcomes = one_batch_of(&db, vec![reserve_pin(&cred, "r2")]);
    assert!(
        outcomes[0].as_ref().expect("settled"),
        "the next batch runs"
    );
    assert_eq!(pin_failures(&db, &cred), 1);
}

/// On PostgreSQL a batch of key activations' declared jobs costs the same round trips however
/// many it holds: a reservation and a grant for each of 2 credentials and for each of 8, queued
/// the same way, send the same number of statements (per-job statements would add nine an
/// activation: fifty-four more).
#[test]
fn postgres_a_batch_of_declared_activations_costs_the_same_round_trips_however_many() {
    let db = TestDb::postgres(4);
    let alice = new_user(&db, "alice");
    let mut sent = Vec::new();
    for n in [2, 8] {
        let creds: Vec<Credential> = (0..n)
            .map(|_| {
                let cred = new_credential(&db, &alice, Scal::One);
                db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$pin"))
                    .unwrap();
                cred
            })
            .collect();
        let mut jobs = Vec::new();
        for (i, cred) in creds.iter().enumerate() {
            jobs.push(reserve_pin(cred, &format!("r{i}")));
            let sad = secret_hash(format!("{n} {i}").as_bytes()).to_vec();
            jobs.push(grant_pin(cred, &sad, &format!("g{i}"), false));
        }
        let before = db.statements();
        let outcomes = one_batch_of(&db, jobs);
        sent.push(db.statements() - before);
        assert!(outcomes.into_iter().all(|got| got.expect("settled")));
        assert!(creds.iter().all(|cred| pin_failures(&db, cred) == 0));
    }
    assert_eq!(
        sent[0], sent[1],
        "statements for 2 and for 8 activations: {sent:?}"
    );
}

/// A failing job in a shared transaction undoes only its own statements and events; its
/// neighbours commit. The first job holds the writer for a while so the others queue behind it
/// and (on SQLite) run as one batch.
fn grouped_failed_job_is_undone_alone(db: &TestDb) {
    const THREADS: usize = 12;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let slow = {
        let store: Store = (**db).clone();
        let barrier = barrier.clone();
        thread::spawn(move || {
            store.write_grouped(move |c| {
                barrier.wait();
                thread::sleep(Duration::from_millis(300));
                c.create_user(&NewUser {
                    name: "slow".into(),
                    password_hash: "x".into(),
                    role: Role::Signer,
                })?;
                Ok((
                    (),
                    vec![NewAuditEvent::new(
                        AuditEvent::UserCreate,
                        "t",
                        "slow",
                        "ok",
                    )],
                ))
            })
        })
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let store: Store = (**db).clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                store.write_grouped(move |c| {
                    let name = format!("u{i}");
                    c.create_user(&NewUser {
                        name: name.clone(),
                        password_hash: "x".into(),
                        role: Role::Signer,
                    })?;
                    if i % 3 == 0 {
                        return Err(StorageError::Corrupt(format!("job {i} gives up")));
                    }
                    Ok((
                        (),
                        vec![NewAuditEvent::new(AuditEvent::UserCreate, "t", name, "ok")],
                    ))
                })
            })
        })
        .collect();
    slow.join().expect("thread").expect("slow job");
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().expect("thread");
        if i % 3 == 0 {
            assert!(
                matches!(r, Err(StorageError::Corrupt(ref m)) if m.contains("gives up")),
                "{r:?}"
            );
        } else {
            r.expect("job commits");
        }
    }
    for i in 0..THREADS {
        let present = db
            .read(|c| c.user_by_name(&format!("u{i}")))
            .unwrap()
            .is_some();
        assert_eq!(present, i % 3 != 0, "user u{i}");
    }
    let records = db.read(|c| c.audit_records(0, 100)).unwrap();
    let expected = 1 + (0..THREADS).filter(|i| i % 3 != 0).count();
    assert_eq!(records.len(), expected);
    for failed in (0..THREADS).filter(|i| i % 3 == 0) {
        let subject = format!("u{failed}");
        assert!(
            records.iter().all(|r| r.subject != subject),
            "{subject} audited"
        );
    }
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact {
            records: expected as u64
        }
    );
    let (batches, jobs) = db.group_commit_stats();
    assert_eq!(jobs, (THREADS + 1) as u64);
    // the slow job alone, then the 12 queued behind it in (nearly) one transaction
    assert!(
        batches <= 4,
        "{batches} transactions for {jobs} jobs: no grouping"
    );
}

/// `write_grouped_async`: 16 jobs race for a one-signature SAD, all queued by ONE thread
/// that never blocks (a one-thread runtime, as an HTTP worker) while another thread holds the
/// writer. Exactly one wins, every job's record is in the intact chain, and on SQLite the 16
/// shared ONE transaction: they were all queued while the writer was held.
fn grouped_async_jobs_queued_behind_a_writer_commit_together(db: &TestDb) {
    const JOBS: usize = 16;
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let sad = sad_for(db, &cred, 1, secs(300), None);
    let before = db.group_commit_stats();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let wins = db
        .write(|_| {
            // this thread holds the writer (SQLite): nothing below can commit until it returns
            let futures: Vec<_> = (0..JOBS)
                .map(|i| {
                    let sad = sad.clone();
                    db.write_grouped_async(consume_one(sad, i))
                })
                .collect();
            Ok(futures)
        })
        .map(|futures| {
            rt.block_on(async {
                let mut wins = 0;
                for f in futures {
                    wins += usize::from(f.await.expect("grouped consume"));
                }
                wins
            })
        })
        .expect("write");
    assert_eq!(wins, 1);
    assert_eq!(remaining(db, &sad), 0);
    let records = db.read(|c| c.audit_records(0, 1_000)).unwrap();
    assert_eq!(records.len(), JOBS);
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact {
            records: JOBS as u64
        }
    );
    let after = db.group_commit_stats();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, JOBS as u64),
        "one transaction for the {JOBS} jobs"
    );
}

/// A batch whose audit append fails fails every async job of it (SQLite: one transaction;
/// PostgreSQL: each job's own), undoing their statements: nothing is released as done.
fn grouped_async_jobs_of_a_failed_batch_all_fail(db: &TestDb) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    match db.backend() {
        Backend::Sqlite => db.exec_raw(
            "CREATE TRIGGER refuse_user_records BEFORE INSERT ON audit_log \
             WHEN NEW.event = 'user.create' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ),
        Backend::Postgres => {
            db.exec_raw(
                "CREATE FUNCTION refuse_user_records() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN IF NEW.event = 'user.create' THEN RAISE EXCEPTION 'refused'; \
                 END IF; RETURN NEW; END $$",
            );
            db.exec_raw(
                "CREATE TRIGGER refuse_user_records BEFORE INSERT ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION refuse_user_records()",
            )
        }
    };
    let futures: Vec<_> = (0..4)
        .map(|i| {
            db.write_grouped_async(move |c| {
                let name = format!("u{i}");
                c.create_user(&NewUser {
                    name: name.clone(),
                    password_hash: "x".into(),
                    role: Role::Signer,
                })?;
                Ok((
                    (),
                    vec![NewAuditEvent::new(AuditEvent::UserCreate, "t", name, "ok")],
                ))
            })
        })
        .collect();
    for f in futures {
        let r = rt.block_on(f);
        assert!(r.is_err(), "{r:?}");
    }
    for i in 0..4 {
        let present = db.read(|c| c.user_by_name(&format!("u{i}"))).unwrap();
        assert!(present.is_none(), "u{i} was rolled back");
    }
    assert!(db.read(|c| c.audit_records(0, 100)).unwrap().is_empty());
}

/// `write_grouped_staged`: a job's outcome (`ran`) comes first, then whether its batch is
/// durable (`settled`). A committed batch settles `Ok` with the spend in place; a batch whose
/// audit append fails settles `Err` even though its spend `ran` as won, and leaves nothing: the
/// SAD keeps its signature and no record exists. (signHash signs between the two and releases
/// the signature only on `Ok`.)
fn staged_jobs_say_what_ran_then_whether_it_is_durable(db: &TestDb) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    let committed = sad_for(db, &cred, 1, secs(300), None);
    let (won, durable) = rt.block_on(
        db.write_grouped_staged(consume_one(committed.clone(), 0))
            .ran(),
    );
    assert!(won.expect("ran"), "the spend won");
    rt.block_on(durable.settled()).expect("committed");
    assert_eq!(remaining(db, &committed), 0);
    let records = db.read(|c| c.audit_records(0, 100)).unwrap();

    let refused = sad_for(db, &cred, 1, secs(300), None);
    match db.backend() {
        Backend::Sqlite => db.exec_raw(
            "CREATE TRIGGER refuse_records BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ),
        Backend::Postgres => {
            db.exec_raw(
                "CREATE FUNCTION refuse_records() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
            );
            db.exec_raw(
                "CREATE TRIGGER refuse_records BEFORE INSERT ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION refuse_records()",
            )
        }
    };
    let (ran, durable) = rt.block_on(
        db.write_grouped_staged(consume_one(refused.clone(), 1))
            .ran(),
    );
    match db.backend() {
        // the spend ran and won inside the batch, before the append failed the batch
        Backend::Sqlite => assert!(ran.expect("ran"), "the spend won in the batch"),
        // told once the batch is settled: rolled back
        Backend::Postgres => assert!(ran.is_err(), "{ran:?}"),
    }
    let settled = rt.block_on(durable.settled());
    assert!(settled.is_err(), "the batch rolled back: {settled:?}");
    assert_eq!(
        remaining(db, &refused),
        1,
        "the rolled-back spend left nothing"
    );
    assert_eq!(
        db.read(|c| c.audit_records(0, 100)).unwrap(),
        records,
        "no record of the rolled-back spend"
    );
}

fn timestamps_round_trip(db: &TestDb) {
    let alice = new_user(db, "alice");
    let stored = db.read(|c| c.user(&alice.id)).unwrap().unwrap();
    assert_eq!(stored.created_at, alice.created_at);
    // Sub-microsecond precision is dropped identically on both backends.
    let t = NaiveDateTime::parse_from_str("2031-02-03 04:05:06.123456789", "%Y-%m-%d %H:%M:%S%.f")
        .unwrap();
    let new = NewToken {
        token_hash: vec![7; 32],
        kind: TokenKind::Access,
        user_id: Some(alice.id),
        client_id: None,
        scope: String::new(),
        expires_at: t,
        parent_hash: None,
        family: None,
    };
    db.write(|c| c.insert_token(&new)).unwrap();
    let tok = db.read(|c| c.token(&[7; 32])).unwrap().unwrap();
    assert_eq!(tok.expires_at.to_string(), "2031-02-03 04:05:06.123456");
    let rec = db.write(|c| c.append_audit(&event(0))).unwrap();
    let back = db.read(|c| c.audit_records(0, 1)).unwrap();
    assert_eq!(back[0], rec);
}

// ---------------------------------------------------------------------------------------------
// backend-specific

#[test]
fn sqlite_open_refuses_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.sqlite");
    for url in [
        path.display().to_string(),
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        let r = Store::open(&url, StoreOptions::default());
        match r {
            Err(StorageError::Connection(msg)) => assert!(msg.contains("does not exist"), "{msg}"),
            other => panic!("expected a Connection error, got {other:?}"),
        }
        assert!(!path.exists(), "open() must not create the file");
    }
    // open_or_create creates it; open then works and migrations are idempotent.
    let store = Store::open_or_create(&path.display().to_string(), StoreOptions::default())
        .unwrap()
        .with_keys(test_keys());
    new_user(&store, "alice");
    drop(store);
    assert!(path.exists());
    let store = Store::open(
        &format!("sqlite:{}", path.display()),
        StoreOptions::default(),
    )
    .unwrap()
    .with_keys(test_keys());
    assert!(store.read(|c| c.user_by_name("alice")).unwrap().is_some());
    // A missing directory is reported, not created.
    let deep = dir.path().join("no/such/dir/db.sqlite");
    let r = Store::open_or_create(&deep.display().to_string(), StoreOptions::default());
    assert!(matches!(r, Err(StorageError::Connection(_))), "{r:?}");
}

#[test]
fn invalid_urls() {
    for url in [
        "",
        "mysql://root:hunter2@db/csc",
        "sqlite://",
        ":memory:",
        "sqlite::memory:",
    ] {
        match Store::open(url, StoreOptions::default()) {
            Err(StorageError::InvalidUrl(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
            other => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[test]
fn postgres_unreachable_is_a_clear_error() {
    let started = Instant::now();
    let r = Store::open(
        "postgresql://csc:hunter2@127.0.0.1:1/csc",
        StoreOptions {
            connection_timeout: Duration::from_secs(2),
            ..StoreOptions::default()
        },
    );
    match r {
        Err(StorageError::Connection(msg)) => {
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(
                msg.contains("127.0.0.1") || msg.contains("connect"),
                "{msg}"
            );
        }
        other => panic!("expected a Connection error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn sqlite_separate_stores_share_one_file() {
    // Two stores on one file behave like two processes: appends serialise on the write lock.
    let db = TestDb::sqlite(4);
    let Raw::Sqlite { path, .. } = &db.raw else {
        unreachable!()
    };
    let other = Store::open(&path.display().to_string(), opts(4))
        .unwrap()
        .with_keys(test_keys());
    let handles: Vec<_> = [(*db).clone(), other]
        .into_iter()
        .map(|store| {
            thread::spawn(move || {
                for i in 0..100 {
                    store.write(|c| c.append_audit(&event(i))).expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 200 }
    );
}

#[test]
fn sqlite_write_is_begin_immediate() {
    // A write transaction holds the write lock from its start, even before its first
    // statement: a second writer (another store = another process) waits for it.
    let db = TestDb::sqlite(2);
    let Raw::Sqlite { path, .. } = &db.raw else {
        unreachable!()
    };
    let other = Store::open(&path.display().to_string(), opts(2))
        .unwrap()
        .with_keys(test_keys());
    let (began_tx, began_rx) = std::sync::mpsc::channel();
    let store: Store = (*db).clone();
    let holder = thread::spawn(move || {
        store.write(|c| {
            let _ = began_tx.send(());
            thread::sleep(Duration::from_millis(400));
            c.audit_head()
        })
    });
    began_rx.recv().unwrap();
    let started = Instant::now();
    other.write(|c| c.append_audit(&event(1))).unwrap();
    let waited = started.elapsed();
    holder.join().unwrap().unwrap();
    assert!(
        waited >= Duration::from_millis(250),
        "second writer did not wait: {waited:?}"
    );
}

/// Timing only (run with `--run-ignored only --no-capture`, preferably `--release`).
#[test]
#[ignore = "benchmark: 200,000 audit records"]
fn sqlite_audit_verify_200k() {
    audit_bulk(&TestDb::sqlite(2), 200_000);
}

#[test]
#[ignore = "benchmark: 200,000 audit records"]
fn postgres_audit_verify_200k() {
    audit_bulk(&TestDb::postgres(2), 200_000);
}

fn audit_bulk(db: &TestDb, n: usize) {
    let started = Instant::now();
    for chunk in 0..n / 5_000 {
        let events: Vec<_> = (0..5_000).map(|i| event(chunk * 5_000 + i)).collect();
        db.write(|c| c.append_audit_batch(&events)).unwrap();
    }
    let appended = started.elapsed();
    let started = Instant::now();
    let verdict = db.verify_audit_chain().unwrap();
    let verified = started.elapsed();
    assert_eq!(verdict, AuditVerdict::Intact { records: n as u64 });
    eprintln!(
        "[{:?}] appended {n} in {appended:?} ({:.0}/s); verified in {verified:?} ({:.0}/s)",
        db.backend(),
        n as f64 / appended.as_secs_f64(),
        n as f64 / verified.as_secs_f64()
    );
}

fn online_otp_single_use(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    let now = storage::utc_now();
    let later = now + chrono::Duration::minutes(5);
    let code = storage::secret_hash(b"123456");
    let other = storage::secret_hash(b"654321");
    assert!(
        !db.write(|c| c.take_online_otp(&cred.id, &code, now))
            .unwrap(),
        "nothing sent yet"
    );
    db.write(|c| c.put_online_otp(&cred.id, &code, later))
        .unwrap();
    assert!(
        !db.write(|c| c.take_online_otp(&cred.id, &other, now))
            .unwrap(),
        "wrong code"
    );
    assert!(
        db.write(|c| c.take_online_otp(&cred.id, &code, now))
            .unwrap(),
        "right code once"
    );
    assert!(
        !db.write(|c| c.take_online_otp(&cred.id, &code, now))
            .unwrap(),
        "never twice"
    );
    // a newer code replaces the older one; an expired one is refused
    db.write(|c| c.put_online_otp(&cred.id, &code, later))
        .unwrap();
    db.write(|c| c.put_online_otp(&cred.id, &other, later))
        .unwrap();
    assert!(
        !db.write(|c| c.take_online_otp(&cred.id, &code, now))
            .unwrap(),
        "replaced"
    );
    db.write(|c| c.put_online_otp(&cred.id, &code, now))
        .unwrap();
    assert!(
        !db.write(|c| c.take_online_otp(&cred.id, &code, now))
            .unwrap(),
        "expired"
    );
    let missing = storage::CredentialId::new();
    assert!(matches!(
        db.write(|c| c.put_online_otp(&missing, &code, later)),
        Err(StorageError::NotFound)
    ));
}

// ---------------------------------------------------------------------------------------------
// login lockout, OAuth 2.0 clients, pending requests, codes, client tokens

fn login_lockout(db: &TestDb) {
    // the password counter is the factor counter's statements on the users row
    let bob = new_user(db, "bob");
    let login = Counter::Login(bob.id);
    let user = |db: &TestDb| {
        let u = db.read(|c| c.user(&bob.id)).unwrap().unwrap();
        (u.failed_logins, u.locked)
    };
    for i in 1..=2 {
        assert!(db.write(|c| c.reserve_attempt(login, 3)).unwrap());
        assert_eq!(user(db), (i, false));
    }
    assert!(db.write(|c| c.clear_attempts(login)).unwrap());
    assert_eq!(user(db), (0, false));
    for _ in 1..=3 {
        assert!(db.write(|c| c.reserve_attempt(login, 3)).unwrap());
    }
    assert!(!db.write(|c| c.reserve_attempt(login, 3)).unwrap());
    assert!(db.write(|c| c.lock_at_limit(login, 3)).unwrap());
    assert_eq!(user(db), (3, true));
    // a success later does not lift the lock; only set_user_lock (the operator) does
    assert!(!db.write(|c| c.clear_attempts(login)).unwrap());
    assert_eq!(user(db), (3, true));
    db.write(|c| c.set_user_lock(&bob.id, 0, false)).unwrap();
    assert_eq!(user(db), (0, false));
    assert_eq!(db.read(|c| c.attempts(login)).unwrap(), Some((0, false)));
    let nobody = Counter::Login(UserId::new());
    assert!(!db.write(|c| c.reserve_attempt(nobody, 3)).unwrap());
    assert_eq!(db.read(|c| c.attempts(nobody)).unwrap(), None);
}

/// Count first (Part I 7.1.2.5.1; DESIGN.md "count first, then act"): 32 concurrent
/// reservations against a limit of 5 win exactly 5 slots, whatever the interleaving, so no more
/// than 5 guesses can ever be verified; then exactly one of the 5 failures sets the lock.
fn reserve_concurrently(db: &TestDb, counter: Counter) {
    const RACERS: usize = 32;
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let store: Store = (**db).clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                store.write(|c| c.reserve_attempt(counter, 5)).unwrap()
            })
        })
        .collect();
    let won = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&reserved| reserved)
        .count();
    assert_eq!(won, 5);
    assert_eq!(db.read(|c| c.attempts(counter)).unwrap(), Some((5, false)));
    let barrier = Arc::new(Barrier::new(won));
    let handles: Vec<_> = (0..won)
        .map(|_| {
            let store: Store = (**db).clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                store.write(|c| c.lock_at_limit(counter, 5)).unwrap()
            })
        })
        .collect();
    let setters = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&set| set)
        .count();
    assert_eq!(setters, 1);
    assert_eq!(db.read(|c| c.attempts(counter)).unwrap(), Some((5, true)));
}

fn login_lockout_concurrent(db: &TestDb) {
    let bob = new_user(db, "bob");
    reserve_concurrently(db, Counter::Login(bob.id));
}

fn factor_lockout_concurrent(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$pin"))
        .unwrap();
    reserve_concurrently(db, Counter::Factor(cred.id, FactorKind::Pin));
}

fn oauth_client(db: &TestDb, id: &str, secret: Option<&[u8]>) -> OAuthClient {
    db.write(|c| {
        c.create_oauth_client(&NewOAuthClient {
            client_id: id.into(),
            name: format!("App {id}"),
            redirect_uris: vec![
                "https://app.example/cb".into(),
                "http://127.0.0.1:9/cb".into(),
            ],
            secret_hash: secret.map(|s| secret_hash(s).to_vec()),
        })
    })
    .unwrap()
}

fn oauth_clients_and_requests(db: &TestDb) {
    let alice = new_user(db, "alice");
    let public = oauth_client(db, "pub-1", None);
    let conf = oauth_client(db, "conf-1", Some(b"s3cret"));
    assert!(!public.is_confidential() && conf.is_confidential());
    assert_eq!(public.redirect_uris[0], "https://app.example/cb");
    assert!(!format!("{conf:?}").contains("secret_hash"));
    assert_eq!(db.read(|c| c.oauth_client("conf-1")).unwrap(), Some(conf));
    assert_eq!(db.read(|c| c.oauth_client("nope")).unwrap(), None);
    assert_eq!(db.read(|c| c.list_oauth_clients()).unwrap().len(), 2);
    assert!(matches!(
        db.write(|c| c.create_oauth_client(&NewOAuthClient {
            client_id: "pub-1".into(),
            name: "again".into(),
            redirect_uris: vec![],
            secret_hash: None,
        })),
        Err(StorageError::Conflict(_))
    ));

    let now = utc_now();
    let handle = secret_hash(b"handle").to_vec();
    db.write(|c| {
        c.insert_oauth_request(&NewOAuthRequest {
            request_hash: handle.clone(),
            client_id: "pub-1".into(),
            params: "{\"scope\":\"service\"}".into(),
            expires_at: now + secs(600),
        })
    })
    .unwrap();
    let r = db.read(|c| c.oauth_request(&handle)).unwrap().unwrap();
    assert_eq!((r.client_id.as_str(), r.user_id), ("pub-1", None));
    // the signer binds once
    assert!(
        db.write(|c| c.bind_oauth_request_user(&handle, &alice.id, utc_now()))
            .unwrap()
    );
    assert!(
        !db.write(|c| c.bind_oauth_request_user(&handle, &alice.id, utc_now()))
            .unwrap()
    );
    assert_eq!(
        db.read(|c| c.oauth_request(&handle))
            .unwrap()
            .unwrap()
            .user_id,
        Some(alice.id)
    );
    assert!(db.write(|c| c.delete_oauth_request(&handle)).unwrap());
    assert!(!db.write(|c| c.delete_oauth_request(&handle)).unwrap());
    // an expired request cannot be bound
    let old = secret_hash(b"old").to_vec();
    db.write(|c| {
        c.insert_oauth_request(&NewOAuthRequest {
            request_hash: old.clone(),
            client_id: "pub-1".into(),
            params: "{}".into(),
            expires_at: now - secs(1),
        })
    })
    .unwrap();
    assert!(
        !db.write(|c| c.bind_oauth_request_user(&old, &alice.id, utc_now()))
            .unwrap()
    );
    assert!(matches!(
        db.write(|c| c.insert_oauth_request(&NewOAuthRequest {
            request_hash: secret_hash(b"x").to_vec(),
            client_id: "ghost".into(),
            params: "{}".into(),
            expires_at: now,
        })),
        Err(StorageError::NotFound)
    ));
    assert_eq!(
        db.purge_expired_before(utc_now(), 1_000).unwrap(),
        Purged {
            oauth_requests: 1,
            ..Purged::default()
        },
        "the expired request"
    );
}

fn oauth_codes_single_use(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::Two);
    oauth_client(db, "pub-1", None);
    let code = secret_hash(b"code-1").to_vec();
    let h = secret_hash(b"document").to_vec();
    let new = NewOAuthCode {
        code_hash: code.clone(),
        client_id: "pub-1".into(),
        user_id: alice.id,
        scope: "credential".into(),
        redirect_uri: "https://app.example/cb".into(),
        redirect_uri_given: true,
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        credential_id: Some(cred.id),
        num_signatures: Some(1),
        hashes: Some(vec![h.clone()]),
        remember: false,
        expires_at: utc_now() + secs(60),
    };
    db.write(|c| c.insert_oauth_code(&new)).unwrap();
    assert_eq!(
        db.write(|c| c.redeem_oauth_code(&secret_hash(b"other")))
            .unwrap(),
        CodeRedemption::Unknown
    );
    let CodeRedemption::Redeemed(first) = db.write(|c| c.redeem_oauth_code(&code)).unwrap() else {
        panic!("first presentation redeems")
    };
    assert_eq!(first.credential_id, Some(cred.id));
    assert_eq!(first.hashes, Some(vec![h]));
    assert_eq!(first.num_signatures, Some(1));
    assert!(first.used && first.redirect_uri_given);
    db.write(|c| c.set_oauth_code_issued(&code, &secret_hash(b"sad")))
        .unwrap();
    let CodeRedemption::AlreadyUsed(again) = db.write(|c| c.redeem_oauth_code(&code)).unwrap()
    else {
        panic!("second presentation is a replay")
    };
    assert_eq!(again.issued_hash, Some(secret_hash(b"sad").to_vec()));

    // concurrent presentations: exactly one wins
    let racy = secret_hash(b"code-2").to_vec();
    db.write(|c| {
        c.insert_oauth_code(&NewOAuthCode {
            code_hash: racy.clone(),
            scope: "service".into(),
            credential_id: None,
            num_signatures: None,
            hashes: None,
            remember: true,
            ..new.clone()
        })
    })
    .unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store: Store = (**db).clone();
            let barrier = barrier.clone();
            let racy = racy.clone();
            thread::spawn(move || {
                barrier.wait();
                store.write(|c| c.redeem_oauth_code(&racy)).unwrap()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|r| matches!(r, CodeRedemption::Redeemed(_)))
        .count();
    assert_eq!(wins, 1);

    // deleting the credential removes its codes
    db.write(|c| c.delete_credential(&cred.id)).unwrap();
    assert_eq!(
        db.write(|c| c.redeem_oauth_code(&code)).unwrap(),
        CodeRedemption::Unknown
    );
}

fn client_tokens_have_no_user(db: &TestDb) {
    oauth_client(db, "conf-1", Some(b"s3cret"));
    let hash = secret_hash(b"client-token").to_vec();
    db.write(|c| {
        c.insert_token(&NewToken {
            token_hash: hash.clone(),
            kind: TokenKind::Access,
            user_id: None,
            client_id: Some("conf-1".into()),
            scope: "service".into(),
            expires_at: utc_now() + secs(60),
            parent_hash: None,
            family: None,
        })
    })
    .unwrap();
    let t = db.read(|c| c.token(&hash)).unwrap().unwrap();
    assert_eq!((t.user_id, t.client_id.as_deref()), (None, Some("conf-1")));
    let (joined, user) = db.read(|c| c.token_and_user(&hash)).unwrap().unwrap();
    assert_eq!((joined, user), (t, None));
    // a user's token comes with its user, in one query
    let alice = new_user(db, "alice");
    let user_hash = secret_hash(b"user-token").to_vec();
    db.write(|c| {
        c.insert_token(&NewToken {
            token_hash: user_hash.clone(),
            kind: TokenKind::Access,
            user_id: Some(alice.id),
            client_id: None,
            scope: "service".into(),
            expires_at: utc_now() + secs(60),
            parent_hash: None,
            family: None,
        })
    })
    .unwrap();
    let (t, user) = db.read(|c| c.token_and_user(&user_hash)).unwrap().unwrap();
    assert_eq!((t.user_id, user), (Some(alice.id), Some(alice)));
    assert_eq!(db.read(|c| c.token_and_user(b"unknown")).unwrap(), None);
    // a token names a user or a client
    let orphan = db.write(|c| {
        c.insert_token(&NewToken {
            token_hash: secret_hash(b"orphan").to_vec(),
            kind: TokenKind::Access,
            user_id: None,
            client_id: None,
            scope: "service".into(),
            expires_at: utc_now(),
            parent_hash: None,
            family: None,
        })
    });
    assert!(orphan.is_err(), "{orphan:?}");
}

// ---------------------------------------------------------------------------------------------
// row integrity (issue 11): the database is untrusted storage

/// Every sealed table: an edit made with SQL behind the store's back (as an insider would) makes
/// the row absent to every read, and the store reports it; rows left alone still read.
fn sealed_rows_edited_behind_the_store_are_absent_and_reported(db: &TestDb) {
    let alice = new_user(db, "alice");
    let bob = new_user(db, "bob");
    let cred = new_credential(db, &alice, Scal::One);
    let other = new_credential(db, &bob, Scal::One);
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "hsm-hmac-sha256:v"))
        .unwrap();
    let sad = sad_for(db, &cred, 1, secs(300), None);
    let token = NewToken {
        token_hash: secret_hash(b"alice-token").to_vec(),
        kind: TokenKind::Access,
        user_id: Some(alice.id),
        client_id: None,
        scope: "service".into(),
        expires_at: utc_now() + secs(300),
        parent_hash: None,
        family: None,
    };
    db.write(|c| c.insert_token(&token)).unwrap();
    assert!(db.take_violations().is_empty());
    // the factor set is sealed with the credential
    let stored = db.read(|c| c.credential(&cred.id)).unwrap().unwrap();
    assert_eq!(stored.factors, vec![FactorKind::Pin]);

    let t = if matches!(db.raw, Raw::Sqlite { .. }) {
        "1"
    } else {
        "TRUE"
    };
    let hex_lit = |b: &[u8]| match db.raw {
        Raw::Sqlite { .. } => format!("X'{}'", hex::encode(b)),
        Raw::Postgres { .. } => format!("'\\x{}'::bytea", hex::encode(b)),
    };
    db.exec_raw(&format!(
        "UPDATE users SET role = 'signer', failed_logins = 7 WHERE id = '{}'",
        alice.id
    ));
    db.exec_raw(&format!(
        "UPDATE credentials SET key_id = 'another-key' WHERE id = '{}'",
        cred.id
    ));
    db.exec_raw(&format!(
        "UPDATE credential_factors SET failures = 0, locked = {t} WHERE credential_id = '{}'",
        cred.id
    ));
    db.exec_raw(&format!(
        "UPDATE sads SET remaining = 50 WHERE sad_hash = {}",
        hex_lit(&sad)
    ));
    db.exec_raw(&format!(
        "UPDATE auth_tokens SET scope = 'service credential' WHERE token_hash = {}",
        hex_lit(&token.token_hash)
    ));

    assert_eq!(db.read(|c| c.user(&alice.id)).unwrap(), None);
    assert_eq!(db.read(|c| c.user_by_name("alice")).unwrap(), None);
    assert_eq!(db.read(|c| c.credential(&cred.id)).unwrap(), None);
    assert!(
        db.read(|c| c.factor(&cred.id, FactorKind::Pin))
            .unwrap()
            .is_none()
    );
    assert_eq!(db.read(|c| c.sad(&sad)).unwrap(), None);
    assert_eq!(db.read(|c| c.token(&token.token_hash)).unwrap(), None);
    assert_eq!(
        db.read(|c| c.token_and_user(&token.token_hash)).unwrap(),
        None
    );
    // nothing can be spent or changed through a bad row either
    assert!(!db.write(|c| c.consume_sad(&sad, 1, utc_now())).unwrap());
    assert!(!db.write(|c| c.revoke_token(&token.token_hash)).unwrap());
    assert!(matches!(
        db.write(|c| c.set_credential_status(&cred.id, CredentialStatus::Disabled)),
        Err(StorageError::NotFound)
    ));
    // the untouched rows of bob still read
    assert!(db.read(|c| c.user(&bob.id)).unwrap().is_some());
    assert!(db.read(|c| c.credential(&other.id)).unwrap().is_some());
    assert_eq!(db.read(|c| c.list_users()).unwrap().len(), 1);

    let tables: std::collections::BTreeSet<&str> =
        db.take_violations().iter().map(|v| v.table).collect();
    assert_eq!(
        tables,
        [
            "auth_tokens",
            "credential_factors",
            "credentials",
            "sads",
            "users"
        ]
        .into()
    );
    assert!(db.take_violations().is_empty(), "taken once");
}

/// A store without its keys neither reads nor writes sealed rows.
fn sealed_rows_need_the_keys(db: &TestDb) {
    let alice = new_user(db, "alice");
    let keyless = match &db.raw {
        Raw::Sqlite { path, .. } => Store::open(&path.display().to_string(), opts(1)),
        Raw::Postgres { url, .. } => Store::open(url, opts(1)),
    }
    .unwrap();
    assert!(matches!(
        keyless.read(|c| c.user(&alice.id)),
        Err(StorageError::NoIntegrityKeys)
    ));
    // and a store with other keys (another token) sees nothing
    let foreign = match &db.raw {
        Raw::Sqlite { path, .. } => Store::open(&path.display().to_string(), opts(1)),
        Raw::Postgres { url, .. } => Store::open(url, opts(1)),
    }
    .unwrap()
    .with_keys(IntegrityKeys::new([9; 32], [8; 32]));
    assert_eq!(foreign.read(|c| c.user(&alice.id)).unwrap(), None);
}

/// The upgrade step: a database from before row integrity (no MACs, no factor sets) is sealed
/// once; afterwards a row without a MAC is never laundered by sealing again.
fn sealing_an_old_database_happens_once(db: &TestDb) {
    let alice = new_user(db, "alice");
    let cred = new_credential(db, &alice, Scal::One);
    db.write(|c| c.set_factor(&cred.id, FactorKind::Pin, "$argon2id$legacy"))
        .unwrap();
    let sad = sad_for(db, &cred, 2, secs(300), None);
    for table in [
        "users",
        "credentials",
        "credential_factors",
        "auth_tokens",
        "sads",
    ] {
        db.exec_raw(&format!("UPDATE {table} SET mac = NULL"));
    }
    db.exec_raw("UPDATE credentials SET factors = ''");
    assert_eq!(
        db.read(|c| c.user(&alice.id)).unwrap(),
        None,
        "unsealed: refused"
    );
    db.take_violations();

    let report = db.seal_unsealed_rows().unwrap();
    assert_eq!(report.legacy_pin_credentials, vec![cred.id.to_string()]);
    assert!(report.sealed.contains(&("credentials".to_owned(), 1)));
    assert!(db.read(|c| c.user(&alice.id)).unwrap().is_some());
    let stored = db.read(|c| c.credential(&cred.id)).unwrap().unwrap();
    assert_eq!(
        stored.factors,
        vec![FactorKind::Pin],
        "factor set from the rows"
    );
    assert!(db.write(|c| c.consume_sad(&sad, 1, utc_now())).unwrap());

    // an insider strips a MAC and waits for the operator to seal again: refused
    db.exec_raw("UPDATE sads SET mac = NULL, remaining = 40");
    assert!(matches!(
        db.seal_unsealed_rows(),
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(db.read(|c| c.sad(&sad)).unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// sessions: delegations, token families, revocation of a user's tokens and SADs

fn client_delegations(db: &TestDb) {
    let alice = new_user(db, "alice");
    let bob = new_user(db, "bob");
    oauth_client(db, "conf-1", Some(b"s3cret"));
    oauth_client(db, "conf-2", Some(b"s3cret"));
    assert_eq!(
        db.read(|c| c.client_delegation("conf-1", &alice.id))
            .unwrap(),
        None
    );
    assert!(
        db.write(|c| c.insert_client_delegation("conf-1", &alice.id))
            .unwrap()
    );
    // a second delegation of the same pair changes nothing
    assert!(
        !db.write(|c| c.insert_client_delegation("conf-1", &alice.id))
            .unwrap()
    );
    assert!(
        db.write(|c| c.insert_client_delegation("conf-2", &bob.id))
            .unwrap()
    );
    let d = db
        .read(|c| c.client_delegation("conf-1", &alice.id))
        .unwrap()
        .unwrap();
    assert_eq!((d.client_id.as_str(), d.user_id), ("conf-1", alice.id));
    // per pair: conf-1 was not given bob, conf-2 not alice
    assert_eq!(
        db.read(|c| c.client_delegation("conf-1", &bob.id)).unwrap(),
        None
    );
    assert_eq!(
        db.read(|c| c.client_delegation("conf-2", &alice.id))
            .unwrap(),
        None
    );
    // an unknown client or user is not found
    assert!(matches!(
        db.write(|c| c.insert_client_delegation("nope", &alice.id)),
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        db.write(|c| c.insert_client_delegation("conf-1", &UserId::new())),
        Err(StorageError::NotFound)
    ));
    let all = db.read(|c| c.list_client_delegations()).unwrap();
    let pairs: Vec<_> = all
        .iter()
        .map(|d| (d.client_id.as_str(), d.user_id))
        .collect();
    assert_eq!(pairs, vec![("conf-1", alice.id), ("conf-2", bob.id)]);
    assert!(
        db.write(|c| c.delete_client_delegation("conf-1", &alice.id))
            .unwrap()
    );
    assert!(
        !db.write(|c| c.delete_client_delegation("conf-1", &alice.id))
            .unwrap()
    );
    assert_eq!(
        db.read(|c| c.client_delegation("conf-1", &alice.id))
            .unwrap(),
        None
    );
    assert_eq!(db.read(|c| c.list_client_delegations()).unwrap().len(), 1);
}

fn token_families_and_user_revocation(db: &TestDb) {
    let alice = new_user(db, "alice");
    let bob = new_user(db, "bob");
    let now = utc_now();
    let token = |name: &[u8], user: &User, kind: TokenKind, family: Option<&[u8]>| NewToken {
        token_hash: secret_hash(name).to_vec(),
        kind,
        user_id: Some(user.id),
        client_id: None,
        scope: "service".into(),
        expires_at: now + secs(600),
        parent_hash: None,
        family: family.map(<[u8]>::to_vec),
    };
    let f = secret_hash(b"r0");
    let g = secret_hash(b"g0");
    let tokens = [
        token(b"r0", &alice, TokenKind::Refresh, Some(&f)),
        token(b"a0", &alice, TokenKind::Access, Some(&f)),
        token(b"r1", &alice, TokenKind::Refresh, Some(&f)),
        token(b"a1", &alice, TokenKind::Access, Some(&f)),
        token(b"g0", &alice, TokenKind::Refresh, Some(&g)),
        token(b"plain", &alice, TokenKind::Access, None),
        token(b"bob", &bob, TokenKind::Access, None),
        token(
            b"bob-r",
            &bob,
            TokenKind::Refresh,
            Some(&secret_hash(b"bob-r")),
        ),
    ];
    db.write(|c| tokens.iter().try_for_each(|t| c.insert_token(t)))
        .unwrap();
    let revoked = |name: &[u8]| {
        db.read(|c| c.token(&secret_hash(name)))
            .unwrap()
            .unwrap()
            .revoked
    };
    let stored = db.read(|c| c.token(&secret_hash(b"a1"))).unwrap().unwrap();
    assert_eq!(stored.family.as_deref(), Some(f.as_slice()));
    // one statement takes the whole family, and nothing else
    assert_eq!(db.write(|c| c.revoke_token_family(&f)).unwrap(), 4);
    assert_eq!(db.write(|c| c.revoke_token_family(&f)).unwrap(), 0);
    for name in [&b"r0"[..], b"a0", b"r1", b"a1"] {
        assert!(revoked(name));
    }
    for name in [&b"g0"[..], b"plain", b"bob", b"bob-r"] {
        assert!(!revoked(name));
    }
    // a user's revocation takes the rest of theirs, not another user's
    assert_eq!(db.write(|c| c.revoke_user_tokens(&alice.id)).unwrap(), 2);
    assert!(revoked(b"g0") && revoked(b"plain"));
    assert!(!revoked(b"bob") && !revoked(b"bob-r"));
    assert_eq!(db.write(|c| c.revoke_user_tokens(&alice.id)).unwrap(), 0);

    // and their SADs
    let cred_a = new_credential(db, &alice, Scal::One);
    let cred_b = new_credential(db, &bob, Scal::One);
    let sad_a1 = sad_for(db, &cred_a, 1, secs(60), None);
    let sad_a2 = sad_for(db, &cred_a, 3, secs(60), None);
    let sad_b = sad_for(db, &cred_b, 1, secs(60), None);
    assert!(db.write(|c| c.revoke_sad(&sad_a2)).unwrap());
    assert_eq!(db.write(|c| c.revoke_user_sads(&alice.id)).unwrap(), 1);
    let sad = |h: &[u8]| db.read(|c| c.sad(h)).unwrap().unwrap();
    assert!(sad(&sad_a1).revoked && sad(&sad_a2).revoked);
    assert!(!sad(&sad_b).revoked);
}

fn user_disable_and_row_read(db: &TestDb) {
    let alice = new_user(db, "alice");
    assert!(!alice.disabled);
    db.write(|c| c.set_user_disabled(&alice.id, true)).unwrap();
    let read = db.read(|c| c.user(&alice.id)).unwrap().unwrap();
    assert!(read.disabled && !read.locked);
    // the login lock and the operator's disable are separate flags
    db.write(|c| c.set_user_lock(&alice.id, 0, false)).unwrap();
    assert!(db.read(|c| c.user(&alice.id)).unwrap().unwrap().disabled);
    let locked_read = db.write(|c| c.user_for_update(&alice.id)).unwrap().unwrap();
    assert_eq!(
        locked_read,
        db.read(|c| c.user(&alice.id)).unwrap().unwrap()
    );
    db.write(|c| c.set_user_disabled(&alice.id, false)).unwrap();
    assert!(!db.read(|c| c.user(&alice.id)).unwrap().unwrap().disabled);
    assert!(matches!(
        db.write(|c| c.set_user_disabled(&UserId::new(), true)),
        Err(StorageError::NotFound)
    ));
    assert_eq!(
        db.write(|c| c.user_for_update(&UserId::new())).unwrap(),
        None
    );
}

/// The OAuth 2.0 rows and the client delegations are sealed too: a redirect URI of the
/// insider's, a delegation they add, a code re-pointed at another user or un-used, are absent.
fn sealed_oauth_and_delegation_rows_edited_behind_the_store_are_refused(db: &TestDb) {
    let alice = new_user(db, "alice");
    let mallory = new_user(db, "mallory");
    oauth_client(db, "app", Some(b"s3cret"));
    oauth_client(db, "other", None);
    assert!(
        db.write(|c| c.insert_client_delegation("app", &alice.id))
            .unwrap()
    );
    let code = NewOAuthCode {
        code_hash: secret_hash(b"code").to_vec(),
        client_id: "app".into(),
        user_id: alice.id,
        scope: "service".into(),
        redirect_uri: "https://app.example/cb".into(),
        redirect_uri_given: true,
        code_challenge: None,
        credential_id: None,
        num_signatures: None,
        hashes: None,
        remember: false,
        expires_at: utc_now() + secs(60),
    };
    db.write(|c| c.insert_oauth_code(&code)).unwrap();
    assert!(db.take_violations().is_empty());

    // a delegation copied (with its MAC) to another user, and one made from nothing
    db.exec_raw(&format!(
        "INSERT INTO client_delegations (client_id, user_id, created_at, mac)
         SELECT client_id, '{}', created_at, mac FROM client_delegations",
        mallory.id
    ));
    db.exec_raw(&format!(
        "INSERT INTO client_delegations (client_id, user_id, created_at, mac)
         SELECT 'other', user_id, created_at, NULL FROM client_delegations WHERE user_id = '{}'",
        alice.id
    ));
    assert_eq!(
        db.read(|c| c.client_delegation("app", &mallory.id))
            .unwrap(),
        None
    );
    assert_eq!(
        db.read(|c| c.client_delegation("other", &alice.id))
            .unwrap(),
        None
    );
    assert!(
        db.read(|c| c.client_delegation("app", &alice.id))
            .unwrap()
            .is_some()
    );
    assert_eq!(db.read(|c| c.list_client_delegations()).unwrap().len(), 1);
    // a client's redirect URIs replaced by the insider's
    db.exec_raw(
        "UPDATE oauth_clients SET redirect_uris = '[\"https://evil.example/cb\"]' WHERE client_id = 'app'",
    );
    assert!(db.read(|c| c.oauth_client("app")).unwrap().is_none());
    // a code re-pointed at mallory
    db.exec_raw(&format!(
        "UPDATE oauth_codes SET user_id = '{}'",
        mallory.id
    ));
    assert!(matches!(
        db.write(|c| c.redeem_oauth_code(&code.code_hash)).unwrap(),
        CodeRedemption::Unknown
    ));
    let tables: std::collections::BTreeSet<&str> =
        db.take_violations().iter().map(|v| v.table).collect();
    assert_eq!(
        tables,
        ["client_delegations", "oauth_clients", "oauth_codes"].into()
    );
}

// ---------------------------------------------------------------------------------------------
// backups (issue 13)

/// `Store::snapshot_sqlite` while four threads append audit records (from before the snapshot
/// starts until it has finished, however long it takes): the copy is one commit's database —
/// its chain verifies, its head is the sealed one, and it is a single file.
#[test]
fn sqlite_snapshot_under_concurrent_appends_is_one_consistent_commit() {
    let db = TestDb::sqlite(8);
    fill_chain(&db, 3);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Arc::new(Barrier::new(5));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (store, stop, started) = ((*db).clone(), stop.clone(), started.clone());
            thread::spawn(move || {
                let mut n = 0usize;
                store.write(|c| c.append_audit(&event(t))).unwrap();
                started.wait();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    store.write(|c| c.append_audit(&event(t))).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    started.wait();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let seal = db.snapshot_sqlite(&copy).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    assert!(seal.verifies(&test_keys()));
    assert!(seal.seq >= 7, "the records before the snapshot are in it");
    // one file: the copy is in rollback-journal mode, no WAL beside it
    let mut raw = SqliteConnection::establish(&copy.display().to_string()).unwrap();
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(&mut raw)
        .unwrap();
    assert_eq!(mode.journal_mode, "delete");
    drop(raw);
    let restored = Store::open(&format!("sqlite://{}", copy.display()), opts(1))
        .unwrap()
        .with_keys(test_keys());
    assert_eq!(
        restored.verify_audit_chain().unwrap(),
        AuditVerdict::Intact {
            records: u64::try_from(seal.seq).unwrap()
        }
    );
    assert_eq!(
        restored.read(|c| c.audit_head()).unwrap(),
        (seal.seq, seal.hash)
    );
    // the live store went on past the copy, and a second snapshot never overwrites one
    assert!(db.read(|c| c.audit_head()).unwrap().0 >= seal.seq);
    assert!(matches!(
        db.snapshot_sqlite(&copy),
        Err(StorageError::Conflict(_))
    ));
}

/// PostgreSQL has pg_dump; the snapshot says so.
#[test]
fn postgres_snapshot_is_refused() {
    let db = TestDb::postgres(2);
    let dir = tempfile::tempdir().unwrap();
    match db.snapshot_sqlite(&dir.path().join("copy.db")) {
        Err(StorageError::Connection(m)) => assert!(m.contains("pg_dump"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!dir.path().join("copy.db").exists());
}

// ---------------------------------------------------------------------------------------------
// the admin API: the audit search and user deletion

fn audit_search_filters_and_pages(db: &TestDb) {
    fill_chain(db, 21);
    db.write(|c| {
        c.append_audit(
            &NewAuditEvent::new(
                AuditEvent::AccessDenied,
                "operator:olga",
                "users",
                "refused",
            )
            .with_detail(json!({})),
        )
    })
    .unwrap();
    let search = |q: AuditQuery| db.read(|c| c.search_audit(&q)).unwrap();
    let all = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    assert_eq!(search(all.clone()).len(), 22);
    // by actor: i % 7 == 3
    let seqs: Vec<i64> = search(AuditQuery {
        actor: Some("user3".into()),
        ..all.clone()
    })
    .iter()
    .map(|r| r.seq)
    .collect();
    assert_eq!(seqs, [4, 11, 18]);
    // pages: after the cursor, at most limit
    let page: Vec<i64> = search(AuditQuery {
        actor: Some("user3".into()),
        after: 4,
        limit: 1,
        ..all.clone()
    })
    .iter()
    .map(|r| r.seq)
    .collect();
    assert_eq!(page, [11]);
    // by event, subject and outcome together
    let refused = search(AuditQuery {
        event: Some("access.denied".into()),
        subject: Some("users".into()),
        outcome: Some("refused".into()),
        ..all.clone()
    });
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].actor, "operator:olga");
    assert!(
        search(AuditQuery {
            event: Some("access.denied".into()),
            outcome: Some("success".into()),
            ..all.clone()
        })
        .is_empty()
    );
    // by time, bounds inclusive
    let records = search(all.clone());
    let (first, last) = (records[0].at, records[21].at);
    assert_eq!(
        search(AuditQuery {
            from: Some(first),
            to: Some(last),
            ..all.clone()
        })
        .len(),
        22
    );
    assert!(
        search(AuditQuery {
            from: Some(last + secs(1)),
            ..all.clone()
        })
        .is_empty()
    );
    assert!(
        search(AuditQuery {
            to: Some(first - secs(1)),
            ..all.clone()
        })
        .is_empty()
    );
    assert!(search(AuditQuery { limit: 0, ..all }).is_empty());
}

fn user_delete_takes_everything_of_theirs(db: &TestDb) {
    let bob = new_user(db, "bob");
    let alice = new_user(db, "alice");
    let gone = new_credential(db, &bob, Scal::One);
    let kept = new_credential(db, &alice, Scal::One);
    let token = |user: &User, name: &[u8]| NewToken {
        token_hash: secret_hash(name).to_vec(),
        kind: TokenKind::Access,
        user_id: Some(user.id),
        client_id: None,
        scope: "admin".into(),
        expires_at: utc_now() + secs(300),
        parent_hash: None,
        family: None,
    };
    db.write(|c| {
        c.insert_token(&token(&bob, b"bob-token"))?;
        c.insert_token(&token(&alice, b"alice-token"))
    })
    .unwrap();
    db.write(|c| c.delete_user(&bob.id)).unwrap();
    assert_eq!(db.read(|c| c.user(&bob.id)).unwrap(), None);
    assert_eq!(db.read(|c| c.credential(&gone.id)).unwrap(), None);
    assert_eq!(
        db.read(|c| c.token(&secret_hash(b"bob-token"))).unwrap(),
        None
    );
    // nobody else's
    assert!(db.read(|c| c.user(&alice.id)).unwrap().is_some());
    assert!(db.read(|c| c.credential(&kept.id)).unwrap().is_some());
    assert!(
        db.read(|c| c.token(&secret_hash(b"alice-token")))
            .unwrap()
            .is_some()
    );
    let again = db.write(|c| c.delete_user(&bob.id));
    assert!(matches!(again, Err(StorageError::NotFound)), "{again:?}");
}

// ---------------------------------------------------------------------------------------------
// group commit on PostgreSQL: batches of several instances on one database

/// The admin-free URL of `db`'s PostgreSQL database.
fn pg_url(db: &TestDb) -> String {
    match &db.raw {
        Raw::Postgres { url, .. } => url.clone(),
        Raw::Sqlite { .. } => panic!("a PostgreSQL test"),
    }
}

/// A signHash-like grouped job: spends one signature of `sad` (for a hash-bound SAD, the hash
/// `h`) with ONE locked read ([`Conn::spend_sad_checked`]), auditing only a win (the
/// write-ahead record). Its value: whether it won.
fn spend_one(
    sad: Vec<u8>,
    h: Vec<u8>,
    actor: String,
) -> impl FnOnce(&mut Conn<'_>) -> Result<(bool, Vec<NewAuditEvent>), StorageError> + Send + 'static
{
    move |c| {
        let now = utc_now();
        let spent = c.spend_sad_checked(&sad, now, |s| {
            let s = s.ok_or("unknown")?;
            if !s.is_usable(now) {
                return Err("unusable");
            }
            Ok(match &s.hashes {
                Some(_) => SadSpend::Hashes(vec![h.clone()]),
                None => SadSpend::Count(1),
            })
        })?;
        let won = matches!(spent, Ok(Some(_)));
        let events = if won {
            vec![
                NewAuditEvent::new(AuditEvent::SignatureSignHash, actor, "cred", "success")
                    .with_detail(json!({ "sad": hex_of(&sad) })),
            ]
        } else {
            Vec::new()
        };
        Ok((won, events))
    }
}

/// A SAD under test: its hash, what it allows, the distinct hashes a spend may name.
struct Pool {
    sad: Vec<u8>,
    signatures: i32,
    names: Vec<Vec<u8>>,
}

/// Two SCAL 1 and two SCAL 2 multi-signature SADs (SCAL 2 with repeated hashes).
fn sad_pool(db: &TestDb) -> Vec<Pool> {
    let alice = new_user(db, "alice");
    let one = new_credential(db, &alice, Scal::One);
    let two = new_credential(db, &alice, Scal::Two);
    let h = |s: &str| secret_hash(s.as_bytes()).to_vec();
    let mut pool = Vec::new();
    for n in [7, 5] {
        pool.push(Pool {
            sad: sad_for(db, &one, n, secs(300), None),
            signatures: n,
            names: vec![Vec::new()],
        });
    }
    for bound in [
        vec![h("a"), h("a"), h("b"), h("c")],
        vec![h("d"), h("e"), h("d")],
    ] {
        let mut names = bound.clone();
        names.sort();
        names.dedup();
        pool.push(Pool {
            sad: sad_for(db, &two, bound.len() as i32, secs(300), Some(bound.clone())),
            signatures: bound.len() as i32,
            names,
        });
    }
    pool
}

/// Two stores ("instances") on one PostgreSQL database, 6 threads each, every thread spending
/// from the same multi-signature SADs in its own order (rotated, half reversed), each spend a
/// grouped job of its instance's batches; optionally a plain `Store::write` per instance that
/// revokes two of those SADs in opposite orders, a pause between them. Returns, per SAD, the
/// spends won, after checking what holds either way: every job and every write answered Ok (no
/// deadlock, no timeout, nothing failed), a SAD never gave more than it allowed and what it
/// gave is exactly what it lost (remaining, and the hashes left for SCAL 2), one success record
/// per spend won, an intact chain.
fn two_instances_spend(revokers: bool) -> (Vec<Pool>, Vec<usize>, Vec<bool>) {
    const THREADS: usize = 6;
    const ROUNDS: usize = 3;
    let db = TestDb::postgres(8);
    let pool = Arc::new(sad_pool(&db));
    let second = Store::open(&pg_url(&db), opts(8))
        .unwrap()
        .with_keys(test_keys());
    let stores = [(*db).clone(), second];
    let barrier = Arc::new(Barrier::new(2 * THREADS + if revokers { 2 } else { 0 }));
    let mut spenders = Vec::new();
    for (instance, store) in stores.iter().enumerate() {
        for t in 0..THREADS {
            let (store, pool, barrier) = (store.clone(), pool.clone(), barrier.clone());
            let worker = instance * THREADS + t;
            spenders.push(thread::spawn(move || {
                let mut order: Vec<usize> = (0..pool.len()).collect();
                order.rotate_left(worker % pool.len());
                if worker % 2 == 1 {
                    order.reverse();
                }
                barrier.wait();
                let mut won = vec![0usize; pool.len()];
                for round in 0..ROUNDS {
                    for &i in &order {
                        let p = &pool[i];
                        let h = p.names[(worker + round) % p.names.len()].clone();
                        let job = spend_one(p.sad.clone(), h, format!("w{worker}"));
                        // blocking, async, and declared (signHash's: on PostgreSQL locked,
                        // read and written with the batch's other declared SADs)
                        let outcome = match worker % 3 {
                            0 => store.write_grouped(job),
                            1 => block_on(store.write_grouped_async(job)),
                            _ => block_on(async {
                                let (ran, durable) =
                                    store.spend_grouped_staged(&p.sad, job).ran().await;
                                let settled = durable.settled().await;
                                ran.and_then(|won| settled.map(|()| won))
                            }),
                        };
                        match outcome {
                            Ok(true) => won[i] += 1,
                            Ok(false) => {}
                            Err(e) => panic!("worker {worker}, SAD {i}: {e}"),
                        }
                    }
                }
                won
            }));
        }
    }
    let mut writers = Vec::new();
    if revokers {
        for (instance, store) in stores.iter().enumerate() {
            let (store, pool, barrier) = (store.clone(), pool.clone(), barrier.clone());
            writers.push(thread::spawn(move || {
                // instance 0 revokes SAD 1 then SAD 3, instance 1 the other way round
                let (first, then) = if instance == 0 { (1, 3) } else { (3, 1) };
                barrier.wait();
                store.write(|c| {
                    c.revoke_sad(&pool[first].sad)?;
                    thread::sleep(Duration::from_millis(30));
                    c.revoke_sad(&pool[then].sad)?;
                    c.append_audit(&NewAuditEvent::new(
                        AuditEvent::CredentialDisable,
                        format!("revoker{instance}"),
                        "cred",
                        "ok",
                    ))
                })
            }));
        }
    }
    let mut won = vec![0usize; pool.len()];
    for h in spenders {
        for (total, w) in won.iter_mut().zip(h.join().expect("spender")) {
            *total += w;
        }
    }
    for h in writers {
        h.join()
            .expect("revoker")
            .expect("the revoking write commits");
    }
    let records = db.read(|c| c.audit_records(0, 10_000)).unwrap();
    for (i, p) in pool.iter().enumerate() {
        let sad = db.read(|c| c.sad(&p.sad)).unwrap().expect("intact SAD");
        assert!(
            won[i] <= p.signatures as usize,
            "SAD {i} over-spent: {won:?}"
        );
        assert_eq!(
            won[i] + sad.remaining as usize,
            p.signatures as usize,
            "SAD {i}: spent {} of {}, {} left",
            won[i],
            p.signatures,
            sad.remaining
        );
        if let Some(left) = &sad.hashes {
            assert_eq!(left.len(), sad.remaining as usize, "SAD {i}");
        }
        let recorded = records
            .iter()
            .filter(|r| r.outcome == "success" && r.detail.contains(&hex_of(&p.sad)))
            .count();
        assert_eq!(
            recorded, won[i],
            "SAD {i}: one success record per spend won"
        );
    }
    let revocations: Vec<i64> = records
        .iter()
        .filter(|r| r.event == "credential.disable")
        .map(|r| r.seq)
        .collect();
    assert_eq!(revocations.len(), if revokers { 2 } else { 0 });
    // the first revoking write revoked both SADs: no spend of them committed after it (the
    // log's order is the commit order: every writer holds the head until its commit)
    if let Some(&first) = revocations.first() {
        for i in [1, 3] {
            let late = records.iter().filter(|r| {
                r.seq > first && r.outcome == "success" && r.detail.contains(&hex_of(&pool[i].sad))
            });
            assert_eq!(late.count(), 0, "SAD {i} spent after its revocation");
        }
    }
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact {
            records: records.len() as u64
        }
    );
    let attempts = (THREADS * ROUNDS * pool.len()) as u64;
    for store in &stores {
        let (batches, jobs) = store.group_commit_stats();
        assert_eq!(jobs, attempts);
        assert!(batches >= 1 && batches <= jobs, "{batches} {jobs}");
    }
    let revoked = pool
        .iter()
        .map(|p| db.read(|c| c.sad(&p.sad)).unwrap().expect("SAD").revoked)
        .collect();
    drop(stores);
    (Arc::try_unwrap(pool).ok().expect("pool"), won, revoked)
}

/// Awaits `f` on this thread (a one-thread runtime per call: the worker of an async caller).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Two instances spend the same SADs through their group commits: exactly every signature of
/// every SAD is spent, never one more, and every job is answered.
#[test]
fn postgres_two_instances_spend_exactly_what_the_sads_allow() {
    let (pool, won, _) = two_instances_spend(false);
    for (i, p) in pool.iter().enumerate() {
        assert_eq!(won[i], p.signatures as usize, "SAD {i} spent whole");
    }
}

/// The same with a plain write on each instance revoking two of those SADs (rows first, the
/// audit last, in opposite orders): writes and batches both take the audit head first, so no
/// lock cycle forms; nothing fails, nothing is over-spent, and the revoked SADs gave nothing
/// after their revocation committed.
#[test]
fn postgres_two_instances_spend_while_plain_writes_revoke() {
    let (pool, won, revoked) = two_instances_spend(true);
    assert_eq!(revoked, vec![false, true, false, true]);
    for i in [0, 2] {
        assert_eq!(won[i], pool[i].signatures as usize, "SAD {i} spent whole");
    }
}

/// A grouped job, boxed (jobs of several kinds in one batch).
type BoxedJob<T> =
    Box<dyn FnOnce(&mut Conn<'_>) -> Result<(T, Vec<NewAuditEvent>), StorageError> + Send>;

/// Jobs queued while this thread holds the writer (`Store::write`), so they run as ONE batch
/// once it returns; their outcomes in queue order.
fn one_batch(db: &TestDb, jobs: Vec<BoxedJob<bool>>) -> Outcomes {
    one_batch_of_spends(db, Vec::new(), jobs).1
}

/// Whether `sad`'s row can be locked right now from a connection outside the store.
fn lockable(url: &str, sad: &[u8]) -> bool {
    let mut c = PgConnection::establish(url).expect("raw pg");
    diesel::sql_query(format!(
        "SELECT sad_hash FROM sads WHERE sad_hash = '\\x{}' FOR UPDATE NOWAIT",
        hex_of(sad)
    ))
    .execute(&mut c)
    .is_ok()
}

fn user_job(name: &str, fail: bool) -> BoxedJob<bool> {
    let name = name.to_owned();
    Box::new(move |c| {
        c.create_user(&NewUser {
            name: name.clone(),
            password_hash: "x".into(),
            role: Role::Signer,
        })?;
        if fail {
            return Err(StorageError::Corrupt(format!("{name} gives up")));
        }
        Ok((
            true,
            vec![NewAuditEvent::new(AuditEvent::UserCreate, "t", name, "ok")],
        ))
    })
}

/// A job that breaks the rule of returning a failed statement's error: it creates `name`,
/// then swallows the refusal of a duplicate name and says it succeeded.
fn swallowing_job(name: &str) -> BoxedJob<bool> {
    let name = name.to_owned();
    Box::new(move |c| {
        c.create_user(&NewUser {
            name: name.clone(),
            password_hash: "x".into(),
            role: Role::Signer,
        })?;
        let refused = c.create_user(&NewUser {
            name: "alice".into(),
            password_hash: "x".into(),
            role: Role::Signer,
        });
        assert!(
            matches!(refused, Err(StorageError::Conflict(_))),
            "{refused:?}"
        );
        Ok((
            true,
            vec![NewAuditEvent::new(AuditEvent::UserCreate, "t", name, "ok")],
        ))
    })
}

/// Inside one PostgreSQL batch a failing job undoes only itself: its savepoint is rolled back
/// and the row locks it took are released at once (another connection locks its SAD while the
/// batch still runs), while a job that succeeded keeps its SAD locked until the batch commits;
/// a statement PostgreSQL refuses (a duplicate name) fails its job alone and the jobs after it
/// still run; a job that swallowed such a refusal and said it succeeded is rolled back and
/// fails alone, in the middle of the batch or at its end; the others commit with their audit
/// records.
#[test]
fn postgres_a_failing_job_in_a_batch_undoes_only_itself() {
    let db = TestDb::postgres(4);
    let url = pg_url(&db);
    let alice = new_user(&db, "alice");
    let cred = new_credential(&db, &alice, Scal::One);
    let (x, y) = (
        sad_for(&db, &cred, 3, secs(300), None),
        sad_for(&db, &cred, 3, secs(300), None),
    );
    type Job = BoxedJob<bool>;
    let probe = |sad: &[u8], subject: &str| -> Job {
        let (url, sad, subject) = (url.clone(), sad.to_vec(), subject.to_owned());
        Box::new(move |_| {
            let free = lockable(&url, &sad);
            Ok((
                free,
                vec![NewAuditEvent::new(
                    AuditEvent::UserList,
                    "probe",
                    subject,
                    "ok",
                )],
            ))
        })
    };
    let jobs: Vec<Job> = vec![
        // spends X, then fails: its spend and its lock on X are undone
        Box::new({
            let x = x.clone();
            move |c| {
                assert!(c.consume_sad(&x, 1, utc_now())?);
                Err(StorageError::Corrupt("the spend of X gives up".into()))
            }
        }),
        probe(&x, "x"),
        // spends Y and succeeds: Y stays locked by the batch
        Box::new({
            let y = y.clone();
            move |c| {
                let won = c.consume_sad(&y, 1, utc_now())?;
                Ok((
                    won,
                    vec![NewAuditEvent::new(
                        AuditEvent::SignatureSignHash,
                        "t",
                        "y",
                        "success",
                    )],
                ))
            }
        }),
        probe(&y, "y"),
        // a statement PostgreSQL refuses: the name is taken
        user_job("alice", false),
        swallowing_job("carol"),
        user_job("bob", false),
        swallowing_job("dave"),
    ];
    let outcomes = one_batch(&db, jobs);
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(v) => format!("ok {v}"),
            Err(StorageError::Conflict(_)) => "conflict".into(),
            Err(StorageError::Corrupt(m)) => format!("corrupt {m}"),
            Err(StorageError::Commit(m)) if m.contains("left its transaction aborted") => {
                "error the job left its transaction aborted".into()
            }
            Err(e) => format!("error {e}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "corrupt the spend of X gives up",
            "ok true",  // X was free again inside the batch
            "ok true",  // Y spent
            "ok false", // Y still locked by the batch
            "conflict",
            "error the job left its transaction aborted",
            "ok true",
            "error the job left its transaction aborted",
        ]
    );
    assert_eq!((remaining(&db, &x), remaining(&db, &y)), (3, 2));
    assert!(db.read(|c| c.user_by_name("bob")).unwrap().is_some());
    for undone in ["carol", "dave"] {
        assert!(db.read(|c| c.user_by_name(undone)).unwrap().is_none());
    }
    let records = db.read(|c| c.audit_records(0, 100)).unwrap();
    let subjects: Vec<&str> = records.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["x", "y", "y", "bob"]);
    assert_eq!(
        db.verify_audit_chain().unwrap(),
        AuditVerdict::Intact { records: 4 }
    );
}

/// A staged job (`write_grouped_staged`, signHash's) in a PostgreSQL batch is told it ran only
/// once the batch is settled: a job that swallowed a refused statement and said it succeeded is
/// rolled back when its savepoint is released, and its `ran` is that error, never `Ok`; a job
/// after it in the same batch runs, is kept, and settles committed.
#[test]
fn postgres_a_staged_job_hears_it_ran_only_once_kept() {
    let db = TestDb::postgres(4);
    new_user(&db, "alice");
    let before = db.group_commit_stats();
    let staged = db
        .write(|_| {
            Ok(vec![
                db.write_grouped_staged(swallowing_job("carol")),
                db.write_grouped_staged(user_job("bob", false)),
            ])
        })
        .unwrap();
    let outcomes: Vec<_> = staged
        .into_iter()
        .map(|s| {
            block_on(async {
                let (ran, durable) = s.ran().await;
                (ran, durable.settled().await)
            })
        })
        .collect();
    let after = db.group_commit_stats();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 2),
        "one batch"
    );
    assert!(
        matches!(&outcomes[0].0, Err(StorageError::Commit(m)) if m.contains("left its transaction aborted")),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], (Ok(true), Ok(()))),
        "{:?}",
        outcomes[1]
    );
    assert!(db.read(|c| c.user_by_name("carol")).unwrap().is_none());
    assert!(db.read(|c| c.user_by_name("bob")).unwrap().is_some());
}

/// A PostgreSQL batch whose COMMIT fails (a deferred constraint refuses one job's record at
/// commit) fails every job of it, also those whose savepoints were released: none of their
/// users or records is there.
#[test]
fn postgres_a_failed_batch_commit_fails_every_job() {
    let db = TestDb::postgres(4);
    db.exec_raw(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'refused at commit'; \
         END IF; RETURN NEW; END $$",
    );
    db.exec_raw(
        "CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON audit_log \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    );
    let jobs = vec![
        user_job("u0", false),
        user_job("u1", false),
        user_job("poison", false),
        user_job("u3", false),
    ];
    for (i, outcome) in one_batch(&db, jobs).into_iter().enumerate() {
        assert!(
            matches!(outcome, Err(StorageError::Commit(ref m)) if m.contains("refused at commit")),
            "job {i}: {outcome:?}"
        );
    }
    for name in ["u0", "u1", "poison", "u3"] {
        assert!(
            db.read(|c| c.user_by_name(name)).unwrap().is_none(),
            "{name}"
        );
    }
    assert!(db.read(|c| c.audit_records(0, 100)).unwrap().is_empty());
    // the next batch commits
    let outcomes = one_batch(&db, vec![user_job("u4", false)]);
    assert!(matches!(outcomes[..], [Ok(true)]), "{outcomes:?}");
}

/// A grouped write inside a plain write would wait for itself on either backend (the write
/// holds the writer, and on PostgreSQL the audit head): it is refused at once.
fn grouped_inside_a_write_is_refused(db: &TestDb) {
    let r = db.write(|_| Ok(db.write_grouped(|_| Ok(((), Vec::new())))));
    assert!(
        matches!(r, Ok(Err(StorageError::Commit(ref m))) if m.contains("wait for itself")),
        "{r:?}"
    );
}
