//! `serve`: the HTTP server around the app factory.

use std::time::Duration;

use actix_web::middleware::Logger;
use actix_web::{App, HttpServer, web};
use sam::{Sam, utc_now};

use crate::app::{AppState, configure};
use crate::config::Config;

/// Serves until the process is stopped. Prints `listening on http://ADDR` on standard error for
/// each bound address (`--listen 127.0.0.1:0` picks a free port; scripts read it there).
pub fn serve(cfg: &Config, sam: sam::Sam, listen: &str) -> anyhow::Result<()> {
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
    let served = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                // the request line and status only: never headers (Authorization) or bodies
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .configure(|c| configure(c, state.clone(), max_body))
        })
        .bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        for addr in server.addrs() {
            eprintln!("listening on http://{addr}");
        }
        server.run().await?;
        Ok(())
    });
    let (transactions, jobs) = sam.group_commit_stats();
    tracing::info!(
        transactions,
        jobs,
        "stopped; group commit shared transactions between jobs"
    );
    served
}

/// The handlers' shared state for `sam` under `cfg`: what `serve` runs and what the in-process
/// test kit drives through [`configure`].
pub fn app_state(cfg: &Config, sam: sam::Sam) -> web::Data<AppState> {
    web::Data::new(AppState {
        sam,
        info: cfg.info.clone(),
        tokens: cfg.token_policy(),
        oauth: cfg.oauth_policy(),
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
