//! The component schemas: one JSON Schema per wire type, named like its `csc-types` type, and
//! the helpers that build them.

use serde_json::{Map, Value, json};

use crate::CSC_SPECS;

/// An optional request field: `null` counts as absent.
pub(crate) fn nullable(mut schema: Value) -> Value {
    if let Some(t) = schema.get_mut("type") {
        let mut types = match t.take() {
            Value::Array(a) => a,
            other => vec![other],
        };
        types.push(json!("null"));
        *t = Value::Array(types);
        if let Some(Value::Array(e)) = schema.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    schema
}

pub(crate) fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// Standard base64 (RFC 4648 §4), padded, canonical, not empty: what the server decodes.
pub(crate) const BASE64: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$";

pub(crate) fn base64(description: &str) -> Value {
    json!({ "type": "string", "pattern": BASE64, "description": description })
}

pub(crate) fn hashes(description: &str) -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "items": base64("A base64 digest"),
        "description": description,
    })
}

/// A positive integer, which the server also takes as a numeric string.
pub(crate) fn positive_integer(description: &str) -> Value {
    json!({
        "type": ["integer", "string"],
        "minimum": 1,
        // what `str::trim` then `i64::from_str` take (U+0085 is whitespace to Rust only)
        "pattern": "^[\\s\\u0085]*\\+?0*[1-9][0-9]{0,18}[\\s\\u0085]*$",
        "description": description,
    })
}

pub(crate) fn client_data() -> Value {
    nullable(string("Opaque application data, never interpreted"))
}

/// The `info` output members of both versions (v1 and v2 §11.1) with the version's `specs`,
/// and `extra`'s members (the version's own) added.
pub(crate) fn info_properties(specs: &str, extra: Value) -> Value {
    let mut properties = json!({
        "specs": { "type": "string", "const": specs },
        "name": string("Commercial name"),
        "logo": string("URI of the logo"),
        "region": string("ISO 3166-1 alpha-2 country code"),
        "lang": string("The language of the answers (RFC 5646)"),
        "description": string("What the service is"),
        "authType": {
            "type": "array",
            "items": { "type": "string", "enum":
                ["external", "TLS", "basic", "digest", "oauth2code", "oauth2client"] },
        },
        "oauth2": string("Base URI of the OAuth2 authorization server"),
        "methods": { "type": "array", "items": { "type": "string" } },
    });
    if let (Some(common), Value::Object(own)) = (properties.as_object_mut(), extra) {
        common.extend(own);
    }
    properties
}

fn object(required: &[&str], properties: Value, closed: bool, description: &str) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("object"));
    o.insert("description".into(), json!(description));
    o.insert("required".into(), json!(required));
    o.insert("properties".into(), properties);
    if closed {
        o.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(o)
}

/// A request body: unknown fields are ignored by the server, so allowed.
pub(crate) fn request(required: &[&str], properties: Value, description: &str) -> Value {
    object(required, properties, false, description)
}

/// A response body: exactly these fields.
pub(crate) fn response(required: &[&str], properties: Value, description: &str) -> Value {
    object(required, properties, true, description)
}

/// Every component schema, by name. Wire types are named like their `csc-types` type.
pub fn schemas() -> Map<String, Value> {
    let mut all = v1_schemas();
    for (_, more) in added_schemas() {
        all.extend(more);
    }
    all
}

/// The schemas of CSC v2, the time-stamping authority and the OAuth 2.0 additions, by part.
fn added_schemas() -> [(&'static str, Map<String, Value>); 3] {
    let map = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    [
        ("v2", map(crate::v2::schemas())),
        ("tsa", map(crate::tsa::schemas())),
        ("oauth2_v2", map(crate::oauth2_v2::schemas())),
    ]
}

/// The schemas of CSC v1 and its OAuth 2.0 endpoints.
fn v1_schemas() -> Map<String, Value> {
    let presence = json!({ "type": "string", "enum": ["true", "false", "optional"] });
    let format = json!({ "type": "string", "enum": ["A", "N"] });
    let generalized_time = json!({
        "type": "string",
        "pattern": "^[0-9]{14}Z$",
        "description": "GeneralizedTime YYYYMMDDHHMMSSZ",
    });
    let schemas = json!({
        "ErrorResponse": response(&["error"], json!({
            "error": string("A short error code, e.g. `invalid_request`"),
            "error_description": string("What went wrong, in the spec's words where it has them"),
        }), "The CSC error body (§10.1)"),
        "Health": response(&["status"], json!({
            "status": { "type": "string", "enum": ["ok"] },
        }), "Liveness"),
        "Readiness": response(&["status", "database", "hsm"], json!({
            "status": { "type": "string", "enum": ["ready", "unavailable"] },
            "database": string("`ok`, or why the database round trip failed"),
            "hsm": string("`ok`, or why the HSM call failed"),
        }), "Readiness: each part `ok` or its failure"),
        "OpenApiDocument": {
            "type": "object",
            "required": ["openapi", "paths"],
            "description": "An OpenAPI 3.1 document",
        },
        "InfoRequest": request(&[], json!({
            "lang": nullable(string("Preferred language (RFC 5646)")),
        }), "`info` input"),
        "InfoResponse": response(
            &["specs", "name", "logo", "region", "lang", "description", "authType", "methods"],
            info_properties(CSC_SPECS, json!({})),
            "`info` output",
        ),
        "LoginRequest": request(&[], json!({
            "refresh_token": nullable(string("A refresh token from an earlier login (then no Authorization header)")),
            "rememberMe": nullable(json!({ "type": "boolean", "description": "Ask for a refresh token" })),
            "clientData": client_data(),
        }), "`auth/login` input"),
        "LoginResponse": response(&["access_token", "expires_in"], json!({
            "access_token": string("The service access token, for `Authorization: Bearer`"),
            "refresh_token": string("Only for a Basic login with `rememberMe: true`"),
            "expires_in": { "type": "integer", "minimum": 0, "description": "Seconds" },
        }), "`auth/login` output"),
        "RevokeRequest": request(&["token"], json!({
            "token": string("The access or refresh token to revoke"),
            "token_type_hint": nullable(json!({
                "type": "string", "enum": ["access_token", "refresh_token"],
            })),
            "clientData": client_data(),
        }), "`auth/revoke` input"),
        "CredentialsListRequest": request(&[], json!({
            "userID": nullable(string(
                "Only with a client token (`client_credentials`): whose credentials; with a \
                 user's token it must be absent (`userID parameter MUST be null`)",
            )),
            "maxResults": nullable(positive_integer("At most this many IDs (the server caps it at 100)")),
            "pageToken": nullable(string("`nextPageToken` of the previous page")),
            "clientData": client_data(),
        }), "`credentials/list` input"),
        "CredentialsListResponse": response(&["credentialIDs"], json!({
            "credentialIDs": { "type": "array", "items": { "type": "string" } },
            "nextPageToken": string("Present when more IDs follow"),
        }), "`credentials/list` output"),
        "CredentialsInfoRequest": request(&["credentialID"], json!({
            "credentialID": string("The credential"),
            "certificates": nullable(json!({
                "type": "string", "enum": ["none", "single", "chain"],
                "description": "Which certificates to return (default `single`)",
            })),
            "certInfo": nullable(json!({ "type": "boolean" })),
            "authInfo": nullable(json!({ "type": "boolean" })),
            "lang": nullable(string("Preferred language (RFC 5646)")),
            "clientData": client_data(),
        }), "`credentials/info` input"),
        "KeyInfo": response(&["status", "algo", "len"], json!({
            "status": { "type": "string", "enum": ["enabled", "disabled"] },
            "algo": {
                "type": "array",
                "items": { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)+$" },
                "description": "Signature algorithm OIDs usable as `signAlgo`",
            },
            "len": { "type": "integer", "minimum": 1, "description": "Key length in bits" },
            "curve": { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)+$", "description": "Curve OID of an EC key" },
        }), "`credentials/info` key"),
        "CertInfo": response(&[], json!({
            "status": { "type": "string", "enum": ["valid", "expired", "revoked", "suspended"] },
            "certificates": {
                "type": "array",
                "items": base64("A DER certificate"),
                "description": "The signer's certificate first",
            },
            "issuerDN": string("RFC 4514"),
            "serialNumber": { "type": "string", "pattern": "^[0-9a-f]+$", "description": "Hex" },
            "subjectDN": string("RFC 4514"),
            "validFrom": generalized_time,
            "validTo": generalized_time,
            "expiresInDays": {
                "type": "integer", "minimum": 0,
                "description": "Extension: whole days left before the signer certificate expires; present only when it is valid and ends within the server's `cert_expiry_warning_days`",
            },
        }), "`credentials/info` cert"),
        "PinInfo": response(&["presence"], json!({
            "presence": presence,
            "format": format,
            "label": string("UI label"),
            "description": string("UI description"),
        }), "`credentials/info` PIN"),
        "OtpInfo": response(&["presence"], json!({
            "presence": presence,
            "type": { "type": "string", "enum": ["offline", "online"] },
            "format": format,
            "label": string("UI label"),
            "description": string("UI description"),
            "ID": string("The OTP device"),
            "provider": string("The OTP provider"),
        }), "`credentials/info` OTP"),
        "CredentialsInfoResponse": response(
            &["key", "cert", "authMode", "SCAL", "multisign"],
            json!({
                "description": string("The credential's description"),
                "key": { "$ref": "#/components/schemas/KeyInfo" },
                "cert": { "$ref": "#/components/schemas/CertInfo" },
                "authMode": { "type": "string", "enum": ["explicit", "implicit", "oauth2code"] },
                "SCAL": { "type": "string", "enum": ["1", "2"] },
                "PIN": { "$ref": "#/components/schemas/PinInfo" },
                "OTP": { "$ref": "#/components/schemas/OtpInfo" },
                "multisign": { "type": "integer", "minimum": 1 },
                "lang": string("The language of the answer"),
            }),
            "`credentials/info` output",
        ),
        "AuthorizeRequest": request(&["credentialID", "numSignatures"], json!({
            "credentialID": string("The credential"),
            "numSignatures": positive_integer("Signatures to authorize, at most `multisign`"),
            "hash": nullable(hashes(
                "Digests bound to the SAD (at SCAL 2 required: exactly `numSignatures` of them)"
            )),
            "PIN": nullable(string("The credential's PIN")),
            "OTP": nullable(string("A one-time password")),
            "description": nullable(string("Shown to the user")),
            "clientData": client_data(),
        }), "`credentials/authorize` input"),
        "SadResponse": response(&["SAD"], json!({
            "SAD": string("Signature activation data, single use"),
            "expiresIn": { "type": "integer", "minimum": 0, "description": "Seconds" },
        }), "`credentials/authorize` and `credentials/extendTransaction` output"),
        "ExtendTransactionRequest": request(&["credentialID", "SAD"], json!({
            "credentialID": string("The credential"),
            "hash": nullable(hashes(
                "SCAL 1: further digests to bind; SCAL 2 (required): digests still bound to the \
                 SAD, renewed (a new digest needs a new authorization)"
            )),
            "SAD": string("The current SAD"),
            "clientData": client_data(),
        }), "`credentials/extendTransaction` input"),
        "SignHashRequest": request(&["credentialID", "SAD", "hash", "signAlgo"], json!({
            "credentialID": string("The credential"),
            "SAD": string("From authorize or extendTransaction"),
            "hash": hashes("The digests to sign"),
            "hashAlgo": nullable(string("Hash OID, when `signAlgo` does not imply it")),
            "signAlgo": string("A signature algorithm OID of `key.algo`"),
            "signAlgoParams": nullable(base64("DER algorithm parameters (RSASSA-PSS)")),
            "clientData": client_data(),
        }), "`signatures/signHash` input"),
        "SendOtpRequest": request(&["credentialID"], json!({
            "credentialID": string("The credential with an online OTP"),
            "clientData": client_data(),
        }), "`credentials/sendOTP` input"),
        "OAuthTokenResponse": response(&["access_token", "token_type"], json!({
            "access_token": string("A Bearer service token, or for scope `credential` the SAD"),
            "refresh_token": string("Scope `service` only"),
            "token_type": { "type": "string", "enum": ["Bearer", "SAD"] },
            "expires_in": { "type": "integer", "minimum": 0, "description": "Seconds" },
        }), "`oauth2/token` output"),
        "OAuthTokenRequest": request(&["grant_type"], json!({
            "grant_type": {
                "type": "string",
                "enum": ["authorization_code", "client_credentials", "refresh_token"],
            },
            "code": string("grant_type authorization_code: the code"),
            "redirect_uri": string("The redirect_uri of the authorization request, if it named one"),
            "code_verifier": string("The PKCE verifier of the code's challenge"),
            "refresh_token": string("grant_type refresh_token: the refresh token"),
            "scope": { "type": "string", "enum": ["service"], "description": "client_credentials: service only" },
            "client_id": string("The client, when not in the Authorization header"),
            "client_secret": string("A confidential client's secret, when not in the Authorization header"),
            "clientData": string("Opaque application data, never interpreted"),
        }), "`oauth2/token` input (form); an empty value counts as absent, a repeated one is refused"),
        "OAuthRevokeRequest": request(&["token"], json!({
            "token": string("An access or refresh token issued to this client, or a SAD"),
            "token_type_hint": { "type": "string", "enum": ["access_token", "refresh_token"] },
            "client_id": string("The client, when not in the Authorization header"),
            "client_secret": string("A confidential client's secret, when not in the Authorization header"),
            "clientData": string("Opaque application data, never interpreted"),
        }), "`oauth2/revoke` input (form)"),
        "OAuthAuthorizeForm": request(&["request"], json!({
            "request": string("The page's request handle (equal to its cookie)"),
            "action": { "type": "string", "enum": ["login", "approve", "deny", "resend"] },
            "username": string("Signing in"),
            "password": string("Signing in"),
            "remember": string("Scope service: ask for a refresh token"),
            "PIN": string("Approving a credential"),
            "OTP": string("Approving a credential"),
        }), "The form of the `oauth2/authorize` page"),
        "SignHashResponse": response(&["signatures"], json!({
            "signatures": {
                "type": "array",
                "items": base64("A signature value"),
            },
        }), "`signatures/signHash` output"),
    });
    match schemas {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_parts_name_the_same_schema() {
        let mut seen = v1_schemas();
        for (part, more) in added_schemas() {
            for (name, schema) in more {
                assert!(
                    seen.insert(name.clone(), schema).is_none(),
                    "{part} redefines the schema {name}"
                );
            }
        }
        assert_eq!(seen.len(), schemas().len());
    }
}
