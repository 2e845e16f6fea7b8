//! What the binary-level tests share: `csc-conformance` run with `--json` against a defective
//! server, and the checks of its report by id.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// One run of the binary: what it printed and the JSON report it wrote.
pub struct Run {
    pub stdout: String,
    pub report: Value,
}

/// Runs `csc-conformance ARGS --json JSON`; a defective server gets a failing report, which
/// exits 1.
pub fn run_suite(args: &[&str], json: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_csc-conformance"))
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run csc-conformance");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failing report exits 1:\n{stdout}"
    );
    let report = serde_json::from_slice(&std::fs::read(json).expect("JSON report")).expect("JSON");
    Run { stdout, report }
}

impl Run {
    /// The status (`pass`, `fail`, `skip`) of check `id`.
    pub fn status(&self, id: &str) -> String {
        self.report["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}"))["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts that every check of `ids` ended `want`.
    pub fn assert_all(&self, want: &str, ids: &[&str]) {
        for id in ids {
            assert_eq!(self.status(id), want, "{id}:\n{}", self.stdout);
        }
    }

    /// Asserts that every skip says why.
    pub fn assert_skips_say_why(&self) {
        for r in self.report["results"].as_array().expect("results") {
            if r["status"] == "skip" {
                assert!(r["detail"].as_str().is_some_and(|d| !d.is_empty()), "{r}");
            }
        }
    }
}
