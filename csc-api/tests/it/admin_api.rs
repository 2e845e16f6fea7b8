//! The admin API (issue 14, `csc_api::admin_api`) in process, on the kit's admin app (the
//! admin listener's app factory, on the same SAM as the CSC app):
//!
//! * each role against each admin call: allowed exactly as `sam::roles::allows` says, else 403
//!   `access_denied`, audited either way; every answer matches the admin OpenAPI document;
//! * nobody reads or sets a PIN: no answer holds the PIN or its verifier, no route or extra
//!   field sets one, and the stored verifier is byte-identical afterwards;
//! * tokens: a signer, a wrong password, a disabled user get none; a CSC token is refused on
//!   the admin API and an admin token on the CSC API; an expired token is refused;
//! * the admin routes are never served on the CSC app, and the admin app's routes and its
//!   document agree (every documented operation served, every route documented, 405 + `Allow`).

use std::collections::BTreeSet;
use std::path::Path;

use actix_web::test::TestRequest;
use base64::Engine;
use sam::roles::allows;
use sam::{Action, Role};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::common::{ALICE_PASSWORD, Csc, PIN};
use crate::kit::{Kit, Resp, basic};

const PASSWORD: &str = "admin-password";

/// The administrators of a kit: `(name, role)`.
const ADMINS: &[(&str, Role)] = &[
    ("olga", Role::Operator),
    ("sofia", Role::SecurityOfficer),
    ("aude", Role::Auditor),
];

/// Adds [`ADMINS`] (as the CLI's security officer would).
fn add_admins(k: &Kit) {
    for (name, role) in ADMINS {
        csc_api::admin::user_add_with_role(k.sam(), name, &SecretString::from(PASSWORD), *role)
            .expect("admin user");
    }
}

/// `POST /admin/v1/token` with HTTP Basic and `grant_type`.
fn token_request(k: &Kit, user: &str, password: &str, grant_type: &str) -> Resp {
    k.admin_send(
        k.post("/admin/v1/token")
            .insert_header(("authorization", basic(user, password)))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("grant_type={grant_type}")),
    )
}

/// An admin token of `user`.
fn admin_token(k: &Kit, user: &str) -> String {
    let r = token_request(k, user, PASSWORD, "client_credentials");
    assert_eq!(r.status, 200, "token of {user}: {}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "admin");
    v["access_token"].as_str().expect("token").to_owned()
}

/// A request to the admin app with a Bearer token and, unless `Null`, a JSON body.
fn call(k: &Kit, token: &str, method: &str, path: &str, body: &Value) -> Resp {
    let mut req: TestRequest = k
        .req(method, path)
        .insert_header(("authorization", format!("Bearer {token}")));
    if !body.is_null() {
        req = req.set_json(body);
    }
    k.admin_send(req)
}

/// A fresh credential of alice's (EC P-256, SCAL 1, PIN [`PIN`]), made with the CLI's function.
fn fresh_credential(k: &Kit) -> Value {
    k.credential_create("alice", &["--key", "ec-p256"])
        .expect("credential")
}

fn last_seq(k: &Kit) -> i64 {
    k.audit_records().last().map_or(0, |r| r.seq)
}

/// The route template of a concrete admin path, as the document writes it.
fn template(path: &str) -> String {
    let doc = openapi::admin_document();
    let path = path.split('?').next().unwrap_or_default();
    openapi::documented_routes(&doc)
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| {
            let (a, b): (Vec<&str>, Vec<&str>) =
                (p.split('/').collect(), path.split('/').collect());
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(x, y)| x == y || (x.starts_with('{') && !y.is_empty()))
        })
        .unwrap_or_else(|| panic!("{path} is not documented"))
}

/// Asserts that the answer is one the admin document gives for this call (status, body).
#[track_caller]
fn conforms(method: &str, path: &str, r: &Resp) {
    let doc = openapi::admin_document();
    let t = template(path);
    let documented = &doc["paths"][&t][method.to_lowercase()]["responses"][r.status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {t}: status {} is not documented: {}",
        r.status,
        r.text()
    );
    for (name, h) in documented["headers"].as_object().into_iter().flatten() {
        if h["required"] == true {
            assert!(r.header(name).is_some(), "{method} {t}: no {name}");
        }
    }
    // a text body (the export's JSON lines, the PEM seal key): its media type
    if let Some(media) = documented["content"]
        .as_object()
        .and_then(|c| c.keys().find(|m| *m != "application/json"))
    {
        let ct = r.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with(media.as_str()),
            "{method} {t}: {ct}, not {media}"
        );
        return;
    }
    let schema = &documented["content"]["application/json"]["schema"];
    let errors = openapi::check::validate(&doc, schema, &r.json());
    assert!(
        errors.is_empty(),
        "{method} {t} {}: {errors:?}\n{}",
        r.status,
        r.text()
    );
}

/// One admin call of the table: its action, and the event it records when allowed.
struct Route {
    method: &'static str,
    /// The path; `{cred}`, `{user}`, `{client}` are made fresh for each call.
    path: &'static str,
    body: fn(n: usize) -> Value,
    action: Action,
    event: &'static str,
}

fn none(_: usize) -> Value {
    Value::Null
}

/// Every admin call (the token endpoint apart) with the action it is, explicitly.
fn routes() -> Vec<Route> {
    use Action as A;
    let r = |method, path, body: fn(usize) -> Value, action, event| Route {
        method,
        path,
        body,
        action,
        event,
    };
    vec![
        r("GET", "/admin/v1/users", none, A::UserList, "user.list"),
        r(
            "POST",
            "/admin/v1/users",
            |n| json!({ "name": format!("signer{n}"), "role": "signer", "password": "a-long-password" }),
            A::UserCreate(Role::Signer),
            "user.create",
        ),
        r(
            "POST",
            "/admin/v1/users",
            |n| json!({ "name": format!("auditor{n}"), "role": "auditor", "password": "a-long-password" }),
            A::UserCreate(Role::Auditor),
            "user.create",
        ),
        r(
            "DELETE",
            "/admin/v1/users/{user}",
            none,
            A::UserDelete,
            "user.delete",
        ),
        r(
            "POST",
            "/admin/v1/users/{user}/disable",
            none,
            A::UserDisable,
            "user.disable",
        ),
        r(
            "POST",
            "/admin/v1/users/{user}/enable",
            none,
            A::UserEnable,
            "user.enable",
        ),
        r(
            "POST",
            "/admin/v1/users/{user}/unlock",
            none,
            A::UserUnlock,
            "user.unlock",
        ),
        // an administrative user is the security officer's to manage, not the operator's
        r(
            "POST",
            "/admin/v1/users/{admin}/disable",
            none,
            A::AdministratorManage,
            "user.disable",
        ),
        r(
            "POST",
            "/admin/v1/users/{admin}/unlock",
            none,
            A::AdministratorManage,
            "user.unlock",
        ),
        r(
            "GET",
            "/admin/v1/credentials",
            none,
            A::CredentialList,
            "credential.read",
        ),
        r(
            "POST",
            "/admin/v1/credentials",
            |_| json!({ "user": "alice", "keySpec": "ec-p256", "pin": "135790" }),
            A::CredentialCreate,
            "credential.create",
        ),
        r(
            "GET",
            "/admin/v1/credentials/{cred}",
            none,
            A::CredentialList,
            "credential.read",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/csr",
            none,
            A::CredentialCsr,
            "credential.csr",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/chain",
            none, // the credential's own chain, set below
            A::CredentialImportChain,
            "credential.import_chain",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/disable",
            none,
            A::CredentialDisable,
            "credential.disable",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/enable",
            none,
            A::CredentialEnable,
            "credential.enable",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/unlock",
            none,
            A::CredentialUnlock,
            "credential.unlock",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/rekey",
            |_| json!({}),
            A::CredentialRekey,
            "credential.rekey",
        ),
        r(
            "POST",
            "/admin/v1/credentials/{cred}/revoke",
            |_| json!({ "reason": "key compromise" }),
            A::CredentialRevoke,
            "credential.revoke",
        ),
        r(
            "GET",
            "/admin/v1/clients",
            none,
            A::ClientList,
            "client.list",
        ),
        r(
            "POST",
            "/admin/v1/clients",
            |n| json!({ "name": format!("app {n}"), "redirectUris": ["https://app.example/cb"], "confidential": true }),
            A::ClientRegister,
            "client.register",
        ),
        r(
            "POST",
            "/admin/v1/clients/{client}/delegations",
            |_| json!({ "user": "alice" }),
            A::ClientDelegate,
            "client.delegate",
        ),
        r(
            "DELETE",
            "/admin/v1/clients/{client}/delegations/alice",
            none,
            A::ClientUndelegate,
            "client.undelegate",
        ),
        r(
            "GET",
            "/admin/v1/audit?limit=5",
            none,
            A::AuditRead,
            "audit.read",
        ),
        r(
            "POST",
            "/admin/v1/audit/verify",
            none,
            A::AuditVerify,
            "audit.verify",
        ),
        r(
            "GET",
            "/admin/v1/audit/export?from=1&to=3",
            none,
            A::AuditExport,
            "audit.export",
        ),
    ]
}

/// Each role against each admin call: the signer gets no token at all; each administrator's
/// call succeeds exactly when `sam::roles::allows` says so and is refused 403 `access_denied`
/// otherwise, and either way the audit log has the record (the act's own event by
/// `ROLE:NAME`, or `access.denied` naming the role and action). Every answer is one the admin
/// document gives.
#[test]
fn each_role_against_each_admin_call() {
    let k = Kit::new();
    add_admins(&k);
    // a signer cannot even get a token, with the right password
    let r = token_request(&k, "alice", ALICE_PASSWORD, "client_credentials");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_client"))
    );
    conforms("POST", "/admin/v1/token", &r);

    let mut n = 0;
    let mut outcomes = Vec::new();
    for (name, role) in ADMINS {
        let token = admin_token(&k, name);
        for route in routes() {
            n += 1;
            // fresh subjects, made by the CLI (its records are not the act's)
            let mut path = route.path.to_owned();
            let mut body = (route.body)(n);
            if path.contains("{cred}") {
                let c = fresh_credential(&k);
                path = path.replace("{cred}", c["credentialID"].as_str().expect("id"));
                if route.action == Action::CredentialImportChain {
                    body = json!({ "certificates": c["certificates"] });
                }
            }
            if path.contains("{user}") {
                let user = format!("someone{n}");
                csc_api::admin::user_add(k.sam(), &user, &SecretString::from("a-long-password"))
                    .expect("user");
                path = path.replace("{user}", &user);
            }
            if path.contains("{admin}") {
                let admin = format!("auditor-{n}");
                csc_api::admin::user_add_with_role(
                    k.sam(),
                    &admin,
                    &SecretString::from("a-long-password"),
                    Role::Auditor,
                )
                .expect("user");
                path = path.replace("{admin}", &admin);
            }
            if path.contains("{client}") {
                let (client, _) = k.client_add("svc", &["https://svc.example/cb"], true);
                if route.action == Action::ClientUndelegate {
                    csc_api::admin::client_delegate(k.sam(), &client, "alice").expect("delegate");
                }
                path = path.replace("{client}", &client);
            }
            let before = last_seq(&k);
            let r = call(&k, &token, route.method, &path, &body);
            conforms(route.method, &path, &r);
            assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
            let actor = format!("{}:{name}", role.as_str());
            let own: Vec<_> = k
                .audit_records()
                .into_iter()
                .filter(|rec| rec.seq > before && rec.actor == actor)
                .collect();
            if allows(*role, route.action) {
                assert!(
                    (200..300).contains(&r.status),
                    "{role:?} {} {path}: {} {}",
                    route.method,
                    r.status,
                    r.text()
                );
                assert!(
                    own.iter()
                        .any(|rec| rec.event == route.event && rec.outcome == "success"),
                    "{role:?} {} {path}: no {} record in {own:?}",
                    route.method,
                    route.event
                );
                assert!(own.iter().all(|rec| rec.event != "access.denied"));
            } else {
                assert_eq!(
                    (r.status, r.json()),
                    (
                        403,
                        json!({
                            "error": "access_denied",
                            "error_description": format!(
                                "the role {} may not {}",
                                role.as_str(),
                                route.action.as_str()
                            ),
                        })
                    ),
                    "{role:?} {} {path}",
                    route.method
                );
                assert_eq!(own.len(), 1, "{role:?} {} {path}: {own:?}", route.method);
                let rec = &own[0];
                assert_eq!(
                    (rec.event.as_str(), rec.outcome.as_str()),
                    ("access.denied", "refused")
                );
                let detail: Value = serde_json::from_str(&rec.detail).expect("detail");
                assert_eq!(detail["role"], role.as_str());
                assert_eq!(detail["action"], route.action.as_str());
            }
            outcomes.push((*role, route.method, route.path, r.status));
        }
    }
    // a few rows literally, so the table above cannot pass by construction
    let status = |role: Role, method: &str, path: &str| {
        outcomes
            .iter()
            .find(|(r, m, p, _)| *r == role && *m == method && *p == path)
            .map(|(_, _, _, s)| *s)
            .expect("called")
    };
    assert_eq!(status(Role::Operator, "POST", "/admin/v1/credentials"), 201);
    assert_eq!(
        status(Role::Operator, "DELETE", "/admin/v1/users/{user}"),
        403
    );
    assert_eq!(
        status(
            Role::Operator,
            "POST",
            "/admin/v1/credentials/{cred}/revoke"
        ),
        403
    );
    assert_eq!(
        status(
            Role::SecurityOfficer,
            "POST",
            "/admin/v1/credentials/{cred}/revoke"
        ),
        200
    );
    assert_eq!(
        status(Role::SecurityOfficer, "DELETE", "/admin/v1/users/{user}"),
        200
    );
    assert_eq!(
        status(Role::SecurityOfficer, "GET", "/admin/v1/credentials"),
        403
    );
    assert_eq!(
        status(Role::SecurityOfficer, "GET", "/admin/v1/audit?limit=5"),
        403
    );
    assert_eq!(
        status(Role::Operator, "POST", "/admin/v1/users/{user}/disable"),
        200
    );
    assert_eq!(
        status(Role::Operator, "POST", "/admin/v1/users/{admin}/disable"),
        403
    );
    assert_eq!(
        status(
            Role::SecurityOfficer,
            "POST",
            "/admin/v1/users/{admin}/unlock"
        ),
        200
    );
    assert_eq!(status(Role::Auditor, "GET", "/admin/v1/audit?limit=5"), 200);
    assert_eq!(status(Role::Auditor, "POST", "/admin/v1/audit/verify"), 200);
    assert_eq!(status(Role::Auditor, "GET", "/admin/v1/users"), 403);
    assert_eq!(status(Role::Auditor, "POST", "/admin/v1/clients"), 403);
    assert!(k.audit_intact());
}

/// The stored PIN verifier of a credential.
fn pin_verifier(db: &Path, credential: &str) -> String {
    crate::common::factor_verifier(db, credential, "pin")
}

/// An operator cannot read or reset a signer's PIN verifier: no answer of any read (users,
/// credentials, the audit search) holds the PIN or its verifier; no route sets one (PUT, POST,
/// PATCH on plausible paths: 404 or 405) and a `pin` field on any other call is refused (400
/// naming it); the stored verifier is byte-identical afterwards and the PIN still activates.
#[test]
fn nobody_reads_or_sets_a_signers_pin_over_the_admin_api() {
    let k = Kit::new();
    add_admins(&k);
    let op = admin_token(&k, "olga");
    let pin = "86420975";
    let r = call(
        &k,
        &op,
        "POST",
        "/admin/v1/credentials",
        &json!({ "user": "alice", "keySpec": "ec-p256", "pin": pin }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!r.text().contains(pin), "the PIN is never echoed");
    let id = r.json()["credentialID"].as_str().expect("id").to_owned();
    let db = k.dir().join("csc.db");
    let verifier = pin_verifier(&db, &id);
    assert!(verifier.len() > 16);

    let mut answers = vec![r];
    for path in [
        "/admin/v1/users".to_owned(),
        "/admin/v1/credentials".to_owned(),
        "/admin/v1/credentials?user=alice".to_owned(),
        format!("/admin/v1/credentials/{id}"),
    ] {
        let r = call(&k, &op, "GET", &path, &Value::Null);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        answers.push(r);
    }
    let aud = admin_token(&k, "aude");
    let r = call(&k, &aud, "GET", "/admin/v1/audit?limit=1000", &Value::Null);
    assert_eq!(r.status, 200);
    assert!(!r.json()["records"].as_array().expect("records").is_empty());
    answers.push(r);

    // attempts to set a PIN: no such route, and no call takes a `pin` it does not create with
    for method in ["PUT", "POST", "PATCH"] {
        for path in [
            format!("/admin/v1/credentials/{id}/pin"),
            format!("/admin/v1/credentials/{id}/factors"),
            "/admin/v1/users/alice/pin".to_owned(),
        ] {
            let r = call(&k, &op, method, &path, &json!({ "pin": "000000" }));
            assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
            assert_eq!(r.json()["error"], "not_found");
            answers.push(r);
        }
        if method != "POST" {
            let r = call(
                &k,
                &op,
                method,
                &format!("/admin/v1/credentials/{id}"),
                &json!({ "pin": "000000" }),
            );
            assert_eq!(
                (r.status, r.header("allow")),
                (405, Some("GET")),
                "{method}"
            );
            answers.push(r);
        }
    }
    for path in [
        format!("/admin/v1/credentials/{id}/unlock"),
        format!("/admin/v1/credentials/{id}/enable"),
        format!("/admin/v1/credentials/{id}/disable"),
        format!("/admin/v1/credentials/{id}/csr"),
        "/admin/v1/users/alice/unlock".to_owned(),
        "/admin/v1/users/alice/enable".to_owned(),
    ] {
        let r = call(&k, &op, "POST", &path, &json!({ "pin": "000000" }));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_request");
        let d = r.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(d.contains("unknown field `pin`"), "{path}: {d}");
        answers.push(r);
    }
    // the security officer's calls take no PIN either
    let so = admin_token(&k, "sofia");
    for (path, body) in [
        (
            format!("/admin/v1/credentials/{id}/rekey"),
            json!({ "pin": "000000" }),
        ),
        (
            format!("/admin/v1/credentials/{id}/revoke"),
            json!({ "reason": "x", "pin": "000000" }),
        ),
    ] {
        let r = call(&k, &so, "POST", &path, &body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        answers.push(r);
    }

    for a in &answers {
        let text = a.text();
        assert!(!text.contains(pin), "the PIN in {text}");
        assert!(!text.contains(&verifier), "the verifier in {text}");
    }
    assert_eq!(pin_verifier(&db, &id), verifier, "byte-identical");
    // and the PIN the signer chose still activates the credential
    let t = k.login("alice", ALICE_PASSWORD);
    let (status, v) = k.call(
        "credentials/authorize",
        Some(&t),
        &json!({
            "credentialID": id, "numSignatures": 1, "PIN": pin,
            "hash": [base64::engine::general_purpose::STANDARD.encode([7u8; 32])],
        }),
    );
    assert_eq!(status, 200, "{v}");
    // a wrong one does not
    let (status, v) = k.call(
        "credentials/authorize",
        Some(&t),
        &json!({ "credentialID": id, "numSignatures": 1, "PIN": PIN }),
    );
    assert_eq!((status, v["error"].clone()), (400, json!("invalid_pin")));
}

#[test]
fn admin_tokens_only_for_active_administrators_and_only_on_the_admin_api() {
    let k = Kit::new();
    add_admins(&k);
    let invalid_client = |r: &Resp| {
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error"], "invalid_client");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"csc-admin\"")
        );
    };
    // a wrong password, a signer, an unknown user
    invalid_client(&token_request(
        &k,
        "olga",
        "wrong-password",
        "client_credentials",
    ));
    invalid_client(&token_request(
        &k,
        "alice",
        ALICE_PASSWORD,
        "client_credentials",
    ));
    invalid_client(&token_request(&k, "nobody", PASSWORD, "client_credentials"));
    // no Basic at all
    invalid_client(
        &k.admin_send(
            k.post("/admin/v1/token")
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload("grant_type=client_credentials"),
        ),
    );
    // another grant
    let r = token_request(&k, "olga", PASSWORD, "password");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    // audited like logins: the refusals and the grant
    let op = admin_token(&k, "olga");
    let logins: Vec<_> = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "auth.login" && r.detail.contains("\"method\":\"admin\""))
        .collect();
    assert!(
        logins
            .iter()
            .any(|r| r.actor == "olga" && r.outcome == "success"),
        "{logins:?}"
    );
    assert!(
        logins
            .iter()
            .any(|r| r.actor == "olga" && r.detail.contains("wrong password"))
    );
    assert!(
        logins
            .iter()
            .any(|r| r.actor == "alice" && r.detail.contains("not an administrative user"))
    );

    let bearer_refused = |r: &Resp| {
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error"], "invalid_token");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.contains("invalid_token"))
        );
    };
    // no token, a malformed header, a CSC service token: refused on the admin API
    bearer_refused(&k.admin_send(k.get("/admin/v1/users")));
    bearer_refused(
        &k.admin_send(
            k.get("/admin/v1/users")
                .insert_header(("authorization", basic("olga", PASSWORD))),
        ),
    );
    let csc = k.login("olga", PASSWORD);
    bearer_refused(&call(&k, &csc, "GET", "/admin/v1/users", &Value::Null));
    let alice = k.login("alice", ALICE_PASSWORD);
    bearer_refused(&call(&k, &alice, "GET", "/admin/v1/users", &Value::Null));
    // an admin token on the CSC API: refused as unknown
    let (status, v) = k.call("credentials/list", Some(&op), &json!({}));
    assert_eq!((status, v["error"].clone()), (401, json!("invalid_token")));
    // the admin token works...
    assert_eq!(
        call(&k, &op, "GET", "/admin/v1/users", &Value::Null).status,
        200
    );
    // ...until its user is disabled: at once (the role and state are read on every call)
    csc_api::admin::user_disable(k.sam(), "olga").expect("disable");
    bearer_refused(&call(&k, &op, "GET", "/admin/v1/users", &Value::Null));
    invalid_client(&token_request(&k, "olga", PASSWORD, "client_credentials"));
    csc_api::admin::user_enable(k.sam(), "olga").expect("enable");
    // the disable revoked it: enabling the user does not bring it back
    bearer_refused(&call(&k, &op, "GET", "/admin/v1/users", &Value::Null));
    let op = admin_token(&k, "olga");
    assert_eq!(
        call(&k, &op, "GET", "/admin/v1/users", &Value::Null).status,
        200
    );
}

#[test]
fn an_expired_admin_token_is_refused() {
    // admin_token_ttl_secs = 0: every token is born expired (no waiting on the clock)
    let k = Kit::with(|c| c.admin.token_ttl_secs = 0);
    add_admins(&k);
    let r = token_request(&k, "sofia", PASSWORD, "client_credentials");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["expires_in"], 0);
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let r = call(&k, &token, "GET", "/admin/v1/clients", &Value::Null);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_token"))
    );
}

#[test]
fn the_admin_api_refuses_bad_input_naming_it_and_answers_404_and_409() {
    let k = Kit::new();
    add_admins(&k);
    let op = admin_token(&k, "olga");
    let so = admin_token(&k, "sofia");
    let aud = admin_token(&k, "aude");
    let error = |r: Resp| {
        (
            r.status,
            r.json()["error"].as_str().unwrap_or_default().to_owned(),
            r.json()["error_description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let (s, e, d) = error(call(
        &k,
        &op,
        "POST",
        "/admin/v1/users",
        &json!({ "name": "x1" }),
    ));
    assert_eq!((s, e.as_str()), (400, "invalid_request"));
    assert!(d.contains("missing field `role`"), "{d}");
    let (s, _, d) = error(call(
        &k,
        &op,
        "POST",
        "/admin/v1/credentials",
        &json!({ "user": "alice", "keySpec": "dsa-1024", "pin": "123456" }),
    ));
    assert_eq!(s, 400);
    assert!(d.contains("keySpec"), "{d}");
    let (s, e, _) = error(call(
        &k,
        &op,
        "POST",
        "/admin/v1/credentials",
        &json!({ "user": "nobody", "keySpec": "ec-p256", "pin": "123456" }),
    ));
    assert_eq!((s, e.as_str()), (404, "not_found"));
    let (s, e, _) = error(call(
        &k,
        &op,
        "POST",
        "/admin/v1/users/nobody/disable",
        &Value::Null,
    ));
    assert_eq!((s, e.as_str()), (404, "not_found"));
    let (s, e, _) = error(call(
        &k,
        &op,
        "GET",
        "/admin/v1/credentials/not-an-id",
        &Value::Null,
    ));
    assert_eq!((s, e.as_str()), (404, "not_found"));
    let (s, e, _) = error(call(
        &k,
        &op,
        "POST",
        "/admin/v1/users",
        &json!({ "name": "alice", "role": "signer", "password": "a-long-password" }),
    ));
    assert_eq!((s, e.as_str()), (409, "conflict"));
    // a revoked credential is never enabled again
    let id = fresh_credential(&k)["credentialID"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = call(
        &k,
        &so,
        "POST",
        &format!("/admin/v1/credentials/{id}/revoke"),
        &json!({ "reason": "left" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["status"].clone(), r.json()["keyDestroyed"].clone()),
        (json!("revoked"), json!(true))
    );
    let (s, e, _) = error(call(
        &k,
        &op,
        "POST",
        &format!("/admin/v1/credentials/{id}/enable"),
        &Value::Null,
    ));
    assert_eq!((s, e.as_str()), (409, "conflict"));
    // nobody deletes themselves
    let (s, e, _) = error(call(
        &k,
        &so,
        "DELETE",
        "/admin/v1/users/sofia",
        &Value::Null,
    ));
    assert_eq!((s, e.as_str()), (409, "conflict"));
    // the audit search: bad times and limits are named
    let (s, _, d) = error(call(
        &k,
        &aud,
        "GET",
        "/admin/v1/audit?from=yesterday",
        &Value::Null,
    ));
    assert_eq!(s, 400);
    assert!(d.contains("from"), "{d}");
    let (s, _, d) = error(call(
        &k,
        &aud,
        "GET",
        "/admin/v1/audit?limit=1001",
        &Value::Null,
    ));
    assert_eq!(s, 400);
    assert!(d.contains("limit"), "{d}");
    let (s, _, d) = error(call(&k, &aud, "GET", "/admin/v1/audit?pin=1", &Value::Null));
    assert_eq!(s, 400);
    assert!(d.contains("pin"), "{d}");
    // an oversized body
    let big = "x".repeat(k.cfg().max_body_bytes + 1);
    let (s, e, _) = error(call(
        &k,
        &op,
        "POST",
        "/admin/v1/users",
        &json!({ "name": big, "role": "signer", "password": "p" }),
    ));
    assert_eq!((s, e.as_str()), (400, "invalid_request"));
}

#[test]
fn the_audit_search_filters_and_pages() {
    let k = Kit::new();
    add_admins(&k);
    let op = admin_token(&k, "olga");
    let aud = admin_token(&k, "aude");
    for user in ["alice", "bob", "alice"] {
        assert_eq!(
            call(
                &k,
                &op,
                "POST",
                &format!("/admin/v1/users/{user}/unlock"),
                &Value::Null
            )
            .status,
            200
        );
    }
    let search = |q: &str| {
        let r = call(
            &k,
            &aud,
            "GET",
            &format!("/admin/v1/audit?{q}"),
            &Value::Null,
        );
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        conforms("GET", "/admin/v1/audit", &r);
        r.json()
    };
    let v = search("event=user.unlock&actor=operator:olga");
    let recs = v["records"].as_array().expect("records");
    assert_eq!(recs.len(), 3);
    assert!(
        recs.iter()
            .all(|r| r["event"] == "user.unlock" && r["actor"] == "operator:olga")
    );
    assert_eq!(v["next"], Value::Null);
    let v = search("event=user.unlock&subject=alice&outcome=success");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(2));
    // pages of one: `next` leads on, then ends
    let first = search("event=user.unlock&limit=1");
    let next = first["next"].as_i64().expect("next");
    assert_eq!(first["records"][0]["seq"], next);
    let second = search(&format!("event=user.unlock&limit=1&after={next}"));
    assert!(second["records"][0]["seq"].as_i64() > Some(next));
    // by time: nothing before the epoch's end of 2000, everything until far ahead
    assert_eq!(
        search("event=user.unlock&to=2000-01-01T00:00:00Z")["records"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(search("event=user.unlock&from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00%2B01:00")["records"].as_array().map(Vec::len), Some(3));
    // each search is itself audited, with its filters
    let reads: Vec<_> = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "audit.read")
        .collect();
    assert!(reads.len() >= 6);
    assert!(reads.iter().all(|r| r.actor == "auditor:aude"));
    // verify: intact
    let r = call(&k, &aud, "POST", "/admin/v1/audit/verify", &Value::Null);
    assert_eq!(
        (r.status, r.json()["intact"].clone()),
        (200, json!(true)),
        "{}",
        r.text()
    );
}

#[test]
fn deleting_a_user_destroys_their_keys_and_ends_everything_of_theirs() {
    let k = Kit::new();
    add_admins(&k);
    let so = admin_token(&k, "sofia");
    let created = k
        .credential_create("bob", &["--key", "ec-p256"])
        .expect("credential");
    let id = created["credentialID"].as_str().expect("id").to_owned();
    let key_id = k
        .sam()
        .credentials_with_owners(Some("bob"))
        .expect("list")
        .into_iter()
        .find(|(_, c)| c.id.to_string() == id)
        .map(|(_, c)| c.key_id)
        .expect("bob's credential");
    assert!(k.sam().key_in_token(&key_id).expect("key"));
    let bob = k.login("bob", crate::common::BOB_PASSWORD);
    let r = call(&k, &so, "DELETE", "/admin/v1/users/bob", &Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    conforms("DELETE", "/admin/v1/users/bob", &r);
    assert_eq!(r.json()["credentialsDeleted"], json!([id]));
    assert!(
        !k.sam().key_in_token(&key_id).expect("key"),
        "the key is gone from the token"
    );
    assert!(k.sam().user_by_name("bob").expect("read").is_none());
    // bob's token is dead, and so is his login
    let (status, _) = k.call("credentials/list", Some(&bob), &json!({}));
    assert_eq!(status, 401);
    let (status, _) = k.login_with("bob", crate::common::BOB_PASSWORD, &json!({}));
    assert_eq!(status, 400);
    let recs = k.audit_records();
    assert!(recs.iter().any(|r| r.event == "key.destroy"
        && r.subject == id
        && r.actor == "security-officer:sofia"));
    assert!(
        recs.iter()
            .any(|r| r.event == "user.delete" && r.subject == "bob" && r.outcome == "success")
    );
    assert_eq!(
        call(&k, &so, "DELETE", "/admin/v1/users/bob", &Value::Null).status,
        404
    );
    assert!(k.audit_intact());
}

/// The admin routes are served by the admin app only: on the CSC app every one of them, with
/// every method, is the CSC 404 (never a 405 that would reveal it); and the CSC routes are
/// not on the admin app.
#[test]
fn no_admin_route_on_the_csc_app_and_no_csc_route_on_the_admin_app() {
    let k = Kit::new();
    add_admins(&k);
    let op = admin_token(&k, "olga");
    let doc = openapi::admin_document();
    for (_, path) in openapi::documented_routes(&doc) {
        let path = path
            .replace("{name}", "alice")
            .replace("{id}", "x")
            .replace("{user}", "alice");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let r = k.send(
                k.req(method, &path)
                    .insert_header(("authorization", format!("Bearer {op}"))),
            );
            assert_eq!(
                r.status,
                404,
                "{method} {path} on the CSC app: {}",
                r.text()
            );
            assert_eq!(
                r.json()["error_description"],
                "The requested method does not exist"
            );
        }
    }
    for path in [
        "/csc/v1/info",
        "/csc/v1/credentials/list",
        "/oauth2/token",
        "/health",
        "/openapi.json",
    ] {
        let r = k.admin_send(k.post(path).set_json(json!({})));
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (404, json!("not_found")),
            "{path}"
        );
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The admin app and its document agree: every documented operation is served (any answer
/// but the default 404 or a 405), every method on every path the admin source mounts is
/// documented when served, and every other method on a documented path answers 405 with
/// exactly the documented methods in `Allow`.
#[test]
fn the_admin_routes_and_the_admin_document_agree() {
    let k = Kit::new();
    let doc = openapi::admin_document();
    let documented = openapi::documented_routes(&doc);
    let (mut scopes, mut routes) = (BTreeSet::new(), BTreeSet::new());
    crate::openapi_routes::path_literals(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin_api"),
        &mut scopes,
        &mut routes,
    );
    assert!(
        scopes.contains("/admin/v1") && routes.contains("/token"),
        "{scopes:?} {routes:?}"
    );
    let mut paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    for r in &routes {
        for s in &scopes {
            paths.insert(format!("{s}{r}"));
        }
    }
    let concrete = |p: &str| {
        p.split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut disagree = vec![];
    for path in &paths {
        let methods: Vec<&str> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        for method in METHODS {
            let r = k.admin_send(k.req(method, &concrete(path)));
            let default = r.status == 404
                && (*method == "HEAD" || r.text().contains("No such admin API path"));
            let served = !(default || r.status == 405);
            let is_documented = methods.contains(method);
            if served != is_documented {
                disagree.push(format!("{method} {path}: {} {}", r.status, r.text()));
            }
            if !is_documented && !methods.is_empty() {
                let mut allow = methods.clone();
                allow.sort_unstable();
                if r.status != 405 || r.header("allow") != Some(allow.join(", ").as_str()) {
                    disagree.push(format!("{method} {path}: no 405 with Allow {allow:?}"));
                }
            }
        }
    }
    assert!(
        disagree.is_empty(),
        "the admin app and its document disagree:\n{}",
        disagree.join("\n")
    );
    // the document is served on the admin app, and is the one the routes follow
    let r = k.admin_send(k.get("/admin/v1/openapi.json"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), doc);
    // and the CSC document names no admin path
    assert!(
        openapi::documented_routes(&openapi::document())
            .iter()
            .all(|(_, p)| !p.starts_with("/admin"))
    );
}

/// The auditor's export over the admin API verifies with nothing but the seal key's public
/// key (`sam::verify_audit_export`: no token, no database, as on another machine); other roles
/// get neither; the range is capped at 100,000 records a call.
#[test]
fn the_auditors_export_verifies_with_the_seal_key_alone() {
    let k = Kit::new();
    add_admins(&k);
    let op = admin_token(&k, "olga");
    let aud = admin_token(&k, "aude");
    for path in [
        "/admin/v1/audit/export?from=1&to=10",
        "/admin/v1/audit/seal-key",
    ] {
        let r = call(&k, &op, "GET", path, &Value::Null);
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (403, json!("access_denied")),
            "{path}"
        );
        conforms("GET", path, &r);
    }
    let key = call(&k, &aud, "GET", "/admin/v1/audit/seal-key", &Value::Null);
    assert_eq!(key.status, 200, "{}", key.text());
    assert_eq!(key.header("content-type"), Some("application/x-pem-file"));
    assert!(key.text().starts_with("-----BEGIN PUBLIC KEY-----"));
    // the whole log (no `to`: up to its head)
    let head = last_seq(&k);
    let export = call(&k, &aud, "GET", "/admin/v1/audit/export", &Value::Null);
    assert_eq!(export.status, 200, "{}", export.text());
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    let report =
        sam::verify_audit_export(&mut export.body.as_ref(), key.body.as_ref()).expect("verifies");
    assert_eq!((report.from, report.to), (1, head));
    // a range, and a one-byte edit that fails
    let part = call(
        &k,
        &aud,
        "GET",
        "/admin/v1/audit/export?from=2&to=4",
        &Value::Null,
    );
    assert_eq!(part.status, 200);
    let report = sam::verify_audit_export(&mut part.body.as_ref(), key.body.as_ref())
        .expect("a range verifies from its anchor");
    assert_eq!((report.from, report.to, report.records), (2, 4, 3));
    let text = String::from_utf8(part.body.to_vec()).expect("utf-8");
    let edited = text.replacen("\"outcome\":\"success\"", "\"outcome\":\"successs\"", 1);
    assert_ne!(edited, text);
    assert!(sam::verify_audit_export(&mut edited.as_bytes(), key.body.as_ref()).is_err());
    // refused ranges, named
    let r = call(
        &k,
        &aud,
        "GET",
        "/admin/v1/audit/export?from=5&to=100005",
        &Value::Null,
    );
    assert_eq!(r.status, 400);
    let d = r.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        d.contains("Invalid parameter to") && d.contains("100004"),
        "{d}"
    );
    assert_eq!(
        call(
            &k,
            &aud,
            "GET",
            "/admin/v1/audit/export?from=0",
            &Value::Null
        )
        .status,
        400
    );
    let r = call(
        &k,
        &aud,
        "GET",
        "/admin/v1/audit/export?from=1&to=99999",
        &Value::Null,
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_request")),
        "beyond the log"
    );
    assert!(
        k.audit_records()
            .iter()
            .any(|r| r.event == "audit.export" && r.actor == "auditor:aude")
    );
}

/// Signs `digest` with `cred` through the CSC API as alice (authorize with the PIN, then
/// signHash): the answer, and the signature checked against `cert` when it succeeded.
fn sign_as_alice(k: &Kit, token: &str, cred: &str, digest: &[u8]) -> (u16, Value) {
    use base64::engine::general_purpose::STANDARD;
    let (status, v) = k.call(
        "credentials/authorize",
        Some(token),
        &json!({ "credentialID": cred, "numSignatures": 1, "PIN": PIN }),
    );
    if status != 200 {
        return (status, v);
    }
    k.call(
        "signatures/signHash",
        Some(token),
        &json!({ "credentialID": cred, "SAD": v["SAD"], "hash": [STANDARD.encode(digest)],
                 "signAlgo": "1.2.840.10045.4.3.2" }),
    )
}

fn verifies_with(cert_b64: &Value, digest: &[u8], answer: &Value) -> bool {
    let cert = openssl::x509::X509::from_der(&crate::common::decode(
        cert_b64.as_str().expect("certificate"),
    ))
    .expect("der");
    let sig = crate::common::decode(answer["signatures"][0].as_str().expect("signature"));
    crate::api::verifies(
        &cert,
        digest,
        openssl::hash::MessageDigest::sha256(),
        &sig,
        None,
    )
}

/// The whole life of a credential over the admin API (issue 14): create for the operator's CA
/// → CSR → import the chain → sign → disable → refused → enable → sign → rekey → the old key is
/// gone and the new one signs → revoke → refused, the key gone from the token; each act by its
/// role, audited.
#[test]
fn the_full_lifecycle_over_the_admin_api() {
    let k = Kit::new();
    add_admins(&k);
    let op = admin_token(&k, "olga");
    let so = admin_token(&k, "sofia");
    let r = call(
        &k,
        &op,
        "POST",
        "/admin/v1/credentials",
        &json!({ "user": "alice", "keySpec": "ec-p256", "pin": PIN, "csr": true,
                 "subject": "CN=alice,O=Example Signers,C=BE" }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["certificateStatus"], "pending");
    let id = created["credentialID"].as_str().expect("id").to_owned();
    // the operator's CA certifies the request (openssl)
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    crate::operator_ca::make_external_ca(dir.path());
    std::fs::write(
        dir.path().join("req.pem"),
        created["csr"].as_str().expect("csr"),
    )
    .expect("write");
    let csr = call(
        &k,
        &op,
        "POST",
        &format!("/admin/v1/credentials/{id}/csr"),
        &Value::Null,
    );
    assert_eq!(csr.status, 200, "{}", csr.text());
    ca(&[
        "x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "10",
        "-out", "cert.pem",
    ]);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("read");
    let r = call(
        &k,
        &op,
        "POST",
        &format!("/admin/v1/credentials/{id}/chain"),
        &json!({ "certificates": [read("cert.pem"), read("ca.pem")] }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["certificateStatus"], "valid");
    let first_cert = r.json()["certificate"].clone();

    let alice = k.login("alice", ALICE_PASSWORD);
    let digest = [1u8; 32];
    let (status, signed) = sign_as_alice(&k, &alice, &id, &digest);
    assert_eq!(status, 200, "{signed}");
    assert!(verifies_with(&first_cert, &digest, &signed));

    let act = |token: &str, what: &str, body: &Value| {
        let r = call(
            &k,
            token,
            "POST",
            &format!("/admin/v1/credentials/{id}/{what}"),
            body,
        );
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        r.json()
    };
    assert_eq!(act(&op, "disable", &Value::Null)["status"], "disabled");
    let (status, v) = sign_as_alice(&k, &alice, &id, &digest);
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error_description"],
        "The credential identified by credentialID is disabled"
    );
    assert_eq!(act(&op, "enable", &Value::Null)["status"], "enabled");
    let (status, signed) = sign_as_alice(&k, &alice, &id, &digest);
    assert_eq!(status, 200, "{signed}");
    assert!(verifies_with(&first_cert, &digest, &signed));

    let old_key = k
        .sam()
        .credentials_with_owners(Some("alice"))
        .expect("list")
        .into_iter()
        .find(|(_, c)| c.id.to_string() == id)
        .map(|(_, c)| c.key_id)
        .expect("credential");
    let rekeyed = act(&so, "rekey", &json!({}));
    assert_eq!(rekeyed["oldKeyDestroyed"], true);
    assert!(
        !k.sam().key_in_token(&old_key).expect("key"),
        "the old key is gone"
    );
    let (status, signed) = sign_as_alice(&k, &alice, &id, &digest);
    assert_eq!(status, 200, "{signed}");
    assert!(verifies_with(&rekeyed["certificate"], &digest, &signed));
    assert!(
        !verifies_with(&first_cert, &digest, &signed),
        "not the old key"
    );

    let revoked = act(&so, "revoke", &json!({ "reason": "the signer left" }));
    assert_eq!(
        (revoked["status"].clone(), revoked["keyDestroyed"].clone()),
        (json!("revoked"), json!(true))
    );
    let (status, v) = sign_as_alice(&k, &alice, &id, &digest);
    assert_eq!(status, 400, "{v}");
    let new_key = k
        .sam()
        .credentials_with_owners(Some("alice"))
        .expect("list")
        .into_iter()
        .find(|(_, c)| c.id.to_string() == id)
        .map(|(_, c)| c.key_id)
        .expect("credential");
    assert!(
        !k.sam().key_in_token(&new_key).expect("key"),
        "the key is gone from the token"
    );

    let acts: Vec<(String, String)> = k
        .audit_records()
        .into_iter()
        .filter(|r| r.subject == id && r.outcome == "success")
        .map(|r| (r.event, r.actor))
        .collect();
    for (event, actor) in [
        ("credential.create", "operator:olga"),
        ("credential.csr", "operator:olga"),
        ("credential.import_chain", "operator:olga"),
        ("credential.disable", "operator:olga"),
        ("credential.enable", "operator:olga"),
        ("credential.rekey", "security-officer:sofia"),
        ("credential.revoke", "security-officer:sofia"),
        ("key.destroy", "security-officer:sofia"),
    ] {
        assert!(
            acts.iter().any(|(e, a)| e == event && a == actor),
            "{event} by {actor}: {acts:?}"
        );
    }
    assert!(k.audit_intact());
}

/// The insider (Part I 7.1.1.6-7; the database is not trusted): a role raised in SQL behind the
/// server's back grants nothing. An operator made security officer in its row, and the signer
/// made operator, are refused as users that do not exist (the row fails its MAC): the
/// operator's live token stops at the next call, no new token is issued to either, and the
/// violation is audited naming the users row.
#[test]
fn a_role_raised_in_sql_grants_nothing_over_the_admin_api() {
    let k = Kit::new();
    add_admins(&k);
    let olga = admin_token(&k, "olga");
    // before: the operator lists users, and may not list clients (the security officer's)
    assert_eq!(
        call(&k, &olga, "GET", "/admin/v1/users", &Value::Null).status,
        200
    );
    let r = call(&k, &olga, "GET", "/admin/v1/clients", &Value::Null);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, json!("access_denied"))
    );

    let raised = crate::insider::insider(
        &k,
        "UPDATE users SET role = 'security-officer' WHERE name = 'olga'",
    );
    assert_eq!(raised, 1);
    assert_eq!(
        crate::insider::insider(
            &k,
            "UPDATE users SET role = 'operator' WHERE name = 'alice'"
        ),
        1
    );
    // the live token (within the cache bound or not) never reaches the security officer's act
    for path in ["/admin/v1/clients", "/admin/v1/users"] {
        let r = call(&k, &olga, "GET", path, &Value::Null);
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{path}");
    }
    for (user, password) in [("olga", PASSWORD), ("alice", ALICE_PASSWORD)] {
        let r = token_request(&k, user, password, "client_credentials");
        assert_eq!(r.status, 401, "{user}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client", "{user}");
    }
    assert!(
        k.audit_records()
            .iter()
            .any(|r| r.event == "integrity.violation" && r.subject.starts_with("users/")),
        "the edited users row is audited"
    );
    // nobody acted as a security officer: no client listing by olga was audited as allowed
    assert!(
        !k.audit_records()
            .iter()
            .any(|r| r.event == "client.list" && r.actor.starts_with("security-officer:olga")),
        "no act in the raised role"
    );
}
