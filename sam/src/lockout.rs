//! The one lockout rule (Part I 7.1.2.5.1), for every secret the service counts: a user's
//! password and a credential's activation factors (PIN, OTP). It counts first (every limit
//! holds under concurrency: count first, then act; storage's `lockout` module has the
//! statements):
//!
//! 1. `Lockout::reserve`: every attempt takes its failure slot BEFORE the secret is verified,
//!    in one conditional update that also checks the lock. No slot: refused as locked, the
//!    secret unverified. So with a limit of N, at most N attempts are verified between two
//!    successes, however many arrive at once (before, every attempt that read "unlocked"
//!    was verified: 6 to 12 of 32 concurrent wrong PINs against a limit of 5).
//! 2. `Lockout::fail`: a wrong value keeps its slot; the failure whose count has reached the
//!    limit sets the lock, audited as a lock event of its own — exactly once, even among
//!    concurrent failures.
//! 3. `Lockout::clear`: a right value clears the counter in the transaction that grants (the
//!    SAD, the code, the tokens, the sign-in), refused if the secret locked meanwhile.
//! 4. `Lockout::release`: an attempt neither right nor wrong for this secret (another factor
//!    of the same activation was wrong or locked) gives its slot back.
//!
//! A crash between the reservation and the outcome leaves the slot counted (conservative). A
//! locked secret is refused even when right, until an administrator unlocks it.
//!
//! [`SecretChecks`] counts the verifications themselves, so the rule's effect is observable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use storage::{Conn, Counter, NewAuditEvent, StorageError};

use crate::AuditEvent as Event;

/// How many consecutive failures lock a secret (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    max_failures: i32,
    /// How long an attempt waits for a slot held by attempts in flight
    /// ([`Lockout::until_not_busy`]).
    slot_wait: std::time::Duration,
}

/// A failure counter after a failure was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Failures counted (attempts still in flight included).
    pub failures: i32,
    /// Whether the secret is locked now.
    pub locked: bool,
    /// Whether this failure set the lock (exactly one failure does).
    pub set_lock: bool,
}

impl Lockout {
    /// A limit of `max_failures` consecutive failures (a value below 1 counts as 1).
    pub fn new(max_failures: i32) -> Lockout {
        Lockout {
            max_failures: max_failures.max(1),
            slot_wait: std::time::Duration::from_secs(5),
        }
    }

    /// This lockout with another bound on the wait for a slot held by attempts in flight.
    pub fn with_slot_wait(self, slot_wait: std::time::Duration) -> Lockout {
        Lockout { slot_wait, ..self }
    }

    /// Runs `attempt` until its answer is not [`Reservation::Busy`], waiting [`SLOT_POLL`]
    /// between tries. `attempt(patient)`: once the slot wait has passed, `patient` is false and
    /// the attempt must answer a busy slot as [`Reservation::Locked`]. Attempts in flight
    /// settle in milliseconds; the wait only spares a signer with many parallel activations a
    /// spurious "PIN locked".
    pub(crate) fn until_not_busy<T, E>(
        self,
        mut attempt: impl FnMut(bool) -> Result<(Reservation, T), E>,
    ) -> Result<(Reservation, T), E> {
        let deadline = std::time::Instant::now() + self.slot_wait;
        loop {
            let patient = std::time::Instant::now() < deadline;
            let (got, value) = attempt(patient)?;
            if got != Reservation::Busy {
                return Ok((got, value));
            }
            std::thread::sleep(SLOT_POLL);
        }
    }

    /// How long an attempt waits for a slot held by attempts in flight.
    pub(crate) fn slot_wait(self) -> std::time::Duration {
        self.slot_wait
    }

    /// The limit, as storage's counters take it.
    pub fn limit(self) -> i32 {
        self.max_failures
    }

    /// Step 1: reserves the attempt's failure slot of `counter` before its secret is verified.
    /// [`Reservation::Locked`]: refused as locked, the secret must not be verified;
    /// [`Reservation::Busy`]: not locked, but every slot is held by failures and attempts still in
    /// flight: the caller waits a little and asks again ([`Lockout::until_not_busy`]), since an
    /// attempt in flight may yet succeed and clear the count.
    pub(crate) fn reserve(
        self,
        c: &mut Conn<'_>,
        counter: Counter,
    ) -> Result<Reservation, StorageError> {
        if c.reserve_attempt(counter, self.max_failures)? {
            return Ok(Reservation::Reserved);
        }
        Ok(match c.attempts(counter)? {
            Some((_, false)) => Reservation::Busy,
            _ => Reservation::Locked,
        })
    }

    /// Step 2, after a wrong value: the slot stays counted; the lock is set when the count has
    /// reached the limit. Writes `refusal` with the counter added to its detail and — when this
    /// failure set the lock — a `lock` record naming `actor` and `subject` with `lock_detail`
    /// and the count. Runs inside the caller's transaction, so the lock and its records commit
    /// together.
    ///
    /// When this failure set the lock, `on_lock` runs first (what a lock ends, e.g. a user's
    /// sessions), and the members of the object it returns join the lock record's detail.
    pub(crate) fn fail(
        self,
        c: &mut Conn<'_>,
        counter: Counter,
        mut refusal: NewAuditEvent,
        lock: (Event, &str, &str, serde_json::Value),
        on_lock: impl FnOnce(&mut Conn<'_>) -> Result<serde_json::Value, StorageError>,
    ) -> Result<Counted, StorageError> {
        let set_lock = c.lock_at_limit(counter, self.max_failures)?;
        // before any audit record: appending one holds the chain head until commit
        let ended = if set_lock { Some(on_lock(c)?) } else { None };
        let (failures, locked) = c.attempts(counter)?.ok_or(StorageError::NotFound)?;
        if let Some(map) = refusal.detail.as_object_mut() {
            map.insert("failures".into(), json!(failures));
            map.insert("locked".into(), json!(locked));
        }
        c.append_audit(&refusal)?;
        if let Some(ended) = ended {
            let (event, actor, subject, mut detail) = lock;
            crate::observe::count_lockout(event.as_str());
            if let Some(map) = detail.as_object_mut() {
                map.insert("failures".into(), json!(failures));
                if let serde_json::Value::Object(more) = ended {
                    map.extend(more);
                }
            }
            c.append_audit(&crate::audit_event(
                event, actor, subject, "success", detail,
            ))?;
        }
        Ok(Counted {
            failures,
            locked,
            set_lock,
        })
    }

    /// Step 3, after a right value, inside the granting transaction: clears the counter.
    /// `false`: the secret locked since the reservation; the caller refuses the grant and rolls
    /// its transaction back.
    pub(crate) fn clear(self, c: &mut Conn<'_>, counter: Counter) -> Result<bool, StorageError> {
        c.clear_attempts(counter)
    }

    /// Step 4: gives back the slot of an attempt that was neither right nor wrong for this
    /// secret.
    pub(crate) fn release(self, c: &mut Conn<'_>, counter: Counter) -> Result<(), StorageError> {
        c.release_attempt(counter)
    }
}

/// What [`Lockout::reserve`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// A failure slot is this attempt's: verify the secret.
    Reserved,
    /// The secret is locked (or its row is gone): refuse, unverified.
    Locked,
    /// Every slot is held by attempts in flight: wait and ask again.
    Busy,
}

/// How often an attempt asks again for a slot held by attempts in flight.
pub(crate) const SLOT_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// How many times each kind of secret was compared with its verifier since the SAM opened:
/// what an online guesser gets (monitoring: a jump is guessing), and what the lockout tests
/// count to show that a reservation refused means a secret NOT verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretChecks {
    /// PINs verified against a credential's PIN verifier.
    pub pins: u64,
    /// OTPs checked against a credential's TOTP secret or pending online code.
    pub otps: u64,
    /// Passwords verified against a user's verifier (never the dummy of an unknown or locked
    /// user).
    pub passwords: u64,
}

/// The counters behind [`SecretChecks`], shared by the clones of a SAM.
#[derive(Debug, Default, Clone)]
pub(crate) struct CheckCounter(Arc<[AtomicU64; 3]>);

/// Which secret was checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Checked {
    Pin = 0,
    Otp = 1,
    Password = 2,
}

impl CheckCounter {
    /// Counts one verification; call it right where the secret meets its verifier.
    pub(crate) fn count(&self, what: Checked) {
        if let Some(n) = self.0.get(what as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> SecretChecks {
        let get = |what: Checked| {
            self.0
                .get(what as usize)
                .map_or(0, |n| n.load(Ordering::Relaxed))
        };
        SecretChecks {
            pins: get(Checked::Pin),
            otps: get(Checked::Otp),
            passwords: get(Checked::Password),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_below_one_count_as_one() {
        assert_eq!(Lockout::new(0).limit(), 1);
        assert_eq!(Lockout::new(-5).limit(), 1);
        assert_eq!(Lockout::new(5).limit(), 5);
    }

    #[test]
    fn checks_are_counted_per_kind_and_shared_by_clones() {
        let c = CheckCounter::default();
        let clone = c.clone();
        c.count(Checked::Pin);
        clone.count(Checked::Pin);
        c.count(Checked::Password);
        assert_eq!(
            c.snapshot(),
            SecretChecks {
                pins: 2,
                otps: 0,
                passwords: 1
            }
        );
    }
}
