//! What the operator's monitoring sees of the domain (README "Observability"): readiness (a
//! database round trip and an HSM session) and the live SADs and tokens, computed on demand; and
//! the counters the SAM records on the global `metrics` facade as it works (signatures,
//! authorizations, lockouts, alarms). The facade costs an atomic add per event once `csc-api`
//! installs its Prometheus recorder, nothing before; README "Observability" lists every name and
//! label. Labels are fixed sets of words, never user input, so the number of series stays bounded.

use std::time::Duration;

use crate::{Sam, SamError, SignMechanism};

pub use storage::LiveCounts;

/// How long [`Sam::readiness`] waits for a database connection.
const READY_DB_WAIT: Duration = Duration::from_secs(2);

/// The verdict of [`Sam::readiness`]: each part `Ok`, or why it is not ready (never a secret:
/// the database URL is shown without its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub database: Result<(), String>,
    pub hsm: Result<(), String>,
}

impl Readiness {
    /// Both parts answer.
    pub fn is_ready(&self) -> bool {
        self.database.is_ok() && self.hsm.is_ok()
    }
}

impl Sam {
    /// Whether this instance can serve: one database round trip (`SELECT 1` on a pooled
    /// connection, at most 2 s of waiting for one) and one HSM call on a pooled session
    /// (`C_GetSessionInfo`: the token answers and the session is logged in). Blocking.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            database: self.store.ping(READY_DB_WAIT).map_err(|e| e.to_string()),
            hsm: self.hsm.health_check().map_err(|e| e.to_string()),
        }
    }

    /// The SADs and service tokens usable now (three counts; a scrape's cost). Blocking.
    pub fn live_counts(&self) -> Result<LiveCounts, SamError> {
        let now = storage::utc_now();
        Ok(self.store.read(|c| c.live_counts(now))?)
    }
}

/// The label of a signature mechanism: the scheme and its hash (`RSA-PKCS1v15-SHA256`,
/// `RSA-PSS-SHA256`, `ECDSA-SHA384`); PSS parameters beyond the hash are left out.
pub(crate) fn algorithm_label(mech: &SignMechanism) -> String {
    let upper = |h: &crate::HashAlg| h.as_str().to_ascii_uppercase();
    match mech {
        SignMechanism::RsaPkcs1v15 { hash } => format!("RSA-PKCS1v15-{}", upper(hash)),
        SignMechanism::RsaPss { hash, .. } => format!("RSA-PSS-{}", upper(hash)),
        SignMechanism::Ecdsa { hash } => format!("ECDSA-{}", upper(hash)),
    }
}

/// `csc_signatures_total{algorithm, outcome}`: `count` signatures (hashes) of one signHash.
/// `outcome`: `success` (signed), `refused` (a CSC refusal: SAD, hash, algorithm...),
/// `failure` (the HSM failed; the SAD was given back) or `error` (the database failed).
/// `algorithm` is `unknown` when the request was refused before it was resolved.
pub(crate) fn count_signatures<T>(
    algorithm: Option<String>,
    result: &Result<T, SamError>,
    count: usize,
) {
    let outcome = match result {
        Ok(_) => "success",
        Err(SamError::SigningFailed) => "failure",
        Err(SamError::Storage(_) | SamError::Hsm(_) | SamError::Database { .. }) => "error",
        Err(_) => "refused",
    };
    metrics::counter!(
        "csc_signatures_total",
        "algorithm" => algorithm.unwrap_or_else(|| "unknown".into()),
        "outcome" => outcome
    )
    .increment(count as u64);
}

/// `csc_authorizations_total{via, outcome}`: one key activation (`via`: `authorize` for
/// `credentials/authorize`, `oauth2` for the consent page) granted or refused.
pub(crate) fn count_authorization<T>(via: &'static str, result: &Result<T, SamError>) {
    let outcome = match result {
        Ok(_) => "granted",
        Err(SamError::Storage(_) | SamError::Hsm(_) | SamError::Database { .. }) => "error",
        Err(_) => "refused",
    };
    metrics::counter!("csc_authorizations_total", "via" => via, "outcome" => outcome).increment(1);
}

/// `csc_lockouts_total{kind}`: a failure set a lock (`kind`: the lock's audit event,
/// `factor.lock` or `user.lock`).
pub(crate) fn count_lockout(kind: &'static str) {
    metrics::counter!("csc_lockouts_total", "kind" => kind).increment(1);
}

/// `csc_integrity_violations_total`: rows found with a bad MAC (each audited).
pub(crate) fn count_integrity_violations(n: usize) {
    if n > 0 {
        metrics::counter!("csc_integrity_violations_total").increment(n as u64);
    }
}

/// `csc_audit_write_failures_total`: best-effort audit records that could not be written.
pub(crate) fn count_audit_write_failure() {
    metrics::counter!("csc_audit_write_failures_total").increment(1);
}

/// `csc_audit_seal_failures_total`: seals of the audit head that could not be written.
pub(crate) fn count_seal_failure() {
    metrics::counter!("csc_audit_seal_failures_total").increment(1);
}

/// `csc_audit_seals_total`: seals of the audit head written.
pub(crate) fn count_seal() {
    metrics::counter!("csc_audit_seals_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashAlg;

    #[test]
    fn algorithm_labels_name_the_scheme_and_hash() {
        let l = algorithm_label(&SignMechanism::Ecdsa {
            hash: HashAlg::Sha256,
        });
        assert_eq!(l, "ECDSA-SHA256");
        let pss = algorithm_label(&SignMechanism::RsaPss {
            hash: HashAlg::Sha384,
            mgf_hash: HashAlg::Sha384,
            salt_len: 48,
        });
        assert_eq!(pss, "RSA-PSS-SHA384");
    }
}
