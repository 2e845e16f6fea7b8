//! `csc-bench --smoke` end to end, so the benchmark cannot rot unnoticed (CI runs it in this
//! small smoke mode). Asserts that every row ran and signed without a single error, never a
//! speed: timed assertions do not belong in tests.
//!
//! Needs the `csc-server` binary of the same profile next to `csc-bench`, which the workspace
//! test run builds (csc-api's integration tests need it); run it with cargo-nextest.

// Tests may panic loudly: a failing test should say where and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn the_smoke_benchmark_runs_every_row_without_errors() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_csc-bench"));
    let server = bench.with_file_name("csc-server");
    assert!(
        server.exists(),
        "{} is missing: build it first (cargo build -p csc-api) or run the whole workspace's tests",
        server.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("bench.json");
    let out = Command::new(&bench)
        .args(["--smoke", "--no-build", "--server"])
        .arg(&server)
        .arg("--work-dir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run csc-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "csc-bench failed:\n{stdout}\n{stderr}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON report")).expect("JSON");

    // the baseline: 1 and 2 threads (+ the 100-digest call) for both algorithms
    let raw = report["raw"].as_array().expect("raw rows");
    assert_eq!(raw.len(), 6, "{raw:?}");
    assert!(raw.iter().all(|r| r["sigPerSec"].as_f64() > Some(0.0)));

    // every HTTP row, on both databases, signed and never failed
    let http = report["http"].as_array().expect("HTTP rows");
    // 2 algorithms x 2 databases x (3 signHash + 3 pairs + 2 batch)
    assert_eq!(http.len(), 32, "{stdout}");
    for row in http {
        assert_eq!(row["errors"], 0, "{row}");
        assert!(
            row["ops"].as_u64() > Some(0),
            "no operation measured: {row}"
        );
        assert!(row["ratioToBaseline"].as_f64() > Some(0.0), "{row}");
    }
    for kind in ["signhash", "pairs", "signhash_batch100"] {
        assert!(
            http.iter().any(|r| r["row"].as_str() == Some(kind)),
            "no {kind} row"
        );
    }
    // the PIN check the pairs pay, measured with the server's code
    assert!(
        report["argon2"]["meanMs"].as_f64() > Some(0.0),
        "{}",
        report["argon2"]
    );
    // the measurement behind the in-memory row MAC key (issue 11)
    assert!(
        report["rowMac"]["ratio"].as_f64() > Some(0.0),
        "{}",
        report["rowMac"]
    );
    // the scale check and audit verify ran on the loaded database: every row was measured on
    // both databases (how many rows had enough operations to compare depends on the machine's
    // speed, so only what was compared is checked)
    for db in ["empty", "loaded"] {
        assert_eq!(
            http.iter()
                .filter(|r| r["database"].as_str() == Some(db))
                .count(),
            16,
            "{db} rows: {stdout}"
        );
    }
    let scale = report["scale"].as_array().expect("scale rows");
    assert!(
        scale
            .iter()
            .all(|r| r["loadedOpsPerSec"].as_f64() > Some(0.0)),
        "{scale:?}"
    );
    for how in ["inProcess", "cli"] {
        let records = report["auditVerify"][how]["records"].as_u64().unwrap_or(0);
        assert!(
            records >= 10_000,
            "audit verify {how}: {}",
            report["auditVerify"]
        );
    }
    assert!(stdout.contains("Targets (issue 6)"), "{stdout}");
}
