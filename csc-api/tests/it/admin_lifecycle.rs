//! The whole life of a credential over the admin API of the real binary, with pyHanko (README
//! "Admin API", "Credential lifecycle"; JT2A I 7.1.3, I appendix 4, II 3.3.1):
//! `init --security-officer` bootstraps the first administrator; everything after
//! goes over the `admin_listen` listener, each act by the role the role table gives it
//! (`sam::roles::allows`): the security officer adds an operator and an auditor; the operator
//! adds the signer, creates her EC P-256 credential for an outside CA (`openssl ca`), asks the
//! CSR, imports the chain, disables and enables it; the security officer rekeys it (a new CSR,
//! certified again) and revokes it. pyHanko's CSC client (`tests/pyhanko/csc_e2e.py`) signs a PDF
//! through the CSC API at each signing step and is refused with the server's exact error while
//! the credential is disabled or revoked; the token (`pkcs11-tool --list-objects`) loses each key
//! as it is destroyed; and after the revocation pyHanko's validator still finds the three PDFs
//! intact, valid and trusted with the outside CA as the only trust root (and not trusted under
//! the development CA). The auditor reads the acts back over `GET /admin/v1/audit`, each naming
//! its role and person, in order, and the log verifies.

use std::path::Path;
use std::process::Command;

use openssl::x509::{X509, X509Req};
use serde_json::{Value, json};

use crate::common::*;
use crate::operator_ca::{make_external_ca, openssl};
use crate::tls::{SO_PASSWORD, admin_base};

const SUBJECT: &str = "CN=alice,O=Example Signers,C=BE";
const OPERATOR_PASSWORD: &str = "operator-password";
const AUDITOR_PASSWORD: &str = "auditor-password";
const DISABLED: &str = "The credential identified by credentialID is disabled";
const PENDING: &str = "Invalid certificate status: the credential has no certificate yet";

/// A client of the admin listener.
struct AdminApi {
    base: String,
    client: reqwest::blocking::Client,
}

impl AdminApi {
    /// `POST /admin/v1/token` (client_credentials, HTTP Basic): the access token.
    fn token(&self, user: &str, password: &str) -> String {
        let r = self
            .client
            .post(format!("{}/admin/v1/token", self.base))
            .basic_auth(user, Some(password))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .expect("token request");
        assert_eq!(r.status().as_u16(), 200, "admin token of {user}");
        r.json::<Value>().expect("json")["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A call with a Bearer token (and a JSON body unless `Null`): `(status, JSON)`.
    fn call(&self, token: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(body);
        }
        let r = req.send().expect("admin request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// A call that must answer `status`: its JSON.
    #[track_caller]
    fn ok(&self, token: &str, method: &str, path: &str, body: &Value, status: u16) -> Value {
        let (got, v) = self.call(token, method, path, body);
        assert_eq!(got, status, "{method} {path}: {v}");
        v
    }
}

/// What one run of `csc_e2e.py` left: its exit, its JSON lines, the HTTP exchanges it recorded
/// (`requests.jsonl`), and everything for a failure message.
struct PyHanko {
    success: bool,
    pdfs: Vec<Value>,
    exchanges: Vec<Value>,
    context: String,
}

/// pyHanko's CSC client signs one PDF with credential `cred` as the holder of `token`, into
/// `out` (`ec-p256-1.pdf`), validating it against `ca` alone.
fn pyhanko_sign(server: &Server, token: &str, cred: &str, ca: &Path, out: &Path) -> PyHanko {
    let run = Command::new(crate::pyhanko::python())
        .arg(crate::pyhanko::script())
        .args(["--base-url", &server.base, "--token", token, "--pin", PIN])
        .arg("--ca")
        .arg(ca)
        .arg("--out")
        .arg(out)
        .args([
            "--scenario",
            "ec-p256",
            "--credential",
            cred,
            "--batch",
            "1",
        ])
        .output()
        .expect("run csc_e2e.py");
    let exchanges: Vec<Value> = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let context = format!(
        "--- stdout\n{stdout}--- stderr\n{}--- exchanges\n{}\n--- server log\n{}",
        String::from_utf8_lossy(&run.stderr),
        serde_json::to_string_pretty(&exchanges).unwrap_or_default(),
        server.log.lock().map(|l| l.clone()).unwrap_or_default()
    );
    PyHanko {
        success: run.status.success(),
        pdfs: pdf_lines(&stdout),
        exchanges,
        context,
    }
}

fn pdf_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["kind"] == "pdf")
        .collect()
}

/// pyHanko signed: one PDF, which its validator finds intact, valid and trusted under `ca`,
/// signed by alice's certificate of serial `serial`. The signed PDF's path.
#[track_caller]
fn signed(run: &PyHanko, out: &Path, serial: &str) -> std::path::PathBuf {
    let ctx = &run.context;
    assert!(run.success, "{ctx}");
    assert_eq!(run.pdfs.len(), 1, "{ctx}");
    let pdf = &run.pdfs[0];
    for key in ["ok", "intact", "valid", "trusted", "bottom_line"] {
        assert_eq!(pdf[key], true, "{key} of {pdf}\n{ctx}");
    }
    assert_eq!(
        (&pdf["signer"], &pdf["signer_serial"], &pdf["mechanism"]),
        (&json!("alice"), &json!(serial), &json!("sha256_ecdsa")),
        "{pdf}"
    );
    out.join("ec-p256-1.pdf")
}

/// pyHanko was refused: its `credentials/authorize` answered 400 `invalid_request` with
/// `description` (the server's words, as pyHanko received them), no signHash was sent and no
/// PDF came out.
#[track_caller]
fn refused(run: &PyHanko, out: &Path, description: &str) {
    let ctx = &run.context;
    assert!(!run.success, "pyHanko signed:\n{ctx}");
    assert_eq!(run.pdfs.len(), 1, "{ctx}");
    assert_eq!(run.pdfs[0]["ok"], false, "{ctx}");
    let calls = |suffix: &str| -> Vec<&Value> {
        run.exchanges
            .iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .collect()
    };
    let authorize = calls("/csc/v1/credentials/authorize");
    assert_eq!(authorize.len(), 1, "{ctx}");
    assert_eq!(authorize[0]["status"], 400, "{ctx}");
    assert_eq!(
        (
            &authorize[0]["response"]["error"],
            &authorize[0]["response"]["error_description"]
        ),
        (&json!("invalid_request"), &json!(description)),
        "{ctx}"
    );
    assert!(calls("/signatures/signHash").is_empty(), "{ctx}");
    assert!(!out.join("ec-p256-1.pdf").exists(), "{ctx}");
}

/// pyHanko's validator alone (`csc_e2e.py --validate`) on PDFs signed earlier, with `ca` as the
/// only trust root: its exit and one line per PDF.
fn pyhanko_validate(ca: &Path, pdfs: &[&Path]) -> (bool, Vec<Value>, String) {
    let run = Command::new(crate::pyhanko::python())
        .arg(crate::pyhanko::script())
        .arg("--ca")
        .arg(ca)
        .arg("--validate")
        .args(pdfs)
        .output()
        .expect("run csc_e2e.py --validate");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let context = format!(
        "--- stdout\n{stdout}--- stderr\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    (run.status.success(), pdf_lines(&stdout), context)
}

/// The token's objects as `pkcs11-tool --list-objects` shows them to whoever holds the data
/// directory's token PIN: `(Private|Public, label, CKA_ID in hex)` of each key.
fn token_keys(dir: &Path) -> Vec<(String, String, String)> {
    let pin = std::fs::read_to_string(dir.join("token.pin")).expect("token.pin");
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .args(["--module", csc_api::config::DEFAULT_MODULE])
        .args([
            "--token-label",
            "csc-server",
            "--login",
            "--pin",
            pin.trim(),
        ])
        .arg("--list-objects")
        .output()
        .expect("pkcs11-tool (opensc)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pkcs11-tool: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // blocks: "Private Key Object; EC" / "Public Key Object; EC ..." then "  label:" and "  ID:"
    let mut keys = Vec::new();
    let mut current: Option<(String, String, String)> = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            keys.extend(current.take());
            if let Some((kind, _)) = line.split_once(" Key Object") {
                current = Some((kind.to_owned(), String::new(), String::new()));
            }
        } else if let Some((_, label, id)) = current.as_mut() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("label:") {
                *label = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("ID:") {
                *id = v.trim().to_owned();
            }
        }
    }
    keys.extend(current);
    keys
}

/// The CKA_ID of the credential's private key in the token (labelled with its ID), if any.
fn private_key_id(dir: &Path, cred: &str) -> Option<String> {
    token_keys(dir)
        .into_iter()
        .find(|(kind, label, _)| kind == "Private" && label == cred)
        .map(|(_, _, id)| id)
}

/// The outside CA certifies `csr` (`openssl ca`): the certificate, PEM.
fn certify(ca_dir: &Path, csr: &Value, name: &str) -> String {
    let req = format!("{name}.csr");
    let cert = format!("{name}.pem");
    std::fs::write(ca_dir.join(&req), csr.as_str().expect("csr")).expect("write csr");
    openssl(
        ca_dir,
        &[
            "ca", "-batch", "-config", "ca.cnf", "-in", &req, "-out", &cert, "-notext",
        ],
    );
    std::fs::read_to_string(ca_dir.join(cert)).expect("certificate")
}

fn csr_key(csr: &Value) -> openssl::pkey::PKey<openssl::pkey::Public> {
    let req = X509Req::from_pem(csr.as_str().expect("csr").as_bytes()).expect("PKCS#10");
    let key = req.public_key().expect("key");
    assert!(req.verify(&key).expect("verify"), "signed by its key");
    key
}

fn serial_hex(cert_pem: &str) -> String {
    let cert = X509::from_pem(cert_pem.as_bytes()).expect("PEM");
    let hex = cert
        .serial_number()
        .to_bn()
        .expect("bn")
        .to_hex_str()
        .expect("hex")
        .to_lowercase();
    hex.trim_start_matches('0').to_owned()
}

#[test]
fn the_full_lifecycle_over_the_admin_api_with_pyhanko() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let work = tmp.path().join("work");
    let ca_dir = work.join("ca");
    std::fs::create_dir_all(&ca_dir).expect("mkdir");

    // the CLI bootstraps the first security officer; the rest goes over the admin listener
    let init = run_ok(
        csc(&dir)
            .args(["init", "--security-officer", "sofia"])
            .env("CSC_SO_PASSWORD", SO_PASSWORD),
    );
    let dev_ca = work.join("dev-ca.der");
    std::fs::write(
        &dev_ca,
        decode(init["caCertificate"].as_str().expect("caCertificate")),
    )
    .expect("write");
    let mut cmd = csc(&dir);
    cmd.arg("serve").env("CSC_ADMIN_LISTEN", "127.0.0.1:0");
    let server = start(cmd);
    let admin = AdminApi {
        base: admin_base(&server),
        client: reqwest::blocking::Client::new(),
    };
    let so = admin.token("sofia", SO_PASSWORD);
    for (name, role, password) in [
        ("olga", "operator", OPERATOR_PASSWORD),
        ("aude", "auditor", AUDITOR_PASSWORD),
    ] {
        let body = json!({ "name": name, "role": role, "password": password });
        let user = admin.ok(&so, "POST", "/admin/v1/users", &body, 201);
        assert_eq!((&user["name"], &user["role"]), (&json!(name), &json!(role)));
    }
    let op = admin.token("olga", OPERATOR_PASSWORD);
    let body = json!({ "name": "alice", "role": "signer", "password": ALICE_PASSWORD });
    admin.ok(&op, "POST", "/admin/v1/users", &body, 201);

    // the operator: an EC P-256 key in the token, for the outside CA
    let body = json!({ "user": "alice", "keySpec": "ec-p256", "pin": PIN, "csr": true,
                       "subject": SUBJECT });
    let created = admin.ok(&op, "POST", "/admin/v1/credentials", &body, 201);
    assert_eq!(created["certificateStatus"], "pending", "{created}");
    let id = created["credentialID"].as_str().expect("id").to_owned();
    let creds = format!("/admin/v1/credentials/{id}");
    let first_key = private_key_id(&dir, &id).expect("the key in the token");

    // CSR over the admin API, certified by the outside CA, the chain imported
    make_external_ca(&ca_dir);
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).expect("ca.pem");
    let ca = ca_dir.join("ca.pem");
    // the operator's round: a CSR over the admin API, the outside CA's certificate for it, the
    // chain imported; (the CSR, the certificate's serial, the credential after the import)
    let certify_and_import = |name: &str| -> (Value, String, Value) {
        let body = json!({ "subject": SUBJECT });
        let csr = admin.ok(&op, "POST", &format!("{creds}/csr"), &body, 200)["csr"].clone();
        let cert = certify(&ca_dir, &csr, name);
        let body = json!({ "certificates": [cert, ca_pem] });
        let imported = admin.ok(&op, "POST", &format!("{creds}/chain"), &body, 200);
        (csr, serial_hex(&cert), imported)
    };
    let (csr, first_serial, imported) = certify_and_import("first");
    assert!(csr_key(&csr).public_eq(&csr_key(&created["csr"])));
    assert_eq!(
        (&imported["certificateStatus"], &imported["status"]),
        (&json!("valid"), &json!("enabled")),
        "{imported}"
    );

    // PDF #1
    let api = Api::new(&server.base);
    let alice = api.login("alice", ALICE_PASSWORD);
    let out1 = work.join("pdf1");
    let pdf1 = signed(
        &pyhanko_sign(&server, &alice, &id, &ca, &out1),
        &out1,
        &first_serial,
    );

    // disabled: pyHanko is refused with the server's words
    let v = admin.ok(&op, "POST", &format!("{creds}/disable"), &Value::Null, 200);
    assert_eq!(v["status"], "disabled", "{v}");
    let out = work.join("refused-disabled");
    refused(
        &pyhanko_sign(&server, &alice, &id, &ca, &out),
        &out,
        DISABLED,
    );

    // enabled again: PDF #2
    let v = admin.ok(&op, "POST", &format!("{creds}/enable"), &Value::Null, 200);
    assert_eq!(v["status"], "enabled", "{v}");
    let out2 = work.join("pdf2");
    let pdf2 = signed(
        &pyhanko_sign(&server, &alice, &id, &ca, &out2),
        &out2,
        &first_serial,
    );

    // the security officer rekeys: a SAD issued before signs nothing, the old key is gone
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        openssl::sha::sha256(b"authorized before the rekey"),
    );
    let (status, auth) = api.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": id, "numSignatures": 1, "hash": [hash], "PIN": PIN }),
    );
    assert_eq!(status, 200, "{auth}");
    let rekeyed = admin.ok(
        &so,
        "POST",
        &format!("{creds}/rekey"),
        &json!({ "csr": true, "subject": SUBJECT }),
        200,
    );
    assert_eq!(
        (
            &rekeyed["credentialID"],
            &rekeyed["oldKeyDestroyed"],
            &rekeyed["certificateStatus"]
        ),
        (&json!(id), &json!(true), &json!("pending")),
        "{rekeyed}"
    );
    let sign_with_old_sad = || {
        api.call(
            "signatures/signHash",
            Some(&alice),
            &json!({ "credentialID": id, "SAD": auth["SAD"], "hash": [hash],
                     "signAlgo": "1.2.840.10045.4.3.2" }),
        )
    };
    // waiting for the new certificate, nothing signs
    assert_error(&sign_with_old_sad(), 400, "invalid_request", PENDING);
    let second_key = private_key_id(&dir, &id).expect("the new key in the token");
    assert_ne!(second_key, first_key);
    assert!(
        !token_keys(&dir).iter().any(|(_, _, k)| *k == first_key),
        "the old key (private and public) is gone from the token"
    );

    // a new certificate: CSR over the admin API for the new key, certified, imported; PDF #3
    let (csr, second_serial, imported) = certify_and_import("second");
    let new_key = csr_key(&csr);
    assert!(new_key.public_eq(&csr_key(&rekeyed["csr"])));
    assert!(!new_key.public_eq(&csr_key(&created["csr"])), "a new key");
    assert_ne!(second_serial, first_serial);
    assert_eq!(imported["certificateStatus"], "valid", "{imported}");
    // the credential signs again, but never with the SAD issued before the rekey
    assert_error(
        &sign_with_old_sad(),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let out3 = work.join("pdf3");
    let pdf3 = signed(
        &pyhanko_sign(&server, &alice, &id, &ca, &out3),
        &out3,
        &second_serial,
    );

    // revoking destroys a key: not the operator's act (JT2A I 7.1.3), refused and audited
    assert_error(
        &admin.call(
            &op,
            "POST",
            &format!("{creds}/revoke"),
            &json!({ "reason": "not mine to say" }),
        ),
        403,
        "access_denied",
        "the role operator may not credential.revoke",
    );

    // the security officer revokes: pyHanko refused, enable refused, the key gone
    let revoked = admin.ok(
        &so,
        "POST",
        &format!("{creds}/revoke"),
        &json!({ "reason": "the signer left" }),
        200,
    );
    assert_eq!(
        (&revoked["status"], &revoked["keyDestroyed"]),
        (&json!("revoked"), &json!(true)),
        "{revoked}"
    );
    let out = work.join("refused-revoked");
    refused(
        &pyhanko_sign(&server, &alice, &id, &ca, &out),
        &out,
        DISABLED,
    );
    assert_error(
        &admin.call(&op, "POST", &format!("{creds}/enable"), &Value::Null),
        409,
        "conflict",
        "the credential is revoked",
    );
    let left = token_keys(&dir);
    assert!(
        !left
            .iter()
            .any(|(_, label, k)| *k == second_key || *k == first_key || *label == id),
        "no key of the credential is left in the token: {left:?}"
    );
    assert!(
        left.iter()
            .any(|(kind, label, _)| kind == "Private" && label == "csc-dev-ca"),
        "the listing shows the keys that remain: {left:?}"
    );

    // after the revocation pyHanko's validator still finds PDFs #1-#3 intact, valid and
    // trusted with the outside CA as the only root; under the development CA, not trusted
    let pdfs = [pdf1.as_path(), pdf2.as_path(), pdf3.as_path()];
    let (ok, lines, ctx) = pyhanko_validate(&ca, &pdfs);
    assert!(ok, "{ctx}");
    assert_eq!(lines.len(), 3, "{ctx}");
    for (line, serial) in lines
        .iter()
        .zip([&first_serial, &first_serial, &second_serial])
    {
        for key in ["ok", "intact", "valid", "trusted", "bottom_line"] {
            assert_eq!(line[key], true, "{key} of {line}\n{ctx}");
        }
        assert_eq!(line["coverage"], "ENTIRE_FILE", "{line}");
        assert_eq!(line["signer_serial"], json!(serial), "{line}");
    }
    let (ok, lines, ctx) = pyhanko_validate(&dev_ca, &pdfs);
    assert!(!ok, "{ctx}");
    assert_eq!(lines.len(), 3, "{ctx}");
    for line in &lines {
        assert_eq!(
            (&line["intact"], &line["trusted"], &line["ok"]),
            (&json!(true), &json!(false), &json!(false)),
            "{line}\n{ctx}"
        );
    }

    // the auditor reads the acts back: each by its role and person, in order
    let aude = admin.token("aude", AUDITOR_PASSWORD);
    let search = |query: &str| -> Vec<Value> {
        let page = admin.ok(
            &aude,
            "GET",
            &format!("/admin/v1/audit?{query}&limit=1000"),
            &Value::Null,
            200,
        );
        assert_eq!(page["next"], Value::Null, "one page: {page}");
        page["records"].as_array().expect("records").clone()
    };
    let acts = |records: &[Value]| -> Vec<(String, String, String, String)> {
        records
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (s("event"), s("actor"), s("subject"), s("outcome"))
            })
            .collect()
    };
    let owned = |list: &[(&str, &str, &str, &str)]| -> Vec<(String, String, String, String)> {
        list.iter()
            .map(|&(e, a, s, o)| (e.into(), a.into(), s.into(), o.into()))
            .collect()
    };
    let users = search("event=user.create");
    assert_eq!(
        acts(&users),
        owned(&[
            // the CLI's bootstrap, in the role it acts as
            ("user.create", "security-officer:cli", "sofia", "success"),
            ("user.create", "security-officer:sofia", "olga", "success"),
            ("user.create", "security-officer:sofia", "aude", "success"),
            ("user.create", "operator:olga", "alice", "success"),
        ]),
        "{users:#?}"
    );
    let records = search(&format!("subject={id}"));
    let (op, so, signer) = ("operator:olga", "security-officer:sofia", "alice");
    let (ok, no) = ("success", "refused");
    let expected: Vec<(&str, &str, &str)> = vec![
        // created, CSR, certified
        ("key.generate", op, ok),
        ("credential.create", op, ok),
        ("credential.csr", op, ok),
        ("credential.csr", op, ok),
        ("credential.import_chain", op, ok),
        // PDF #1
        ("sad.authorize", signer, ok),
        ("signature.sign_hash", signer, ok),
        // disabled: refused
        ("credential.disable", op, ok),
        ("sad.authorize", signer, no),
        // enabled: PDF #2
        ("credential.enable", op, ok),
        ("sad.authorize", signer, ok),
        ("signature.sign_hash", signer, ok),
        // the SAD issued before the rekey
        ("sad.authorize", signer, ok),
        ("credential.rekey", so, ok),
        ("key.destroy", so, ok),
        ("credential.csr", so, ok),
        ("signature.refused", signer, no),
        // the new certificate, the old SAD still refused, PDF #3
        ("credential.csr", op, ok),
        ("credential.import_chain", op, ok),
        ("signature.refused", signer, no),
        ("sad.authorize", signer, ok),
        ("signature.sign_hash", signer, ok),
        ("access.denied", op, no),
        // revoked: refused, not enabled again
        ("credential.revoke", so, ok),
        ("key.destroy", so, ok),
        ("sad.authorize", signer, no),
        ("credential.enable", op, no),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(e, a, o)| (e, a, id.as_str(), o))
        .collect();
    assert_eq!(
        acts(&records),
        owned(&expected),
        "{}",
        serde_json::to_string_pretty(&records).unwrap_or_default()
    );
    // what the records say: the keys the token lost, the certificates, the reasons
    let detail = |event: &str, n: usize| -> Value {
        records
            .iter()
            .filter(|r| r["event"] == event)
            .nth(n)
            .map(|r| r["detail"].clone())
            .unwrap_or_else(|| panic!("{event} #{n}"))
    };
    assert_eq!(detail("key.generate", 0)["keyId"], json!(first_key));
    assert_eq!(
        (
            &detail("credential.rekey", 0)["oldKeyId"],
            &detail("credential.rekey", 0)["newKeyId"]
        ),
        (&json!(first_key), &json!(second_key))
    );
    assert_eq!(detail("key.destroy", 0)["keyId"], json!(first_key));
    assert_eq!(detail("key.destroy", 1)["keyId"], json!(second_key));
    assert_eq!(detail("credential.revoke", 0)["reason"], "the signer left");
    assert_eq!(
        detail("access.denied", 0),
        json!({ "role": "operator", "action": "credential.revoke" })
    );
    assert_eq!(
        detail("credential.import_chain", 0)["certificateSerial"],
        json!(first_serial)
    );
    assert_eq!(
        detail("credential.import_chain", 1)["certificateSerial"],
        json!(second_serial)
    );
    let serials: Vec<Value> = (0..3)
        .map(|n| detail("signature.sign_hash", n)["certificateSerial"].clone())
        .collect();
    assert_eq!(
        serials,
        [
            json!(first_serial),
            json!(first_serial),
            json!(second_serial)
        ]
    );
    // and the log verifies
    let verdict = admin.ok(&aude, "POST", "/admin/v1/audit/verify", &Value::Null, 200);
    assert_eq!(verdict["intact"], true, "{verdict}");
}
