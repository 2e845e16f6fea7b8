//! `csc-bench`: how close `csc-server` gets to the HSM's own limit, checked against the
//! server's performance targets (the `Targets` section of the report).
//!
//! One run on one machine measures, side by side:
//! 1. the raw `cm-pkcs11` signing rate in-process (1 and 2 threads) on the bench's own
//!    throwaway SoftHSM2 token: the baseline;
//! 2. `signatures/signHash` over HTTP with already issued multi-signature SADs (concurrency 1,
//!    8, 32);
//! 3. `credentials/authorize` + `signatures/signHash` pairs (a fresh SAD each time);
//! 4. one signHash carrying 100 hashes;
//!
//! for RSA-2048 and EC P-256, against the release `csc-server` started as a child process,
//! once on an empty database and once on one holding 100,000 more credentials and 1,000,000
//! audit records; then `audit verify` on the big one. See README "Benchmark".
//!
//! Not a test: nothing here asserts. `--smoke` runs everything briefly (CI may use it).

mod cpu;
mod load;
mod populate;
mod raw;
mod report;
mod server;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use cm_pkcs11::KeySpec;

use crate::load::Kind;
use crate::report::{HttpRow, Report};
use crate::server::{DataDir, Running, ServerCmd};

/// Measured window of every row.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
    /// `/proc` clock ticks per second.
    pub ticks: f64,
    /// A row during which other processes used more than this much CPU (% of one core) is
    /// measured again, up to `retries` times; the least disturbed attempt is kept.
    pub max_other: f64,
    pub retries: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    Rsa,
    Ec,
}

impl Alg {
    pub fn spec(self) -> KeySpec {
        match self {
            Alg::Rsa => KeySpec::Rsa2048,
            Alg::Ec => KeySpec::EcP256,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Alg::Rsa => "RSA-2048",
            Alg::Ec => "EC P-256",
        }
    }

    fn sign_algo(self) -> &'static str {
        match self {
            Alg::Rsa => load::SHA256_WITH_RSA,
            Alg::Ec => load::ECDSA_WITH_SHA256,
        }
    }
}

/// Which database a server run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Empty,
    Loaded,
}

impl Db {
    pub fn label(self) -> &'static str {
        match self {
            Db::Empty => "empty",
            Db::Loaded => "loaded",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "csc-bench",
    about = "Benchmark csc-server (HTTP) against the raw cm-pkcs11 signing rate",
    long_about = "Benchmark csc-server (HTTP) against the raw cm-pkcs11 signing rate.\n\n\
                  Run from the workspace: cargo run --release -p csc-bench -- [--smoke] [--json FILE]\n\
                  (when started through cargo it first builds the release csc-server)."
)]
struct Args {
    /// Everything for a fraction of a second, small scale database (for CI).
    #[arg(long)]
    smoke: bool,
    /// Write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The csc-server binary (default: next to this executable).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Do not run `cargo build --release -p csc-api` first (it runs only when started by cargo).
    #[arg(long)]
    no_build: bool,
    /// Measured seconds per row (default 5; 0.3 with --smoke).
    #[arg(long)]
    duration: Option<f64>,
    /// Unmeasured warm-up seconds before each row (default 1; 0.1 with --smoke).
    #[arg(long)]
    warmup: Option<f64>,
    /// Credentials added for the scale check (default 100000; 1000 with --smoke).
    #[arg(long)]
    credentials: Option<usize>,
    /// Audit records added for the scale check (default 1000000; 10000 with --smoke).
    #[arg(long)]
    audit_records: Option<usize>,
    /// Skip the loaded-database runs (the scale check).
    #[arg(long)]
    no_scale: bool,
    /// Algorithms to run.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rsa,ec")]
    alg: Vec<Alg>,
    /// Concurrency levels of the signHash and pair rows.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Rows to run: signhash, pairs, batch.
    #[arg(long, value_delimiter = ',', default_value = "signhash,pairs,batch")]
    rows: Vec<String>,
    /// Threads of the load generator's runtime (1 keeps it lean on 2 cores).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Start the server under this command, e.g. "perf record -g -o perf.data --".
    #[arg(long, value_name = "CMD")]
    server_prefix: Option<String>,
    /// Extra environment for `csc-server serve`, e.g. RUST_LOG=warn (repeatable).
    #[arg(long = "server-env", value_name = "K=V")]
    server_env: Vec<String>,
    /// Where the temporary data directory goes (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Keep the data directory (server logs, databases) and print its path.
    #[arg(long)]
    keep: bool,
    /// Record a `perf` profile (cpu-clock, call graphs) of the server during each measured
    /// window into DIR/<alg>-<db>-<row>-c<N>.perf.data.
    #[arg(long, value_name = "DIR")]
    perf_dir: Option<PathBuf>,
    /// Measure a row again when other processes took more than this CPU during it (% of one
    /// core; other engineers' builds and tests share these 2 cores).
    #[arg(long, default_value_t = 25.0)]
    max_other: f64,
    /// How many times a disturbed row is measured again (0 with --smoke).
    #[arg(long, default_value_t = 2)]
    retries: usize,
    /// Options of `perf record` for --perf-dir (dwarf call graphs work on binaries without
    /// debug info or frame pointers, through .eh_frame).
    #[arg(
        long,
        default_value = "-q -e cpu-clock -F 499 --call-graph dwarf,32768"
    )]
    perf_args: String,
}

fn secs(v: Option<f64>, default: f64, smoke: f64, is_smoke: bool) -> Duration {
    Duration::from_secs_f64(v.unwrap_or(if is_smoke { smoke } else { default }).max(0.0))
}

/// Runs `cargo build --release -p csc-api --bin csc-server` when this binary was started by
/// cargo (which sets `CARGO`), so the one command always measures the current server.
fn build_server() -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    eprintln!("csc-bench: building the release csc-server (cargo build --release -p csc-api)");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "csc-api", "--bin", "csc-server"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p csc-api failed");
    }
    Ok(())
}

fn server_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.server {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .context("no directory for this executable")?
        .join("csc-server");
    if !p.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p csc-api` or pass --server PATH",
            p.display()
        );
    }
    Ok(p)
}

#[allow(unsafe_code)]
fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // FIRST, before any thread exists: SoftHSM reads SOFTHSM2_CONF when the module loads.
    // SAFETY: nothing before this line starts a thread (argument parsing does not), so no
    // other thread can touch the environment while it is set.
    let token = match unsafe { raw::prepare_token_dir() } {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(args, &token) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn note(msg: impl AsRef<str>) {
    eprintln!("csc-bench: {}", msg.as_ref());
}

fn run(args: Args, token: &raw::BenchToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let smoke = args.smoke;
    let timing = Timing {
        warmup: secs(args.warmup, 1.0, 0.1, smoke),
        duration: secs(args.duration, 5.0, 0.3, smoke),
        ticks: cpu::clock_ticks(),
        max_other: args.max_other,
        retries: if smoke { 0 } else { args.retries },
    };
    let n_credentials = args
        .credentials
        .unwrap_or(if smoke { 1_000 } else { 100_000 });
    let n_audit = args
        .audit_records
        .unwrap_or(if smoke { 10_000 } else { 1_000_000 });
    if args.server.is_none() && !args.no_build {
        build_server()?;
    }
    let cmd = ServerCmd {
        bin: server_binary(&args)?,
        prefix: args
            .server_prefix
            .as_deref()
            .map(|p| p.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        env: args
            .server_env
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .with_context(|| format!("--server-env {kv:?} is not K=V"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut report = Report::new(&args_json(&args, &timing, n_credentials, n_audit, &cmd));
    report.rustc_running_at_start = count_rustc();

    // ---- the data directory: one token, two databases
    let work = match &args.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("csc-bench-")
            .tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("csc-bench-").tempdir()?,
    };
    let data_path = work.path().join("data");
    note(format!(
        "setting up {} (init, user, RSA-2048 and EC P-256 credentials)",
        data_path.display()
    ));
    let data = server::setup(&cmd, &data_path, token)?;
    // before the raw baseline loads the module with the bench's own token (same directory)
    let keys = data.integrity_keys(&raw::module_path())?;
    let scale = !args.no_scale;
    if scale {
        data.copy_to_loaded()?;
        note(format!(
            "populating loaded.db with {n_credentials} credentials and {n_audit} audit records"
        ));
        let p = populate::populate(
            &data.loaded_db_url(),
            &data.rsa_credential,
            n_credentials,
            n_audit,
            &keys,
        )?;
        note(format!(
            "populated in {:.1} s + {:.1} s ({} MB)",
            p.credentials_secs,
            p.audit_secs,
            p.db_bytes / 1_000_000
        ));
        report.populated = Some(p);
    }

    // ---- the raw baseline
    note("raw cm-pkcs11 baseline");
    let module = raw::module_path();
    let (hsm, rsa_key, ec_key) = raw::open_token(&module)?;
    note(format!(
        "  (own token under {}, module {})",
        token.dir.path().display(),
        module.display()
    ));
    // ---- what one authorize spends checking the PIN
    report.argon2 = Some(report::pin_check(&hsm, if smoke { 20 } else { 2_000 })?);
    report.mac = Some(report::mac_costs(&hsm, if smoke { 200 } else { 20_000 })?);
    for alg in &args.alg {
        let key = if *alg == Alg::Rsa { &rsa_key } else { &ec_key };
        for threads in [1, 2] {
            let r = raw::run(&hsm, key, alg.spec(), threads, 1, &timing)?;
            note(format!(
                "  raw {} {threads}t: {:.0} sig/s",
                alg.label(),
                r.sig_per_s
            ));
            report.raw.push((*alg, r));
        }
        if args.rows.iter().any(|r| r == "batch") {
            let r = raw::run(&hsm, key, alg.spec(), 1, 100, &timing)?;
            note(format!(
                "  raw {} 1t x100: {:.0} sig/s",
                alg.label(),
                r.sig_per_s
            ));
            report.raw.push((*alg, r));
        }
    }

    // ---- HTTP
    let rt = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()?
    };
    let mut kinds = Vec::new();
    if args.rows.iter().any(|r| r == "signhash") {
        for &c in &args.concurrency {
            kinds.push((Kind::SignHash { batch: 1 }, c));
        }
    }
    if args.rows.iter().any(|r| r == "pairs") {
        for &c in &args.concurrency {
            kinds.push((Kind::Pairs, c));
        }
    }
    if args.rows.iter().any(|r| r == "batch") {
        kinds.push((Kind::SignHash { batch: 100 }, 1));
        kinds.push((Kind::SignHash { batch: 100 }, 2));
    }
    for (i, alg) in args.alg.iter().enumerate() {
        // alternate the order so neither database always runs second
        let dbs: Vec<Db> = match (scale, i % 2) {
            (false, _) => vec![Db::Empty],
            (true, 0) => vec![Db::Empty, Db::Loaded],
            (true, _) => vec![Db::Loaded, Db::Empty],
        };
        let raw2 = report.raw_rate(*alg, 2, 1).unwrap_or(30_000.0);
        for db in dbs {
            let rows = http_rows(
                &rt,
                &cmd,
                &data,
                (*alg, db),
                &kinds,
                &timing,
                raw2,
                args.perf_dir
                    .as_deref()
                    .map(|d| (d, args.perf_args.as_str())),
            )?;
            report.http.extend(rows);
        }
    }
    drop(rt);

    // ---- audit verify
    let url = if scale {
        data.loaded_db_url()
    } else {
        data.empty_db_url()
    };
    note("audit verify (in-process and through the CLI)");
    let (records, secs) = populate::verify_in_process(&url, &keys)?;
    report.audit_in_process = Some((records, secs));
    let t = Instant::now();
    let v = cmd.run_json(
        &data.dir,
        &["audit", "verify"],
        &[
            ("CSC_DATABASE_URL", url.as_str()),
            ("CSC_AUDIT_SEAL_FILE", server::seal_file_for(&url).as_str()),
        ],
    )?;
    let cli_secs = t.elapsed().as_secs_f64();
    let cli_records = v
        .get("records")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    report.audit_cli = Some((cli_records, cli_secs));

    // ---- drift: the raw 2-thread rate again, at the end
    for alg in &args.alg {
        let key = if *alg == Alg::Rsa { &rsa_key } else { &ec_key };
        let r = raw::run(&hsm, key, alg.spec(), 2, 1, &timing)?;
        report.raw_end.push((*alg, r));
    }
    report.rustc_running_at_end = count_rustc();
    report.total_secs = started.elapsed().as_secs_f64();

    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        note(format!("wrote {}", path.display()));
    }
    if args.keep {
        let kept = work.keep();
        note(format!("kept the data directory {}", kept.display()));
    }
    Ok(())
}

/// Starts a server on `db`, logs in, and runs every row for `alg`.
#[allow(clippy::too_many_arguments)]
fn http_rows(
    rt: &tokio::runtime::Runtime,
    cmd: &ServerCmd,
    data: &DataDir,
    (alg, db): (Alg, Db),
    kinds: &[(Kind, usize)],
    timing: &Timing,
    raw_2t: f64,
    perf: Option<(&std::path::Path, &str)>,
) -> anyhow::Result<Vec<HttpRow>> {
    let url = match db {
        Db::Empty => data.empty_db_url(),
        Db::Loaded => data.loaded_db_url(),
    };
    let tag = format!("{}-{}", alg.label().replace([' ', '-'], ""), db.label());
    note(format!("{} on the {} database", alg.label(), db.label()));
    let mut server = Running::start(cmd, data, &url, &tag)?;
    let credential = match alg {
        Alg::Rsa => &data.rsa_credential,
        Alg::Ec => &data.ec_credential,
    };
    let target = Arc::new(rt.block_on(load::Target::login(
        server.addr,
        server::USER,
        server::PASSWORD,
        credential,
        alg.sign_algo(),
    ))?);
    let mut rows = Vec::new();
    for &(kind, conc) in kinds {
        // signHash rows: enough issued signatures for the fastest this row could possibly go
        // (the raw 2-thread rate), issued before the clock starts (again before a retry)
        let issued = match kind {
            Kind::SignHash { batch } => {
                let window = (timing.warmup + timing.duration).as_secs_f64();
                Some((raw_2t * window * 1.1) as u64 + (conc * batch) as u64)
            }
            Kind::Pairs => None,
        };
        let profile =
            perf.map(|(d, a)| (d.join(format!("{tag}-{}-c{conc}.perf.data", kind.id())), a));
        let r = cpu::least_disturbed(
            timing,
            Some(&server.pid),
            |r: &load::HttpResult| &r.usage,
            |attempt| {
                if let Some(want) = issued {
                    rt.block_on(target.ensure_sads(want, server::MULTISIGN, 2))?;
                }
                let mut r = rt.block_on(load::run(
                    target.clone(),
                    kind,
                    conc,
                    timing,
                    &server.pid,
                    profile.as_ref().map(|(p, a)| (p.as_path(), *a)),
                ));
                r.attempts = attempt + 1;
                if r.usage.other_pct > timing.max_other && attempt < timing.retries {
                    note(format!(
                        "  {:<24} c{conc:<3} disturbed (other processes {:.0}% of a core): waiting for quiet, again",
                        kind.name(),
                        r.usage.other_pct
                    ));
                }
                Ok(r)
            },
        )?;
        note(format!(
            "  {:<24} c{conc:<3} {:>8.0} ops/s {:>8.0} sig/s  p50 {:>7.2} ms  p99 {:>7.2} ms  client {:>3.0}%  server {:>3.0}%  other {:>3.0}%{}",
            kind.name(),
            r.ops_per_s,
            r.sig_per_s,
            r.p50_ms.unwrap_or(f64::NAN),
            r.p99_ms.unwrap_or(f64::NAN),
            r.usage.client_pct,
            r.usage.server_pct,
            r.usage.other_pct,
            if r.errors > 0 {
                format!(
                    "  ERRORS {} ({})",
                    r.errors,
                    r.first_error.as_deref().unwrap_or("")
                )
            } else {
                String::new()
            }
        ));
        rows.push(HttpRow {
            alg,
            db,
            kind,
            conc,
            result: r,
        });
    }
    let issued = *target
        .issued
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    note(format!(
        "  ({issued} multi-signature SADs issued before the rows)"
    ));
    server.stop();
    Ok(rows)
}

fn count_rustc() -> usize {
    std::process::Command::new("pgrep")
        .args(["-c", "rustc"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn args_json(
    args: &Args,
    timing: &Timing,
    credentials: usize,
    audit: usize,
    cmd: &ServerCmd,
) -> serde_json::Value {
    serde_json::json!({
        "smoke": args.smoke,
        "warmupSecs": timing.warmup.as_secs_f64(),
        "durationSecs": timing.duration.as_secs_f64(),
        "scaleCredentials": if args.no_scale { 0 } else { credentials },
        "scaleAuditRecords": if args.no_scale { 0 } else { audit },
        "clientThreads": args.client_threads,
        "server": cmd.bin.display().to_string(),
        "serverPrefix": cmd.prefix,
        "serverEnv": args.server_env,
        "cpus": cpu::cpus(),
    })
}
