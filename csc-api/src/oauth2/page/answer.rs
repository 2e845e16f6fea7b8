//! The page's response plumbing: the request's origin and cookies, HTML pages with their
//! security headers, and the redirects of RFC 6749 §4.1.2.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::error::ApiError;
use crate::oauth2::html;

/// Cookie name prefix; the name ends with 16 hex digits of the handle's digest, so requests in
/// several tabs do not disturb each other.
const COOKIE_PREFIX: &str = "csc_oauth_";

/// What a page answer needs from the request, taken before going off the async worker.
#[derive(Clone)]
pub(super) struct Origin {
    pub secure: bool,
    pub cookie_header: Option<String>,
}

impl Origin {
    pub fn of(state: &AppState, req: &HttpRequest) -> Origin {
        Origin {
            secure: crate::oauth2::public_base(state, req).starts_with("https://"),
            cookie_header: req
                .headers()
                .get_all(header::COOKIE)
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .reduce(|a, b| format!("{a}; {b}")),
        }
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookie_header.as_deref()?.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }
}

/// The name of the cookie bound to the pending request with this digest.
pub(super) fn cookie_name(request_hash: &[u8]) -> String {
    format!("{COOKIE_PREFIX}{}", hex_prefix(request_hash))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The origin a form on the page may submit to and be redirected to (CSP `form-action`
/// applies to the redirect after the POST): ours, and the redirect URI's.
fn redirect_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        other => Some(format!("{other}:")),
    }
}

/// A page's answer, built off the async worker (an `HttpResponse` is not `Send`).
pub(super) enum Answer {
    Page {
        status: StatusCode,
        body: String,
        /// The redirect URI the page's form may lead to (CSP `form-action`).
        redirect_to: Option<String>,
        cookie: Option<String>,
    },
    /// A 302 to this location.
    Redirect(String),
}

impl Answer {
    /// The HTTP answer, with the page's security headers.
    pub fn into_response(self) -> HttpResponse {
        match self {
            Answer::Redirect(location) => HttpResponse::Found()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .finish(),
            Answer::Page {
                status,
                body,
                redirect_to,
                cookie,
            } => {
                let form_action = match redirect_to.as_deref().and_then(redirect_source) {
                    Some(src) => format!("'self' {src}"),
                    None => "'self'".to_owned(),
                };
                let csp = format!(
                    "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; \
                     frame-ancestors 'none'; base-uri 'none'"
                );
                let mut r = HttpResponse::build(status);
                r.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
                    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
                    .insert_header((header::CONTENT_SECURITY_POLICY, csp))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .insert_header((header::PRAGMA, "no-cache"))
                    .insert_header((header::REFERRER_POLICY, "no-referrer"))
                    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
                if let Some(c) = cookie
                    && let Ok(v) = HeaderValue::from_str(&c)
                {
                    r.append_header((header::SET_COOKIE, v));
                }
                if status == StatusCode::TOO_MANY_REQUESTS {
                    r.insert_header((
                        header::RETRY_AFTER,
                        crate::error::RETRY_AFTER_SECS.to_string(),
                    ));
                }
                r.body(body)
            }
        }
    }
}

pub(super) fn page(
    status: StatusCode,
    body: String,
    redirect_to: Option<&str>,
    cookie: Option<String>,
) -> Answer {
    Answer::Page {
        status,
        body,
        redirect_to: redirect_to.map(str::to_owned),
        cookie,
    }
}

pub(super) fn error_page(state: &AppState, status: StatusCode, message: &str) -> Answer {
    page(
        status,
        html::error_page(&state.info.name, message),
        None,
        None,
    )
}

/// A 302 to `uri` with `params` added to its query (RFC 6749 §4.1.2).
fn redirect(uri: &str, params: &[(&str, &str)]) -> Answer {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            Answer::Redirect(url.to_string())
        }
        // registered URIs are checked at registration; this is a guard
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            html::error_page("", "The redirect URI is invalid."),
            None,
            None,
        ),
    }
}

/// The error redirect of RFC 6749 §4.1.2.1, with the `state`.
pub(super) fn error_redirect(
    uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Answer {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect(uri, &params)
}

/// The success redirect: the code and the `state`.
pub(super) fn success_redirect(uri: &str, state: Option<&str>, code: &str) -> Answer {
    let mut params = vec![("code", code)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect(uri, &params)
}

/// Internal trouble on the page: logged, shown as a page (the redirect URI may be unknown).
pub(super) fn internal(state: &AppState, e: ApiError) -> Answer {
    tracing::error!(error = %e, "oauth2/authorize failed");
    error_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        "The service could not handle this request. Please try again later.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let o = Origin {
            secure: false,
            cookie_header: Some("a=1; csc_oauth_00=v; b=2".into()),
        };
        assert_eq!(o.cookie("csc_oauth_00"), Some("v"));
        assert_eq!(o.cookie("c"), None);
    }

    #[test]
    fn form_action_allows_the_redirect_origin() {
        assert_eq!(
            redirect_source("http://127.0.0.1:9/cb?x=1").as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            redirect_source("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
    }
}
