//! The server under test: the release `csc-server` binary as a child process, driven through
//! its public command contract (README "Commands"), exactly as an operator would.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

pub const USER: &str = "bench";
pub const PASSWORD: &str = "bench-password";
pub const PIN: &str = "123456";
/// The most signatures one SAD may carry (`sam::provision::MAX_MULTISIGN`).
pub const MULTISIGN: u32 = 1000;

/// How to run `csc-server`.
#[derive(Debug, Clone)]
pub struct ServerCmd {
    pub bin: PathBuf,
    /// A command the server is started under (e.g. `perf record -g --`), whitespace-split.
    pub prefix: Vec<String>,
    /// Extra environment for `serve` (e.g. `RUST_LOG=warn`).
    pub env: Vec<(String, String)>,
}

impl ServerCmd {
    /// `csc-server --data-dir DIR` with a clean environment: no CSC_* or SOFTHSM2_CONF of ours
    /// (this process points SOFTHSM2_CONF at its own token).
    fn command(&self, dir: &Path, with_prefix: bool) -> Command {
        let mut c = match (with_prefix, self.prefix.split_first()) {
            (true, Some((first, rest))) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.bin);
                c
            }
            _ => Command::new(&self.bin),
        };
        c.arg("--data-dir").arg(dir);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CSC_") || k == "SOFTHSM2_CONF" {
                c.env_remove(k);
            }
        }
        c
    }

    /// Runs a command to completion; its standard output is one JSON value.
    pub fn run_json(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let mut c = self.command(dir, false);
        c.args(args).env("RUST_LOG", "warn");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "csc-server {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "csc-server {}: stdout is not JSON: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// The audit seal file of the SQLite database at `db_url` (`…/csc.db` →
/// `…/csc.db-seals.jsonl`): each database of the data directory has its own chain, so its own
/// seals.
pub fn seal_file_for(db_url: &str) -> String {
    format!(
        "{}-seals.jsonl",
        db_url.strip_prefix("sqlite://").unwrap_or(db_url)
    )
}

/// One database of the data directory and the bench user's credentials in it.
#[derive(Debug, Clone)]
pub struct Database {
    pub url: String,
    /// The audit seal file of its chain (`CSC_AUDIT_SEAL_FILE`).
    pub seal_file: String,
    pub rsa_credential: String,
    pub ec_credential: String,
}

impl Database {
    /// The credential of `alg`.
    pub fn credential(&self, alg: crate::Alg) -> &str {
        match alg {
            crate::Alg::Rsa => &self.rsa_credential,
            crate::Alg::Ec => &self.ec_credential,
        }
    }

    /// The database's name when it is a PostgreSQL one (the last segment of its URL's path).
    pub fn postgres_name(&self) -> Option<String> {
        let rest = self
            .url
            .strip_prefix("postgresql://")
            .or_else(|| self.url.strip_prefix("postgres://"))?;
        let path = rest.split('?').next()?;
        path.rsplit_once('/').map(|(_, name)| name.to_owned())
    }

    /// `CSC_DATABASE_URL` and `CSC_AUDIT_SEAL_FILE` of every command run on it.
    fn env(&self) -> [(&str, &str); 2] {
        [
            ("CSC_DATABASE_URL", self.url.as_str()),
            ("CSC_AUDIT_SEAL_FILE", self.seal_file.as_str()),
        ]
    }
}

/// The data directory shared by every database (one token, one CA), and the databases the
/// CLI set up in it.
pub struct DataDir {
    pub dir: PathBuf,
    /// The default SQLite database (`csc.db`).
    pub empty: Database,
}

impl DataDir {
    /// The copy of `csc.db` that gets 100k credentials and 1M audit records (`loaded.db`): the
    /// same credentials.
    pub fn loaded(&self) -> Database {
        let url = format!("sqlite://{}", self.dir.join("loaded.db").display());
        Database {
            seal_file: seal_file_for(&url),
            url,
            ..self.empty.clone()
        }
    }

    /// Opens the data directory's token in this process (it shares the bench's token
    /// directory, see [`setup`]) with a pool of `max_sessions` sessions.
    pub fn open_token(&self, module: &Path, max_sessions: usize) -> anyhow::Result<cm_pkcs11::Hsm> {
        let pin = std::fs::read_to_string(self.dir.join("token.pin"))
            .context("cannot read the data directory's token PIN")?;
        let mut cfg = cm_pkcs11::HsmConfig::new(
            module,
            "csc-server",
            secrecy::SecretString::from(pin.trim_end().to_owned()),
        );
        cfg.max_sessions = max_sessions;
        cm_pkcs11::Hsm::open(&cfg).context("cannot open the data directory's token")
    }

    /// The integrity keys of the data directory's token (row MACs and the audit chain), as the
    /// server derives them: what the storage crate needs to write rows and audit records the
    /// server accepts. Call it before [`crate::raw::open_token`] loads the module.
    pub fn integrity_keys(&self, module: &Path) -> anyhow::Result<storage::IntegrityKeys> {
        let hsm = self.open_token(module, 1)?;
        Ok(sam::integrity::derive_keys(&hsm)?)
    }

    /// Copies the (closed) empty database to `loaded.db`.
    pub fn copy_to_loaded(&self) -> anyhow::Result<()> {
        for suffix in ["", "-wal", "-shm"] {
            let from = self.dir.join(format!("csc.db{suffix}"));
            let to = self.dir.join(format!("loaded.db{suffix}"));
            if from.exists() {
                std::fs::copy(&from, &to)
                    .with_context(|| format!("cannot copy {}", from.display()))?;
            } else if to.exists() {
                std::fs::remove_file(&to)?;
            }
        }
        Ok(())
    }

    /// `init` on the PostgreSQL database `url` with this data directory (its token, its CA:
    /// `init` is idempotent and finds them), then the same user and credentials as on SQLite
    /// (new keys in the same token). Its seal file is `pg-seals.jsonl`.
    pub fn setup_postgres(&self, cmd: &ServerCmd, url: &str) -> anyhow::Result<Database> {
        let seal_file = self.dir.join("pg-seals.jsonl").display().to_string();
        let env = [
            ("CSC_DATABASE_URL", url),
            ("CSC_AUDIT_SEAL_FILE", seal_file.as_str()),
        ];
        cmd.run_json(&self.dir, &["init"], &env)?;
        let (rsa_credential, ec_credential) = provision(cmd, &self.dir, &env)?;
        Ok(Database {
            url: url.to_owned(),
            seal_file,
            rsa_credential,
            ec_credential,
        })
    }
}

/// `init`, one signer, one RSA-2048 and one EC P-256 credential (SCAL 1, PIN, multisign
/// [`MULTISIGN`]) on the default SQLite database.
///
/// The data directory's token lives in the bench's own token directory (`softhsm_conf` in its
/// `config.toml`), so that this process can open it too ([`DataDir::open_token`]).
pub fn setup(
    cmd: &ServerCmd,
    dir: &Path,
    token: &crate::raw::BenchToken,
) -> anyhow::Result<DataDir> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conf = token.dir.path().join("softhsm2.conf");
    std::fs::write(
        dir.join("config.toml"),
        format!("softhsm_conf = {:?}\n", conf.display().to_string()),
    )?;
    let url = format!("sqlite://{}", dir.join("csc.db").display());
    let seal_file = seal_file_for(&url);
    let env = [
        ("CSC_DATABASE_URL", url.as_str()),
        ("CSC_AUDIT_SEAL_FILE", seal_file.as_str()),
    ];
    cmd.run_json(dir, &["init"], &env)?;
    let (rsa_credential, ec_credential) = provision(cmd, dir, &env)?;
    Ok(DataDir {
        dir: dir.to_path_buf(),
        empty: Database {
            url,
            seal_file,
            rsa_credential,
            ec_credential,
        },
    })
}

/// The bench user and its RSA-2048 and EC P-256 credentials, on the database `env` names.
fn provision(
    cmd: &ServerCmd,
    dir: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<(String, String)> {
    let with = |extra: (&'static str, &'static str)| {
        let mut all = env.to_vec();
        all.push(extra);
        all
    };
    cmd.run_json(
        dir,
        &["user", "add", USER],
        &with(("CSC_PASSWORD", PASSWORD)),
    )?;
    let multisign = MULTISIGN.to_string();
    let create = |key: &str| -> anyhow::Result<String> {
        let v = cmd.run_json(
            dir,
            &[
                "credential",
                "create",
                USER,
                "--key",
                key,
                "--multisign",
                &multisign,
            ],
            &with(("CSC_PIN", PIN)),
        )?;
        v.get("credentialID")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("credential create printed no credentialID")
    };
    Ok((create("rsa-2048")?, create("ec-p256")?))
}

/// A running `serve`; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    /// The pid of csc-server itself (differs from the child's when started under a prefix).
    pub pid: String,
    pub log: PathBuf,
}

impl Running {
    /// Starts `serve --listen 127.0.0.1:0` on `db` (with `env` besides) and waits for
    /// `listening on http://ADDR` in its log (standard error goes to a file, so draining it
    /// costs this process nothing).
    pub fn start(
        cmd: &ServerCmd,
        data: &DataDir,
        db: &Database,
        tag: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Running> {
        let log = data.dir.join(format!("serve-{tag}.log"));
        let err = File::create(&log)?;
        let mut c = cmd.command(&data.dir, true);
        c.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .envs(db.env())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        let child = c.spawn().context("cannot start csc-server serve")?;
        let mut running = Running {
            pid: child.id().to_string(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut text = String::new();
            File::open(&running.log)?.read_to_string(&mut text)?;
            // only whole lines: the server may be halfway through writing this one
            if let Some(addr) = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .find_map(|l| l.strip_prefix("listening on http://"))
            {
                running.addr = addr.trim().parse().context("bad listen address")?;
                break;
            }
            if let Some(status) = running.child.try_wait()? {
                bail!("csc-server serve exited ({status}):\n{text}");
            }
            if Instant::now() > deadline {
                bail!("csc-server serve did not print its address within 120 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !cmd.prefix.is_empty() {
            // the wrapper's child is the server
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", running.pid))
                    .unwrap_or_default();
            if let Some(first) = children.split_whitespace().next() {
                running.pid = first.to_owned();
            }
        }
        Ok(running)
    }

    /// SIGTERM to the server (so a wrapper such as `perf record` sees it exit and writes its
    /// data), then SIGKILL to the child after 20 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(&self.pid).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}
