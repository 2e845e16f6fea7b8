//! `serve`: the HTTP server around the app factory.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use actix_web::middleware::{Logger, from_fn};
use actix_web::{App, HttpServer, web};
use sam::{AuditSealer, Sam, utc_now};

use crate::app::{AppState, configure};
use crate::config::Config;

/// Serves until the process is stopped. Prints `listening on http://ADDR` (`https://` with TLS)
/// on standard error for each bound address (`--listen 127.0.0.1:0` picks a free port; scripts
/// read it there).
///
/// With `cfg.tls`, terminates TLS itself ([`crate::tls`]); SIGHUP reloads the certificate and
/// key (without TLS, SIGHUP only logs that there is nothing to reload: it never stops the
/// server). Plain HTTP on a non-loopback address is served with a warning unless
/// `allow_plain_http` says a TLS proxy is in front.
///
/// Seals the audit head in `audit_seal_file` at start (refusing to start when it cannot), every
/// `audit_seal_interval_secs` in which it moved, and once more after a clean stop (SIGTERM,
/// SIGINT: actix-web's graceful shutdown returns here).
pub fn serve(cfg: &Config, sam: sam::Sam, listen: &str) -> anyhow::Result<()> {
    // the certificate loads first: a bad file stops `serve` before it seals or listens
    let tls = match &cfg.tls {
        Some(settings) => {
            let cert = std::sync::Arc::new(crate::tls::ReloadingCert::load(
                &settings.cert_file,
                &settings.key_file,
            )?);
            Some((crate::tls::server_config(settings, cert.clone())?, cert))
        }
        None => None,
    };
    let allow_plain_http = cfg.allow_plain_http;
    if tls.is_some()
        && let Some(url) = cfg
            .public_url
            .as_deref()
            .filter(|u| u.starts_with("http://"))
    {
        tracing::warn!(public_url = url, "TLS is on but public_url says http://");
    }
    let mut sealer = sam.audit_sealer(&cfg.audit_seal_file).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the audit seal file {}: {e}",
            cfg.audit_seal_file.display()
        )
    })?;
    sealer
        .seal_if_moved()
        .map_err(|e| anyhow::anyhow!("cannot seal the audit head at start: {e}"))?;
    let sealing = spawn_sealer(
        sealer,
        Duration::from_secs(cfg.audit_seal_interval_secs.into()),
    )?;
    let state = app_state(cfg, sam);
    let max_body = cfg.max_body_bytes;
    let sam = state.sam.clone();
    if cfg.purge_interval_secs > 0 {
        spawn_purger(
            sam.clone(),
            Duration::from_secs(cfg.purge_interval_secs.into()),
            Duration::from_secs(cfg.purge_after_secs.into()),
        )?;
    }
    crate::observability::spawn_upkeep()?;
    // the operator sees the level the SAM enforces (JT2A Part I 3.5.1)
    tracing::info!(
        assurance_level = cfg.assurance_level.number(),
        "the SAM enforces assurance level {}",
        cfg.assurance_level.number()
    );
    warn_expiring_certificates(&sam, cfg.cert_expiry_warning_days);
    let metrics_listen = cfg.metrics_listen.clone();
    let served = actix_web::rt::System::new().block_on(async move {
        if let Some(addr) = metrics_listen {
            actix_web::rt::spawn(metrics_server(&addr, state.clone())?);
        }
        // the admin API on a listener of its own, never on this one
        let mut admin_cert = None;
        if let Some((admin, cert)) = crate::admin_api::admin_server(cfg, state.sam.clone())? {
            actix_web::rt::spawn(admin);
            admin_cert = cert;
        }
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::observability::count_requests))
                // the request line and status only: never headers (Authorization) or bodies
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .configure(|c| configure(c, state.clone(), max_body))
        });
        let (server, reload) = match tls {
            Some((config, cert)) => (server.bind_rustls_0_23(listen, config), Some(cert)),
            None => (server.bind(listen), None),
        };
        let server = server.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        // before the address is printed: from then on a SIGHUP reloads rather than kills
        spawn_reloader(reload.into_iter().chain(admin_cert).collect())?;
        for (addr, scheme) in server.addrs_with_scheme() {
            if scheme == "http" && !addr.ip().is_loopback() && !allow_plain_http {
                tracing::warn!(
                    %addr,
                    "serving plain HTTP on a non-loopback address: passwords, PINs, tokens and \
                     SADs cross the network in clear; set tls_cert_file and tls_key_file, or \
                     allow_plain_http = true when a TLS proxy terminates in front (README \"TLS\")"
                );
            }
            crate::observability::announce(&format!("listening on {scheme}://{addr}"));
        }
        server.run().await?;
        Ok(())
    });
    // the last seal, once no request runs any more
    sealing.stop();
    let (transactions, jobs) = sam.group_commit_stats();
    tracing::info!(
        transactions,
        jobs,
        "stopped; group commit shared transactions between jobs"
    );
    served
}

/// The `metrics_listen` listener (`GET /metrics` only), one worker; prints `serving metrics at
/// http://ADDR/metrics` on standard error once bound. Stops with the process.
fn metrics_server(
    addr: &str,
    state: web::Data<AppState>,
) -> anyhow::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new().configure(|c| crate::observability::configure_metrics_listener(c, state.clone()))
    })
    .workers(1)
    .bind(addr)
    .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics_listen): {e}"))?;
    for a in server.addrs() {
        crate::observability::announce(&format!("serving metrics at http://{a}/metrics"));
    }
    Ok(server.run())
}

/// Listens for SIGHUP on the server's runtime: each reloads the TLS certificate and key from
/// their files (a pair that does not load is logged and the current one stays): the CSC
/// listener's and the admin listener's; without TLS there is nothing to reload.
fn spawn_reloader(certs: Vec<std::sync::Arc<crate::tls::ReloadingCert>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|e| anyhow::anyhow!("cannot listen for SIGHUP: {e}"))?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            if certs.is_empty() {
                tracing::info!("SIGHUP: no TLS configured, nothing to reload");
            }
            for cert in &certs {
                if let Err(e) = cert.reload() {
                    tracing::error!(error = %e, "TLS reload failed; the current certificate stays");
                }
            }
        }
    });
    Ok(())
}

/// The sealing thread, stopped (after a last seal) by [`Sealing::stop`].
struct Sealing {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Sealing {
    /// Asks the thread for its last seal and waits for it.
    fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the audit sealing thread panicked");
        }
    }
}

/// Starts the sealing thread: every `every`, [`sam::AuditSealer::seal_if_moved`]; when told to
/// stop (or when `serve` is gone), a last one. A failed seal is logged and retried next time.
fn spawn_sealer(mut sealer: AuditSealer, every: Duration) -> anyhow::Result<Sealing> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("csc-seal".into())
        .spawn(move || {
            loop {
                let last = match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                };
                match sealer.seal_if_moved() {
                    Ok(Some(seal)) if last => {
                        tracing::info!(seq = seal.seq, file = %sealer.path().display(), "sealed the audit head at shutdown");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(
                        error = %e,
                        file = %sealer.path().display(),
                        "could not seal the audit head"
                    ),
                }
                if last {
                    break;
                }
            }
        })?;
    Ok(Sealing { stop, thread })
}

/// The handlers' shared state for `sam` under `cfg`: what `serve` runs and what the in-process
/// test kit drives through [`configure`]. Installs the metrics recorder of the process
/// ([`crate::observability::recorder`]) on first use.
pub fn app_state(cfg: &Config, sam: sam::Sam) -> web::Data<AppState> {
    web::Data::new(AppState {
        sam,
        info: cfg.info.clone(),
        tokens: cfg.token_policy(),
        oauth: cfg.oauth_policy(),
        metrics_on_main_listener: cfg.metrics_listen.is_none()
            && crate::observability::recorder().is_some(),
        cert_expiry_warning_days: cfg.cert_expiry_warning_days,
    })
}

/// Logs a warning at start for each enabled credential whose certificate ends within `days` (README
/// "Credential lifecycle"; `/metrics` counts them at every scrape: `csc_certificates_expiring`).
fn warn_expiring_certificates(sam: &Sam, days: u32) {
    match sam.expiring_certificates(days) {
        Ok(expiring) => {
            for e in expiring {
                let not_after = chrono::DateTime::from_timestamp(e.not_after, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                tracing::warn!(credential = %e.credential, %not_after, "the credential's certificate expires soon: rekey it or import a new chain");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list the certificates near expiry"),
    }
}

/// Rows deleted per table per transaction by the purger.
const PURGE_BATCH: usize = 5_000;

/// Starts the housekeeping thread: every `every`, [`Sam::purge_expired`] of what expired more
/// than `after` ago.
fn spawn_purger(sam: Sam, every: Duration, after: Duration) -> anyhow::Result<()> {
    let after = chrono::TimeDelta::from_std(after)
        .map_err(|_| anyhow::anyhow!("purge_after_secs is out of range"))?;
    std::thread::Builder::new()
        .name("csc-purge".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(before) = utc_now().checked_sub_signed(after) else {
                    continue;
                };
                match sam.purge_expired(before, PURGE_BATCH) {
                    Ok(p) if p.total() > 0 => {
                        tracing::info!(rows = p.total(), "purged expired SADs, tokens and codes");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "purging expired rows failed"),
                }
            }
        })?;
    Ok(())
}
