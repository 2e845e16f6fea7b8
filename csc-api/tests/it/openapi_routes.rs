//! The OpenAPI document (openapi) against the real app in process ([`crate::kit`]):
//!
//! * routes: every documented operation is served, and every method on every path the server
//!   might serve is documented when served. The paths probed are the documented ones, every
//!   path literal in csc-api's source (`.route("...")`, `web::scope("...")`, ... combined), the
//!   whole CSC v1/v2, TSA and OAuth2 surface, and what `info` advertises. "Not served" is the
//!   app's default answer (404 "The requested method does not exist") or a 405.
//! * 405: every documented path asked with any other method answers 405 with an `Allow` that
//!   lists exactly its documented methods, and a documented method never answers 405 (csc-api
//!   `routing` derives its table from the document: this is where the table and the routes
//!   are proved to agree).
//! * answers: one real call of every operation and its typical errors, each answer checked
//!   against the document (status documented, body valid, required headers present). This
//!   covers the successes schemathesis cannot reach with random data (a SAD needs the PIN).
//!
//! The fields of the wire types are compared with the document in `openapi/tests`.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::{Kit, basic};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Documented operations that never answer with success, with why.
const NEVER_SUCCEEDS: &[(&str, &str, &str)] = &[(
    "POST",
    "/csc/v2/credentials/authorizeCheck",
    "authorization is synchronous: no handle is ever issued, so every handle is refused",
)];

/// The CSC v1.0.4.0 and v2.0.0.2 methods, the TSA and the OAuth2 endpoints, served or not.
const SURFACE: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/csc/v1/info",
    "/csc/v1/auth/login",
    "/csc/v1/auth/revoke",
    "/csc/v1/credentials/list",
    "/csc/v1/credentials/info",
    "/csc/v1/credentials/authorize",
    "/csc/v1/credentials/extendTransaction",
    "/csc/v1/credentials/sendOTP",
    "/csc/v1/signatures/signHash",
    "/csc/v1/signatures/timestamp",
    "/oauth2/authorize",
    "/oauth2/token",
    "/oauth2/revoke",
    "/csc/v1/oauth2/authorize",
    "/csc/v1/oauth2/token",
    "/csc/v1/oauth2/revoke",
    "/csc/v2/info",
    "/csc/v2/auth/login",
    "/csc/v2/auth/revoke",
    "/csc/v2/credentials/list",
    "/csc/v2/credentials/info",
    "/csc/v2/credentials/authorize",
    "/csc/v2/credentials/authorizeCheck",
    "/csc/v2/credentials/getChallenge",
    "/csc/v2/credentials/extendTransaction",
    "/csc/v2/credentials/sendOTP",
    "/csc/v2/signatures/signHash",
    "/csc/v2/signatures/signDoc",
    "/csc/v2/signatures/signPolling",
    "/csc/v2/signatures/timestamp",
    "/tsa",
    "/oauth2/pushed_authorize",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
];

/// The path literals in the Rust sources under `dir`: `(scopes, routes)`, from `scope("...")`
/// and from `route(`, `resource(`, `service(` or a routing attribute macro.
pub(crate) fn path_literals(
    dir: &Path,
    scopes: &mut BTreeSet<String>,
    routes: &mut BTreeSet<String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            path_literals(&path, scopes, routes);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for opener in [
            "scope(",
            "route(",
            "resource(",
            "get(",
            "post(",
            "put(",
            "patch(",
            "delete(",
        ] {
            for (i, _) in text.match_indices(opener) {
                let rest = text[i + opener.len()..].trim_start();
                if let Some(lit) = rest.strip_prefix('"')
                    && let Some(end) = lit.find('"')
                    && lit[..end].starts_with('/')
                {
                    let set = if opener == "scope(" {
                        &mut *scopes
                    } else {
                        &mut *routes
                    };
                    set.insert(lit[..end].to_owned());
                }
            }
        }
    }
}

/// The paths to probe: documented, every source route literal alone and under every one or
/// two scope literals, the CSC/OAuth2 surface and the methods `info` lists.
fn candidate_paths(documented: &[(String, String)], infos: &[(&str, Value)]) -> BTreeSet<String> {
    let (mut scopes, mut routes) = (BTreeSet::new(), BTreeSet::new());
    path_literals(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut scopes,
        &mut routes,
    );
    assert!(
        scopes.contains("/csc/v1") && routes.contains("/auth/login"),
        "the source scan finds the route table: {scopes:?} {routes:?}"
    );
    let mut paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    paths.extend(SURFACE.iter().map(|p| (*p).to_owned()));
    for r in &routes {
        paths.insert(r.clone());
        for scope in &scopes {
            paths.insert(format!("{scope}{r}"));
            for outer in &scopes {
                paths.insert(format!("{outer}{scope}{r}"));
            }
        }
    }
    for (base, info) in infos {
        for m in info["methods"].as_array().into_iter().flatten() {
            if let Some(m) = m.as_str() {
                paths.insert(format!("{base}/{m}"));
            }
        }
    }
    for base in infos.iter().filter_map(|(_, info)| info["oauth2"].as_str()) {
        let base = base
            .split_once("://")
            .map_or(base, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
        for e in ["authorize", "token", "revoke"] {
            paths.insert(format!("{}/oauth2/{e}", base.trim_end_matches('/')));
            paths.insert(format!("{}/{e}", base.trim_end_matches('/')));
        }
    }
    paths
}

/// `info` of each version the server serves: `(base path, answer)`.
fn infos(k: &Kit) -> Vec<(&'static str, Value)> {
    ["/csc/v1", "/csc/v2"]
        .into_iter()
        .filter_map(|base| {
            let r = k.send(k.post(&format!("{base}/info")).set_json(json!({})));
            (r.status == 200).then(|| (base, r.json()))
        })
        .collect()
}

fn served(k: &Kit, method: &str, path: &str) -> bool {
    let resp = k.send(k.req(method, path));
    let status = resp.status;
    let text = resp.text();
    // the app's default service; a HEAD answer has no body to tell it by
    let default =
        status == 404 && (method == "HEAD" || text.contains("The requested method does not exist"));
    !(default || status == 405)
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let doc = openapi::document();
    let documented = openapi::documented_routes(&doc);
    let k = Kit::new();
    let infos = infos(&k);
    assert!(
        infos.iter().any(|(base, _)| *base == "/csc/v1"),
        "v1 info answers"
    );
    let mut undocumented = vec![];
    let mut unserved = vec![];
    let paths = candidate_paths(&documented, &infos);
    for path in &paths {
        for method in METHODS {
            let is_documented = documented.iter().any(|(m, p)| m == method && p == path);
            match (served(&k, method, path), is_documented) {
                (true, false) => undocumented.push(format!("{method} {path}")),
                (false, true) => unserved.push(format!("{method} {path}")),
                _ => {}
            }
        }
    }
    let list = |v: &[String]| v.iter().map(|r| format!("\n    {r}")).collect::<String>();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "the server and its OpenAPI document (openapi) disagree ({} paths probed with {METHODS:?})\
         \n  served, not documented (add an Operation in openapi/src):{}\
         \n  documented, not served (mount the route, or remove the Operation):{}",
        paths.len(),
        list(&undocumented),
        list(&unserved),
    );
    // every method `info` advertises is a documented operation
    for (base, info) in &infos {
        for m in info["methods"].as_array().into_iter().flatten() {
            let path = format!("{base}/{}", m.as_str().unwrap_or_default());
            assert!(
                documented.iter().any(|(_, p)| *p == path),
                "{base}/info lists {m}, the document has no {path}"
            );
        }
    }
}

/// The 405 table (csc-api `routing`, read from the document) and the routes agree: on every
/// documented path, a method it does not document answers 405 with exactly the documented
/// methods in `Allow` and the CSC error body; a documented method is never refused with 405.
#[test]
fn every_documented_path_answers_405_with_its_allow_for_other_methods() {
    let doc = openapi::document();
    let documented = openapi::documented_routes(&doc);
    let k = Kit::new();
    let paths: BTreeSet<&str> = documented.iter().map(|(_, p)| p.as_str()).collect();
    let mut wrong = vec![];
    for path in &paths {
        let mut allowed: Vec<&str> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        allowed.sort_unstable();
        let allow = allowed.join(", ");
        for method in METHODS.iter().chain(&["TRACE", "QUERY"]) {
            let r = k.send(k.req(method, path));
            let got = (r.status, r.header("allow").map(str::to_owned));
            if allowed.contains(method) {
                if r.status == 405 {
                    wrong.push(format!("{method} {path}: documented, answered 405"));
                }
            } else if got != (405, Some(allow.clone())) {
                wrong.push(format!(
                    "{method} {path}: {got:?}, expected 405 with Allow: {allow}"
                ));
            } else if *method != "HEAD" && r.json()["error"] != "invalid_request" {
                wrong.push(format!("{method} {path}: body {}", r.text()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "405 answers and the document disagree:\n  {}",
        wrong.join("\n  ")
    );
}

/// One real answer.
struct Answer {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
    body: String,
    /// The body as sent (a binary RFC 3161 reply).
    raw: Vec<u8>,
}

/// A request body: JSON, a form (the OAuth 2.0 endpoints), or bytes with the `Content-Type`
/// given, if any (`/tsa`).
enum Body {
    None,
    Json(Value),
    Form(Vec<(&'static str, String)>),
    Binary(Option<&'static str>, Vec<u8>),
}

/// Sends one request to the kit; redirects are answers, not followed.
fn send(k: &Kit, method: &str, path: &str, headers: &[(&str, &str)], body: Body) -> Answer {
    let mut req = k.req(method, path);
    for (name, value) in headers {
        req = req.append_header((*name, *value));
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req.set_json(&v),
        Body::Form(f) => req
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(serde_urlencoded::to_string(&f).expect("form")),
        Body::Binary(content_type, bytes) => match content_type {
            Some(t) => req.insert_header(("content-type", t)),
            None => req,
        }
        .set_payload(bytes),
    };
    let resp = k.send(req);
    Answer {
        status: resp.status,
        body: resp.text(),
        raw: resp.body.to_vec(),
        headers: resp.headers,
    }
}

/// Asserts that the answer is one the document gives for this operation; returns its JSON
/// (an HTML page as a JSON string).
#[track_caller]
fn conforms(doc: &Value, method: &str, path: &str, a: &Answer) -> Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let documented = &op["responses"][a.status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path}: status {} is not documented: {}",
        a.status,
        a.body
    );
    for (name, h) in documented["headers"].as_object().into_iter().flatten() {
        let value = a.headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match value {
            Some(v) => {
                let errors = openapi::check::validate(doc, &h["schema"], &json!(v));
                assert!(
                    errors.is_empty(),
                    "{method} {path} header {name}: {errors:?}"
                );
            }
            None => assert!(
                h["required"] != true,
                "{method} {path} {}: no {name} header",
                a.status
            ),
        }
    }
    let ct = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // an HTML page or plain text: the media type
    if let Some(media) = documented["content"]
        .as_object()
        .and_then(|c| c.keys().find(|m| *m != "application/json"))
    {
        assert!(
            ct.starts_with(media.as_str()),
            "{method} {path}: {ct}, not {media}"
        );
        return Value::String(a.body.clone());
    }
    match documented["content"]["application/json"].get("schema") {
        Some(schema) => {
            assert!(ct.starts_with("application/json"), "{method} {path}: {ct}");
            let v: Value = serde_json::from_str(&a.body).expect("a JSON body");
            let errors = openapi::check::validate(doc, schema, &v);
            assert!(
                errors.is_empty(),
                "{method} {path} {}: the answer violates the document: {errors:?}\n{v}",
                a.status
            );
            v
        }
        None => {
            assert!(a.body.is_empty(), "{method} {path}: unexpected body");
            Value::Null
        }
    }
}

/// Registers an OAuth 2.0 client in the signers' data directory with the command:
/// `(client_id, secret)`.
pub fn register_client(s: &Signers, confidential: bool) -> (String, Option<String>) {
    let mut cmd = csc(s.dir());
    cmd.args(["client", "add", "contract-test", "--redirect-uri"])
        .arg("https://app.example/callback");
    if confidential {
        cmd.arg("--confidential");
    }
    let v = run_ok(&mut cmd);
    (
        v["client_id"].as_str().expect("client_id").to_owned(),
        v["client_secret"].as_str().map(str::to_owned),
    )
}

#[test]
fn real_answers_of_every_operation_match_the_document() {
    let doc = openapi::document();
    let k = Kit::new();
    k.create(&["rsa", "ec", "scal2", "multi", "bob"]);
    let (client_id, secret) =
        k.client_add("contract-test", &["https://app.example/callback"], true);
    let secret = secret.expect("a confidential client's secret");
    let seen = std::cell::RefCell::new(BTreeSet::new());
    // `target` is the path, with a query if any
    let call_with = |method: &str, target: &str, headers: &[(&str, &str)], body: Body| {
        let a = send(&k, method, target, headers, body);
        let path = target.split('?').next().unwrap_or(target);
        let v = conforms(&doc, method, path, &a);
        seen.borrow_mut()
            .insert(format!("{method} {path} {}", a.status));
        (a.status, v, a.headers)
    };
    let call = |method: &str, path: &str, auth: Option<&str>, body: Body| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        call_with(method, path, &headers, body)
    };
    let json = |v: Value| Body::Json(v);

    assert_eq!(call("GET", "/health", None, Body::None).0, 200);
    assert_eq!(call("GET", "/ready", None, Body::None).0, 200);
    let (status, metrics, _) = call("GET", "/metrics", None, Body::None);
    assert_eq!(status, 200);
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("csc_http_requests_total{")),
        "{metrics}"
    );
    let (status, served, _) = call("GET", "/openapi.json", None, Body::None);
    assert_eq!((status, &served), (200, &doc), "the served document");
    assert_eq!(call("GET", "/csc/v1/info", None, Body::None).0, 200);
    assert_eq!(call("POST", "/csc/v1/info", None, Body::None).0, 200);
    let bad_lang = json(json!({ "lang": 5 }));
    assert_eq!(call("POST", "/csc/v1/info", None, bad_lang).0, 400);

    // auth/login: Basic with rememberMe, refresh, failures
    let login = "/csc/v1/auth/login";
    let alice = basic("alice", ALICE_PASSWORD);
    let remember = json(json!({ "rememberMe": true }));
    let (status, tokens, _) = call("POST", login, Some(&alice), remember);
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().expect("token").to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let by_refresh = json(json!({ "refresh_token": refresh }));
    assert_eq!(call("POST", login, None, by_refresh).0, 200);
    let wrong = basic("bob", "wrong");
    assert_eq!(call("POST", login, Some(&wrong), Body::None).0, 400);
    assert_eq!(call("POST", login, None, Body::None).0, 401);
    assert_eq!(call("POST", login, Some("Bearer x"), Body::None).0, 401);
    let bearer = format!("Bearer {access}");
    let bearer = Some(bearer.as_str());

    // credentials/list and credentials/info of every kind of credential
    let list = "/csc/v1/credentials/list";
    let (status, page, _) = call("POST", list, bearer, json(json!({ "maxResults": 1 })));
    assert_eq!(status, 200);
    assert!(page["nextPageToken"].is_string());
    let (status, page, _) = call("POST", list, bearer, Body::None);
    assert_eq!(status, 200);
    assert_eq!(page["credentialIDs"].as_array().map(Vec::len), Some(4));
    let other = json(json!({ "userID": "bob" }));
    assert_eq!(call("POST", list, bearer, other).0, 400);
    // and two more kinds: an offline TOTP, and an oauth2code credential
    let created = |args: &[&str]| {
        let v = k.credential_create("alice", args).expect("credential");
        v["credentialID"].as_str().expect("id").to_owned()
    };
    let totp = created(&["--key", "ec-p256", "--otp"]);
    let oauth2code = created(&["--key", "ec-p256", "--auth-mode", "oauth2code"]);
    let kinds: Vec<(&str, String)> = ["rsa", "ec", "scal2", "multi"]
        .into_iter()
        .map(|c| (c, k.id(c).to_owned()))
        .chain([("totp", totp.clone()), ("oauth2code", oauth2code.clone())])
        .collect();
    let info = "/csc/v1/credentials/info";
    for (cred, id) in &kinds {
        for certificates in ["none", "single", "chain"] {
            let body = json!({
                "credentialID": id, "certificates": certificates,
                "certInfo": true, "authInfo": true,
            });
            assert_eq!(call("POST", info, bearer, json(body)).0, 200, "{cred}");
        }
    }
    let bobs = json(json!({ "credentialID": k.id("bob") }));
    assert_eq!(call("POST", info, bearer, bobs).0, 400);

    // sendOTP (scal2 has an online OTP), authorize, signHash, extendTransaction, signHash
    let send_otp = "/csc/v1/credentials/sendOTP";
    let scal2 = json(json!({ "credentialID": k.id("scal2") }));
    assert_eq!(call("POST", send_otp, bearer, scal2).0, 204);
    let no_online_otp = json(json!({ "credentialID": k.id("ec") }));
    assert_eq!(call("POST", send_otp, bearer, no_online_otp).0, 400);
    let digest = |data: &[u8]| STANDARD.encode(openssl::sha::sha256(data));
    let authorize = "/csc/v1/credentials/authorize";
    let two = json!({ "credentialID": k.id("multi"), "numSignatures": 2, "PIN": PIN });
    let (status, sad, _) = call("POST", authorize, bearer, json(two));
    assert_eq!(status, 200);
    let sign = |sad: &Value, data: &[u8]| {
        Body::Json(json!({
            "credentialID": k.id("multi"), "SAD": sad["SAD"],
            "hash": [digest(data)], "signAlgo": "1.2.840.10045.4.3.2",
        }))
    };
    let sign_hash = "/csc/v1/signatures/signHash";
    assert_eq!(call("POST", sign_hash, bearer, sign(&sad, b"one")).0, 200);
    let extend = json(json!({ "credentialID": k.id("multi"), "SAD": sad["SAD"] }));
    let (status, sad, _) = call(
        "POST",
        "/csc/v1/credentials/extendTransaction",
        bearer,
        extend,
    );
    assert_eq!(status, 200);
    assert_eq!(call("POST", sign_hash, bearer, sign(&sad, b"two")).0, 200);
    let wrong_pin = json!({ "credentialID": k.id("ec"), "numSignatures": 1, "PIN": "000000" });
    assert_eq!(call("POST", authorize, bearer, json(wrong_pin)).0, 400);

    // every Bearer method: no header (400), an unknown token (401 + WWW-Authenticate), a body
    // that is not an object (400)
    for path in [
        "/csc/v1/auth/revoke",
        "/csc/v1/credentials/list",
        "/csc/v1/credentials/info",
        "/csc/v1/credentials/authorize",
        "/csc/v1/credentials/extendTransaction",
        "/csc/v1/credentials/sendOTP",
        "/csc/v1/signatures/signHash",
        "/csc/v1/signatures/timestamp",
    ] {
        assert_eq!(call("POST", path, None, json(json!({}))).0, 400, "{path}");
        let unknown = Some("Bearer csc_at_unknown");
        assert_eq!(
            call("POST", path, unknown, json(json!({}))).0,
            401,
            "{path}"
        );
        assert_eq!(call("POST", path, bearer, json(json!([]))).0, 400, "{path}");
    }

    // CSC v2: info, login, every credentials/* and signatures/* method, their typical refusals
    assert_eq!(call("GET", "/csc/v2/info", None, Body::None).0, 200);
    let (status, info2, _) = call("POST", "/csc/v2/info", None, Body::None);
    assert_eq!(status, 200);
    assert!(info2["oauth2"].is_string() && info2["oauth2Issuer"].is_string());
    assert_eq!(info2["signature_formats"]["formats"], json!(["C", "P"]));
    let bad_lang = json(json!({ "lang": 5 }));
    assert_eq!(call("POST", "/csc/v2/info", None, bad_lang).0, 400);
    let login2 = "/csc/v2/auth/login";
    let remember = json(json!({ "rememberMe": true }));
    let (status, tokens2, _) = call("POST", login2, Some(&alice), remember);
    assert_eq!(status, 200);
    let access2 = tokens2["access_token"].as_str().expect("token").to_owned();
    let by_refresh = json(json!({ "refresh_token": tokens2["refresh_token"] }));
    assert_eq!(call("POST", login2, None, by_refresh).0, 200);
    assert_eq!(call("POST", login2, Some(&wrong), Body::None).0, 400);
    assert_eq!(call("POST", login2, None, Body::None).0, 401);

    let list2 = "/csc/v2/credentials/list";
    let everything = json!({
        "credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true,
    });
    let (status, listed, _) = call("POST", list2, bearer, json(everything));
    assert_eq!(status, 200);
    assert_eq!(listed["credentialInfos"].as_array().map(Vec::len), Some(6));
    let valid_only = json(json!({ "credentialInfo": true, "onlyValid": true }));
    let (status, listed, _) = call("POST", list2, bearer, valid_only);
    assert_eq!((status, &listed["onlyValid"]), (200, &json!(true)));
    assert_eq!(call("POST", list2, bearer, Body::None).0, 200);
    let other = json(json!({ "userID": "bob" }));
    assert_eq!(call("POST", list2, bearer, other).0, 400);
    let info2_path = "/csc/v2/credentials/info";
    for (cred, id) in &kinds {
        for certificates in ["none", "single", "chain"] {
            let body = json!({
                "credentialID": id, "certificates": certificates,
                "certInfo": true, "authInfo": true,
            });
            let (status, described, _) = call("POST", info2_path, bearer, json(body));
            assert_eq!(status, 200, "{cred}");
            if *cred == "scal2" {
                // the online OTP: out of band out (getChallenge), in band back (authData)
                let otp = json!({
                    "type": "ChallengeResponse", "id": "OTP", "format": "N", "label": "OTP",
                    "description": "The 6-digit code sent to you on request (credentials/getChallenge)",
                });
                assert_eq!(described["auth"]["objects"][1], otp);
            }
        }
    }
    let bobs = json(json!({ "credentialID": k.id("bob") }));
    assert_eq!(call("POST", info2_path, bearer, bobs).0, 400);

    let challenge = "/csc/v2/credentials/getChallenge";
    let otp_of = |cred: &str| json(json!({ "credentialID": k.id(cred), "authObjectID": "OTP" }));
    assert_eq!(call("POST", challenge, bearer, otp_of("scal2")).0, 204);
    let online = outbox_code(&k.dir().join("otp-outbox.log"), k.id("scal2")).expect("the OTP");
    assert_eq!(call("POST", challenge, bearer, otp_of("ec")).0, 400);

    let authorize2 = "/csc/v2/credentials/authorize";
    let sign_hash2 = "/csc/v2/signatures/signHash";
    let pin = json!([{ "id": "PIN", "value": PIN }]);
    let two = json!({ "credentialID": k.id("multi"), "numSignatures": 2, "authData": pin });
    let (status, sad, _) = call("POST", authorize2, bearer, json(two));
    assert_eq!(status, 200);
    let sign2 = |cred: &str, sad: &Value, data: &[u8]| {
        Body::Json(json!({
            "credentialID": k.id(cred), "SAD": sad["SAD"],
            "hashes": [digest(data)], "signAlgo": "1.2.840.10045.4.3.2",
        }))
    };
    assert_eq!(
        call("POST", sign_hash2, bearer, sign2("multi", &sad, b"one")).0,
        200
    );
    let extend = json(json!({ "credentialID": k.id("multi"), "SAD": sad["SAD"] }));
    let extend2 = "/csc/v2/credentials/extendTransaction";
    let (status, sad, _) = call("POST", extend2, bearer, extend);
    assert_eq!(status, 200);
    assert_eq!(
        call("POST", sign_hash2, bearer, sign2("multi", &sad, b"two")).0,
        200
    );
    // SCAL 2: the hashes bound, PIN and the online OTP as authData
    let scal2_body = json!({
        "credentialID": k.id("scal2"), "numSignatures": 1,
        "hashes": [digest(b"scal2")], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
        "authData": [{ "id": "PIN", "value": PIN }, { "id": "OTP", "value": online }],
    });
    let (status, sad, _) = call("POST", authorize2, bearer, json(scal2_body));
    assert_eq!(status, 200);
    let rsa_sign = json(json!({
        "credentialID": k.id("scal2"), "SAD": sad["SAD"], "hashes": [digest(b"scal2")],
        "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.113549.1.1.1",
    }));
    assert_eq!(call("POST", sign_hash2, bearer, rsa_sign).0, 200);
    let send_otp2 = "/csc/v2/credentials/sendOTP";
    let scal2 = json(json!({ "credentialID": k.id("scal2") }));
    assert_eq!(call("POST", send_otp2, bearer, scal2).0, 204);
    let wrong_pin = json!({
        "credentialID": k.id("ec"), "numSignatures": 1,
        "authData": [{ "id": "PIN", "value": "000000" }],
    });
    assert_eq!(call("POST", authorize2, bearer, json(wrong_pin)).0, 400);
    let no_otp = json!({
        "credentialID": k.id("ec"), "numSignatures": 1,
        "authData": [{ "id": "PIN", "value": PIN }, { "id": "OTP", "value": "123456" }],
    });
    assert_eq!(call("POST", authorize2, bearer, json(no_otp)).0, 400);
    let asynchronous = json(json!({
        "credentialID": k.id("ec"), "SAD": "x", "hashes": [digest(b"a")],
        "signAlgo": "1.2.840.10045.4.3.2", "operationMode": "A",
    }));
    assert_eq!(call("POST", sign_hash2, bearer, asynchronous).0, 400);
    let check = "/csc/v2/credentials/authorizeCheck";
    assert_eq!(
        call("POST", check, bearer, json(json!({ "handle": "h" }))).0,
        400
    );

    // every v2 Bearer method: no header (400), an unknown token (401 + WWW-Authenticate), a
    // body that is not an object (400)
    for path in [
        "/csc/v2/auth/revoke",
        "/csc/v2/credentials/list",
        "/csc/v2/credentials/info",
        "/csc/v2/credentials/authorize",
        "/csc/v2/credentials/authorizeCheck",
        "/csc/v2/credentials/getChallenge",
        "/csc/v2/credentials/extendTransaction",
        "/csc/v2/credentials/sendOTP",
        "/csc/v2/signatures/signHash",
        "/csc/v2/signatures/timestamp",
    ] {
        assert_eq!(call("POST", path, None, json(json!({}))).0, 400, "{path}");
        let unknown = Some("Bearer csc_at_unknown");
        assert_eq!(
            call("POST", path, unknown, json(json!({}))).0,
            401,
            "{path}"
        );
        assert_eq!(call("POST", path, bearer, json(json!([]))).0, 400, "{path}");
    }

    // OAuth 2.0: the sign-in page, its form (denied: a redirect), token, revoke
    let authorize_page = "/oauth2/authorize";
    let query = format!("{authorize_page}?response_type=code&client_id={client_id}&state=xyz");
    let a = send(&k, "GET", &query, &[], Body::None);
    assert_eq!(a.status, 200, "{}", a.body);
    let page = conforms(&doc, "GET", authorize_page, &a);
    seen.borrow_mut()
        .insert(format!("GET {authorize_page} 200"));
    let handle = page
        .as_str()
        .and_then(|p| p.split("name=\"request\" value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the form's request handle")
        .to_owned();
    let cookie = a
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("the page's cookie")
        .to_owned();
    let unknown_client = format!("{authorize_page}?response_type=code&client_id=nobody");
    let a = send(&k, "GET", &unknown_client, &[], Body::None);
    assert_eq!(a.status, 400);
    conforms(&doc, "GET", authorize_page, &a);
    let form =
        |action: &str| Body::Form(vec![("request", handle.clone()), ("action", action.into())]);
    let a = send(&k, "POST", authorize_page, &[], form("deny"));
    assert_eq!(a.status, 403, "no cookie: the CSRF check");
    conforms(&doc, "POST", authorize_page, &a);
    let a = send(
        &k,
        "POST",
        authorize_page,
        &[("cookie", &cookie)],
        form("deny"),
    );
    assert_eq!(a.status, 302, "{}", a.body);
    conforms(&doc, "POST", authorize_page, &a);
    seen.borrow_mut()
        .insert(format!("POST {authorize_page} 302"));
    let location = a.headers.get("location").and_then(|v| v.to_str().ok());
    assert!(
        location.is_some_and(|l| l.contains("error=access_denied") && l.contains("state=xyz")),
        "{location:?}"
    );

    let token = "/oauth2/token";
    let client_basic = basic(&client_id, &secret);
    let grant = |g: &str| Body::Form(vec![("grant_type", g.to_owned())]);
    let (status, issued, _) = call(
        "POST",
        token,
        Some(&client_basic),
        grant("client_credentials"),
    );
    assert_eq!(status, 200);
    assert_eq!(issued["token_type"], "Bearer");
    let code = Body::Form(vec![
        ("grant_type", "authorization_code".into()),
        ("code", "not-a-code".into()),
    ]);
    assert_eq!(call("POST", token, Some(&client_basic), code).0, 400);
    assert_eq!(
        call("POST", token, Some("Bearer x"), grant("client_credentials")).0,
        401
    );
    let revoke = |t: &str| Body::Form(vec![("token", t.to_owned())]);
    let client_token = issued["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        call(
            "POST",
            "/oauth2/revoke",
            Some(&client_basic),
            revoke(&client_token)
        )
        .0,
        204
    );
    assert_eq!(
        call("POST", "/oauth2/revoke", Some(&client_basic), revoke("x")).0,
        400
    );
    assert_eq!(
        call("POST", "/oauth2/revoke", Some("Basic !"), revoke("x")).0,
        401
    );

    // OAuth 2.0 for v2: the metadata; PAR with authorization_details, its page, the consent,
    // the credential token (`OAuthCredentialTokenResponse`), which v2 takes as the Bearer
    let metadata = "/.well-known/oauth-authorization-server";
    let (status, meta, _) = call("GET", metadata, None, Body::None);
    assert_eq!((status, &meta["issuer"]), (200, &info2["oauth2Issuer"]));
    let par = "/oauth2/pushed_authorize";
    let rar_digest = digest(b"contract.pdf");
    let details = json!([{
        "type": "credential", "credentialID": k.id("rsa"),
        "documentDigests": [{ "hash": rar_digest, "label": "Contract" }],
        "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
    }]);
    // every CSC v2 credential request uses PKCE (v2 §8.4.2)
    let (verifier, rar_challenge) = crate::oauth2::pkce();
    let pushed = |details: &Value| {
        Body::Form(vec![
            ("response_type", "code".into()),
            ("redirect_uri", "https://app.example/callback".into()),
            ("state", "st".into()),
            ("authorization_details", details.to_string()),
            ("code_challenge", rar_challenge.clone()),
            ("code_challenge_method", "S256".into()),
        ])
    };
    let (status, answer, _) = call("POST", par, Some(&client_basic), pushed(&details));
    assert_eq!(status, 201, "{answer}");
    let request_uri = answer["request_uri"]
        .as_str()
        .expect("request_uri")
        .to_owned();
    let (status, refused, _) = call("POST", par, Some(&client_basic), pushed(&json!([])));
    assert_eq!(
        (status, &refused["error"]),
        (400, &json!("invalid_authorization_details"))
    );
    // the plain CSC v2 parameters the document lists beside authorization_details
    let (_, challenge) = crate::oauth2::pkce();
    let plain = Body::Form(vec![
        ("response_type", "code".into()),
        ("scope", "credential".into()),
        ("credentialID", k.id("rsa").to_owned()),
        ("hashes", rar_digest.replace('+', "-").replace('/', "_")),
        ("hashAlgorithmOID", "2.16.840.1.101.3.4.2.1".into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ]);
    let (status, answer, _) = call("POST", par, Some(&client_basic), plain);
    assert_eq!(status, 201, "{answer}");
    let (status, refused, _) = call("POST", par, Some("Bearer x"), pushed(&details));
    assert_eq!((status, &refused["error"]), (401, &json!("invalid_client")));
    let mut cookies: Vec<String> = vec![];
    let mut keep = |headers: &actix_web::http::header::HeaderMap| {
        for c in headers.get_all("set-cookie") {
            if let Some(kv) = c.to_str().ok().and_then(|v| v.split(';').next()) {
                cookies.push(kv.to_owned());
            }
        }
        cookies.join("; ")
    };
    let open = format!(
        "{authorize_page}?{}",
        serde_urlencoded::to_string([("client_id", &client_id), ("request_uri", &request_uri)])
            .expect("query")
    );
    let (status, page, headers) = call_with("GET", &open, &[], Body::None);
    assert_eq!(status, 200, "{page}");
    let cookie = keep(&headers);
    let handle = page
        .as_str()
        .and_then(|p| p.split("name=\"request\" value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the form's request handle")
        .to_owned();
    let step = |fields: &[(&'static str, &str)]| {
        Body::Form(fields.iter().map(|(n, v)| (*n, (*v).to_owned())).collect())
    };
    let sign_in = step(&[
        ("request", handle.as_str()),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ]);
    let (status, page, headers) =
        call_with("POST", authorize_page, &[("cookie", &cookie)], sign_in);
    assert_eq!(status, 200, "{page}");
    let cookie = keep(&headers);
    let approve = step(&[
        ("request", handle.as_str()),
        ("PIN", PIN),
        ("action", "approve"),
    ]);
    let (status, _, headers) = call_with("POST", authorize_page, &[("cookie", &cookie)], approve);
    assert_eq!(status, 302);
    let location = headers.get("location").and_then(|v| v.to_str().ok());
    let code = location
        .and_then(|l| l.split("code=").nth(1))
        .and_then(|rest| rest.split('&').next())
        .expect("a code")
        .to_owned();
    let exchange = Body::Form(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", "https://app.example/callback".into()),
        ("code_verifier", verifier),
    ]);
    let (status, granted, _) = call("POST", token, Some(&client_basic), exchange);
    assert_eq!(status, 200, "{granted}");
    assert_eq!(
        (&granted["token_type"], &granted["credentialID"]),
        (&json!("Bearer"), &json!(k.id("rsa")))
    );
    let credential_token = format!(
        "Bearer {}",
        granted["access_token"].as_str().expect("token")
    );
    let rsa_info = json(json!({ "credentialID": k.id("rsa") }));
    assert_eq!(
        call("POST", info2_path, Some(&credential_token), rsa_info).0,
        200
    );
    let by_token = json(json!({
        "credentialID": k.id("rsa"), "hashes": [rar_digest],
        "signAlgo": "1.2.840.113549.1.1.11",
    }));
    assert_eq!(
        call("POST", sign_hash2, Some(&credential_token), by_token).0,
        200
    );
    // a credential token is no service token: signatures/timestamp refuses it (CSC v2 §11.13
    // asks for the service authorization)
    let stamp = json!({
        "hash": digest(b"to be time-stamped"), "hashAlgo": "2.16.840.1.101.3.4.2.1",
    });
    let (status, refused, _) = call(
        "POST",
        "/csc/v2/signatures/timestamp",
        Some(&credential_token),
        json(stamp),
    );
    assert_eq!((status, &refused["error"]), (401, &json!("invalid_token")));
    // the request_uri was used up: the page says so
    assert_eq!(call_with("GET", &open, &[], Body::None).0, 400);

    // the time-stamping authority: signatures/timestamp of v1 and v2 (one handler) for a
    // user's and a client's service token, every refusal of the handler with its exact
    // description (in the order it checks); then RFC 3161 at /tsa: granted, rejections (200
    // too), a wrong or missing Content-Type (415), an oversized query (413)
    let sha256 = "2.16.840.1.101.3.4.2.1";
    let stamped = openssl::sha::sha256(b"to be time-stamped");
    let h256 = STANDARD.encode(stamped);
    let (status, issued, _) = call(
        "POST",
        token,
        Some(&client_basic),
        grant("client_credentials"),
    );
    assert_eq!(status, 200);
    let client_bearer = format!("Bearer {}", issued["access_token"].as_str().expect("token"));
    for path in [
        "/csc/v1/signatures/timestamp",
        "/csc/v2/signatures/timestamp",
    ] {
        let request = json!({
            "hash": h256, "hashAlgo": sha256, "nonce": "0123456789abcdef", "clientData": "c",
        });
        for caller in [bearer, Some(client_bearer.as_str())] {
            let (status, answer, _) = call("POST", path, caller, json(request.clone()));
            assert_eq!(status, 200, "{path}: {answer}");
            let token = STANDARD
                .decode(answer["timestamp"].as_str().expect("timestamp"))
                .expect("base64");
            let nonce = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
            crate::tsa::assert_token_of_the_tsa(&k, &token, &stamped, &nonce);
        }
        let refusals = [
            (
                json!({ "hashAlgo": sha256 }),
                "Missing (or invalid type) string parameter hash",
            ),
            (
                json!({ "hash": "", "hashAlgo": sha256 }),
                "Empty hash parameter",
            ),
            (
                json!({ "hash": "%%%", "hashAlgo": sha256 }),
                "Invalid Base64 hash string parameter",
            ),
            (
                json!({ "hash": h256 }),
                "Missing (or invalid type) string parameter hashAlgo",
            ),
            (
                json!({ "hash": h256, "hashAlgo": sha256, "nonce": 7 }),
                "Invalid parameter nonce",
            ),
            (
                json!({ "hash": h256, "hashAlgo": sha256, "clientData": 1 }),
                "Invalid parameter clientData",
            ),
            (
                json!({ "hash": h256, "hashAlgo": "1.3.14.3.2.26" }),
                "Invalid parameter hashAlgo",
            ),
            (
                json!({ "hash": STANDARD.encode([7u8; 20]), "hashAlgo": sha256 }),
                "Invalid digest value length",
            ),
            (
                json!({ "hash": h256, "hashAlgo": sha256, "nonce": "xyz" }),
                "Invalid parameter nonce",
            ),
        ];
        for (body, description) in refusals {
            let (status, refused, _) = call("POST", path, bearer, json(body));
            assert_eq!(
                refused,
                json!({ "error": "invalid_request", "error_description": description }),
                "{path}"
            );
            assert_eq!(status, 400);
        }
    }
    let rfc3161 = |content_type: Option<&'static str>, bytes: Vec<u8>| {
        let a = send(&k, "POST", "/tsa", &[], Body::Binary(content_type, bytes));
        let v = conforms(&doc, "POST", "/tsa", &a);
        seen.borrow_mut().insert(format!("POST /tsa {}", a.status));
        (a.status, v, a.raw)
    };
    let query_type = Some("application/timestamp-query");
    let q = crate::tsa::query(sha256, &stamped, Some(&[1, 2, 3]), None, true);
    let (status, _, reply) = rfc3161(query_type, q.clone());
    assert_eq!(status, 200);
    crate::tsa::assert_granted_by_the_tsa(&k, &reply, &stamped);
    // PKIFailureInfo: badAlg (SHA-1) 0, badDataFormat (not DER, empty) 5
    let sha1 = crate::tsa::query(
        "1.3.14.3.2.26",
        &openssl::sha::sha1(b"x"),
        None,
        None,
        false,
    );
    for (body, bit) in [(sha1, 0), (b"not DER".to_vec(), 5), (vec![], 5)] {
        let (status, _, reply) = rfc3161(query_type, body);
        assert_eq!(status, 200);
        assert_eq!(crate::tsa::rejection(&reply).0, bit);
    }
    for content_type in [
        Some("application/json"),
        Some("application/octet-stream"),
        None,
    ] {
        let (status, refused, _) = rfc3161(content_type, q.clone());
        assert_eq!(
            (status, refused),
            (
                415,
                json!({
                    "error": "invalid_request",
                    "error_description": "The request body must be application/timestamp-query",
                })
            ),
            "{content_type:?}"
        );
    }
    let (status, refused, _) = rfc3161(query_type, vec![0x30; 16 * 1024 + 1]);
    assert_eq!(
        (status, refused),
        (
            413,
            json!({
                "error": "invalid_request",
                "error_description": "A time-stamp query is at most 16384 bytes",
            })
        )
    );

    // oversized bodies: a CSC 400 from the JSON methods, an OAuth 2.0 400 `invalid_request`
    // from the OAuth2 forms (issue 12: the error shape, not a plain 413), the page's 400 page
    let big = "x".repeat(2 * 1024 * 1024);
    let oversized = json(json!({ "credentialID": k.id("ec"), "pad": big }));
    assert_eq!(call("POST", info, bearer, oversized).0, 400);
    for path in [token, "/oauth2/revoke", par] {
        let big_form = Body::Form(vec![("token", "x".repeat(20 * 1024))]);
        let (status, body, _) = call("POST", path, Some(&client_basic), big_form);
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("invalid_request")),
            "{path}"
        );
    }
    let big_form = Body::Form(vec![("token", "x".repeat(20 * 1024))]);
    assert_eq!(call("POST", authorize_page, None, big_form).0, 400);

    // auth/revoke: the access token, then it is refused
    let revoke_access = json(json!({ "token": access, "token_type_hint": "access_token" }));
    assert_eq!(
        call("POST", "/csc/v1/auth/revoke", bearer, revoke_access).0,
        204
    );
    assert_eq!(call("POST", list, bearer, Body::None).0, 401);
    let revoke_access2 = json(json!({ "token": access2 }));
    let bearer2 = format!("Bearer {access2}");
    assert_eq!(
        call(
            "POST",
            "/csc/v2/auth/revoke",
            Some(&bearer2),
            revoke_access2
        )
        .0,
        204
    );

    // every documented operation was called, and answered with success at least once
    let seen = seen.into_inner();
    for (method, path) in openapi::documented_routes(&doc) {
        if NEVER_SUCCEEDS
            .iter()
            .any(|(m, p, _)| *m == method && *p == path)
        {
            continue;
        }
        assert!(
            seen.iter()
                .any(|s| s.starts_with(&format!("{method} {path} 2"))
                    || s.starts_with(&format!("{method} {path} 3"))),
            "no successful call of {method} {path}: {seen:?}"
        );
    }
}
