//! `serve`'s own TLS (README "TLS"), driven over real sockets: the `csc-server` binary with
//! certificates made here with OpenSSL (two CAs, server certificates for 127.0.0.1/localhost,
//! an expired one, client certificates), reqwest (native-tls) and raw OpenSSL clients. What the
//! channel protects: requirement II 3.2.1.2 (confidentiality of secret SAD parts) and III 7-8.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    SslConnector, SslConnectorBuilder, SslMethod, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::Value;

use crate::common::*;

/// What a certificate is for.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Ca,
    Server,
    Client,
}

/// A key and its certificate.
struct Pki {
    key: PKey<Private>,
    cert: X509,
}

impl Pki {
    fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().expect("pkcs8")
    }
    fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("pem")
    }
}

/// Issues a P-256 certificate to `cn` (self-signed when `issuer` is `None`), valid from
/// `not_before` to `not_after` (ASN.1 times, `YYYYMMDDHHMMSSZ`), or 30 days from now.
fn issue(cn: &str, role: Role, issuer: Option<&Pki>, validity: Option<(&str, &str)>) -> Pki {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .expect("serial");
    b.set_serial_number(&Asn1Integer::from_bn(&serial).expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    match validity {
        Some((from, to)) => {
            b.set_not_before(&Asn1Time::from_str(from).expect("from"))
                .expect("nb");
            b.set_not_after(&Asn1Time::from_str(to).expect("to"))
                .expect("na");
        }
        None => {
            b.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
                .expect("nb");
            b.set_not_after(&Asn1Time::days_from_now(30).expect("later"))
                .expect("na");
        }
    }
    let ctx = b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None);
    let ski = SubjectKeyIdentifier::new().build(&ctx).expect("ski");
    let aki = (role != Role::Ca || issuer.is_some()).then(|| {
        AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&ctx)
            .expect("aki")
    });
    let extensions = match role {
        Role::Ca => vec![
            BasicConstraints::new().critical().ca().build().expect("bc"),
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku"),
        ],
        Role::Server => vec![
            BasicConstraints::new().critical().build().expect("bc"),
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .expect("ku"),
            ExtendedKeyUsage::new().server_auth().build().expect("eku"),
            SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&ctx)
                .expect("san"),
        ],
        Role::Client => vec![
            BasicConstraints::new().critical().build().expect("bc"),
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .expect("ku"),
            ExtendedKeyUsage::new().client_auth().build().expect("eku"),
        ],
    };
    for e in extensions.into_iter().chain([ski]).chain(aki) {
        b.append_extension(e).expect("extension");
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .expect("sign");
    Pki {
        key,
        cert: b.build(),
    }
}

/// The files of a TLS test: CA A with a server certificate, and where `serve` reads its pair.
struct Files {
    dir: PathBuf,
    ca: Pki,
}

impl Files {
    fn new(dir: &Path) -> Files {
        let ca = issue("TLS Test CA A", Role::Ca, None, None);
        Files {
            dir: dir.to_owned(),
            ca,
        }
    }

    /// Writes `leaf` (then the CA: a chain) and its key where `serve` reads them.
    fn install(&self, leaf: &Pki) {
        let mut chain = leaf.cert_pem();
        chain.extend(self.ca.cert_pem());
        std::fs::write(self.dir.join("server.pem"), chain).expect("write");
        std::fs::write(self.dir.join("server.key"), leaf.key_pem()).expect("write");
    }

    /// A data directory whose `config.toml` turns TLS on (plus `extra` lines), initialised.
    fn init_data_dir(&self, extra: &str) -> PathBuf {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        self.write_config(extra);
        run_ok(csc(&data).arg("init"));
        data
    }

    fn write_config(&self, extra: &str) {
        let config = format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n{extra}",
            self.dir.join("server.pem").display(),
            self.dir.join("server.key").display()
        );
        std::fs::write(self.dir.join("data").join("config.toml"), config).expect("write");
    }
}

fn serve(data: &Path) -> Server {
    let mut cmd = csc(data);
    cmd.arg("serve");
    let server = start(cmd);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    server
}

fn host_port(server: &Server) -> String {
    server
        .base
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_owned()
}

/// A reqwest client trusting only `ca`, presenting `identity` when given.
fn client(ca: &Pki, identity: Option<&Pki>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca.cert_pem()).expect("ca")]);
    if let Some(id) = identity {
        b = b.identity(
            reqwest::Identity::from_pkcs8_pem(&id.cert_pem(), &id.key_pem()).expect("identity"),
        );
    }
    b.build().expect("client")
}

fn info(client: &reqwest::blocking::Client, base: &str, version: &str) -> Result<Value, String> {
    let resp = client
        .post(format!("{base}/csc/{version}/info"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(resp.status().as_u16(), 200);
    Ok(resp.json().expect("json"))
}

/// A raw OpenSSL connection to the server (trusting `ca` unless `verify` is false), its
/// builder adjusted by `tune`.
fn connect(
    addr: &str,
    ca: &Pki,
    verify: bool,
    tune: impl FnOnce(&mut SslConnectorBuilder),
) -> Result<SslStream<TcpStream>, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    b.cert_store_mut().add_cert(ca.cert.clone()).expect("ca");
    if !verify {
        b.set_verify(SslVerifyMode::NONE);
    }
    tune(&mut b);
    let tcp = TcpStream::connect(addr).expect("tcp");
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let config = b
        .build()
        .configure()
        .expect("configure")
        .verify_hostname(verify);
    config
        .connect("localhost", tcp)
        .map_err(|e| format!("{e:?}"))
}

/// The certificate a new connection is served (read without verifying it).
fn served_cert(addr: &str, ca: &Pki) -> X509 {
    connect(addr, ca, false, |_| {})
        .expect("handshake")
        .ssl()
        .peer_certificate()
        .expect("a server certificate")
}

fn same_cert(a: &X509, b: &X509) -> bool {
    a.to_der().expect("der") == b.to_der().expect("der")
}

fn sighup(server: &Server) {
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -HUP \"$0\""])
        .arg(server.child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits (at most a minute: the wait ends as soon as it holds) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from `s`.
fn read_response(s: &mut SslStream<TcpStream>) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the response head");
        assert_eq!(n, 1, "the connection was closed");
        buf.extend_from_slice(&byte);
    }
    let head = String::from_utf8(buf).expect("utf-8");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    (status, String::from_utf8(body).expect("utf-8"))
}

#[test]
fn tls_serve_speaks_tls_1_2_and_1_3_only_and_tells_clients_https() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = Files::new(tmp.path());
    files.install(&issue("server A", Role::Server, Some(&files.ca), None));
    let data = files.init_data_dir("");
    let server = serve(&data);
    let addr = host_port(&server);

    // a real client that trusts only the CA: the chain and the name check out
    let c = client(&files.ca, None);
    let v1 = info(&c, &server.base, "v1").expect("TLS handshake");
    assert_eq!(v1["oauth2"], format!("https://{addr}/"));
    let v2 = info(&c, &server.base, "v2").expect("TLS handshake");
    assert_eq!(v2["oauth2"], format!("https://{addr}/"));
    assert_eq!(v2["oauth2Issuer"], format!("https://{addr}"));

    // TLS 1.2 and 1.3 are spoken
    for (version, name) in [
        (SslVersion::TLS1_2, "TLSv1.2"),
        (SslVersion::TLS1_3, "TLSv1.3"),
    ] {
        let s = connect(&addr, &files.ca, true, |b| {
            b.set_min_proto_version(Some(version)).expect("min");
            b.set_max_proto_version(Some(version)).expect("max");
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.ssl().version_str(), name);
    }
    // TLS 1.1 and 1.0 are refused by the server: the client really offers them (security
    // level 0, and the same client settings with TLS 1.2 do connect) and hears the server's alert
    let old_client = |version| {
        move |b: &mut SslConnectorBuilder| {
            b.set_cipher_list("DEFAULT@SECLEVEL=0").expect("ciphers");
            b.set_min_proto_version(Some(version)).expect("min");
            b.set_max_proto_version(Some(version)).expect("max");
        }
    };
    connect(&addr, &files.ca, true, old_client(SslVersion::TLS1_2)).expect("the control");
    for version in [SslVersion::TLS1_1, SslVersion::TLS1] {
        let err = connect(&addr, &files.ca, true, old_client(version))
            .expect_err("an old TLS version is refused");
        assert!(
            err.contains("ssl3_read_bytes") && err.contains("alert"),
            "the server's alert: {err}"
        );
    }

    // the OAuth 2.0 page's cookie is Secure over TLS
    let (client_id, _) =
        crate::oauth2::add_client(&data, "TLS App", &["https://app.example/cb"], false);
    let (_, challenge) = crate::oauth2::pkce();
    let url = crate::oauth2::authorize_url(
        &server.base,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", "https://app.example/cb"),
            ("scope", "service"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let page = c.get(url).send().expect("the page");
    assert_eq!(page.status().as_u16(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // plain HTTP on the TLS port gets no answer
    let plain = reqwest::blocking::Client::new()
        .post(format!("http://{addr}/csc/v1/info"))
        .body("{}")
        .send();
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status().as_u16() != 200));
}

#[test]
fn client_certificates_are_checked_against_the_client_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = Files::new(tmp.path());
    files.install(&issue("server A", Role::Server, Some(&files.ca), None));
    let client_ca = issue("Client CA", Role::Ca, None, None);
    std::fs::write(tmp.path().join("client-ca.pem"), client_ca.cert_pem()).expect("write");
    let machine = issue("signing robot", Role::Client, Some(&client_ca), None);
    let other_ca = issue("Some Other CA", Role::Ca, None, None);
    let stranger = issue("stranger", Role::Client, Some(&other_ca), None);
    let ca_line = format!(
        "tls_client_ca_file = \"{}\"\n",
        tmp.path().join("client-ca.pem").display()
    );
    let data = files.init_data_dir(&ca_line);

    // required (the default with a client CA)
    let server = serve(&data);
    let none = info(&client(&files.ca, None), &server.base, "v1");
    assert!(none.is_err(), "no client certificate must be refused");
    let wrong = info(&client(&files.ca, Some(&stranger)), &server.base, "v1");
    assert!(
        wrong.is_err(),
        "a certificate of another CA must be refused"
    );
    let right = info(&client(&files.ca, Some(&machine)), &server.base, "v1");
    assert_eq!(right.expect("the right certificate")["specs"], "1.0.4.0");
    drop(server);

    // optional: none is fine, a wrong one is still refused
    files.write_config(&format!("{ca_line}tls_client_auth = \"optional\"\n"));
    let server = serve(&data);
    let none = info(&client(&files.ca, None), &server.base, "v1");
    assert_eq!(none.expect("no certificate is fine")["specs"], "1.0.4.0");
    let wrong = info(&client(&files.ca, Some(&stranger)), &server.base, "v1");
    assert!(
        wrong.is_err(),
        "a certificate of another CA must be refused"
    );
    let right = info(&client(&files.ca, Some(&machine)), &server.base, "v1");
    assert_eq!(right.expect("the right certificate")["specs"], "1.0.4.0");
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_keep_working() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = Files::new(tmp.path());
    let a = issue("server A", Role::Server, Some(&files.ca), None);
    files.install(&a);
    let data = files.init_data_dir("");
    let server = serve(&data);
    let addr = host_port(&server);
    assert!(same_cert(&served_cert(&addr, &files.ca), &a.cert));

    // a connection opened on A, in the middle of a request when the reload comes
    let mut open = connect(&addr, &files.ca, true, |_| {}).expect("handshake");
    open.write_all(
        format!(
            "POST /csc/v1/info HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .expect("half a request");

    let b = issue("server B", Role::Server, Some(&files.ca), None);
    files.install(&b);
    sighup(&server);
    wait_until("new connections are served certificate B", || {
        same_cert(&served_cert(&addr, &files.ca), &b.cert)
    });
    info(&client(&files.ca, None), &server.base, "v1").expect("B verifies");

    // the old connection finishes its request, then serves another, still on A
    open.write_all(b"}").expect("the rest");
    let (status, body) = read_response(&mut open);
    assert_eq!(status, 200, "{body}");
    open.write_all(
        format!(
            "POST /csc/v1/info HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .expect("a second request");
    let (status, body) = read_response(&mut open);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["oauth2"], format!("https://{addr}/"));
    assert!(same_cert(
        &open.ssl().peer_certificate().expect("peer"),
        &a.cert
    ));

    // a broken PEM, then a key that does not fit: each logged, B stays
    let failures = || {
        server
            .log
            .lock()
            .expect("log")
            .matches("TLS reload failed")
            .count()
    };
    std::fs::write(
        tmp.path().join("server.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .expect("write");
    sighup(&server);
    wait_until("the broken file is reported", || failures() == 1);
    assert!(same_cert(&served_cert(&addr, &files.ca), &b.cert));
    files.install(&b);
    std::fs::write(tmp.path().join("server.key"), a.key_pem()).expect("write");
    sighup(&server);
    wait_until("the misfit key is reported", || failures() == 2);
    assert!(same_cert(&served_cert(&addr, &files.ca), &b.cert));
    info(&client(&files.ca, None), &server.base, "v1").expect("B still verifies");

    // an expired certificate is served as given (with a warning); clients see the expiry
    let expired = issue(
        "server expired",
        Role::Server,
        Some(&files.ca),
        Some(("20200101000000Z", "20200201000000Z")),
    );
    files.install(&expired);
    sighup(&server);
    wait_until("new connections are served the expired certificate", || {
        same_cert(&served_cert(&addr, &files.ca), &expired.cert)
    });
    let err = info(&client(&files.ca, None), &server.base, "v1").expect_err("expired");
    assert!(err.contains("certificate has expired"), "{err}");
    assert!(
        server
            .log
            .lock()
            .expect("log")
            .contains("the TLS certificate is expired"),
        "the server warns about it"
    );
    // and a valid one again
    files.install(&a);
    sighup(&server);
    wait_until("new connections are served certificate A again", || {
        same_cert(&served_cert(&addr, &files.ca), &a.cert)
    });
    info(&client(&files.ca, None), &server.base, "v1").expect("A verifies");
}

#[test]
fn tls_settings_that_do_not_load_stop_serve_with_their_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = Files::new(tmp.path());
    files.install(&issue("server A", Role::Server, Some(&files.ca), None));
    let data = files.init_data_dir("");
    std::fs::write(tmp.path().join("server.key"), "garbage\n").expect("write");
    let out = csc(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.key") && err.contains("no private key"),
        "{err}"
    );
    // a certificate without its key is a configuration error
    std::fs::write(
        data.join("config.toml"),
        format!(
            "tls_cert_file = \"{}\"\n",
            tmp.path().join("server.pem").display()
        ),
    )
    .expect("write");
    let out = csc(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls_cert_file and tls_key_file must be set together"),
        "{err}"
    );
}

/// Starts `serve` on `listen` (not through [`start`], which listens on loopback) and returns it
/// with what it logged before its address.
fn serve_on(data: &Path, listen: &str, env: &[(&str, &str)]) -> (Server, String) {
    use std::io::BufRead;
    let mut cmd = csc(data);
    cmd.args(["serve", "--listen", listen])
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(mut l) = sink.lock() {
                l.push_str(&line);
                l.push('\n');
            }
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server printed its address");
    let before = log.lock().expect("log").clone();
    (
        Server {
            child,
            base,
            first_stdout: String::new(),
            log,
        },
        before,
    )
}

#[test]
fn plain_http_on_a_network_address_warns_unless_allowed_and_sighup_does_not_stop_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    run_ok(csc(data).arg("init"));
    let (server, log) = serve_on(data, "0.0.0.0:0", &[]);
    assert!(
        server.base.starts_with("http://0.0.0.0:"),
        "{}",
        server.base
    );
    assert!(
        log.contains("serving plain HTTP on a non-loopback address"),
        "{log}"
    );
    let port = server.base.rsplit(':').next().expect("port").to_owned();
    let local = format!("http://127.0.0.1:{port}");
    // SIGHUP without TLS: nothing to reload, and the server goes on
    sighup(&server);
    wait_until("the SIGHUP is logged", || {
        server
            .log
            .lock()
            .expect("log")
            .contains("nothing to reload")
    });
    let (status, _) = post(&local, "/csc/v1/info", "{}");
    assert_eq!(status, 200);
    drop(server);

    // the operator says a TLS proxy is in front: no warning
    let (server, log) = serve_on(data, "0.0.0.0:0", &[("CSC_ALLOW_PLAIN_HTTP", "true")]);
    assert!(!log.contains("non-loopback"), "{log}");
    drop(server);
    // loopback: no warning either
    let (_server, log) = serve_on(data, "127.0.0.1:0", &[]);
    assert!(!log.contains("non-loopback"), "{log}");
}

#[test]
fn demo_stays_plain_http_even_with_tls_configured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = Files::new(tmp.path());
    files.install(&issue("server A", Role::Server, Some(&files.ca), None));
    std::fs::create_dir_all(tmp.path().join("data")).expect("mkdir");
    files.write_config("");
    let mut cmd = csc(&tmp.path().join("data"));
    cmd.arg("demo");
    let server = start(cmd);
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    let (status, info) = post(&server.base, "/csc/v1/info", "{}");
    assert_eq!(status, 200);
    assert!(
        info["oauth2"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{info}"
    );
}

/// The admin listener's address, from what `serve` logged (`admin listening on URL`).
pub(crate) fn admin_base(server: &Server) -> String {
    let log = server.log.lock().expect("log").clone();
    log.lines()
        .find_map(|l| l.strip_prefix("admin listening on "))
        .unwrap_or_else(|| panic!("no admin listener in the log:\n{log}"))
        .to_owned()
}

pub(crate) const SO_PASSWORD: &str = "officer-password";

/// The admin API over its own TLS listener with client certificates (issue 14): the verified
/// certificate's subject CN names the administrator (no Bearer needed), in the role of their
/// user row; a signer's or an unknown name's certificate is refused 401, a connection without
/// one does not get through the handshake; the admin paths are not on the CSC listener.
#[test]
fn admin_listener_with_client_certificates_names_the_administrator() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = Files::new(tmp.path());
    files.install(&issue("server A", Role::Server, Some(&files.ca), None));
    let client_ca = issue("Admin Client CA", Role::Ca, None, None);
    std::fs::write(tmp.path().join("admin-ca.pem"), client_ca.cert_pem()).expect("write");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    files.write_config(&format!(
        "admin_listen = \"127.0.0.1:0\"\nadmin_tls_cert_file = \"{0}/server.pem\"\n\
         admin_tls_key_file = \"{0}/server.key\"\nadmin_tls_client_ca_file = \"{0}/admin-ca.pem\"\n",
        tmp.path().display()
    ));
    run_ok(
        csc(&data)
            .args(["init", "--security-officer", "sofia"])
            .env("CSC_SO_PASSWORD", SO_PASSWORD),
    );
    run_ok(
        csc(&data)
            .args(["user", "add", "alice"])
            .env("CSC_PASSWORD", ALICE_PASSWORD),
    );
    let server = serve(&data);
    let admin = admin_base(&server);
    assert!(admin.starts_with("https://127.0.0.1:"), "{admin}");
    assert_ne!(admin, server.base, "a listener of its own");

    let get = |c: &reqwest::blocking::Client, url: String| {
        let r = c.get(url).send().expect("request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    // the security officer by certificate alone
    let sofia = issue("sofia", Role::Client, Some(&client_ca), None);
    let c = client(&files.ca, Some(&sofia));
    let (status, v) = get(&c, format!("{admin}/admin/v1/clients"));
    assert_eq!(
        (status, &v["clients"]),
        (200, &serde_json::json!([])),
        "{v}"
    );
    let (status, v) = get(&c, format!("{admin}/admin/v1/audit"));
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("access_denied")),
        "{v}"
    );
    // the token endpoint works on this listener too (with the certificate the handshake needs)
    let r = c
        .post(format!("{admin}/admin/v1/token"))
        .basic_auth("sofia", Some(SO_PASSWORD))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .expect("token");
    assert_eq!(r.status().as_u16(), 200);
    // a signer's certificate, an unknown name's: refused
    for cn in ["alice", "ghost"] {
        let id = issue(cn, Role::Client, Some(&client_ca), None);
        let (status, v) = get(
            &client(&files.ca, Some(&id)),
            format!("{admin}/admin/v1/clients"),
        );
        assert_eq!(
            (status, v["error"].as_str()),
            (401, Some("invalid_token")),
            "{cn}: {v}"
        );
    }
    // a certificate of another CA, or none: no handshake
    let stranger = issue("sofia", Role::Client, Some(&files.ca), None);
    for c in [client(&files.ca, Some(&stranger)), client(&files.ca, None)] {
        assert!(c.get(format!("{admin}/admin/v1/clients")).send().is_err());
    }
    // the CSC listener serves no admin path, and needs no client certificate
    let (status, v) = get(
        &client(&files.ca, None),
        format!("{}/admin/v1/clients", server.base),
    );
    assert_eq!(status, 404, "{v}");
    // SIGHUP reloads the admin listener's certificate too
    let admin_addr = admin.trim_start_matches("https://").to_owned();
    let served = || {
        connect(&admin_addr, &files.ca, false, |b| {
            b.set_certificate(&sofia.cert).expect("client certificate");
            b.set_private_key(&sofia.key).expect("client key");
        })
        .expect("handshake")
        .ssl()
        .peer_certificate()
        .expect("a server certificate")
    };
    let renewed = issue("server B", Role::Server, Some(&files.ca), None);
    files.install(&renewed);
    sighup(&server);
    wait_until("the admin listener serves the new certificate", || {
        same_cert(&served(), &renewed.cert)
    });
    // audited with the role and the name the certificate gave
    let records = crate::kit::audit_records(&data);
    assert!(
        records
            .iter()
            .any(|r| r.event == "client.list" && r.actor == "security-officer:sofia")
    );
    assert!(
        records
            .iter()
            .any(|r| r.event == "access.denied" && r.actor == "security-officer:sofia")
    );
}

/// Without TLS the admin listener binds only on loopback (or with `allow_plain_http`).
#[test]
fn admin_listener_without_tls_only_on_loopback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    run_ok(
        csc(&data)
            .args(["init", "--security-officer", "sofia"])
            .env("CSC_SO_PASSWORD", SO_PASSWORD),
    );
    let out = csc(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CSC_ADMIN_LISTEN", "0.0.0.0:0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin_listen") && err.contains("no TLS"),
        "{err}"
    );
    // on loopback: served, plain
    let mut cmd = csc(&data);
    cmd.arg("serve").env("CSC_ADMIN_LISTEN", "127.0.0.1:0");
    let server = start(cmd);
    let admin = admin_base(&server);
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    let r = reqwest::blocking::Client::new()
        .post(format!("{admin}/admin/v1/token"))
        .basic_auth("sofia", Some(SO_PASSWORD))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .expect("token");
    assert_eq!(r.status().as_u16(), 200);
    let token = r.json::<Value>().expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let r = reqwest::blocking::Client::new()
        .get(format!("{admin}/admin/v1/clients"))
        .bearer_auth(&token)
        .send()
        .expect("clients");
    assert_eq!(r.status().as_u16(), 200);
    // the same path and token on the CSC listener: not there
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/admin/v1/clients", server.base))
        .bearer_auth(&token)
        .send()
        .expect("clients");
    assert_eq!(r.status().as_u16(), 404);
}
