//! Wire types of the Cloud Signature Consortium API v1.0.4.0: the JSON request and response
//! bodies exactly as the specification names them. Shared by `csc-api` (the server),
//! `openapi` (the document) and `conformance-tests` (the client), so the three cannot disagree
//! on a field name.

use serde::{Deserialize, Serialize};

pub mod v2;

/// The specification version this server implements (`info.specs`).
pub const SPECS_VERSION: &str = "1.0.4.0";

/// The CSC error body (spec §10.1): `error` is a short code, `error_description` human-readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// `POST /csc/v1/info` input (spec §11.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// `POST /csc/v1/info` output (spec §11.1).
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<String>,
    pub methods: Vec<String>,
}

/// `auth/login` output (spec §11.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

/// `auth/login` input (spec §11.2); the credentials travel in the `Authorization: Basic` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[serde(
        default,
        rename = "refresh_token",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember_me: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `auth/revoke` input (spec §11.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    #[serde(
        default,
        rename = "clientData",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_data: Option<String>,
}

/// `credentials/list` input (spec §11.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsListRequest {
    #[serde(default, rename = "userID", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/list` output (spec §11.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsListResponse {
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `credentials/info` input (spec §11.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsInfoRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// `none`, `single` (default) or `chain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_info: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_info: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/info` → `key` (spec §11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `enabled` or `disabled`.
    pub status: String,
    /// The signature algorithm OIDs usable as `signAlgo`.
    pub algo: Vec<String>,
    /// Key length in bits.
    pub len: u32,
    /// The curve OID of an EC key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// `credentials/info` → `cert` (spec §11.5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// `valid`, `expired`, `revoked` or `suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Base64 DER certificates, the signer's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    #[serde(default, rename = "issuerDN", skip_serializing_if = "Option::is_none")]
    pub issuer_dn: Option<String>,
    /// Hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, rename = "subjectDN", skip_serializing_if = "Option::is_none")]
    pub subject_dn: Option<String>,
    /// GeneralizedTime `YYYYMMDDHHMMSSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// GeneralizedTime `YYYYMMDDHHMMSSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// Extension (not in the spec): whole days left before the signer certificate expires,
    /// present only when the credential is enabled, the certificate valid, and it ends within
    /// the server's `cert_expiry_warning_days`. Clients that ignore unknown members see the
    /// spec's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// `credentials/info` → `PIN` (spec §11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// `"true"`, `"false"` or `"optional"`.
    pub presence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `credentials/info` → `OTP` (spec §11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpInfo {
    /// `"true"`, `"false"` or `"optional"`.
    pub presence: String,
    /// `offline` or `online`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub otp_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// `credentials/info` output (spec §11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsInfoResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub key: KeyInfo,
    pub cert: CertInfo,
    /// `explicit`, `implicit` or `oauth2code`.
    pub auth_mode: String,
    /// `"1"` or `"2"`.
    #[serde(rename = "SCAL")]
    pub scal: String,
    #[serde(default, rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInfo>,
    #[serde(default, rename = "OTP", skip_serializing_if = "Option::is_none")]
    pub otp: Option<OtpInfo>,
    pub multisign: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// `credentials/authorize` input (spec §11.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    pub num_signatures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Vec<String>>,
    #[serde(default, rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    #[serde(default, rename = "OTP", skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `credentials/authorize` and `credentials/extendTransaction` output (spec §11.6-11.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SadResponse {
    #[serde(rename = "SAD")]
    pub sad: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// `credentials/extendTransaction` input (spec §11.7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendTransactionRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Vec<String>>,
    #[serde(rename = "SAD")]
    pub sad: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `signatures/signHash` input (spec §11.9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignHashRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    #[serde(rename = "SAD")]
    pub sad: String,
    pub hash: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
    pub sign_algo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_algo_params: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `signatures/signHash` output (spec §11.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignHashResponse {
    pub signatures: Vec<String>,
}

/// `credentials/sendOTP` input (spec §11.8); the output is 204 No Content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOtpRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `oauth2/token` output (spec §8.3.3): `token_type` is `Bearer` for scope `service` and `SAD`
/// for scope `credential` (then `access_token` is the SAD for signHash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTokenResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// `oauth2/token` output for a code from a request with `authorization_details` (CSC v2 §8.4,
/// RFC 9396 §7): `token_type` `Bearer`, `access_token` the credential token (the SAD the v2
/// `signatures/signHash` takes from `Authorization: Bearer`), the approved details and the
/// credential they were granted for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthCredentialTokenResponse {
    #[serde(flatten)]
    pub token: OAuthTokenResponse,
    /// The approved `authorization_details` (a JSON array).
    pub authorization_details: serde_json::Value,
    #[serde(rename = "credentialID")]
    pub credential_id: String,
}

/// `signatures/timestamp` input (v1 §11.10, v2 §11.13): `hash` base64, `hashAlgo` an OID,
/// `nonce` a hex-encoded integer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampRequest {
    pub hash: String,
    pub hash_algo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// `signatures/timestamp` output: the base64 DER `TimeStampToken` (RFC 3161 §2.4.2, a CMS
/// `ContentInfo`), not the whole `TimeStampResp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampResponse {
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_uses_the_spec_field_names() {
        let info = InfoResponse {
            specs: SPECS_VERSION.into(),
            name: "n".into(),
            logo: "l".into(),
            region: "BE".into(),
            lang: "en-US".into(),
            description: "d".into(),
            auth_type: vec!["basic".into()],
            oauth2: None,
            methods: vec![],
        };
        let v = serde_json::to_value(&info).unwrap_or_default();
        assert_eq!(v["authType"][0], "basic");
        assert!(v.get("oauth2").is_none());
        assert_eq!(v["specs"], "1.0.4.0");
    }

    #[test]
    fn credential_names_follow_the_spec_capitalisation() {
        let r = SignHashRequest {
            credential_id: "c".into(),
            sad: "s".into(),
            hash: vec!["h".into()],
            sign_algo: "1.2.840.10045.4.3.2".into(),
            ..SignHashRequest::default()
        };
        let v = serde_json::to_value(&r).unwrap_or_default();
        for k in ["credentialID", "SAD", "hash", "signAlgo"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v.get("hashAlgo").is_none());
        let a = serde_json::to_value(AuthorizeRequest {
            credential_id: "c".into(),
            num_signatures: 2,
            pin: Some("1".into()),
            ..AuthorizeRequest::default()
        })
        .unwrap_or_default();
        assert_eq!(a["numSignatures"], 2);
        assert_eq!(a["PIN"], "1");
        let l: CredentialsListResponse = serde_json::from_str(
            r#"{"credentialIDs":["a"],"nextPageToken":"p"}"#,
        )
        .unwrap_or(CredentialsListResponse {
            credential_ids: vec![],
            next_page_token: None,
        });
        assert_eq!(l.next_page_token.as_deref(), Some("p"));
    }
}
