//! The load generator: N workers, each with its own keep-alive HTTP/1.1 connection (hyper's
//! low-level client, no pool, Nagle off), request bodies serialised before the clock starts.
//! It runs on a tokio runtime of its own (one thread by default) so that it takes as little of
//! the 2 cores from the server as it can; every row reports what it took.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cpu::{Sample, Usage, Watched};
use crate::stats::{p50_p99_ms, window_end};

pub const LOGIN: &str = "/csc/v1/auth/login";
pub const AUTHORIZE: &str = "/csc/v1/credentials/authorize";
pub const SIGN_HASH: &str = "/csc/v1/signatures/signHash";
/// SHA-256 (`hashAlgo`).
const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";
/// sha256WithRSAEncryption.
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// One keep-alive connection.
pub struct Conn {
    tx: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { tx })
    }

    /// POST `body` to `path`; the status and the whole response body.
    pub async fn post(
        &mut self,
        host: &HeaderValue,
        auth: &HeaderValue,
        path: &'static str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.tx.ready().await?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, host.clone())
            .header(CONTENT_TYPE, JSON)
            .header(AUTHORIZATION, auth.clone())
            .body(Full::new(body))?;
        let resp = self.tx.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// The string value of `"key":"..."` in a compact JSON body (SADs and tokens are base64url and
/// need no unescaping), without a JSON parser on the hot path.
fn json_str<'a>(body: &'a [u8], key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = body.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let rest = body.get(start..)?;
    let len = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(rest.get(..len)?).ok()
}

fn describe(status: StatusCode, body: &[u8]) -> String {
    format!(
        "HTTP {status}: {}",
        String::from_utf8_lossy(body.get(..300).unwrap_or(body))
    )
}

/// An issued SAD in the pool.
struct PoolSad {
    sad: String,
    /// Signatures not yet claimed by a request.
    left: u32,
    /// The signHash body for it, and for how many hashes.
    body: Option<(usize, Bytes)>,
}

/// What a (server, algorithm) pair needs: the address, a bearer token, the credential and a
/// pool of issued multi-signature SADs.
pub struct Target {
    pub addr: SocketAddr,
    host: HeaderValue,
    bearer: HeaderValue,
    pub credential: String,
    pub sign_algo: &'static str,
    /// Base64 SHA-256 digests to sign (100 distinct ones; single-hash requests use the first).
    hashes: Vec<String>,
    /// `credentials/authorize` for one signature, serialised once.
    authorize_one: Bytes,
    /// Issued SADs, used front first by every worker (each request claims its signatures
    /// here before it is sent, so no SAD is over-spent and none is hoarded by one worker).
    pool: Mutex<VecDeque<PoolSad>>,
    /// SADs issued so far (each cost one Argon2 PIN verification on the server).
    pub issued: Mutex<usize>,
    /// The bare baseline's endpoint: every request carries this one body (no SAD to claim).
    fixed: Option<Bytes>,
}

impl Target {
    /// Logs in (`auth/login`, HTTP Basic) and prepares the bodies.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        credential: &str,
        sign_algo: &'static str,
    ) -> anyhow::Result<Target> {
        let host = HeaderValue::from_str(&addr.to_string())?;
        let basic = HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{password}"))
        ))?;
        let mut conn = Conn::open(addr).await?;
        let (status, body) = conn
            .post(&host, &basic, LOGIN, Bytes::from_static(b"{}"))
            .await?;
        if status != StatusCode::OK {
            bail!("login failed: {}", describe(status, &body));
        }
        let token = json_str(&body, "access_token").context("no access_token")?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
        let hashes = digests();
        let authorize_one = Bytes::from(
            serde_json::json!({
                "credentialID": credential,
                "numSignatures": 1,
                "PIN": crate::server::PIN,
            })
            .to_string(),
        );
        Ok(Target {
            addr,
            host,
            bearer,
            credential: credential.to_owned(),
            sign_algo,
            hashes,
            authorize_one,
            pool: Mutex::new(VecDeque::new()),
            issued: Mutex::new(0),
            fixed: None,
        })
    }

    /// The bare baseline's endpoint at `addr` ([`crate::bare`]): the same signHash body as the
    /// server's rows (a placeholder SAD, which it never reads) and the same `Authorization`
    /// header shape, no login.
    pub fn bare(
        addr: SocketAddr,
        credential: &str,
        sign_algo: &'static str,
    ) -> anyhow::Result<Target> {
        let mut t = Target {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            bearer: HeaderValue::from_static("Bearer bare-baseline-sends-no-token"),
            credential: credential.to_owned(),
            sign_algo,
            hashes: digests(),
            authorize_one: Bytes::new(),
            pool: Mutex::new(VecDeque::new()),
            issued: Mutex::new(0),
            fixed: None,
        };
        t.fixed = Some(t.sign_body("bare-baseline-reads-no-sad", 1));
        Ok(t)
    }

    /// One signHash of the first digest on a connection of its own: (the digest, the first
    /// signature returned), both decoded.
    pub async fn sign_once(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let body = self.claim(1).context("no signature left to claim")?;
        let mut conn = Conn::open(self.addr).await?;
        let (status, resp) = conn.post(&self.host, &self.bearer, SIGN_HASH, body).await?;
        if status != StatusCode::OK {
            bail!("signHash failed: {}", describe(status, &resp));
        }
        let resp: csc_types::SignHashResponse = serde_json::from_slice(&resp)?;
        let signature = resp.signatures.first().context("no signature returned")?;
        let digest = self.hashes.first().context("no digest")?;
        Ok((STANDARD.decode(digest)?, STANDARD.decode(signature)?))
    }

    /// The signHash body for `sad` with the first `n` digests.
    fn sign_body(&self, sad: &str, n: usize) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "credentialID": self.credential,
                "SAD": sad,
                "hash": self.hashes.get(..n).unwrap_or(&self.hashes),
                "signAlgo": self.sign_algo,
                "hashAlgo": SHA256_OID,
            })
            .to_string(),
        )
    }

    /// Signatures left in the pool.
    fn available(&self) -> u64 {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|p| u64::from(p.left))
            .sum()
    }

    /// Claims `batch` signatures of the first SAD that has them and returns the request body
    /// (serialised once per SAD and batch size); `None` when the pool is dry. The bare
    /// baseline's body is always the same.
    fn claim(&self, batch: usize) -> Option<Bytes> {
        if let Some(body) = &self.fixed {
            return Some(body.clone());
        }
        let need = u32::try_from(batch).ok()?;
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        while pool.front().is_some_and(|p| p.left < need) {
            pool.pop_front();
        }
        let p = pool.front_mut()?;
        p.left -= need;
        if p.body.as_ref().is_none_or(|(b, _)| *b != batch) {
            p.body = Some((batch, self.sign_body(&p.sad, batch)));
        }
        p.body.as_ref().map(|(_, body)| body.clone())
    }

    fn add(&self, sad: String, left: u32) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(PoolSad {
                sad,
                left,
                body: None,
            });
    }

    /// Tops the pool up to `want` signatures with SADs of `per_sad` signatures each, issued
    /// through `credentials/authorize` on `parallel` connections (before any clock starts).
    pub async fn ensure_sads(
        &self,
        want: u64,
        per_sad: u32,
        parallel: usize,
    ) -> anyhow::Result<()> {
        let have = self.available();
        if have >= want || self.fixed.is_some() {
            return Ok(());
        }
        let n = (want - have).div_ceil(u64::from(per_sad)) as usize;
        let body = Bytes::from(
            serde_json::json!({
                "credentialID": self.credential,
                "numSignatures": per_sad,
                "PIN": crate::server::PIN,
            })
            .to_string(),
        );
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut tasks = Vec::new();
        for _ in 0..parallel.max(1) {
            tasks.push(async {
                let mut conn = Conn::open(self.addr).await?;
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let (status, resp) = conn
                        .post(&self.host, &self.bearer, AUTHORIZE, body.clone())
                        .await?;
                    if status != StatusCode::OK {
                        bail!("authorize failed: {}", describe(status, &resp));
                    }
                    let sad = json_str(&resp, "SAD").context("no SAD in the response")?;
                    self.add(sad.to_owned(), per_sad);
                }
                anyhow::Ok(())
            });
        }
        for r in futures_join_all(tasks).await {
            r?;
        }
        *self.issued.lock().unwrap_or_else(PoisonError::into_inner) += n;
        Ok(())
    }
}

/// 100 distinct base64 SHA-256 digests (through cm-pkcs11's `HashAlg`: OpenSSL, already
/// linked).
fn digests() -> Vec<String> {
    (0..100)
        .map(|i| {
            STANDARD.encode(
                cm_pkcs11::HashAlg::Sha256.digest(format!("csc-bench document {i}").as_bytes()),
            )
        })
        .collect()
}

/// Polls futures concurrently on the current task (a tiny `join_all`).
async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// What a scenario does per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One signHash of `batch` digests with an already issued SAD.
    SignHash { batch: usize },
    /// `credentials/authorize` (one signature, PIN) then `signatures/signHash` with that SAD.
    Pairs,
}

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::SignHash { batch: 1 } => "signHash (issued SAD)".into(),
            Kind::SignHash { batch } => format!("signHash x{batch} hashes"),
            Kind::Pairs => "authorize+signHash".into(),
        }
    }

    pub fn id(self) -> String {
        match self {
            Kind::SignHash { batch: 1 } => "signhash".into(),
            Kind::SignHash { batch } => format!("signhash_batch{batch}"),
            Kind::Pairs => "pairs".into(),
        }
    }

    pub fn signatures_per_op(self) -> usize {
        match self {
            Kind::SignHash { batch } => batch,
            Kind::Pairs => 1,
        }
    }
}

/// Result of one scenario at one concurrency.
#[derive(Debug, Clone, Default)]
pub struct HttpResult {
    /// Operations (requests, or pairs) completed in the window.
    pub ops: u64,
    pub secs: f64,
    pub ops_per_s: f64,
    pub sig_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Pairs only: the authorize and the signHash half.
    pub authorize_p50_ms: Option<f64>,
    pub authorize_p99_ms: Option<f64>,
    pub sign_p50_ms: Option<f64>,
    pub sign_p99_ms: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The SAD pool ran dry and the run stopped early.
    pub exhausted: bool,
    /// Measurements made (more than 1 when other processes disturbed the first).
    pub attempts: usize,
    pub usage: Usage,
    /// Operations per second of each server instance (one entry per target).
    pub per_instance_ops_per_s: Vec<f64>,
    /// The ops/s of every run (`--repeat N`), in the order measured; this result is the
    /// median one.
    pub runs: Vec<f64>,
}

#[derive(Default)]
struct WorkerOut {
    /// Which target (server instance) this worker loaded.
    instance: usize,
    /// (end offset from the window start, latency), microseconds.
    ops: Vec<(u32, u32)>,
    /// Pairs only: (end offset of the pair, latency of its authorize / signHash half).
    authorize: Vec<(u32, u32)>,
    sign: Vec<(u32, u32)>,
    errors: u64,
    first_error: Option<String>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The measured window of a row: operations that start at or after `from` and end by `end`
/// count.
///
/// Every row measures at least one operation, whatever the window and the machine's speed: when
/// no operation that started in the window has finished by `end` (a `--smoke` window of 0.3 s can
/// be shorter than one debug-build signHash of 100 RSA hashes on a loaded machine), the workers
/// keep going past `end` until one has finished, successfully or not, and the window is extended
/// to the first successful finish ([`crate::stats::window_end`]), so that operation counts. The
/// CPU usage of the row still covers the nominal window.
struct Window {
    from: Instant,
    end: Instant,
    stop: AtomicBool,
    stopped_at: Mutex<Option<Instant>>,
    /// An operation that started at or after `from` finished (or any request failed).
    settled: AtomicBool,
}

impl Window {
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || (Instant::now() >= self.end && self.settled.load(Ordering::Relaxed))
    }

    /// Past `end`, the workers stop at their next check.
    fn settle(&self) {
        self.settled.store(true, Ordering::Relaxed);
    }

    fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut at = self
            .stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        at.get_or_insert_with(Instant::now);
    }
}

impl WorkerOut {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// Counts a failed request: an unexpected answer, or a transport error, after which the
    /// connection is opened again. `false` when no new connection could be had (the worker
    /// stops).
    async fn failed(
        &mut self,
        r: anyhow::Result<(StatusCode, Bytes)>,
        conn: &mut Conn,
        addr: SocketAddr,
    ) -> bool {
        match r {
            Ok((status, body)) => {
                self.error(describe(status, &body));
                true
            }
            Err(e) => {
                self.error(format!("transport: {e}"));
                match Conn::open(addr).await {
                    Ok(c) => {
                        *conn = c;
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }

    /// Keeps a successful operation that started in the measured window, with its end offset
    /// (returned): [`run`] counts those that ended by the window's end, extended as
    /// [`Window`] says.
    fn keep(&mut self, w: &Window, a: Instant, b: Instant) -> Option<u32> {
        if a < w.from {
            return None;
        }
        let end = micros(b.duration_since(w.from));
        self.ops.push((end, micros(b.duration_since(a))));
        w.settle();
        Some(end)
    }
}

async fn worker(t: Arc<Target>, instance: usize, kind: Kind, w: Arc<Window>) -> WorkerOut {
    let mut out = WorkerOut {
        instance,
        ..WorkerOut::default()
    };
    let mut conn = match Conn::open(t.addr).await {
        Ok(c) => c,
        Err(e) => {
            out.error(format!("connect: {e}"));
            return out;
        }
    };
    match kind {
        Kind::SignHash { batch } => {
            while !w.over() {
                let Some(body) = t.claim(batch) else {
                    w.halt();
                    break;
                };
                let a = Instant::now();
                let r = conn.post(&t.host, &t.bearer, SIGN_HASH, body).await;
                let b = Instant::now();
                match r {
                    Ok((StatusCode::OK, body)) if body.starts_with(b"{\"signatures\":[") => {
                        out.keep(&w, a, b);
                    }
                    other => {
                        w.settle();
                        if !out.failed(other, &mut conn, t.addr).await {
                            break;
                        }
                    }
                }
            }
        }
        Kind::Pairs => {
            let Some(hash) = t.hashes.first() else {
                out.error("no digest to sign".into());
                return out;
            };
            let prefix = format!("{{\"credentialID\":\"{}\",\"SAD\":\"", t.credential);
            let suffix = format!(
                "\",\"hash\":[\"{}\"],\"signAlgo\":\"{}\",\"hashAlgo\":\"{SHA256_OID}\"}}",
                hash, t.sign_algo
            );
            while !w.over() {
                let a = Instant::now();
                let r = conn
                    .post(&t.host, &t.bearer, AUTHORIZE, t.authorize_one.clone())
                    .await;
                let m = Instant::now();
                let sad = match &r {
                    Ok((StatusCode::OK, body)) => json_str(body, "SAD").map(str::to_owned),
                    _ => None,
                };
                let Some(sad) = sad else {
                    w.settle();
                    if !out.failed(r, &mut conn, t.addr).await {
                        break;
                    }
                    continue;
                };
                let mut body = String::with_capacity(prefix.len() + sad.len() + suffix.len());
                body.push_str(&prefix);
                body.push_str(&sad);
                body.push_str(&suffix);
                let r = conn
                    .post(&t.host, &t.bearer, SIGN_HASH, Bytes::from(body))
                    .await;
                let b = Instant::now();
                match r {
                    Ok((StatusCode::OK, body)) if body.starts_with(b"{\"signatures\":[") => {
                        if let Some(end) = out.keep(&w, a, b) {
                            out.authorize.push((end, micros(m.duration_since(a))));
                            out.sign.push((end, micros(b.duration_since(m))));
                        }
                    }
                    other => {
                        w.settle();
                        if !out.failed(other, &mut conn, t.addr).await {
                            break;
                        }
                    }
                }
            }
        }
    }
    out
}

/// Runs `kind` with `conc` workers for `warmup` + `duration`; only operations that start after
/// the warm-up and end before the deadline count. When none has ended by the deadline, the
/// window is extended to the end of the first one (see [`Window`]): every row measures at least
/// one operation unless every request failed or the SAD pool ran dry.
///
/// With several `targets` (server instances on one database), worker `i` loads target
/// `i % targets.len()`: the load is split evenly, and each instance's rate is reported.
pub async fn run(
    targets: &[Arc<Target>],
    kind: Kind,
    conc: usize,
    timing: &crate::Timing,
    server: &Watched,
    profile: Option<(&std::path::Path, &str)>,
) -> HttpResult {
    let from = Instant::now() + timing.warmup;
    let w = Arc::new(Window {
        from,
        end: from + timing.duration,
        stop: AtomicBool::new(false),
        stopped_at: Mutex::new(None),
        settled: AtomicBool::new(false),
    });
    let handles: Vec<_> = (0..conc)
        .filter_map(|i| {
            let n = i % targets.len().max(1);
            let t = targets.get(n)?.clone();
            Some(tokio::spawn(worker(t, n, kind, w.clone())))
        })
        .collect();
    let watched = server.clone();
    let ticks = timing.ticks;
    let (wa, wend) = (w.from, w.end);
    let perf_out = profile.map(|(p, _)| p.to_path_buf());
    let perf_args = profile.map_or(String::new(), |(_, a)| a.to_owned());
    let perf_secs = timing.duration.as_secs_f64();
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(wa.into()).await;
        // `perf record` on the server for exactly the measured window
        let perf = perf_out.and_then(|out| {
            std::process::Command::new("perf")
                .arg("record")
                .args(perf_args.split_whitespace())
                .args(watched.perf_target())
                .arg("-o")
                .arg(&out)
                .args(["--", "sleep", &format!("{perf_secs:.3}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        });
        let a = Sample::take(Some(&watched));
        tokio::time::sleep_until(wend.into()).await;
        let b = Sample::take(Some(&watched));
        if let Some(mut p) = perf {
            let _ = p.wait();
        }
        Usage::between(&a, &b, ticks)
    });
    let mut outs = Vec::new();
    for h in handles {
        if let Ok(o) = h.await {
            outs.push(o);
        }
    }
    let usage = sampler.await.unwrap_or_default();
    let stopped_at = *w.stopped_at.lock().unwrap_or_else(PoisonError::into_inner);
    let exhausted = stopped_at.is_some_and(|s| s < w.end);
    let cutoff = match stopped_at {
        Some(s) if s < w.end => micros(s.max(w.from).duration_since(w.from)),
        _ => {
            let nominal = micros(w.end.duration_since(w.from));
            let ends = outs
                .iter()
                .flat_map(|o| o.ops.iter().map(|(end, _)| u64::from(*end)));
            // no end is beyond u32::MAX (`micros` saturates)
            u32::try_from(window_end(u64::from(nominal), ends)).unwrap_or(u32::MAX)
        }
    };
    let secs = (f64::from(cutoff) / 1e6).max(1e-9);
    let mut lat = Vec::new();
    let (mut auth, mut sign) = (Vec::new(), Vec::new());
    let mut res = HttpResult {
        secs,
        exhausted,
        usage,
        ..HttpResult::default()
    };
    let mut per_instance = vec![0u64; targets.len().max(1)];
    for o in outs {
        let before = lat.len();
        lat.extend(
            o.ops
                .iter()
                .filter(|(end, _)| *end <= cutoff)
                .map(|(_, l)| *l),
        );
        if let Some(n) = per_instance.get_mut(o.instance) {
            *n += (lat.len() - before) as u64;
        }
        let kept = |v: Vec<(u32, u32)>| v.into_iter().filter(|(end, _)| *end <= cutoff);
        auth.extend(kept(o.authorize).map(|(_, l)| l));
        sign.extend(kept(o.sign).map(|(_, l)| l));
        res.errors += o.errors;
        if res.first_error.is_none() {
            res.first_error = o.first_error;
        }
    }
    res.ops = lat.len() as u64;
    res.ops_per_s = res.ops as f64 / secs;
    res.per_instance_ops_per_s = per_instance.iter().map(|&n| n as f64 / secs).collect();
    res.sig_per_s = res.ops_per_s * kind.signatures_per_op() as f64;
    (res.p50_ms, res.p99_ms) = p50_p99_ms(&mut lat);
    (res.authorize_p50_ms, res.authorize_p99_ms) = p50_p99_ms(&mut auth);
    (res.sign_p50_ms, res.sign_p99_ms) = p50_p99_ms(&mut sign);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_strings() {
        let body = br#"{"SAD":"abc-_12","expiresIn":3600}"#;
        assert_eq!(json_str(body, "SAD"), Some("abc-_12"));
        assert_eq!(json_str(body, "access_token"), None);
        assert_eq!(
            json_str(
                br#"{"access_token":"csc_at_x","expires_in":1}"#,
                "access_token"
            ),
            Some("csc_at_x")
        );
    }
}
