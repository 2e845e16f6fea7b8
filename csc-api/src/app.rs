//! The one app factory: production (`serve`) and every test build the HTTP app through
//! [`configure`], so what is tested is what is served.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use csc_types::{InfoResponse, SPECS_VERSION};

use crate::body::Body;
use crate::config::ServiceInfo;
use crate::error::ApiError;
use crate::{auth, credentials, oauth2, signatures, tsa, v2};

/// Lifetimes of the service tokens (the SAM issues them).
pub use sam::TokenPolicy;

/// The OAuth 2.0 authorization server's settings (spec §8.3).
#[derive(Debug, Clone)]
pub struct OAuthPolicy {
    /// The public base URL (`https://rssp.example`, no trailing slash); `None`: each request's
    /// scheme and Host.
    pub public_url: Option<String>,
    /// Lifetime of an authorization code.
    pub code_ttl: chrono::Duration,
    /// How long the consent page may take.
    pub request_ttl: chrono::Duration,
}

/// The shared state of the HTTP handlers.
pub struct AppState {
    pub sam: sam::Sam,
    pub info: ServiceInfo,
    pub tokens: TokenPolicy,
    pub oauth: OAuthPolicy,
    /// Whether `GET /metrics` is answered here (false when `metrics_listen` gives it a
    /// listener of its own).
    pub metrics_on_main_listener: bool,
    /// `cert_expiry_warning_days`: the window of `csc_certificates_expiring`.
    pub cert_expiry_warning_days: u32,
}

/// The CSC v1 methods this server implements, exactly (spec §11.1 `methods`; v2's are
/// [`v2::METHODS`]).
pub const METHODS: &[&str] = &[
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/extendTransaction",
    "credentials/sendOTP",
    "signatures/signHash",
    "signatures/timestamp",
];

/// Mounts every route on `cfg`. `max_body` bounds every request body: an oversized or
/// malformed body is a 400 CSC error, never a crash.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, max_body: usize) {
    cfg.app_data(state)
        .app_data(web::PayloadConfig::new(max_body))
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(crate::observability::ready))
        .route("/metrics", web::get().to(crate::observability::metrics))
        .route("/openapi.json", web::get().to(openapi_json))
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(oauth2::metadata::metadata),
        )
        .service(
            web::scope("/csc/v1")
                .wrap(from_fn(audit_integrity))
                .route("/info", web::post().to(info))
                .route("/info", web::get().to(info_get))
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/revoke", web::post().to(auth::revoke))
                .route("/credentials/list", web::post().to(credentials::list))
                .route("/credentials/info", web::post().to(credentials::info))
                .route(
                    "/credentials/authorize",
                    web::post().to(credentials::authorize),
                )
                .route(
                    "/credentials/extendTransaction",
                    web::post().to(credentials::extend_transaction),
                )
                .route(
                    "/credentials/sendOTP",
                    web::post().to(credentials::send_otp),
                )
                .route(
                    "/signatures/signHash",
                    web::post().to(signatures::sign_hash),
                )
                .route("/signatures/timestamp", web::post().to(tsa::timestamp)),
        )
        // the same time-stamping authority over plain RFC 3161 (§3.4), with its own body limit;
        // a resource answers another method itself (a bare 405), so it is given the app's
        // default: 405 with `Allow` and the error body, as every other path
        .service(
            web::resource("/tsa")
                .app_data(web::PayloadConfig::new(tsa::MAX_QUERY_BYTES))
                .route(web::post().to(tsa::rfc3161))
                .default_service(web::to(not_found)),
        )
        // CSC v2.0.0.2: v2's wire format over the same handlers' core (v2 module doc)
        .service(v2::scope().wrap(from_fn(audit_integrity)))
        // the OAuth 2.0 authorization server, at the `oauth2` base URI of `info` (spec §8.3)
        .service(oauth2::scope().wrap(from_fn(audit_integrity)))
        .default_service(web::to(not_found));
}

/// After every request: audits, as `integrity.violation`, the rows with a bad MAC it met (each
/// was treated as absent). Costs one uncontended mutex when there are none.
async fn audit_integrity(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        audit_violations(&state.sam).await;
    }
    Ok(res)
}

/// Audits the rows with a bad MAC that a request met, if any (the CSC app's and the admin
/// app's middleware).
pub(crate) async fn audit_violations(sam: &sam::Sam) {
    if sam.has_integrity_violations() {
        let sam = sam.clone();
        // best effort: a failed audit write is logged by the SAM
        let _ = web::block(move || sam.audit_integrity_violations()).await;
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The OpenAPI document of every route (openapi), built once.
async fn openapi_json() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HttpResponse::Ok().content_type("application/json").body(
        DOCUMENT
            .get_or_init(|| openapi::document().to_string())
            .as_str(),
    )
}

/// No route took the request: 405 with `Allow` on a served path, else the CSC 404
/// ([`crate::routing`], which says where the served methods come from).
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    crate::routing::not_served(req).await
}

/// `info` (no authentication; an empty body counts as `{}`).
async fn info(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<InfoResponse>, ApiError> {
    // one language is served; the output `lang` tells the client which (spec §11.1)
    body.opt_string("lang")?;
    Ok(web::Json(info_response(&state, &req)))
}

async fn info_get(req: HttpRequest, state: web::Data<AppState>) -> web::Json<InfoResponse> {
    web::Json(info_response(&state, &req))
}

fn info_response(state: &AppState, req: &HttpRequest) -> InfoResponse {
    let info: &ServiceInfo = &state.info;
    InfoResponse {
        specs: SPECS_VERSION.into(),
        name: info.name.clone(),
        logo: info.logo.clone(),
        region: info.region.clone(),
        lang: info.lang.clone(),
        description: info.description.clone(),
        // user-specific: basic (auth/login), oauth2code; non-user-specific: oauth2client
        auth_type: vec!["basic".into(), "oauth2code".into(), "oauth2client".into()],
        // the absolute base URI the oauth2/* paths are appended to (spec §11.1)
        oauth2: Some(format!("{}/", oauth2::public_base(state, req))),
        methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
    }
}
