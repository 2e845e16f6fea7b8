//! `csc-bench`: how close `csc-server` gets to the HSM's own limit, checked against the
//! server's performance targets (the `Targets` section of the report).
//!
//! One run on one machine measures, side by side:
//! 1. the raw `cm-pkcs11` signing rate in-process (1 and 2 threads) on the bench's own
//!    throwaway SoftHSM2 token: the baseline;
//! 2. the bare baseline: a signHash endpoint of this process that only parses, decodes and
//!    signs in the server's token (no auth, SAD, database), with the same load client;
//! 3. `signatures/signHash` over HTTP with already issued multi-signature SADs (concurrency 1,
//!    8, 32);
//! 4. `credentials/authorize` + `signatures/signHash` pairs (a fresh SAD each time);
//! 5. one signHash carrying 100 hashes;
//!
//! for RSA-2048 and EC P-256, against the release `csc-server` started as a child process,
//! once on an empty database and once on one holding 100,000 more credentials and 1,000,000
//! audit records; with `--postgres`, the signHash and pair rows also on a throwaway
//! PostgreSQL database, with one instance and with two instances sharing it; then `audit
//! verify` on the big one. See README "Benchmark".
//!
//! Not a test: nothing here asserts. `--smoke` runs everything briefly (CI may use it).

mod bare;
mod cpu;
mod load;
mod populate;
mod postgres;
mod raw;
mod report;
mod server;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use cm_pkcs11::{KeyId, KeySpec};

use crate::cpu::Watched;
use crate::load::{Kind, Target};
use crate::report::{HttpRow, Report};
use crate::server::{DataDir, Database, Running, ServerCmd};

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

    pub fn sign_algo(self) -> &'static str {
        match self {
            Alg::Rsa => load::SHA256_WITH_RSA,
            Alg::Ec => load::ECDSA_WITH_SHA256,
        }
    }
}

/// What answers a row's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The bench's own bare endpoint ([`bare`]): no server, no database.
    Bare,
    /// One `csc-server` on the empty SQLite database.
    Empty,
    /// One `csc-server` on the loaded SQLite database (the scale check).
    Loaded,
    /// One `csc-server` on the throwaway PostgreSQL database.
    Postgres,
    /// Two `csc-server` instances on that one PostgreSQL database and one token, the load
    /// split evenly between them.
    Postgres2,
}

impl Setup {
    /// The `database` of the JSON rows.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Bare => "bare",
            Setup::Empty => "empty",
            Setup::Loaded => "loaded",
            Setup::Postgres => "postgres",
            Setup::Postgres2 => "postgres-2",
        }
    }

    /// Server instances.
    pub fn instances(self) -> usize {
        match self {
            Setup::Postgres2 => 2,
            _ => 1,
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
    /// Measure every row N times and report the median run (by ops/s) with the rate of every
    /// run (noisy rows: 3).
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
    /// Also measure the signHash and pair rows on PostgreSQL, one instance and two instances
    /// on one database: an admin URL (e.g. postgresql://csc@127.0.0.1:54329/postgres) on
    /// which a throwaway database is created for the run and dropped at its end.
    #[arg(
        long,
        value_name = "URL",
        env = "CSC_BENCH_POSTGRES_URL",
        hide_env_values = true
    )]
    postgres: Option<String>,
    /// Skip the bare baseline rows.
    #[arg(long)]
    no_bare: bool,
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

    // ---- the data directory: one token, two SQLite databases (and a PostgreSQL one)
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
    // dropped (the database with it) when `run` returns, after every server stopped
    let pg = match &args.postgres {
        Some(admin) => {
            let db = postgres::Throwaway::create(admin)?;
            note(format!(
                "PostgreSQL: throwaway database {} on {} (init, user, credentials; same token)",
                db.name(),
                sam::redact_url(admin)
            ));
            let database = data.setup_postgres(&cmd, &db.url)?;
            Some((db, database))
        }
        None => None,
    };
    let module = raw::module_path();
    // before the raw baseline loads the module with the bench's own token (same directory)
    let keys = data.integrity_keys(&module)?;
    let bare = !args.no_bare;
    let bare_keys = if bare {
        bare::key_ids(
            &data.empty.url,
            &keys,
            &[&data.empty.rsa_credential, &data.empty.ec_credential],
        )?
    } else {
        HashMap::new()
    };
    let scale = !args.no_scale;
    if scale {
        data.copy_to_loaded()?;
        note(format!(
            "populating loaded.db with {n_credentials} credentials and {n_audit} audit records"
        ));
        let p = populate::populate(
            &data.loaded().url,
            &data.empty.rsa_credential,
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
    let (hsm, rsa_key, ec_key) = raw::open_token(&module)?;
    note(format!(
        "  (own token under {}, module {})",
        token.dir.path().display(),
        module.display()
    ));
    // ---- what one authorize spends checking the PIN
    report.argon2 = Some(report::pin_check(&hsm, if smoke { 20 } else { 2_000 })?);
    report.mac = Some(report::mac_costs(&hsm, if smoke { 200 } else { 20_000 })?);
    let repeat = args.repeat.max(1);
    for alg in &args.alg {
        let key = if *alg == Alg::Rsa { &rsa_key } else { &ec_key };
        let mut batches = vec![(1, 1), (2, 1)];
        if args.rows.iter().any(|r| r == "batch") {
            batches.push((1, 100));
        }
        for (threads, batch) in batches {
            let (mut r, runs) = stats::median_run(
                repeat,
                |r: &raw::RawResult| r.sig_per_s,
                |_| raw::run(&hsm, key, alg.spec(), threads, batch, &timing),
            )?;
            r.runs = runs;
            note(format!(
                "  raw {} {threads}t{}: {:.0} sig/s",
                alg.label(),
                if batch > 1 {
                    format!(" x{batch}")
                } else {
                    String::new()
                },
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
    // PostgreSQL: the signHash and pair rows (at c8 only with --smoke); two instances split
    // the load evenly, so only at concurrency 2 and more
    let pg_kinds: Vec<(Kind, usize)> = kinds
        .iter()
        .copied()
        .filter(|(k, c)| *k != Kind::SignHash { batch: 100 } && (!smoke || *c == 8))
        .collect();
    let bench = Bench {
        rt: &rt,
        timing: &timing,
        repeat,
        perf: args
            .perf_dir
            .as_deref()
            .map(|d| (d, args.perf_args.as_str())),
    };
    for (i, alg) in args.alg.iter().enumerate() {
        let raw2 = report.raw_rate(*alg, 2, 1).unwrap_or(30_000.0);
        // the bare baseline first, while no csc-server runs on the token
        if bare && args.rows.iter().any(|r| r == "signhash" || r == "pairs") {
            let rows = bare_rows(&bench, &data, &module, &bare_keys, *alg, &args.concurrency)?;
            report.http.extend(rows);
        }
        // alternate the order so neither database always runs second
        let dbs: Vec<Setup> = match (scale, i % 2) {
            (false, _) => vec![Setup::Empty],
            (true, 0) => vec![Setup::Empty, Setup::Loaded],
            (true, _) => vec![Setup::Loaded, Setup::Empty],
        };
        for setup in dbs {
            let db = match setup {
                Setup::Loaded => data.loaded(),
                _ => data.empty.clone(),
            };
            let rows = server_rows(&bench, &cmd, &data, &db, (*alg, setup), &kinds, raw2)?;
            report.http.extend(rows);
        }
        if let Some((_, db)) = &pg {
            for setup in [Setup::Postgres, Setup::Postgres2] {
                let kinds: Vec<(Kind, usize)> = pg_kinds
                    .iter()
                    .copied()
                    .filter(|(_, c)| *c >= setup.instances())
                    .collect();
                let rows = server_rows(&bench, &cmd, &data, db, (*alg, setup), &kinds, raw2)?;
                report.http.extend(rows);
            }
        }
    }
    drop(rt);

    // ---- audit verify
    let verified = if scale {
        data.loaded()
    } else {
        data.empty.clone()
    };
    note("audit verify (in-process and through the CLI)");
    let (records, secs) = populate::verify_in_process(&verified.url, &keys)?;
    report.audit_in_process = Some((records, secs));
    let t = Instant::now();
    let v = cmd.run_json(
        &data.dir,
        &["audit", "verify"],
        &[
            ("CSC_DATABASE_URL", verified.url.as_str()),
            ("CSC_AUDIT_SEAL_FILE", verified.seal_file.as_str()),
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
    drop(pg);
    Ok(())
}

/// How every HTTP row is measured.
struct Bench<'a> {
    /// The load generator's runtime.
    rt: &'a tokio::runtime::Runtime,
    timing: &'a Timing,
    /// Runs per row (`--repeat`); the median one is kept.
    repeat: usize,
    /// `--perf-dir` and `--perf-args`.
    perf: Option<(&'a Path, &'a str)>,
}

/// The bare baseline's rows of `alg`: signHash at each of `concs`, against this process's own
/// endpoint ([`bare`]) signing with the key of the server's `alg` credential (in `csc.db`).
fn bare_rows(
    bench: &Bench<'_>,
    data: &DataDir,
    module: &Path,
    keys: &HashMap<String, KeyId>,
    alg: Alg,
    concs: &[usize],
) -> anyhow::Result<Vec<HttpRow>> {
    note(format!(
        "{} bare baseline (this process: parse, decode, sign; {} workers)",
        alg.label(),
        bare::workers()
    ));
    let hsm = data.open_token(module, bare::workers())?;
    let server = bare::start(hsm.clone(), keys.clone())?;
    let credential = data.empty.credential(alg);
    let target = Arc::new(Target::bare(server.addr, credential, alg.sign_algo())?);
    // one signature checked against the key first: the baseline signs for real
    let checked = bench
        .rt
        .block_on(target.sign_once())
        .and_then(|(digest, signature)| {
            let key = keys.get(credential).context("no key for the credential")?;
            bare::verify(&hsm, key, &digest, &signature)
        });
    drop(hsm);
    let kinds: Vec<(Kind, usize)> = concs
        .iter()
        .map(|&c| (Kind::SignHash { batch: 1 }, c))
        .collect();
    let tag = format!("{}-bare", alg.label().replace([' ', '-'], ""));
    let rows = checked.and_then(|()| {
        measure_rows(
            bench,
            (alg, Setup::Bare),
            &tag,
            &[target],
            &server.watched,
            &kinds,
            0.0,
        )
    });
    server.stop(bench.rt)?;
    rows
}

/// Starts the server instances of `setup` on `db` (two for [`Setup::Postgres2`]), logs in on
/// each, and runs every row for `alg`.
fn server_rows(
    bench: &Bench<'_>,
    cmd: &ServerCmd,
    data: &DataDir,
    db: &Database,
    (alg, setup): (Alg, Setup),
    kinds: &[(Kind, usize)],
    raw_2t: f64,
) -> anyhow::Result<Vec<HttpRow>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let tag = format!("{}-{}", alg.label().replace([' ', '-'], ""), setup.label());
    note(format!(
        "{} on the {} database{}",
        alg.label(),
        setup.label(),
        if setup.instances() > 1 {
            format!(" ({} instances)", setup.instances())
        } else {
            String::new()
        }
    ));
    let mut servers = Vec::new();
    for n in 0..setup.instances() {
        // every further instance: its own TSA serial prefix and seal file, as on its own machine
        let prefix = n.to_string();
        let seals = format!("{}.instance{n}", db.seal_file);
        let env: Vec<(&str, &str)> = if n == 0 {
            Vec::new()
        } else {
            vec![
                ("CSC_TSA_SERIAL_PREFIX", prefix.as_str()),
                ("CSC_AUDIT_SEAL_FILE", seals.as_str()),
            ]
        };
        servers.push(Running::start(cmd, data, db, &format!("{tag}-{n}"), &env)?);
    }
    let mut targets = Vec::new();
    for s in &servers {
        targets.push(Arc::new(bench.rt.block_on(Target::login(
            s.addr,
            server::USER,
            server::PASSWORD,
            db.credential(alg),
            alg.sign_algo(),
        ))?));
    }
    let mut watched = Watched::processes(servers.iter().map(|s| s.pid.clone()));
    watched.database = db.postgres_name();
    let rows = measure_rows(bench, (alg, setup), &tag, &targets, &watched, kinds, raw_2t)?;
    let issued: usize = targets
        .iter()
        .map(|t| {
            *t.issued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .sum();
    note(format!(
        "  ({issued} multi-signature SADs issued before the rows)"
    ));
    for mut s in servers {
        s.stop();
    }
    Ok(rows)
}

/// Measures each of `kinds` against `targets` (the load split evenly between them), `server`
/// being what answers them for the CPU accounting: `--repeat` runs, the median kept, each run
/// measured again while other processes disturbed it.
fn measure_rows(
    bench: &Bench<'_>,
    (alg, setup): (Alg, Setup),
    tag: &str,
    targets: &[Arc<Target>],
    server: &Watched,
    kinds: &[(Kind, usize)],
    raw_2t: f64,
) -> anyhow::Result<Vec<HttpRow>> {
    let timing = bench.timing;
    let mut rows = Vec::new();
    for &(kind, conc) in kinds {
        // signHash rows: enough issued signatures for the fastest this row could possibly go
        // (the raw 2-thread rate, twice over: on a shared box the raw rows can be measured
        // while others load it and an HTTP row while they do not), issued before the clock
        // starts (again before a retry)
        let issued = match kind {
            Kind::SignHash { batch } => {
                let window = (timing.warmup + timing.duration).as_secs_f64();
                Some((raw_2t * window * 2.0) as u64 + (conc * batch) as u64)
            }
            Kind::Pairs => None,
        };
        let profile = bench
            .perf
            .map(|(d, a)| (d.join(format!("{tag}-{}-c{conc}.perf.data", kind.id())), a));
        let (mut r, runs) = stats::median_run(
            bench.repeat,
            |r: &load::HttpResult| r.ops_per_s,
            |_| {
                cpu::least_disturbed(
                    timing,
                    Some(server),
                    |r: &load::HttpResult| &r.usage,
                    |attempt| {
                        if let Some(want) = issued {
                            for t in targets {
                                bench
                                    .rt
                                    .block_on(t.ensure_sads(want, server::MULTISIGN, 2))?;
                            }
                        }
                        let mut r = bench.rt.block_on(load::run(
                            targets,
                            kind,
                            conc,
                            timing,
                            server,
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
                )
            },
        )?;
        r.runs = runs;
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
            setup,
            kind,
            conc,
            result: r,
        });
    }
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
        "repeat": args.repeat.max(1),
        "bareWorkers": if args.no_bare { None } else { Some(bare::workers()) },
        "postgres": args.postgres.as_deref().map(sam::redact_url),
        "server": cmd.bin.display().to_string(),
        "serverPrefix": cmd.prefix,
        "serverEnv": args.server_env,
        "cpus": cpu::cpus(),
    })
}
