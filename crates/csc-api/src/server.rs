//! `serve`: the HTTP server around the app factory.

use actix_web::middleware::Logger;
use actix_web::{App, HttpServer, web};

use crate::app::{AppState, configure};
use crate::config::Config;

/// Serves until the process is stopped. Prints `listening on http://ADDR` on standard error for
/// each bound address (`--listen 127.0.0.1:0` picks a free port; scripts read it there).
pub fn serve(cfg: &Config, sam: sam::Sam, listen: &str) -> anyhow::Result<()> {
    let state = web::Data::new(AppState {
        sam,
        info: cfg.info.clone(),
        tokens: cfg.token_policy(),
        max_login_failures: i32::from(cfg.max_login_failures),
        oauth: cfg.oauth_policy(),
    });
    let max_body = cfg.max_body_bytes;
    let store = state.sam.store().clone();
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
    let (transactions, jobs) = store.group_commit_stats();
    tracing::info!(
        transactions,
        jobs,
        "stopped; group commit shared transactions between jobs"
    );
    served
}
