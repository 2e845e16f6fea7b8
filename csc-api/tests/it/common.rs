//! The binary harness: the real `csc-server` binary on a temporary data directory with its own
//! SoftHSM2 token and SQLite database (lldap-style), and small HTTP helpers; for the tests about
//! the binary (its commands, several processes, the server log, outside tools). Behaviour tests
//! use the in-process [`crate::kit`].

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
    /// Everything the server wrote on standard error so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
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
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
            if let Ok(mut l) = sink.lock() {
                l.push_str(&line);
                l.push('\n');
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
        log,
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

/// Sets the OTP verifier of a credential in an SQLite database with SQL of the test's own: how a
/// database made before TOTP seeds moved into the token (a base32 seed) or a broken one looks.
pub fn set_otp_verifier(db: &Path, credential: &str, verifier: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    let n = diesel::sql_query(
        "UPDATE credential_factors SET verifier = ? WHERE credential_id = ? AND kind = 'otp'",
    )
    .bind::<diesel::sql_types::Text, _>(verifier)
    .bind::<diesel::sql_types::Text, _>(credential)
    .execute(&mut conn)
    .expect("update");
    assert_eq!(n, 1, "the credential has an OTP factor");
}

/// Makes an SQLite database refuse every audit record of `event` (a trigger, SQL of the
/// test's own): how a database that can no longer write that record looks to the server.
/// [`accept_audit_records`] undoes it.
pub fn refuse_audit_records(db: &Path, event: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    diesel::sql_query(format!(
        "CREATE TRIGGER {} BEFORE INSERT ON audit_log \
         WHEN NEW.event = '{event}' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        refusal_trigger(event)
    ))
    .execute(&mut conn)
    .expect("trigger");
}

/// Undoes [`refuse_audit_records`].
pub fn accept_audit_records(db: &Path, event: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    diesel::sql_query(format!("DROP TRIGGER {}", refusal_trigger(event)))
        .execute(&mut conn)
        .expect("drop trigger");
}

/// The name of [`refuse_audit_records`]'s trigger for `event`.
fn refusal_trigger(event: &str) -> String {
    format!("refuse_{}", event.replace('.', "_"))
}

/// Makes a data directory's database look like one made before row integrity: no row MACs, no
/// factor sets. `integrity seal` (the documented upgrade step) then seals it as it is.
pub fn as_before_row_integrity(db: &Path) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    for sql in [
        "UPDATE users SET mac = NULL",
        "UPDATE credentials SET mac = NULL, factors = ''",
        "UPDATE credential_factors SET mac = NULL",
        "UPDATE auth_tokens SET mac = NULL",
        "UPDATE sads SET mac = NULL",
    ] {
        diesel::sql_query(sql).execute(&mut conn).expect(sql);
    }
}

/// The OTP verifier of a credential, read with SQL of the test's own.
pub fn otp_verifier(db: &Path, credential: &str) -> String {
    factor_verifier(db, credential, "otp")
}

/// The verifier of a credential's factor (`pin`, `otp`), read with SQL of the test's own.
pub fn factor_verifier(db: &Path, credential: &str, kind: &str) -> String {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        verifier: String,
    }
    let mut conn = diesel::SqliteConnection::establish(&db.display().to_string()).expect("open db");
    let row: Row = diesel::sql_query(
        "SELECT verifier FROM credential_factors WHERE credential_id = ? AND kind = ?",
    )
    .bind::<diesel::sql_types::Text, _>(credential)
    .bind::<diesel::sql_types::Text, _>(kind)
    .get_result(&mut conn)
    .expect("the factor");
    row.verifier
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

/// Whether `secret` occurs in the raw bytes of a database file other than inside a hex digest
/// (a run of 32 or more hex digits: audit hashes, stored SHA-256s). The digits of a short
/// numeric secret (a 6-digit PIN) occur by chance in those runs; a secret stored in clear is a
/// value of its own (in this schema no hex-digest text column sits beside a column that would
/// hold a secret, so it cannot join such a run).
pub fn contains_secret(hay: &[u8], secret: &[u8]) -> bool {
    let n = secret.len();
    let hex_run = |at: usize| {
        let is_hex = |b: &u8| b.is_ascii_hexdigit();
        let before = hay[..at].iter().rev().take_while(|b| is_hex(b)).count();
        let after = hay[at..].iter().take_while(|b| is_hex(b)).count();
        before + after >= 32
    };
    (0..(hay.len() + 1).saturating_sub(n)).any(|i| &hay[i..i + n] == secret && !hex_run(i))
}

/// `log` without its timestamps (`2026-12-02T01:35:12.123456Z`): their six digits of
/// microseconds would match a 6-digit PIN or OTP by chance, about once in a million lines.
pub fn without_timestamps(log: &str) -> String {
    let b = log.as_bytes();
    let digits = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let is_stamp_at = |i: usize| {
        digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && b.get(i + 10) == Some(&b'T')
    };
    let mut out = String::with_capacity(log.len());
    let mut i = 0;
    while i < b.len() {
        if is_stamp_at(i) {
            // skip to the closing `Z` (or the end of the line)
            let end = b[i..]
                .iter()
                .position(|&c| c == b'Z' || c == b'\n')
                .map_or(b.len(), |p| i + p + 1);
            i = end;
            continue;
        }
        let ch_len = log[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&log[i..i + ch_len]);
        i += ch_len;
    }
    out
}

#[test]
fn timestamps_are_removed_but_nothing_else() {
    let log = "2026-12-02T01:35:12.123456Z  INFO PIN 654321 here\n2026-12-02T01:35:13.000001Z x";
    let clean = without_timestamps(log);
    assert!(
        !clean.contains("123456") && !clean.contains("000001"),
        "{clean}"
    );
    assert!(
        clean.contains("PIN 654321 here") && clean.ends_with(" x"),
        "{clean}"
    );
}

#[test]
fn secrets_are_found_in_clear_but_not_inside_digests() {
    let digest = format!("{}123456{}", "ab".repeat(13), "cd".repeat(13));
    assert!(!contains_secret(digest.as_bytes(), b"123456"));
    assert!(contains_secret(b"\x03pin123456\x01", b"123456"));
    assert!(contains_secret(b"123456", b"123456"));
    // a short hex neighbour (a UUID's last group) does not hide it
    assert!(contains_secret(b"-0123456789ab123456", b"123456"));
}

/// A CSC client for tests: JSON in, `(status, JSON)` out.
pub struct Api {
    pub base: String,
    pub client: reqwest::blocking::Client,
    /// The OTP outbox of the server's data directory and the credentials with an online OTP
    /// (set by [`Signers::serve`]), for [`Api::online_otp`].
    pub online_otp: Option<(std::path::PathBuf, Vec<String>)>,
}

/// The last online OTP the server wrote for `cred` to its outbox (`DATA_DIR/otp-outbox.log`,
/// one JSON object per line).
pub fn outbox_code(outbox: &Path, cred: &str) -> Option<String> {
    let text = std::fs::read_to_string(outbox).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["credentialID"] == cred)
        .and_then(|v| v["otp"].as_str().map(str::to_owned))
}

impl Api {
    /// POST `/csc/{version}/{method}` with an optional bearer token: `(status, JSON)`.
    fn post_csc(
        &self,
        version: &str,
        method: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/csc/{version}/{method}", self.base))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            online_otp: None,
        }
    }
}

/// What the tests need of a CSC client: [`Api`] over HTTP to a `csc-server` process, or the
/// in-process [`crate::kit::Kit`].
pub trait Csc {
    /// POST `/csc/v1/{method}` with an optional bearer token: `(status, JSON)`.
    fn call(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value);
    /// POST `/csc/v2/{method}` with an optional bearer token: `(status, JSON)`.
    fn call_v2(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value);
    /// `auth/login` with HTTP Basic; panics unless it succeeds.
    fn login(&self, user: &str, password: &str) -> String;
    /// For a credential with an online OTP: has one sent (`credentials/sendOTP`, 204) and
    /// reads it from the outbox; `None` for other credentials.
    fn online_otp(&self, token: &str, cred: &str) -> Option<String>;
}

impl Csc for Api {
    fn online_otp(&self, token: &str, cred: &str) -> Option<String> {
        let (outbox, creds) = self.online_otp.as_ref()?;
        if !creds.iter().any(|c| c == cred) {
            return None;
        }
        let (status, body) = self.call(
            "credentials/sendOTP",
            Some(token),
            &serde_json::json!({ "credentialID": cred }),
        );
        assert_eq!(status, 204, "sendOTP: {body}");
        Some(outbox_code(outbox, cred).expect("the OTP in the outbox"))
    }

    fn call(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.post_csc("v1", method, token, body)
    }

    fn call_v2(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.post_csc("v2", method, token, body)
    }

    fn login(&self, user: &str, password: &str) -> String {
        let resp = self
            .client
            .post(format!("{}/csc/v1/auth/login", self.base))
            .basic_auth(user, Some(password))
            .json(&serde_json::json!({}))
            .send()
            .expect("login");
        assert_eq!(resp.status().as_u16(), 200, "login of {user}");
        let v: Value = resp.json().expect("json");
        v["access_token"].as_str().expect("token").to_owned()
    }
}

/// Asserts a CSC error: status, `error` and `error_description`.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, error: &str, description: &str) {
    assert_eq!(got.0, status, "status of {}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert_eq!(got.1["error_description"], description, "{}", got.1);
}

pub const PIN: &str = "123456";
pub const ALICE_PASSWORD: &str = "alice-password";
pub const BOB_PASSWORD: &str = "bob-password";

/// A data directory with two signers and their credentials:
/// the kit's [`crate::kit::CREDENTIALS`] (`rsa`, `ec`, `scal2`, `multi`, `bob`), made with the
/// CLI; or only some of them ([`Signers::only`]).
pub struct Signers {
    pub tmp: tempfile::TempDir,
    pub creds: std::collections::HashMap<&'static str, String>,
}

impl Signers {
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn new() -> Signers {
        Self::with_env(&[])
    }

    /// The same, with configuration given as environment (e.g. a PostgreSQL `CSC_DATABASE_URL`).
    pub fn with_env(env: &[(&str, &str)]) -> Signers {
        Self::with_env_only(env, &["rsa", "ec", "scal2", "multi", "bob"])
    }

    /// Only the named credentials (a test about the binary pays for the keys it uses).
    pub fn only(names: &[&str]) -> Signers {
        Self::with_env_only(&[], names)
    }

    /// The named credentials only, with configuration given as environment.
    pub fn with_env_only(env: &[(&str, &str)], names: &[&str]) -> Signers {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let cmd = |args: &[&str]| {
            let mut c = csc(dir);
            c.args(args).envs(env.iter().copied());
            c
        };
        run_ok(&mut cmd(&["init"]));
        run_ok(cmd(&["user", "add", "alice"]).env("CSC_PASSWORD", ALICE_PASSWORD));
        run_ok(cmd(&["user", "add", "bob"]).env("CSC_PASSWORD", BOB_PASSWORD));
        let mut creds = std::collections::HashMap::new();
        for &(name, user, args) in crate::kit::CREDENTIALS {
            if !names.contains(&name) {
                continue;
            }
            let mut c = cmd(&["credential", "create", user]);
            c.args(args).env("CSC_PIN", PIN);
            let v = run_ok(&mut c);
            creds.insert(name, v["credentialID"].as_str().expect("id").to_owned());
        }
        Signers { tmp, creds }
    }

    pub fn id(&self, name: &str) -> &str {
        &self.creds[name]
    }

    /// Starts `serve` on a free port with extra environment.
    pub fn serve(&self, env: &[(&str, &str)]) -> (Server, Api) {
        let mut cmd = csc(self.dir());
        cmd.arg("serve").envs(env.iter().copied());
        let server = start(cmd);
        let mut api = Api::new(&server.base);
        api.online_otp = Some((
            self.dir().join("otp-outbox.log"),
            self.creds.get("scal2").cloned().into_iter().collect(),
        ));
        (server, api)
    }
}
