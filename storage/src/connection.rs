//! Connections, the pool, migrations and transactions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::declared::DeclaredRows;
use crate::error::StorageError;
use crate::group::{Declared, Grouped, Pending, Reply, Task, Writer, WriterGate};
use crate::integrity::{IntegrityKeys, Violation, Violations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating, so that several instances starting
/// at once do not race on the schema.
const PG_MIGRATION_LOCK: i64 = 0x6373_635f_6d69_6772; // "csc_migr"

/// A connection to either backend.
///
/// The derived `Connection::establish` tries each variant in turn and hides the errors, so it is
/// never used: [`Store`] picks the backend from the URL scheme and establishes the concrete
/// connection itself.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    /// PostgreSQL, for several server instances sharing one database.
    Postgresql(PgConnection),
    /// SQLite, the embedded default (one file, WAL mode).
    Sqlite(SqliteConnection),
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Tuning knobs of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Maximum number of pooled connections (default 8).
    pub pool_size: u32,
    /// How long to wait for a pooled connection before failing (default 30 s).
    pub connection_timeout: Duration,
    /// SQLite only: how long a writer waits for the write lock before failing with
    /// "database is locked" (default 5 s, `PRAGMA busy_timeout`).
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 8,
            connection_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Where a URL points.
#[derive(Clone)]
enum Target {
    Postgres(String),
    Sqlite(PathBuf),
}

/// Parses a database URL: `postgres://…` / `postgresql://…` select PostgreSQL; `sqlite://PATH`,
/// `sqlite:PATH` or a plain path select SQLite. Error messages never repeat the URL (it may hold a
/// password).
fn parse_url(url: &str) -> Result<Target, StorageError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StorageError::InvalidUrl("the database URL is empty".into()));
    }
    let lower_scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    let path = match lower_scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            return Ok(Target::Postgres(without_gss_by_default(url)));
        }
        Some("sqlite") => {
            let rest = &url["sqlite:".len()..];
            rest.strip_prefix("//").unwrap_or(rest)
        }
        Some(scheme) if url.contains("://") => {
            return Err(StorageError::InvalidUrl(format!(
                "unsupported scheme {scheme:?}: use postgres://, postgresql://, sqlite:// or a file path"
            )));
        }
        _ => url,
    };
    if path.is_empty() {
        return Err(StorageError::InvalidUrl(
            "the SQLite URL names no file".into(),
        ));
    }
    if path == ":memory:" || path.starts_with("file:") {
        return Err(StorageError::InvalidUrl(
            "SQLite in-memory databases and file: URIs are not supported; give a file path".into(),
        ));
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// Adds `gssencmode=disable` to a PostgreSQL URL that does not choose a GSS mode itself.
///
/// libpq built with GSSAPI (Debian's is) otherwise initialises Kerberos on every connect
/// (`gssencmode=prefer`), and Kerberos' library destructor races threads that still hold a
/// connection at process exit: CI saw a test process abort in `k5_mutex_lock` after its test
/// passed. Operators who do use GSS encryption say so in the URL (`gssencmode=prefer|require`)
/// and are left alone.
fn without_gss_by_default(url: &str) -> String {
    if url.to_ascii_lowercase().contains("gssencmode=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}gssencmode=disable")
}

/// The r2d2 connection manager: establishes the concrete connection for the URL's backend and
/// applies the SQLite connection settings.
pub(crate) struct Manager {
    target: Target,
    create: bool,
    busy_timeout_ms: u128,
    /// Statements sent by the connections this manager made ([`Store::statements`]).
    statements: Arc<AtomicU64>,
}

/// Counts the statements a connection sends (diesel's instrumentation: one `StartQuery` per
/// query or simple-query string, so statements sent together in one string count once).
struct StatementCount(Arc<AtomicU64>);

thread_local! {
    /// Statements this thread has sent, on any connection ([`sent_here`]).
    static SENT_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Statements this thread has sent so far: a batch compares it before and after a declared
/// job to learn whether the job sent any of its own (crate::declared).
pub(crate) fn sent_here() -> u64 {
    SENT_HERE.get()
}

impl diesel::connection::Instrumentation for StatementCount {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
            SENT_HERE.set(SENT_HERE.get().wrapping_add(1));
            self.0.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("csc_db_statements_total").increment(1);
        }
    }
}

impl Manager {
    fn establish_sqlite(&self, path: &Path) -> Result<SqliteConnection, StorageError> {
        if !self.create && !path.exists() {
            return Err(StorageError::Connection(format!(
                "SQLite database file {} does not exist (create it with `open_or_create`, or check the path)",
                path.display()
            )));
        }
        if self.create
            && let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            return Err(StorageError::Connection(format!(
                "directory {} for the SQLite database does not exist",
                parent.display()
            )));
        }
        let path_str = path
            .to_str()
            .ok_or_else(|| StorageError::InvalidUrl("the SQLite path is not valid UTF-8".into()))?;
        let mut conn = SqliteConnection::establish(path_str)?;
        // busy_timeout first, so that switching to WAL waits for a concurrent writer.
        // synchronous = FULL: a commit returns only once the WAL is fsynced, so an audit record
        // that was committed survives a power cut (durability is not traded for speed;
        // group commit amortises the fsync, see `Store::write_grouped`).
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        ))
        .map_err(|e| StorageError::Connection(format!("SQLite connection setup failed: {e}")))?;
        Ok(conn)
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = StorageError;

    fn connect(&self) -> Result<AnyConnection, StorageError> {
        let count = StatementCount(Arc::clone(&self.statements));
        match &self.target {
            Target::Postgres(url) => {
                let mut pg = PgConnection::establish(url)?;
                pg.set_instrumentation(count);
                Ok(AnyConnection::Postgresql(pg))
            }
            Target::Sqlite(path) => {
                let mut sqlite = self.establish_sqlite(path)?;
                sqlite.set_instrumentation(count);
                Ok(AnyConnection::Sqlite(sqlite))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), StorageError> {
        conn.ping().map_err(StorageError::from)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        // A panic inside `write` leaves a transaction open: never hand such a connection out.
        std::thread::panicking() || conn.is_broken()
    }
}

/// Handle to the database: a pool of connections to one backend. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    core: Core,
    backend: Backend,
    gate: Arc<WriterGate>,
    writer: Arc<Writer>,
}

/// What a transaction needs, shared with the writer threads (which hold no [`Store`], so the
/// last store dropped ends them).
#[derive(Clone)]
struct Core {
    pool: Pool<Manager>,
    keys: Option<IntegrityKeys>,
    violations: Violations,
    epoch: Arc<AtomicU64>,
    /// What the pool's connections count ([`Store::statements`]).
    statements: Arc<AtomicU64>,
}

impl Core {
    fn conn<'a>(&'a self, c: &'a mut AnyConnection) -> Conn<'a> {
        Conn {
            conn: c,
            keys: self.keys.as_ref(),
            violations: &self.violations,
            epoch: &self.epoch,
            sad_batch: None,
            row_batch: None,
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Runs `f`, then moves the epoch again if it moved while `f` ran (a change that was
    /// noted inside a transaction is moved past once that transaction is over).
    fn settling<T>(&self, f: impl FnOnce() -> T) -> T {
        let before = self.epoch();
        let out = f();
        if self.epoch() != before {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        out
    }

    /// [`Store::write`] without the writer lock; `head_first`: see [`write_transaction_as`].
    fn write<T>(
        &self,
        head_first: bool,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut pooled = self.pool.get()?;
        self.settling(|| write_transaction_as(&mut pooled, head_first, |c| f(&mut self.conn(c))))
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("pool_size", &self.core.pool.max_size())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens an existing database and applies pending migrations.
    ///
    /// `url` is `postgres://…` / `postgresql://…` for PostgreSQL, or `sqlite://PATH`,
    /// `sqlite:PATH` or a plain path for SQLite. A missing SQLite file is refused (so a typo
    /// cannot silently start an empty database); use [`Store::open_or_create`] to create it.
    pub fn open(url: &str, opts: StoreOptions) -> Result<Store, StorageError> {
        Self::open_inner(url, opts, false)
    }

    /// Like [`Store::open`], but creates a missing SQLite file (its directory must exist).
    /// For PostgreSQL the database itself must already exist; the schema is created.
    pub fn open_or_create(url: &str, opts: StoreOptions) -> Result<Store, StorageError> {
        Self::open_inner(url, opts, true)
    }

    fn open_inner(url: &str, opts: StoreOptions, create: bool) -> Result<Store, StorageError> {
        let target = parse_url(url)?;
        let backend = match target {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(_) => Backend::Sqlite,
        };
        let manager = Manager {
            target,
            create,
            busy_timeout_ms: opts.busy_timeout.as_millis(),
            statements: Arc::default(),
        };
        let statements = Arc::clone(&manager.statements);
        // One direct connection first: a clear error if the database is unreachable, and the
        // migrations run before the pool hands out connections.
        let mut conn = manager.connect()?;
        let applied = run_migrations(&mut conn)?;
        drop(conn);

        let pool = Pool::builder()
            .max_size(opts.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(opts.connection_timeout)
            // A local SQLite file does not go away; a PostgreSQL server may restart.
            .test_on_check_out(backend == Backend::Postgres)
            .build(manager)?;
        tracing::info!(%backend, pool_size = pool.max_size(), migrations_applied = applied, "database opened");
        // One writer thread drains the group commit, on either backend: async callers queue
        // their jobs and await them, so they need no thread of their own (crate::group).
        Ok(Store {
            core: Core {
                pool,
                keys: None,
                violations: Violations::default(),
                epoch: Arc::default(),
                statements,
            },
            backend,
            gate: Arc::default(),
            writer: Arc::new(Writer::spawn()?),
        })
    }

    /// This store with the integrity keys that seal and check its security-relevant rows
    /// ([`crate::integrity`]). Without them every such read or write fails with
    /// [`StorageError::NoIntegrityKeys`].
    pub fn with_keys(mut self, keys: IntegrityKeys) -> Store {
        self.core.keys = Some(keys);
        self
    }

    /// The rows found with a MAC that does not verify since the last call (each was treated
    /// as absent). The SAM audits them as `integrity.violation`.
    pub fn take_violations(&self) -> Vec<Violation> {
        self.core.violations.take()
    }

    /// Whether [`Store::take_violations`] has something to give (cheap: one mutex).
    pub fn has_violations(&self) -> bool {
        self.core.violations.any()
    }

    fn conn<'a>(&'a self, c: &'a mut AnyConnection) -> Conn<'a> {
        self.core.conn(c)
    }

    /// The change epoch of this store: it moves whenever this process changes a user,
    /// credential or token row, or deletes a credential, once while
    /// the change's transaction runs and once more after it ends. A cache of rows read at
    /// epoch `e` is current for this process's changes while the epoch is still `e`: read the
    /// epoch BEFORE reading the rows. Changes by other processes (the CLI, other instances
    /// on PostgreSQL) do not move it.
    pub fn epoch(&self) -> u64 {
        self.core.epoch()
    }

    fn settling<T>(&self, f: impl FnOnce() -> T) -> T {
        self.core.settling(f)
    }

    /// A pooled connection, waiting at most `wait` for one ([`Store::ping`]).
    pub(crate) fn pool_get(
        &self,
        wait: std::time::Duration,
    ) -> Result<diesel::r2d2::PooledConnection<Manager>, StorageError> {
        Ok(self.core.pool.get_timeout(wait)?)
    }

    /// The backend chosen by the URL.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` on a pooled connection, without an enclosing transaction. BLOCKING.
    ///
    /// Each statement sees committed data. Mutating methods called here still run atomically
    /// (each in its own transaction); use [`Store::write`] to group several.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut pooled = self.core.pool.get()?;
        self.settling(|| f(&mut self.conn(&mut pooled)))
    }

    /// Runs `f` in one transaction, committed only if `f` returns `Ok`. BLOCKING.
    ///
    /// On SQLite the transaction is `BEGIN IMMEDIATE`: it takes the database write lock at once,
    /// so concurrent writers queue on `busy_timeout` instead of failing with `SQLITE_BUSY` when a
    /// read transaction tries to upgrade. On PostgreSQL it is a `READ COMMITTED` transaction;
    /// the repository methods lock what they change (conditional updates, `FOR UPDATE`).
    ///
    /// [`Conn::append_audit`] serialises every writer on the audit head until commit: call it
    /// last in the transaction (on PostgreSQL the head is locked first anyway, see below).
    ///
    /// When a repository method fails inside `f`, return its error: on PostgreSQL a failed
    /// statement aborts the whole transaction, so carrying on is not portable.
    ///
    /// On SQLite, writers of this process queue on one in-process lock (shared with the group
    /// commit of [`Store::write_grouped`]) rather than in SQLite's busy handler. On PostgreSQL
    /// the transaction's first statement locks the audit head row, as a group-commit batch's
    /// does, so writes and batches of every instance serialise from their start and never wait
    /// for each other's row locks in a cycle ([`crate::group`]); a write nested in another on
    /// the same thread does not (it would wait for itself).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if self.backend == Backend::Sqlite {
            let _writer = self.gate.enter();
            return self.core.write(false, f);
        }
        let writer = self.gate.mark();
        // the audit head first, as a batch takes it: no lock-order cycle (crate::group)
        self.core.write(writer.is_outermost(), f)
    }

    /// `(transactions, jobs)` that [`Store::write_grouped`] and [`Store::write_grouped_async`]
    /// have run since this store was opened: jobs per transaction is the group-commit factor.
    pub fn group_commit_stats(&self) -> (u64, u64) {
        self.gate.stats()
    }

    /// Statements this store's connections have sent since it was opened, each query or
    /// simple-query string counted once: on PostgreSQL, the round trips to the server.
    pub fn statements(&self) -> u64 {
        self.core.statements.load(Ordering::Relaxed)
    }

    /// Runs `job` in a write transaction, possibly shared with jobs of other threads (group
    /// commit), and appends the audit events it returns after it in the same transaction; its
    /// value is returned only once that transaction is committed (fsynced on SQLite). BLOCKING.
    ///
    /// The job runs in its own savepoint: if it returns `Err`, only its own statements are
    /// undone, its events are dropped and the error is returned to this caller alone. If the
    /// shared commit fails, every job of the batch gets [`StorageError::Commit`].
    ///
    /// For the hot path (signHash, authorize): one commit (one fsync on SQLite, one round trip
    /// and WAL flush on PostgreSQL) serves every writer that queued during the previous one.
    /// The job runs on the store's writer thread, hence `'static`; a caller that holds the
    /// writer lock ([`Store::write`]) is refused ([`StorageError::Commit`]) instead of waiting
    /// for itself.
    pub fn write_grouped<T, F>(&self, job: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        if WriterGate::held_here() {
            return Err(StorageError::Commit(
                "a grouped write inside a write transaction would wait for itself".into(),
            ));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.queue(Box::new(Pending {
            job,
            declared: Declared::Nothing,
            reply: Reply::Blocking(tx),
        }));
        rx.recv().unwrap_or_else(|_| Err(writer_stopped()))
    }

    /// [`Store::write_grouped`] for an async caller: the job is queued NOW (at the call, not at
    /// the first poll), and the future completes once the transaction holding it is settled,
    /// without blocking the thread that awaits it. The store's writer thread runs it in a group
    /// commit, on either backend.
    ///
    /// Dropping the future does not withdraw the job: it runs and commits (or rolls back) all
    /// the same, with its audit events; only its outcome is lost.
    pub fn write_grouped_async<T, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        self.queue_async(Declared::Nothing, job)
    }

    /// [`Store::write_grouped_declared_async`] in two stages ([`Store::write_grouped_staged`]):
    /// a key activation verifies its factors once its failure slots are reserved, while the
    /// batch holding the reservation commits, and sends no verdict before it is durable.
    pub fn write_grouped_declared_staged<T, F>(&self, rows: DeclaredRows, job: F) -> Staged<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        self.queue_staged(Declared::Rows(rows), job)
    }

    /// [`Store::write_grouped_async`] for a key activation's job, which reads and changes the
    /// factor rows of `rows.factors_of`, reads the credentials of `rows.credentials` under
    /// lock and may issue SADs, only with [`Conn::factor`], the lockout steps,
    /// [`Conn::advance_otp_step`], [`Conn::credential_for_update`] and [`Conn::insert_sad`],
    /// and should send no statement of its own (an audit record it appends is one). On SQLite
    /// that is all. On PostgreSQL such declared jobs run first in their batch, on copies of
    /// those rows that the batch locks and reads in one statement per table for all of them,
    /// and writes back (the new SADs inserted) in one statement per table: a job costs no
    /// round trip of its own instead of one per statement and one for its savepoint. A job
    /// that fails is undone by restoring the copies, unless it sent a statement of its own:
    /// then the batch fails (every job of it learns [`StorageError::Commit`]). A SAD it issues
    /// is inserted with the batch's others: a duplicate hash fails the batch.
    pub fn write_grouped_declared_async<T, F>(
        &self,
        rows: DeclaredRows,
        job: F,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        self.queue_async(Declared::Rows(rows), job)
    }

    /// Queues an awaited job with what it declared.
    fn queue_async<T, F>(
        &self,
        declared: Declared,
        job: F,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue(Box::new(Pending {
            job,
            declared,
            reply: Reply::Async(tx),
        }));
        async move { rx.await.unwrap_or_else(|_| Err(writer_stopped())) }
    }

    /// [`Store::write_grouped_async`] in two stages, for a caller that may start work that
    /// needs the job's outcome while the batch commits, but releases nothing before it is
    /// durable: [`Staged::ran`] gives the job's own outcome as soon as it has run inside its
    /// batch transaction (under the write lock, its savepoint released: authoritative, but NOT
    /// yet committed), with a [`Durable`] that completes once that batch is settled. If the
    /// commit fails, every effect of the job is undone and [`Durable::settled`] says so. On
    /// PostgreSQL `ran` comes only once the batch is settled (the group module's `Kept`), as with
    /// [`Store::write_grouped_async`].
    pub fn write_grouped_staged<T, F>(&self, job: F) -> Staged<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        self.queue_staged(Declared::Nothing, job)
    }

    /// [`Store::write_grouped_staged`] for signHash's job, which spends the SAD `sad_hash` and
    /// changes nothing else: it must read and spend it only with [`Conn::spend_sad_checked`],
    /// and write no other row. On SQLite that is all. On PostgreSQL such declared spends run
    /// first in their batch, without savepoints: the batch locks and reads every declared SAD
    /// in ONE statement, each job checks and spends its copy of the row (later jobs of the
    /// batch see the spends before them), and the spent rows are written back in ONE
    /// statement before the batch's other jobs run. So a spend costs no round trip of its own
    /// instead of three (its savepoint, its locked read, its update). A declared job that fails
    /// (`Err`, not a refusal it returns as its value) fails its whole batch: nothing of the
    /// batch is kept, every job of it learns [`StorageError::Commit`].
    pub fn spend_grouped_staged<T, F>(&self, sad_hash: &[u8], job: F) -> Staged<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        self.queue_staged(Declared::Spend(sad_hash.to_vec()), job)
    }

    /// Queues a staged job with what it declared.
    fn queue_staged<T, F>(&self, declared: Declared, job: F) -> Staged<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        let (ran, ran_rx) = tokio::sync::oneshot::channel();
        let (settled, settled_rx) = tokio::sync::oneshot::channel();
        self.queue(Box::new(Pending {
            job,
            declared,
            reply: Reply::Staged { ran, settled },
        }));
        Staged {
            ran: ran_rx,
            settled: settled_rx,
        }
    }

    /// Queues a grouped job, starting the writer thread's drain if none is under way.
    fn queue(&self, job: Box<dyn crate::group::Job>) {
        if !self.gate.enqueue(job) {
            return;
        }
        let (gate, core) = (Arc::clone(&self.gate), self.core.clone());
        let drain: Task = Box::new(move || {
            // one connection for the batches of this drain (no check-out, no `SELECT 1` of the
            // pool's test, per batch); back to the pool when the queue is empty or it failed
            let held = std::cell::RefCell::new(None);
            gate.drain(&|run| {
                let mut held = held.borrow_mut();
                let pooled = match held.as_mut() {
                    Some(pooled) => pooled,
                    None => held.insert(core.pool.get()?),
                };
                // FIRST the audit head (PostgreSQL): batches of every instance serialise from
                // their start, so no two hold row locks at once (crate::group); the epoch
                // settles before any job's outcome is released
                let outcome = core
                    .settling(|| write_transaction_as(pooled, true, |c| run(&mut core.conn(c))));
                if outcome.is_err() {
                    *held = None;
                }
                outcome
            })
        });
        if self.writer.run(drain).is_err() {
            self.gate.fail_queued(&writer_stopped());
        }
    }
}

/// A job queued by [`Store::write_grouped_staged`].
pub struct Staged<T> {
    ran: tokio::sync::oneshot::Receiver<Result<T, StorageError>>,
    settled: tokio::sync::oneshot::Receiver<Result<(), StorageError>>,
}

/// Whether the batch holding a [`Staged`] job committed.
pub struct Durable(tokio::sync::oneshot::Receiver<Result<(), StorageError>>);

impl<T> Staged<T> {
    /// The job's own outcome as soon as it has run inside its batch: its effects are visible
    /// to the rest of the batch but NOT durable until [`Durable::settled`] says so.
    pub async fn ran(self) -> (Result<T, StorageError>, Durable) {
        let outcome = self.ran.await.unwrap_or_else(|_| Err(writer_stopped()));
        (outcome, Durable(self.settled))
    }
}

impl Durable {
    /// `Ok` once the batch that ran the job is committed (fsynced on SQLite); an error when it
    /// rolled back (then the job left no effect) or its outcome is unknown.
    pub async fn settled(self) -> Result<(), StorageError> {
        self.0.await.unwrap_or_else(|_| Err(writer_stopped()))
    }

    /// [`Durable::settled`] without waiting, for a grouped job of the same store queued after
    /// this job's outcome came ([`Staged::ran`]): that job runs in a later batch, and one
    /// writer settles its batches in order, so this one is settled by then. `Ok` iff it
    /// committed; an error if it rolled back or (the job asked too early) is not settled yet.
    pub fn settled_now(mut self) -> Result<(), StorageError> {
        match self.0.try_recv() {
            Ok(settled) => settled,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => Err(StorageError::Commit(
                "the batch it depends on is not settled yet".into(),
            )),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Err(writer_stopped()),
        }
    }
}

fn writer_stopped() -> StorageError {
    StorageError::Commit("the batch writer stopped".into())
}

/// Applies the embedded migrations of the connection's backend; returns how many ran.
fn run_migrations(conn: &mut AnyConnection) -> Result<usize, StorageError> {
    let mig_err =
        |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration(e.to_string());
    match conn {
        AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.len())
                .map_err(mig_err)
        }),
        AnyConnection::Postgresql(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                .execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len())
                .map_err(mig_err);
            let unlocked =
                diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                    .execute(c);
            let n = result?;
            unlocked?;
            Ok(n)
        }
    }
}

fn in_transaction(conn: &mut AnyConnection) -> Result<bool, StorageError> {
    let status =
        <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn);
    Ok(status.transaction_depth()?.is_some())
}

/// What opens a PostgreSQL transaction that locks the audit head first ([`crate::group`]):
/// both statements in one round trip.
const PG_BEGIN_HEAD_FIRST: &str = "BEGIN; SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE";

/// Runs `f` in a new top-level transaction (`BEGIN IMMEDIATE` on SQLite).
fn write_transaction<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    write_transaction_as(conn, false, f)
}

/// [`write_transaction`]; with `head_first`, a PostgreSQL transaction whose first statement
/// locks the audit head row (a group-commit batch, a [`Store::write`]: the lock order of
/// [`crate::group`]).
fn write_transaction_as<T>(
    conn: &mut AnyConnection,
    head_first: bool,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        AnyConnection::Postgresql(c) if head_first => {
            AnsiTransactionManager::begin_transaction_sql(c, PG_BEGIN_HEAD_FIRST)?
        }
        AnyConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    // The derived transaction manager of `AnyConnection` delegates to the inner connection's
    // `AnsiTransactionManager`, whose state the `begin` above set.
    type Tm = <AnyConnection as Connection>::TransactionManager;
    match f(conn) {
        Ok(value) => {
            // the commit alone (the fsync of the WAL on SQLite): `csc_db_commit_duration_seconds`
            let started = std::time::Instant::now();
            let committed = Tm::commit_transaction(conn);
            metrics::histogram!("csc_db_commit_duration_seconds", "outcome" => if committed.is_ok() { "success" } else { "failure" })
                .record(started.elapsed());
            committed?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback_err) = Tm::rollback_transaction(conn) {
                tracing::warn!(error = %rollback_err, "rollback failed");
            }
            Err(e)
        }
    }
}

/// A connection lent to a [`Store::read`] or [`Store::write`] closure. Carries every repository
/// method (see the other modules of this crate).
pub struct Conn<'a> {
    pub(crate) conn: &'a mut AnyConnection,
    keys: Option<&'a IntegrityKeys>,
    pub(crate) violations: &'a Violations,
    epoch: &'a AtomicU64,
    /// The SADs a PostgreSQL batch locked for its declared spends, while those run
    /// ([`crate::sads::SadBatch`]).
    pub(crate) sad_batch: Option<crate::sads::SadBatch>,
    /// The rows a PostgreSQL batch locked for its declared jobs, while those run
    /// ([`crate::declared::RowBatch`]).
    pub(crate) row_batch: Option<crate::declared::RowBatch>,
}

impl Conn<'_> {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self.conn {
            AnyConnection::Postgresql(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `f` atomically: inside a savepoint if a transaction is already open (so a failure
    /// undoes only `f`'s statements), otherwise in a new write transaction.
    pub(crate) fn atomic<T>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if in_transaction(self.conn)? {
            self.conn.transaction(f)
        } else {
            write_transaction(self.conn, f)
        }
    }
}

impl<'a> Conn<'a> {
    /// [`Conn::atomic`] handing `f` a [`Conn`] (with this one's keys) instead of the raw
    /// connection.
    pub(crate) fn atomic_conn<T>(
        &mut self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let (keys, violations, epoch) = (self.keys, self.violations, self.epoch);
        self.atomic(|c| {
            f(&mut Conn {
                conn: c,
                keys,
                violations,
                epoch,
                sad_batch: None,
                row_batch: None,
            })
        })
    }

    /// Runs `f` in the transaction already open, without a savepoint, or else in a new write
    /// transaction. Only for work that cannot leave anything half-done: reads, then at most one
    /// write, as [`crate::sealed::modify!`] does (the savepoint of [`Conn::atomic_conn`] costs
    /// two statements on the hot path).
    pub(crate) fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if in_transaction(self.conn)? {
            f(self)
        } else {
            self.atomic_conn(f)
        }
    }

    /// The integrity keys, or [`StorageError::NoIntegrityKeys`]. The reference outlives the
    /// borrow of `self`, so it can be used inside [`Conn::atomic`].
    pub(crate) fn keys(&self) -> Result<&'a IntegrityKeys, StorageError> {
        self.keys.ok_or(StorageError::NoIntegrityKeys)
    }

    /// Notes a change of a user, credential or token row (or a credential's deletion): moves
    /// the store's epoch ([`Store::epoch`]), so caches of those rows drop what they hold.
    pub(crate) fn note_change(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// [`Conn::note_change`] when `table` is one whose rows are cached (users, credentials,
    /// tokens); a change of a factor, SAD or OAuth row leaves the epoch alone (SADs are
    /// always read under lock, never cached).
    pub(crate) fn note_change_of(&self, table: &str) {
        if matches!(table, "users" | "credentials" | "auth_tokens") {
            self.note_change();
        }
    }
}

/// Runs the same code on the concrete connection of either backend, for SQL that the
/// multi-backend connection cannot express (`ON CONFLICT`, `FOR UPDATE`).
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::connection::AnyConnection::Postgresql($c) => $body,
            $crate::connection::AnyConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_path(url: &str) -> Option<PathBuf> {
        match parse_url(url) {
            Ok(Target::Sqlite(p)) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn urls() {
        assert!(matches!(
            parse_url("postgres://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            parse_url("postgresql://u:pw@h:5/db"),
            Ok(Target::Postgres(_))
        ));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), Some("/tmp/x.db".into()));
        assert_eq!(sqlite_path("sqlite://data/x.db"), Some("data/x.db".into()));
        assert_eq!(sqlite_path("sqlite:x.db"), Some("x.db".into()));
        assert_eq!(
            sqlite_path("/var/lib/csc/db.sqlite"),
            Some("/var/lib/csc/db.sqlite".into())
        );
        assert!(
            matches!(parse_url("mysql://u:secret@h/db"), Err(StorageError::InvalidUrl(m)) if !m.contains("secret"))
        );
        assert!(parse_url("").is_err());
        assert!(parse_url("sqlite://").is_err());
        assert!(parse_url(":memory:").is_err());
        assert!(parse_url("sqlite::memory:").is_err());
    }

    /// The names of the threads of this process (`/proc/self/task/*/comm`).
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect()
    }

    /// The writer thread lives as long as some clone of its store, and ends when the last
    /// one drops (tests open many stores: none may leave a thread behind).
    #[test]
    fn the_writer_thread_ends_when_the_last_store_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::open_or_create(&url, StoreOptions::default()).expect("store");
        let names = store.writer.thread_names();
        assert_eq!(names.len(), 1);
        // a job has run on it, so it has started (and named itself)
        assert_eq!(
            store.write_grouped(|_| Ok((1, Vec::new()))).expect("write"),
            1
        );
        assert!(
            names.iter().all(|n| thread_names().contains(n)),
            "{names:?}"
        );
        let clone = store.clone();
        drop(store);
        let grouped = clone.write_grouped(|_| Ok((7, Vec::new())));
        assert_eq!(grouped.expect("the clone still writes"), 7);
        drop(clone);
        let left = thread_names();
        assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
    }

    fn postgres_url(url: &str) -> Option<String> {
        match parse_url(url) {
            Ok(Target::Postgres(u)) => Some(u),
            _ => None,
        }
    }

    #[test]
    fn postgres_urls_disable_gss_unless_chosen() {
        assert_eq!(
            postgres_url("postgres://u@h/db").as_deref(),
            Some("postgres://u@h/db?gssencmode=disable")
        );
        assert_eq!(
            postgres_url("postgres://u@h/db?sslmode=require").as_deref(),
            Some("postgres://u@h/db?sslmode=require&gssencmode=disable")
        );
        assert_eq!(
            postgres_url("postgres://u@h/db?gssencmode=require").as_deref(),
            Some("postgres://u@h/db?gssencmode=require")
        );
    }
}
