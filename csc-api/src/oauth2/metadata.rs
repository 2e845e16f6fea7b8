//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3): the authorization server's
//! metadata. `issuer` is the server's public base URL ([`super::public_base`], no trailing
//! slash): the v2 `info` member `oauth2Issuer` is exactly this value.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::public_base;
use super::rar;
use crate::app::AppState;

/// The metadata document.
pub async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let issuer = public_base(&state, &req);
    let endpoint = |path: &str| format!("{issuer}/oauth2/{path}");
    // client authentication at the token, revocation and PAR endpoints (RFC 6749 §2.3.1);
    // `none`: public clients (PKCE S256 required of them)
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint("authorize"),
        "token_endpoint": endpoint("token"),
        "revocation_endpoint": endpoint("revoke"),
        "pushed_authorization_request_endpoint": endpoint("pushed_authorize"),
        "require_pushed_authorization_requests": false,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": ["service", "credential"],
        "authorization_details_types_supported": rar::TYPES,
    }))
}
