//! `csc-server health`: a liveness probe of a running server (`GET /health`) for container
//! health checks and service managers, so that the runtime image needs no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long the probe waits for the whole answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL of `GET /health` on the address `serve` listens on: an unspecified address
/// (`0.0.0.0`, `[::]`) is probed on the loopback address of its family; a host name is kept.
pub fn health_url(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            format!("http://{addr}/health")
        }
        Err(_) => format!("http://{listen}/health"),
    }
}

/// Asks `url` once; `Ok` with `{"url","status"}` when it answers 200, an error otherwise (not
/// reachable within [`PROBE_TIMEOUT`], or another status).
pub fn probe(url: &str) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .context("cannot make the HTTP client")?;
    let response = client
        .get(url)
        .send()
        .with_context(|| format!("{url} is not reachable"))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        bail!("{url} answered {status}");
    }
    Ok(serde_json::json!({ "url": url, "status": status.as_u16() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_probed_on_loopback() {
        assert_eq!(health_url("0.0.0.0:8080"), "http://127.0.0.1:8080/health");
        assert_eq!(health_url("[::]:8443"), "http://[::1]:8443/health");
        assert_eq!(health_url("10.1.2.3:80"), "http://10.1.2.3:80/health");
        assert_eq!(health_url("localhost:8080"), "http://localhost:8080/health");
    }
}
