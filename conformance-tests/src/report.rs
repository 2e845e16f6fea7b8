//! What one run found: one result per check of the catalogue, in catalogue order.

use std::fmt::Write as _;

use serde::Serialize;

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server follows the rule; the text says what was seen.
    Pass(String),
    /// The server breaks the rule.
    Fail { expected: String, got: String },
    /// The rule could not be exercised (a method not listed in `info.methods`, a missing
    /// identity or factor, a prerequisite that failed); the text says why.
    Skip(String),
}

impl Outcome {
    pub fn pass(detail: impl Into<String>) -> Outcome {
        Outcome::Pass(detail.into())
    }

    pub fn fail(expected: impl Into<String>, got: impl Into<String>) -> Outcome {
        Outcome::Fail {
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub fn skip(reason: impl Into<String>) -> Outcome {
        Outcome::Skip(reason.into())
    }

    /// Pass when `ok`, else fail with `expected` and `got`.
    pub fn check(ok: bool, expected: impl Into<String>, got: impl Into<String>) -> Outcome {
        let got = got.into();
        if ok {
            Outcome::Pass(got)
        } else {
            Outcome::fail(expected, got)
        }
    }
}

/// `pass`, `fail` or `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: String,
    /// Where the rule comes from, e.g. `§11.9 signatures/signHash`.
    pub section: String,
    /// The rule, in one sentence.
    pub rule: String,
    pub status: Status,
    /// What was seen (pass), or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    pub duration_ms: u64,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub base_url: String,
    /// The specification version checked against.
    pub spec: String,
    pub results: Vec<CheckResult>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub duration_ms: u64,
}

impl Report {
    pub(crate) fn new(
        base_url: &str,
        spec: &str,
        results: Vec<CheckResult>,
        duration_ms: u64,
    ) -> Report {
        let count = |s| results.iter().filter(|r| r.status == s).count();
        Report {
            base_url: base_url.to_owned(),
            spec: spec.to_owned(),
            passed: count(Status::Pass),
            failed: count(Status::Fail),
            skipped: count(Status::Skip),
            results,
            duration_ms,
        }
    }

    /// The result of the check `id`, if it ran.
    pub fn result(&self, id: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// The ids of the failed checks.
    pub fn failed_ids(&self) -> Vec<&str> {
        self.ids_with(Status::Fail)
    }

    /// The ids of the checks with `status`.
    pub fn ids_with(&self, status: Status) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| r.status == status)
            .map(|r| r.id.as_str())
            .collect()
    }

    /// The closing line: `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    /// The readable report: one line per check (and the expectation under a failure), then the
    /// summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "CSC {} conformance of {} ({} checks)",
            self.spec,
            self.base_url,
            self.results.len()
        );
        let width = self.results.iter().map(|r| r.id.len()).max().unwrap_or(0);
        for r in &self.results {
            let _ = write!(
                out,
                "{} {:width$}  {}",
                r.status.label(),
                r.id,
                r.section,
                width = width
            );
            match r.status {
                Status::Pass => {}
                Status::Skip => {
                    let _ = write!(out, " — {}", r.detail.as_deref().unwrap_or(""));
                }
                Status::Fail => {
                    let _ = write!(
                        out,
                        " — {}\n       expected: {}\n       got:      {}",
                        r.rule,
                        r.expected.as_deref().unwrap_or(""),
                        r.got.as_deref().unwrap_or("")
                    );
                }
            }
            out.push('\n');
        }
        let _ = writeln!(out, "took {:.1} s", self.duration_ms as f64 / 1000.0);
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}
