//! Request bodies read field by field, so every bad input gets the exact CSC error the spec
//! names for it ("Missing (or invalid type) string parameter credentialID", ...). Bodies are
//! size-limited; anything that is not a JSON object is a 400 `invalid_request`.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A JSON object request body.
pub struct Body(pub Map<String, Value>);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // the limit comes from the PayloadConfig registered by the app factory
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                tracing::debug!(error = %e, "request body refused");
                ApiError::malformed()
            })?;
            Body::parse(&bytes)
        })
    }
}

impl Body {
    /// An empty body counts as `{}` (some clients send nothing to `info`).
    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Body(map)),
            _ => Err(ApiError::malformed()),
        }
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required string: absent or not a string is `Missing (or invalid type) string
    /// parameter NAME`.
    pub fn string(&self, name: &str) -> Result<&str, ApiError> {
        self.present(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing("string", name))
    }

    /// An optional string: present but not a string is `Invalid parameter NAME`.
    pub fn opt_string(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid_parameter(name)),
        }
    }

    /// An optional boolean: present but not a boolean is `Invalid parameter NAME`.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid_parameter(name)),
        }
    }

    /// A required integer; a numeric string is tolerated (the spec's own §13.8 diagram sends
    /// `"2"`). Absent, fractional or non-numeric is `Missing (or invalid type) integer parameter
    /// NAME`.
    pub fn integer(&self, name: &str) -> Result<i64, ApiError> {
        self.opt_integer_inner(name)?
            .ok_or_else(|| ApiError::missing("integer", name))
    }

    /// An optional integer: present but not an integer is `Invalid parameter NAME`.
    pub fn opt_integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.opt_integer_inner(name)
            .map_err(|_| ApiError::invalid_parameter(name))
    }

    fn opt_integer_inner(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::missing("integer", name)),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::missing("integer", name)),
            Some(_) => Err(ApiError::missing("integer", name)),
        }
    }

    /// The `hash` array: base64 digests. Absent or not an array of strings is `Missing (or
    /// invalid type) array parameter hash`; empty is `Empty hash array`; a bad element is
    /// `Invalid Base64 hash string parameter`.
    pub fn hashes(&self, name: &str) -> Result<Vec<Vec<u8>>, ApiError> {
        self.opt_hashes(name)?
            .ok_or_else(|| ApiError::missing("array", name))
    }

    /// An optional `hash` array with the same rules when present.
    pub fn opt_hashes(&self, name: &str) -> Result<Option<Vec<Vec<u8>>>, ApiError> {
        let Some(value) = self.present(name) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| ApiError::missing("array", name))?;
        if items.is_empty() {
            return Err(ApiError::invalid("Empty hash array"));
        }
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|s| STANDARD.decode(s).ok())
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| ApiError::invalid("Invalid Base64 hash string parameter"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// CSC v2 hashes with their algorithm: the optional array `name` (rules of
    /// [`Body::opt_hashes`]) and `hashAlgorithmOID`, required with it ("each time hash values
    /// are provided, the hash algorithm OID must also be provided", v2 change history): absent
    /// or not a string is `Missing (or invalid type) string parameter hashAlgorithmOID`, a
    /// digest other than SHA-256/384/512 (the approved ones, JT2A Part III 2) is `Invalid
    /// parameter hashAlgorithmOID`, and every hash must have its digest length (`Invalid
    /// digest value length`). Without hashes, a `hashAlgorithmOID` must still be a string.
    pub fn opt_hashes_with_algorithm(&self, name: &str) -> Result<Option<Vec<Vec<u8>>>, ApiError> {
        const OID: &str = "hashAlgorithmOID";
        let hashes = self.opt_hashes(name)?;
        let oid = self
            .opt_string(OID)
            .map_err(|_| ApiError::missing("string", OID))?;
        let Some(hashes) = hashes else {
            return Ok(None);
        };
        let oid = oid.ok_or_else(|| ApiError::missing("string", OID))?;
        let alg = sam::HashAlg::from_oid(oid).ok_or_else(|| ApiError::invalid_parameter(OID))?;
        if hashes.iter().any(|h| h.len() != alg.digest_len()) {
            return Err(ApiError::invalid("Invalid digest value length"));
        }
        Ok(Some(hashes))
    }

    /// `clientData`, when present, must be a string (it is opaque and never interpreted).
    pub fn check_client_data(&self) -> Result<(), ApiError> {
        self.opt_string("clientData").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Body {
        Body::parse(json.as_bytes()).unwrap_or_else(|_| panic!("not an object: {json}"))
    }

    fn description(e: ApiError) -> String {
        match e {
            ApiError::Csc { description, .. } => description.into_owned(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn only_objects_are_bodies() {
        assert!(Body::parse(b"[]").is_err());
        assert!(Body::parse(b"{").is_err());
        assert!(Body::parse(b"\"x\"").is_err());
        assert!(Body::parse(b"").is_ok());
    }

    #[test]
    fn fields_give_the_spec_messages() {
        let b = body(r#"{"credentialID": 5, "n": "2", "f": 1.5, "hash": [], "clientData": 1}"#);
        assert_eq!(
            description(b.string("credentialID").expect_err("err")),
            "Missing (or invalid type) string parameter credentialID"
        );
        assert_eq!(
            description(b.string("SAD").expect_err("err")),
            "Missing (or invalid type) string parameter SAD"
        );
        assert_eq!(b.integer("n").ok(), Some(2));
        assert_eq!(
            description(b.integer("f").expect_err("err")),
            "Missing (or invalid type) integer parameter f"
        );
        assert_eq!(
            description(b.hashes("hash").expect_err("err")),
            "Empty hash array"
        );
        assert_eq!(
            description(b.check_client_data().expect_err("err")),
            "Invalid parameter clientData"
        );
        let b = body(r#"{"hash": ["%%%"], "h2": "x", "h3": ["AAAA"]}"#);
        assert_eq!(
            description(b.hashes("hash").expect_err("err")),
            "Invalid Base64 hash string parameter"
        );
        assert_eq!(
            description(b.hashes("h2").expect_err("err")),
            "Missing (or invalid type) array parameter h2"
        );
        assert_eq!(b.hashes("h3").ok(), Some(vec![vec![0, 0, 0]]));
    }
}
