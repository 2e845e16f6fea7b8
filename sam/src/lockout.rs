//! The one lockout rule (Part I 7.1.2.5.1), for every secret the service counts: a user's
//! password and a credential's activation factors (PIN, OTP). Consecutive failures are counted
//! atomically by storage; at the limit the secret locks, and a locked secret is refused even
//! when right, until an administrator unlocks it. The failure that sets the lock is audited as
//! a lock event of its own — exactly one, even among concurrent failures.

use serde_json::json;
use storage::{Conn, NewAuditEvent, StorageError};

use crate::AuditEvent as Event;

/// How many consecutive failures lock a secret (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    max_failures: i32,
}

/// A failure counter after one more failure was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub failures: i32,
    pub locked: bool,
}

impl Lockout {
    /// A limit of `max_failures` consecutive failures (a value below 1 counts as 1).
    pub fn new(max_failures: i32) -> Lockout {
        Lockout {
            max_failures: max_failures.max(1),
        }
    }

    /// The limit, as storage's atomic counters take it.
    pub fn limit(self) -> i32 {
        self.max_failures
    }

    /// Whether the failure that left the counter at `after` is the one that set the lock.
    /// Counters only grow until an unlock, so exactly one failure sees `failures == limit`.
    pub fn set_the_lock(self, after: Counted) -> bool {
        after.locked && after.failures == self.max_failures
    }

    /// Counts one failure with `count` (storage's atomic increment, which locks at the limit),
    /// writes `refusal` with the counter added to its detail, and — when this failure set the
    /// lock — runs `on_lock` (what a lock ends, e.g. a user's sessions) and writes a `lock`
    /// record naming `actor` and `subject` with `lock_detail`, the count and the members of the
    /// object `on_lock` returned. Runs inside the caller's transaction, so the count, what
    /// `on_lock` did and the records commit together.
    pub(crate) fn count_failure(
        self,
        c: &mut Conn<'_>,
        count: impl FnOnce(&mut Conn<'_>, i32) -> Result<Counted, StorageError>,
        mut refusal: NewAuditEvent,
        lock: (Event, &str, &str, serde_json::Value),
        on_lock: impl FnOnce(&mut Conn<'_>) -> Result<serde_json::Value, StorageError>,
    ) -> Result<Counted, StorageError> {
        let after = count(c, self.max_failures)?;
        // before any audit record: appending one holds the chain head until commit
        let ended = if self.set_the_lock(after) {
            Some(on_lock(c)?)
        } else {
            None
        };
        if let Some(map) = refusal.detail.as_object_mut() {
            map.insert("failures".into(), json!(after.failures));
            map.insert("locked".into(), json!(after.locked));
        }
        c.append_audit(&refusal)?;
        if let Some(ended) = ended {
            let (event, actor, subject, mut detail) = lock;
            if let Some(map) = detail.as_object_mut() {
                map.insert("failures".into(), json!(after.failures));
                if let serde_json::Value::Object(more) = ended {
                    map.extend(more);
                }
            }
            c.append_audit(&crate::audit_event(
                event, actor, subject, "success", detail,
            ))?;
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_failure_that_reaches_the_limit_sets_the_lock() {
        let l = Lockout::new(3);
        let at = |failures, locked| Counted { failures, locked };
        assert!(!l.set_the_lock(at(2, false)));
        assert!(l.set_the_lock(at(3, true)));
        assert!(!l.set_the_lock(at(4, true)));
        // a limit below 1 locks on the first failure
        assert!(Lockout::new(0).set_the_lock(at(1, true)));
        assert_eq!(Lockout::new(-5).limit(), 1);
    }
}
