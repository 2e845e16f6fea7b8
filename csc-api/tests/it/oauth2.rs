//! The OAuth 2.0 authorization server (CSC v1.0.4.0 §8.3), no mocks: the
//! authorization-code flow with PKCE driven through the real HTML page by headless Chromium
//! (WebDriver, against a `csc-server` process) and, in process ([`crate::kit`]), by plain form
//! posts and by the `oauth2` crate as the client; the credential-scope token used as the SAD by
//! signHash, and the errors the spec names for codes used twice, wrong redirect URIs, wrong
//! PKCE verifiers and expired codes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::{BASE, Kit, audit_records};

pub(crate) const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
pub(crate) const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

// ---------------------------------------------------------------------------------------------
// helpers

/// A loopback HTTP endpoint standing in for the client application's redirect URI: answers
/// every request with a small page and reports each request target (path and query).
pub(crate) struct Catcher {
    pub(crate) redirect_uri: String,
    pub(crate) hits: Receiver<String>,
}

pub(crate) fn catcher() -> Catcher {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let redirect_uri = format!("http://{}/cb", listener.local_addr().expect("addr"));
    let (tx, hits) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(&stream);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
            }
            let body = "<!DOCTYPE html><title>app</title><p id=\"done\">back in the app</p>";
            let _ = write!(
                &stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Some(target) = first.split_whitespace().nth(1) {
                let _ = tx.send(target.to_owned());
            }
        }
    });
    Catcher { redirect_uri, hits }
}

/// The redirect URI of the client application in the in-process tests (never fetched: the
/// tests read the redirect's Location).
pub(crate) const REDIRECT_URI: &str = "https://app.example/cb";

/// `csc-server client add`: `(client_id, client_secret)`.
pub(crate) fn add_client(
    dir: &Path,
    name: &str,
    redirect_uris: &[&str],
    confidential: bool,
) -> (String, Option<String>) {
    let mut cmd = csc(dir);
    cmd.args(["client", "add", name]);
    for r in redirect_uris {
        cmd.args(["--redirect-uri", r]);
    }
    if confidential {
        cmd.arg("--confidential");
    }
    let out = run_ok(&mut cmd);
    assert_eq!(out["confidential"], confidential);
    (
        out["client_id"].as_str().expect("client_id").to_owned(),
        out["client_secret"].as_str().map(str::to_owned),
    )
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn digest(data: &[u8]) -> Vec<u8> {
    openssl::sha::sha256(data).to_vec()
}

/// A PKCE pair (RFC 7636): `(verifier, S256 challenge)`.
pub(crate) fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).expect("rand");
    let verifier = b64url(&raw);
    let challenge = b64url(&digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) fn authorize_url(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{base}/oauth2/authorize")).expect("url");
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

pub(crate) fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `POST oauth2/token` (or `oauth2/revoke`) to a `csc-server` process with a form, optionally
/// with HTTP Basic client authentication ([`Kit::form_post`] in process).
pub(crate) fn form_post(
    api: &Api,
    endpoint: &str,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = api
        .client
        .post(format!("{}/oauth2/{endpoint}", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).expect("form"));
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A user agent made of plain requests to the kit: follows no redirect and keeps the page's
/// cookies, as a browser without JavaScript would.
pub(crate) struct Agent<'k> {
    k: &'k Kit,
    cookies: Vec<String>,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) headers: actix_web::http::header::HeaderMap,
    pub(crate) body: String,
}

impl<'k> Agent<'k> {
    pub(crate) fn new(k: &'k Kit) -> Agent<'k> {
        Agent { k, cookies: vec![] }
    }

    fn answer(&mut self, resp: crate::kit::Resp) -> Page {
        for c in resp.headers.get_all("set-cookie") {
            if let Some(kv) = c.to_str().ok().and_then(|v| v.split(';').next()) {
                self.cookies.push(kv.to_owned());
            }
        }
        Page {
            status: resp.status,
            location: resp.header("location").map(str::to_owned),
            body: resp.text(),
            headers: resp.headers,
        }
    }

    pub(crate) fn get(&mut self, url: &str) -> Page {
        let resp = self.k.send(self.k.get(url));
        self.answer(resp)
    }

    pub(crate) fn post(&mut self, fields: &[(&str, &str)]) -> Page {
        let mut req = self
            .k
            .post("/oauth2/authorize")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(serde_urlencoded::to_string(fields).expect("form"));
        if !self.cookies.is_empty() {
            req = req.insert_header(("cookie", self.cookies.join("; ")));
        }
        let resp = self.k.send(req);
        self.answer(resp)
    }
}

/// The hidden `request` handle of a page's form.
pub(crate) fn handle_of(body: &str) -> String {
    let at = body
        .find("name=\"request\" value=\"")
        .unwrap_or_else(|| panic!("no request handle in {body}"));
    let rest = &body[at + "name=\"request\" value=\"".len()..];
    rest[..rest.find('"').expect("end of value")].to_owned()
}

/// Signs in on the page and, for scope credential, approves with the PIN and the online OTP
/// the server sent (read from the outbox); returns the redirect's Location.
fn approve_with_forms(k: &Kit, url: &str, cred: Option<&str>) -> String {
    let mut agent = Agent::new(k);
    let page = agent.get(url);
    assert_eq!(page.status, 200, "{}", page.body);
    let handle = handle_of(&page.body);
    let page = agent.post(&[
        ("request", &handle),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("remember", "on"),
        ("action", "login"),
    ]);
    if let Some(l) = page.location {
        return l;
    }
    let cred = cred.expect("a consent page only for scope credential");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(cred),
        "the consent page names the credential"
    );
    let mut fields = vec![
        ("request", handle.as_str()),
        ("PIN", PIN),
        ("action", "approve"),
    ];
    let otp = outbox_code(&k.dir().join("otp-outbox.log"), cred);
    if let Some(otp) = &otp {
        fields.push(("OTP", otp));
    }
    let page = agent.post(&fields);
    page.location
        .unwrap_or_else(|| panic!("no redirect after approval: {} {}", page.status, page.body))
}

pub(crate) fn signer_cert(api: &impl Csc, token: &str, cred: &str) -> X509 {
    let (status, info) = api.call(
        "credentials/info",
        Some(token),
        &json!({ "credentialID": cred }),
    );
    assert_eq!(status, 200, "{info}");
    X509::from_der(&decode(
        info["cert"]["certificates"][0].as_str().expect("cert"),
    ))
    .expect("der")
}

/// Verifies a raw signature over a SHA-256 digest with the certificate's key (PKCS#1 v1.5 for
/// RSA, DER ECDSA).
pub(crate) fn verifies(cert: &X509, digest: &[u8], sig: &[u8]) -> bool {
    let key = cert.public_key().expect("key");
    let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&key).expect("ctx");
    ctx.verify_init().expect("init");
    if key.rsa().is_ok() {
        ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1)
            .expect("pkcs1");
    }
    ctx.set_signature_md(openssl::md::Md::sha256()).expect("md");
    ctx.verify(digest, sig).unwrap_or(false)
}

pub(crate) fn sign_hash(
    api: &impl Csc,
    token: &str,
    cred: &str,
    sad: &str,
    hashes: &[Vec<u8>],
    algo: &str,
) -> (u16, Value) {
    api.call(
        "signatures/signHash",
        Some(token),
        &json!({
            "credentialID": cred, "SAD": sad, "signAlgo": algo,
            "hash": hashes.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// headless Chromium over WebDriver

/// chromedriver on a free loopback port with a fresh profile directory; stopped on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let exe = std::env::var("CSC_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = Command::new(&exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {exe}: {e} (scripts/install-deps --test installs Debian's chromium \
                 and chromium-driver)"
            )
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile: tempfile::tempdir().expect("profile dir"),
    };
    let probe = reqwest::blocking::Client::new();
    for _ in 0..100 {
        if probe
            .get(format!("{}/status", driver.url))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return driver;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

pub(crate) async fn browser(driver: &Driver) -> fantoccini::Client {
    let binary = std::env::var("CSC_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", driver.profile.path().display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Drives the page as a signer in Chromium: a wrong PIN first (the page says so and stays),
/// then the right PIN and the online OTP. Returns the URL the browser was redirected to.
/// Types `text` into the element with id `id`.
pub(crate) async fn type_into(c: &fantoccini::Client, id: &str, text: &str) {
    c.find(fantoccini::Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("cannot type into #{id}: {e}"));
}

/// Clicks the element with id `id`.
pub(crate) async fn click(c: &fantoccini::Client, id: &str) {
    c.find(fantoccini::Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click #{id}: {e}"));
}

async fn chromium_consent(
    c: &fantoccini::Client,
    url: &str,
    dir: &Path,
    cred: &str,
    hashes_b64url: &[String],
) -> String {
    use fantoccini::Locator;
    c.goto(url).await.expect("open the authorization page");
    let client = c.find(Locator::Id("client")).await.expect("client name");
    assert_eq!(client.text().await.expect("text"), "Chromium Test App");
    assert!(
        c.find_all(Locator::Css("script"))
            .await
            .expect("scripts")
            .is_empty()
    );
    type_into(c, "username", "alice").await;
    type_into(c, "password", ALICE_PASSWORD).await;
    click(c, "login").await;

    // the consent step shows what is approved
    let shown = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("credential"))
        .await
        .expect("consent page");
    assert_eq!(shown.text().await.expect("text"), cred);
    let n = c.find(Locator::Id("numSignatures")).await.expect("count");
    assert_eq!(
        n.text().await.expect("text"),
        hashes_b64url.len().to_string()
    );
    let list = c.find(Locator::Id("hashes")).await.expect("hashes");
    let listed = list.text().await.expect("text");
    for h in hashes_b64url {
        assert!(listed.contains(h.as_str()), "{h} shown in {listed}");
    }
    let subject = c.find(Locator::Id("subject")).await.expect("subject");
    assert_eq!(subject.text().await.expect("text"), "CN=alice");

    // a wrong PIN: the page says so, nothing is issued
    let code = outbox_code(&dir.join("otp-outbox.log"), cred).expect("an OTP was sent at sign-in");
    type_into(c, "pin", "000000").await;
    type_into(c, "otp", &code).await;
    click(c, "approve").await;
    let error = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("error"))
        .await
        .expect("an error message");
    assert_eq!(error.text().await.expect("text"), "The PIN is invalid.");

    // the right PIN with the (still unused) online OTP
    type_into(c, "pin", PIN).await;
    type_into(c, "otp", &code).await;
    click(c, "approve").await;
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("done"))
        .await
        .expect("back in the app");
    c.current_url().await.expect("url").to_string()
}

#[test]
fn chromium_runs_the_authorization_code_flow_with_pkce_and_the_sad_signs() {
    let s = Signers::only(&["scal2"]);
    let app = catcher();
    let (client_id, _) = add_client(s.dir(), "Chromium Test App", &[&app.redirect_uri], false);
    let (_server, api) = s.serve(&[]);
    let cred = s.id("scal2");
    let h = [digest(b"contract page 1"), digest(b"contract page 2")];
    let hashes: Vec<String> = h.iter().map(|d| b64url(d)).collect();
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &api.base,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", &app.redirect_uri),
            ("scope", "credential"),
            ("state", "xyz-state-42"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("credentialID", cred),
            ("numSignatures", "2"),
            ("hash", &hashes.join(",")),
            ("description", "Sign the contract"),
        ],
    );

    let driver = chromedriver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let landed = rt.block_on(async {
        let c = browser(&driver).await;
        let landed = chromium_consent(&c, &url, s.dir(), cred, &hashes).await;
        let _ = c.close().await;
        landed
    });
    drop(driver);

    assert!(landed.starts_with(&app.redirect_uri), "{landed}");
    let q = query_of(&landed);
    assert_eq!(q.get("state").map(String::as_str), Some("xyz-state-42"));
    let code = q.get("code").expect("code").clone();
    assert!(
        app.hits
            .recv_timeout(Duration::from_secs(5))
            .is_ok_and(|t| t.contains(&code)),
        "the app received the code"
    );

    let (status, token) = form_post(
        &api,
        "token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", &app.redirect_uri),
            ("code_verifier", &verifier),
        ],
        None,
    );
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "SAD");
    assert!(token.get("refresh_token").is_none());
    assert!(token["expires_in"].as_u64().is_some_and(|s| s > 0));
    let sad = token["access_token"].as_str().expect("SAD").to_owned();

    // the SAD signs exactly the approved hashes, once (signHash's usual rules)
    let alice = api.login("alice", ALICE_PASSWORD);
    let cert = signer_cert(&api, &alice, cred);
    assert_error(
        &sign_hash(&api, &alice, cred, &sad, &[digest(b"forged")], SHA256_RSA),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    let (status, signed) = sign_hash(&api, &alice, cred, &sad, &h, SHA256_RSA);
    assert_eq!(status, 200, "{signed}");
    let sigs = signed["signatures"].as_array().expect("signatures");
    for (d, sig) in h.iter().zip(sigs) {
        assert!(verifies(&cert, d, &decode(sig.as_str().expect("b64"))));
    }
    assert_error(
        &sign_hash(&api, &alice, cred, &sad, &h[..1], SHA256_RSA),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    // the page's refusal and the consent are audited
    let records = audit_records(s.dir());
    assert!(
        records
            .iter()
            .any(|r| r.event == "oauth2.consent" && r.outcome == "refused")
    );
    assert!(
        records
            .iter()
            .any(|r| r.event == "oauth2.consent" && r.outcome == "success")
    );
    assert!(
        records
            .iter()
            .any(|r| r.event == "sad.authorize" && r.detail.contains("\"via\":\"oauth2\""))
    );
}

// ---------------------------------------------------------------------------------------------
// the oauth2 crate as the client

/// The `oauth2` crate's HTTP client: the kit (no redirects followed).
fn oauth_http(
    k: &Kit,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, oauth2::http::Error> {
    let (parts, body) = req.into_parts();
    let mut test = k.req(parts.method.as_str(), &parts.uri.to_string());
    for (name, value) in &parts.headers {
        test = test.append_header((name.as_str(), value.as_bytes()));
    }
    let resp = k.send(test.set_payload(body));
    let mut out = oauth2::http::Response::builder().status(resp.status);
    for (name, value) in &resp.headers {
        out = out.header(name.as_str(), value.as_bytes());
    }
    out.body(resp.body.to_vec())
}

#[test]
fn the_oauth2_crate_gets_service_and_credential_tokens_with_pkce() {
    use oauth2::basic::{BasicClient, BasicTokenType};
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
        TokenResponse, TokenUrl,
    };
    let k = Kit::new();
    k.create(&["rsa", "ec", "scal2", "multi"]);
    let (client_id, _) = k.client_add("oauth2-rs App", &[REDIRECT_URI], false);
    let http = |req| oauth_http(&k, req);
    // the base URI the spec says to append the paths to (info.oauth2)
    let (_, info) = k.call("info", None, &json!({}));
    let base = info["oauth2"].as_str().expect("oauth2 base URI").to_owned();
    let client = BasicClient::new(ClientId::new(client_id.clone()))
        .set_auth_uri(AuthUrl::new(format!("{base}oauth2/authorize")).expect("auth url"))
        .set_token_uri(TokenUrl::new(format!("{base}oauth2/token")).expect("token url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect"));

    // scope service: a Bearer token (and a refresh token, the signer ticked "keep me signed in")
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("service".into()))
        .set_pkce_challenge(challenge)
        .url();
    let landed = approve_with_forms(&k, url.as_str(), None);
    let q = query_of(&landed);
    assert_eq!(q.get("state"), Some(csrf.secret()));
    let token = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .set_pkce_verifier(verifier)
        .request(&http)
        .expect("service token");
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    let bearer = token.access_token().secret().clone();
    let (status, list) = k.call("credentials/list", Some(&bearer), &json!({}));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["credentialIDs"].as_array().map(Vec::len), Some(4));
    let refresh = token.refresh_token().expect("a refresh token").clone();
    let renewed = client
        .exchange_refresh_token(&refresh)
        .request(&http)
        .expect("refresh");
    let (status, _) = k.call(
        "credentials/list",
        Some(renewed.access_token().secret()),
        &json!({}),
    );
    assert_eq!(status, 200);

    // scope credential: token_type SAD, used as the SAD of signHash
    let cred = k.id("ec");
    let h = digest(b"invoice");
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("credential".into()))
        .set_pkce_challenge(challenge)
        .add_extra_param("credentialID", cred)
        .add_extra_param("numSignatures", "1")
        .add_extra_param("hash", b64url(&h))
        .url();
    let landed = approve_with_forms(&k, url.as_str(), Some(cred));
    let code = query_of(&landed)["code"].clone();
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request(&http)
        .expect("credential token");
    // "SAD" on the wire (checked in the Chromium test); the crate lowercases token types
    assert_eq!(*token.token_type(), BasicTokenType::Extension("sad".into()));
    let sad = token.access_token().secret().clone();
    let (status, signed) = sign_hash(
        &k,
        &bearer,
        cred,
        &sad,
        std::slice::from_ref(&h),
        ECDSA_SHA256,
    );
    assert_eq!(status, 200, "{signed}");
    let cert = signer_cert(&k, &bearer, cred);
    let sig = decode(signed["signatures"][0].as_str().expect("sig"));
    assert!(verifies(&cert, &h, &sig));
}

// ---------------------------------------------------------------------------------------------
// what the spec says is refused

/// A public client, the kit, and a way to obtain fresh codes by the forms.
struct Fixture {
    k: Kit,
    client_id: String,
}

fn fixture(set: impl FnOnce(&mut csc_api::config::Config)) -> Fixture {
    let k = Kit::with(set);
    let (client_id, _) = k.client_add(
        "Test App",
        &[REDIRECT_URI, "http://127.0.0.1:9/other"],
        false,
    );
    Fixture { k, client_id }
}

impl Fixture {
    /// A service-scope code for `redirect_uri` (None: omitted, the default is used) and the
    /// PKCE verifier that goes with it.
    fn service_code(&self, redirect_uri: Option<&str>) -> (String, String) {
        let (verifier, challenge) = pkce();
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
        ];
        if let Some(r) = redirect_uri {
            params.push(("redirect_uri", r));
        }
        let landed = approve_with_forms(&self.k, &authorize_url(BASE, &params), None);
        (query_of(&landed)["code"].clone(), verifier)
    }

    fn exchange(&self, code: &str, redirect_uri: Option<&str>, verifier: &str) -> (u16, Value) {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", self.client_id.as_str()),
            ("code_verifier", verifier),
        ];
        if let Some(r) = redirect_uri {
            fields.push(("redirect_uri", r));
        }
        self.k.form_post("token", &fields, None)
    }
}

#[test]
fn codes_are_single_use_and_bound_to_the_redirect_uri_and_the_pkce_verifier() {
    let f = fixture(|_| {});
    let r = REDIRECT_URI.to_owned();

    // a code used twice: invalid_grant, and the tokens it bought are revoked (RFC 6749 §4.1.2)
    let (code, verifier) = f.service_code(Some(&r));
    let (status, first) = f.exchange(&code, Some(&r), &verifier);
    assert_eq!(status, 200, "{first}");
    let bearer = first["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        f.k.call("credentials/list", Some(&bearer), &json!({})).0,
        200
    );
    assert_error(
        &f.exchange(&code, Some(&r), &verifier),
        400,
        "invalid_grant",
        "Authorization code is invalid or expired",
    );
    let (status, _) = f.k.call("credentials/list", Some(&bearer), &json!({}));
    assert_eq!(
        status, 401,
        "the first exchange's token died with the replay"
    );

    // the redirect URI must repeat the authorization request's
    let (code, verifier) = f.service_code(Some(&r));
    assert_error(
        &f.exchange(&code, Some("http://127.0.0.1:9/other"), &verifier),
        400,
        "invalid_grant",
        "redirect_uri parameter does not match redirect_uri parameter of authorization request",
    );
    let (code, verifier) = f.service_code(Some(&r));
    assert_error(
        &f.exchange(&code, None, &verifier),
        400,
        "invalid_grant",
        "redirect_uri parameter does not match redirect_uri parameter of authorization request",
    );
    // omitted in the request: the default (first registered) one is used, and may be omitted
    let (code, verifier) = f.service_code(None);
    assert_eq!(f.exchange(&code, None, &verifier).0, 200);

    // the PKCE verifier (RFC 7636 §4.6)
    let (code, _) = f.service_code(Some(&r));
    let (other_verifier, _) = pkce();
    assert_error(
        &f.exchange(&code, Some(&r), &other_verifier),
        400,
        "invalid_grant",
        "Invalid parameter code_verifier",
    );
    let (code, _) = f.service_code(Some(&r));
    let (status, got) = f.k.form_post(
        "token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &f.client_id),
            ("redirect_uri", &r),
        ],
        None,
    );
    assert_error(
        &(status, got),
        400,
        "invalid_grant",
        "Missing parameter code_verifier",
    );

    // unknown codes; a code is bound to its client
    assert_error(
        &f.exchange("csc_ac_not-a-code", Some(&r), "x"),
        400,
        "invalid_grant",
        "Invalid parameter code",
    );
    let (other_client, _) = f.k.client_add("Other", &[&r], false);
    let (code, verifier) = f.service_code(Some(&r));
    assert_error(
        &f.k.form_post(
            "token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &other_client),
                ("redirect_uri", &r),
                ("code_verifier", &verifier),
            ],
            None,
        ),
        400,
        "invalid_grant",
        "Invalid parameter code",
    );
    let records = f.k.audit_records();
    assert!(
        records
            .iter()
            .any(|x| x.event == "oauth2.token" && x.detail.contains("code used twice"))
    );
}

#[test]
fn an_expired_code_is_refused() {
    let f = fixture(|c| c.oauth2_code_ttl_secs = 1);
    let r = REDIRECT_URI.to_owned();
    let (code, verifier) = f.service_code(Some(&r));
    std::thread::sleep(Duration::from_millis(2100));
    assert_error(
        &f.exchange(&code, Some(&r), &verifier),
        400,
        "invalid_grant",
        "Authorization code is invalid or expired",
    );
}

#[test]
fn the_authorization_page_refuses_bad_requests_as_rfc_6749_says_and_resists_csrf_and_framing() {
    let f = fixture(|_| {});
    let r = REDIRECT_URI.to_owned();
    let (_, challenge) = pkce();
    let base = [
        ("response_type", "code"),
        ("client_id", f.client_id.as_str()),
        ("redirect_uri", r.as_str()),
        ("state", "st-9"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with = |changes: &[(&'static str, Option<&str>)]| {
        let mut p: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        for (k, v) in changes {
            p.retain(|(pk, _)| pk != k);
            if let Some(v) = v {
                p.push((k, (*v).to_owned()));
            }
        }
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authorize_url(BASE, &p)
    };
    let mut agent = Agent::new(&f.k);

    // no valid client or redirect URI: shown on the page, never redirected (§4.1.2.1)
    for (url, says) in [
        (
            with(&[("redirect_uri", Some("http://evil.example/cb"))]),
            "redirect URI",
        ),
        (with(&[("client_id", Some("nobody"))]), "unknown client"),
        (with(&[("client_id", None)]), "client_id"),
    ] {
        let page = agent.get(&url);
        assert_eq!(page.status, 400, "{url}");
        assert!(page.location.is_none(), "{url} must not redirect");
        assert!(page.body.contains(says), "{}", page.body);
    }

    // every other error: a redirect with error, error_description and state
    for (changes, error) in [
        (
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
        ),
        (vec![("scope", Some("everything"))], "invalid_scope"),
        (
            vec![("code_challenge", None), ("code_challenge_method", None)],
            "invalid_request",
        ),
        (
            vec![("code_challenge_method", Some("plain"))],
            "invalid_request",
        ),
        (vec![("scope", Some("credential"))], "invalid_request"),
        (
            vec![
                ("scope", Some("credential")),
                ("credentialID", Some(f.k.id("rsa"))),
                ("numSignatures", Some("0")),
            ],
            "invalid_request",
        ),
    ] {
        let url = with(&changes);
        let page = agent.get(&url);
        assert_eq!(page.status, 302, "{url}: {}", page.body);
        let location = page.location.expect("location");
        assert!(location.starts_with(&r), "{location}");
        let q = query_of(&location);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(error),
            "{location}"
        );
        assert!(q.contains_key("error_description"));
        assert_eq!(q.get("state").map(String::as_str), Some("st-9"));
    }

    // the page: no framing, no script, not cached; the form's handle bound to a cookie
    let page = agent.get(&with(&[]));
    assert_eq!(page.status, 200);
    let header = |n: &str| {
        page.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-frame-options"), "DENY");
    let csp = header("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(header("cache-control"), "no-store");
    assert!(
        header("set-cookie").contains("HttpOnly")
            && header("set-cookie").contains("SameSite=Strict")
    );
    assert!(!page.body.contains("<script"));
    let handle = handle_of(&page.body);

    // CSRF: the same form from elsewhere (without the cookie) is refused
    let mut stranger = Agent::new(&f.k);
    let forged = stranger.post(&[
        ("request", &handle),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ]);
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.location.is_none());
    // a wrong password stays on the page; the signer may refuse: access_denied with the state
    let again = agent.post(&[
        ("request", &handle),
        ("username", "alice"),
        ("password", "nope-nope"),
        ("action", "login"),
    ]);
    assert_eq!(again.status, 200);
    assert!(again.body.contains("Sign-in failed"));
    let denied = agent.post(&[("request", &handle), ("action", "deny")]);
    let q = query_of(&denied.location.expect("redirect"));
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some("st-9"));
    // the request is over
    let late = agent.post(&[
        ("request", &handle),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ]);
    assert_eq!(late.status, 400);
    let refused: Vec<_> =
        f.k.audit_records()
            .into_iter()
            .filter(|x| x.event == "oauth2.authorize" && x.outcome == "refused")
            .collect();
    assert!(refused.len() >= 3, "{refused:?}");
}

#[test]
fn the_token_endpoint_names_the_spec_errors_and_client_credentials_act_for_no_user() {
    let k = Kit::new();
    k.create(&["bob"]);
    let (public, _) = k.client_add("Public", &[REDIRECT_URI], false);
    let (conf, secret) = k.client_add("Back office", &[REDIRECT_URI], true);
    let secret = secret.expect("a confidential client gets a secret");
    let listed = csc_api::admin::client_list(k.sam()).expect("client list");
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );
    let db = std::fs::read(k.dir().join("csc.db")).expect("db");
    let wal = std::fs::read(k.dir().join("csc.db-wal")).unwrap_or_default();
    assert!(!contains(&db, secret.as_bytes()) && !contains(&wal, secret.as_bytes()));
    let post =
        |fields: &[(&str, &str)], basic: Option<(&str, &str)>| k.form_post("token", fields, basic);

    assert_error(
        &post(&[("grant_type", "client_credentials")], None),
        400,
        "invalid_request",
        "Missing parameter client_id",
    );
    assert_error(
        &post(&[("client_id", &conf)], None),
        400,
        "invalid_request",
        "Missing parameter grant_type",
    );
    assert_error(
        &post(&[("client_id", &conf), ("grant_type", "password")], None),
        400,
        "invalid_request",
        "Invalid parameter grant_type",
    );
    assert_error(
        &post(
            &[
                ("client_id", "nobody"),
                ("grant_type", "client_credentials"),
            ],
            None,
        ),
        400,
        "invalid_request",
        "Invalid parameter client_id",
    );
    assert_error(
        &post(
            &[("client_id", &conf), ("grant_type", "client_credentials")],
            None,
        ),
        401,
        "invalid_request",
        "Client authorization required",
    );
    assert_error(
        &post(
            &[
                ("client_id", &conf),
                ("client_secret", "wrong"),
                ("grant_type", "client_credentials"),
            ],
            None,
        ),
        400,
        "invalid_request",
        "Invalid parameter client_secret",
    );
    let garbage = k.send(
        k.post("/oauth2/token")
            .insert_header(("authorization", "Basic %%%"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("grant_type=client_credentials"),
    );
    assert_eq!(garbage.status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&garbage.body).expect("json")["error"],
        "invalid_client"
    );
    assert_error(
        &post(
            &[("client_id", &conf), ("grant_type", "authorization_code")],
            Some((&conf, &secret)),
        ),
        400,
        "invalid_request",
        "Missing parameter code",
    );
    assert_error(
        &post(&[("grant_type", "refresh_token")], Some((&conf, &secret))),
        400,
        "invalid_request",
        "Missing parameter refresh_token",
    );
    assert_error(
        &post(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "csc_rt_bogus"),
            ],
            Some((&conf, &secret)),
        ),
        400,
        "invalid_grant",
        "Invalid parameter refresh_token",
    );
    // client_credentials is for confidential clients
    let (status, got) = post(
        &[("client_id", &public), ("grant_type", "client_credentials")],
        None,
    );
    assert_eq!(
        (status, got["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    // a client token (HTTP Basic, and the secret in the body) names no user: credentials/list
    // needs userID (spec §11.4 NOTE 1); other methods act for the credential's owner
    let (status, tok) = post(
        &[("grant_type", "client_credentials")],
        Some((&conf, &secret)),
    );
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok.get("refresh_token").is_none());
    let (status, _) = post(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &conf),
            ("client_secret", &secret),
        ],
        None,
    );
    assert_eq!(status, 200);
    let client_token = tok["access_token"].as_str().expect("token").to_owned();
    assert_error(
        &k.call("credentials/list", Some(&client_token), &json!({})),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter userID",
    );
    assert_error(
        &k.call(
            "credentials/list",
            Some(&client_token),
            &json!({ "userID": "carol" }),
        ),
        400,
        "invalid_request",
        "Invalid parameter userID",
    );
    // it acts for the users an operator delegated to its client (here bob)
    csc_api::admin::client_delegate(k.sam(), &conf, "bob").expect("delegate");
    let (status, list) = k.call(
        "credentials/list",
        Some(&client_token),
        &json!({ "userID": "bob" }),
    );
    assert_eq!(
        (status, list["credentialIDs"].clone()),
        (200, json!([k.id("bob")]))
    );
    // activation still needs the signer's own PIN
    let h = digest(b"statement");
    assert_error(
        &k.call(
            "credentials/authorize",
            Some(&client_token),
            &json!({ "credentialID": k.id("bob"), "numSignatures": 1, "PIN": "999999" }),
        ),
        400,
        "invalid_pin",
        "The PIN is invalid",
    );
    let (status, sad) = k.call(
        "credentials/authorize",
        Some(&client_token),
        &json!({ "credentialID": k.id("bob"), "numSignatures": 1, "PIN": PIN }),
    );
    assert_eq!(status, 200, "{sad}");
    let (status, signed) = sign_hash(
        &k,
        &client_token,
        k.id("bob"),
        sad["SAD"].as_str().expect("SAD"),
        std::slice::from_ref(&h),
        ECDSA_SHA256,
    );
    assert_eq!(status, 200, "{signed}");
    let records = k.audit_records();
    let actor = format!("client:{conf}");
    assert!(
        records
            .iter()
            .any(|r| r.event == "signature.sign_hash" && r.actor == actor)
    );
    assert!(
        records
            .iter()
            .any(|r| r.event == "client.register" && r.detail.contains("Back office"))
    );

    // oauth2/revoke: its own token only, then the token is dead; auth/revoke takes them too
    assert_error(
        &k.form_post("revoke", &[("client_id", &public)], None),
        400,
        "invalid_request",
        "Missing parameter token",
    );
    assert_error(
        &k.form_post(
            "revoke",
            &[("token", &client_token), ("token_type_hint", "id_token")],
            Some((&conf, &secret)),
        ),
        400,
        "invalid_request",
        "Invalid parameter token_type_hint",
    );
    assert_error(
        &k.form_post(
            "revoke",
            &[("token", &client_token), ("client_id", &public)],
            None,
        ),
        400,
        "invalid_request",
        "Invalid string parameter token",
    );
    let (status, _) = k.form_post(
        "revoke",
        &[("token", &client_token)],
        Some((&conf, &secret)),
    );
    assert_eq!(status, 204);
    assert_eq!(
        k.call(
            "credentials/list",
            Some(&client_token),
            &json!({ "userID": "bob" })
        )
        .0,
        401
    );
    let (_, tok) = post(
        &[("grant_type", "client_credentials")],
        Some((&conf, &secret)),
    );
    let second = tok["access_token"].as_str().expect("token").to_owned();
    let (status, _) = k.call("auth/revoke", Some(&second), &json!({ "token": second }));
    assert_eq!(status, 204);
}

#[test]
fn refresh_tokens_renew_and_their_revocation_takes_the_access_tokens() {
    let f = fixture(|_| {});
    let r = REDIRECT_URI.to_owned();
    let (code, verifier) = f.service_code(Some(&r));
    let (status, tok) = f.exchange(&code, Some(&r), &verifier);
    assert_eq!(status, 200, "{tok}");
    let refresh = tok["refresh_token"].as_str().expect("refresh").to_owned();
    let post = |fields: &[(&str, &str)]| f.k.form_post("token", fields, None);
    let (status, renewed) = post(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("client_id", &f.client_id),
    ]);
    assert_eq!(status, 200, "{renewed}");
    let access = renewed["access_token"].as_str().expect("access").to_owned();
    assert_eq!(
        f.k.call("credentials/list", Some(&access), &json!({})).0,
        200
    );
    // an auth/login refresh token is not an OAuth 2.0 one, and the reverse
    let (status, login) =
        f.k.login_with("alice", ALICE_PASSWORD, &json!({ "rememberMe": true }));
    assert_eq!(status, 200, "{login}");
    assert_error(
        &post(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                login["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", &f.client_id),
        ]),
        400,
        "invalid_grant",
        "Invalid parameter refresh_token",
    );
    assert_error(
        &f.k.call("auth/login", None, &json!({ "refresh_token": refresh })),
        400,
        "invalid_request",
        "Invalid refresh_token",
    );
    // revoking the refresh token revokes the access tokens it minted (RFC 7009 §2.1)
    let (status, _) = f.k.form_post(
        "revoke",
        &[
            ("token", &refresh),
            ("token_type_hint", "refresh_token"),
            ("client_id", &f.client_id),
        ],
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(
        f.k.call("credentials/list", Some(&access), &json!({})).0,
        401
    );
    assert_error(
        &post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &f.client_id),
        ]),
        400,
        "invalid_grant",
        "Invalid parameter refresh_token",
    );
}

#[test]
fn oauth2code_credentials_refuse_credentials_authorize_and_sign_through_the_page() {
    let k = Kit::new();
    let created = k
        .credential_create(
            "alice",
            &[
                "--key",
                "ec-p256",
                "--scal",
                "2",
                "--online-otp",
                "--auth-mode",
                "oauth2code",
            ],
        )
        .expect("credential create");
    let cred = created["credentialID"].as_str().expect("id").to_owned();
    assert_eq!(
        (created["authMode"].as_str(), created["otp"].as_str()),
        (Some("oauth2code"), Some("online"))
    );
    let (client_id, _) = k.client_add("App", &[REDIRECT_URI], false);
    let alice = k.login("alice", ALICE_PASSWORD);
    let (_, info) = k.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": cred, "authInfo": true }),
    );
    assert_eq!(info["authMode"], "oauth2code");
    assert!(
        info.get("PIN").is_none(),
        "PIN/OTP are described for explicit mode only"
    );
    let h = digest(b"deed");
    let otp = k.online_otp(&alice, &cred);
    assert!(otp.is_none(), "not in the fixture's list");
    assert_error(
        &k.call(
            "credentials/authorize",
            Some(&alice),
            &json!({ "credentialID": cred, "numSignatures": 1, "hash": [STANDARD.encode(&h)], "PIN": PIN, "OTP": "123456" }),
        ),
        400,
        "invalid_request",
        "The credential must be authorized with OAuth 2.0 (authMode oauth2code)",
    );
    // SCAL 2 through the page: hash required
    let (verifier, challenge) = pkce();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("scope", "credential"),
        ("credentialID", cred.as_str()),
        ("numSignatures", "1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let mut agent = Agent::new(&k);
    let page = agent.get(&authorize_url(BASE, &params));
    let handle = handle_of(&page.body);
    let after = agent.post(&[
        ("request", &handle),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ]);
    let q = query_of(&after.location.expect("redirect"));
    assert_eq!(q.get("error").map(String::as_str), Some("invalid_request"));
    assert_eq!(
        q.get("error_description").map(String::as_str),
        Some("Missing parameter hash")
    );

    let hash = b64url(&h);
    params.push(("hash", hash.as_str()));
    let landed = approve_with_forms(&k, &authorize_url(BASE, &params), Some(&cred));
    let code = query_of(&landed)["code"].clone();
    let (status, tok) = k.form_post(
        "token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ],
        None,
    );
    assert_eq!(
        (status, tok["token_type"].as_str()),
        (200, Some("SAD")),
        "{tok}"
    );
    let (status, signed) = sign_hash(
        &k,
        &alice,
        &cred,
        tok["access_token"].as_str().expect("SAD"),
        std::slice::from_ref(&h),
        ECDSA_SHA256,
    );
    assert_eq!(status, 200, "{signed}");
}

/// `grant_type=refresh_token` rotates: the answer carries a new refresh token and the one used
/// is dead. Presented again, the used one revokes the whole grant (`invalid_grant`): the tokens
/// of the code, the new refresh token and what it minted.
#[test]
fn oauth_refresh_tokens_rotate_and_a_reused_one_ends_the_grant() {
    let f = fixture(|_| {});
    let r = REDIRECT_URI.to_owned();
    let (code, verifier) = f.service_code(Some(&r));
    let (status, tok) = f.exchange(&code, Some(&r), &verifier);
    assert_eq!(status, 200, "{tok}");
    let r0 = tok["refresh_token"].as_str().expect("refresh").to_owned();
    let refresh = |rt: &str| {
        f.k.form_post(
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &f.client_id),
            ],
            None,
        )
    };
    let (status, renewed) = refresh(&r0);
    assert_eq!(status, 200, "{renewed}");
    let r1 = renewed["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(r0, r1);
    let a1 = renewed["access_token"].as_str().expect("access").to_owned();
    assert_eq!(f.k.call("credentials/list", Some(&a1), &json!({})).0, 200);
    let reuse = refresh(&r0);
    assert_error(
        &reuse,
        400,
        "invalid_grant",
        "Invalid parameter refresh_token",
    );
    for a in [tok["access_token"].as_str().expect("a0"), &a1] {
        assert_eq!(
            f.k.call("credentials/list", Some(a), &json!({})),
            (
                401,
                json!({
                    "error": "expired_token",
                    "error_description": "The access or refresh token is expired or has been revoked"
                })
            )
        );
    }
    assert_error(
        &refresh(&r1),
        400,
        "invalid_grant",
        "Invalid parameter refresh_token",
    );
}

/// When every password check is busy and none may wait (`login_concurrency` 1, `login_queue`
/// 0), the sign-in form comes back with 429 and `Retry-After` instead of queueing; the pending
/// request survives, and the next try signs in. The busy check is a turn the test holds.
#[test]
fn the_sign_in_page_answers_429_while_every_password_check_is_busy() {
    let f = fixture(|c| {
        c.login_limits = sam::LoginLimits {
            concurrency: 1,
            queue: 0,
        }
    });
    let (_verifier, challenge) = pkce();
    let url = authorize_url(
        BASE,
        &[
            ("response_type", "code"),
            ("client_id", f.client_id.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("redirect_uri", REDIRECT_URI),
        ],
    );
    let mut agent = Agent::new(&f.k);
    let page = agent.get(&url);
    assert_eq!(page.status, 200, "{}", page.body);
    let handle = handle_of(&page.body);
    let sign_in = [
        ("request", handle.as_str()),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ];
    let held = f.k.sam().login_gate().enter().expect("the only turn");
    let page = agent.post(&sign_in);
    assert_eq!(page.status, 429, "{}", page.body);
    assert_eq!(
        page.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(page.body.contains("Too many sign-ins"), "{}", page.body);
    assert_eq!(handle_of(&page.body), handle, "the same form, to try again");
    // auth/login says the same in JSON
    let (status, busy) = f.k.login_with("alice", ALICE_PASSWORD, &json!({}));
    assert_eq!(
        (status, busy["error"].as_str()),
        (429, Some("temporarily_unavailable"))
    );
    drop(held);
    let page = agent.post(&sign_in);
    let landed = page.location.expect("signed in: redirected with a code");
    assert!(query_of(&landed).contains_key("code"), "{landed}");
}
