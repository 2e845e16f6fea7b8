//! CPU accounting from `/proc`: how much of the box the load generator, the server and
//! everything else used while a row was measured. On 2 cores the client competes with the
//! server, and other engineers' compilers compete with both, so every row says so.

use std::collections::HashMap;
use std::time::Instant;

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on every Linux we know).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Number of CPUs the kernel reports.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// user + system ticks of a process (all its threads), or 0 if it is gone.
pub fn process_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // the command name may contain spaces and parentheses: fields start after the last ')'
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// Busy ticks of the whole machine (all CPUs, everything but idle and iowait).
pub fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum(); // user nice system idle iowait irq softirq steal
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle)
}

/// What a row counts as "the server" in its CPU accounting: `csc-server` processes, or the
/// threads of this process that serve the bare baseline (their time is then taken out of the
/// client's, which is the rest of this process).
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// `/proc` entries: process ids, or `self/task/TID` for threads of this process.
    pub procs: Vec<String>,
    /// The entries are threads of this process.
    pub in_process: bool,
    /// The PostgreSQL database the server uses: the backends serving it (found by their
    /// process title, `postgres: USER DATABASE ...`) are counted as the database's CPU, not as
    /// other processes'.
    pub database: Option<String>,
}

impl Watched {
    /// Server processes, by pid.
    pub fn processes(pids: impl IntoIterator<Item = String>) -> Watched {
        Watched {
            procs: pids.into_iter().collect(),
            in_process: false,
            database: None,
        }
    }

    /// Threads of this process, by thread id.
    pub fn threads(tids: impl IntoIterator<Item = String>) -> Watched {
        Watched {
            procs: tids.into_iter().map(|t| format!("self/task/{t}")).collect(),
            in_process: true,
            database: None,
        }
    }

    fn ticks(&self) -> u64 {
        self.procs.iter().map(|p| process_ticks(p)).sum()
    }

    /// The `perf record` arguments that attach to it: `-p PID,...` or `-t TID,...`.
    pub fn perf_target(&self) -> [String; 2] {
        let ids: Vec<&str> = self
            .procs
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .collect();
        [
            if self.in_process { "-t" } else { "-p" }.to_owned(),
            ids.join(","),
        ]
    }
}

/// The PostgreSQL backends serving `database` (on this machine) and their ticks.
fn database_backends(database: &str) -> HashMap<String, u64> {
    let wanted = format!(" {database} ");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let title = String::from_utf8_lossy(&c);
                title.starts_with("postgres: ") && title.contains(&wanted)
            })
        })
        .map(|pid| {
            let t = process_ticks(&pid);
            (pid, t)
        })
        .collect()
}

/// A point-in-time reading.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    client: u64,
    server: u64,
    /// Ticks of each database backend.
    database: HashMap<String, u64>,
    machine: u64,
}

impl Sample {
    pub fn take(server: Option<&Watched>) -> Sample {
        let own = process_ticks("self");
        let server_ticks = server.map_or(0, Watched::ticks);
        let in_process = server.is_some_and(|w| w.in_process);
        Sample {
            at: Instant::now(),
            client: if in_process {
                own.saturating_sub(server_ticks)
            } else {
                own
            },
            server: server_ticks,
            database: server
                .and_then(|w| w.database.as_deref())
                .map(database_backends)
                .unwrap_or_default(),
            machine: machine_busy_ticks(),
        }
    }
}

/// CPU used between two samples, in percent of ONE core (so 200 % is the whole 2-core box).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub client_pct: f64,
    pub server_pct: f64,
    /// The PostgreSQL backends serving the server's database (0 on SQLite, which runs inside
    /// the server).
    pub database_pct: f64,
    /// Everything else on the machine (other engineers' builds, the kernel's own work).
    pub other_pct: f64,
}

impl Usage {
    pub fn between(a: &Sample, b: &Sample, ticks_per_sec: f64) -> Usage {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let pct = |t: u64| t as f64 / ticks_per_sec / secs * 100.0;
        let client = b.client.saturating_sub(a.client);
        let server = b.server.saturating_sub(a.server);
        let machine = b.machine.saturating_sub(a.machine);
        // a backend that started between the samples did all its work in between
        let database: u64 = b
            .database
            .iter()
            .map(|(pid, t)| t.saturating_sub(a.database.get(pid).copied().unwrap_or(0)))
            .sum();
        Usage {
            client_pct: pct(client),
            server_pct: pct(server),
            database_pct: pct(database),
            other_pct: pct(machine.saturating_sub(client + server + database)),
        }
    }
}

/// Waits (at most `max_wait`) for a 1-second window in which processes other than this one
/// and `server` use at most `max_other` % of a core; returns whether it came.
pub fn wait_quiet(
    server: Option<&Watched>,
    max_other: f64,
    ticks: f64,
    max_wait: std::time::Duration,
) -> bool {
    let deadline = Instant::now() + max_wait;
    loop {
        let a = Sample::take(server);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let b = Sample::take(server);
        if Usage::between(&a, &b, ticks).other_pct <= max_other {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// Measures with `attempt(n)` (n = 0, 1, ...) and measures again, up to `timing.retries`
/// times, while other processes took more than `timing.max_other` % of a core (as `usage` of
/// the result says), waiting (up to a minute) for the machine to go quiet before each retry
/// rather than retrying into the disturbance. Keeps the least disturbed attempt.
pub fn least_disturbed<T>(
    timing: &crate::Timing,
    server: Option<&Watched>,
    usage: impl Fn(&T) -> &Usage,
    mut attempt: impl FnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut best: Option<T> = None;
    for n in 0..=timing.retries {
        if n > 0 {
            wait_quiet(
                server,
                timing.max_other,
                timing.ticks,
                std::time::Duration::from_secs(60),
            );
        }
        let r = attempt(n)?;
        let other = usage(&r).other_pct;
        if best.as_ref().is_none_or(|b| other < usage(b).other_pct) {
            best = Some(r);
        }
        if other <= timing.max_other {
            break;
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("no attempt was made"))
}
