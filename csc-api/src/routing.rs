//! What the app answers when no route takes a request (its default service, [`not_served`]):
//!
//! * a path the server serves, asked with a method it does not serve: **405** with an `Allow`
//!   header listing the methods it serves (RFC 9110 §15.5.6) and the CSC/OAuth 2.0 error body
//!   `{"error":"invalid_request","error_description":"..."}`;
//! * any other path: the CSC **404** `invalid_request` "The requested method does not exist".
//!
//! **Where the served methods come from.** actix-web cannot say which methods a path serves:
//! `.route(path, web::post().to(..))` registers a resource *guarded* by the method, so a request
//! with another method does not match it at all and falls through to the default service with
//! nothing recorded about the path, and guards cannot be inspected. So the table is derived
//! from the one place where every served `(method, path)` is written down: the OpenAPI document
//! (`openapi::document()`, the same one served at `/openapi.json`). The document is not trusted
//! to match the routes; it is checked to: `csc-api/tests/it/openapi_routes.rs` probes every
//! candidate path with every method and fails when a route is served but not documented, or
//! documented but not served, and checks the 405/`Allow` answer of every documented path. A
//! new route therefore gets its 405 answers for free when it is documented, which the drift
//! test forces. (A documented operation whose handler is missing answers 404, never a 405
//! naming its own method.)
//!
//! **HEAD and OPTIONS** are not special: no route serves them, so on a served path both are
//! answered 405 with the `Allow` of the served methods (which never lists them). actix-web does
//! not answer HEAD from a GET route; this API has no use for HEAD, and CORS preflight (the one
//! use of OPTIONS) is not offered. `Allow` thus always lists exactly what a request can use.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;

/// Served path (as documented, possibly with `{name}` segments) → its methods, upper-case and
/// sorted.
fn table() -> &'static BTreeMap<String, Vec<String>> {
    static TABLE: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| table_of(&openapi::document()))
}

/// The same table for the admin listener, a separate app with a document of its own
/// (`openapi::admin_document()`): neither app's 405s know the other's paths.
fn admin_table() -> &'static BTreeMap<String, Vec<String>> {
    static TABLE: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| table_of(&openapi::admin_document()))
}

fn table_of(doc: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (method, path) in openapi::documented_routes(doc) {
        let methods = table.entry(path).or_default();
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    for methods in table.values_mut() {
        methods.sort();
    }
    table
}

/// Whether a documented path (`/a/{id}/b`) matches a request path: literal segments equal,
/// `{...}` segments any one non-empty segment.
fn matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut r) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), r.next()) {
            (None, None) => return true,
            (Some(p), Some(r)) if p.starts_with('{') && p.ends_with('}') => {
                if r.is_empty() {
                    return false;
                }
            }
            (Some(p), Some(r)) if p == r => {}
            _ => return false,
        }
    }
}

/// The methods `path` serves (upper-case, sorted), or `None` when the server does not serve
/// the path at all.
pub fn allowed_methods(path: &str) -> Option<&'static [String]> {
    allowed_in(table(), path)
}

/// The methods `path` serves on the admin listener, or `None` when it does not serve it.
pub fn admin_allowed_methods(path: &str) -> Option<&'static [String]> {
    allowed_in(admin_table(), path)
}

fn allowed_in(
    table: &'static BTreeMap<String, Vec<String>>,
    path: &str,
) -> Option<&'static [String]> {
    if let Some(methods) = table.get(path) {
        return Some(methods);
    }
    table
        .iter()
        .find(|(pattern, _)| pattern.contains('{') && matches(pattern, path))
        .map(|(_, methods)| methods.as_slice())
}

/// The value of `Allow` for `path`, e.g. `GET, POST`; `None` when the path is not served.
pub fn allow_header(path: &str) -> Option<String> {
    allowed_methods(path).map(|m| m.join(", "))
}

/// The app's default service: 405 with `Allow` for a served path asked with another method,
/// else the CSC 404.
pub async fn not_served(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(match allowed_methods(req.path()) {
        Some(methods) if !methods.iter().any(|m| m == req.method().as_str()) => {
            ApiError::MethodNotAllowed {
                allow: methods.join(", "),
            }
        }
        _ => ApiError::Csc {
            status: StatusCode::NOT_FOUND,
            error: "invalid_request",
            description: "The requested method does not exist".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_document() {
        assert_eq!(
            allowed_methods("/csc/v1/info").map(<[String]>::to_vec),
            Some(vec!["GET".to_owned(), "POST".to_owned()])
        );
        assert_eq!(allow_header("/health").as_deref(), Some("GET"));
        assert_eq!(
            allow_header("/csc/v1/signatures/signHash").as_deref(),
            Some("POST")
        );
        assert_eq!(allowed_methods("/csc/v1/nope"), None);
        assert_eq!(allowed_methods("/csc/v1/info/"), None);
        // every documented operation is in the table
        for (method, path) in openapi::documented_routes(&openapi::document()) {
            assert!(
                allowed_methods(&path).is_some_and(|m| m.contains(&method)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn templated_segments_match_one_segment() {
        assert!(matches("/a/{id}/b", "/a/x/b"));
        assert!(!matches("/a/{id}/b", "/a//b"));
        assert!(!matches("/a/{id}/b", "/a/x/y/b"));
        assert!(!matches("/a/{id}", "/a/x/"));
        assert!(matches("/a/b", "/a/b"));
        assert!(!matches("/a/b", "/a/b/c"));
    }
}
