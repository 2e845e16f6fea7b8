//! Sole control that survives an insider (issue 11), over HTTP: a login lock and an operator's
//! disable end the user's sessions; `auth/login` refresh tokens rotate and a reused one ends its
//! grant. In process on the kit.

use serde_json::{Value, json};

use crate::common::*;
use crate::kit::Kit;

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
