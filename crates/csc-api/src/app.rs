//! The one app factory: production (`serve`) and every test build the HTTP app through
//! [`configure`], so what is tested is what is served.

use actix_web::{HttpRequest, HttpResponse, web};
use csc_types::{InfoRequest, InfoResponse, SPECS_VERSION};

use crate::config::ServiceInfo;
use crate::error::{ApiError, MALFORMED};

/// The shared state of the HTTP handlers.
pub struct AppState {
    pub sam: sam::Sam,
    pub info: ServiceInfo,
}

/// Mounts every route on `cfg`. `max_body` bounds every JSON body (oversized or malformed
/// bodies are a 400 CSC error, never a crash).
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>, max_body: usize) {
    let json = web::JsonConfig::default()
        .limit(max_body)
        .error_handler(|err, _req| {
            tracing::debug!(error = %err, "rejected request body");
            actix_web::Error::from(ApiError::InvalidRequest(MALFORMED.into()))
        });
    cfg.app_data(state)
        .app_data(json)
        .route("/health", web::get().to(health))
        .service(
            web::scope("/csc/v1")
                .route("/info", web::post().to(info))
                .route("/info", web::get().to(info_get)),
        )
        .default_service(web::to(not_found));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(_req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// `info` accepts an empty body as well as `{}` (pyHanko and curl users send either).
async fn info(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<web::Json<InfoResponse>, ApiError> {
    let request: InfoRequest = if body.iter().all(u8::is_ascii_whitespace) {
        InfoRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::InvalidRequest(MALFORMED.into()))?
    };
    Ok(web::Json(info_response(
        &state.info,
        request.lang.as_deref(),
    )))
}

async fn info_get(state: web::Data<AppState>) -> web::Json<InfoResponse> {
    web::Json(info_response(&state.info, None))
}

/// The methods this server implements, exactly (spec §11.1 `methods`).
pub const METHODS: &[&str] = &[];

fn info_response(info: &ServiceInfo, _lang: Option<&str>) -> InfoResponse {
    // one language is served; the output `lang` tells the client which (spec §11.1)
    InfoResponse {
        specs: SPECS_VERSION.into(),
        name: info.name.clone(),
        logo: info.logo.clone(),
        region: info.region.clone(),
        lang: info.lang.clone(),
        description: info.description.clone(),
        auth_type: vec!["basic".into()],
        oauth2: None,
        methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
    }
}
