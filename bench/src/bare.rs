//! The bare baseline: a signHash endpoint served by this process that does only what no
//! server can skip. It parses the body as `csc_types::SignHashRequest`, base64-decodes the
//! hashes and signs them with the credential's key in the data directory's token, the same
//! token and key the server's rows use, and answers the CSC JSON (`SignHashResponse`). There
//! is no authentication, no SAD, no database and no audit. HTTP is actix-web, the server's own
//! stack, with as many workers as `csc-server` starts on this machine (actix-web's default, one
//! per available core). Each worker signs on its own thread (no blocking-pool hop). The
//! cm-pkcs11 pool keeps one long-lived, logged-in session per worker, so a worker never
//! waits for a session and never opens one, and the key handle is cached.
//!
//! The `csc-server` rows are divided by this one of the same run (`bare%`): the share of the
//! bare HTTP + HSM rate that the server keeps with every check, write and audit record on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cm_pkcs11::{HashAlg, Hsm, KeyId, SignMechanism};
use csc_types::{SignHashRequest, SignHashResponse};
use storage::{CredentialId, IntegrityKeys, Store, StoreOptions};

use crate::cpu::Watched;
use crate::load::{ECDSA_WITH_SHA256, SHA256_WITH_RSA, SIGN_HASH};

/// The name of the thread that runs the endpoint's actix system (its CPU counts as the
/// server's, like actix-server's worker and acceptor threads).
const SYSTEM_THREAD: &str = "csc-bench-bare";
/// The prefixes of the names of actix-server's acceptor thread and of the workers (actix-rt
/// arbiters: `actix-rt|system:N|arbiter:M`; `/proc/.../comm` keeps 15 characters).
const ACCEPTOR_THREAD: &str = "actix-server";
const WORKER_THREADS: &str = "actix-rt|";

/// The HTTP workers `csc-server` runs here: actix-web's default, one per available core
/// (`serve` does not set it).
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// The key id (`CKA_ID`) of each credential, as the SQLite database at `url` records it (rows
/// read through `storage`, their MACs checked with `keys`).
pub fn key_ids(
    url: &str,
    keys: &IntegrityKeys,
    credentials: &[&str],
) -> anyhow::Result<HashMap<String, KeyId>> {
    let store = Store::open(url, StoreOptions::default())?.with_keys(keys.clone());
    let mut out = HashMap::new();
    for id in credentials {
        let cid: CredentialId = id
            .parse()
            .map_err(|_| anyhow::anyhow!("bad credential id {id}"))?;
        let key_id = store.read(|c| {
            c.credential(&cid)?
                .map(|cred| cred.key_id)
                .ok_or(storage::StorageError::NotFound)
        })?;
        let key: KeyId = key_id
            .parse()
            .map_err(|_| anyhow::anyhow!("credential {id} has a bad key id {key_id}"))?;
        out.insert((*id).to_owned(), key);
    }
    Ok(out)
}

/// What every worker shares.
struct State {
    hsm: Hsm,
    /// credentialID → key.
    keys: HashMap<String, KeyId>,
}

/// Checks `signature` of `digest` (SHA-256; DER ECDSA or PKCS#1 v1.5) against the public key
/// of `key`: the baseline must sign for real.
pub fn verify(hsm: &Hsm, key: &KeyId, digest: &[u8], signature: &[u8]) -> anyhow::Result<()> {
    use openssl::md::Md;
    use openssl::pkey_ctx::PkeyCtx;
    use openssl::rsa::Padding;
    let public = hsm.public_key(key)?.to_openssl()?;
    let mut ctx = PkeyCtx::new(&public)?;
    ctx.verify_init()?;
    if public.rsa().is_ok() {
        ctx.set_rsa_padding(Padding::PKCS1)?;
    }
    ctx.set_signature_md(Md::sha256())?;
    if !ctx.verify(digest, signature).unwrap_or(false) {
        bail!("the bare endpoint's signature does not verify with key {key}");
    }
    Ok(())
}

/// The endpoint, running on its own threads of this process.
pub struct BareServer {
    pub addr: SocketAddr,
    /// Its threads, for the CPU accounting and `perf`.
    pub watched: Watched,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// Starts the endpoint on `127.0.0.1:0` with [`workers`] workers, signing with `hsm` (opened
/// with a pool of [`workers`] sessions) and the keys of `keys`.
pub fn start(hsm: Hsm, keys: HashMap<String, KeyId>) -> anyhow::Result<BareServer> {
    let workers = workers();
    let state = web::Data::new(State { hsm, keys });
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(SYSTEM_THREAD.into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let bound = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .route(SIGN_HASH, web::post().to(sign_hash))
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(5)
                .bind("127.0.0.1:0");
                let server = match bound {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return Ok(());
                    }
                };
                let addr = server.addrs().first().copied();
                let running = server.run();
                let _ = tx.send(
                    addr.map(|a| (a, running.handle()))
                        .ok_or_else(|| "bound to no address".to_owned()),
                );
                running.await
            })
        })
        .context("cannot start the bare endpoint's thread")?;
    let (addr, handle) = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the bare endpoint did not start")?
        .map_err(|e| anyhow::anyhow!("the bare endpoint cannot listen: {e}"))?;
    let watched = Watched::threads(server_threads(workers)?);
    Ok(BareServer {
        addr,
        watched,
        handle,
        thread: Some(thread),
    })
}

/// The thread ids of the endpoint (its actix system thread, actix-server's acceptor and
/// workers), once all `workers` workers run.
fn server_threads(workers: usize) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut found = Vec::new();
        let mut running_workers = 0;
        for entry in std::fs::read_dir("/proc/self/task")? {
            let entry = entry?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let comm = comm.trim_end();
            let worker = comm.starts_with(WORKER_THREADS);
            if worker || comm.starts_with(ACCEPTOR_THREAD) || comm == SYSTEM_THREAD {
                running_workers += usize::from(worker);
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        if running_workers >= workers {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("the bare endpoint started {running_workers} of {workers} workers");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl BareServer {
    /// Stops the endpoint and waits for its threads; its `Hsm` handle (and sessions) go with
    /// them, so no session of this process stays open while `csc-server` signs in the token.
    pub fn stop(mut self, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        rt.block_on(self.handle.stop(true));
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(r) => r.context("the bare endpoint failed")?,
                Err(_) => bail!("the bare endpoint's thread panicked"),
            }
        }
        Ok(())
    }
}

/// The error answer (CSC error model), with `status`.
fn refuse(status: actix_web::http::StatusCode, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "error": if status.is_client_error() { "invalid_request" } else { "server_error" },
        "error_description": description,
    }))
}

/// `signatures/signHash`, bare: parse, decode, sign on this worker thread, answer.
async fn sign_hash(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Ok(r) = serde_json::from_slice::<SignHashRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "Malformed request");
    };
    let Some(key) = state.keys.get(&r.credential_id) else {
        return refuse(StatusCode::BAD_REQUEST, "Invalid parameter credentialID");
    };
    let mech = match r.sign_algo.as_str() {
        ECDSA_WITH_SHA256 => SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        },
        SHA256_WITH_RSA => SignMechanism::RsaPkcs1v15 {
            hash: HashAlg::Sha256,
        },
        _ => return refuse(StatusCode::BAD_REQUEST, "Invalid parameter signAlgo"),
    };
    let Ok(digests) = r
        .hash
        .iter()
        .map(|h| STANDARD.decode(h))
        .collect::<Result<Vec<_>, _>>()
    else {
        return refuse(StatusCode::BAD_REQUEST, "Invalid parameter hash");
    };
    match state.hsm.sign_digests(key, &mech, &digests) {
        Ok(signatures) => HttpResponse::Ok().json(SignHashResponse {
            signatures: signatures.iter().map(|s| STANDARD.encode(s)).collect(),
        }),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
