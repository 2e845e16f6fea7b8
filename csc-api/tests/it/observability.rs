//! What an operator watches (issue 13, "Metrics and health"): `GET /metrics` counts what
//! happened with the right labels (parsed from the Prometheus text format), `GET /ready`
//! answers 503 with the reason while the database or the token really fails (PostgreSQL
//! refusing connections; the token logged out by another session of the process) and 200 once
//! they are back, and `serve`'s log in a file holds no escape codes, or only JSON lines with
//! `log_format = "json"` (binary-level: the subscriber is the process's).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use serde_json::{Value, json};

use crate::api::PgDatabase;
use crate::common::*;
use crate::kit::Kit;

/// One sample of the text format: name, labels, value.
pub(crate) type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text exposition format (comments skipped; label values without
/// escapes, as ours are).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut out = vec![];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("k=\"v\"");
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

/// The value of the one series of `name` whose labels are exactly `labels`.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
}

/// The sum of every series of `name` carrying at least `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.2)
        .sum()
}

pub(crate) fn scrape(k: &Kit) -> Vec<Sample> {
    let r = k.send(k.get("/metrics"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&r.text())
}

#[test]
fn metrics_count_a_sign_hash_and_refused_authorizations_with_their_labels() {
    let k = Kit::with(|c| c.max_factor_failures = 2);
    let cred = k.id("multi"); // P-256, multisign 3
    k.id("bob");
    // provisioning signed certificates in the token: count from here
    let hsm_signs = |m: &[Sample]| {
        value(
            m,
            "csc_hsm_call_duration_seconds_count",
            &[("operation", "sign")],
        )
        .unwrap_or(0.0)
    };
    let signs_before = hsm_signs(&scrape(&k));
    let alice = k.login("alice", ALICE_PASSWORD);
    let digest = openssl::sha::sha256(b"a document");
    let (status, auth) = k.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": cred, "numSignatures": 2, "PIN": PIN }),
    );
    assert_eq!(status, 200, "{auth}");
    let sad = auth["SAD"].as_str().expect("SAD");
    let (status, signed) = k.call(
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": cred, "SAD": sad, "hash": [STANDARD.encode(digest)],
                 "signAlgo": "1.2.840.10045.4.3.2" }),
    );
    assert_eq!(status, 200, "{signed}");
    let sig = STANDARD
        .decode(signed["signatures"][0].as_str().expect("signature"))
        .expect("base64");
    let (_, info) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": cred, "certificates": "single" }),
    );
    let cert = openssl::x509::X509::from_der(
        &STANDARD
            .decode(info["cert"]["certificates"][0].as_str().expect("cert"))
            .expect("base64"),
    )
    .expect("DER");
    assert!(
        crate::api::verifies(&cert, &digest, MessageDigest::sha256(), &sig, None),
        "the signature verifies with the certificate's key"
    );
    // bob's wrong PIN twice: both refused, the second sets the lock (max_factor_failures 2)
    let bob = k.login("bob", BOB_PASSWORD);
    for _ in 0..2 {
        let refused = k.call(
            "credentials/authorize",
            Some(&bob),
            &json!({ "credentialID": k.id("bob"), "numSignatures": 1, "PIN": "999999" }),
        );
        assert_error(&refused, 400, "invalid_pin", "The PIN is invalid");
    }
    // a path no route takes
    assert_eq!(k.send(k.get("/no/such/path")).status, 404);

    let m = scrape(&k);
    let sig_total = |outcome| {
        value(
            &m,
            "csc_signatures_total",
            &[("algorithm", "ECDSA-SHA256"), ("outcome", outcome)],
        )
    };
    assert_eq!(sig_total("success"), Some(1.0));
    assert_eq!(sig_total("refused"), None, "nothing was refused");
    let auth_total = |outcome| {
        value(
            &m,
            "csc_authorizations_total",
            &[("via", "authorize"), ("outcome", outcome)],
        )
    };
    assert_eq!(auth_total("granted"), Some(1.0));
    assert_eq!(auth_total("refused"), Some(2.0));
    assert_eq!(
        value(&m, "csc_lockouts_total", &[("kind", "factor.lock")]),
        Some(1.0)
    );
    let requests = |route, method, status| {
        value(
            &m,
            "csc_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(
        requests("/csc/v1/signatures/signHash", "POST", "200"),
        Some(1.0)
    );
    assert_eq!(
        requests("/csc/v1/credentials/authorize", "POST", "200"),
        Some(1.0)
    );
    assert_eq!(
        requests("/csc/v1/credentials/authorize", "POST", "400"),
        Some(2.0)
    );
    assert_eq!(requests("/csc/v1/auth/login", "POST", "200"), Some(2.0));
    assert_eq!(
        requests("/metrics", "GET", "200"),
        Some(1.0),
        "the first scrape"
    );
    assert_eq!(requests("unmatched", "GET", "404"), Some(1.0));
    // the raw path never becomes a label
    assert!(
        !m.iter()
            .any(|(_, l, _)| l.values().any(|v| v.contains("no/such")))
    );
    assert!(
        total(
            &m,
            "csc_http_request_duration_seconds_count",
            &[("route", "/csc/v1/signatures/signHash")]
        ) >= 1.0
    );
    // the HSM signed once for signHash (and computed HMACs for the PINs)
    assert_eq!(hsm_signs(&m) - signs_before, 1.0);
    assert!(
        total(
            &m,
            "csc_hsm_call_duration_seconds_count",
            &[("operation", "hmac")]
        ) >= 3.0
    );
    assert_eq!(
        value(
            &m,
            "csc_hsm_call_duration_seconds_bucket",
            &[("operation", "sign"), ("le", "+Inf")]
        ),
        Some(hsm_signs(&m)),
        "a histogram with buckets"
    );
    // commits and group-commit batches happened (signHash and authorize are grouped)
    assert!(
        total(
            &m,
            "csc_db_commit_duration_seconds_count",
            &[("outcome", "success")]
        ) >= 3.0
    );
    assert!(total(&m, "csc_db_group_commit_batch_size_count", &[]) >= 2.0);
    assert!(total(&m, "csc_db_group_commit_batch_size_sum", &[]) >= 2.0);
    // every batch sent at least its BEGIN and its COMMIT
    assert!(
        total(&m, "csc_db_statements_total", &[])
            >= 2.0 * total(&m, "csc_db_group_commit_batch_size_count", &[])
    );
    // live now: alice's SAD has one signature left; bob's and alice's access tokens
    assert_eq!(value(&m, "csc_live_sads", &[]), Some(1.0));
    assert_eq!(value(&m, "csc_live_access_tokens", &[]), Some(2.0));
    assert_eq!(value(&m, "csc_live_refresh_tokens", &[]), Some(0.0));
    // the alarms read zero
    assert_eq!(value(&m, "csc_integrity_violations_total", &[]), Some(0.0));
    assert_eq!(value(&m, "csc_audit_seal_failures_total", &[]), Some(0.0));
    assert_eq!(value(&m, "csc_audit_write_failures_total", &[]), Some(0.0));

    // the signature spends the last signature: the SAD is no longer live
    let (status, _) = k.call(
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": cred, "SAD": sad, "hash": [STANDARD.encode(digest)],
                 "signAlgo": "1.2.840.10045.4.3.2" }),
    );
    assert_eq!(status, 200);
    let (status, _) = k.call(
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": cred, "SAD": sad, "hash": [STANDARD.encode(digest)],
                 "signAlgo": "1.2.840.10045.4.3.2" }),
    );
    assert_eq!(status, 400, "the SAD is used up");
    let m = scrape(&k);
    assert_eq!(value(&m, "csc_live_sads", &[]), Some(0.0));
    assert_eq!(
        value(
            &m,
            "csc_signatures_total",
            &[("algorithm", "ECDSA-SHA256"), ("outcome", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(
        total(&m, "csc_signatures_total", &[("outcome", "refused")]),
        1.0
    );
    assert!(k.audit_intact());
}

#[test]
fn ready_is_200_with_both_parts_ok_and_health_stays_liveness() {
    let k = Kit::new();
    let r = k.send(k.get("/ready"));
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({ "status": "ready", "database": "ok", "hsm": "ok" })
        )
    );
    let h = k.send(k.get("/health"));
    assert_eq!((h.status, h.json()), (200, json!({ "status": "ok" })));
}

/// The database really fails: PostgreSQL refuses new connections to it and the server's are
/// terminated. `/ready` says so (503, the database part) within its bounded wait, and is 200
/// again once connections are allowed.
#[test]
fn ready_is_503_while_postgresql_refuses_the_database_and_200_once_it_is_back() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let db = PgDatabase::new();
    let k = Kit::with(|c| c.database_url = db.url.clone());
    assert_eq!(k.send(k.get("/ready")).status, 200);

    let admin = std::env::var("CSC_TEST_POSTGRES_URL").expect("CSC_TEST_POSTGRES_URL");
    let mut pg = PgConnection::establish(&admin).expect("connect to PostgreSQL");
    let mut sql = |q: String| {
        diesel::sql_query(q).execute(&mut pg).expect("admin SQL");
    };
    sql(format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        db.name
    ));
    sql(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ));
    let r = k.send(k.get("/ready"));
    let body = r.json();
    assert_eq!(r.status, 503, "{body}");
    assert_eq!(
        (&body["status"], &body["hsm"]),
        (&json!("unavailable"), &json!("ok"))
    );
    let why = body["database"].as_str().expect("a reason");
    assert_ne!(why, "ok", "{body}");
    // liveness does not depend on the database
    assert_eq!(k.send(k.get("/health")).status, 200);

    sql(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name));
    let r = k.send(k.get("/ready"));
    assert_eq!((r.status, &r.json()["database"]), (200, &json!("ok")));
}

/// The token really fails for this process: another session of the process logs the token out
/// (what a network HSM that restarted or dropped the connection leaves behind). `/ready` says
/// so (503, the HSM part), and is 200 again once it is logged in again.
#[test]
fn ready_is_503_while_the_token_is_logged_out_and_200_once_logged_in() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    use secrecy::ExposeSecret;
    let k = Kit::new();
    assert_eq!(k.send(k.get("/ready")).status, 200);

    let cfg = k.cfg();
    let ctx = Pkcs11::new(&cfg.pkcs11_module).expect("load the module");
    // already initialised by the server's side of this process: that is expected
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == cfg.token_label)
        })
        .expect("the kit's token");
    let session = ctx.open_ro_session(slot).expect("session");
    session.logout().expect("C_Logout");

    let r = k.send(k.get("/ready"));
    let body = r.json();
    assert_eq!(r.status, 503, "{body}");
    assert_eq!(
        (&body["status"], &body["database"]),
        (&json!("unavailable"), &json!("ok"))
    );
    let why = body["hsm"].as_str().expect("a reason");
    assert!(why.contains("not logged in"), "{why}");

    let pin = cfg.read_token_pin().expect("token PIN");
    session
        .login(
            UserType::User,
            Some(&AuthPin::new(pin.expose_secret().into())),
        )
        .expect("C_Login");
    drop(session);
    assert_eq!(k.send(k.get("/ready")).status, 200);
    // never finalise the module under the server's feet
    std::mem::forget(ctx);
}

/// `serve` with standard error to a file, after `init`: the child and its log file.
fn serve_to_file(dir: &Path, env: &[(&str, &str)]) -> (Child, std::path::PathBuf) {
    run_ok(csc(dir).arg("init"));
    let log = dir.join("serve.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = csc(dir);
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn serve");
    (child, log)
}

/// Waits until the log holds a line with `marker` followed by an `http://` URL; returns the
/// URL (up to a quote or the end of the line).
fn wait_for_url(log: &Path, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            let end = rest.find(['"', '\n', '\\']).unwrap_or(rest.len());
            return rest[..end].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(url: &str) -> (u16, String) {
    let resp = reqwest::blocking::get(url).expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_logs_to_a_file_without_escape_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (child, log) = serve_to_file(tmp.path(), &[]);
    let base = wait_for_url(&log, "listening on ");
    assert_eq!(get(&format!("{base}/ready")).0, 200);
    let (status, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"csc_http_requests_total{route="/ready",method="GET",status="200"} 1"#),
        "{metrics}"
    );
    assert_eq!(get(&format!("{base}/nope")).0, 404);
    stop(child);
    let mut bytes = vec![];
    std::fs::File::open(&log)
        .expect("log")
        .read_to_end(&mut bytes)
        .expect("read");
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(!text.contains('\u{1b}'), "escape codes in the log:\n{text}");
    // the request log is there, in plain text
    assert!(text.contains("\"GET /ready HTTP/1.1\" 200"), "{text}");
    // the operator sees the level the SAM enforces (issue 14; default 1)
    assert!(
        text.contains("the SAM enforces assurance level 1"),
        "{text}"
    );
    // a healthy start logs no error (cryptoki once logged one per mechanism it cannot name)
    assert!(
        !text.contains(" ERROR "),
        "errors in the log of a healthy start:\n{text}"
    );
}

#[test]
fn serve_logs_json_lines_and_serves_metrics_on_their_own_listener() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (child, log) = serve_to_file(
        tmp.path(),
        &[
            ("CSC_LOG_FORMAT", "json"),
            ("CSC_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let base = wait_for_url(&log, "listening on ");
    let metrics_url = wait_for_url(&log, "serving metrics at ");
    assert!(metrics_url.ends_with("/metrics"), "{metrics_url}");
    assert_eq!(get(&format!("{base}/health")).0, 200);
    // not on the main listener any more
    let (status, body) = get(&format!("{base}/metrics"));
    assert_eq!(status, 404, "{body}");
    let (status, metrics) = get(&metrics_url);
    assert_eq!(status, 200);
    let m = parse(&metrics);
    assert_eq!(
        value(
            &m,
            "csc_http_requests_total",
            &[("route", "/health"), ("method", "GET"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "csc_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "404")]
        ),
        Some(1.0),
        "the main listener's refusal is counted"
    );
    // the metrics listener serves nothing else
    let other = metrics_url.replace("/metrics", "/health");
    assert_eq!(get(&other).0, 404);
    stop(child);

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains('\u{1b}'), "escape codes in the log:\n{text}");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("listening on http://")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("\"GET /health HTTP/1.1\" 200")),
        "the request log is JSON too: {messages:?}"
    );
}
