//! The requirement table cannot drift (issue 14, "Requirement traceability"):
//! `docs/requirements.md` is parsed and every row checked against the repository: its id is in
//! `docs/requirements-source.md`, a claimed row names code that exists and tests that exist as
//! `#[test]` functions in the named files. Reads files only: no server, no token.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

const COLUMNS: [&str; 5] = ["id", "requirement", "status", "code", "tests"];
const CLAIMED: [&str; 2] = ["met", "partial"];
const UNCLAIMED: [&str; 2] = ["not claimed", "not met"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The claimable ids: the `- ID` lines of the source list.
fn source_ids(source: &str) -> HashSet<String> {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(|id| id.trim().to_owned())
        .collect()
}

/// The cells of a table line, trimmed (`| a | b |` → `["a", "b"]`).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

/// The `backticked` items of a cell.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Whether `file` has `fn name(` under a test attribute (doc comments and other attributes may
/// sit between them).
fn is_test_fn(file: &str, name: &str) -> bool {
    let lines: Vec<&str> = file.lines().map(str::trim).collect();
    let signature = format!("fn {name}(");
    lines.iter().enumerate().any(|(i, l)| {
        let is_fn = l.starts_with(&signature)
            || l.starts_with(&format!("async {signature}"))
            || l.starts_with(&format!("pub {signature}"));
        is_fn
            && lines[..i]
                .iter()
                .rev()
                .take_while(|p| p.starts_with("#[") || p.starts_with("//"))
                .any(|p| p.starts_with("#[") && p.ends_with("test]"))
    })
}

/// Every problem of `table` against the claimable ids and the files under `root`.
fn problems(table: &str, ids: &HashSet<String>, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut lines = table.lines().skip_while(|l| !l.starts_with("| id |"));
    match lines.next() {
        Some(header) if cells(header) == COLUMNS => {}
        other => {
            out.push(format!("no table with the columns {COLUMNS:?}: {other:?}"));
            return out;
        }
    }
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
    let mut rows = 0;
    for line in lines.take_while(|l| l.starts_with('|')) {
        if line.starts_with("|---") {
            continue;
        }
        rows += 1;
        let c = cells(line);
        let [id, _text, status, code, tests] = c.as_slice() else {
            out.push(format!("not 5 cells: {line}"));
            continue;
        };
        if !ids.contains(id) {
            out.push(format!("{id}: not in the source list"));
        }
        if !seen.insert(id.clone()) {
            out.push(format!("{id}: listed twice"));
        }
        if UNCLAIMED.contains(&status.as_str()) {
            if code != "—" || quoted(tests).iter().any(|t| t.contains("::")) {
                out.push(format!("{id}: {status} but cites code or tests"));
            }
            continue;
        }
        if !CLAIMED.contains(&status.as_str()) {
            out.push(format!("{id}: unknown status {status:?}"));
            continue;
        }
        let code = quoted(code);
        if code.is_empty() {
            out.push(format!("{id}: {status} without code"));
        }
        for item in code {
            let (path, name) = item.split_once('#').unwrap_or((item.as_str(), ""));
            match read(path) {
                None if !root.join(path).is_dir() => {
                    out.push(format!("{id}: code {path} does not exist"))
                }
                Some(text) if !text.contains(name) => {
                    out.push(format!("{id}: {name} is not in {path}"))
                }
                _ => {}
            }
        }
        let tests = quoted(tests);
        if tests.is_empty() {
            out.push(format!("{id}: {status} without a test"));
        }
        for t in tests {
            let Some((path, name)) = t.split_once("::") else {
                out.push(format!("{id}: {t:?} is not path::test_name"));
                continue;
            };
            match read(path) {
                None => out.push(format!("{id}: test file {path} does not exist")),
                Some(text) if !is_test_fn(&text, name) => {
                    out.push(format!("{id}: no #[test] fn {name} in {path}"))
                }
                Some(_) => {}
            }
        }
    }
    if rows == 0 {
        out.push("the table has no rows".into());
    }
    out
}

/// Issue 14: a row whose test or code no longer exists, a claimed row without a test, or an id
/// the source list does not have fails the build.
#[test]
fn the_requirement_table_cites_only_code_and_tests_that_exist() {
    let root = root();
    let table = std::fs::read_to_string(root.join("docs/requirements.md")).expect("table");
    let source =
        std::fs::read_to_string(root.join("docs/requirements-source.md")).expect("source list");
    let ids = source_ids(&source);
    assert!(ids.contains("I 3.5.1") && ids.len() > 50, "{ids:?}");
    let found = problems(&table, &ids, &root);
    assert!(
        found.is_empty(),
        "docs/requirements.md:\n{}",
        found.join("\n")
    );
}

/// The checker itself finds each kind of drift (on a table of its own, against this repository).
#[test]
fn the_requirement_check_finds_missing_tests_code_and_unknown_ids() {
    let root = root();
    let ids: HashSet<String> = ["I 1", "I 2", "I 3", "I 4", "I 5", "I 6"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let me = "csc-api/tests/it/requirements.rs";
    // built, so that this file does not contain it
    let missing = ["no", "such", "item"].join("_");
    let table = format!(
        "| id | requirement | status | code | tests |\n|---|---|---|---|---|\n\
         | I 1 | fine | met | `{me}#problems` | `{me}::the_requirement_check_finds_missing_tests_code_and_unknown_ids` |\n\
         | I 2 | gone test | met | `{me}` | `{me}::a_test_that_was_removed` |\n\
         | I 3 | not a test | met | `{me}` | `{me}::root` |\n\
         | I 4 | gone code | partial | `csc-api/src/nowhere.rs` | `{me}::the_requirement_table_cites_only_code_and_tests_that_exist` |\n\
         | I 5 | no test | met | `{me}` | — |\n\
         | II 9 | unknown id | not claimed | — | — |\n\
         | I 6 | gone item | met | `{me}#{missing}` | `{me}::the_requirement_table_cites_only_code_and_tests_that_exist` |\n"
    );
    let found = problems(&table, &ids, &root);
    let expected = [
        format!("I 2: no #[test] fn a_test_that_was_removed in {me}"),
        format!("I 3: no #[test] fn root in {me}"),
        "I 4: code csc-api/src/nowhere.rs does not exist".to_owned(),
        "I 5: met without a test".to_owned(),
        "II 9: not in the source list".to_owned(),
        format!("I 6: {missing} is not in {me}"),
    ];
    assert_eq!(found, expected);
}
