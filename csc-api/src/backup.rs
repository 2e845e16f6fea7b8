//! `csc-server backup FILE` and `csc-server restore FILE` (JT2A Part I 7.1.7; README "Backups"): an
//! online backup of an SQLite data directory as one tar archive, and its restore into a fresh
//! data directory, refused when it would roll the audit log back behind the live seals.
//!
//! The archive (mode 0600) holds, in this order:
//!
//! * `manifest.json`: the format (`csc-server-backup/1`), when and by which version it was made,
//!   the copy's audit head and its seal (MACed under the audit key, so only the token could
//!   make it), the token label, and every other entry with its size and SHA-256;
//! * `csc.db`: a consistent online copy of the database (`sam::Sam::snapshot_database`:
//!   `VACUUM INTO`, see storage's `backup` module for why not the page-stepped backup API);
//! * `dev-ca.json`, `tsa.json`: the development CA's and the TSA's key ids and certificates;
//! * `config.toml` of the data directory, when there is one and it holds no `token_pin`;
//! * `softhsm-tokens/...`: the SoftHSM2 token files (keys are stored encrypted under the token
//!   PIN), when the module is SoftHSM2. With another HSM, the keys stay in that HSM.
//!
//! Never in it: the token PIN and SO PIN (`token.pin`, `token.so-pin`: with them and the
//! archive, anyone is the server), the seal file (kept apart from database backups: restored
//! together, an old database and its own old seals agree), the OTP outbox (live codes). The
//! operator's acts are audited: `backup.create` in the live log (written before the copy is
//! taken, so the copy holds it), `backup.restore` in the restored one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use sam::{AuditSeal, Sam};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::admin::{cli_actor, seal_now};
use crate::config::Config;

/// The archive format this version writes and reads.
pub const FORMAT: &str = "csc-server-backup/1";
const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "csc.db";
const TOKENS: &str = "softhsm-tokens";
const CONFIG: &str = "config.toml";
/// What a backup never holds, as the manifest says.
const EXCLUDED: [&str; 5] = [
    "token.pin",
    "token.so-pin",
    "audit-seals.jsonl (the seal file: keep it apart from backups)",
    "otp-outbox.log",
    "softhsm2.conf (written again by restore)",
];

/// One entry of the archive besides the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its name in the archive (`/`-separated, relative).
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// `manifest.json`, the archive's first entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub created_at: String,
    pub server_version: String,
    pub token_label: String,
    /// The seal of the copy's audit head: the last record the backup holds.
    pub audit_seal: AuditSeal,
    pub files: Vec<ManifestFile>,
    pub excluded: Vec<String>,
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    sha: openssl::sha::Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            sha: openssl::sha::Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.sha.finish()), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = buf.get(..n).unwrap_or(buf);
        self.sha.update(done);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 and size of a file, read in one pass.
fn file_digest(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Hashing::new(io::sink());
    io::copy(&mut f, &mut h)?;
    let (_, sha, len) = h.finish();
    Ok((sha, len))
}

/// Whether the database URL selects PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("postgres:") || lower.starts_with("postgresql:")
}

/// The file of an SQLite database URL (`sqlite://PATH`, `sqlite:PATH` or a plain path).
fn sqlite_path(url: &str) -> PathBuf {
    let url = url.trim();
    let rest = match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("sqlite:") => url.get(7..).unwrap_or(""),
        _ => url,
    };
    PathBuf::from(rest.strip_prefix("//").unwrap_or(rest))
}

/// The token directory named by a SoftHSM2 configuration file (`directories.tokendir`).
fn softhsm_tokendir(conf: &Path) -> anyhow::Result<Option<PathBuf>> {
    let text =
        fs::read_to_string(conf).with_context(|| format!("cannot read {}", conf.display()))?;
    Ok(text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "directories.tokendir").then(|| PathBuf::from(value.trim()))
    }))
}

/// Every regular file under `dir`, as (archive name under `prefix`, path), sorted.
fn files_under(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: a file name that is not UTF-8", entry.path().display());
        };
        let kind = entry.file_type()?;
        let archive_name = format!("{prefix}/{name}");
        if kind.is_dir() {
            out.extend(files_under(&entry.path(), &archive_name)?);
        } else if kind.is_file() {
            out.push((archive_name, entry.path()));
        }
    }
    Ok(out)
}

/// Removes a partial file or directory on drop unless disarmed.
struct Partial(Option<PathBuf>);

impl Partial {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn fsync_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

fn tar_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// `csc-server backup FILE`: writes the archive (module doc) while `serve` may keep running,
/// audited as `backup.create` in the live log first, so that the copy holds that record too.
/// Refused for PostgreSQL (README "Backups": `pg_dump`) and when FILE exists.
pub fn backup(cfg: &Config, sam: &Sam, file: &Path) -> anyhow::Result<Value> {
    if is_postgres(&cfg.database_url) {
        bail!(
            "the database is PostgreSQL: back it up with pg_dump (README \"Backups\"); \
             `csc-server backup` copies SQLite databases"
        );
    }
    if file.exists() {
        bail!("{} already exists: give a new file", file.display());
    }
    // 0. the record first (write-ahead), so that the copy holds it: a backup of a stopped
    //    server then ends at the live head, and restores without a rollback
    sam.record_backup(
        &file.display().to_string(),
        json!({ "format": FORMAT, "dataDir": cfg.data_dir.display().to_string() }),
        &cli_actor(sam::Action::Backup),
    )?;
    // 1. the database: before the token, as a key the token gains afterwards is an orphan in
    //    the copy, while a token copied first could lack a key the database copy names
    let snapshot = with_suffix(file, ".db.partial");
    let mut snapshot_guard = Partial(Some(snapshot.clone()));
    let seal = sam
        .snapshot_database(&snapshot)
        .context("cannot copy the database")?;
    // 2. the data directory's other files
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, path) in [("dev-ca.json", cfg.ca_file()), ("tsa.json", cfg.tsa_file())] {
        if path.exists() {
            small.push((name.to_owned(), fs::read(&path)?));
        }
    }
    let mut excluded: Vec<String> = EXCLUDED.iter().map(|s| (*s).to_owned()).collect();
    let config_file = cfg.data_dir.join(CONFIG);
    if config_file.exists() {
        use figment::providers::Format;
        let holds_pin = figment::Figment::from(figment::providers::Toml::file(&config_file))
            .find_value("token_pin")
            .is_ok();
        if holds_pin {
            excluded.push("config.toml (it holds token_pin)".to_owned());
        } else {
            small.push((CONFIG.to_owned(), fs::read(&config_file)?));
        }
    }
    if let Some(conf) = &cfg.softhsm_conf
        && let Some(tokendir) = softhsm_tokendir(conf)?
    {
        for (name, path) in files_under(&tokendir, TOKENS)? {
            small.push((name, fs::read(&path)?));
        }
    }
    // 3. the manifest, then the archive
    let (db_sha, db_size) = file_digest(&snapshot)?;
    let mut files = vec![ManifestFile {
        path: DATABASE.to_owned(),
        size: db_size,
        sha256: db_sha,
    }];
    files.extend(small.iter().map(|(name, bytes)| ManifestFile {
        path: name.clone(),
        size: bytes.len() as u64,
        sha256: hex(&openssl::sha::sha256(bytes)),
    }));
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        created_at: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        token_label: cfg.token_label.clone(),
        audit_seal: seal.clone(),
        files,
        excluded,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let partial = with_suffix(file, ".partial");
    let mut partial_guard = Partial(Some(partial.clone()));
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut tar = tar::Builder::new(Hashing::new(out));
    tar.append_data(
        &mut tar_header(manifest_bytes.len() as u64),
        MANIFEST,
        manifest_bytes.as_slice(),
    )?;
    tar.append_data(&mut tar_header(db_size), DATABASE, File::open(&snapshot)?)?;
    for (name, bytes) in &small {
        tar.append_data(&mut tar_header(bytes.len() as u64), name, bytes.as_slice())?;
    }
    let (out, archive_sha, _) = tar.into_inner()?.finish();
    out.sync_all()?;
    drop(out);
    fs::rename(&partial, file)
        .with_context(|| format!("cannot move the archive to {}", file.display()))?;
    partial_guard.disarm();
    fsync_parent(file)?;
    drop(snapshot_guard.0.take().map(fs::remove_file));
    snapshot_guard.disarm();
    let names: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let head = json!({ "seq": seal.seq, "hash": seal.hash });
    Ok(json!({
        "backup": file.display().to_string(),
        "format": FORMAT,
        "sha256": archive_sha,
        "auditHead": head,
        "files": names,
        "excluded": manifest.excluded,
    }))
}

/// What [`restore_files`] did, for [`finish_restore`].
pub struct Restored {
    archive: PathBuf,
    manifest: Manifest,
    /// The live seal the backup fell behind (restored with `--allow-rollback`).
    live_sealed: Option<i64>,
    /// With `--allow-rollback`: where the seal file that the backup rolls back was moved.
    moved_seals: Option<PathBuf>,
    allow_rollback: bool,
    notes: Vec<String>,
}

/// Why a name from an archive cannot be written below a directory.
fn safe_relative(name: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(name);
    if name.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("the archive holds an entry with an unsafe name: {name:?}");
    }
    Ok(path)
}

/// The files part of `csc-server restore FILE [--allow-rollback]`, before the token is opened
/// (it may come from the archive): checks that the data directory is fresh, that the token PIN
/// is at hand, and that the backup does not roll the audit log back behind the configured seal
/// file (unless `allow_rollback`: then that seal file is moved aside, named in the output);
/// then unpacks every entry, each checked against the manifest's SHA-256, into place.
pub fn restore_files(
    cfg: &Config,
    archive: &Path,
    allow_rollback: bool,
) -> anyhow::Result<Restored> {
    if is_postgres(&cfg.database_url) {
        bail!(
            "the database is PostgreSQL: restore it with pg_restore (README \"Backups\"); \
             `csc-server restore` restores SQLite backups"
        );
    }
    let db_path = sqlite_path(&cfg.database_url);
    let tokens_dir = cfg.data_dir.join(TOKENS);
    let tokens_in_use = fs::read_dir(&tokens_dir).is_ok_and(|mut d| d.next().is_some());
    for taken in [&db_path, &cfg.ca_file(), &cfg.tsa_file()] {
        if taken.exists() {
            bail!(
                "{} exists: restore writes only into a fresh data directory",
                taken.display()
            );
        }
    }
    if tokens_in_use {
        bail!(
            "{} is not empty: restore writes only into a fresh data directory",
            tokens_dir.display()
        );
    }
    cfg.read_token_pin().context(
        "restore opens the token: put its PIN in place first (the backup never holds it)",
    )?;
    let mut tar = tar::Archive::new(
        File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?,
    );
    let mut entries = tar.entries()?;
    let manifest: Manifest = match entries.next() {
        Some(first) => {
            let mut first = first?;
            if first.path()?.to_str() != Some(MANIFEST) {
                bail!("{} is not a csc-server backup", archive.display());
            }
            let mut bytes = Vec::new();
            first.read_to_end(&mut bytes)?;
            serde_json::from_slice(&bytes).context("the backup's manifest is damaged")?
        }
        None => bail!("{} is empty", archive.display()),
    };
    if manifest.format != FORMAT {
        bail!(
            "{} is a backup of format {:?}; this version restores {FORMAT:?}",
            archive.display(),
            manifest.format
        );
    }
    // the rollback check, before anything is written
    let backup_seq = manifest.audit_seal.seq;
    let seal_file = &cfg.audit_seal_file;
    let live = if seal_file.exists() {
        sam::rollback_behind_seals(seal_file, &manifest.audit_seal)?
    } else {
        None
    };
    let mut rolls_back = false;
    if let Some(ahead) = &live {
        let problem = if ahead.diverged {
            format!(
                "the backup's audit record {backup_seq} is not the record sealed on line {} of {}",
                ahead.line,
                seal_file.display()
            )
        } else {
            format!(
                "the backup ends at audit record {backup_seq}, older than record {} sealed on \
                 line {} of {}",
                ahead.seq,
                ahead.line,
                seal_file.display()
            )
        };
        if !allow_rollback {
            bail!(
                "{problem}: restoring it would roll the audit log back (pass \
                 --allow-rollback to restore it anyway)"
            );
        }
        rolls_back = true;
    }
    // unpack into a staging directory, checking each entry, then move into place
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    let staging = cfg.data_dir.join(".restore-partial");
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    let mut staging_guard = Partial(Some(staging.clone()));
    fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let mut seen = Vec::new();
    for entry in entries {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("the archive holds a name that is not UTF-8"))?;
        let Some(expected) = manifest.files.iter().find(|f| f.path == name) else {
            bail!("the archive holds {name:?}, which its manifest does not list");
        };
        let relative = safe_relative(&name)?;
        let dest = staging.join(&relative);
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        let mut h = Hashing::new(out);
        io::copy(&mut entry, &mut h)?;
        let (out, sha, size) = h.finish();
        out.sync_all()?;
        if sha != expected.sha256 || size != expected.size {
            bail!("{name} in the archive does not match its manifest: the backup is damaged");
        }
        seen.push(name);
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.path)) {
        bail!(
            "the archive lacks {}, which its manifest lists: the backup is truncated",
            missing.path
        );
    }
    let mut notes = Vec::new();
    let place = |from: &Path, to: &Path| -> anyhow::Result<()> {
        if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        fs::rename(from, to).with_context(|| format!("cannot move to {}", to.display()))
    };
    place(&staging.join(DATABASE), &db_path)?;
    for (name, to) in [("dev-ca.json", cfg.ca_file()), ("tsa.json", cfg.tsa_file())] {
        if staging.join(name).exists() {
            place(&staging.join(name), &to)?;
        }
    }
    let config_file = cfg.data_dir.join(CONFIG);
    if staging.join(CONFIG).exists() {
        if config_file.exists() {
            notes.push(format!(
                "{} kept; the backup's config.toml was not restored",
                config_file.display()
            ));
        } else {
            place(&staging.join(CONFIG), &config_file)?;
        }
    }
    if staging.join(TOKENS).exists() {
        if cfg.softhsm_conf.is_some() {
            if tokens_dir.exists() {
                fs::remove_dir(&tokens_dir)?;
            }
            place(&staging.join(TOKENS), &tokens_dir)?;
        } else {
            notes.push(
                "the backup's SoftHSM2 token files were not restored: the configured module is \
                 not SoftHSM2"
                    .to_owned(),
            );
        }
    }
    fs::remove_dir_all(&staging)?;
    staging_guard.disarm();
    if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    File::open(&cfg.data_dir)?.sync_all()?;
    // the seal file: a rolled-back one is moved aside (kept, for the incident record); the
    // backup's own seal starts the new one, so `audit verify` checks the restored head at once
    let moved_seals = if rolls_back {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let aside = with_suffix(seal_file, &format!(".rolled-back-{stamp}"));
        fs::rename(seal_file, &aside)
            .with_context(|| format!("cannot move {} aside", seal_file.display()))?;
        Some(aside)
    } else {
        None
    };
    let mut seals = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(seal_file)
        .with_context(|| format!("cannot open {}", seal_file.display()))?;
    let mut line = serde_json::to_vec(&manifest.audit_seal)?;
    line.push(b'\n');
    seals.write_all(&line)?;
    seals.sync_all()?;
    Ok(Restored {
        archive: archive.to_path_buf(),
        manifest,
        live_sealed: live.map(|ahead| ahead.seq),
        moved_seals,
        allow_rollback,
        notes,
    })
}

/// The rest of `csc-server restore`, on the restored data directory (configuration loaded
/// again, SoftHSM2 pointed at the restored token): audits `backup.restore` in the restored log,
/// seals it, and verifies the whole audit log against the seal file. `Ok((intact, report))`.
pub fn finish_restore(cfg: &Config, restored: Restored) -> anyhow::Result<(bool, Value)> {
    let sam = crate::admin::open(cfg)?;
    let mut sealer = sam
        .audit_sealer_from_now(&cfg.audit_seal_file)
        .context("cannot open the audit seal file")?;
    let m = &restored.manifest;
    let archive = restored.archive.display().to_string();
    let moved = restored
        .moved_seals
        .as_ref()
        .map(|p| p.display().to_string());
    sam.record_restore(
        &archive,
        json!({
            "backupCreatedAt": m.created_at,
            "auditHead": { "seq": m.audit_seal.seq, "hash": m.audit_seal.hash },
            "allowRollback": restored.allow_rollback,
            "rolledBack": moved.is_some(),
            "liveSealedRecord": restored.live_sealed,
            "sealsMovedTo": moved,
        }),
        &cli_actor(sam::Action::Restore),
    )?;
    seal_now(&mut sealer);
    let files = crate::admin::seal_files(cfg, Vec::new());
    let (intact, audit) = crate::admin::audit_verify(&sam, &files)?;
    Ok((
        intact,
        json!({
            "restored": archive,
            "dataDir": cfg.data_dir.display().to_string(),
            "backupCreatedAt": m.created_at,
            "auditHead": { "seq": m.audit_seal.seq, "hash": m.audit_seal.hash },
            "rolledBack": moved.is_some(),
            "sealsMovedTo": moved,
            "files": m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            "notes": restored.notes,
            "audit": audit,
        }),
    ))
}
