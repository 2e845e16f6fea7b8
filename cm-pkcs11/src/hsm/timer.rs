//! The latency of calls to the token, for the operator's monitoring: each timed operation
//! records its duration, when it ends (success or not), in the `csc_hsm_call_duration_seconds`
//! histogram of the global `metrics` facade, labelled by operation (a fixed set of names).
//! A no-op until a recorder is installed (the `serve` command installs one).

use std::time::Instant;

/// Times one operation from its creation to its drop.
pub(super) struct CallTimer {
    operation: &'static str,
    started: Instant,
}

impl CallTimer {
    /// Starts timing `operation` (`sign`, `hmac`, `generate_key`, `public_key`,
    /// `destroy_key`, `session_check`).
    pub(super) fn start(operation: &'static str) -> CallTimer {
        CallTimer {
            operation,
            started: Instant::now(),
        }
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        metrics::histogram!("csc_hsm_call_duration_seconds", "operation" => self.operation)
            .record(self.started.elapsed());
    }
}
