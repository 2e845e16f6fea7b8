//! The test harness: the real `csc-server` binary on a temporary data directory with its own
//! SoftHSM2 token and SQLite database (lldap-style), and small HTTP helpers.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_csc-server");
pub fn csc(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("CSC_") || k == "SOFTHSM2_CONF" {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

pub fn run_ok(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("spawn csc-server");
    assert!(
        out.status.success(),
        "csc-server failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON value")
}

pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// A running server, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub first_stdout: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(mut cmd: Command) -> Server {
    let mut child = cmd
        .arg("--listen")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server printed its address");
    let mut first_stdout = String::new();
    if let Some(out) = child.stdout.take() {
        // demo prints one JSON document before serving; serve prints nothing
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                s.push_str(&line);
                s.push('\n');
                if line == "}" {
                    let _ = tx.send(s.clone());
                }
            }
        });
        first_stdout = rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    }
    Server {
        child,
        base,
        first_stdout,
    }
}

pub fn post(base: &str, path: &str, body: &'static str) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

pub fn decode(b64: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
