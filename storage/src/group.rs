//! Group commit for the hot write path.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every commit waits for an
//! fsync of the WAL (about 0.4 ms on the CI machines). Writers that arrive while a commit is
//! under way queue their jobs; when it is done, the waiter of the first queued job becomes the
//! *leader*: it runs every queued job in ONE transaction (each job in its own savepoint, so a
//! failing job undoes only its own statements), appends all their audit events with one head
//! update, commits once, and hands every job its outcome. A job's result is never released
//! before the transaction holding it (and its audit records) is durable.
//!
//! The same writer lock is taken by [`crate::Store::write`], so in-process writers queue on a
//! mutex instead of sleeping in SQLite's busy handler. Other processes writing the same file
//! (the admin CLI) still wait on `busy_timeout`.
//!
//! On PostgreSQL a grouped job simply runs in its own transaction: the server already groups
//! commits, and batching jobs of one instance in one transaction could deadlock against another
//! instance locking the same rows in another order.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::audit::NewAuditEvent;
use crate::connection::Conn;
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

/// What a waiting writer is told.
pub(crate) enum Msg<T> {
    /// Its job's outcome, once its batch is settled.
    Done(Result<T, StorageError>),
    /// Its job is first in the queue and nobody leads: it runs the next batch.
    Lead,
}

/// A queued job, type-erased.
trait Job: Send {
    /// Runs the job inside the batch transaction (in its own savepoint), collecting its audit
    /// events; returns what to do once the batch is settled.
    fn run(self: Box<Self>, conn: &mut Conn<'_>, audit: &mut Vec<NewAuditEvent>) -> Finish;
    /// The batch failed before this job could run.
    fn abandon(self: Box<Self>, why: &StorageError);
    /// Makes this job's waiter the next leader.
    fn promote(&self);
}

struct Pending<T, F> {
    job: F,
    reply: SyncSender<Msg<T>>,
}

fn settle_error(e: &StorageError) -> StorageError {
    StorageError::Commit(e.to_string())
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Conn<'_>, audit: &mut Vec<NewAuditEvent>) -> Finish {
        let Pending { job, reply } = *self;
        match conn.atomic_conn(job) {
            Ok((value, events)) => {
                audit.extend(events);
                Box::new(move |settled| {
                    // The waiter never goes away (it blocks on this); nothing to do if it did.
                    let _ = reply.send(Msg::Done(settled.map(|()| value).map_err(settle_error)));
                })
            }
            Err(e) => Box::new(move |_| {
                let _ = reply.send(Msg::Done(Err(e)));
            }),
        }
    }

    fn abandon(self: Box<Self>, why: &StorageError) {
        let _ = self.reply.send(Msg::Done(Err(settle_error(why))));
    }

    fn promote(&self) {
        // capacity 2: a waiter gets at most Lead, then Done
        let _ = self.reply.try_send(Msg::Lead);
    }
}

/// The queue and whether some thread is leading.
#[derive(Default)]
struct GroupState {
    queue: Vec<Box<dyn Job>>,
    leading: bool,
}

/// The in-process writer lock and the queue of grouped jobs. One per [`crate::Store`] (shared
/// by its clones).
///
/// One thread leads at a time. It drains the queue, runs the batch under the writer lock, and
/// then hands the lead to the waiter of the first job queued meanwhile (or gives it up): every
/// waiter is woken exactly once with its outcome, never to queue for a lock just to learn that
/// its job is done.
#[derive(Default)]
pub(crate) struct WriterGate {
    lock: Mutex<()>,
    state: Mutex<GroupState>,
    batches: AtomicU64,
    jobs: AtomicU64,
}

/// Holds the writer lock (or nothing, for a nested write on the thread that holds it).
pub(crate) struct WriterGuard<'a>(Option<MutexGuard<'a, ()>>);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if self.0.is_some() {
            HOLDS_WRITER.set(false);
        }
    }
}

/// The lead, passed on when dropped (also when a job panics, so writers never wait forever).
struct Leadership<'a>(&'a WriterGate);

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        match state.queue.first() {
            Some(next) => next.promote(),
            None => state.leading = false,
        }
    }
}

impl WriterGate {
    /// Takes the writer lock, waiting for the current writer. A thread that already holds it
    /// gets an empty guard (its nested write then meets SQLite's own lock, as before).
    pub(crate) fn enter(&self) -> WriterGuard<'_> {
        if HOLDS_WRITER.get() {
            return WriterGuard(None);
        }
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        HOLDS_WRITER.set(true);
        WriterGuard(Some(guard))
    }

    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `job` in a batch with whatever else is queued: leads the batch when nobody does,
    /// otherwise waits to be told the outcome (or to lead the next batch). `transaction` opens
    /// the batch's transaction and runs the closure it is given inside it.
    pub(crate) fn submit<T, F>(
        &self,
        job: F,
        transaction: impl FnOnce(
            &mut dyn FnMut(&mut Conn<'_>) -> Result<(), StorageError>,
        ) -> Result<(), StorageError>,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        let (reply, rx) = sync_channel(2);
        let lead_now = {
            let mut state = self.state();
            state.queue.push(Box::new(Pending { job, reply }));
            !std::mem::replace(&mut state.leading, true)
        };
        if !lead_now {
            match rx.recv() {
                Ok(Msg::Done(outcome)) => return outcome,
                Ok(Msg::Lead) => {}
                Err(_) => return Err(StorageError::Commit("the batch writer stopped".into())),
            }
        }
        {
            let _lead = Leadership(self);
            self.run_batch(transaction);
        }
        match rx.recv() {
            Ok(Msg::Done(outcome)) => outcome,
            _ => Err(StorageError::Commit("the batch writer stopped".into())),
        }
    }

    /// Runs every queued job in one transaction, under the writer lock.
    fn run_batch(
        &self,
        transaction: impl FnOnce(
            &mut dyn FnMut(&mut Conn<'_>) -> Result<(), StorageError>,
        ) -> Result<(), StorageError>,
    ) {
        let _writer = self.enter();
        let jobs = std::mem::take(&mut self.state().queue);
        if jobs.is_empty() {
            return;
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        // jobs sharing this transaction's commit (the group-commit factor)
        metrics::histogram!("csc_db_group_commit_batch_size").record(jobs.len() as f64);
        let mut jobs = Some(jobs);
        let mut finishers: Vec<Finish> = Vec::new();
        let outcome = transaction(&mut |conn| {
            let mut audit = Vec::new();
            for job in jobs.take().into_iter().flatten() {
                finishers.push(job.run(conn, &mut audit));
            }
            conn.append_audit_batch(&audit)?;
            Ok(())
        });
        // Jobs that never ran (no connection, BEGIN failed) learn why.
        if let (Err(e), Some(left)) = (&outcome, jobs) {
            for job in left {
                job.abandon(e);
            }
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
