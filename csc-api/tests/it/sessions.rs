//! Sole control that survives an insider (issue 11), over HTTP: client tokens act only for the
//! users an operator delegated to their client; a login lock and an operator's disable end the
//! user's sessions; `auth/login` refresh tokens rotate and a reused one ends its grant; password
//! checks are bounded (429 beyond the bound) and a flood of bad logins keeps the server's memory
//! bounded. In process on the kit, except the commands and the memory of a `csc-server`
//! process.

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};

use crate::common::*;
use crate::kit::{Kit, basic};

/// A confidential client and a `client_credentials` token of its own: `(client_id, token)`.
fn client_token(k: &Kit) -> (String, String) {
    let (client_id, secret) = k.client_add("Back office", &["https://app.example/cb"], true);
    let secret = secret.expect("a confidential client has a secret");
    let (status, tok) = k.form_post(
        "token",
        &[("grant_type", "client_credentials")],
        Some((&client_id, &secret)),
    );
    assert_eq!(status, 200, "{tok}");
    (
        client_id,
        tok["access_token"].as_str().expect("token").to_owned(),
    )
}

fn list_for(k: &Kit, token: &str, user: &str) -> (u16, Value) {
    k.call("credentials/list", Some(token), &json!({ "userID": user }))
}

#[track_caller]
fn invalid_credential(got: &(u16, Value)) {
    assert_error(
        got,
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
}

/// A client token without a delegation acts for nobody (Part I 7.1.3.1): it cannot list alice's
/// credentials, have an OTP sent to her, read her credential, or lock her PIN with wrong guesses
/// (each answered as for a credential it does not know, spec §11.4-11.8, and audited). With
/// alice delegated, it acts for alice and only alice; withdrawn (or alice disabled), for nobody.
#[test]
fn a_client_token_acts_only_for_the_users_delegated_to_its_client() {
    let k = Kit::new();
    k.create(&["ec", "scal2", "bob"]);
    let (client_id, token) = client_token(&k);

    // no delegation
    assert_error(
        &list_for(&k, &token, "alice"),
        400,
        "invalid_request",
        "Invalid parameter userID",
    );
    invalid_credential(&k.call(
        "credentials/sendOTP",
        Some(&token),
        &json!({ "credentialID": k.id("scal2") }),
    ));
    assert_eq!(
        outbox_code(&k.dir().join("otp-outbox.log"), k.id("scal2")),
        None,
        "no OTP was sent to alice"
    );
    invalid_credential(&k.call(
        "credentials/info",
        Some(&token),
        &json!({ "credentialID": k.id("ec") }),
    ));
    // more wrong PINs than lock a PIN (max_factor_failures, 5): none is even counted
    for _ in 0..6 {
        invalid_credential(&k.call(
            "credentials/authorize",
            Some(&token),
            &json!({ "credentialID": k.id("ec"), "numSignatures": 1, "PIN": "999999" }),
        ));
    }
    let alice = k.login("alice", ALICE_PASSWORD);
    let (status, sad) = k.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": k.id("ec"), "numSignatures": 1, "PIN": PIN }),
    );
    assert_eq!(status, 200, "alice's PIN is not locked: {sad}");
    let actor = format!("client:{client_id}");
    let refused = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "client.refused" && r.actor == actor)
        .count();
    assert_eq!(refused, 9, "every refused act is audited");

    // alice delegated: alice's credentials, and nobody else's
    let out = csc_api::admin::client_delegate(k.sam(), &client_id, "alice").expect("delegate");
    assert_eq!(out["changed"], true);
    let (status, list) = list_for(&k, &token, "alice");
    assert_eq!(status, 200, "{list}");
    let ids = list["credentialIDs"].as_array().expect("ids");
    assert!(ids.contains(&json!(k.id("ec"))) && ids.contains(&json!(k.id("scal2"))));
    let (status, _) = k.call(
        "credentials/sendOTP",
        Some(&token),
        &json!({ "credentialID": k.id("scal2") }),
    );
    assert_eq!(status, 204);
    assert_error(
        &list_for(&k, &token, "bob"),
        400,
        "invalid_request",
        "Invalid parameter userID",
    );
    invalid_credential(&k.call(
        "credentials/info",
        Some(&token),
        &json!({ "credentialID": k.id("bob") }),
    ));
    let listed = csc_api::admin::client_list(k.sam()).expect("client list");
    assert_eq!(listed[0]["delegated_users"], json!(["alice"]), "{listed}");
    assert!(
        k.audit_records()
            .iter()
            .any(|r| r.event == "client.delegate" && r.subject == client_id)
    );

    // a disabled user is acted for by no client
    csc_api::admin::user_disable(k.sam(), "alice").expect("disable");
    assert_error(
        &list_for(&k, &token, "alice"),
        400,
        "invalid_request",
        "Invalid parameter userID",
    );
    csc_api::admin::user_enable(k.sam(), "alice").expect("enable");
    assert_eq!(list_for(&k, &token, "alice").0, 200);

    // withdrawn: nobody again
    let out = csc_api::admin::client_undelegate(k.sam(), &client_id, "alice").expect("undelegate");
    assert_eq!(out["changed"], true);
    assert_error(
        &list_for(&k, &token, "alice"),
        400,
        "invalid_request",
        "Invalid parameter userID",
    );
    invalid_credential(&k.call(
        "credentials/info",
        Some(&token),
        &json!({ "credentialID": k.id("ec") }),
    ));
}

fn list(k: &Kit, token: &str) -> (u16, Value) {
    k.call("credentials/list", Some(token), &json!({}))
}

/// A revoked token: 401 `expired_token` ("expired or has been revoked", spec §10.1 Table 3).
#[track_caller]
fn assert_revoked(got: &(u16, Value)) {
    assert_error(
        got,
        401,
        "expired_token",
        "The access or refresh token is expired or has been revoked",
    );
}

/// The failed login that locks alice (Part I 7.1.2.5.1) ends every session of hers: her access
/// tokens are refused and her refresh token renews nothing, at once and for good (`user
/// unlock` lifts the lock, not the revocation). Bob's session goes on.
#[test]
fn a_login_lock_ends_the_users_sessions() {
    let k = Kit::with(|c| c.max_login_failures = 3);
    let (status, remembered) =
        k.login_with("alice", ALICE_PASSWORD, &json!({ "rememberMe": true }));
    assert_eq!(status, 200, "{remembered}");
    let access = remembered["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let refresh = remembered["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let second = k.login("alice", ALICE_PASSWORD);
    let bob = k.login("bob", BOB_PASSWORD);
    assert_eq!(list(&k, &access).0, 200);
    for _ in 0..3 {
        assert_error(
            &k.login_with("alice", "guess", &json!({})),
            400,
            "authentication_error",
            "An error occurred during authentication process",
        );
    }
    assert_revoked(&list(&k, &access));
    assert_revoked(&list(&k, &second));
    assert_error(
        &k.call("auth/login", None, &json!({ "refresh_token": refresh })),
        400,
        "invalid_request",
        "Invalid refresh_token",
    );
    assert_eq!(list(&k, &bob).0, 200, "bob's session is his own");
    let lock = k
        .audit_records()
        .into_iter()
        .find(|r| r.event == "user.lock")
        .expect("user.lock");
    assert!(
        lock.detail.contains("\"revokedTokens\":3"),
        "{}",
        lock.detail
    );
    // unlocked, alice signs in anew; the old tokens stay dead
    csc_api::admin::user_unlock(k.sam(), "alice").expect("unlock");
    assert_revoked(&list(&k, &access));
    let fresh = k.login("alice", ALICE_PASSWORD);
    assert_eq!(list(&k, &fresh).0, 200);
}

/// `csc-server user disable`: login refused, every token of the user revoked at once; `user
/// unlock` does not lift it, `user enable` does (the old tokens stay dead).
#[test]
fn a_disabled_user_can_neither_sign_in_nor_use_a_token() {
    let k = Kit::new();
    let access = k.login("alice", ALICE_PASSWORD);
    let out = csc_api::admin::user_disable(k.sam(), "alice").expect("disable");
    assert_eq!(
        (out["wasDisabled"].clone(), out["disabled"].clone()),
        (json!(false), json!(true))
    );
    assert_revoked(&list(&k, &access));
    let refused = || {
        assert_error(
            &k.login_with("alice", ALICE_PASSWORD, &json!({})),
            400,
            "authentication_error",
            "An error occurred during authentication process",
        );
    };
    refused();
    csc_api::admin::user_unlock(k.sam(), "alice").expect("unlock");
    refused();
    csc_api::admin::user_enable(k.sam(), "alice").expect("enable");
    let fresh = k.login("alice", ALICE_PASSWORD);
    assert_eq!(list(&k, &fresh).0, 200);
    assert_revoked(&list(&k, &access));
    let events: Vec<String> = k.audit_records().into_iter().map(|r| r.event).collect();
    assert!(events.iter().any(|e| e == "user.disable"));
    assert!(events.iter().any(|e| e == "user.enable"));
}

/// `auth/login` with a refresh token (spec §11.2) rotates it: the answer carries a new access
/// token and a new refresh token, and the old refresh token is dead. Presented again, the old
/// one ends the whole grant: every access token it led to and the refresh token that replaced
/// it.
#[test]
fn an_auth_login_refresh_token_rotates_and_its_reuse_ends_the_grant() {
    let k = Kit::new();
    let (_, first) = k.login_with("alice", ALICE_PASSWORD, &json!({ "rememberMe": true }));
    let r0 = first["refresh_token"].as_str().expect("r0").to_owned();
    let renew = |r: &str| k.call("auth/login", None, &json!({ "refresh_token": r }));
    let (status, second) = renew(&r0);
    assert_eq!(status, 200, "{second}");
    let r1 = second["refresh_token"].as_str().expect("r1").to_owned();
    assert_ne!(r0, r1);
    let (status, third) = renew(&r1);
    assert_eq!(status, 200, "{third}");
    let r2 = third["refresh_token"].as_str().expect("r2").to_owned();
    let a1 = second["access_token"].as_str().expect("a1").to_owned();
    let a2 = third["access_token"].as_str().expect("a2").to_owned();
    assert_eq!(list(&k, &a2).0, 200);
    // r0 again: refused, and the grant is over
    assert_error(&renew(&r0), 400, "invalid_request", "Invalid refresh_token");
    for a in [first["access_token"].as_str().expect("a0"), &a1, &a2] {
        assert_revoked(&list(&k, a));
    }
    assert_error(&renew(&r2), 400, "invalid_request", "Invalid refresh_token");
    assert!(
        k.audit_records()
            .iter()
            .any(|r| r.event == "auth.login" && r.detail.contains("refresh token reused"))
    );
}

/// `auth/login` as a request.
fn login_request(k: &Kit, user: &str, password: &str) -> actix_web::test::TestRequest {
    k.post("/csc/v1/auth/login")
        .insert_header(("authorization", basic(user, password)))
        .set_json(json!({}))
}

/// With one password check at a time and one waiting (`login_concurrency` 1, `login_queue` 1),
/// a burst of logins while the check is busy gets 429 `temporarily_unavailable` with
/// `Retry-After` for all but the one that waits, which then signs in; the server answers
/// everything else meanwhile. The busy check is a turn the test holds, so nothing depends on
/// timing.
#[test]
fn logins_beyond_the_password_check_bound_are_answered_429() {
    let k = Kit::with(|c| {
        c.login_limits = sam::LoginLimits {
            concurrency: 1,
            queue: 1,
        }
    });
    let gate = k.sam().login_gate().clone();
    let held = gate.enter().expect("the only turn");
    // give the turn back once the burst is in: one waiting, two refused (a gate that never
    // gets there fails the assertions below, after a deadline no healthy run comes near)
    let releaser = std::thread::spawn({
        let gate = gate.clone();
        move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !(gate.load().waiting == 1 && gate.load().refused >= 2)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            drop(held);
        }
    });
    let answers = k.send_all(vec![
        login_request(&k, "alice", ALICE_PASSWORD),
        login_request(&k, "alice", ALICE_PASSWORD),
        login_request(&k, "alice", ALICE_PASSWORD),
        k.csc_request("info", None, &json!({})),
    ]);
    releaser.join().expect("releaser");
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        busy.len(),
        2,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &busy {
        assert_eq!(r.json()["error"], "temporarily_unavailable", "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let signed_in = answers
        .iter()
        .filter(|r| r.status == 200 && r.json()["access_token"].is_string())
        .count();
    assert_eq!(signed_in, 1, "the one that waited signs in");
    assert_eq!(answers[3].status, 200, "info answered meanwhile");
    // free again
    let token = k.login("alice", ALICE_PASSWORD);
    assert_eq!(list(&k, &token).0, 200);
}

/// VmHWM (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// 200 concurrent bad logins against a `csc-server` with one password check at a time and one
/// waiting: the server's peak memory grows by less than 160 MiB (each check is an Argon2id of
/// 19 MiB; unbounded, the checks run side by side and the peak grows by gigabytes), every login
/// is answered (400 `authentication_error` or 429 `temporarily_unavailable`) and `info`
/// answers during the flood.
#[test]
fn a_flood_of_bad_logins_keeps_the_servers_memory_bounded() {
    const FLOOD: usize = 200;
    const BOUND_KIB: u64 = 160 * 1024;
    let s = Signers::only(&[]);
    let (server, api) = s.serve(&[("CSC_LOGIN_CONCURRENCY", "1"), ("CSC_LOGIN_QUEUE", "1")]);
    // warm up: one login of each kind (the unknown user's dummy verifier is made once)
    api.login("alice", ALICE_PASSWORD);
    let bad = |user: &str| {
        api.client
            .post(format!("{}/csc/v1/auth/login", api.base))
            .basic_auth(user, Some("wrong-password"))
            .json(&json!({}))
            .send()
            .map(|r| r.status().as_u16())
            .expect("login")
    };
    assert_eq!(bad("nobody"), 400);
    let pid = server.child.id();
    let before = peak_rss_kib(pid);
    let barrier = Arc::new(Barrier::new(FLOOD + 1));
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (base, barrier) = (api.base.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(std::time::Duration::from_secs(300))
                    .build()
                    .expect("client");
                barrier.wait();
                let resp = client
                    .post(format!("{base}/csc/v1/auth/login"))
                    .basic_auth(if i % 2 == 0 { "alice" } else { "nobody" }, Some("wrong"))
                    .json(&json!({}))
                    .send()
                    .expect("login");
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body: Value = resp.json().unwrap_or(Value::Null);
                (
                    status,
                    body["error"].as_str().map(str::to_owned),
                    retry_after,
                )
            })
        })
        .collect();
    barrier.wait();
    let (status, info) = api.call("info", None, &json!({}));
    assert_eq!(status, 200, "info during the flood: {info}");
    let answers: Vec<_> = flood
        .into_iter()
        .map(|h| h.join().expect("flood thread"))
        .collect();
    let after = peak_rss_kib(pid);
    let busy = answers.iter().filter(|a| a.0 == 429).count();
    for a in &answers {
        match a {
            (400, Some(e), _) if e == "authentication_error" => {}
            (429, Some(e), Some(r)) if e == "temporarily_unavailable" && r == "1" => {}
            other => panic!("unexpected answer to a bad login: {other:?}"),
        }
    }
    assert!(
        after.saturating_sub(before) < BOUND_KIB,
        "peak RSS grew from {before} KiB to {after} KiB during {FLOOD} bad logins ({busy} answered 429)"
    );
    // and the server still serves
    let token = api.login("bob", BOB_PASSWORD);
    assert_eq!(
        api.call("credentials/list", Some(&token), &json!({})).0,
        200
    );
}

/// The commands: `user disable|enable` and `client delegate|undelegate`, audited; `client list`
/// shows the delegated users.
#[test]
fn the_disable_and_delegation_commands() {
    let s = Signers::only(&[]);
    let run = |args: &[&str]| run_ok(csc(s.dir()).args(args));
    let client = run(&[
        "client",
        "add",
        "Back office",
        "--redirect-uri",
        "https://app.example/cb",
        "--confidential",
    ]);
    let id = client["client_id"].as_str().expect("client_id").to_owned();
    let out = run(&["client", "delegate", &id, "alice"]);
    assert_eq!(
        (out["delegated"].clone(), out["changed"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(run(&["client", "delegate", &id, "alice"])["changed"], false);
    let listed = run(&["client", "list"]);
    assert_eq!(listed[0]["delegated_users"], json!(["alice"]), "{listed}");
    let out = run(&["client", "undelegate", &id, "alice"]);
    assert_eq!(
        (out["delegated"].clone(), out["changed"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(run(&["client", "list"])[0]["delegated_users"], json!([]));
    // unknown client or user: exit 1 with an error
    for args in [
        &["client", "delegate", "nope", "alice"][..],
        &["client", "delegate", &id, "nobody"][..],
        &["user", "disable", "nobody"][..],
    ] {
        let out = csc(s.dir()).args(args).output().expect("run");
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    }
    let out = run(&["user", "disable", "alice"]);
    assert_eq!(
        (out["user"].clone(), out["disabled"].clone()),
        (json!("alice"), json!(true))
    );
    let out = run(&["user", "enable", "alice"]);
    assert_eq!(
        (out["wasDisabled"].clone(), out["disabled"].clone()),
        (json!(true), json!(false))
    );
    let events: Vec<String> = crate::kit::audit_records(s.dir())
        .into_iter()
        .map(|r| r.event)
        .collect();
    for e in [
        "client.delegate",
        "client.undelegate",
        "user.disable",
        "user.enable",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} audited: {events:?}");
    }
}
