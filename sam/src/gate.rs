//! The bound on password checks (README "Threat model": bounded cost of bad logins). A password
//! check is an Argon2id of 19 MiB and tens of milliseconds of CPU, for an unknown user as for a
//! known one: without a bound, a flood of bad logins runs as many at once as the blocking pool has
//! threads (hundreds), and the server's memory grows with the flood. [`PasswordGate`] lets
//! `concurrency` checks run at once and `queue` more wait for a turn; any further check is refused
//! at once ([`crate::SamError::LoginBusy`], HTTP 429 `temporarily_unavailable` with `Retry-After`
//! at the edge), before it reads the database or allocates anything.
//!
//! A refused check is logged, not audited: an audit record is a database write, and the point of
//! refusing is that a flood costs nothing.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// How many password checks may run at once, and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Checks that run at once (at least 1).
    pub concurrency: usize,
    /// Checks that may wait for a turn; beyond them a check is refused (0: none waits).
    pub queue: usize,
}

impl Default for LoginLimits {
    /// `concurrency` = 2 × the available cores, `queue` = 4 × `concurrency`.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let concurrency = cores.saturating_mul(2);
        LoginLimits {
            concurrency,
            queue: concurrency.saturating_mul(4),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    waiting: usize,
    refused: u64,
}

struct Inner {
    limits: LoginLimits,
    state: Mutex<State>,
    turn: Condvar,
}

/// A counting semaphore with a bounded queue, for blocking callers (the checks run on the
/// blocking pool). Cheap to clone: clones share the bound.
#[derive(Clone)]
pub struct PasswordGate(Arc<Inner>);

impl fmt::Debug for PasswordGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordGate")
            .field("limits", &self.0.limits)
            .field("state", &*self.state())
            .finish()
    }
}

/// A turn to check a password; the next waiter goes when it is dropped.
pub struct GatePermit(Arc<Inner>);

impl Drop for GatePermit {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.running = s.running.saturating_sub(1);
        drop(s);
        self.0.turn.notify_one();
    }
}

impl fmt::Debug for GatePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatePermit")
    }
}

/// What the gate holds now (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLoad {
    /// Checks running.
    pub running: usize,
    /// Checks waiting for a turn.
    pub waiting: usize,
    /// Checks refused since the gate was made.
    pub refused: u64,
}

impl PasswordGate {
    /// A gate with these limits (a `concurrency` below 1 counts as 1).
    pub fn new(limits: LoginLimits) -> PasswordGate {
        PasswordGate(Arc::new(Inner {
            limits: LoginLimits {
                concurrency: limits.concurrency.max(1),
                queue: limits.queue,
            },
            state: Mutex::new(State::default()),
            turn: Condvar::new(),
        }))
    }

    /// The limits.
    pub fn limits(&self) -> LoginLimits {
        self.0.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A turn: at once when fewer than `concurrency` checks run and none waits, after waiting
    /// when the queue has room, else `None` (refused). Blocks while it waits.
    pub fn enter(&self) -> Option<GatePermit> {
        let limits = self.0.limits;
        let mut s = self.state();
        // first come, first served: a newcomer does not overtake a waiter
        if s.running < limits.concurrency && s.waiting == 0 {
            s.running += 1;
            return Some(GatePermit(self.0.clone()));
        }
        if s.waiting >= limits.queue {
            s.refused = s.refused.saturating_add(1);
            return None;
        }
        s.waiting += 1;
        while s.running >= limits.concurrency {
            s = self.0.turn.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.waiting -= 1;
        s.running += 1;
        drop(s);
        // another turn may be free too (several permits dropped before this waiter woke)
        self.0.turn.notify_one();
        Some(GatePermit(self.0.clone()))
    }

    /// What the gate holds now.
    pub fn load(&self) -> GateLoad {
        let s = self.state();
        GateLoad {
            running: s.running,
            waiting: s.waiting,
            refused: s.refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(concurrency: usize, queue: usize) -> PasswordGate {
        PasswordGate::new(LoginLimits { concurrency, queue })
    }

    #[test]
    fn beyond_concurrency_and_queue_a_check_is_refused() {
        let g = gate(1, 0);
        let held = g.enter().expect("the first turn");
        assert!(
            g.enter().is_none(),
            "no queue: refused while the turn is held"
        );
        assert_eq!(
            g.load(),
            GateLoad {
                running: 1,
                waiting: 0,
                refused: 1
            }
        );
        drop(held);
        assert!(g.enter().is_some(), "free again");
    }

    #[test]
    fn a_waiter_gets_the_next_turn_and_the_queue_is_bounded() {
        let g = gate(1, 1);
        let held = g.enter().expect("the first turn");
        let waiter = {
            let g = g.clone();
            std::thread::spawn(move || g.enter().map(drop).is_some())
        };
        while g.load().waiting < 1 {
            std::thread::yield_now();
        }
        // the queue (1) is full: the next is refused at once
        assert!(g.enter().is_none());
        drop(held);
        assert!(waiter.join().expect("waiter"), "the waiter got its turn");
        assert_eq!(
            g.load(),
            GateLoad {
                running: 0,
                waiting: 0,
                refused: 1
            }
        );
    }

    #[test]
    fn defaults_scale_with_the_cores() {
        let d = LoginLimits::default();
        assert!(d.concurrency >= 2);
        assert_eq!(d.queue, 4 * d.concurrency);
        // a concurrency of 0 still lets one check run
        assert!(gate(0, 0).enter().is_some());
    }
}
