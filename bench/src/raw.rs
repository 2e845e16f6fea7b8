//! The baseline: `cm-pkcs11` signing in-process on the bench's own throwaway SoftHSM2 token,
//! N threads calling `Hsm::sign_digest` in a loop. Each call borrows one of the pool's
//! long-lived, logged-in sessions (N of them stay open) and uses the cached key handle: what
//! the HSM allows at best through the crate the server uses.

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use cm_pkcs11::{HashAlg, Hsm, HsmConfig, KeyId, KeySpec, SignMechanism};
use secrecy::SecretString;

use crate::stats::{p50_p99_ms, window_end};

/// The bench's own token: a temporary SoftHSM2 directory, never the server's.
pub struct BenchToken {
    /// Holds `tokens/` and `softhsm2.conf`; removed on drop.
    pub dir: tempfile::TempDir,
}

/// Creates the token directory and its `softhsm2.conf` and points `SOFTHSM2_CONF` at it.
///
/// # Safety
///
/// Sets an environment variable (see [`cm_pkcs11::point_softhsm_at`]): call it before any
/// other thread of this process exists. `main` calls it first thing.
#[allow(unsafe_code)]
pub unsafe fn prepare_token_dir() -> anyhow::Result<BenchToken> {
    let dir = tempfile::Builder::new()
        .prefix("csc-bench-hsm-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens)?;
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )?;
    // SAFETY: our caller guarantees that no other thread exists yet (`# Safety` above).
    unsafe { cm_pkcs11::point_softhsm_at(&conf) };
    Ok(BenchToken { dir })
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
    Ok(hex::encode(b))
}

/// The PKCS#11 module: `$CSC_PKCS11_MODULE`, else Debian's SoftHSM2.
pub fn module_path() -> PathBuf {
    std::env::var_os("CSC_PKCS11_MODULE")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            PathBuf::from,
        )
}

/// Initialises a token on the bench's SoftHSM directory, logs in, generates one key of each
/// kind. Loads the PKCS#11 module (once for the whole process).
pub fn open_token(module: &Path) -> anyhow::Result<(Hsm, KeyId, KeyId)> {
    let label = format!("csc-bench-{}", random_hex(4)?);
    let so_pin = SecretString::from(random_hex(8)?);
    let user_pin = SecretString::from(random_hex(8)?);
    if !Hsm::init_token(module, &label, &so_pin, &user_pin)? {
        bail!("token {label} already existed in a fresh directory");
    }
    let mut cfg = HsmConfig::new(module, &label, user_pin);
    cfg.max_sessions = 4;
    let hsm = Hsm::open(&cfg)?;
    let rsa = hsm.generate_key(KeySpec::Rsa2048, "bench-rsa")?;
    let ec = hsm.generate_key(KeySpec::EcP256, "bench-ec")?;
    Ok((hsm, rsa, ec))
}

/// One raw measurement.
#[derive(Debug, Clone)]
pub struct RawResult {
    pub threads: usize,
    /// Digests per `sign_digests` call (1 = `sign_digest`).
    pub batch: usize,
    /// Signatures per second.
    pub sig_per_s: f64,
    /// Latency of one call.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub signatures: u64,
    pub secs: f64,
    pub usage: crate::cpu::Usage,
    /// Measurements made (more than 1 when other processes disturbed the first).
    pub attempts: usize,
    /// The signatures/s of every run (`--repeat N`), in the order measured; this result is
    /// the median one.
    pub runs: Vec<f64>,
}

/// Signs with `threads` threads for `warmup` + `duration`; counts the calls that start after the
/// warm-up and complete in the measured window.
///
/// Every row measures at least one call, whatever the window and the machine's speed: when no
/// call that started in the window has completed by its end (a `--smoke` window of 0.3 s can be
/// shorter than one debug-build call signing 100 RSA digests on a loaded machine), the threads
/// keep signing past the end until one has, and the window is extended to that call's end, so it
/// counts. The CPU usage still covers the nominal window.
fn run_once(
    hsm: &Hsm,
    key: &KeyId,
    spec: KeySpec,
    threads: usize,
    batch: usize,
    timing: &crate::Timing,
) -> anyhow::Result<RawResult> {
    let (warmup, duration, ticks) = (timing.warmup, timing.duration, timing.ticks);
    let mech = if spec.is_rsa() {
        SignMechanism::RsaPkcs1v15 {
            hash: HashAlg::Sha256,
        }
    } else {
        SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        }
    };
    let digests: Vec<Vec<u8>> = (0..batch.max(1))
        .map(|i| HashAlg::Sha256.digest(format!("csc-bench raw {i}").as_bytes()))
        .collect();
    let first = digests.first().context("no digest to sign")?;
    let barrier = Barrier::new(threads + 1);
    // a call that started in the measured window has completed (see above)
    let settled = AtomicBool::new(false);
    let (per_thread, usage) = std::thread::scope(|s| -> anyhow::Result<_> {
        let mut handles = Vec::new();
        for _ in 0..threads {
            let barrier = &barrier;
            let digests = &digests;
            let settled = &settled;
            // per call in the window: (end offset from the window start, latency), microseconds
            handles.push(s.spawn(move || -> anyhow::Result<Vec<(u64, u32)>> {
                // borrow this thread's session once before timing (the pool opens it lazily)
                hsm.sign_digest(key, &mech, first)?;
                barrier.wait();
                let t0 = Instant::now();
                let measure_from = t0 + warmup;
                let end = measure_from + duration;
                let mut calls = Vec::with_capacity(1 << 16);
                loop {
                    let a = Instant::now();
                    if a >= end && settled.load(Ordering::Relaxed) {
                        break;
                    }
                    let signed = if batch <= 1 {
                        hsm.sign_digest(key, &mech, first).map(drop)
                    } else {
                        hsm.sign_digests(key, &mech, digests).map(drop)
                    };
                    if signed.is_err() {
                        // the row fails; the other threads must not wait for a success
                        settled.store(true, Ordering::Relaxed);
                    }
                    signed?;
                    let b = Instant::now();
                    if a >= measure_from {
                        calls.push((
                            u64::try_from(b.duration_since(measure_from).as_micros())
                                .unwrap_or(u64::MAX),
                            u32::try_from(b.duration_since(a).as_micros()).unwrap_or(u32::MAX),
                        ));
                        settled.store(true, Ordering::Relaxed);
                    }
                }
                Ok(calls)
            }));
        }
        barrier.wait();
        std::thread::sleep(warmup);
        let a = crate::cpu::Sample::take(None);
        std::thread::sleep(duration);
        let b = crate::cpu::Sample::take(None);
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r?),
                Err(_) => bail!("a raw signing thread panicked"),
            }
        }
        Ok((out, crate::cpu::Usage::between(&a, &b, ticks)))
    })?;
    // the window ends at its nominal end, or at the end of its first call if that is later
    let nominal = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let cutoff = window_end(nominal, per_thread.iter().flatten().map(|(end, _)| *end));
    let mut lat: Vec<u32> = per_thread
        .into_iter()
        .flatten()
        .filter(|(end, _)| *end <= cutoff)
        .map(|(_, l)| l)
        .collect();
    let signatures = lat.len() as u64 * batch.max(1) as u64;
    let (p50, p99) = p50_p99_ms(&mut lat);
    let secs = if cutoff == nominal {
        duration.as_secs_f64()
    } else {
        cutoff as f64 / 1e6
    };
    Ok(RawResult {
        threads,
        batch: batch.max(1),
        sig_per_s: signatures as f64 / secs,
        p50_ms: p50,
        p99_ms: p99,
        signatures,
        secs,
        usage,
        attempts: 1,
        runs: Vec::new(),
    })
}

/// [`run_once`], measured again while other processes disturbed it
/// ([`crate::cpu::least_disturbed`]).
pub fn run(
    hsm: &Hsm,
    key: &KeyId,
    spec: KeySpec,
    threads: usize,
    batch: usize,
    timing: &crate::Timing,
) -> anyhow::Result<RawResult> {
    crate::cpu::least_disturbed(
        timing,
        None,
        |r: &RawResult| &r.usage,
        |attempt| {
            let mut r = run_once(hsm, key, spec, threads, batch, timing)?;
            r.attempts = attempt + 1;
            Ok(r)
        },
    )
}
