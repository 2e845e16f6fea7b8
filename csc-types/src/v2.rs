//! Wire types of the Cloud Signature Consortium API v2.0.0.2 (`/csc/v2/...`): the JSON bodies
//! exactly as v2 names them where they differ from v1 (`hashes` + `hashAlgorithmOID`, `auth`
//! objects, `authData`, ...). Bodies that v2 keeps as in v1 (`auth/login`, `auth/revoke`, the SAD
//! answer, the signatures answer, `key`, `cert`) are the v1 types of the crate root.

use serde::{Deserialize, Serialize};

use crate::{CertInfo, KeyInfo};

/// The specification version `/csc/v2` implements (`info.specs`).
pub const SPECS_VERSION: &str = "2.0.0.2";

/// `info` → `signAlgorithms` (v2 §11.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignAlgorithms {
    /// Signature algorithm OIDs.
    pub algos: Vec<String>,
    /// Aligned with `algos`: base64 DER parameters, `null` where an algorithm has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algo_params: Option<Vec<Option<String>>>,
}

/// `info` → `signature_formats` (v2 §11.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureFormats {
    /// `C` (CAdES), `X` (XAdES), `P` (PAdES), `J` (JAdES).
    pub formats: Vec<String>,
    /// Aligned with `formats`: the envelope properties of each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_properties: Option<Vec<Vec<String>>>,
}

/// `POST /csc/v2/info` output (v2 §11.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoResponse {
    pub specs: String,
    pub name: String,
    pub logo: String,
    pub region: String,
    pub lang: String,
    pub description: String,
    pub auth_type: Vec<String>,
    /// The base URI the `oauth2/*` paths are appended to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<String>,
    /// The authorization server's issuer (RFC 8414 discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_issuer: Option<String>,
    pub asynchronous_operation_mode: bool,
    pub methods: Vec<String>,
    pub validation_info: bool,
    pub sign_algorithms: SignAlgorithms,
    #[serde(rename = "signature_formats")]
    pub signature_formats: SignatureFormats,
    #[serde(rename = "conformance_levels")]
    pub conformance_levels: Vec<String>,
}

/// `credentials/list` input (v2 §11.4). `maxResults` and `pageToken` (v1) are accepted and
/// ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsListRequest {
    #[serde(default, rename = "userID", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_info: Option<bool>,
    /// `none`, `single` (default) or `chain`; with `credentialInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_info: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_info: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/list` output (v2 §11.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsListResponse {
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    /// With `credentialInfo`: one per credential, in the order of `credentialIDs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_infos: Option<Vec<CredentialInfo>>,
    /// `true` when `onlyValid` was asked for and applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_valid: Option<bool>,
}

/// An authentication object type (v2 §8.3): one factor of `credentials/info` → `auth.objects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthObject {
    /// `Password`, `PasswordOOB`, `ChallengeResponse` or `ChallengeResponseOOB`.
    #[serde(rename = "type")]
    pub object_type: String,
    /// What `authData[].id` names it by.
    pub id: String,
    /// `A` (alphanumeric) or `N` (numeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A client-side generator, e.g. `totp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `credentials/info` → `auth` (v2 §11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// `explicit` or `oauth2code`.
    pub mode: String,
    /// How the objects combine, e.g. `PIN AND OTP` (explicit mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The authentication object types (explicit mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<AuthObject>>,
}

/// `credentials/info` output, and one entry of `credentials/list` → `credentialInfos` (which
/// carries `credentialID`) (v2 §11.4-11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    #[serde(
        default,
        rename = "credentialID",
        skip_serializing_if = "Option::is_none"
    )]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub key: KeyInfo,
    pub cert: CertInfo,
    pub auth: AuthInfo,
    /// `"1"` or `"2"`.
    #[serde(rename = "SCAL")]
    pub scal: String,
    pub multisign: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// One `credentials/authorize` → `authData` entry (v2 §8.3, §11.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthData {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `credentials/authorize` input (v2 §11.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    pub num_signatures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
    #[serde(
        default,
        rename = "hashAlgorithmOID",
        skip_serializing_if = "Option::is_none"
    )]
    pub hash_algorithm_oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_data: Option<Vec<AuthData>>,
    /// v1's flat PIN, which this server also takes from v2 clients (never with `authData`).
    #[serde(default, rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// v1's flat OTP, which this server also takes from v2 clients (never with `authData`).
    #[serde(default, rename = "OTP", skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/authorizeCheck` input (v2 §11.7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeCheckRequest {
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/getChallenge` input (v2 §11.8); the output here is always 204 (the challenge
/// goes out of band).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetChallengeRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    #[serde(rename = "authObjectID")]
    pub auth_object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/extendTransaction` input (v2 §11.9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendTransactionRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
    #[serde(
        default,
        rename = "hashAlgorithmOID",
        skip_serializing_if = "Option::is_none"
    )]
    pub hash_algorithm_oid: Option<String>,
    #[serde(rename = "SAD")]
    pub sad: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `signatures/signHash` input (v2 §11.10). Without `SAD` the Bearer token is the SAD (a
/// credential-scope access token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignHashRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    #[serde(default, rename = "SAD", skip_serializing_if = "Option::is_none")]
    pub sad: Option<String>,
    pub hashes: Vec<String>,
    #[serde(
        default,
        rename = "hashAlgorithmOID",
        skip_serializing_if = "Option::is_none"
    )]
    pub hash_algorithm_oid: Option<String>,
    pub sign_algo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_algo_params: Option<String>,
    /// `S` (default); `A` is refused (no asynchronous mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_mode: Option<String>,
    #[serde(
        default,
        rename = "validity_period",
        skip_serializing_if = "Option::is_none"
    )]
    pub validity_period: Option<u64>,
    #[serde(
        default,
        rename = "response_uri",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_names_are_the_spec_names() {
        let r = SignHashRequest {
            credential_id: "c".into(),
            hashes: vec!["h".into()],
            hash_algorithm_oid: Some("2.16.840.1.101.3.4.2.1".into()),
            sign_algo: "1.2.840.10045.4.3.2".into(),
            operation_mode: Some("S".into()),
            ..SignHashRequest::default()
        };
        let v = serde_json::to_value(&r).unwrap_or_default();
        for k in [
            "credentialID",
            "hashes",
            "hashAlgorithmOID",
            "signAlgo",
            "operationMode",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v.get("SAD").is_none());
        let info = CredentialInfo {
            credential_id: Some("c".into()),
            description: None,
            key: KeyInfo {
                status: "enabled".into(),
                algo: vec![],
                len: 256,
                curve: None,
            },
            cert: CertInfo::default(),
            auth: AuthInfo {
                mode: "explicit".into(),
                expression: Some("PIN".into()),
                objects: Some(vec![AuthObject {
                    object_type: "Password".into(),
                    id: "PIN".into(),
                    format: Some("A".into()),
                    generator: None,
                    label: None,
                    description: None,
                }]),
            },
            scal: "1".into(),
            multisign: 1,
            lang: None,
        };
        let v = serde_json::to_value(&info).unwrap_or_default();
        assert_eq!(v["credentialID"], "c");
        assert_eq!(v["SCAL"], "1");
        assert_eq!(v["auth"]["objects"][0]["type"], "Password");
        let a = SignAlgorithms {
            algos: vec!["1.2.840.10045.4.3.2".into()],
            algo_params: Some(vec![None]),
        };
        let v = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(v["algoParams"], serde_json::json!([null]));
    }
}
