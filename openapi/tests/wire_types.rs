//! Drift between the document and the wire types: every component schema is compared with the
//! serde form of a fully populated value of the `csc-types` type of the same name. A field
//! renamed, added or removed on one side only fails here, as does a type or enum mismatch.

// Tests may panic loudly: a failing test should say where and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use csc_types::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use openapi::check::{component, same_fields, validate};

/// Schemas that are not `csc-types` wire types; `csc-api/tests/it/openapi_routes.rs`
/// checks them against the server's answers.
const NOT_WIRE_TYPES: &[&str] = &[
    "Health",
    "Readiness",
    "OpenApiDocument",
    // the OAuth 2.0 forms, which the server reads as forms, not through csc-types
    "OAuthTokenRequest",
    "OAuthRevokeRequest",
    "OAuthAuthorizeForm",
    "OAuthPushedAuthorizeRequest",
    // the server writes these two with `serde_json::json!` (csc-api `oauth2::metadata`) and a
    // private struct (csc-api `oauth2::par`)
    "OAuthServerMetadata",
    "OAuthPushedAuthorizeResponse",
    // the union of two sampled wire types (`OAuthTokenResponse`, `OAuthCredentialTokenResponse`)
    "OAuthTokenAnswer",
    // an element of `OAuthCredentialTokenResponse.authorization_details`, a `serde_json::Value`
    // written by csc-api `oauth2::rar` (`CredentialDetails::approved`); its fields are compared
    // through the `OAuthCredentialTokenResponse` sample
    "OAuthCredentialAuthorizationDetail",
];

/// Where this server is deliberately narrower than the wire type (which follows the spec).
/// (schema, JSON pointer, why)
const NARROWER: &[(&str, &str, &str)] = &[
    (
        "V2SignHashRequest",
        "/validity_period",
        "only with operationMode A, which is not served: a value is refused",
    ),
    (
        "V2SignHashRequest",
        "/response_uri",
        "only with operationMode A, which is not served: a value is refused",
    ),
];

struct Sample {
    schema: &'static str,
    value: Value,
    /// Deserializes the value back into the type and serializes it again.
    round_trip: fn(&Value) -> Result<Value, String>,
}

fn round_trip<T: Serialize + DeserializeOwned>(v: &Value) -> Result<Value, String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

fn sample<T: Serialize + DeserializeOwned>(schema: &'static str, t: T) -> Sample {
    Sample {
        schema,
        value: serde_json::to_value(t).unwrap_or(Value::Null),
        round_trip: round_trip::<T>,
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn some(v: &str) -> Option<String> {
    Some(v.to_owned())
}

const B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/// One fully populated value of every wire type: every `Option` is `Some`, so every field the
/// type can send is compared. No `..Default::default()`: a new field must be added here.
fn samples() -> Vec<Sample> {
    let key = KeyInfo {
        status: s("enabled"),
        algo: vec![s("1.2.840.10045.4.3.2")],
        len: 256,
        curve: some("1.2.840.10045.3.1.7"),
    };
    let cert = CertInfo {
        status: some("valid"),
        certificates: Some(vec![s(B64)]),
        issuer_dn: some("CN=CA"),
        serial_number: some("0a1b"),
        subject_dn: some("CN=alice"),
        valid_from: some("20260101000000Z"),
        valid_to: some("20270101000000Z"),
        expires_in_days: Some(12),
    };
    let pin = PinInfo {
        presence: s("true"),
        format: some("A"),
        label: some("PIN"),
        description: some("d"),
    };
    let otp = OtpInfo {
        presence: s("true"),
        otp_type: some("offline"),
        format: some("N"),
        label: some("OTP"),
        description: some("d"),
        id: some("id"),
        provider: some("totp"),
    };
    let mut all = vec![
        sample(
            "ErrorResponse",
            ErrorResponse {
                error: s("invalid_request"),
                error_description: some("Invalid parameter credentialID"),
            },
        ),
        sample(
            "InfoRequest",
            InfoRequest {
                lang: some("en-US"),
            },
        ),
        sample(
            "InfoResponse",
            InfoResponse {
                specs: s(SPECS_VERSION),
                name: s("n"),
                logo: s("https://example.invalid/logo.png"),
                region: s("BE"),
                lang: s("en-US"),
                description: s("d"),
                auth_type: vec![s("basic"), s("oauth2code")],
                oauth2: some("https://example.invalid/"),
                methods: vec![s("auth/login")],
            },
        ),
        sample(
            "LoginRequest",
            LoginRequest {
                refresh_token: some("csc_rt_x"),
                remember_me: Some(true),
                client_data: some("c"),
            },
        ),
        sample(
            "LoginResponse",
            LoginResponse {
                access_token: s("csc_at_x"),
                refresh_token: some("csc_rt_x"),
                expires_in: 3600,
            },
        ),
        sample(
            "RevokeRequest",
            RevokeRequest {
                token: s("csc_at_x"),
                token_type_hint: some("access_token"),
                client_data: some("c"),
            },
        ),
        sample(
            "CredentialsListRequest",
            CredentialsListRequest {
                user_id: some("alice"),
                max_results: Some(10),
                page_token: some("p"),
                client_data: some("c"),
            },
        ),
        sample(
            "CredentialsListResponse",
            CredentialsListResponse {
                credential_ids: vec![s("c1")],
                next_page_token: some("p"),
            },
        ),
        sample(
            "CredentialsInfoRequest",
            CredentialsInfoRequest {
                credential_id: s("c1"),
                certificates: some("chain"),
                cert_info: Some(true),
                auth_info: Some(true),
                lang: some("en-US"),
                client_data: some("c"),
            },
        ),
        sample("KeyInfo", key.clone()),
        sample("CertInfo", cert.clone()),
        sample("PinInfo", pin.clone()),
        sample("OtpInfo", otp.clone()),
        sample(
            "CredentialsInfoResponse",
            CredentialsInfoResponse {
                description: some("d"),
                key: key.clone(),
                cert: cert.clone(),
                auth_mode: s("explicit"),
                scal: s("2"),
                pin: Some(pin),
                otp: Some(otp),
                multisign: 5,
                lang: some("en-US"),
            },
        ),
        sample(
            "AuthorizeRequest",
            AuthorizeRequest {
                credential_id: s("c1"),
                num_signatures: 2,
                hash: Some(vec![s(B64)]),
                pin: some("123456"),
                otp: some("654321"),
                description: some("d"),
                client_data: some("c"),
            },
        ),
        sample(
            "SadResponse",
            SadResponse {
                sad: s("sad"),
                expires_in: Some(300),
            },
        ),
        sample(
            "ExtendTransactionRequest",
            ExtendTransactionRequest {
                credential_id: s("c1"),
                hash: Some(vec![s(B64)]),
                sad: s("sad"),
                client_data: some("c"),
            },
        ),
        sample(
            "SignHashRequest",
            SignHashRequest {
                credential_id: s("c1"),
                sad: s("sad"),
                hash: vec![s(B64)],
                hash_algo: some("2.16.840.1.101.3.4.2.1"),
                sign_algo: s("1.2.840.113549.1.1.10"),
                sign_algo_params: some(
                    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=",
                ),
                client_data: some("c"),
            },
        ),
        sample(
            "SendOtpRequest",
            SendOtpRequest {
                credential_id: s("c1"),
                client_data: some("c"),
            },
        ),
        sample(
            "OAuthTokenResponse",
            OAuthTokenResponse {
                access_token: s("csc_at_x"),
                refresh_token: some("csc_rt_x"),
                token_type: s("Bearer"),
                expires_in: Some(3600),
            },
        ),
        sample(
            "SignHashResponse",
            SignHashResponse {
                signatures: vec![s(B64)],
            },
        ),
        sample(
            "OAuthCredentialTokenResponse",
            OAuthCredentialTokenResponse {
                token: OAuthTokenResponse {
                    access_token: s("csc_sad_x"),
                    refresh_token: some("never sent, but the type can"),
                    token_type: s("Bearer"),
                    expires_in: Some(300),
                },
                authorization_details: json!([{
                    "type": "credential",
                    "credentialID": "c1",
                    "signatureQualifier": "eu_eidas_qes",
                    "documentDigests": [{ "hash": B64, "label": "contract.pdf" }],
                    "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                    "numSignatures": 1,
                    "locations": ["https://example.invalid/csc/v2"],
                }]),
                credential_id: s("c1"),
            },
        ),
    ];
    all.extend(v2_samples(key, cert));
    all
}

/// The CSC v2 wire types (`csc_types::v2`), each fully populated.
fn v2_samples(key: KeyInfo, cert: CertInfo) -> Vec<Sample> {
    let sign_algorithms = v2::SignAlgorithms {
        algos: vec![s("1.2.840.10045.4.3.2"), s("1.2.840.113549.1.1.10")],
        algo_params: Some(vec![
            None,
            some(
                "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=",
            ),
        ]),
    };
    let signature_formats = v2::SignatureFormats {
        formats: vec![s("C"), s("P")],
        envelope_properties: Some(vec![vec![s("Detached")], vec![s("Certification")]]),
    };
    let object = v2::AuthObject {
        object_type: s("Password"),
        id: s("OTP"),
        format: some("N"),
        generator: some("totp"),
        label: some("OTP"),
        description: some("d"),
    };
    let auth = v2::AuthInfo {
        mode: s("explicit"),
        expression: some("PIN AND OTP"),
        objects: Some(vec![object.clone()]),
    };
    let info = v2::CredentialInfo {
        credential_id: some("c1"),
        description: some("d"),
        key,
        cert,
        auth: auth.clone(),
        scal: s("2"),
        multisign: 5,
        lang: some("en-US"),
    };
    let auth_data = v2::AuthData {
        id: s("PIN"),
        value: some("123456"),
    };
    let hashes = Some(vec![s(B64)]);
    let sha256 = some("2.16.840.1.101.3.4.2.1");
    vec![
        sample(
            "V2InfoResponse",
            v2::InfoResponse {
                specs: s(v2::SPECS_VERSION),
                name: s("n"),
                logo: s("https://example.invalid/logo.png"),
                region: s("BE"),
                lang: s("en-US"),
                description: s("d"),
                auth_type: vec![s("basic"), s("oauth2code"), s("oauth2client")],
                oauth2: some("https://example.invalid/"),
                oauth2_issuer: some("https://example.invalid"),
                asynchronous_operation_mode: false,
                methods: vec![s("credentials/list")],
                validation_info: false,
                sign_algorithms: sign_algorithms.clone(),
                signature_formats: signature_formats.clone(),
                conformance_levels: vec![s("Ades-B-B")],
            },
        ),
        sample("V2SignAlgorithms", sign_algorithms),
        sample("V2SignatureFormats", signature_formats),
        sample(
            "V2CredentialsListRequest",
            v2::CredentialsListRequest {
                user_id: some("alice"),
                credential_info: Some(true),
                certificates: some("chain"),
                cert_info: Some(true),
                auth_info: Some(true),
                only_valid: Some(true),
                lang: some("en-US"),
                client_data: some("c"),
            },
        ),
        sample(
            "V2CredentialsListResponse",
            v2::CredentialsListResponse {
                credential_ids: vec![s("c1")],
                credential_infos: Some(vec![info.clone()]),
                only_valid: Some(true),
            },
        ),
        sample("V2CredentialInfo", info.clone()),
        // `credentials/info` names no credentialID (only a `credentialInfos` entry does): the
        // server leaves it None there, and the document has no such field
        sample(
            "V2CredentialsInfoResponse",
            v2::CredentialInfo {
                credential_id: None,
                ..info
            },
        ),
        sample("V2AuthInfo", auth),
        sample("V2AuthObject", object),
        sample(
            "V2AuthorizeRequest",
            v2::AuthorizeRequest {
                credential_id: s("c1"),
                num_signatures: 2,
                hashes: hashes.clone(),
                hash_algorithm_oid: sha256.clone(),
                auth_data: Some(vec![auth_data.clone()]),
                pin: some("123456"),
                otp: some("654321"),
                description: some("d"),
                client_data: some("c"),
            },
        ),
        sample("V2AuthData", auth_data),
        sample(
            "V2AuthorizeCheckRequest",
            v2::AuthorizeCheckRequest {
                handle: s("h"),
                client_data: some("c"),
            },
        ),
        sample(
            "V2GetChallengeRequest",
            v2::GetChallengeRequest {
                credential_id: s("c1"),
                auth_object_id: s("OTP"),
                client_data: some("c"),
            },
        ),
        sample(
            "V2ExtendTransactionRequest",
            v2::ExtendTransactionRequest {
                credential_id: s("c1"),
                hashes: hashes.clone(),
                hash_algorithm_oid: sha256.clone(),
                sad: s("sad"),
                client_data: some("c"),
            },
        ),
        sample(
            "V2SignHashRequest",
            v2::SignHashRequest {
                credential_id: s("c1"),
                sad: some("sad"),
                hashes: vec![s(B64)],
                hash_algorithm_oid: sha256,
                sign_algo: s("1.2.840.113549.1.1.10"),
                sign_algo_params: some(
                    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=",
                ),
                operation_mode: some("S"),
                validity_period: Some(60),
                response_uri: some("https://app.example/done"),
                client_data: some("c"),
            },
        ),
        sample(
            "TimestampRequest",
            TimestampRequest {
                hash: s(B64),
                hash_algo: s("2.16.840.1.101.3.4.2.1"),
                nonce: some("00a1b2c3d4e5f60718293a4b5c6d7e8f"),
                client_data: some("c"),
            },
        ),
        sample("TimestampResponse", TimestampResponse { timestamp: s(B64) }),
    ]
}

#[test]
fn every_schema_has_the_fields_and_types_of_its_wire_type() {
    let doc = openapi::document();
    let mut failures = vec![];
    for sample in samples() {
        let schema = match component(&doc, sample.schema) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: {e}", sample.schema));
                continue;
            }
        };
        for e in same_fields(&doc, schema, &sample.value) {
            failures.push(format!("{}{e}", sample.schema));
        }
        for e in validate(&doc, schema, &sample.value) {
            let narrower = NARROWER
                .iter()
                .any(|(s, at, _)| *s == sample.schema && e.starts_with(&format!("{at}:")));
            if !narrower {
                failures.push(format!("{}{e}", sample.schema));
            }
        }
        match (sample.round_trip)(&sample.value) {
            Ok(v) if v == sample.value => {}
            Ok(v) => failures.push(format!(
                "{}: serde is not symmetric: {} became {v}",
                sample.schema, sample.value
            )),
            Err(e) => failures.push(format!("{}: does not deserialize: {e}", sample.schema)),
        }
    }
    assert!(
        failures.is_empty(),
        "the OpenAPI document (openapi) and the wire types (csc-types) disagree:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn every_schema_is_a_wire_type_or_checked_elsewhere() {
    let doc = openapi::document();
    let documented: BTreeSet<String> = doc["components"]["schemas"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let covered: BTreeSet<String> = samples()
        .iter()
        .map(|s| s.schema)
        .chain(NOT_WIRE_TYPES.iter().copied())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented, covered,
        "schemas without a wire-type sample, or samples without a schema"
    );
}

#[test]
fn only_the_required_fields_are_required() {
    // a value with every Option None must still validate: the document requires no more than
    // the wire type always sends
    let doc = openapi::document();
    let minimal = [
        ("ErrorResponse", json!({ "error": "invalid_request" })),
        ("InfoRequest", json!({})),
        ("LoginRequest", json!({})),
        (
            "LoginResponse",
            json!({ "access_token": "a", "expires_in": 0 }),
        ),
        ("RevokeRequest", json!({ "token": "t" })),
        ("CredentialsListRequest", json!({})),
        ("CredentialsListResponse", json!({ "credentialIDs": [] })),
        ("CredentialsInfoRequest", json!({ "credentialID": "c" })),
        ("CertInfo", json!({})),
        ("PinInfo", json!({ "presence": "false" })),
        ("OtpInfo", json!({ "presence": "false" })),
        (
            "AuthorizeRequest",
            json!({ "credentialID": "c", "numSignatures": 1 }),
        ),
        ("SadResponse", json!({ "SAD": "s" })),
        (
            "ExtendTransactionRequest",
            json!({ "credentialID": "c", "SAD": "s" }),
        ),
        ("SendOtpRequest", json!({ "credentialID": "c" })),
        (
            "OAuthTokenResponse",
            json!({ "access_token": "a", "token_type": "SAD" }),
        ),
        (
            "OAuthCredentialTokenResponse",
            json!({
                "access_token": "a", "token_type": "Bearer", "credentialID": "c",
                "authorization_details": [{
                    "type": "credential", "credentialID": "c", "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                    "documentDigests": [{ "hash": B64 }], "numSignatures": 1,
                }],
            }),
        ),
        ("V2SignAlgorithms", json!({ "algos": [] })),
        ("V2SignatureFormats", json!({ "formats": [] })),
        ("V2CredentialsListRequest", json!({})),
        ("V2CredentialsListResponse", json!({ "credentialIDs": [] })),
        ("V2AuthInfo", json!({ "mode": "oauth2code" })),
        ("V2AuthObject", json!({ "type": "Password", "id": "PIN" })),
        (
            "V2AuthorizeRequest",
            json!({ "credentialID": "c", "numSignatures": 1 }),
        ),
        ("V2AuthData", json!({ "id": "OTP" })),
        ("V2AuthorizeCheckRequest", json!({ "handle": "h" })),
        (
            "V2GetChallengeRequest",
            json!({ "credentialID": "c", "authObjectID": "OTP" }),
        ),
        (
            "V2ExtendTransactionRequest",
            json!({ "credentialID": "c", "SAD": "s" }),
        ),
        (
            "V2SignHashRequest",
            json!({ "credentialID": "c", "hashes": [B64], "signAlgo": "1.2.840.10045.4.3.2" }),
        ),
        (
            "TimestampRequest",
            json!({ "hash": B64, "hashAlgo": "2.16.840.1.101.3.4.2.1" }),
        ),
        ("TimestampResponse", json!({ "timestamp": B64 })),
    ];
    for (name, value) in minimal {
        let schema = component(&doc, name).unwrap_or(&Value::Null);
        assert_eq!(
            validate(&doc, schema, &value),
            Vec::<String>::new(),
            "{name}"
        );
    }
    // the server's leniency, documented: numeric strings and nulls
    let authorize = component(&doc, "AuthorizeRequest").unwrap_or(&Value::Null);
    for (n, ok) in [
        (json!(" +02 "), true),
        (json!("9"), true),
        (json!("0"), false),
        (json!("-1"), false),
        (json!("x"), false),
        (json!(0), false),
        (json!(1.5), false),
    ] {
        let v = json!({ "credentialID": "c", "numSignatures": n, "PIN": null });
        assert_eq!(validate(&doc, authorize, &v).is_empty(), ok, "{v}");
    }
    // the time-stamp nonce: hex, odd length too, trimmed like every string the server parses
    let timestamp = component(&doc, "TimestampRequest").unwrap_or(&Value::Null);
    for (nonce, ok) in [
        (json!("00a1"), true),
        (json!("7"), true),
        (json!(" ff\n"), true),
        (json!(null), true),
        (json!(""), false),
        (json!("0x1f"), false),
        (json!("-1"), false),
        (json!(12), false),
    ] {
        let v = json!({ "hash": B64, "hashAlgo": "2.16.840.1.101.3.4.2.1", "nonce": nonce });
        assert_eq!(validate(&doc, timestamp, &v).is_empty(), ok, "{v}");
    }
    // and the wire types agree that those are all they need
    assert!(serde_json::from_value::<CredentialsListRequest>(json!({})).is_ok());
    assert!(
        serde_json::from_value::<AuthorizeRequest>(
            json!({ "credentialID": "c", "numSignatures": 1 })
        )
        .is_ok()
    );
    assert!(serde_json::from_value::<CertInfo>(json!({})).is_ok());
}

#[test]
fn the_document_is_well_formed() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let text = doc.to_string();
    // every reference resolves
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    for r in &refs {
        assert!(doc.pointer(&r[1..]).is_some(), "dangling {r}");
    }
    // every operation: a unique operationId, known security schemes, a success response, the
    // CSC error body on every error response
    let schemes = &doc["components"]["securitySchemes"];
    let mut ids = BTreeSet::new();
    for (method, path) in openapi::documented_routes(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(ids.insert(id.clone()), "duplicate operationId {id}");
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().into_iter().flat_map(|o| o.keys()) {
                assert!(
                    schemes.get(scheme).is_some(),
                    "{id}: unknown scheme {scheme}"
                );
            }
        }
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{id}: no success"
        );
        // every error is the CSC error body, except the readiness probe's verdict and the pages
        // of the browser-facing oauth2/authorize, which are HTML (an oversized form too: no plain 413 anywhere). An
        // oversized JSON or form body is a 400 in the error shape; only `POST /tsa`, whose
        // body is a binary RFC 3161 query and no CSC request, says 413 (in the error shape)
        let html = id.starts_with("oauth2Authorize");
        // the readiness probe's 503 is its own verdict (each part's reason), not a CSC error
        let probe = id == "ready";
        let binary_body = op["requestBody"]["content"]
            .as_object()
            .is_some_and(|c| c.keys().all(|m| m == "application/timestamp-query"));
        for (status, r) in responses {
            assert!(
                status != "413" || binary_body,
                "{id}: an oversized body is a 400 in the error shape"
            );
            if html {
                assert!(
                    r["content"].get("application/json").is_none(),
                    "{id} {status}"
                );
            } else if probe {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Readiness",
                    "{id} {status}"
                );
            } else if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorResponse",
                    "{id} {status}"
                );
            }
        }
    }
    assert!(text.len() > 1000);
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.insert(r.to_owned());
                }
                collect_refs(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_link_joins_two_operations_and_names_their_fields() {
    let doc = openapi::document();
    let ops: std::collections::BTreeMap<String, Value> = openapi::documented_routes(&doc)
        .into_iter()
        .map(|(m, p)| doc["paths"][&p][m.to_lowercase()].clone())
        .map(|op| {
            (
                op["operationId"].as_str().unwrap_or_default().to_owned(),
                op,
            )
        })
        .collect();
    let body_schema = |op: &Value| {
        component(
            &doc,
            op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.values().next())
                .and_then(|m| m["schema"]["$ref"].as_str())
                .unwrap_or_default()
                .trim_start_matches("#/components/schemas/"),
        )
        .cloned()
        .unwrap_or(Value::Null)
    };
    for (from, status, name, to, body) in openapi::links() {
        let (Some(source), Some(target)) = (ops.get(from), ops.get(to)) else {
            panic!("link {name}: no operation {from} or {to}");
        };
        assert!(
            source["responses"][status.to_string()]["links"][name].is_object(),
            "{name}"
        );
        let target_schema = body_schema(target);
        for (field, expression) in body.as_object().into_iter().flatten() {
            assert!(
                target_schema["properties"].get(field).is_some(),
                "{name}: {to} has no {field}"
            );
            let expression = expression.as_str().unwrap_or_default();
            let (side, pointer) = expression.split_once('#').unwrap_or_default();
            let schema =
                match side {
                    "$response.body" => {
                        component(
                            &doc,
                            source["responses"][status.to_string()]["content"]["application/json"]
                                ["schema"]["$ref"]
                                .as_str()
                                .unwrap_or_default()
                                .trim_start_matches("#/components/schemas/"),
                        )
                        .cloned()
                        .unwrap_or(Value::Null)
                    }
                    "$request.body" => body_schema(source),
                    other => panic!("{name}: unexpected expression {other}"),
                };
            let first = pointer
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default();
            // a union (`oneOf`): every alternative must have the field
            let alternatives: Vec<Value> = match schema["oneOf"].as_array() {
                Some(all) => all
                    .iter()
                    .map(|s| {
                        openapi::check::resolve(&doc, s)
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect(),
                None => vec![schema],
            };
            for schema in alternatives {
                assert!(
                    schema["properties"].get(first).is_some(),
                    "{name}: {expression}"
                );
            }
        }
    }
}
