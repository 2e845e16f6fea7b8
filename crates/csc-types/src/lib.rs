//! Wire types of the Cloud Signature Consortium API v1.0.4.0: the JSON request and response
//! bodies exactly as the specification names them. Shared by `csc-api` (the server),
//! `openapi` (the document) and `conformance-tests` (the client), so the three cannot disagree
//! on a field name.

use serde::{Deserialize, Serialize};

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
}
