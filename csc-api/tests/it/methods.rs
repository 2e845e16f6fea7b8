//! A served path asked with a method it does not serve answers 405 with `Allow` (RFC 9110
//! §15.5.6) and the CSC error body; an unknown path keeps the CSC 404 (csc-api `routing`).
//! That the 405 table and the routes cannot disagree is checked for every documented path in
//! `openapi_routes.rs` (`every_documented_path_answers_405_with_its_allow_for_other_methods`).

use serde_json::json;

use crate::kit::Kit;

const NOT_ALLOWED: &str = "The HTTP method is not allowed for this path";

/// Asserts a 405 with exactly `allow` and the CSC body.
#[track_caller]
fn assert_405(k: &Kit, method: &str, path: &str, allow: &str) {
    let r = k.send(k.req(method, path).set_json(json!({})));
    assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
    assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    if method != "HEAD" {
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}"
        );
        assert_eq!(
            r.json(),
            json!({
                "error": "invalid_request",
                "error_description": format!("{NOT_ALLOWED} (allowed: {allow})"),
            }),
            "{method} {path}"
        );
    }
}

#[test]
fn a_post_only_csc_method_asked_otherwise_answers_405_allow_post() {
    let k = Kit::new();
    for path in [
        "/csc/v1/credentials/list",
        "/csc/v1/signatures/signHash",
        "/csc/v1/auth/login",
    ] {
        for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
            assert_405(&k, method, path, "POST");
        }
    }
    // the method it serves still answers as before (here: no Authorization header, CSC 400)
    let (status, body) = k
        .send(k.csc_request("credentials/list", None, &json!({})))
        .pair();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[test]
fn get_only_and_get_post_paths_list_what_they_serve() {
    let k = Kit::new();
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"] {
        assert_405(&k, method, "/health", "GET");
        assert_405(&k, method, "/openapi.json", "GET");
    }
    for method in ["PUT", "DELETE", "PATCH"] {
        assert_405(&k, method, "/csc/v1/info", "GET, POST");
        assert_405(&k, method, "/oauth2/authorize", "GET, POST");
    }
    assert_405(&k, "GET", "/oauth2/token", "POST");
    assert_405(&k, "GET", "/oauth2/revoke", "POST");
    // an extension method is refused the same way
    assert_405(&k, "QUERY", "/csc/v1/credentials/info", "POST");
    assert_eq!(k.send(k.get("/health")).status, 200);
    assert_eq!(k.send(k.get("/csc/v1/info")).status, 200);
}

#[test]
fn an_unknown_path_keeps_the_csc_404_whatever_the_method() {
    let k = Kit::new();
    for path in [
        "/csc/v1/credentials/nothing",
        "/csc/v1/info/",
        "/csc/v3/info",
        "/nope",
        "/",
    ] {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let r = k.send(k.req(method, path).set_json(json!({})));
            assert_eq!(
                r.pair(),
                (
                    404,
                    json!({
                        "error": "invalid_request",
                        "error_description": "The requested method does not exist",
                    })
                ),
                "{method} {path}"
            );
            assert_eq!(r.header("allow"), None, "{method} {path}");
        }
    }
}
