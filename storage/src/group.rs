//! Group commit for the hot write path, on both backends.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every commit waits for an
//! fsync of the WAL (about 0.4 ms on the CI machines). Grouped jobs are queued; ONE writer
//! thread per store ([`Writer`], spawned when the store opens, ended when its last clone
//! drops) takes everything queued, runs it in ONE transaction (each job in its own savepoint,
//! so a failing job undoes only its own statements), appends all their audit events with one
//! head update, commits once, and hands every job its outcome; jobs queued during that commit
//! form the next batch. A job's result is never released before the transaction holding it
//! (and its audit records) is durable, except to a staged caller
//! ([`crate::Store::write_grouped_staged`]), which on SQLite learns its job's outcome as soon
//! as the job is kept in the batch (its savepoint released) and whether it is durable once the
//! batch is settled: signHash signs in between (while the writer waits for the fsync) and
//! releases the signature only after the second. On PostgreSQL it learns both once the batch
//! is settled (work done meanwhile would slow the batch holding the audit head).
//!
//! A job's outcome reaches its caller either through a blocking channel
//! ([`crate::Store::write_grouped`], for callers on a blocking thread) or through a oneshot
//! channel that an async caller awaits ([`crate::Store::write_grouped_async`]): the awaiting
//! task blocks no thread, so an async worker keeps serving requests while the batch holding its
//! job commits, and those requests' jobs join the next batch. Both kinds share one queue, so
//! a store keeps one writer and one order.
//!
//! On SQLite the same writer lock is taken by [`crate::Store::write`], so in-process writers
//! queue on a mutex instead of sleeping in SQLite's busy handler. Other processes writing the same file
//! (the admin CLI) still wait on `busy_timeout`.
//!
//! **PostgreSQL** runs the same batches. Row locks are held until commit, so with one
//! transaction per job every job held the SAD it spends and the audit head for its whole
//! transaction (about ten round trips), and the jobs spending one SAD ran one after another at
//! that pace; in a batch a row lock is taken once and held for the batch, and the audit chain
//! moves once per batch. One writer thread per store is enough: an instance runs one batch at
//! a time anyway (batches serialise on the audit head, below), and async callers await their
//! outcome without a thread of their own.
//!
//! *Lock order.* Several instances share the database, and a batch locks rows (SADs, factor
//! counters, the audit head) in the order its jobs come. Its FIRST statement therefore locks
//! the audit head row (`SELECT ... FROM audit_head WHERE id = 1 FOR UPDATE`): batches of all
//! instances serialise from their start, and a batch never waits for a row while another
//! batch holds one. A plain [`crate::Store::write`] (the CLI, the admin API, the purge,
//! login) would otherwise lock rows first and the head last, at its audit append: holding SAD
//! `X` and waiting for the head while a batch holds the head and waits for `X` is a cycle,
//! which PostgreSQL breaks after `deadlock_timeout` (1 s, every batch of every instance
//! stalled meanwhile) by failing one side. So a write's first statement locks the head too:
//! every transaction that may wait for a lock while holding one holds the head, only one
//! transaction holds it at a time, and no wait cycle can form. The cost is that plain writes
//! serialise with batches for their whole duration, as they do on SQLite (`BEGIN IMMEDIATE`);
//! none is on the hot path (signHash and authorize are grouped), and the head lock rides in
//! the `BEGIN`'s round trip. What stays outside the rule: a repository method called under
//! [`crate::Store::read`] runs in a transaction of its own without the head (most change one
//! row and hold nothing while they wait; the SAM calls the ones that change several, the
//! deletions, only inside writes), and a write nested in another on the same thread takes no
//! head lock (it would wait for itself). Should one of those ever close a cycle with a batch,
//! PostgreSQL fails one side after `deadlock_timeout`: that call, or one job of the batch
//! (below), never the batch.
//!
//! *Failures.* A job's error, including a statement PostgreSQL refused (a constraint, a
//! deadlock or lock timeout from a transaction outside the rule), rolls back to the job's
//! savepoint, which releases the locks taken after it: that job alone fails, with that error,
//! and the others commit with their audit records. A job that swallowed a failed statement's
//! error (the transaction is then aborted) is found when its savepoint is released: it is
//! rolled back to it and fails alone ([`StorageError::Commit`]). If the batch's audit append or
//! its commit fails, every job of the batch gets [`StorageError::Commit`] and none of its
//! changes is visible: never half a batch.
//!
//! *Round trips.* A batch opens with `BEGIN` and the head lock in one round trip. signHash's
//! spends are declared ([`crate::Store::spend_grouped_staged`]), and so are a key activation's
//! reservation and outcome ([`crate::Store::write_grouped_declared_async`]); declared jobs run
//! first, at most six round trips for all of them ([`run_declared_pg`]: the declared SADs, the
//! credentials and the factor rows each locked and read in one statement, the jobs run on the
//! batch's copies, the spent SADs and the changed factor rows each written back in one, the
//! new SADs inserted in one; one statement for all three, with CTEs, was no faster: pairs
//! within the noise, signHash on two instances 5-8% slower, in alternating runs). Each other
//! job's savepoint costs one (the
//! release of the job before it goes with it, see [`run_jobs_pg`]); the audit append takes two
//! for the whole batch (the head moved and read back with `RETURNING`, then every record
//! inserted and the head's hash set in one statement), then `COMMIT`. A batch of signHash
//! spends is thus six round trips however many it holds (it was three per job and eight more
//! per batch: EC signHash c8 on one instance went from 1,615-1,694/s to 3,391-5,853/s in
//! alternating runs; `storage/tests/repo.rs` holds it to the same statements for 2 spends as
//! for 8, [`crate::Store::statements`]). The writer thread keeps its pooled connection while
//! batches follow each other, so the pool's check-out test is not paid per batch.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use crate::audit::NewAuditEvent;
use crate::connection::{Backend, Conn, sent_here};
use crate::declared::DeclaredRows;
use crate::error::StorageError;

thread_local! {
    /// Whether this thread holds the writer lock (a nested write must not wait for itself).
    static HOLDS_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// What a grouped job yields: its value and the audit events to append after it, in the same
/// transaction.
pub type Grouped<T> = (T, Vec<NewAuditEvent>);

/// Called once the batch's transaction is settled: `Ok` when committed.
type Finish = Box<dyn FnOnce(Result<(), &StorageError>) + Send>;

/// Called once a job that succeeded is kept in its batch, or with the error that undid it
/// after all; a staged job's outcome is sent then. On SQLite that is as soon as its savepoint
/// is released, before the commit (the caller's work then overlaps the fsync). On PostgreSQL
/// it is once the batch is settled: work started meanwhile would run while the batch holds
/// the audit head, the section every instance's batches take in turn, and slow it for all of
/// them (EC signHash c8 on two instances: 3,155-3,304/s kept at the settle, 1,752-1,786/s kept
/// at the release).
type Kept = Box<dyn FnOnce(Result<(), &StorageError>) + Send>;

/// Where a job's outcome goes.
pub(crate) enum Reply<T> {
    /// A caller blocked on a channel.
    Blocking(SyncSender<Result<T, StorageError>>),
    /// An async caller awaiting a oneshot (it may have gone: then the outcome is dropped).
    Async(oneshot::Sender<Result<T, StorageError>>),
    /// An async caller told twice ([`crate::Store::write_grouped_staged`]): the job's own
    /// outcome once it is kept in its batch ([`Kept`]: on SQLite before the commit, NOT yet
    /// durable), then whether the batch committed.
    Staged {
        ran: oneshot::Sender<Result<T, StorageError>>,
        settled: oneshot::Sender<Result<(), StorageError>>,
    },
}

impl<T> Reply<T> {
    fn send(self, outcome: Result<T, StorageError>) {
        // A caller that went away (a dropped request future) no longer wants the outcome; the
        // job's effects are committed or rolled back all the same.
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Async(tx) => {
                let _ = tx.send(outcome);
            }
            // the job never ran (or failed): `ran` says so, and `settled` is dropped unsent
            Reply::Staged { ran, .. } => {
                let _ = ran.send(outcome);
            }
        }
    }
}

/// A queued job, type-erased.
pub(crate) trait Job: Send {
    /// Runs the job inside the batch transaction, in its own savepoint when `own_savepoint`
    /// (else in the one the batch opened for it, or in none: a declared job on PostgreSQL,
    /// [`run_declared_pg`]), collecting its audit events when it succeeds; returns what to do
    /// once the batch is settled and, when it succeeded, what to do once it is kept
    /// ([`Kept`]: the caller must call it before the batch settles).
    fn run(
        self: Box<Self>,
        conn: &mut Conn<'_>,
        audit: &mut Vec<NewAuditEvent>,
        own_savepoint: bool,
    ) -> (Finish, Option<Kept>);
    /// The batch failed before this job could run.
    fn abandon(self: Box<Self>, why: &StorageError);
    /// What this job declared it reads and changes.
    fn declared(&self) -> &Declared;
}

/// What a job declared it reads and changes: on PostgreSQL, declared jobs run first in their
/// batch, on copies of those rows locked for all of them at once ([`run_declared_pg`]).
pub(crate) enum Declared {
    /// Nothing: the job runs in a savepoint of its own.
    Nothing,
    /// The SAD it spends, and changes nothing else ([`crate::Store::spend_grouped_staged`]).
    Spend(Vec<u8>),
    /// The factor rows and credentials of a key activation
    /// ([`crate::Store::write_grouped_declared_async`]).
    Rows(DeclaredRows),
}

/// A job and where its outcome goes.
pub(crate) struct Pending<T, F> {
    pub(crate) job: F,
    pub(crate) declared: Declared,
    pub(crate) reply: Reply<T>,
}

fn settle_error(e: &StorageError) -> StorageError {
    StorageError::Commit(e.to_string())
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
{
    fn run(
        self: Box<Self>,
        conn: &mut Conn<'_>,
        audit: &mut Vec<NewAuditEvent>,
        own_savepoint: bool,
    ) -> (Finish, Option<Kept>) {
        let Pending { job, reply, .. } = *self;
        let outcome = if own_savepoint {
            conn.atomic_conn(job)
        } else {
            job(conn)
        };
        match (outcome, reply) {
            // A staged job's outcome goes out once it is kept in the batch; whether it is
            // durable, once the batch is settled.
            (Ok((value, events)), Reply::Staged { ran, settled }) => {
                audit.extend(events);
                let kept: Kept = Box::new(move |kept| {
                    let _ = ran.send(kept.map(|()| value).map_err(settle_error));
                });
                let finish: Finish = Box::new(move |done| {
                    let _ = settled.send(done.map_err(settle_error));
                });
                (finish, Some(kept))
            }
            (Ok((value, events)), reply) => {
                audit.extend(events);
                let finish: Finish = Box::new(move |settled| {
                    reply.send(settled.map(|()| value).map_err(settle_error));
                });
                (finish, Some(Box::new(|_| {})))
            }
            (Err(e), Reply::Staged { ran, .. }) => {
                let _ = ran.send(Err(e));
                (Box::new(|_| {}), None)
            }
            (Err(e), reply) => (Box::new(move |_| reply.send(Err(e))), None),
        }
    }

    fn abandon(self: Box<Self>, why: &StorageError) {
        self.reply.send(Err(settle_error(why)));
    }

    fn declared(&self) -> &Declared {
        &self.declared
    }
}

/// The queue and whether the writer thread has been asked to drain it.
#[derive(Default)]
struct GroupState {
    queue: Vec<Box<dyn Job>>,
    leading: bool,
}

/// Opens a batch's transaction and runs the closure it is given inside it.
pub(crate) type Transaction<'a> = &'a dyn Fn(
    &mut dyn FnMut(&mut Conn<'_>) -> Result<(), StorageError>,
) -> Result<(), StorageError>;

/// The in-process writer lock and the queue of grouped jobs. One per [`crate::Store`] (shared
/// by its clones).
#[derive(Default)]
pub(crate) struct WriterGate {
    lock: Mutex<()>,
    state: Mutex<GroupState>,
    batches: AtomicU64,
    jobs: AtomicU64,
}

/// Holds the writer lock (or nothing, for a nested write on the thread that holds it).
pub(crate) struct WriterGuard<'a> {
    /// The in-process lock (SQLite), if taken.
    _lock: Option<MutexGuard<'a, ()>>,
    /// Whether this guard marked the thread as the writer (not a nested write).
    outermost: bool,
}

impl WriterGuard<'_> {
    /// Whether this guard is the thread's outermost write (not one nested in another).
    pub(crate) fn is_outermost(&self) -> bool {
        self.outermost
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if self.outermost {
            HOLDS_WRITER.set(false);
        }
    }
}

/// Ends a drain of the queue that did not end normally (a job panicked): every job still
/// queued learns it failed, and the next job queued starts a new drain.
struct DrainGuard<'a>(&'a WriterGate);

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail_queued(&StorageError::Commit("the batch writer failed".into()));
        }
    }
}

impl WriterGate {
    /// Takes the writer lock, waiting for the current writer. A thread that already holds it
    /// gets an empty guard (its nested write then meets SQLite's own lock, as before).
    pub(crate) fn enter(&self) -> WriterGuard<'_> {
        if HOLDS_WRITER.get() {
            return WriterGuard {
                _lock: None,
                outermost: false,
            };
        }
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        HOLDS_WRITER.set(true);
        WriterGuard {
            _lock: Some(guard),
            outermost: true,
        }
    }

    /// Marks this thread as a writer without taking the in-process lock (PostgreSQL, whose
    /// writers wait for each other on the audit head row, in the database, across instances):
    /// a grouped job queued from inside the write is then refused, as [`WriterGate::enter`]'s
    /// would be.
    pub(crate) fn mark(&self) -> WriterGuard<'_> {
        let outermost = !HOLDS_WRITER.replace(true);
        WriterGuard {
            _lock: None,
            outermost,
        }
    }

    /// Whether this thread holds the writer lock (then a grouped job would wait for itself).
    pub(crate) fn held_here() -> bool {
        HOLDS_WRITER.get()
    }

    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`; `true` when no drain is under way, so the caller must start one
    /// ([`WriterGate::drain`] on the writer thread).
    pub(crate) fn enqueue(&self, job: Box<dyn Job>) -> bool {
        let mut state = self.state();
        state.queue.push(job);
        !std::mem::replace(&mut state.leading, true)
    }

    /// Every queued job fails with `why`, and no drain is under way any more (the writer
    /// thread could not be reached, or a drain failed).
    pub(crate) fn fail_queued(&self, why: &StorageError) {
        let jobs = {
            let mut state = self.state();
            state.leading = false;
            std::mem::take(&mut state.queue)
        };
        abandon_all(jobs, why);
    }

    /// Runs batches until the queue is empty (on the writer thread): each batch is everything
    /// queued once its transaction is open (on PostgreSQL, once it holds the audit head: jobs
    /// that queued while another instance's batch held it join this one), in one transaction
    /// opened by `transaction`.
    pub(crate) fn drain(&self, transaction: Transaction<'_>) {
        let _guard = DrainGuard(self);
        loop {
            let _writer = self.enter();
            {
                let mut state = self.state();
                if state.queue.is_empty() {
                    state.leading = false;
                    return;
                }
            }
            self.run_batch(transaction);
        }
    }

    /// Runs what is queued in one transaction, under the writer lock.
    fn run_batch(&self, transaction: Transaction<'_>) {
        let mut finishers: Vec<Finish> = Vec::new();
        let mut ran = false;
        let outcome = transaction(&mut |conn| {
            ran = true;
            let jobs = std::mem::take(&mut self.state().queue);
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            // jobs sharing this transaction's commit (the group-commit factor)
            metrics::histogram!("csc_db_group_commit_batch_size").record(jobs.len() as f64);
            let mut audit = Vec::new();
            match conn.backend() {
                Backend::Sqlite => {
                    for job in jobs {
                        // its own savepoint is released when `run` returns
                        let (finish, kept) = job.run(conn, &mut audit, true);
                        if let Some(kept) = kept {
                            kept(Ok(()));
                        }
                        finishers.push(finish);
                    }
                }
                Backend::Postgres => run_jobs_pg(conn, jobs, &mut audit, &mut finishers)?,
            }
            conn.append_audit_for_batch(&audit)?;
            Ok(())
        });
        match &outcome {
            // No transaction (no connection, BEGIN or the head lock failed): the jobs queued
            // learn why.
            Err(e) if !ran => abandon_all(std::mem::take(&mut self.state().queue), e),
            _ => {}
        }
        let settled = outcome.as_ref().map(|_| ());
        for finish in finishers {
            finish(settled);
        }
    }

    /// `(transactions, jobs)` run by group commit so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.jobs.load(Ordering::Relaxed),
        )
    }
}

/// The savepoint of each job of a PostgreSQL batch (one name: at most one is open).
const JOB_SAVEPOINT: &str = "SAVEPOINT csc_job";
/// Undoes the job since its savepoint, which stays open.
const JOB_ROLLBACK: &str = "ROLLBACK TO SAVEPOINT csc_job";
/// Keeps what the job did.
const JOB_RELEASE: &str = "RELEASE SAVEPOINT csc_job";
/// Keeps what the job did and opens the next job's savepoint, in one round trip.
const JOB_RELEASE_AND_NEXT: &str = "RELEASE SAVEPOINT csc_job; SAVEPOINT csc_job";

/// Runs `jobs` on PostgreSQL: the declared jobs first, together ([`run_declared_pg`]), then
/// every other job in a savepoint of its own, with one round trip per job for it: a job that
/// succeeded is released together with the next job's savepoint (`RELEASE SAVEPOINT csc_job;
/// SAVEPOINT csc_job`, one simple query); a job that failed is rolled back to its savepoint
/// (which releases the row locks it took), and the savepoint, still there, serves the next
/// job. If a release fails, the job before it left the
/// transaction aborted (a failed statement whose error it did not return): it is rolled back
/// to its savepoint and fails alone, its events dropped. Every job's finisher ends in
/// `finishers`, also when this returns `Err` (the batch fails: every job learns it).
fn run_jobs_pg(
    conn: &mut Conn<'_>,
    jobs: Vec<Box<dyn Job>>,
    audit: &mut Vec<NewAuditEvent>,
    finishers: &mut Vec<Finish>,
) -> Result<(), StorageError> {
    // the declared jobs first (any order of a batch's jobs is one they could have come in)
    let (declared, jobs): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .partition(|job| !matches!(job.declared(), Declared::Nothing));
    if !declared.is_empty()
        && let Err(why) = run_declared_pg(conn, declared, audit, finishers)
    {
        abandon_all(jobs, &why);
        return Err(why);
    }
    // the last job that succeeded, not yet released: its finisher, what to do once it is
    // released, and where its events start
    let mut unreleased: Option<(Finish, Kept, usize)> = None;
    // a savepoint with nothing after it is open
    let mut clean = false;
    // the transaction cannot go on: the jobs left never run
    let mut broken: Option<StorageError> = None;
    for job in jobs {
        if broken.is_none() {
            let opened = match unreleased.take() {
                Some(last) => release(conn, last, audit, finishers, true),
                None if clean => Ok(()),
                None => exec(conn, JOB_SAVEPOINT),
            };
            broken = opened.err();
        }
        if let Some(why) = &broken {
            job.abandon(why);
            continue;
        }
        let mark = audit.len();
        match job.run(conn, audit, false) {
            (finish, Some(kept)) => {
                unreleased = Some((finish, kept, mark));
                clean = false;
            }
            (finish, None) => {
                finishers.push(finish);
                broken = exec(conn, JOB_ROLLBACK).err();
                clean = true;
            }
        }
    }
    if let Some(last) = unreleased {
        release(conn, last, audit, finishers, false)?;
    }
    broken.map_or(Ok(()), Err)
}

/// Runs the declared jobs of a PostgreSQL batch, without savepoints, in at most six round
/// trips however many: every declared SAD ([`crate::Store::spend_grouped_staged`]) locked and
/// read in one statement (in the order of their hashes), every declared credential and the
/// factor rows of the declared ones in one statement each ([`Conn::lock_declared`]); each job
/// run on the batch's copies; then the spent SADs written back in one statement, the changed
/// factor rows in one and the new SADs inserted in one ([`Conn::write_declared`]). Each job is
/// kept once the batch is settled, as every job on PostgreSQL.
///
/// A spend changes only its copy, and a refusal is its value: a spend that fails (`Err`)
/// fails the batch. A job declaring rows that fails is undone alone by restoring the copies as
/// they were before it ([`Conn::snapshot_declared`]), unless it sent a statement of its own,
/// which only a savepoint could undo: then it fails the batch (every job learns
/// [`StorageError::Commit`]). Every job's finisher ends in `finishers`.
fn run_declared_pg(
    conn: &mut Conn<'_>,
    jobs: Vec<Box<dyn Job>>,
    audit: &mut Vec<NewAuditEvent>,
    finishers: &mut Vec<Finish>,
) -> Result<(), StorageError> {
    let mut hashes: Vec<Vec<u8>> = Vec::new();
    let (mut factors_of, mut credentials) = (BTreeSet::new(), BTreeSet::new());
    for job in &jobs {
        match job.declared() {
            Declared::Nothing => {}
            Declared::Spend(hash) => hashes.push(hash.clone()),
            Declared::Rows(rows) => {
                factors_of.extend(rows.factors_of.iter().map(ToString::to_string));
                credentials.extend(rows.credentials.iter().map(ToString::to_string));
            }
        }
    }
    // each sends its statement only for what was declared
    let locked = conn
        .lock_sads(&hashes)
        .and_then(|()| conn.lock_declared(&factors_of, &credentials));
    if let Err(why) = locked {
        abandon_all(jobs, &why);
        return Err(why);
    }
    let mut broken: Option<StorageError> = None;
    for job in jobs {
        if let Some(why) = &broken {
            job.abandon(why);
            continue;
        }
        let undo = match job.declared() {
            Declared::Rows(_) => conn.snapshot_declared().map(|s| (s, sent_here())),
            _ => None,
        };
        match job.run(conn, audit, false) {
            (finish, Some(kept)) => finishers.push(kept_at_settle(kept, finish)),
            (finish, None) => {
                finishers.push(finish);
                match undo {
                    Some((snapshot, sent)) if sent_here() == sent => {
                        conn.restore_declared(snapshot);
                    }
                    _ => {
                        broken = Some(StorageError::Commit(
                            "a declared job of the batch failed after it wrote, so the batch is undone"
                                .into(),
                        ));
                    }
                }
            }
        }
    }
    if let Some(why) = broken {
        // the batch fails; its `Conn`, copies and all, ends with it
        return Err(why);
    }
    conn.write_spent_sads()?;
    conn.write_declared()
}

/// Releases the savepoint of the job that succeeded last (`last`: its finisher, what to do
/// once it is kept, where its events start) and, with `reopen`, opens the next job's in the
/// same round trip. If the release fails, that job left the transaction aborted: rolled back
/// to its savepoint, it fails now, its events dropped (and the savepoint, still open, serves
/// the next job).
fn release(
    conn: &mut Conn<'_>,
    (finish, kept, mark): (Finish, Kept, usize),
    audit: &mut Vec<NewAuditEvent>,
    finishers: &mut Vec<Finish>,
    reopen: bool,
) -> Result<(), StorageError> {
    let sql = if reopen {
        JOB_RELEASE_AND_NEXT
    } else {
        JOB_RELEASE
    };
    match exec(conn, sql) {
        Ok(()) => {
            finishers.push(kept_at_settle(kept, finish));
            Ok(())
        }
        Err(release_error) => {
            audit.truncate(mark);
            let why = StorageError::Commit(format!(
                "the job left its transaction aborted: {release_error}"
            ));
            kept(Err(&why));
            finish(Err(&why));
            exec(conn, JOB_ROLLBACK)
        }
    }
}

/// A PostgreSQL job's finisher: it is kept once the batch is settled (see [`Kept`]), then
/// finished.
fn kept_at_settle(kept: Kept, finish: Finish) -> Finish {
    Box::new(move |done| {
        kept(done);
        finish(done);
    })
}

/// Every job of `jobs` learns that its batch failed before it could run.
fn abandon_all(jobs: Vec<Box<dyn Job>>, why: &StorageError) {
    for job in jobs {
        job.abandon(why);
    }
}

/// Runs `sql` (one or more statements, one round trip).
fn exec(conn: &mut Conn<'_>, sql: &str) -> Result<(), StorageError> {
    Ok(conn.conn.batch_execute(sql)?)
}

/// Work handed to a writer thread.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// The writer thread of a store: it drains the group-commit queue. It ends when the last clone
/// of the store drops: the channel closes, the thread finishes its task and returns, and the
/// drop joins it.
pub(crate) struct Writer {
    tasks: Mutex<Option<Sender<Task>>>,
    thread: Option<JoinHandle<()>>,
}

/// Names the writer threads of each store apart (`csc-dbw-N`).
static WRITERS: AtomicU64 = AtomicU64::new(0);

impl Writer {
    /// Spawns the writer thread.
    pub(crate) fn spawn() -> Result<Writer, StorageError> {
        let (tx, rx) = channel::<Task>();
        let n = WRITERS.fetch_add(1, Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name(format!("csc-dbw-{n}"))
            .spawn(move || serve(&rx))
            .map_err(|e| StorageError::Connection(format!("no writer thread: {e}")))?;
        Ok(Writer {
            tasks: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    /// Hands `task` to the writer thread; gives it back if it is gone.
    pub(crate) fn run(&self, task: Task) -> Result<(), Task> {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        match tasks.as_ref() {
            Some(tx) => tx.send(task).map_err(|e| e.0),
            None => Err(task),
        }
    }

    /// The name of this store's writer thread (a list, for the thread listing it is checked
    /// against).
    #[cfg(test)]
    pub(crate) fn thread_names(&self) -> Vec<String> {
        self.thread
            .iter()
            .filter_map(|t| t.thread().name().map(str::to_owned))
            .collect()
    }
}

/// The writer thread's loop: one task at a time until the channel closes. A task that panics
/// ends only itself (its callers learn it failed: their reply channels drop).
fn serve(rx: &Receiver<Task>) {
    while let Ok(task) = rx.recv() {
        if catch_unwind(AssertUnwindSafe(task)).is_err() {
            tracing::error!("a database writer task panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The writer thread that dropped the last store itself cannot wait for itself.
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
    }
}
