//! A black-box CSC conformance suite: talks HTTP to a base URL and checks the rules of the
//! specification one by one, for API v1 (v1.0.4.0, under `/csc/v1`) or v2 (v2.0.0.2, under
//! `/csc/v2`). Each check of the [catalogue](checks::catalogue_for) names the section it comes
//! from (a v2 check its v2 clause, e.g. `v2 §11.6`), covers one rule and ends as pass, fail or
//! skipped (with the reason). [`run`] is what the `csc-conformance` binary calls; tests call it
//! directly.

pub mod checks;
pub mod crypto;
pub mod ctx;
pub mod http;
pub mod report;
pub mod tsp;

use std::time::{Duration, Instant};

pub use report::{CheckResult, Outcome, Report, Status};

/// The specification version the suite checks against in v1 mode.
pub const SPEC_UNDER_TEST: &str = csc_types::SPECS_VERSION;

/// The specification version the suite checks against in v2 mode.
pub const SPEC_UNDER_TEST_V2: &str = "2.0.0.2";

/// Which CSC API the suite speaks and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// CSC API v1.0.4.0 under `{base}/csc/v1/`.
    #[default]
    V1,
    /// CSC API v2.0.0.2 under `{base}/csc/v2/`.
    V2,
}

impl Api {
    /// The path segment after `/csc/`: `v1` or `v2`.
    pub fn segment(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V2 => "v2",
        }
    }

    /// The specification version checked in this mode.
    pub fn spec(self) -> &'static str {
        match self {
            Api::V1 => SPEC_UNDER_TEST,
            Api::V2 => SPEC_UNDER_TEST_V2,
        }
    }
}

/// How the suite authenticates as a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `auth/login` with HTTP Basic.
    Login { user: String, password: String },
    /// A service access token obtained elsewhere (OAuth2, or a server without authentication).
    Token(String),
}

/// What to test and with what.
#[derive(Debug, Clone)]
pub struct Config {
    /// The part of the URL before `/csc/v1` (or `/csc/v2`).
    pub base_url: String,
    /// The API version under test (v1 unless set).
    pub api: Api,
    /// The user under test.
    pub identity: Option<Identity>,
    /// A second user, for the checks that one user cannot use another's credentials or SADs.
    pub other: Option<Identity>,
    /// Credentials of the user under test (SCAL 1 or 2: read from credentials/info); the
    /// first is the primary one.
    pub credentials: Vec<String>,
    /// A SCAL 2 credential of the user under test, for the hash-binding checks.
    pub scal2_credential: Option<String>,
    /// The PIN of the credentials.
    pub pin: Option<String>,
    /// A shell command that prints a fresh OTP (its last line), run with `CSC_CREDENTIAL_ID`
    /// set; for an online OTP `credentials/sendOTP` (v2: `credentials/getChallenge`) is called
    /// first.
    pub otp_command: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Config {
    pub fn new(base_url: impl Into<String>) -> Config {
        Config {
            base_url: base_url.into(),
            api: Api::V1,
            identity: None,
            other: None,
            credentials: Vec::new(),
            scal2_credential: None,
            pin: None,
            otp_command: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Runs every check of the catalogue of `config.api` against `config.base_url`, in order.
pub fn run(config: &Config) -> Report {
    run_with(config, |_| {})
}

/// [`run`], calling `progress` after each check (the binary prints as it goes).
pub fn run_with(config: &Config, mut progress: impl FnMut(&CheckResult)) -> Report {
    let started = Instant::now();
    let mut ctx = ctx::Ctx::new(config);
    let mut results = Vec::new();
    for check in checks::catalogue_for(config.api) {
        let t = Instant::now();
        let outcome = check.run(&mut ctx);
        let duration_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, detail, expected, got) = match outcome {
            Outcome::Pass(d) => (Status::Pass, Some(d), None, None),
            Outcome::Skip(d) => (Status::Skip, Some(d), None, None),
            Outcome::Fail { expected, got } => (Status::Fail, None, Some(expected), Some(got)),
        };
        let result = CheckResult {
            id: check.id.clone(),
            section: check.section.clone(),
            rule: check.rule.clone(),
            status,
            detail,
            expected,
            got,
            duration_ms,
        };
        progress(&result);
        results.push(result);
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Report::new(&config.base_url, config.api.spec(), results, duration_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue of `api`: unique ids, at least `min` checks, every id starting with
    /// `prefix` (`""` or `"v2."`), every section with `section` (`§` or `v2 §`), every rule
    /// said, and `auth/revoke` last among the requests (before the 2 error-body checks).
    fn assert_catalogue(api: Api, min: usize, prefix: &str, section: &str) -> Vec<checks::Check> {
        let all = checks::catalogue_for(api);
        let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate ids");
        assert!(n >= min, "{n} checks");
        for c in &all {
            assert!(c.id.starts_with(prefix), "{}", c.id);
            assert!(c.section.starts_with(section), "{}: {}", c.id, c.section);
            assert!(!c.rule.is_empty(), "{}", c.id);
        }
        let last_requests: Vec<&str> = all
            .iter()
            .rev()
            .skip(2)
            .take(4)
            .map(|c| c.id.as_str())
            .collect();
        let revoke = format!("{prefix}revoke.");
        assert!(
            last_requests.iter().all(|id| id.starts_with(&revoke)),
            "revoke runs last: {last_requests:?}"
        );
        all
    }

    /// Every skip of `report` says why.
    fn assert_skips_say_why(report: &Report) {
        for r in &report.results {
            if r.status == Status::Skip {
                assert!(
                    r.detail.as_deref().is_some_and(|d| !d.is_empty()),
                    "{}",
                    r.id
                );
            }
        }
    }

    #[test]
    fn check_ids_are_unique_and_every_check_names_a_section() {
        assert_catalogue(Api::V1, 60, "", "§");
    }

    #[test]
    fn every_v2_check_names_its_v2_clause_and_revoke_runs_last() {
        let all = assert_catalogue(Api::V2, 120, "v2.", "v2 §");
        // the clauses v2.0.0.2 renumbered
        let section = |id: &str| all.iter().find(|c| c.id == id).map(|c| c.section.clone());
        assert_eq!(
            section("v2.signhash.missing-SAD").as_deref(),
            Some("v2 §11.10 signatures/signHash")
        );
        assert_eq!(
            section("v2.extend.new-sad").as_deref(),
            Some("v2 §11.9 credentials/extendTransaction")
        );
        assert_eq!(
            section("v2.timestamp.nonce").as_deref(),
            Some("v2 §11.13 signatures/timestamp")
        );
        assert_eq!(
            section("v2.credinfo.key.len").as_deref(),
            Some("v2 §11.5 credentials/info")
        );
        // v1 is unchanged: no v2 check in it
        assert!(checks::catalogue().iter().all(|c| !c.id.starts_with("v2.")));
    }

    #[test]
    fn a_v2_run_talks_to_csc_v2() {
        let mut config = Config::new("http://127.0.0.1:9/");
        config.api = Api::V2;
        assert_eq!(
            http::Http::for_api(&config.base_url, config.api, config.timeout).url("info"),
            "http://127.0.0.1:9/csc/v2/info"
        );
        assert_eq!(
            http::Http::new(&config.base_url, config.timeout).url("info"),
            "http://127.0.0.1:9/csc/v1/info"
        );
        config.timeout = Duration::from_secs(2);
        config.identity = Some(Identity::Token("t".into()));
        let report = run(&config);
        assert_eq!(report.spec, SPEC_UNDER_TEST_V2);
        assert_eq!(
            report.result("v2.info.status").map(|r| r.status),
            Some(Status::Fail)
        );
        assert_skips_say_why(&report);
    }

    #[test]
    fn a_server_that_is_not_there_fails_and_skips_with_reasons() {
        let mut config = Config::new("http://127.0.0.1:9");
        config.timeout = Duration::from_secs(2);
        config.identity = Some(Identity::Token("t".into()));
        let report = run(&config);
        assert!(report.failed >= 1);
        assert_eq!(
            report.result("info.status").map(|r| r.status),
            Some(Status::Fail)
        );
        assert_skips_say_why(&report);
        assert!(
            report
                .render()
                .ends_with(&format!("{}\n", report.summary()))
        );
    }
}
