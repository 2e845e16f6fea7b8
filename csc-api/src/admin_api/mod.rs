//! The admin API (JT2A Part II 3.1.2.1, Part I 7.1.1): remote administration over HTTP on a listener of its own
//! (`admin_listen`; never on the CSC listener), under `/admin/v1/`. Users, credentials and
//! their lifecycle, OAuth 2.0 clients and delegations, the audit log (search, verify). Every
//! call authenticates an administrative user ([`auth`]: an admin token from `POST
//! /admin/v1/token`, or a TLS client certificate) and calls one `sam` function with that
//! `Actor`, which checks the role (`sam::roles::allows`, a refusal audited as `access.denied`)
//! and audits the act. Errors are `{error, error_description}` ([`error`]).
//!
//! [`configure`] is the one app factory of this listener: `serve` and the test kit both build
//! it. Its 405 answers come from its own OpenAPI document (`openapi::admin_document()`,
//! `crate::routing`).

pub mod auth;
pub mod error;
pub mod routes;

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, Logger, Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::config::Config;
use crate::tls::ReloadingCert;
use error::AdminError;
use routes::{CredentialAct, UserAct};

/// The shared state of the admin handlers.
pub struct AdminState {
    pub sam: sam::Sam,
    /// The lifetime of an admin token (`admin_token_ttl_secs`).
    pub token_ttl: chrono::Duration,
    /// The seal files `POST /admin/v1/audit/verify` checks (those that exist): the configured
    /// `audit_seal_file`.
    pub seal_files: Vec<PathBuf>,
}

/// The admin handlers' state for `sam` under `cfg`.
pub fn admin_state(cfg: &Config, sam: sam::Sam) -> web::Data<AdminState> {
    web::Data::new(AdminState {
        sam,
        token_ttl: chrono::Duration::seconds(i64::from(cfg.admin.token_ttl_secs)),
        seal_files: vec![cfg.audit_seal_file.clone()],
    })
}

/// Mounts the admin routes on `cfg`. `max_body` bounds every request body.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AdminState>, max_body: usize) {
    use routes as r;
    cfg.app_data(state)
        .app_data(web::PayloadConfig::new(max_body))
        .service(
            web::scope("/admin/v1")
                .wrap(from_fn(audit_integrity))
                // users, credentials, client secrets, audit records: never kept in a cache
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")))
                .route("/token", web::post().to(auth::token))
                .route("/users", web::get().to(r::users))
                .route("/users", web::post().to(r::create_user))
                .route("/users/{name}", web::delete().to(r::delete_user))
                .route(
                    "/users/{name}/disable",
                    web::post().to(|a, s, p, b| r::user_act(UserAct::Disable, a, s, p, b)),
                )
                .route(
                    "/users/{name}/enable",
                    web::post().to(|a, s, p, b| r::user_act(UserAct::Enable, a, s, p, b)),
                )
                .route(
                    "/users/{name}/unlock",
                    web::post().to(|a, s, p, b| r::user_act(UserAct::Unlock, a, s, p, b)),
                )
                .route("/credentials", web::get().to(r::credentials))
                .route("/credentials", web::post().to(r::create_credential))
                .route("/credentials/{id}", web::get().to(r::credential))
                .route("/credentials/{id}/csr", web::post().to(r::csr))
                .route("/credentials/{id}/chain", web::post().to(r::import_chain))
                .route(
                    "/credentials/{id}/disable",
                    web::post()
                        .to(|a, s, p, b| r::credential_act(CredentialAct::Disable, a, s, p, b)),
                )
                .route(
                    "/credentials/{id}/enable",
                    web::post()
                        .to(|a, s, p, b| r::credential_act(CredentialAct::Enable, a, s, p, b)),
                )
                .route(
                    "/credentials/{id}/unlock",
                    web::post()
                        .to(|a, s, p, b| r::credential_act(CredentialAct::Unlock, a, s, p, b)),
                )
                .route("/credentials/{id}/rekey", web::post().to(r::rekey))
                .route("/credentials/{id}/revoke", web::post().to(r::revoke))
                .route("/clients", web::get().to(r::clients))
                .route("/clients", web::post().to(r::create_client))
                .route("/clients/{id}/delegations", web::post().to(r::delegate))
                .route(
                    "/clients/{id}/delegations/{user}",
                    web::delete().to(r::undelegate),
                )
                .route("/audit", web::get().to(r::audit))
                .route("/audit/verify", web::post().to(r::audit_verify))
                .route("/audit/export", web::get().to(r::audit_export))
                .route("/audit/seal-key", web::get().to(r::audit_seal_key))
                .route("/openapi.json", web::get().to(openapi_json)),
        )
        .default_service(web::to(not_served));
}

/// The admin API's OpenAPI document, built once.
async fn openapi_json() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HttpResponse::Ok().content_type("application/json").body(
        DOCUMENT
            .get_or_init(|| openapi::admin_document().to_string())
            .as_str(),
    )
}

/// No admin route took the request: 405 with `Allow` on a served path, else 404 `not_found`.
async fn not_served(req: HttpRequest) -> Result<HttpResponse, AdminError> {
    Err(match crate::routing::admin_allowed_methods(req.path()) {
        Some(methods) if !methods.iter().any(|m| m == req.method().as_str()) => {
            AdminError::method_not_allowed(methods.join(", "))
        }
        _ => AdminError::not_found("No such admin API path"),
    })
}

/// After every request: audits, as `integrity.violation`, the rows with a bad MAC it met (as
/// the CSC app does, `crate::app`).
async fn audit_integrity(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AdminState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        crate::app::audit_violations(&state.sam).await;
    }
    Ok(res)
}

/// The admin listener of `serve` (`admin_listen`), or `None` when it is not configured. With
/// `admin_tls_cert_file`/`admin_tls_key_file` it speaks HTTPS (`crate::tls`; with
/// `admin_tls_client_ca_file` every connection presents a client certificate, whose subject CN
/// may name the administrator, [`auth::on_connect`]). Without TLS it binds only on a loopback
/// address, or where `allow_plain_http` says a TLS proxy terminates in front (then with a
/// warning, as the CSC listener). Prints `admin listening on SCHEME://ADDR` once bound.
/// Returns the server and, with TLS, its certificate for `serve`'s SIGHUP reload.
pub fn admin_server(
    cfg: &Config,
    sam: sam::Sam,
) -> anyhow::Result<Option<(actix_web::dev::Server, Option<Arc<ReloadingCert>>)>> {
    let Some(listen) = cfg.admin.listen.clone() else {
        return Ok(None);
    };
    let state = admin_state(cfg, sam);
    let max_body = cfg.max_body_bytes;
    let server = HttpServer::new(move || {
        App::new()
            // the request line and status only: never headers (Authorization) or bodies
            .wrap(Logger::new("admin %a \"%r\" %s %b %Dms"))
            .configure(|c| configure(c, state.clone(), max_body))
    })
    .workers(2)
    .on_connect(auth::on_connect);
    let mut reload = None;
    let server = match &cfg.admin.tls {
        Some(settings) => {
            let cert = Arc::new(ReloadingCert::load(
                &settings.cert_file,
                &settings.key_file,
            )?);
            reload = Some(cert.clone());
            server.bind_rustls_0_23(&listen, crate::tls::server_config(settings, cert)?)
        }
        None => server.bind(&listen),
    }
    .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (admin_listen): {e}"))?;
    for (addr, scheme) in server.addrs_with_scheme() {
        if scheme == "http" && !addr.ip().is_loopback() {
            anyhow::ensure!(
                cfg.allow_plain_http,
                "admin_listen {addr} is not loopback and has no TLS: set admin_tls_cert_file and \
                 admin_tls_key_file, or allow_plain_http = true when a TLS proxy terminates in front"
            );
            tracing::warn!(
                %addr,
                "serving the admin API over plain HTTP on a non-loopback address: passwords and \
                 admin tokens cross the network in clear unless a TLS proxy is in front"
            );
        }
        crate::observability::announce(&format!("admin listening on {scheme}://{addr}"));
    }
    Ok(Some((server.run(), reload)))
}
