//! Service tokens and the OAuth 2.0 server's rules (sam::tokens, sam::oauth) on a real SoftHSM2
//! token and a real SQLite database, no mocks: code single use (also under concurrency), a
//! replayed code revoking what it bought, PKCE and redirect URI bindings, client
//! authentication, refresh and revocation, and the consent page's activation checks. Run with
//! cargo-nextest (one process per test: one PKCS#11 context).

// a failing test should fail loudly
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Barrier};

use cm_pkcs11::KeySpec;
use cm_pkcs11::testkit::TestToken;
use common::PgDb;
use sam::oauth::CODE_PREFIX;
use sam::{
    Caller, ClientAuth, CodeBinding, CodeGrant, NewCredentialRequest, OAuthClient, OAuthError,
    OtpChoice, Principal, Sam, SamError, TokenPolicy, User,
};
use secrecy::SecretString;
use storage::{CredentialStatus, NewOAuthClient, NewUser, Role, Scal, Store, StoreOptions};

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const ALICE_PASSWORD: &str = "alice-password";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Fixture {
    _token: TestToken,
    _dir: tempfile::TempDir,
    sam: Sam,
    alice: User,
    policy: TokenPolicy,
}

fn fixture() -> Fixture {
    fixture_on(None)
}

/// The fixture on a database of its own: the SQLite file of its directory, or `pg` (a fresh
/// PostgreSQL database, [`PgDb`]).
fn fixture_on(pg: Option<&PgDb>) -> Fixture {
    let token = TestToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("csc.db").display()),
    };
    let store = Store::open_or_create(
        &url,
        StoreOptions {
            pool_size: 20,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    let sam = Sam::open(&token.config, store, &dir.path().join("dev-ca.json")).expect("sam");
    // rows are written through the SAM's store: it holds the integrity keys
    let store = sam.store().clone();
    let alice_password_hash =
        sam::secrets::hash_secret(&SecretString::from(ALICE_PASSWORD)).expect("hash");
    let alice = store
        .write(|c| {
            c.create_user(&NewUser {
                name: "alice".into(),
                password_hash: alice_password_hash.clone(),
                role: Role::Signer,
            })
        })
        .expect("user");
    store
        .write(|c| {
            c.create_oauth_client(&NewOAuthClient {
                client_id: "public-app".into(),
                name: "Public app".into(),
                redirect_uris: vec![REDIRECT.into()],
                secret_hash: None,
            })?;
            c.create_oauth_client(&NewOAuthClient {
                client_id: "server-app".into(),
                name: "Server app".into(),
                redirect_uris: vec![REDIRECT.into()],
                secret_hash: Some(storage::secret_hash(b"s3cret").to_vec()),
            })
        })
        .expect("clients");
    Fixture {
        _token: token,
        _dir: dir,
        sam,
        alice,
        policy: TokenPolicy {
            access_ttl: chrono::Duration::minutes(5),
            refresh_ttl: chrono::Duration::hours(1),
        },
    }
}

impl Fixture {
    fn client(&self, id: &str) -> OAuthClient {
        self.sam
            .oauth_client(id)
            .expect("read")
            .expect("registered")
    }

    /// A scope `service` code of `client` for alice, through a pending request as the page
    /// makes it.
    fn service_code(&self, client: &str, challenge: Option<&str>, remember: bool) -> String {
        let pending = self
            .sam
            .create_oauth_request(client, "{}".into(), chrono::Duration::minutes(10))
            .expect("pending request");
        let code = self
            .sam
            .issue_service_code(
                &self.alice,
                &CodeBinding {
                    client_id: client.into(),
                    redirect_uri: REDIRECT.into(),
                    redirect_uri_given: true,
                    code_challenge: challenge.map(str::to_owned),
                    pending_request: pending.request_hash.to_vec(),
                    code_ttl: chrono::Duration::minutes(1),
                },
                remember,
            )
            .expect("code");
        assert!(code.starts_with(CODE_PREFIX), "{code}");
        code
    }

    fn exchange(
        &self,
        client: &str,
        code: &str,
        verifier: Option<&str>,
    ) -> Result<CodeGrant, SamError> {
        self.sam.exchange_code(
            &self.policy,
            &self.client(client),
            code,
            Some(REDIRECT),
            verifier,
        )
    }

    fn count(&self, event: &str, outcome: &str) -> usize {
        self.sam
            .store()
            .read(|c| c.audit_records(0, 100_000))
            .expect("audit")
            .iter()
            .filter(|r| r.event == event && r.outcome == outcome)
            .count()
    }
}

fn service(grant: Result<CodeGrant, SamError>) -> sam::IssuedTokens {
    match grant {
        Ok(CodeGrant::Service(t)) => t,
        other => panic!("not service tokens: {other:?}"),
    }
}

fn oauth_err(r: Result<impl std::fmt::Debug, SamError>) -> OAuthError {
    match r {
        Err(SamError::OAuth(e)) => e,
        other => panic!("not an OAuth refusal: {other:?}"),
    }
}

#[test]
fn a_replayed_code_revokes_the_tokens_it_bought() {
    let f = fixture();
    let code = f.service_code("public-app", Some(CHALLENGE), true);
    let tokens = service(f.exchange("public-app", &code, Some(VERIFIER)));
    let refresh = tokens
        .refresh_token
        .clone()
        .expect("remember: a refresh token");
    assert!(matches!(
        f.sam.principal_of(&tokens.access_token),
        Ok(Principal::User(Caller { user, .. })) if user == f.alice.id
    ));
    // the tokens of the grant after a rotation of its refresh token die with it too
    let minted = f
        .sam
        .refresh_oauth_token(&f.policy, &f.client("public-app"), &refresh)
        .expect("refresh");
    let rotated = minted
        .refresh_token
        .clone()
        .expect("rotation: a new refresh token");

    let replay = f.exchange("public-app", &code, Some(VERIFIER));
    assert_eq!(oauth_err(replay), OAuthError::CodeUsedOrExpired);
    for t in [&tokens.access_token, &minted.access_token] {
        // revoked reads as expired_token ("expired or has been revoked")
        assert!(matches!(f.sam.principal_of(t), Err(SamError::ExpiredToken)));
    }
    assert_eq!(
        oauth_err(
            f.sam
                .refresh_oauth_token(&f.policy, &f.client("public-app"), &rotated)
        ),
        OAuthError::InvalidRefreshToken
    );
    // audited: two issued (code, refresh), one refusal saying what the replay did (and one
    // for the rotated refresh token presented after its grant was revoked)
    assert_eq!(f.count("oauth2.token", "success"), 2);
    let refusals: Vec<_> = f
        .sam
        .store()
        .read(|c| c.audit_records(0, 1000))
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "oauth2.token" && r.outcome == "refused")
        .collect();
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals[0]
            .detail
            .contains("code used twice: its tokens were revoked"),
        "{}",
        refusals[0].detail
    );
}

#[test]
fn a_code_is_single_use_under_concurrency() {
    let f = Arc::new(fixture());
    let code = Arc::new(f.service_code("public-app", Some(CHALLENGE), false));
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (f, code, barrier) = (f.clone(), code.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f.exchange("public-app", &code, Some(VERIFIER))
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert_eq!(oauth_err(r), OAuthError::CodeUsedOrExpired);
    }
}

#[test]
fn codes_are_bound_to_the_client_the_redirect_uri_and_the_pkce_verifier() {
    let f = fixture();
    let unknown = f.exchange("public-app", "csc_ac_nonsense", Some(VERIFIER));
    assert_eq!(oauth_err(unknown), OAuthError::InvalidCode);

    let code = f.service_code("public-app", Some(CHALLENGE), false);
    assert_eq!(
        oauth_err(f.exchange("server-app", &code, Some(VERIFIER))),
        OAuthError::InvalidCode
    );
    // presented once (by the wrong client): used up
    assert_eq!(
        oauth_err(f.exchange("public-app", &code, Some(VERIFIER))),
        OAuthError::CodeUsedOrExpired
    );

    let code = f.service_code("public-app", Some(CHALLENGE), false);
    assert_eq!(
        oauth_err(f.exchange("public-app", &code, None)),
        OAuthError::MissingCodeVerifier
    );
    let code = f.service_code("public-app", Some(CHALLENGE), false);
    let wrong = "x".repeat(43);
    assert_eq!(
        oauth_err(f.exchange("public-app", &code, Some(&wrong))),
        OAuthError::InvalidCodeVerifier
    );
    let code = f.service_code("public-app", Some(CHALLENGE), false);
    let r = f.sam.exchange_code(
        &f.policy,
        &f.client("public-app"),
        &code,
        Some("http://127.0.0.1:9/other"),
        Some(VERIFIER),
    );
    assert_eq!(oauth_err(r), OAuthError::RedirectUriMismatch);
    assert_eq!(f.count("oauth2.token", "refused"), 5);
}

#[test]
fn a_pending_request_yields_one_code() {
    let f = fixture();
    let pending = f
        .sam
        .create_oauth_request("public-app", "{}".into(), chrono::Duration::minutes(10))
        .expect("pending");
    let binding = CodeBinding {
        client_id: "public-app".into(),
        redirect_uri: REDIRECT.into(),
        redirect_uri_given: true,
        code_challenge: Some(CHALLENGE.into()),
        pending_request: pending.request_hash.to_vec(),
        code_ttl: chrono::Duration::minutes(1),
    };
    f.sam
        .issue_service_code(&f.alice, &binding, false)
        .expect("first");
    let again = f.sam.issue_service_code(&f.alice, &binding, false);
    assert!(matches!(again, Err(SamError::RequestGone)), "{again:?}");
    // the form of a finished request is unknown; an unverified form is audited
    let r = f.sam.open_oauth_request(&pending.handle, true);
    assert_eq!(oauth_err(r), OAuthError::UnknownRequest);
    let other = f
        .sam
        .create_oauth_request("public-app", "{}".into(), chrono::Duration::minutes(10))
        .expect("pending");
    let r = f.sam.open_oauth_request(&other.handle, false);
    assert_eq!(oauth_err(r), OAuthError::FormNotVerified);
    assert_eq!(f.count("oauth2.authorize", "refused"), 1);
    assert_eq!(f.count("oauth2.authorize", "success"), 1);
    let expired = f
        .sam
        .create_oauth_request("public-app", "{}".into(), chrono::Duration::minutes(-1))
        .expect("pending");
    let r = f.sam.open_oauth_request(&expired.handle, true);
    assert_eq!(oauth_err(r), OAuthError::RequestExpired);
    let r = f.sam.open_oauth_request(&expired.handle, true);
    assert_eq!(
        oauth_err(r),
        OAuthError::UnknownRequest,
        "removed when found expired"
    );
}

#[test]
fn clients_authenticate_and_refusals_are_audited() {
    let f = fixture();
    let auth = |id: &str, secret: Option<&str>| {
        f.sam.authenticate_client(&ClientAuth {
            client_id: id.into(),
            secret: secret.map(str::to_owned),
        })
    };
    assert_eq!(
        auth("server-app", Some("s3cret")).expect("ok").client_id,
        "server-app"
    );
    assert_eq!(
        auth("public-app", None).expect("ok").client_id,
        "public-app"
    );
    assert_eq!(oauth_err(auth("nobody", None)), OAuthError::UnknownClient);
    assert_eq!(
        oauth_err(auth("server-app", None)),
        OAuthError::ClientAuthRequired
    );
    assert_eq!(
        oauth_err(auth("server-app", Some("wrong"))),
        OAuthError::InvalidClientSecret
    );
    assert_eq!(
        oauth_err(auth("public-app", Some("s3cret"))),
        OAuthError::InvalidClientSecret
    );
    assert_eq!(f.count("oauth2.client_auth", "refused"), 4);

    // client_credentials: confidential clients only; the token names no user
    let r = f
        .sam
        .client_credentials_token(&f.policy, &f.client("public-app"));
    assert_eq!(oauth_err(r), OAuthError::UnauthorizedClient);
    let t = f
        .sam
        .client_credentials_token(&f.policy, &f.client("server-app"))
        .expect("client token");
    assert!(t.refresh_token.is_none());
    assert!(matches!(
        f.sam.principal_of(&t.access_token),
        Ok(Principal::Client { ref client_id, .. }) if client_id == "server-app"
    ));
    // revoked by its client only
    assert!(matches!(
        f.sam
            .revoke_oauth_token(&f.client("public-app"), &t.access_token),
        Err(SamError::UnknownToken)
    ));
    f.sam
        .revoke_oauth_token(&f.client("server-app"), &t.access_token)
        .expect("revoke");
    assert!(matches!(
        f.sam.principal_of(&t.access_token),
        Err(SamError::ExpiredToken)
    ));
}

#[test]
fn login_tokens_refresh_expire_and_revoke() {
    let f = fixture();
    let issued = f
        .sam
        .login_with_password(
            &f.policy,
            "alice",
            &SecretString::from(ALICE_PASSWORD),
            true,
        )
        .expect("login")
        .expect("the right password");
    let refresh = issued.refresh_token.clone().expect("rememberMe");
    let renewed = f
        .sam
        .login_with_refresh_token(&f.policy, &refresh)
        .expect("refresh login");
    // rotated: a new refresh token comes with the new access token
    assert!(renewed.from_refresh);
    assert!(
        renewed
            .refresh_token
            .as_ref()
            .is_some_and(|r| *r != refresh)
    );
    assert!(matches!(
        f.sam
            .login_with_refresh_token(&f.policy, &issued.access_token),
        Err(SamError::InvalidRefreshToken)
    ));
    assert_eq!(f.count("auth.login", "success"), 2);

    // another user's principal cannot revoke alice's token
    let bob = Principal::User(Caller {
        user: storage::UserId::new(),
        user_name: "bob".into(),
        token_hash: [0; 32],
    });
    assert!(matches!(
        f.sam.revoke_service_token(&bob, &refresh),
        Err(SamError::UnknownToken)
    ));
    let alice = f.sam.principal_of(&issued.access_token).expect("principal");
    f.sam
        .revoke_service_token(&alice, &refresh)
        .expect("revoke the refresh token");
    for t in [&issued.access_token, &renewed.access_token] {
        // revoked reads as expired_token ("expired or has been revoked")
        assert!(matches!(f.sam.principal_of(t), Err(SamError::ExpiredToken)));
    }
    assert_eq!(f.count("auth.revoke", "success"), 1);

    let expired = f
        .sam
        .login_with_password(
            &TokenPolicy {
                access_ttl: chrono::Duration::seconds(-1),
                refresh_ttl: chrono::Duration::seconds(-1),
            },
            "alice",
            &SecretString::from(ALICE_PASSWORD),
            false,
        )
        .expect("login")
        .expect("the right password");
    assert!(matches!(
        f.sam.principal_of(&expired.access_token),
        Err(SamError::ExpiredToken)
    ));
}

#[test]
fn the_consent_checks_are_the_activation_checks() {
    let f = fixture();
    let caller = Caller {
        user: f.alice.id,
        user_name: "alice".into(),
        token_hash: [0; 32],
    };
    let create = |scal, multisign| {
        f.sam
            .create_credential(
                NewCredentialRequest {
                    user_name: "alice".into(),
                    spec: KeySpec::EcP256,
                    scal,
                    multisign,
                    pin: SecretString::from("1234"),
                    otp: if scal == Scal::Two {
                        OtpChoice::Online
                    } else {
                        OtpChoice::None
                    },
                    auth_mode: storage::AuthMode::Explicit,
                    description: None,
                },
                &sam::Actor::new("test", sam::Role::Operator),
            )
            .expect("credential")
            .credential
    };
    let one = create(Scal::One, 2);
    let two = create(Scal::Two, 2);
    let h = vec![vec![7u8; 32]];
    f.sam
        .check_activation(&caller, &one.id, 2, None)
        .expect("fine");
    f.sam
        .check_activation(&caller, &two.id, 1, Some(h.clone()))
        .expect("fine");
    let r = f.sam.check_activation(&caller, &one.id, 3, None);
    assert!(matches!(r, Err(SamError::TooManySignatures)), "{r:?}");
    let r = f.sam.check_activation(&caller, &two.id, 1, None);
    assert!(matches!(r, Err(SamError::MissingHash)), "{r:?}");
    let r = f.sam.check_activation(
        &caller,
        &one.id,
        1,
        Some(vec![vec![1u8; 32], vec![2u8; 32]]),
    );
    assert!(matches!(r, Err(SamError::TooManySignatures)), "{r:?}");
    let r = f
        .sam
        .check_activation(&caller, &storage::CredentialId::new(), 1, None);
    assert!(matches!(r, Err(SamError::UnknownCredential(_))), "{r:?}");
    f.sam
        .store()
        .write(|c| c.set_credential_status(&one.id, CredentialStatus::Disabled))
        .expect("disable");
    let r = f.sam.check_activation(&caller, &one.id, 1, None);
    assert!(matches!(r, Err(SamError::CredentialDisabled)), "{r:?}");
    // checking writes nothing: no activation, no audit record of one
    assert_eq!(f.count("sad.authorize", "refused"), 0);
}

// ---------------------------------------------------------------------------------------------
// sessions that end (issue 11): a code's replay race, refresh-token rotation, disabled signers

/// Runs `f` on `n` threads released together; their results in thread order.
fn race<T: Send + 'static>(n: usize, f: impl Fn() -> T + Send + Sync + 'static) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

/// 16 threads redeem one code at once: exactly one gets tokens, and because the others are
/// replays, what it got is revoked once all are done. The redemption mark and the issuing are
/// one transaction, so no replay can look between them (see the code used with nothing recorded
/// to revoke yet).
///
/// With `hold` (PostgreSQL), the test makes that window as wide as it can be: it locks
/// `auth_tokens` against writes before the race, so whoever redeems the code stalls at storing
/// its tokens, and lets go only once the 15 others have finished (possible only if they could
/// look at the code while the winner had not stored its tokens) or are all waiting for the
/// winner. Redemption and issuing in two transactions fails this every time; without `hold`
/// (SQLite, one writer at a time) the window is only as wide as scheduling makes it.
fn sixteen_concurrent_redemptions_of_a_code(f: Fixture, hold: Option<&PgDb>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const N: usize = 16;
    let f = Arc::new(f);
    let code = f.service_code("public-app", Some(CHALLENGE), true);
    let finished = Arc::new(AtomicUsize::new(0));
    let releaser = hold.map(|db| {
        use diesel::{Connection, PgConnection, RunQueryDsl};
        let mut conn = PgConnection::establish(&db.url).expect("connect");
        diesel::sql_query("BEGIN")
            .execute(&mut conn)
            .expect("begin");
        diesel::sql_query("LOCK TABLE auth_tokens IN EXCLUSIVE MODE")
            .execute(&mut conn)
            .expect("lock auth_tokens");
        // a connection of its own to watch (pg_stat_activity is a snapshot per transaction)
        let mut watch = PgConnection::establish(&db.url).expect("connect");
        let finished = finished.clone();
        std::thread::spawn(move || {
            #[derive(diesel::QueryableByName)]
            struct Waiting {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let waiting: Waiting = diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .get_result(&mut watch)
                .expect("pg_stat_activity");
                let all_waiting = usize::try_from(waiting.n).unwrap_or(0) >= N;
                if all_waiting
                    || finished.load(Ordering::SeqCst) >= N - 1
                    || std::time::Instant::now() > deadline
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            diesel::sql_query("COMMIT")
                .execute(&mut conn)
                .expect("commit");
        })
    });
    let results = race(N, {
        let (f, finished) = (f.clone(), finished.clone());
        move || {
            let r = f.exchange("public-app", &code, Some(VERIFIER));
            finished.fetch_add(1, Ordering::SeqCst);
            r
        }
    });
    if let Some(r) = releaser {
        r.join().expect("releaser");
    }
    let won: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Ok(CodeGrant::Service(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert_eq!(oauth_err(r), OAuthError::CodeUsedOrExpired);
    }
    let tokens = &won[0];
    assert!(
        matches!(
            f.sam.principal_of(&tokens.access_token),
            Err(SamError::ExpiredToken)
        ),
        "the winner's access token outlived the replays"
    );
    let refresh = tokens.refresh_token.as_deref().expect("remember");
    assert_eq!(
        oauth_err(
            f.sam
                .refresh_oauth_token(&f.policy, &f.client("public-app"), refresh)
        ),
        OAuthError::InvalidRefreshToken
    );
    // 15 refusals, each in the transaction that revoked (or found revoked) what the code bought
    assert_eq!(f.count("oauth2.token", "success"), 1);
    assert!(f.count("oauth2.token", "refused") >= 15);
}

#[test]
fn sixteen_concurrent_redemptions_of_a_code_leave_nothing_alive_sqlite() {
    sixteen_concurrent_redemptions_of_a_code(fixture(), None);
}

#[test]
fn sixteen_concurrent_redemptions_of_a_code_leave_nothing_alive_postgres() {
    let db = PgDb::create();
    sixteen_concurrent_redemptions_of_a_code(fixture_on(Some(&db)), Some(&db));
}

/// Using a refresh token replaces it (rotation); presenting the replaced one again revokes the
/// whole grant: the tokens it bought, the new refresh token and what that minted.
#[test]
fn a_refresh_token_is_rotated_and_its_reuse_revokes_the_grant() {
    let f = fixture();
    let app = f.client("server-app");
    let code = f.service_code("server-app", None, true);
    let first = service(
        f.sam
            .exchange_code(&f.policy, &app, &code, Some(REDIRECT), None),
    );
    let r0 = first.refresh_token.clone().expect("remember");
    let second = f
        .sam
        .refresh_oauth_token(&f.policy, &app, &r0)
        .expect("rotation");
    let r1 = second.refresh_token.clone().expect("a new refresh token");
    assert_ne!(r0, r1);
    let third = f
        .sam
        .refresh_oauth_token(&f.policy, &app, &r1)
        .expect("rotation of the new one");
    let r2 = third.refresh_token.clone().expect("and again");
    // the rotated token keeps the grant's expiry (rotation never extends a sign-in)
    let expiry = |t: &str| {
        f.sam
            .store()
            .read(|c| c.token(&storage::secret_hash(t.as_bytes())))
            .expect("read")
            .expect("stored")
            .expires_at
    };
    assert_eq!(expiry(&r2), expiry(&r0));
    assert!(matches!(
        f.sam.principal_of(&third.access_token),
        Ok(Principal::User(_))
    ));
    // r0 again: a reuse. Refused, and the grant is over
    assert_eq!(
        oauth_err(f.sam.refresh_oauth_token(&f.policy, &app, &r0)),
        OAuthError::InvalidRefreshToken
    );
    for t in [&first, &second, &third] {
        assert!(matches!(
            f.sam.principal_of(&t.access_token),
            Err(SamError::ExpiredToken)
        ));
    }
    assert_eq!(
        oauth_err(f.sam.refresh_oauth_token(&f.policy, &app, &r2)),
        OAuthError::InvalidRefreshToken
    );
    let reused = f
        .sam
        .store()
        .read(|c| c.audit_records(0, 1000))
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == "oauth2.token" && r.detail.contains("refresh token reused"))
        .count();
    assert_eq!(
        reused, 2,
        "r0 and then r2, both after the grant was revoked"
    );

    // the same for auth/login refresh tokens
    let login = f
        .sam
        .login_with_password(
            &f.policy,
            "alice",
            &SecretString::from(ALICE_PASSWORD),
            true,
        )
        .expect("login")
        .expect("the right password");
    let l0 = login.refresh_token.clone().expect("rememberMe");
    let renewed = f
        .sam
        .login_with_refresh_token(&f.policy, &l0)
        .expect("rotation");
    let l1 = renewed.refresh_token.clone().expect("a new refresh token");
    assert!(matches!(
        f.sam.login_with_refresh_token(&f.policy, &l0),
        Err(SamError::InvalidRefreshToken)
    ));
    assert!(matches!(
        f.sam.login_with_refresh_token(&f.policy, &l1),
        Err(SamError::InvalidRefreshToken)
    ));
    assert!(matches!(
        f.sam.principal_of(&renewed.access_token),
        Err(SamError::ExpiredToken)
    ));
}

/// 16 threads present one refresh token at once: exactly one rotation, and since the others
/// are reuses the grant is revoked once all are done (on both backends).
fn sixteen_concurrent_rotations(f: Fixture) {
    let f = Arc::new(f);
    let code = f.service_code("server-app", None, true);
    let app = f.client("server-app");
    let first = service(
        f.sam
            .exchange_code(&f.policy, &app, &code, Some(REDIRECT), None),
    );
    let r0 = first.refresh_token.clone().expect("remember");
    let results = race(16, {
        let f = f.clone();
        move || {
            f.sam
                .refresh_oauth_token(&f.policy, &f.client("server-app"), &r0)
        }
    });
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(matches!(
        f.sam.principal_of(&won[0].access_token),
        Err(SamError::ExpiredToken)
    ));
    let r1 = won[0].refresh_token.as_deref().expect("rotated");
    assert_eq!(
        oauth_err(f.sam.refresh_oauth_token(&f.policy, &app, r1)),
        OAuthError::InvalidRefreshToken
    );
}

#[test]
fn sixteen_concurrent_rotations_of_a_refresh_token_rotate_once_sqlite() {
    sixteen_concurrent_rotations(fixture());
}

#[test]
fn sixteen_concurrent_rotations_of_a_refresh_token_rotate_once_postgres() {
    let db = PgDb::create();
    sixteen_concurrent_rotations(fixture_on(Some(&db)));
}

/// A code whose signer was disabled (or locked) after approving buys nothing: the redemption
/// transaction reads the signer with its row locked.
#[test]
fn a_disabled_signers_code_buys_nothing() {
    let f = fixture();
    let code = f.service_code("public-app", Some(CHALLENGE), true);
    f.sam
        .disable_user("alice", &sam::Actor::new("test", sam::Role::Operator))
        .expect("disable");
    assert_eq!(
        oauth_err(f.exchange("public-app", &code, Some(VERIFIER))),
        OAuthError::InvalidCode
    );
    // and it is used up: enabling the signer again does not revive it
    f.sam
        .enable_user("alice", &sam::Actor::new("test", sam::Role::Operator))
        .expect("enable");
    assert_eq!(
        oauth_err(f.exchange("public-app", &code, Some(VERIFIER))),
        OAuthError::CodeUsedOrExpired
    );
    // the login of a disabled user is refused like a locked one's, even with the right password
    let password = SecretString::from("alice-password");
    f.sam
        .store()
        .write(|c| {
            c.set_user_password(
                &f.alice.id,
                &sam::secrets::hash_secret(&password).expect("hash"),
            )
        })
        .expect("password");
    f.sam
        .disable_user("alice", &sam::Actor::new("test", sam::Role::Operator))
        .expect("disable");
    assert_eq!(
        f.sam
            .login_with_password(&f.policy, "alice", &password, false)
            .expect("checked")
            .map(drop),
        Err(sam::LoginRefusal::Locked)
    );
    f.sam
        .enable_user("alice", &sam::Actor::new("test", sam::Role::Operator))
        .expect("enable");
    assert!(
        f.sam
            .login_with_password(&f.policy, "alice", &password, false)
            .expect("checked")
            .is_ok()
    );
}

/// A pushed request's `request_uri` (RFC 9126) is single-use however many present it at once:
/// 16 threads take the same one together, exactly one gets the request, every other is told
/// it is unknown or used (the take is one conditional delete in the write transaction), and
/// the refusals are audited.
fn sixteen_concurrent_takes_of_a_request_uri(f: Fixture) {
    let pushed = f
        .sam
        .push_oauth_request(
            "server-app",
            "credential",
            "{}".into(),
            chrono::Duration::minutes(1),
        )
        .expect("pushed");
    let sam = f.sam.clone();
    let handle = pushed.handle.clone();
    let results = race(16, move || sam.take_pushed_request(&handle, "server-app"));
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert!(
            matches!(r, Err(SamError::OAuth(OAuthError::UnknownRequest))),
            "{r:?}"
        );
    }
    assert_eq!(f.count("oauth2.authorize", "refused"), 15);
    // and it stays used
    assert!(matches!(
        f.sam.take_pushed_request(&pushed.handle, "server-app"),
        Err(SamError::OAuth(OAuthError::UnknownRequest))
    ));
}

#[test]
fn a_request_uri_is_taken_once_under_concurrency_sqlite() {
    sixteen_concurrent_takes_of_a_request_uri(fixture());
}

#[test]
fn a_request_uri_is_taken_once_under_concurrency_postgres() {
    let db = PgDb::create();
    sixteen_concurrent_takes_of_a_request_uri(fixture_on(Some(&db)));
}
