//! The time-stamping authority (issue 12) against the real app in process ([`crate::kit`]):
//! `signatures/timestamp` (spec §11.10) and the RFC 3161 endpoint `POST /tsa` (§3.4). Tokens
//! are read back with RustCrypto's ASN.1 types (queries are built with them too), their
//! signatures verified with the TSA certificate's key, its certificate checked against the dev
//! CA; every refusal with its exact answer; one `timestamp.issue` audit record per token; the
//! configuration keys honoured; and OpenSSL's `openssl ts -verify` accepting a token of each
//! door.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5280, rfc5911, rfc5912};
use der::asn1::{BitString, GeneralizedTime, Int, OctetString, Utf8StringRef};
use der::{Any, Decode, Encode, Sequence};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde_json::{Value, json};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifier;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TspVersion};

use crate::common::*;
use crate::kit::Kit;

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA384: &str = "2.16.840.1.101.3.4.2.2";
const SHA1: &str = "1.3.14.3.2.26";
/// The default policy: a UUID OID (X.667), README "Time-stamping authority".
const DEFAULT_POLICY: &str = "2.25.156933992464786469901366689354421140955";
const ID_CT_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const QUERY: &str = "application/timestamp-query";

/// `TSTInfo` (RFC 3161 §2.4.2) with the policy as an `Any`: a UUID OID's last arc is wider
/// than const-oid's 32 bits. The server sends neither `tsa` nor `extensions`: with them the
/// decoding would fail on trailing data.
#[derive(Debug, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: Any,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: GeneralizedTime,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
}

/// `PKIStatusInfo` with `failInfo` as a plain BIT STRING (bit n = PKIFailureInfo n).
#[derive(Debug, Sequence)]
struct StatusInfo<'a> {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<Utf8StringRef<'a>>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// `TimeStampResp` (RFC 3161 §2.4.2).
#[derive(Debug, Sequence)]
struct TimeStampResp<'a> {
    status: StatusInfo<'a>,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// ESS `SigningCertificateV2` (RFC 5035 §3; RFC 5816), SHA-256 being the default and so
/// absent: a `hashAlgorithm` present would fail the decoding.
#[derive(Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

#[derive(Debug, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

#[derive(Debug, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// A token read back.
struct Token {
    tst: TstInfo,
    tst_der: Vec<u8>,
    signed: SignedData,
}

fn reencode<T: for<'a> Decode<'a>>(value: &impl Encode) -> T {
    T::from_der(&value.to_der().expect("DER")).expect("decodes")
}

fn read_token(der: &[u8]) -> Token {
    let info = ContentInfo::from_der(der).expect("a ContentInfo");
    assert_eq!(info.content_type, rfc5911::ID_SIGNED_DATA);
    let signed: SignedData = reencode(&info.content);
    assert_eq!(
        signed.encap_content_info.econtent_type,
        ObjectIdentifier::new_unwrap(ID_CT_TST_INFO)
    );
    let econtent = signed
        .encap_content_info
        .econtent
        .as_ref()
        .expect("eContent");
    let tst_der = reencode::<OctetString>(econtent).into_bytes();
    let tst = TstInfo::from_der(&tst_der).expect("a TSTInfo");
    assert_eq!(tst.version, TspVersion::V1);
    assert!(!tst.ordering);
    Token {
        tst,
        tst_der,
        signed,
    }
}

fn signer_info(t: &Token) -> &SignerInfo {
    assert_eq!(t.signed.signer_infos.0.len(), 1);
    t.signed.signer_infos.0.get(0).expect("one SignerInfo")
}

/// The certificates the token carries.
fn certificates(t: &Token) -> Vec<X509> {
    t.signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .map(|c| match c {
            CertificateChoices::Certificate(c) => {
                X509::from_der(&c.to_der().expect("DER")).expect("cert")
            }
            other => panic!("not a certificate: {other:?}"),
        })
        .collect()
}

/// The single value of signed attribute `oid`.
fn signed_attribute(si: &SignerInfo, oid: ObjectIdentifier) -> Any {
    let attrs = si.signed_attrs.as_ref().expect("signed attributes");
    let attr = attrs
        .iter()
        .find(|a| a.oid == oid)
        .unwrap_or_else(|| panic!("no signed attribute {oid}"));
    assert_eq!(attr.values.len(), 1);
    attr.values.get(0).expect("value").clone()
}

/// Checks the CMS signature of a token with the TSA certificate's key, and what its signed
/// attributes say: content type TSTInfo, the message digest of the TSTInfo, the ESS
/// signing-certificate-v2 naming exactly `tsa_cert`.
fn assert_signed_by(t: &Token, tsa_cert: &X509) {
    let si = signer_info(t);
    assert_eq!(si.digest_alg.oid, rfc5912::ID_SHA_256);
    assert_eq!(si.signature_algorithm.oid, rfc5912::ECDSA_WITH_SHA_256);
    let attrs_der = si
        .signed_attrs
        .as_ref()
        .expect("signed attributes")
        .to_der()
        .expect("DER");
    let key = tsa_cert.public_key().expect("key");
    let mut verifier =
        openssl::sign::Verifier::new(MessageDigest::sha256(), &key).expect("verifier");
    assert!(
        verifier
            .verify_oneshot(si.signature.as_bytes(), &attrs_der)
            .expect("verify"),
        "the token's signature does not verify with the TSA certificate's key"
    );
    let content_type: ObjectIdentifier = reencode(&signed_attribute(si, rfc5911::ID_CONTENT_TYPE));
    assert_eq!(content_type, ObjectIdentifier::new_unwrap(ID_CT_TST_INFO));
    let digest: OctetString = reencode(&signed_attribute(si, rfc5911::ID_MESSAGE_DIGEST));
    assert_eq!(digest.as_bytes(), openssl::sha::sha256(&t.tst_der));
    let ess: SigningCertificateV2 = reencode(&signed_attribute(
        si,
        rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2,
    ));
    assert_eq!(ess.certs.len(), 1);
    let id = &ess.certs[0];
    let cert_der = tsa_cert.to_der().expect("DER");
    assert_eq!(id.cert_hash.as_bytes(), openssl::sha::sha256(&cert_der));
    let parsed = x509_cert::Certificate::from_der(&cert_der).expect("cert");
    assert_eq!(
        id.issuer_serial.serial_number,
        parsed.tbs_certificate.serial_number
    );
    assert_eq!(
        id.issuer_serial.issuer,
        vec![GeneralName::DirectoryName(parsed.tbs_certificate.issuer)]
    );
}

/// The policy OID's DER content octets (OpenSSL's encoder: arcs of any size).
fn oid_content(text: &str) -> Vec<u8> {
    openssl::asn1::Asn1Object::from_str(text)
        .expect("OID")
        .as_slice()
        .to_vec()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn tsa_cert(k: &Kit) -> X509 {
    X509::from_der(k.sam().tsa_certificate_der().expect("a TSA")).expect("TSA certificate")
}

fn ca_cert(k: &Kit) -> X509 {
    X509::from_der(k.sam().ca_certificate_der()).expect("CA certificate")
}

fn timestamp(k: &Kit, token: &str, body: Value) -> (u16, Value) {
    k.call("signatures/timestamp", Some(token), &body)
}

/// A DER `TimeStampReq` built with x509-tsp.
pub(crate) fn query(
    hash_oid: &str,
    digest: &[u8],
    nonce: Option<&[u8]>,
    policy: Option<&str>,
    cert_req: bool,
) -> Vec<u8> {
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier {
                oid: hash_oid.parse().expect("OID"),
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(digest).expect("octets"),
        },
        req_policy: policy.map(|p| p.parse().expect("OID")),
        nonce: nonce.map(|n| Int::new(n).expect("nonce")),
        cert_req,
        extensions: None,
    }
    .to_der()
    .expect("DER")
}

/// `POST /tsa` with `body` as `content_type`.
fn post_tsa(k: &Kit, content_type: &str, body: Vec<u8>) -> crate::kit::Resp {
    k.send(
        k.post("/tsa")
            .insert_header(("content-type", content_type))
            .set_payload(body),
    )
}

/// A granted `/tsa` reply's token.
fn granted(resp: &crate::kit::Resp) -> Token {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/timestamp-reply")
    );
    granted_reply(&resp.body)
}

/// The token of a granted DER `TimeStampResp`.
fn granted_reply(der: &[u8]) -> Token {
    let reply = TimeStampResp::from_der(der).expect("a TimeStampResp");
    assert_eq!(reply.status.status, 0, "granted: {:?}", reply.status);
    assert!(reply.status.fail_info.is_none());
    let token = reply.time_stamp_token.expect("a token");
    read_token(&token.to_der().expect("DER"))
}

/// For the other test modules: the DER `TimeStampResp` `reply` is granted, with a token that
/// carries `digest` and is signed by `k`'s TSA.
pub(crate) fn assert_granted_by_the_tsa(k: &Kit, reply: &[u8], digest: &[u8]) {
    let t = granted_reply(reply);
    assert_eq!(t.tst.message_imprint.hashed_message.as_bytes(), digest);
    assert_signed_by(&t, &tsa_cert(k));
}

/// For the other test modules: the DER `TimeStampToken` `token` carries `digest` and the
/// nonce `nonce` (as the integer the hex names) and is signed by `k`'s TSA.
pub(crate) fn assert_token_of_the_tsa(k: &Kit, token: &[u8], digest: &[u8], nonce: &[u8]) {
    let t = read_token(token);
    assert_eq!(t.tst.message_imprint.hashed_message.as_bytes(), digest);
    assert_eq!(t.tst.nonce.as_ref().map(|n| n.as_bytes()), Some(nonce));
    assert_signed_by(&t, &tsa_cert(k));
}

/// The failure bit of a rejected `/tsa` reply (the only bit set), and its text.
fn rejected(resp: &crate::kit::Resp) -> (usize, String) {
    assert_eq!(
        resp.status, 200,
        "RFC 3161 §3.4: a rejection is an answer too"
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/timestamp-reply")
    );
    rejection(&resp.body)
}

/// The failure bit of a rejected DER `TimeStampResp` (the only bit set), and its text; for the
/// other test modules too.
pub(crate) fn rejection(der: &[u8]) -> (usize, String) {
    let reply = TimeStampResp::from_der(der).expect("a TimeStampResp");
    assert_eq!(reply.status.status, 2, "rejection: {:?}", reply.status);
    assert!(reply.time_stamp_token.is_none());
    let bits: Vec<usize> = reply
        .status
        .fail_info
        .expect("failInfo")
        .bits()
        .enumerate()
        .filter_map(|(i, b)| b.then_some(i))
        .collect();
    assert_eq!(bits.len(), 1, "one failure bit: {bits:?}");
    let text = reply
        .status
        .status_string
        .and_then(|s| s.first().map(|t| t.as_str().to_owned()))
        .unwrap_or_default();
    (bits[0], text)
}

fn timestamp_records(k: &Kit) -> Vec<crate::kit::AuditRow> {
    k.audit_records()
        .into_iter()
        .filter(|r| r.event == "timestamp.issue")
        .collect()
}

#[test]
fn timestamp_tokens_carry_the_imprint_nonce_policy_and_a_signature_of_the_tsa_key() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let tsa = tsa_cert(&k);
    let mut serials = BTreeSet::new();
    let cases: &[(&str, MessageDigest, &str, Option<&str>)] = &[
        (
            SHA256,
            MessageDigest::sha256(),
            "first",
            Some("00a1b2c3d4e5f60718293a4b5c6d7e8f"),
        ),
        (SHA384, MessageDigest::sha384(), "second", Some("7")),
        (SHA256, MessageDigest::sha256(), "third", None),
        (SHA256, MessageDigest::sha256(), "fourth", Some("ffee")),
        (SHA256, MessageDigest::sha256(), "fifth", None),
    ];
    for (alg, md, data, nonce) in cases {
        let hash = openssl::hash::hash(*md, data.as_bytes())
            .expect("hash")
            .to_vec();
        let mut body =
            json!({ "hash": STANDARD.encode(&hash), "hashAlgo": alg, "clientData": "x" });
        if let Some(n) = nonce {
            body["nonce"] = json!(n);
        }
        let before = now_secs();
        let (status, v) = timestamp(&k, &alice, body);
        let after = now_secs();
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(1),
            "only `timestamp`: {v}"
        );
        let t = read_token(
            &STANDARD
                .decode(v["timestamp"].as_str().expect("timestamp"))
                .expect("base64"),
        );
        // the imprint is exactly what was sent (§11.10: hash and hashAlgo)
        let imprint = &t.tst.message_imprint;
        assert_eq!(imprint.hash_algorithm.oid.to_string(), *alg);
        assert_eq!(imprint.hashed_message.as_bytes(), hash.as_slice());
        // the nonce is echoed as the integer its hex names (§11.10: else the client rejects it)
        match nonce {
            Some(n) => {
                let value = hex::decode(format!("{:0>width$}", n, width = n.len().div_ceil(2) * 2))
                    .expect("hex");
                let significant: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
                let echoed = t.tst.nonce.as_ref().expect("nonce").as_bytes();
                let echoed: Vec<u8> = echoed.iter().copied().skip_while(|b| *b == 0).collect();
                assert_eq!(echoed, significant, "nonce {n}");
            }
            None => assert!(t.tst.nonce.is_none()),
        }
        // the default policy, accuracy 1 s, genTime now (to the second)
        assert_eq!(t.tst.policy.value(), oid_content(DEFAULT_POLICY).as_slice());
        assert_eq!(
            t.tst.accuracy,
            Some(Accuracy {
                seconds: Some(1),
                millis: None,
                micros: None
            })
        );
        let generated = t.tst.gen_time.to_unix_duration().as_secs();
        assert!(
            before <= generated && generated <= after,
            "{before} <= {generated} <= {after}"
        );
        // serial: 0x01, the instance prefix (0 by default), 120 random bits
        let serial = t.tst.serial_number.as_bytes().to_vec();
        assert_eq!(serial.len(), 20, "{serial:02x?}");
        assert_eq!(serial[..5], [1, 0, 0, 0, 0]);
        assert!(serials.insert(serial), "serials are unique");
        // signed in the token by the TSA key, whose certificate is always included here
        let certs = certificates(&t);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].to_der().expect("DER"), tsa.to_der().expect("DER"));
        assert_signed_by(&t, &tsa);
    }
    // one audit record per token, naming the caller and the serial (Part I 7.1.4.1)
    let records = timestamp_records(&k);
    assert_eq!(records.len(), cases.len(), "{records:?}");
    let audited: BTreeSet<String> = records.iter().map(|r| r.subject.clone()).collect();
    let issued: BTreeSet<String> = serials.iter().map(hex::encode).collect();
    assert_eq!(audited, issued);
    for r in &records {
        assert_eq!((r.actor.as_str(), r.outcome.as_str()), ("alice", "success"));
        let d: Value = serde_json::from_str(&r.detail).expect("detail");
        assert_eq!(d["via"], "signatures/timestamp");
        assert_eq!(d["policy"], DEFAULT_POLICY);
    }
    assert!(k.audit_intact());
}

#[test]
fn timestamp_refusals_have_the_spec_errors() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    let h256 = STANDARD.encode(openssl::sha::sha256(b"x"));
    let h384 = STANDARD.encode(openssl::sha::sha384(b"x"));
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "Missing (or invalid type) string parameter hash"),
        (
            json!({ "hash": 5, "hashAlgo": SHA256 }),
            "Missing (or invalid type) string parameter hash",
        ),
        (
            json!({ "hash": [h256], "hashAlgo": SHA256 }),
            "Missing (or invalid type) string parameter hash",
        ),
        (
            json!({ "hash": "", "hashAlgo": SHA256 }),
            "Empty hash parameter",
        ),
        (
            json!({ "hash": "%%%", "hashAlgo": SHA256 }),
            "Invalid Base64 hash string parameter",
        ),
        (
            json!({ "hash": h256 }),
            "Missing (or invalid type) string parameter hashAlgo",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA1 }),
            "Invalid parameter hashAlgo",
        ),
        (
            json!({ "hash": h256, "hashAlgo": "not an oid" }),
            "Invalid parameter hashAlgo",
        ),
        (
            json!({ "hash": h384, "hashAlgo": SHA256 }),
            "Invalid digest value length",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA384 }),
            "Invalid digest value length",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA256, "nonce": "xyz" }),
            "Invalid parameter nonce",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA256, "nonce": "" }),
            "Invalid parameter nonce",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA256, "nonce": "-1" }),
            "Invalid parameter nonce",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA256, "nonce": 12 }),
            "Invalid parameter nonce",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA256, "nonce": "ab".repeat(65) }),
            "Invalid parameter nonce",
        ),
        (
            json!({ "hash": h256, "hashAlgo": SHA256, "clientData": 1 }),
            "Invalid parameter clientData",
        ),
    ];
    for (body, description) in cases {
        assert_error(
            &timestamp(&k, &alice, body.clone()),
            400,
            "invalid_request",
            description,
        );
    }
    // the Bearer header first (§11.10's first row), then the token (RFC 6750)
    let body = json!({ "hash": h256, "hashAlgo": SHA256 });
    assert_error(
        &k.call("signatures/timestamp", None, &body),
        400,
        "invalid_request",
        "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
    );
    let (status, v) = k.call("signatures/timestamp", Some("csc_at_unknown"), &body);
    assert_eq!((status, &v["error"]), (401, &json!("invalid_token")), "{v}");
    // a refusal issues nothing and records no token
    assert!(timestamp_records(&k).is_empty());
    // the method is listed by info
    let (_, info) = k.call("info", None, &json!({}));
    let methods = info["methods"].as_array().expect("methods");
    assert!(methods.contains(&json!("signatures/timestamp")), "{info}");
}

#[test]
fn the_tsa_certificate_is_issued_by_the_dev_ca_for_time_stamping_only() {
    let k = Kit::new();
    let tsa = tsa_cert(&k);
    let ca = ca_cert(&k);
    assert!(
        tsa.verify(&ca.public_key().expect("CA key"))
            .expect("verify")
    );
    assert_eq!(
        tsa.issuer_name().to_der().expect("DER"),
        ca.subject_name().to_der().expect("DER")
    );
    let cn = tsa
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .expect("CN");
    assert_eq!(
        cn.data().to_string().expect("utf8"),
        "csc-server remote signing TSA"
    );
    // EC P-256, the key in the token
    assert_eq!(
        tsa.public_key()
            .expect("key")
            .ec_key()
            .expect("EC")
            .group()
            .curve_name(),
        Some(openssl::nid::Nid::X9_62_PRIME256V1)
    );
    let parsed = x509_cert::Certificate::from_der(&tsa.to_der().expect("DER")).expect("cert");
    let exts = parsed.tbs_certificate.extensions.expect("extensions");
    // RFC 3161 §2.3: extendedKeyUsage with timeStamping only, critical
    let eku = exts
        .iter()
        .find(|e| e.extn_id == rfc5280::ID_CE_EXT_KEY_USAGE)
        .expect("extendedKeyUsage");
    assert!(eku.critical, "extendedKeyUsage must be critical");
    let purposes = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).expect("EKU");
    assert_eq!(purposes.0, vec![rfc5280::ID_KP_TIME_STAMPING]);
    let ku = exts
        .iter()
        .find(|e| e.extn_id == rfc5280::ID_CE_KEY_USAGE)
        .expect("keyUsage");
    let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).expect("KU");
    assert!(ku.digital_signature() && ku.non_repudiation(), "{ku:?}");
    assert!(!ku.key_cert_sign());
    // created by init, once, and audited
    let created: Vec<_> = k
        .audit_records()
        .into_iter()
        .filter(|r| r.event == "tsa.create")
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    // kept in DATA_DIR/tsa.json: another open of the data directory loads the same TSA
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(k.dir().join("tsa.json")).expect("tsa.json"))
            .expect("JSON");
    assert_eq!(
        STANDARD
            .decode(file["certificate"].as_str().expect("certificate"))
            .expect("base64"),
        tsa.to_der().expect("DER")
    );
}

#[test]
fn rfc3161_queries_get_a_granted_reply_with_the_nonce_and_the_certificate_when_asked() {
    let k = Kit::new();
    let tsa = tsa_cert(&k);
    let digest = openssl::sha::sha256(b"a PDF's signature value");
    let nonce = [0x31, 0x4c, 0xfc, 0xe4, 0xe0, 0x65, 0x18, 0x27];
    // certReq: the certificate comes along
    let t = granted(&post_tsa(
        &k,
        QUERY,
        query(SHA256, &digest, Some(&nonce), None, true),
    ));
    assert_eq!(t.tst.nonce.as_ref().map(|n| n.as_bytes()), Some(&nonce[..]));
    assert_eq!(t.tst.message_imprint.hashed_message.as_bytes(), digest);
    // the request's AlgorithmIdentifier comes back as it was sent (NULL parameters)
    assert_eq!(
        t.tst.message_imprint.hash_algorithm.parameters,
        Some(Any::null())
    );
    assert_eq!(certificates(&t).len(), 1);
    assert_signed_by(&t, &tsa);
    // no certReq: no certificate (RFC 3161 §2.4.1); still signed by the same key
    let digest384 = openssl::sha::sha384(b"another");
    let t = granted(&post_tsa(
        &k,
        QUERY,
        query(SHA384, &digest384, None, None, false),
    ));
    assert!(t.signed.certificates.is_none());
    assert!(t.tst.nonce.is_none());
    assert_signed_by(&t, &tsa);
    // a Content-Type with parameters is still a query; our own policy is accepted when asked
    // for (the default UUID policy cannot be written with x509-tsp's 32-bit arcs: the
    // configurable-policy test asks for its policy by name)
    let t = granted(&post_tsa(
        &k,
        "Application/Timestamp-Query; charset=binary",
        query(SHA256, &digest, None, None, true),
    ));
    assert_signed_by(&t, &tsa);
    // every token audited, anonymously
    let records = timestamp_records(&k);
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!((r.actor.as_str(), r.outcome.as_str()), ("tsa", "success"));
        let d: Value = serde_json::from_str(&r.detail).expect("detail");
        assert_eq!(d["via"], "rfc3161");
    }
}

#[test]
fn rfc3161_requests_the_tsa_cannot_serve_are_rejected_with_their_failure_info() {
    let k = Kit::new();
    let digest = openssl::sha::sha256(b"data");
    // PKIFailureInfo bits (RFC 3161 §2.4.2): badAlg 0, badDataFormat 5, unacceptedPolicy 15,
    // unacceptedExtension 16
    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (b"not DER".to_vec(), 5, "malformed time-stamp request"),
        (Vec::new(), 5, "malformed time-stamp request"),
        (
            query(SHA1, &openssl::sha::sha1(b"data"), None, None, true),
            0,
            "unsupported hash algorithm",
        ),
        (
            query(SHA256, &digest[..20], None, None, true),
            5,
            "malformed time-stamp request",
        ),
        (
            query(SHA384, &digest, None, None, true),
            5,
            "malformed time-stamp request",
        ),
        (
            query(SHA256, &digest, None, Some("1.2.3.4.5"), true),
            15,
            "requested policy not supported",
        ),
        (
            {
                let mut q =
                    TimeStampReq::from_der(&query(SHA256, &digest, None, None, true)).expect("q");
                q.extensions = Some(vec![x509_cert::ext::Extension {
                    extn_id: "1.2.3.4.6".parse().expect("OID"),
                    critical: false,
                    extn_value: OctetString::new(vec![0x05, 0x00]).expect("octets"),
                }]);
                q.to_der().expect("DER")
            },
            16,
            "request extensions not supported",
        ),
        (
            {
                // SHA-256 with parameters other than NULL
                let mut q =
                    TimeStampReq::from_der(&query(SHA256, &digest, None, None, true)).expect("q");
                q.message_imprint.hash_algorithm.parameters = Some(
                    Any::encode_from(&OctetString::new(vec![1]).expect("octets")).expect("any"),
                );
                q.to_der().expect("DER")
            },
            0,
            "unsupported hash algorithm",
        ),
    ];
    for (body, bit, text) in cases {
        let (got, got_text) = rejected(&post_tsa(&k, QUERY, body));
        assert_eq!((got, got_text.as_str()), (bit, text));
    }
    // not a time-stamp query by its type: 415; too large: 413 (the limit is 16 KiB)
    let q = query(SHA256, &digest, None, None, true);
    for content_type in ["application/json", "application/octet-stream"] {
        let r = post_tsa(&k, content_type, q.clone());
        assert_eq!(r.status, 415, "{}", r.text());
        assert_eq!(
            r.json()["error_description"],
            "The request body must be application/timestamp-query"
        );
    }
    let r = k.send(k.post("/tsa").set_payload(q));
    assert_eq!(r.status, 415, "no Content-Type: {}", r.text());
    let r = post_tsa(&k, QUERY, vec![0x30; 16 * 1024 + 1]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_request");
    // nothing was issued, nothing recorded as issued
    assert!(timestamp_records(&k).is_empty());
}

#[test]
fn the_policy_accuracy_and_serial_prefix_are_configurable() {
    const POLICY: &str = "1.3.6.1.4.1.99999.7.1";
    let k = Kit::with(|c| {
        c.tsa_policy_oid = POLICY.into();
        c.tsa_accuracy_ms = 1250;
        c.tsa_serial_prefix = 0x0102_0304;
    });
    let alice = k.login("alice", ALICE_PASSWORD);
    let (status, v) = timestamp(
        &k,
        &alice,
        json!({ "hash": STANDARD.encode(openssl::sha::sha256(b"c")), "hashAlgo": SHA256 }),
    );
    assert_eq!(status, 200, "{v}");
    let t = read_token(
        &STANDARD
            .decode(v["timestamp"].as_str().expect("timestamp"))
            .expect("base64"),
    );
    assert_eq!(t.tst.policy.value(), oid_content(POLICY).as_slice());
    assert_eq!(
        t.tst.accuracy,
        Some(Accuracy {
            seconds: Some(1),
            millis: Some(250),
            micros: None
        })
    );
    assert_eq!(t.tst.serial_number.as_bytes()[..5], [1, 1, 2, 3, 4]);
    // the configured policy, asked for by a client, is served
    let digest = openssl::sha::sha256(b"d");
    let t = granted(&post_tsa(
        &k,
        QUERY,
        query(SHA256, &digest, None, Some(POLICY), false),
    ));
    assert_eq!(t.tst.policy.value(), oid_content(POLICY).as_slice());
    assert_eq!(t.tst.serial_number.as_bytes()[..5], [1, 1, 2, 3, 4]);
    // another is not
    let (bit, _) = rejected(&post_tsa(
        &k,
        QUERY,
        query(SHA256, &digest, None, Some("1.3.6.1.4.1.99999.7.2"), false),
    ));
    assert_eq!(bit, 15);
}

#[test]
fn the_accuracy_can_be_left_out() {
    let k = Kit::with(|c| c.tsa_accuracy_ms = 0);
    let digest = openssl::sha::sha256(b"e");
    let t = granted(&post_tsa(
        &k,
        QUERY,
        query(SHA256, &digest, None, None, false),
    ));
    assert!(t.tst.accuracy.is_none());
}

/// Runs openssl with `args`; `(success, stdout + stderr)`.
fn openssl(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn openssl_ts_verify_accepts_tokens_of_both_doors() {
    let k = Kit::new();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    std::fs::write(dir.join("ca.pem"), ca_cert(&k).to_pem().expect("PEM")).expect("write");
    std::fs::write(dir.join("data.txt"), b"the document").expect("write");
    let digest = openssl::sha::sha256(b"the document");

    // signatures/timestamp: the token alone, checked against the digest
    let alice = k.login("alice", ALICE_PASSWORD);
    let (status, v) = timestamp(
        &k,
        &alice,
        json!({ "hash": STANDARD.encode(digest), "hashAlgo": SHA256, "nonce": "0123456789abcdef" }),
    );
    assert_eq!(status, 200, "{v}");
    let token = STANDARD
        .decode(v["timestamp"].as_str().expect("timestamp"))
        .expect("base64");
    std::fs::write(dir.join("token.der"), &token).expect("write");
    let hex_digest = hex::encode(digest);
    // `openssl ts -verify` of the token against a digest (hex) and a root
    let verify = |digest: &str, root: &str| {
        openssl(
            &[
                "ts",
                "-verify",
                "-digest",
                digest,
                "-in",
                "token.der",
                "-token_in",
                "-CAfile",
                root,
            ],
            dir,
        )
    };
    let (ok, out) = verify(&hex_digest, "ca.pem");
    assert!(ok && out.contains("Verification: OK"), "{out}");
    // and refuses it for another digest, or without the dev CA as the root
    let other = hex::encode(openssl::sha::sha256(b"another document"));
    let (ok, out) = verify(&other, "ca.pem");
    assert!(!ok, "{out}");
    std::fs::write(dir.join("self.pem"), tsa_cert(&k).to_pem().expect("PEM")).expect("write");
    let (ok, out) = verify(&hex_digest, "self.pem");
    assert!(!ok, "the TSA certificate is no root: {out}");

    // /tsa: a query made by openssl itself (nonce, certReq), the reply checked against it
    let (ok, out) = openssl(
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
        ],
        dir,
    );
    assert!(ok, "{out}");
    let q = std::fs::read(dir.join("q.tsq")).expect("query");
    let resp = post_tsa(&k, QUERY, q);
    assert_eq!(resp.status, 200);
    std::fs::write(dir.join("r.tsr"), &resp.body).expect("write");
    let (ok, out) = openssl(
        &[
            "ts",
            "-verify",
            "-queryfile",
            "q.tsq",
            "-in",
            "r.tsr",
            "-CAfile",
            "ca.pem",
        ],
        dir,
    );
    assert!(ok && out.contains("Verification: OK"), "{out}");
    let (ok, out) = openssl(&["ts", "-reply", "-in", "r.tsr", "-text"], dir);
    assert!(ok, "{out}");
    assert!(out.contains("Status: Granted."), "{out}");
    assert!(
        out.contains(&format!("Policy OID: {DEFAULT_POLICY}")),
        "{out}"
    );
    assert!(out.contains("Accuracy: 0x01 seconds"), "{out}");
    // a rejection, as openssl reads it
    let (ok, out) = openssl(
        &[
            "ts", "-query", "-data", "data.txt", "-sha1", "-out", "q1.tsq",
        ],
        dir,
    );
    assert!(ok, "{out}");
    let resp = post_tsa(&k, QUERY, std::fs::read(dir.join("q1.tsq")).expect("query"));
    std::fs::write(dir.join("r1.tsr"), &resp.body).expect("write");
    let (_, out) = openssl(&["ts", "-reply", "-in", "r1.tsr", "-text"], dir);
    assert!(out.contains("Status: Rejected."), "{out}");
    assert!(
        out.contains("unrecognized or unsupported algorithm identifier"),
        "{out}"
    );
}

/// Write-ahead: the token's audit record is committed before the token is signed, so when the
/// record cannot be written no token leaves — `signatures/timestamp` answers 500
/// `server_error`, `/tsa` a rejection with systemFailure (PKIFailureInfo 25).
#[test]
fn no_token_leaves_without_its_audit_record() {
    let k = Kit::new();
    let alice = k.login("alice", ALICE_PASSWORD);
    // the database refuses every timestamp.issue record (SQL of the test's own)
    refuse_audit_records(&k.dir().join("csc.db"), "timestamp.issue");
    let digest = openssl::sha::sha256(b"f");
    let (status, v) = timestamp(
        &k,
        &alice,
        json!({ "hash": STANDARD.encode(digest), "hashAlgo": SHA256 }),
    );
    assert_eq!((status, &v["error"]), (500, &json!("server_error")), "{v}");
    assert!(v.get("timestamp").is_none());
    let (bit, text) = rejected(&post_tsa(
        &k,
        QUERY,
        query(SHA256, &digest, None, None, true),
    ));
    assert_eq!((bit, text.as_str()), (25, "system failure"));
    assert!(timestamp_records(&k).is_empty());
}

/// Regression (found by the OpenAPI 405 check once `/tsa` was no longer excluded): `/tsa` is
/// an actix resource, which answered another method itself with a bare 405 and no body; like
/// every served path it answers 405 with `Allow: POST` and the error body.
#[test]
fn other_methods_on_tsa_are_405_with_allow_and_the_error_body() {
    let k = Kit::new();
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = k.send(k.req(method, "/tsa"));
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("POST")),
            "{method}"
        );
        assert_eq!(
            r.json(),
            json!({
                "error": "invalid_request",
                "error_description": "The HTTP method is not allowed for this path (allowed: POST)",
            }),
            "{method}"
        );
    }
}
