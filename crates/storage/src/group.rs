//! Group commit for the hot write path (issue 6).
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every commit waits for an
//! fsync of the WAL (about 0.4 ms on the CI machines). Writers that arrive while a commit is
//! under way queue their jobs; the next thread to get the in-process writer lock becomes the
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
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
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

/// A queued job, type-erased.
trait Job: Send {
    /// Runs the job inside the batch transaction (in its own savepoint), collecting its audit
    /// events; returns what to do once the batch is settled.
    fn run(self: Box<Self>, conn: &mut Conn<'_>, audit: &mut Vec<NewAuditEvent>) -> Finish;
    /// The batch failed before this job could run.
    fn abandon(self: Box<Self>, why: &StorageError);
}

struct Pending<T, F> {
    job: F,
    reply: SyncSender<Result<T, StorageError>>,
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
        match conn.atomic(|c| job(&mut Conn { conn: c })) {
            Ok((value, events)) => {
                audit.extend(events);
                Box::new(move |settled| {
                    // The caller may have gone (it never does: it waits); nothing to do then.
                    let _ = reply.send(settled.map(|()| value).map_err(settle_error));
                })
            }
            Err(e) => Box::new(move |_| {
                let _ = reply.send(Err(e));
            }),
        }
    }

    fn abandon(self: Box<Self>, why: &StorageError) {
        let _ = self.reply.send(Err(settle_error(why)));
    }
}

/// The in-process writer lock and the queue of grouped jobs. One per [`crate::Store`] (shared
/// by its clones).
#[derive(Default)]
pub(crate) struct WriterGate {
    lock: Mutex<()>,
    queue: Mutex<Vec<Box<dyn Job>>>,
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

    /// Queues `job`; the receiver gets its outcome once its batch is settled.
    pub(crate) fn enqueue<T, F>(&self, job: F) -> Receiver<Result<T, StorageError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn<'_>) -> Result<Grouped<T>, StorageError> + Send + 'static,
    {
        let (reply, rx) = sync_channel(1);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(Pending { job, reply }));
        rx
    }

    /// Runs every queued job in one transaction opened by `begin`. Call with the writer lock
    /// held: then a job that is no longer queued has already been answered.
    pub(crate) fn run_batch(
        &self,
        transaction: impl FnOnce(
            &mut dyn FnMut(&mut Conn<'_>) -> Result<(), StorageError>,
        ) -> Result<(), StorageError>,
    ) {
        let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        if jobs.is_empty() {
            return;
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
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
}

impl WriterGate {
    /// `(transactions, jobs)` run by group commit so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.jobs.load(Ordering::Relaxed),
        )
    }
}

/// Waits for a grouped job's outcome.
pub(crate) fn outcome<T>(rx: &Receiver<Result<T, StorageError>>) -> Result<T, StorageError> {
    rx.recv()
        .unwrap_or_else(|_| Err(StorageError::Commit("the batch writer stopped".into())))
}
