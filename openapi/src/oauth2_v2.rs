//! The OAuth 2.0 additions of CSC v2 (CSC v2 §8.4): pushed authorization requests
//! (RFC 9126) with `authorization_details` (RFC 9396), the token endpoint's credential token
//! answer for them, and the authorization server's metadata (RFC 8414).

use serde_json::{Map, Value, json};

use crate::operation::{
    BAD_CLIENT, Operation, RequestBody, Response, SERVER_ERROR, Security, authorize_query,
    bad_request,
};
use crate::schema::{request, response, string};

pub(crate) fn operations() -> Vec<Operation> {
    vec![metadata(), pushed_authorize()]
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3).
fn metadata() -> Operation {
    Operation {
        method: "get",
        path: "/.well-known/oauth-authorization-server",
        operation_id: "oauth2Metadata",
        tag: "oauth2",
        summary: "The authorization server's metadata (RFC 8414)",
        description: "`issuer` is the `oauth2Issuer` of v2 `info`: the server's public base URL.",
        security: Security::None,
        body: RequestBody::None,
        query: vec![],
        responses: vec![Response::Json {
            status: 200,
            description: "The metadata",
            schema: "OAuthServerMetadata",
        }],
    }
}

/// `POST /oauth2/pushed_authorize` (RFC 9126 §2).
fn pushed_authorize() -> Operation {
    Operation {
        method: "post",
        path: "/oauth2/pushed_authorize",
        operation_id: "oauth2PushedAuthorize",
        tag: "oauth2",
        summary: "Push an authorization request; get its request_uri (RFC 9126, CSC v2 §8.4)",
        description: "The parameters of `oauth2/authorize`, from an authenticated client, \
                      checked at once. `authorization_details` (RFC 9396, type `credential` or \
                      `https://cloudsignatureconsortium.org/2025/credential`) names the \
                      credential or a signature qualifier, the documents' digests and their \
                      labels; the plain CSC v2 parameters (`credentialID` or \
                      `signatureQualifier`, `hashes`, `hashAlgorithmOID`, PKCE S256) make the \
                      same request without labels. The answer's `request_uri` opens the sign-in and consent page: \
                      `GET oauth2/authorize?client_id=...&request_uri=...`, once, before it \
                      expires.",
        security: Security::ClientBasicOrNone,
        body: RequestBody::Form {
            schema: "OAuthPushedAuthorizeRequest",
        },
        query: vec![],
        responses: vec![
            Response::Json {
                status: 201,
                description: "The request is stored",
                schema: "OAuthPushedAuthorizeResponse",
            },
            bad_request(
                "A missing, invalid or repeated parameter, a `request_uri`, or a body over \
                 the size limit, 16 KiB (`invalid_request`), a `response_type` other than \
                 `code` (`unsupported_response_type`), bad `authorization_details` \
                 (`invalid_authorization_details`), a wrong scope (`invalid_scope`), an unknown \
                 client, wrong secret or unregistered `redirect_uri`",
            ),
            BAD_CLIENT,
            SERVER_ERROR,
        ],
    }
}

pub(crate) fn schemas() -> Value {
    // the form carries the parameters of `GET oauth2/authorize` (`authorization_details`
    // included) but `request_uri` (RFC 9126 §2.1: refused), plus the client's secret
    let mut properties = Map::new();
    for (name, schema, _) in authorize_query() {
        properties.insert(name.into(), schema);
    }
    properties.insert(
        "client_secret".into(),
        string("A confidential client's secret, when not in the Authorization header"),
    );
    // what the server sends: exactly these values (`rar::TYPES`, the metadata's lists)
    let one_of = |values: &[&str], description: &str| {
        json!({
            "type": "array",
            "items": { "type": "string", "enum": values },
            "description": description,
        })
    };
    let oid = |description: &str| json!({ "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)+$", "description": description });
    let client_auth = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "OAuthPushedAuthorizeRequest": request(
            &["response_type"],
            Value::Object(properties),
            "`oauth2/pushed_authorize` input (form): the `oauth2/authorize` parameters but \
             `request_uri`; an empty value counts as absent, a repeated one is refused",
        ),
        "OAuthPushedAuthorizeResponse": response(&["request_uri", "expires_in"], json!({
            "request_uri": {
                "type": "string",
                "pattern": "^urn:ietf:params:oauth:request_uri:",
                "description": "Single use, bound to the client",
            },
            "expires_in": { "type": "integer", "minimum": 1, "description": "Seconds" },
        }), "`oauth2/pushed_authorize` output"),
        "OAuthServerMetadata": response(
            &["issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint",
              "pushed_authorization_request_endpoint", "require_pushed_authorization_requests",
              "response_types_supported", "response_modes_supported", "grant_types_supported",
              "code_challenge_methods_supported", "token_endpoint_auth_methods_supported",
              "revocation_endpoint_auth_methods_supported", "scopes_supported",
              "authorization_details_types_supported"],
            json!({
                "issuer": string("The server's public base URL, no trailing slash"),
                "authorization_endpoint": string("`oauth2/authorize`"),
                "token_endpoint": string("`oauth2/token`"),
                "revocation_endpoint": string("`oauth2/revoke`"),
                "pushed_authorization_request_endpoint": string("`oauth2/pushed_authorize`"),
                "require_pushed_authorization_requests": {
                    "type": "boolean", "const": false,
                    "description": "`oauth2/authorize` also takes the request in its query",
                },
                "response_types_supported": one_of(&["code"], "`code`"),
                "response_modes_supported": one_of(&["query"], "`query`"),
                "grant_types_supported": one_of(
                    &["authorization_code", "client_credentials", "refresh_token"],
                    "`authorization_code`, `client_credentials`, `refresh_token`",
                ),
                "code_challenge_methods_supported": one_of(&["S256"], "`S256`"),
                "token_endpoint_auth_methods_supported": one_of(
                    &client_auth,
                    "`client_secret_basic`, `client_secret_post`, `none` (public clients, PKCE)",
                ),
                "revocation_endpoint_auth_methods_supported": one_of(
                    &client_auth,
                    "As at the token endpoint",
                ),
                "scopes_supported": one_of(&["service", "credential"], "`service`, `credential`"),
                "authorization_details_types_supported": one_of(
                    &CREDENTIAL_TYPES,
                    "`credential`, `https://cloudsignatureconsortium.org/2025/credential`",
                ),
            }),
            "RFC 8414 authorization server metadata",
        ),
        "OAuthTokenAnswer": {
            "description": "`oauth2/token` output: one of the two shapes",
            "oneOf": [
                { "$ref": "#/components/schemas/OAuthTokenResponse" },
                { "$ref": "#/components/schemas/OAuthCredentialTokenResponse" },
            ],
        },
        "OAuthCredentialTokenResponse": response(
            &["access_token", "token_type", "authorization_details", "credentialID"],
            json!({
                "access_token": string(
                    "The credential token: a SAD, taken as the Bearer of v2 \
                     `signatures/signHash` (without `SAD`) and `credentials/info`",
                ),
                "refresh_token": string("Never sent for a credential token"),
                "token_type": { "type": "string", "enum": ["Bearer"] },
                "expires_in": { "type": "integer", "minimum": 0, "description": "Seconds" },
                "authorization_details": {
                    "type": "array",
                    "minItems": 1,
                    "items": { "$ref": "#/components/schemas/OAuthCredentialAuthorizationDetail" },
                    "description": "As approved (RFC 9396 §7)",
                },
                "credentialID": string("The credential the details were granted for"),
            }),
            "`oauth2/token` output for a code of a request with `authorization_details` or the \
             plain CSC v2 parameters (`hashes`, ...: the equivalent element is echoed) (CSC v2 \
             §8.4)",
        ),
        "OAuthCredentialAuthorizationDetail": response(
            &["type", "credentialID", "documentDigests", "hashAlgorithmOID", "numSignatures"],
            json!({
                "type": { "type": "string", "enum": CREDENTIAL_TYPES },
                "credentialID": string("The credential used (also when a qualifier chose it)"),
                "signatureQualifier": string("As requested, when the request named one"),
                "documentDigests": {
                    "type": "array",
                    "minItems": 1,
                    "items": response(&["hash"], json!({
                        "hash": string("base64 as requested"),
                        "label": string("As requested (none for the plain `hashes`)"),
                    }), "One consented document"),
                },
                "hashAlgorithmOID": oid("The digest OID of `documentDigests`"),
                "numSignatures": {
                    "type": "integer", "minimum": 1,
                    "description": "Signatures granted: one per digest",
                },
                "locations": { "type": "array", "items": { "type": "string" }, "description": "As requested" },
            }),
            "One approved `authorization_details` element of type `credential`",
        ),
    })
}

/// The `authorization_details` types served (csc-api `oauth2::rar::TYPES`).
const CREDENTIAL_TYPES: [&str; 2] = [
    "credential",
    "https://cloudsignatureconsortium.org/2025/credential",
];
