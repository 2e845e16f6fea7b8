//! `serve`: the HTTP server around the app factory.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use actix_web::middleware::{Logger, from_fn};
use actix_web::{App, HttpServer, web};
use sam::{AuditSealer, Sam, utc_now};

use crate::app::{AppState, configure};
use crate::config::Config;

/// Serves until the process is stopped. Prints `listening on http://ADDR` on standard error for
/// each bound address (`--listen 127.0.0.1:0` picks a free port; scripts read it there).
///
/// Seals the audit head in `audit_seal_file` at start (refusing to start when it cannot), every
/// `audit_seal_interval_secs` in which it moved, and once more after a clean stop (SIGTERM,
/// SIGINT: actix-web's graceful shutdown returns here).
pub fn serve(cfg: &Config, sam: sam::Sam, listen: &str) -> anyhow::Result<()> {
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
    let metrics_listen = cfg.metrics_listen.clone();
    let served = actix_web::rt::System::new().block_on(async move {
        if let Some(addr) = metrics_listen {
            actix_web::rt::spawn(metrics_server(&addr, state.clone())?);
        }
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::observability::count_requests))
                // the request line and status only: never headers (Authorization) or bodies
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .configure(|c| configure(c, state.clone(), max_body))
        })
        .bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        for addr in server.addrs() {
            crate::observability::announce(&format!("listening on http://{addr}"));
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
    })
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
