//! The printed table, the issue's targets and the JSON file.

use std::time::Instant;

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::load::{HttpResult, Kind};
use crate::populate::Populated;
use crate::raw::RawResult;
use crate::{Alg, Setup};

/// Fewer operations than this in a row make its ratios meaningless.
const MIN_OPS: u64 = 20;

/// One HTTP row.
#[derive(Debug, Clone)]
pub struct HttpRow {
    pub alg: Alg,
    pub setup: Setup,
    pub kind: Kind,
    pub conc: usize,
    pub result: HttpResult,
}

/// What one PIN check of `authorize` costs (HMAC in the token + Argon2id, `sam::secrets`),
/// measured in this process with the server's code and parameters on the bench's own token.
#[derive(Debug, Clone)]
pub struct Argon2Timing {
    /// `m=...,t=...,p=...` of the PHC string.
    pub params: String,
    pub mean_ms: f64,
    pub min_ms: f64,
    /// Verifications per second with 2 threads (the box's ceiling for authorize).
    pub two_threads_per_s: f64,
}

/// Times `sam::secrets::verify_pin` (what `authorize` runs) `n` times on one thread, then `n`
/// times on each of 2 threads, on a verifier made by `sam::secrets::pin_verifier` with the
/// bench token's pepper key.
pub fn pin_check(hsm: &cm_pkcs11::Hsm, n: usize) -> anyhow::Result<Argon2Timing> {
    use sam::secrets::{PIN_PEPPER_LABEL, PinMatch, pin_verifier, verify_pin};
    let pin = SecretString::from(crate::server::PIN);
    let key = hsm.secret_key(PIN_PEPPER_LABEL)?;
    let credential = storage::CredentialId::new();
    let verifier = pin_verifier(hsm, &key, &credential, &pin)?;
    let params = verifier
        .split('$')
        .filter(|s| s.starts_with("m=") || s.starts_with("v=") || s.starts_with("argon"))
        .collect::<Vec<_>>()
        .join(" ");
    let check = || verify_pin(hsm, &key, &credential, &pin, &verifier);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let ok = check()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(ok == PinMatch::Yes, "the PIN check failed");
    }
    let mean_ms = times.iter().sum::<f64>() / times.len() as f64;
    let min_ms = times.iter().copied().fold(f64::INFINITY, f64::min);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n.max(1) {
                    let _ = check();
                }
            });
        }
    });
    let two_threads_per_s = (2 * n.max(1)) as f64 / t.elapsed().as_secs_f64();
    Ok(Argon2Timing {
        params: format!("HSM HMAC-SHA256 + {params}"),
        mean_ms,
        min_ms,
        two_threads_per_s,
    })
}

/// Row MACs computed in the token (`Hsm::hmac_sha256`, one `C_Sign` each) against the same
/// HMAC-SHA256 with a key in memory (`storage::IntegrityKeys`), one thread, `n` of each: the
/// measurement behind the choice of `sam::integrity` (README "Benchmark").
pub struct MacTiming {
    pub token_per_s: f64,
    pub memory_per_s: f64,
}

/// Measures [`MacTiming`] over a 200-byte row encoding.
pub fn mac_costs(hsm: &cm_pkcs11::Hsm, n: usize) -> anyhow::Result<MacTiming> {
    let key = hsm.secret_key(sam::integrity::INTEGRITY_KEY_LABEL)?;
    let row = [0x5au8; 200];
    let n = n.max(1);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(hsm.hmac_sha256(&key, &row)?);
    }
    let token_per_s = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let keys = storage::IntegrityKeys::new([1; 32], [2; 32]);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(keys.audit_mac(&[&row]));
    }
    let memory_per_s = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
    Ok(MacTiming {
        token_per_s,
        memory_per_s,
    })
}

pub struct Report {
    pub config: Value,
    pub rustc_running_at_start: usize,
    pub rustc_running_at_end: usize,
    pub populated: Option<Populated>,
    pub argon2: Option<Argon2Timing>,
    pub mac: Option<MacTiming>,
    pub raw: Vec<(Alg, RawResult)>,
    pub raw_end: Vec<(Alg, RawResult)>,
    pub http: Vec<HttpRow>,
    pub audit_in_process: Option<(u64, f64)>,
    pub audit_cli: Option<(u64, f64)>,
    pub total_secs: f64,
}

/// A performance target of the server and whether this run met it.
struct Target {
    /// The issue that set it (the report prints one block per issue).
    issue: u32,
    name: String,
    measured: String,
    met: Option<bool>,
}

/// A ratio as a target's measurement: `62% (4,100/s vs 6,600/s)`, or "not measured".
fn ratio_target(
    issue: u32,
    name: &str,
    pair: Option<(f64, f64)>,
    at_least: f64,
    unit: &str,
) -> Target {
    match pair {
        Some((v, base)) => Target {
            issue,
            name: name.into(),
            measured: format!(
                "{} ({v:.0}{unit} vs {base:.0}{unit})",
                pct(v / base.max(1e-9))
            ),
            met: Some(v >= at_least * base),
        },
        None => Target {
            issue,
            name: name.into(),
            measured: "not measured".into(),
            met: None,
        },
    }
}

/// A p99 bound as a target.
fn p99_target(issue: u32, name: &str, row: Option<&HttpRow>, below_ms: f64) -> Target {
    Target {
        issue,
        name: name.into(),
        measured: row.map_or("not measured".into(), |r| {
            format!("{} ms", ms(r.result.p99_ms))
        }),
        met: row.map(|r| r.result.p99_ms.is_some_and(|p| p < below_ms)),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// The errors column of an HTTP row: the error count (and the first), a cut-short window, retries,
/// and with `--repeat` the rate of every run.
fn flags(r: &HttpRow) -> String {
    let mut flags = r.result.errors.to_string();
    if r.result.errors > 0 {
        flags.push_str(&format!(
            " ({})",
            r.result
                .first_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect::<String>()
        ));
    }
    if r.result.exhausted {
        flags.push_str(" SADs ran out: window cut short");
    }
    if r.result.attempts > 1 {
        flags.push_str(&format!(" ({} tries)", r.result.attempts));
    }
    flags.push_str(&runs(&r.result.runs));
    flags
}

/// `  (median of 3: 4100 / 3900 / 4200)` when a row ran more than once.
fn runs(rates: &[f64]) -> String {
    if rates.len() < 2 {
        return String::new();
    }
    format!(
        "  (median of {}: {})",
        rates.len(),
        rates
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    )
}

impl Report {
    pub fn new(config: &Value) -> Report {
        Report {
            config: config.clone(),
            rustc_running_at_start: 0,
            rustc_running_at_end: 0,
            populated: None,
            argon2: None,
            mac: None,
            raw: Vec::new(),
            raw_end: Vec::new(),
            http: Vec::new(),
            audit_in_process: None,
            audit_cli: None,
            total_secs: 0.0,
        }
    }

    /// The raw signatures/s of `alg` with `threads` threads and `batch` digests per call.
    pub fn raw_rate(&self, alg: Alg, threads: usize, batch: usize) -> Option<f64> {
        self.raw
            .iter()
            .find(|(a, r)| *a == alg && r.threads == threads && r.batch == batch)
            .map(|(_, r)| r.sig_per_s)
    }

    /// The baseline of an HTTP row: the raw 1-thread rate for one client at a time, the raw
    /// 2-thread (whole box) rate for concurrent rows. Always single-digest calls, also for the
    /// 100-hash rows (the target compares with "the raw rate per signature").
    fn baseline(&self, row: &HttpRow) -> Option<(&'static str, f64)> {
        let threads = if row.conc <= 1 { 1 } else { 2 };
        let name = if threads == 1 {
            "raw-1-thread"
        } else {
            "raw-2-thread"
        };
        self.raw_rate(row.alg, threads, 1).map(|r| (name, r))
    }

    /// The raw baseline's short name (`r1`, `r2`) and the row's ratio to it, printed.
    fn raw_ratio(&self, row: &HttpRow) -> (&'static str, String) {
        match self.baseline(row) {
            Some((name, b)) => (
                if name == "raw-1-thread" { "r1" } else { "r2" },
                pct(row.result.sig_per_s / b),
            ),
            None => ("", "-".into()),
        }
    }

    /// `bare%`, printed (`62%`, `62%@8` when compared with the c8 baseline).
    fn bare_pct(&self, row: &HttpRow) -> String {
        match self.bare_ratio(row) {
            Some((ratio, conc)) if conc == row.conc => pct(ratio),
            Some((ratio, conc)) => format!("{}@{conc}", pct(ratio)),
            None => "-".into(),
        }
    }

    fn row(&self, alg: Alg, setup: Setup, kind: Kind, conc: usize) -> Option<&HttpRow> {
        self.http
            .iter()
            .find(|r| r.alg == alg && r.setup == setup && r.kind == kind && r.conc == conc)
    }

    /// The bare baseline row a row is compared with: same algorithm and concurrency, else c8.
    fn bare_of(&self, row: &HttpRow) -> Option<&HttpRow> {
        if row.setup == Setup::Bare {
            return None;
        }
        let sh = Kind::SignHash { batch: 1 };
        self.row(row.alg, Setup::Bare, sh, row.conc)
            .or_else(|| self.row(row.alg, Setup::Bare, sh, 8))
    }

    /// `bare%`: the row's signatures/s over its bare baseline's (for every row but the x100
    /// ones, signatures/s = ops/s), and the concurrency of that baseline.
    fn bare_ratio(&self, row: &HttpRow) -> Option<(f64, usize)> {
        self.bare_of(row)
            .map(|b| (row.result.sig_per_s / b.result.sig_per_s.max(1e-9), b.conc))
    }

    /// A PostgreSQL row's ops/s over the same row on the empty SQLite database.
    fn sqlite_ratio(&self, row: &HttpRow) -> Option<f64> {
        if !matches!(row.setup, Setup::Postgres | Setup::Postgres2) {
            return None;
        }
        self.row(row.alg, Setup::Empty, row.kind, row.conc)
            .map(|s| row.result.ops_per_s / s.result.ops_per_s.max(1e-9))
    }

    /// A two-instance row's total ops/s over the same row on one PostgreSQL instance.
    fn scaling(&self, row: &HttpRow) -> Option<f64> {
        if row.setup != Setup::Postgres2 {
            return None;
        }
        self.row(row.alg, Setup::Postgres, row.kind, row.conc)
            .map(|s| row.result.ops_per_s / s.result.ops_per_s.max(1e-9))
    }

    /// (empty, loaded) pairs of the same row, both with enough operations to compare
    /// ([`MIN_OPS`]; a smoke window is shorter than one authorize at c32).
    fn scale_pairs(&self) -> Vec<(&HttpRow, &HttpRow)> {
        self.scale_rows()
            .into_iter()
            .filter(|(e, l)| e.result.ops >= MIN_OPS && l.result.ops >= MIN_OPS)
            .collect()
    }

    /// Every (empty, loaded) pair of the same row.
    fn scale_rows(&self) -> Vec<(&HttpRow, &HttpRow)> {
        self.http
            .iter()
            .filter(|r| r.setup == Setup::Empty)
            .filter_map(|e| {
                self.row(e.alg, Setup::Loaded, e.kind, e.conc)
                    .map(|l| (e, l))
            })
            .collect()
    }

    fn audit_rate(&self) -> Option<f64> {
        self.audit_in_process.map(|(n, s)| n as f64 / s.max(1e-9))
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let sh = Kind::SignHash { batch: 1 };
        let sig = |r: Option<&HttpRow>| r.map(|r| r.result.sig_per_s);
        let both = |a: Option<f64>, b: Option<f64>| a.zip(b);
        // 1. RSA signHash c8 >= 80 % of raw 2-thread
        let rsa8 = self.row(Alg::Rsa, Setup::Empty, sh, 8);
        let raw2 = self.raw_rate(Alg::Rsa, 2, 1);
        t.push(ratio_target(
            6,
            "RSA-2048 signHash (issued SAD) c8 >= 80% of raw 2-thread",
            both(sig(rsa8), raw2),
            0.8,
            "/s",
        ));
        // 2. EC signHash c8 >= 8000/s, p99 < 10 ms
        let ec8 = self.row(Alg::Ec, Setup::Empty, sh, 8);
        t.push(Target {
            issue: 6,
            name: "EC P-256 signHash (issued SAD) c8 >= 8,000/s".into(),
            measured: ec8.map_or("not measured".into(), |r| {
                format!("{:.0}/s", r.result.sig_per_s)
            }),
            met: ec8.map(|r| r.result.sig_per_s >= 8000.0),
        });
        t.push(p99_target(
            6,
            "EC P-256 signHash (issued SAD) c8 p99 < 10 ms",
            ec8,
            10.0,
        ));
        // 3. EC pairs c8 >= 4000/s, p99 < 10 ms
        let pairs8 = self.row(Alg::Ec, Setup::Empty, Kind::Pairs, 8);
        t.push(Target {
            issue: 6,
            name: "EC P-256 authorize+signHash pairs c8 >= 4,000/s".into(),
            measured: pairs8.map_or("not measured".into(), |r| {
                format!("{:.0} pairs/s", r.result.ops_per_s)
            }),
            met: pairs8.map(|r| r.result.ops_per_s >= 4000.0),
        });
        t.push(p99_target(
            6,
            "EC P-256 authorize+signHash pairs c8 p99 < 10 ms",
            pairs8,
            10.0,
        ));
        // 4. RSA 100 hashes, c1, per signature >= 90 % of raw (1 thread: one request at a time)
        let b100 = self.row(Alg::Rsa, Setup::Empty, Kind::SignHash { batch: 100 }, 1);
        t.push(ratio_target(
            6,
            "RSA-2048 one signHash of 100 hashes >= 90% of raw per signature",
            both(sig(b100), self.raw_rate(Alg::Rsa, 1, 1)),
            0.9,
            " sig/s",
        ));
        // 5. scale: every row within 10 %
        t.push(self.scale_target(6));
        // 6. audit verify >= 200k records/s
        t.push(Target {
            issue: 6,
            name: "audit verify >= 200,000 records/s".into(),
            measured: self
                .audit_in_process
                .map_or("not measured".into(), |(n, s)| {
                    format!(
                        "{:.0} records/s ({n} records in {s:.2} s)",
                        n as f64 / s.max(1e-9)
                    )
                }),
            met: self.audit_rate().map(|r| r >= 200_000.0),
        });

        // the ratios to the bare baseline of the same run
        let bare = |alg: Alg, conc: usize| sig(self.row(alg, Setup::Bare, sh, conc));
        t.push(ratio_target(
            15,
            "EC P-256 signHash (issued SAD) c8 >= 60% of bare c8",
            both(sig(ec8), bare(Alg::Ec, 8)),
            0.6,
            "/s",
        ));
        t.push(p99_target(
            15,
            "EC P-256 signHash (issued SAD) c8 p99 < 10 ms",
            ec8,
            10.0,
        ));
        t.push(p99_target(
            15,
            "EC P-256 signHash (issued SAD) c32 p99 < 20 ms",
            self.row(Alg::Ec, Setup::Empty, sh, 32),
            20.0,
        ));
        t.push(ratio_target(
            15,
            "RSA-2048 signHash (issued SAD) c8 >= 80% of raw 2-thread",
            both(sig(rsa8), raw2),
            0.8,
            "/s",
        ));
        t.push(ratio_target(
            15,
            "EC P-256 authorize+signHash pairs c8 >= 25% of bare c8",
            both(sig(pairs8), bare(Alg::Ec, 8)),
            0.25,
            "/s",
        ));
        // PostgreSQL: one instance, and two on one database (on one box the two share its
        // cores, so their total is what is compared)
        for (setup, what) in [(Setup::Postgres, "x1"), (Setup::Postgres2, "x2 total")] {
            for (kind, row) in [(sh, "signHash"), (Kind::Pairs, "pairs")] {
                let pg = self.row(Alg::Ec, setup, kind, 8);
                let sqlite = self.row(Alg::Ec, Setup::Empty, kind, 8);
                t.push(ratio_target(
                    15,
                    &format!("PostgreSQL {what}: EC P-256 {row} c8 >= 60% of SQLite"),
                    both(sig(pg), sig(sqlite)),
                    0.6,
                    "/s",
                ));
            }
        }
        t.push(self.scale_target(15));
        t
    }

    /// Every loaded-database row within 10 % of the same row on the empty one.
    fn scale_target(&self, issue: u32) -> Target {
        let pairs = self.scale_pairs();
        let worst = pairs
            .iter()
            .map(|(e, l)| (l.result.ops_per_s / e.result.ops_per_s.max(1e-9), e))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        Target {
            issue,
            name: "loaded database: every HTTP row >= 90% of its empty-database throughput".into(),
            measured: worst.map_or("not measured".into(), |(ratio, e)| {
                format!(
                    "worst {} ({} {} c{})",
                    pct(ratio),
                    e.alg.label(),
                    e.kind.name(),
                    e.conc
                )
            }),
            met: worst.map(|(ratio, _)| ratio >= 0.9),
        }
    }

    pub fn print(&self) {
        let config = |key: &str| self.config.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        let cpus = self.config.get("cpus").and_then(Value::as_u64).unwrap_or(0);
        println!();
        println!(
            "== csc-bench: csc-server over HTTP vs raw cm-pkcs11 ({cpus} CPUs; {:.1} s warm-up + {:.1} s measured per row) ==",
            config("warmupSecs"),
            config("durationSecs")
        );
        println!();
        println!(
            "Raw cm-pkcs11 signing, in-process (own SoftHSM2 token, pooled long-lived sessions)"
        );
        println!(
            "  {:<9} {:>7} {:>12} {:>9} {:>7} {:>7} {:>6} {:>6}",
            "alg", "threads", "hashes/call", "sig/s", "p50 ms", "p99 ms", "cpu", "other"
        );
        for (alg, r) in &self.raw {
            println!(
                "  {:<9} {:>7} {:>12} {:>9.0} {:>7} {:>7} {:>5.0}% {:>5.0}%{}",
                alg.label(),
                r.threads,
                r.batch,
                r.sig_per_s,
                ms(r.p50_ms),
                ms(r.p99_ms),
                r.usage.client_pct,
                r.usage.other_pct,
                runs(&r.runs)
            );
        }
        let bare: Vec<&HttpRow> = self
            .http
            .iter()
            .filter(|r| r.setup == Setup::Bare)
            .collect();
        if !bare.is_empty() {
            println!();
            println!(
                "Bare baseline: this process's own actix-web signHash ({} workers): parse, base64, sign in the server's token and key; no auth, SAD, database (ratio to r1/r2 as below)",
                self.config
                    .get("bareWorkers")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            );
            println!(
                "  {:<9} {:>4} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}  errors",
                "alg", "conc", "ops/s", "p50 ms", "p99 ms", "ratio", "client", "server", "other"
            );
            for r in bare {
                let (base, ratio) = self.raw_ratio(r);
                println!(
                    "  {:<9} {:>4} {:>8.0} {:>7} {:>7} {:>4} {:<2} {:>6.0}% {:>6.0}% {:>5.0}%  {}",
                    r.alg.label(),
                    r.conc,
                    r.result.ops_per_s,
                    ms(r.result.p50_ms),
                    ms(r.result.p99_ms),
                    ratio,
                    base,
                    r.result.usage.client_pct,
                    r.result.usage.server_pct,
                    r.result.usage.other_pct,
                    flags(r)
                );
            }
        }
        for setup in [Setup::Empty, Setup::Loaded] {
            let rows: Vec<&HttpRow> = self.http.iter().filter(|r| r.setup == setup).collect();
            if rows.is_empty() {
                continue;
            }
            println!();
            println!(
                "HTTP, {} database  (ratio = sig/s / baseline; r1 = raw 1-thread for c1, r2 = raw 2-thread for c>=2; bare% = sig/s / bare baseline of the same concurrency, else c8; cpu in % of one core)",
                setup.label()
            );
            println!(
                "  {:<9} {:<24} {:>4} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>7} {:>7} {:>6}  errors",
                "alg",
                "row",
                "conc",
                "ops/s",
                "sig/s",
                "p50 ms",
                "p99 ms",
                "ratio",
                "bare%",
                "client",
                "server",
                "other"
            );
            for r in rows {
                let (base, ratio) = self.raw_ratio(r);
                println!(
                    "  {:<9} {:<24} {:>4} {:>8.0} {:>8.0} {:>7} {:>7} {:>4} {:<2} {:>6} {:>6.0}% {:>6.0}% {:>5.0}%  {}",
                    r.alg.label(),
                    r.kind.name(),
                    r.conc,
                    r.result.ops_per_s,
                    r.result.sig_per_s,
                    ms(r.result.p50_ms),
                    ms(r.result.p99_ms),
                    ratio,
                    base,
                    self.bare_pct(r),
                    r.result.usage.client_pct,
                    r.result.usage.server_pct,
                    r.result.usage.other_pct,
                    flags(r)
                );
            }
        }
        let pg: Vec<&HttpRow> = self
            .http
            .iter()
            .filter(|r| matches!(r.setup, Setup::Postgres | Setup::Postgres2))
            .collect();
        if !pg.is_empty() {
            println!();
            println!(
                "HTTP, PostgreSQL (throwaway database; x2 = two instances on it and one token, the load split evenly; sqlite% = ops/s / the empty SQLite row; vs x1 = total / one instance; db = its PostgreSQL backends' cpu)"
            );
            println!(
                "  {:<9} {:<24} {:>4} {:>4} {:>8} {:>15} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6}  errors",
                "alg",
                "row",
                "conc",
                "inst",
                "ops/s",
                "per instance",
                "p50 ms",
                "p99 ms",
                "bare%",
                "sqlite%",
                "vs x1",
                "server",
                "db",
                "other"
            );
            for r in pg {
                let per = if r.result.per_instance_ops_per_s.len() > 1 {
                    r.result
                        .per_instance_ops_per_s
                        .iter()
                        .map(|v| format!("{v:.0}"))
                        .collect::<Vec<_>>()
                        .join(" / ")
                } else {
                    "-".into()
                };
                println!(
                    "  {:<9} {:<24} {:>4} {:>4} {:>8.0} {:>15} {:>7} {:>7} {:>6} {:>7} {:>6} {:>5.0}% {:>5.0}% {:>5.0}%  {}",
                    r.alg.label(),
                    r.kind.name(),
                    r.conc,
                    format!("x{}", r.setup.instances()),
                    r.result.ops_per_s,
                    per,
                    ms(r.result.p50_ms),
                    ms(r.result.p99_ms),
                    self.bare_pct(r),
                    self.sqlite_ratio(r).map_or("-".into(), pct),
                    self.scaling(r).map_or("-".into(), |v| format!("{v:.2}x")),
                    r.result.usage.server_pct,
                    r.result.usage.database_pct,
                    r.result.usage.other_pct,
                    flags(r)
                );
            }
        }
        let pair_rows: Vec<&HttpRow> = self
            .http
            .iter()
            .filter(|r| r.kind == Kind::Pairs && r.setup == Setup::Empty)
            .collect();
        if !pair_rows.is_empty() {
            println!();
            println!("Pairs, where the time goes (empty database; p50 / p99 ms of each half)");
            for r in pair_rows {
                println!(
                    "  {:<9} c{:<3} authorize {:>7} / {:>7}   signHash {:>7} / {:>7}",
                    r.alg.label(),
                    r.conc,
                    ms(r.result.authorize_p50_ms),
                    ms(r.result.authorize_p99_ms),
                    ms(r.result.sign_p50_ms),
                    ms(r.result.sign_p99_ms)
                );
            }
        }
        if let Some(a) = &self.argon2 {
            println!(
                "  one PIN check ({}): mean {:.3} ms, min {:.3} ms; 2 threads: {:.0} checks/s (a ceiling for pairs)",
                a.params, a.mean_ms, a.min_ms, a.two_threads_per_s
            );
        }
        if let Some(m) = &self.mac {
            println!(
                "  one row MAC (HMAC-SHA256, 200 bytes): in the token {:.0}/s, in memory {:.0}/s: memory is {:.0}x cheaper",
                m.token_per_s,
                m.memory_per_s,
                m.memory_per_s / m.token_per_s.max(1e-9)
            );
        }
        let pairs = self.scale_rows();
        if !pairs.is_empty() {
            println!();
            match &self.populated {
                Some(p) => println!(
                    "Scale check: loaded database (+{} credentials of {} users, +{} audit records, {} MB) vs empty",
                    p.credentials,
                    p.users,
                    p.audit_records,
                    p.db_bytes / 1_000_000
                ),
                None => println!("Scale check: loaded vs empty"),
            }
            println!(
                "  {:<9} {:<24} {:>4} {:>10} {:>10} {:>7} {:>10} {:>10}",
                "alg", "row", "conc", "empty/s", "loaded/s", "ratio", "p99 empty", "p99 loaded"
            );
            for (e, l) in pairs {
                println!(
                    "  {:<9} {:<24} {:>4} {:>10.0} {:>10.0} {:>7} {:>10} {:>10}",
                    e.alg.label(),
                    e.kind.name(),
                    e.conc,
                    e.result.ops_per_s,
                    l.result.ops_per_s,
                    if e.result.ops >= MIN_OPS && l.result.ops >= MIN_OPS {
                        pct(l.result.ops_per_s / e.result.ops_per_s.max(1e-9))
                    } else {
                        "n/a".into()
                    },
                    ms(e.result.p99_ms),
                    ms(l.result.p99_ms)
                );
            }
        }
        println!();
        if let Some((n, s)) = self.audit_in_process {
            println!(
                "audit verify, in-process Store::verify_audit_chain: {n} records in {s:.2} s = {:.0} records/s",
                n as f64 / s.max(1e-9)
            );
        }
        if let Some((n, s)) = self.audit_cli {
            println!(
                "audit verify, `csc-server audit verify` (process start, HSM login included): {n} records in {s:.2} s = {:.0} records/s",
                n as f64 / s.max(1e-9)
            );
        }
        for (alg, end) in &self.raw_end {
            if let Some(start) = self.raw_rate(*alg, 2, 1) {
                println!(
                    "raw {} 2-thread at the start {start:.0}/s, at the end {:.0}/s ({:+.1}%: drift/noise during the run)",
                    alg.label(),
                    end.sig_per_s,
                    (end.sig_per_s / start - 1.0) * 100.0
                );
            }
        }
        let max_other = self
            .http
            .iter()
            .map(|r| r.result.usage.other_pct)
            .fold(0.0, f64::max);
        println!(
            "noise: rustc processes at start {} / end {}; highest CPU taken by other processes during an HTTP row: {max_other:.0}% of a core",
            self.rustc_running_at_start, self.rustc_running_at_end
        );
        let targets = self.targets();
        for (issue, what) in [(6, ""), (15, ": ratios to the baselines of this run")] {
            println!();
            println!("Targets (issue {issue}){what}");
            for t in targets.iter().filter(|t| t.issue == issue) {
                let mark = match t.met {
                    Some(true) => "MET   ",
                    Some(false) => "MISSED",
                    None => "  -   ",
                };
                println!("  [{mark}] {:<76} {}", t.name, t.measured);
            }
        }
        println!("(total {:.0} s)", self.total_secs);
    }

    pub fn json(&self) -> Value {
        let usage = |u: &crate::cpu::Usage| json!({ "clientPct": u.client_pct, "serverPct": u.server_pct, "databasePct": u.database_pct, "otherPct": u.other_pct });
        let raw = |v: &[(Alg, RawResult)]| -> Vec<Value> {
            v.iter()
                .map(|(alg, r)| {
                    json!({
                        "alg": alg.label(),
                        "threads": r.threads,
                        "hashesPerCall": r.batch,
                        "sigPerSec": r.sig_per_s,
                        "p50Ms": r.p50_ms,
                        "p99Ms": r.p99_ms,
                        "signatures": r.signatures,
                        "secs": r.secs,
                        "attempts": r.attempts,
                        "runsSigPerSec": r.runs,
                        "cpu": usage(&r.usage),
                    })
                })
                .collect()
        };
        let http: Vec<Value> = self
            .http
            .iter()
            .map(|r| {
                let base = self.baseline(r);
                let bare = self.bare_ratio(r);
                json!({
                    "alg": r.alg.label(),
                    "database": r.setup.label(),
                    "instances": r.setup.instances(),
                    "row": r.kind.id(),
                    "concurrency": r.conc,
                    "signaturesPerRequest": r.kind.signatures_per_op(),
                    "ops": r.result.ops,
                    "secs": r.result.secs,
                    "opsPerSec": r.result.ops_per_s,
                    "sigPerSec": r.result.sig_per_s,
                    "p50Ms": r.result.p50_ms,
                    "p99Ms": r.result.p99_ms,
                    "authorizeP50Ms": r.result.authorize_p50_ms,
                    "authorizeP99Ms": r.result.authorize_p99_ms,
                    "signHashP50Ms": r.result.sign_p50_ms,
                    "signHashP99Ms": r.result.sign_p99_ms,
                    "baseline": base.map(|b| b.0),
                    "baselineSigPerSec": base.map(|b| b.1),
                    "ratioToBaseline": base.map(|b| r.result.sig_per_s / b.1),
                    "bareConcurrency": bare.map(|b| b.1),
                    "bareSigPerSec": self.bare_of(r).map(|b| b.result.sig_per_s),
                    "ratioToBare": bare.map(|b| b.0),
                    "ratioToSqlite": self.sqlite_ratio(r),
                    "ratioToOneInstance": self.scaling(r),
                    "perInstanceOpsPerSec": r.result.per_instance_ops_per_s,
                    "runsOpsPerSec": r.result.runs,
                    "errors": r.result.errors,
                    "firstError": r.result.first_error,
                    "sadPoolExhausted": r.result.exhausted,
                    "attempts": r.result.attempts,
                    "cpu": usage(&r.result.usage),
                })
            })
            .collect();
        let scale: Vec<Value> = self
            .scale_pairs()
            .iter()
            .map(|(e, l)| {
                json!({
                    "alg": e.alg.label(),
                    "row": e.kind.id(),
                    "concurrency": e.conc,
                    "emptyOpsPerSec": e.result.ops_per_s,
                    "loadedOpsPerSec": l.result.ops_per_s,
                    "ratio": l.result.ops_per_s / e.result.ops_per_s.max(1e-9),
                    "emptyP99Ms": e.result.p99_ms,
                    "loadedP99Ms": l.result.p99_ms,
                })
            })
            .collect();
        let audit = |v: Option<(u64, f64)>| {
            v.map(|(n, s)| json!({ "records": n, "secs": s, "recordsPerSec": n as f64 / s.max(1e-9) }))
        };
        json!({
            "config": self.config,
            "environment": {
                "rustcProcessesAtStart": self.rustc_running_at_start,
                "rustcProcessesAtEnd": self.rustc_running_at_end,
            },
            "raw": raw(&self.raw),
            "rawAtEnd": raw(&self.raw_end),
            "http": http,
            "scale": scale,
            "populated": self.populated.as_ref().map(|p| json!({
                "users": p.users,
                "credentials": p.credentials,
                "auditRecords": p.audit_records,
                "credentialsSecs": p.credentials_secs,
                "auditSecs": p.audit_secs,
                "databaseBytes": p.db_bytes,
            })),
            "argon2": self.argon2.as_ref().map(|a| json!({
                "params": a.params,
                "meanMs": a.mean_ms,
                "minMs": a.min_ms,
                "twoThreadsPerSec": a.two_threads_per_s,
            })),
            "rowMac": self.mac.as_ref().map(|m| json!({
                "tokenPerSec": m.token_per_s,
                "memoryPerSec": m.memory_per_s,
                "ratio": m.memory_per_s / m.token_per_s.max(1e-9),
            })),
            "auditVerify": {
                "inProcess": audit(self.audit_in_process),
                "cli": audit(self.audit_cli),
            },
            "targets": self.targets().iter().map(|t| json!({
                "issue": t.issue, "target": t.name, "measured": t.measured, "met": t.met,
            })).collect::<Vec<_>>(),
            "totalSecs": self.total_secs,
        })
    }
}
