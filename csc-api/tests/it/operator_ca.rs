//! Certificates from the operator's CA (issue 13), the whole round trip through the binary and
//! outside tools: `credential create --csr` makes a key in the token and prints a PKCS#10
//! request signed there; until its certificate comes the credential is listed as `pending` and
//! refuses to be activated or to sign; `openssl ca` (the external CA, with its own key and
//! configuration) certifies the request; `credential import-chain` installs the chain; then the
//! credential signs through the CSC API (the signature verified against the issued
//! certificate) and pyHanko signs a PDF that its validator finds trusted with THAT CA as the only
//! trust root. `credential csr` makes a request for an existing (RSA) credential.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::{X509, X509Req};
use serde_json::{Value, json};

use crate::common::*;

const SUBJECT: &str = "CN=alice,O=Example Signers,C=BE";
const PENDING: &str = "Invalid certificate status: the credential has no certificate yet";

pub(crate) fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The operator's CA: a P-256 root made by `openssl req -x509` (with its own SKI), and an
/// `openssl ca` configuration that issues signer certificates (keyUsage digitalSignature +
/// nonRepudiation, critical; SKI; AKI) and ignores the request's extensions.
pub(crate) fn make_external_ca(dir: &Path) {
    std::fs::create_dir_all(dir.join("newcerts")).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = operator\n\
         [operator]\ndir = .\ndatabase = ./index.txt\nnew_certs_dir = ./newcerts\n\
         certificate = ./ca.pem\nprivate_key = ./ca.key\nserial = ./serial\n\
         default_md = sha256\ndefault_days = 365\npolicy = signers\nunique_subject = no\n\
         copy_extensions = none\nx509_extensions = signer\n\
         [signers]\ncommonName = supplied\norganizationName = optional\ncountryName = optional\n\
         [signer]\nbasicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature,nonRepudiation\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Example Operator CA/O=Example Trust Services",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().expect("base64 string")).unwrap()
}

#[test]
fn a_credential_certified_by_the_operators_ca_signs_pdfs_trusted_under_that_ca_only() {
    let signers = Signers::only(&[]);
    let dir = signers.dir();

    // 1. the key, and its request signed in the token
    let created = run_ok(
        csc(dir)
            .args(["credential", "create", "alice", "--key", "ec-p256"])
            .args(["--csr", "--subject", SUBJECT])
            .env("CSC_PIN", PIN),
    );
    let id = created["credentialID"].as_str().unwrap().to_owned();
    assert_eq!(created["certificateStatus"], "pending", "{created}");
    assert_eq!(created["certificates"], json!([]), "{created}");
    assert_eq!(created["certificate"], Value::Null, "{created}");
    let csr_pem = created["csr"].as_str().expect("csr").to_owned();
    let req = X509Req::from_pem(csr_pem.as_bytes()).expect("a PEM PKCS#10 request");
    assert!(
        req.verify(&req.public_key().unwrap()).unwrap(),
        "self-signature"
    );
    let subject: Vec<String> = req
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap(),
                e.data().to_string().unwrap()
            )
        })
        .collect();
    assert_eq!(subject, ["C=BE", "O=Example Signers", "CN=alice"]);
    let listed = run_ok(csc(dir).args(["credential", "list", "alice"]));
    assert_eq!(listed[0]["certificateStatus"], "pending", "{listed}");

    // 2. waiting for its certificate, it cannot be activated nor sign (v1 and v2)
    {
        let (_server, api) = signers.serve(&[]);
        let alice = api.login("alice", ALICE_PASSWORD);
        let (status, info) = api.call(
            "credentials/info",
            Some(&alice),
            &json!({ "credentialID": id, "certificates": "chain" }),
        );
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["key"]["status"], "disabled", "{info}");
        assert_eq!(info["cert"].get("status"), None, "{info}");
        let hash = STANDARD.encode(openssl::sha::sha256(b"pending"));
        assert_error(
            &api.call(
                "credentials/authorize",
                Some(&alice),
                &json!({ "credentialID": id, "numSignatures": 1, "hash": [hash], "PIN": PIN }),
            ),
            400,
            "invalid_request",
            PENDING,
        );
        assert_error(
            &api.call_v2(
                "credentials/authorize",
                Some(&alice),
                &json!({ "credentialID": id, "numSignatures": 1, "hashes": [hash],
                         "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                         "authData": [{ "id": "PIN", "value": PIN }] }),
            ),
            400,
            "invalid_request",
            PENDING,
        );
        assert_error(
            &api.call(
                "signatures/signHash",
                Some(&alice),
                &json!({ "credentialID": id, "SAD": "x", "hash": [hash],
                         "signAlgo": "1.2.840.10045.4.3.2" }),
            ),
            400,
            "invalid_request",
            PENDING,
        );
        let (status, list) = api.call_v2(
            "credentials/list",
            Some(&alice),
            &json!({ "onlyValid": true }),
        );
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["credentialIDs"], json!([]), "{list}");
    }

    // 3. the operator's CA certifies the request
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_dir = ca_dir.path();
    make_external_ca(ca_dir);
    std::fs::write(ca_dir.join("req.pem"), &csr_pem).unwrap();
    openssl(
        ca_dir,
        &[
            "ca", "-batch", "-config", "ca.cnf", "-in", "req.pem", "-out", "leaf.pem", "-notext",
        ],
    );
    openssl(
        ca_dir,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "any",
            "leaf.pem",
        ],
    );
    let leaf = X509::from_pem(&std::fs::read(ca_dir.join("leaf.pem")).unwrap()).unwrap();
    let ca = X509::from_pem(&std::fs::read(ca_dir.join("ca.pem")).unwrap()).unwrap();

    // a bundle that does not certify the credential's key is refused
    let wrong = csc(dir)
        .args(["credential", "import-chain", &id])
        .arg(ca_dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "the CA's own certificate was taken"
    );
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("not the credential's key"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    // 4. import-chain completes the credential
    let bundle = ca_dir.join("bundle.pem");
    std::fs::write(
        &bundle,
        [leaf.to_pem().unwrap(), ca.to_pem().unwrap()].concat(),
    )
    .unwrap();
    let imported = run_ok(
        csc(dir)
            .args(["credential", "import-chain", &id])
            .arg(&bundle),
    );
    assert_eq!(imported["certificateStatus"], "valid", "{imported}");
    assert_eq!(b64(&imported["certificates"][0]), leaf.to_der().unwrap());
    assert_eq!(b64(&imported["certificates"][1]), ca.to_der().unwrap());

    // 5. it signs: authorize + signHash, the signature verified with the issued certificate
    let (server, api) = signers.serve(&[]);
    let alice = api.login("alice", ALICE_PASSWORD);
    let (status, info) = api.call(
        "credentials/info",
        Some(&alice),
        &json!({ "credentialID": id, "certificates": "chain", "certInfo": true }),
    );
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["key"]["status"], "enabled", "{info}");
    assert_eq!(info["cert"]["status"], "valid", "{info}");
    assert_eq!(
        info["cert"]["issuerDN"], "O=Example Trust Services,CN=Example Operator CA",
        "{info}"
    );
    let document = b"a contract signed under the operator's CA";
    let hash = STANDARD.encode(openssl::sha::sha256(document));
    let (status, auth) = api.call(
        "credentials/authorize",
        Some(&alice),
        &json!({ "credentialID": id, "numSignatures": 1, "hash": [hash], "PIN": PIN }),
    );
    assert_eq!(status, 200, "{auth}");
    let (status, signed) = api.call(
        "signatures/signHash",
        Some(&alice),
        &json!({ "credentialID": id, "SAD": auth["SAD"], "hash": [hash],
                 "signAlgo": "1.2.840.10045.4.3.2" }),
    );
    assert_eq!(status, 200, "{signed}");
    let signature = b64(&signed["signatures"][0]);
    let key = leaf.public_key().unwrap();
    let mut verifier = Verifier::new(MessageDigest::sha256(), &key).unwrap();
    verifier.update(document).unwrap();
    assert!(verifier.verify(&signature).unwrap(), "ECDSA signature");

    // 6. pyHanko signs a PDF through the CSC API; its validator trusts only the operator's CA
    let out_dir = ca_dir.join("out");
    let out = Command::new(crate::pyhanko::python())
        .arg(crate::pyhanko::script())
        .args(["--base-url", &api.base, "--token", &alice, "--pin", PIN])
        .arg("--ca")
        .arg(ca_dir.join("ca.pem"))
        .arg("--out")
        .arg(&out_dir)
        .args(["--scenario", "ec-p256", "--credential", &id, "--batch", "1"])
        .output()
        .expect("run csc_e2e.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "--- stdout\n{stdout}--- stderr\n{}--- server log\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log.lock().map(|l| l.clone()).unwrap_or_default()
    );
    assert!(out.status.success(), "{context}");
    let pdf: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["kind"] == "pdf")
        .unwrap_or_else(|| panic!("no pdf line\n{context}"));
    for key in ["ok", "intact", "valid", "trusted", "bottom_line"] {
        assert_eq!(pdf[key], true, "{key} of {pdf}\n{context}");
    }
    assert_eq!(pdf["signer"], "alice", "{pdf}");
    drop(server);

    // 7. `credential csr` for an existing credential (RSA, dev CA): the default subject is
    // CN=<user>, signed with sha256WithRSAEncryption in the token
    let rsa = run_ok(
        csc(dir)
            .args(["credential", "create", "alice", "--key", "rsa-2048"])
            .env("CSC_PIN", PIN),
    );
    let rsa_id = rsa["credentialID"].as_str().unwrap();
    let again = run_ok(csc(dir).args(["credential", "csr", rsa_id]));
    assert_eq!(again["credentialID"], rsa_id);
    let req = X509Req::from_pem(again["csr"].as_str().unwrap().as_bytes()).unwrap();
    let cert = X509::from_der(&b64(&rsa["certificate"])).unwrap();
    assert!(
        req.verify(&cert.public_key().unwrap()).unwrap(),
        "signed by the credential's key"
    );
    assert!(
        req.public_key()
            .unwrap()
            .public_eq(&cert.public_key().unwrap())
    );
    std::fs::write(ca_dir.join("rsa.pem"), again["csr"].as_str().unwrap()).unwrap();
    let text = openssl(
        ca_dir,
        &["req", "-in", "rsa.pem", "-noout", "-text", "-verify"],
    );
    assert!(text.contains("Subject: CN = alice"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    assert!(
        text.contains("Digital Signature, Non Repudiation"),
        "{text}"
    );

    // everything above is in the audit log, which verifies
    let verdict = run_ok(csc(dir).args(["audit", "verify"]));
    assert_eq!(verdict["intact"], true, "{verdict}");
}

/// In process (the kit): every door through which a key could be activated or used refuses a
/// credential waiting for its certificate, with the same CSC error, in v1 and v2; it is listed,
/// but not among v2's `onlyValid`; and its request is audited.
#[test]
fn a_credential_waiting_for_its_certificate_is_refused_at_every_door() {
    use crate::kit::Kit;
    let kit = Kit::new();
    let opts = csc_api::admin::CredentialOptions {
        spec: sam::KeySpec::EcP256,
        scal: sam::Scal::One,
        multisign: 2,
        otp: sam::OtpChoice::Online,
        auth_mode: sam::AuthMode::Explicit,
    };
    let created = csc_api::admin::credential_create_for_csr(
        kit.sam(),
        "alice",
        opts,
        secrecy::SecretString::from(PIN),
        None,
    )
    .expect("create --csr");
    let id = created["credentialID"].as_str().unwrap().to_owned();
    assert_eq!(created["certificateStatus"], "pending");
    let req = X509Req::from_pem(created["csr"].as_str().unwrap().as_bytes()).unwrap();
    assert!(req.verify(&req.public_key().unwrap()).unwrap());
    // the default subject: CN=<user>
    let cn: Vec<String> = req
        .subject_name()
        .entries()
        .map(|e| e.data().to_string().unwrap())
        .collect();
    assert_eq!(cn, ["alice"]);

    let alice = kit.login("alice", ALICE_PASSWORD);
    let hash = STANDARD.encode(openssl::sha::sha256(b"pending"));
    let sha256 = "2.16.840.1.101.3.4.2.1";
    let ecdsa = "1.2.840.10045.4.3.2";
    for (v2, method, body) in [
        (
            false,
            "credentials/authorize",
            json!({ "credentialID": id, "numSignatures": 1, "hash": [hash], "PIN": PIN }),
        ),
        (
            true,
            "credentials/authorize",
            json!({ "credentialID": id, "numSignatures": 1, "hashes": [hash],
                 "hashAlgorithmOID": sha256, "authData": [{ "id": "PIN", "value": PIN }] }),
        ),
        (false, "credentials/sendOTP", json!({ "credentialID": id })),
        (
            false,
            "credentials/extendTransaction",
            json!({ "credentialID": id, "SAD": "x", "hash": [hash] }),
        ),
        (
            false,
            "signatures/signHash",
            json!({ "credentialID": id, "SAD": "x", "hash": [hash], "signAlgo": ecdsa }),
        ),
        (
            true,
            "signatures/signHash",
            json!({ "credentialID": id, "SAD": "x", "hashes": [hash],
                 "hashAlgorithmOID": sha256, "signAlgo": ecdsa }),
        ),
    ] {
        let got = if v2 {
            kit.call_v2(method, Some(&alice), &body)
        } else {
            kit.call(method, Some(&alice), &body)
        };
        assert_eq!(got.0, 400, "{method} (v2: {v2}): {}", got.1);
        assert_eq!(got.1["error"], "invalid_request", "{method}: {}", got.1);
        assert_eq!(got.1["error_description"], PENDING, "{method}: {}", got.1);
    }
    for v2 in [false, true] {
        let body = json!({ "credentialID": id, "certificates": "chain", "certInfo": true });
        let (status, info) = if v2 {
            kit.call_v2("credentials/info", Some(&alice), &body)
        } else {
            kit.call("credentials/info", Some(&alice), &body)
        };
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["key"]["status"], "disabled", "{info}");
        assert_eq!(info["cert"].get("status"), None, "{info}");
        assert_eq!(info["cert"].get("subjectDN"), None, "{info}");
    }
    let (_, list) = kit.call("credentials/list", Some(&alice), &json!({}));
    assert_eq!(list["credentialIDs"], json!([id]), "{list}");
    let (_, list) = kit.call_v2(
        "credentials/list",
        Some(&alice),
        &json!({ "onlyValid": true }),
    );
    assert_eq!(list["credentialIDs"], json!([]), "{list}");

    let records = kit.audit_records();
    let csr = records
        .iter()
        .find(|r| r.event == "credential.csr")
        .expect("a credential.csr record");
    assert_eq!(csr.subject, id);
    assert_eq!(csr.outcome, "success");
    assert!(kit.audit_intact());
}
