//! The OAuth 2.0 additions of CSC v2 (REFERENCE §6.15): pushed authorization requests
//! (RFC 9126) with `authorization_details` (RFC 9396), and the authorization server's metadata
//! (RFC 8414).

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
                      labels. The answer's `request_uri` opens the sign-in and consent page: \
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
                "A missing, invalid or repeated parameter or a body over the size limit \
                 (`invalid_request`), bad `authorization_details` \
                 (`invalid_authorization_details`), a wrong scope (`invalid_scope`), an unknown \
                 client or wrong secret",
            ),
            BAD_CLIENT,
            SERVER_ERROR,
        ],
    }
}

pub(crate) fn schemas() -> Value {
    // the form carries the parameters of `GET oauth2/authorize`, plus RAR and the client secret
    let mut properties = Map::new();
    for (name, schema, _) in authorize_query() {
        properties.insert(name.into(), schema);
    }
    properties.insert(
        "authorization_details".into(),
        string(
            "RFC 9396: a JSON array of one object of type `credential` (or \
             `https://cloudsignatureconsortium.org/2025/credential`) with `credentialID` or \
             `signatureQualifier`, `documentDigests` [{`hash`, `label`}], `hashAlgorithmOID`, \
             `numSignatures`; not with `credentialID`/`numSignatures`/`hash`",
        ),
    );
    properties.insert(
        "client_secret".into(),
        string("A confidential client's secret, when not in the Authorization header"),
    );
    let strings = |description: &str| json!({ "type": "array", "items": { "type": "string" }, "description": description });
    json!({
        "OAuthPushedAuthorizeRequest": request(
            &["response_type"],
            Value::Object(properties),
            "`oauth2/pushed_authorize` input (form): the `oauth2/authorize` parameters; an empty \
             value counts as absent, a repeated one is refused",
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
              "pushed_authorization_request_endpoint", "response_types_supported",
              "grant_types_supported", "code_challenge_methods_supported",
              "token_endpoint_auth_methods_supported", "scopes_supported",
              "authorization_details_types_supported", "require_pushed_authorization_requests"],
            json!({
                "issuer": string("The server's public base URL, no trailing slash"),
                "authorization_endpoint": string("`oauth2/authorize`"),
                "token_endpoint": string("`oauth2/token`"),
                "revocation_endpoint": string("`oauth2/revoke`"),
                "pushed_authorization_request_endpoint": string("`oauth2/pushed_authorize`"),
                "response_types_supported": strings("`code`"),
                "grant_types_supported": strings(
                    "`authorization_code`, `client_credentials`, `refresh_token`"
                ),
                "code_challenge_methods_supported": strings("`S256`"),
                "token_endpoint_auth_methods_supported": strings(
                    "`client_secret_basic`, `client_secret_post`, `none`"
                ),
                "scopes_supported": strings("`service`, `credential`"),
                "authorization_details_types_supported": strings(
                    "`credential`, `https://cloudsignatureconsortium.org/2025/credential`"
                ),
                "require_pushed_authorization_requests": { "type": "boolean" },
            }),
            "RFC 8414 authorization server metadata",
        ),
    })
}
