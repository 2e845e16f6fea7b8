//! What an operator watches (README "Observability"): `GET /metrics` in the Prometheus text format,
//! `GET /ready` (a database round trip and an HSM call; 503 with the reasons when either fails),
//! the per-request counter and latency middleware, and the log's set-up (`log_format`; no colours
//! unless standard error is a terminal).
//!
//! The metrics are recorded through the `metrics` facade: `sam`, `storage` and `cm-pkcs11`
//! record their own (signatures, authorizations, lockouts, alarms, commit latency, batch sizes,
//! HSM latency) without this crate reaching them; this module installs the one recorder of the
//! process (`metrics-exporter-prometheus`, without its own HTTP listener: actix-web serves it)
//! and renders it. A counter is an atomic add on a handle found in a sharded map; a histogram
//! sample is a push onto a lock-free bucket, drained when rendered (or by `serve`'s upkeep).
//! README "Observability" lists every name and label.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::app::AppState;
use crate::config::LogFormat;
use crate::error::ApiError;

/// Upper bounds of the latency histograms (seconds): 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Upper bounds of the group-commit batch size histogram (jobs per transaction).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The media type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often `serve` drains histogram samples that no scrape collected.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's metrics recorder, installed on first use (by [`crate::server::app_state`],
/// so by `serve` and the test kit alike); `None` if another recorder was installed first.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("csc_db_group_commit_batch_size".into()),
                        BATCH_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no metrics: the recorder could not be installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The HELP and unit of every metric (README "Observability"), and the series that exist
/// before their first event.
fn describe() {
    describe_counter!(
        "csc_http_requests_total",
        "HTTP requests answered, by route pattern, method and status"
    );
    describe_histogram!(
        "csc_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route pattern"
    );
    describe_counter!(
        "csc_signatures_total",
        "Signatures asked of signatures/signHash (one per hash), by algorithm and outcome"
    );
    describe_counter!(
        "csc_authorizations_total",
        "Key activations (credentials/authorize, OAuth 2.0 consent), by way and outcome"
    );
    describe_counter!(
        "csc_lockouts_total",
        "Locks set by too many failures, by kind (factor.lock, user.lock)"
    );
    describe_histogram!(
        "csc_hsm_call_duration_seconds",
        Unit::Seconds,
        "Duration of calls to the PKCS#11 token (session wait included), by operation"
    );
    describe_histogram!(
        "csc_db_commit_duration_seconds",
        Unit::Seconds,
        "Duration of database commits (the WAL fsync on SQLite), by outcome"
    );
    describe_histogram!(
        "csc_db_group_commit_batch_size",
        Unit::Count,
        "Jobs sharing one group-committed transaction (SQLite and PostgreSQL)"
    );
    describe_counter!(
        "csc_db_statements_total",
        "Statements sent to the database (on PostgreSQL, each a round trip)"
    );
    describe_counter!(
        "csc_integrity_violations_total",
        "Rows found with a bad MAC (each audited as integrity.violation)"
    );
    describe_counter!(
        "csc_audit_write_failures_total",
        "Best-effort audit records that could not be written"
    );
    describe_counter!(
        "csc_audit_seals_total",
        "Seals of the audit chain head written to the seal file"
    );
    describe_counter!(
        "csc_audit_seal_failures_total",
        "Seals of the audit chain head that could not be written"
    );
    describe_gauge!(
        "csc_live_sads",
        "SADs usable now (not revoked, not expired, signatures left), counted at scrape"
    );
    describe_gauge!(
        "csc_live_access_tokens",
        "Service access tokens usable now, counted at scrape"
    );
    describe_gauge!(
        "csc_live_refresh_tokens",
        "Refresh tokens usable now, counted at scrape"
    );
    describe_gauge!(
        "csc_certificates_expiring",
        "Enabled credentials whose signer certificate expires within cert_expiry_warning_days, counted at scrape"
    );
    describe_gauge!("csc_build_info", "1, labelled with the server's version");
    metrics::gauge!("csc_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // alarms read 0 rather than nothing until they fire
    for alarm in [
        "csc_integrity_violations_total",
        "csc_audit_write_failures_total",
        "csc_audit_seal_failures_total",
    ] {
        metrics::counter!(alarm).absolute(0);
    }
}

/// Counts every answer (`csc_http_requests_total{route, method, status}`) and times it
/// (`csc_http_request_duration_seconds{route}`). `route` is the matched route pattern (e.g.
/// `/csc/v1/signatures/signHash`), `unmatched` for what no route took (404, 405): never the raw
/// path, so the number of series is bounded.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    metrics::histogram!("csc_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed());
    metrics::counter!(
        "csc_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => res.status().as_u16().to_string()
    )
    .increment(1);
    Ok(res)
}

/// The method as a label: the standard ones by name, any extension method as `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `GET /metrics` on the main listener: the metrics, unless `metrics_listen` serves them
/// elsewhere (then the CSC 404, as for any path not served).
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.metrics_on_main_listener {
        return crate::routing::not_served(req).await;
    }
    Ok(render(state).await)
}

/// `GET /metrics` on the `metrics_listen` listener.
pub async fn metrics_only(state: web::Data<AppState>) -> HttpResponse {
    render(state).await
}

/// Counts the live SADs and tokens (one blocking read) and the certificates expiring within
/// `cert_expiry_warning_days` (another), then renders every metric.
async fn render(state: web::Data<AppState>) -> HttpResponse {
    let sam = state.sam.clone();
    match web::block(move || sam.live_counts()).await {
        Ok(Ok(live)) => {
            metrics::gauge!("csc_live_sads").set(live.sads as f64);
            metrics::gauge!("csc_live_access_tokens").set(live.access_tokens as f64);
            metrics::gauge!("csc_live_refresh_tokens").set(live.refresh_tokens as f64);
        }
        // the other metrics still answer; the gauges keep their last values
        Ok(Err(e)) => tracing::warn!(error = %e, "could not count the live SADs and tokens"),
        Err(e) => tracing::warn!(error = %e, "could not count the live SADs and tokens"),
    }
    let sam = state.sam.clone();
    let days = state.cert_expiry_warning_days;
    match web::block(move || sam.expiring_certificates(days)).await {
        Ok(Ok(expiring)) => {
            metrics::gauge!("csc_certificates_expiring").set(expiring.len() as f64);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "could not count the expiring certificates"),
        Err(e) => tracing::warn!(error = %e, "could not count the expiring certificates"),
    }
    let text = recorder().map(PrometheusHandle::render).unwrap_or_default();
    HttpResponse::Ok()
        .content_type(METRICS_CONTENT_TYPE)
        .body(text)
}

/// `GET /ready`: 200 `{"status":"ready","database":"ok","hsm":"ok"}` when one database round
/// trip and one HSM call succeed, else 503 with `"status":"unavailable"` and the reason of each
/// failed part in its member. `GET /health` stays the liveness probe (no I/O).
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let sam = state.sam.clone();
    let verdict = match web::block(move || sam.readiness()).await {
        Ok(v) => v,
        Err(e) => sam::Readiness {
            database: Err(format!("not checked: {e}")),
            hsm: Err(format!("not checked: {e}")),
        },
    };
    let part = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(why) => why.clone(),
    };
    let (database, hsm) = (part(&verdict.database), part(&verdict.hsm));
    if verdict.is_ready() {
        HttpResponse::Ok().json(json!({ "status": "ready", "database": database, "hsm": hsm }))
    } else {
        tracing::warn!(%database, %hsm, "not ready");
        HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "database": database, "hsm": hsm }))
    }
}

/// The app of the `metrics_listen` listener: `GET /metrics` only, every other request the CSC
/// 404.
pub fn configure_metrics_listener(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state)
        .route("/metrics", web::get().to(metrics_only))
        .default_service(web::to(|| async {
            HttpResponse::NotFound().json(json!({
                "error": "invalid_request",
                "error_description": "The requested method does not exist",
            }))
        }));
}

/// Starts the thread that drains histogram samples no scrape collected (every
/// [`UPKEEP_INTERVAL`]), so memory stays bounded when nobody scrapes.
pub fn spawn_upkeep() -> std::io::Result<()> {
    let Some(handle) = recorder() else {
        return Ok(());
    };
    std::thread::Builder::new()
        .name("csc-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        })
        .map(|_| ())
}

/// The format [`init_logging`] installed (text until then).
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Prints one line of the command contract on standard error (`listening on http://ADDR`): as
/// it is in the text format; as the `message` of a JSON log line (level INFO) in the JSON
/// format, so that a JSON log holds nothing but JSON lines.
pub fn announce(line: &str) {
    match LOG_FORMAT.get() {
        Some(LogFormat::Json) => tracing::info!("{line}"),
        _ => eprintln!("{line}"),
    }
}

/// Installs the process's log subscriber on standard error: `text` (ANSI colours only when
/// standard error is a terminal, so a log file holds no escape codes) or `json` (one object per
/// line). The level comes from `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
