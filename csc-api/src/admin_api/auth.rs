//! Who calls the admin API: an administrative user (operator, security officer, auditor) as a
//! `sam::Actor`, by one of two means, the role read from the user row on every call:
//!
//! * `Authorization: Bearer` with an admin token from `POST /admin/v1/token` (OAuth 2.0
//!   `client_credentials`, RFC 6749 §4.4, the administrator's name and password in HTTP Basic);
//! * a TLS client certificate verified against `admin_tls_client_ca_file`, whose subject CN
//!   names the administrator (taken at the handshake by [`on_connect`]); a Bearer header, when
//!   sent, wins.
//!
//! CSC service tokens are refused here (401 `invalid_token`) and admin tokens on the CSC API.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::{Extensions, Payload};
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use sam::Actor;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::AdminError;

/// The subject CN of the verified TLS client certificate of a connection (connection data set
/// by [`on_connect`]).
#[derive(Debug, Clone)]
pub struct ClientCertName(pub String);

/// `HttpServer::on_connect` of the admin listener: keeps the subject CN of a verified client
/// certificate with the connection. rustls verified the chain during the handshake
/// (`admin_tls_client_ca_file`), so a certificate seen here is one the CA issued.
pub fn on_connect(conn: &dyn std::any::Any, data: &mut Extensions) {
    use actix_web::rt::net::TcpStream;
    let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
    else {
        return;
    };
    let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(<[_]>::first) else {
        return;
    };
    if let Some(cn) = subject_cn(leaf.as_ref()) {
        data.insert(ClientCertName(cn));
    }
}

/// The (first) common name of a DER certificate's subject.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let cert = openssl::x509::X509::from_der(der).ok()?;
    let entry = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?;
    entry.data().to_string().ok()
}

/// The authenticated administrator of a request.
pub struct Admin(pub Actor);

fn bearer(req: &HttpRequest) -> Option<Result<String, AdminError>> {
    let value = req.headers().get(AUTHORIZATION)?;
    let malformed = || AdminError::invalid_token("A malformed Authorization header");
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty() && !t.contains(' '))
        .map(str::to_owned)
        .ok_or_else(malformed);
    Some(parsed)
}

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, AdminError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let cert = req.conn_data::<ClientCertName>().cloned();
        let state = req.app_data::<web::Data<AdminState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| AdminError::internal("no admin state"))?;
            let actor = match (token, cert) {
                (Some(token), _) => {
                    let token = token?;
                    web::block(move || state.sam.admin_actor_of_token(&token)).await??
                }
                (None, Some(ClientCertName(name))) => {
                    web::block(move || state.sam.admin_actor_named(&name)).await??
                }
                (None, None) => {
                    return Err(AdminError::invalid_token(
                        "An admin access token (Authorization: Bearer) is required",
                    ));
                }
            };
            Ok(Admin(actor))
        })
    }
}

/// The token endpoint's form (RFC 6749 §4.4.2).
#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: &'static str,
}

/// `POST /admin/v1/token`: `grant_type=client_credentials` with HTTP Basic `name:password` of
/// an administrative user; the password login with its lockout. A signer, an unknown, locked or
/// disabled user, or a wrong password: 401 `invalid_client`.
pub async fn token(
    req: HttpRequest,
    state: web::Data<AdminState>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let form: TokenForm = serde_urlencoded::from_bytes(&body).map_err(|_| {
        AdminError::invalid("The body is not an application/x-www-form-urlencoded form")
    })?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        None => return Err(AdminError::invalid("Missing parameter grant_type")),
        Some(_) => {
            return Err(
                AdminError::invalid("Only grant_type=client_credentials is supported")
                    .with_code("unsupported_grant_type"),
            );
        }
    }
    if form.scope.as_deref().is_some_and(|s| s != sam::ADMIN_SCOPE) {
        return Err(AdminError::invalid("The only scope is admin").with_code("invalid_scope"));
    }
    let (name, password) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(crate::auth::basic_payload)
        .and_then(|p| {
            p.split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
                .map(|(u, p)| (u.to_owned(), SecretString::from(p.to_owned())))
        })
        .ok_or_else(AdminError::invalid_client)?;
    let ttl = state.token_ttl;
    let issued = web::block(move || state.sam.admin_login(ttl, &name, &password)).await??;
    let issued = issued.map_err(|_| AdminError::invalid_client())?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: sam::ADMIN_SCOPE,
        }))
}
