//! The OpenAPI 3.1 document of everything the CSC server serves (CSC v1 and, once served,
//! OAuth2), served by `csc-server` at `GET /openapi.json`.
//!
//! The document is written by hand, as data: one [`Operation`] per route in [`operations`] and
//! one JSON Schema per wire type in [`schemas`]. It describes what *this* server does, which is
//! stricter or more lenient than the official v1.0.3.0 document in places (REFERENCE.md §5.16):
//!
//! * requests: optional fields may be `null` (read as absent), unknown fields are ignored,
//!   integers may come as numeric strings (the spec's own §13.8 diagram sends `"2"`);
//! * responses: exactly the fields this server emits (`additionalProperties: false`), every
//!   error as the CSC error body, 401s with `WWW-Authenticate`.
//!
//! It is checked, not trusted: the unit tests below compare every component schema with the
//! serde form of the `csc-types` type of the same name (a field renamed on one side fails), and
//! `csc-api/tests/it/openapi_routes.rs` compares the documented operations with what the
//! running server answers. schemathesis then fuzzes the server against this document
//! (`csc-api/tests/it/schemathesis.rs`).
//!
//! Adding an endpoint: one [`Operation`] in [`operations`] (form-encoded bodies and query
//! parameters are supported for the OAuth2 endpoints) and, for a new wire type, one schema in
//! [`schemas`] named like its `csc-types` type plus a sample in the tests.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub mod check;

/// The CSC specification version the document describes.
pub const CSC_SPECS: &str = "1.0.4.0";

/// How an operation authenticates its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No authentication.
    None,
    /// HTTP Basic, or none (`auth/login` also takes a `refresh_token` in the body instead).
    BasicOrNone,
    /// `Authorization: Bearer` with a service access token.
    Bearer,
    /// An OAuth 2.0 client: HTTP Basic with its client_id and secret, or none (the client
    /// identifies itself in the form body, RFC 6749 §2.3.1).
    ClientBasicOrNone,
}

/// The body of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    None,
    /// A JSON object of the named schema. The server reads an empty body as `{}`, so the
    /// body is `required` exactly when the schema has required fields.
    Json { schema: &'static str },
    /// An `application/x-www-form-urlencoded` body of the named schema (OAuth2).
    Form { schema: &'static str },
}

/// One documented response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// A JSON body of the named schema.
    Json {
        status: u16,
        description: &'static str,
        schema: &'static str,
    },
    /// No body (204).
    Empty {
        status: u16,
        description: &'static str,
    },
    /// A redirect (302) with a `Location` header (OAuth2 front channel).
    Redirect { description: &'static str },
    /// An HTML page (the OAuth2 sign-in and consent page).
    Html {
        status: u16,
        description: &'static str,
    },
    /// 413 in plain text: a form body over the OAuth2 endpoints' size limit (actix's own
    /// answer; the JSON methods answer an oversized body with a CSC 400 instead).
    FormTooLarge,
}

/// One operation: a method on a path.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Lower-case HTTP method.
    pub method: &'static str,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub security: Security,
    pub body: RequestBody,
    /// Query parameters: (name, schema, required).
    pub query: Vec<(&'static str, Value, bool)>,
    pub responses: Vec<Response>,
}

const ERROR: &str = "ErrorResponse";

fn bad_request(what: &'static str) -> Response {
    Response::Json {
        status: 400,
        description: what,
        schema: ERROR,
    }
}

/// 401 of the OAuth 2.0 token and revoke endpoints: the client did not authenticate.
const BAD_CLIENT: Response = Response::Json {
    status: 401,
    description: "A malformed client `Authorization` header (`invalid_client`), or a \
                  confidential client without its secret",
    schema: ERROR,
};

/// 401 of a Bearer-protected method: a well-formed but unknown, revoked or expired token
/// (`invalid_token` / `expired_token`, with `WWW-Authenticate: Bearer error="..."`).
const BAD_TOKEN: Response = Response::Json {
    status: 401,
    description: "The access token is unknown, revoked or expired (`invalid_token`, `expired_token`); \
                  the `WWW-Authenticate` header says which",
    schema: ERROR,
};

const SERVER_ERROR: Response = Response::Json {
    status: 500,
    description: "An unexpected condition (`server_error`); details are logged, never sent",
    schema: ERROR,
};

/// The description of a Bearer method's 400: its own errors plus the spec's generic one for a
/// missing or malformed `Authorization` header and for a body that is not a JSON object.
const BEARER_400: &str = "A missing or invalid parameter (`invalid_request` with the spec's \
    exact description), a missing or malformed `Authorization: Bearer` header or a body that is \
    not a JSON object within the size limit (`invalid_request`, the spec's generic text)";

fn csc(
    path: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    request: &'static str,
    ok: Response,
) -> Operation {
    Operation {
        method: "post",
        path,
        operation_id,
        tag,
        summary,
        description,
        security: Security::Bearer,
        body: RequestBody::Json { schema: request },
        query: vec![],
        responses: vec![ok, bad_request(BEARER_400), BAD_TOKEN, SERVER_ERROR],
    }
}

/// Every operation the server serves, in route-table order.
pub fn operations() -> Vec<Operation> {
    let info_ok = Response::Json {
        status: 200,
        description: "What the service is and which methods it implements",
        schema: "InfoResponse",
    };
    let sad = |description| Response::Json {
        status: 200,
        description,
        schema: "SadResponse",
    };
    vec![
        Operation {
            method: "get",
            path: "/health",
            operation_id: "health",
            tag: "service",
            summary: "Liveness probe",
            description: "Answers while the server process serves requests.",
            security: Security::None,
            body: RequestBody::None,
            query: vec![],
            responses: vec![Response::Json {
                status: 200,
                description: "The server is up",
                schema: "Health",
            }],
        },
        Operation {
            method: "get",
            path: "/openapi.json",
            operation_id: "openapi",
            tag: "service",
            summary: "This OpenAPI document",
            description: "The OpenAPI 3.1 document of every endpoint the server serves.",
            security: Security::None,
            body: RequestBody::None,
            query: vec![],
            responses: vec![Response::Json {
                status: 200,
                description: "The document",
                schema: "OpenApiDocument",
            }],
        },
        Operation {
            method: "post",
            path: "/csc/v1/info",
            operation_id: "info",
            tag: "info",
            summary: "Service information (CSC §11.1)",
            description: "No authentication. An empty body counts as `{}`. One language is \
                          served: the output `lang` says which, whatever `lang` asked for.",
            security: Security::None,
            body: RequestBody::Json {
                schema: "InfoRequest",
            },
            query: vec![],
            responses: vec![
                info_ok,
                bad_request("The body is not a JSON object, or `lang` is not a string"),
                SERVER_ERROR,
            ],
        },
        Operation {
            method: "get",
            path: "/csc/v1/info",
            operation_id: "infoGet",
            tag: "info",
            summary: "Service information, as GET (an extension some clients use)",
            description: "The same answer as `POST /csc/v1/info` with no input.",
            security: Security::None,
            body: RequestBody::None,
            query: vec![],
            responses: vec![info_ok],
        },
        Operation {
            method: "post",
            path: "/csc/v1/auth/login",
            operation_id: "authLogin",
            tag: "auth",
            summary: "Service access token from HTTP Basic or a refresh token (CSC §11.2)",
            description: "Either `Authorization: Basic base64(user:password)`, or no \
                          `Authorization` header and a `refresh_token` from an earlier login \
                          with `rememberMe`. A refresh token is returned only to a Basic login \
                          with `rememberMe: true`.",
            security: Security::BasicOrNone,
            body: RequestBody::Json {
                schema: "LoginRequest",
            },
            query: vec![],
            responses: vec![
                Response::Json {
                    status: 200,
                    description: "A service access token",
                    schema: "LoginResponse",
                },
                bad_request(
                    "Login failed (`authentication_error`), `Malformed username-password.`, \
                     `Invalid refresh_token`, a wrongly typed parameter or a body that is not a \
                     JSON object",
                ),
                Response::Json {
                    status: 401,
                    description: "`Malformed authentication parameter.`: the `Authorization` \
                                  header is not `Basic ...`, or neither it nor a \
                                  `refresh_token` was sent",
                    schema: ERROR,
                },
                SERVER_ERROR,
            ],
        },
        csc(
            "/csc/v1/auth/revoke",
            "authRevoke",
            "auth",
            "Revoke an access or refresh token of the caller (CSC §11.3)",
            "A token that is unknown or not the caller's is `Invalid string parameter token`.",
            "RevokeRequest",
            Response::Empty {
                status: 204,
                description: "The token is revoked (and, for a refresh token, the access \
                              tokens it minted)",
            },
        ),
        csc(
            "/csc/v1/credentials/list",
            "credentialsList",
            "credentials",
            "The caller's credential IDs, paged (CSC §11.4)",
            "With a user's token `userID` must be absent; a client token names the user.",
            "CredentialsListRequest",
            Response::Json {
                status: 200,
                description: "One page of credential IDs",
                schema: "CredentialsListResponse",
            },
        ),
        csc(
            "/csc/v1/credentials/info",
            "credentialsInfo",
            "credentials",
            "Key, certificate and authorization facts of one credential (CSC §11.5)",
            "A credential that is unknown or not the caller's is `Invalid parameter credentialID`.",
            "CredentialsInfoRequest",
            Response::Json {
                status: 200,
                description: "The credential",
                schema: "CredentialsInfoResponse",
            },
        ),
        csc(
            "/csc/v1/credentials/authorize",
            "credentialsAuthorize",
            "credentials",
            "Authorize a credential for numSignatures signatures: a SAD (CSC §11.6)",
            "Wrong factors are `invalid_pin` / `invalid_otp`; SCAL 2 credentials need `hash`.",
            "AuthorizeRequest",
            sad("Signature activation data"),
        ),
        csc(
            "/csc/v1/credentials/extendTransaction",
            "credentialsExtendTransaction",
            "credentials",
            "A new SAD for the remaining signatures of a transaction (CSC §11.7)",
            "",
            "ExtendTransactionRequest",
            sad("The new signature activation data"),
        ),
        csc(
            "/csc/v1/credentials/sendOTP",
            "credentialsSendOTP",
            "credentials",
            "Send an online OTP to the credential's owner (CSC §11.8)",
            "The code goes to the owner through the configured notifier, never in the answer. \
             A credential without an online OTP is `invalid_request`.",
            "SendOtpRequest",
            Response::Empty {
                status: 204,
                description: "The OTP is on its way",
            },
        ),
        csc(
            "/csc/v1/signatures/signHash",
            "signaturesSignHash",
            "signatures",
            "Sign hashes with a credential under a SAD (CSC §11.9)",
            "Signature values in the order of `hash`: RSA raw, ECDSA DER `ECDSA-Sig-Value`.",
            "SignHashRequest",
            Response::Json {
                status: 200,
                description: "Base64 signature values",
                schema: "SignHashResponse",
            },
        ),
        Operation {
            method: "get",
            path: "/oauth2/authorize",
            operation_id: "oauth2Authorize",
            tag: "oauth2",
            summary: "Start an authorization-code flow: the sign-in page (CSC §8.3.2)",
            description: "The path is the `oauth2` base URI of `info` plus `oauth2/authorize`. \
                          A valid request gets the sign-in page (and a cookie its form must come \
                          back with); an invalid one from a known client and redirect URI a 302 \
                          with `error`; one whose client or redirect URI is unknown an error \
                          page, never a redirect. Public clients must use PKCE (S256).",
            security: Security::None,
            body: RequestBody::None,
            query: authorize_query(),
            responses: vec![
                Response::Html {
                    status: 200,
                    description: "The sign-in page",
                },
                Response::Redirect {
                    description: "Back to the client's redirect URI with `error`, \
                                  `error_description` and `state`",
                },
                Response::Html {
                    status: 400,
                    description: "An error page: unknown client, unregistered redirect URI, a \
                                  repeated or malformed parameter",
                },
                Response::Html {
                    status: 500,
                    description: "An error page: an unexpected condition",
                },
            ],
        },
        Operation {
            method: "post",
            path: "/oauth2/authorize",
            operation_id: "oauth2AuthorizeForm",
            tag: "oauth2",
            summary: "The sign-in and consent page's form",
            description: "Sent by the page only: `request` must equal the cookie the page set. \
                          Signing in, then (scope `credential`) approving with the PIN/OTP ends \
                          in a 302 to the redirect URI with a single-use `code` and `state`.",
            security: Security::None,
            body: RequestBody::Form {
                schema: "OAuthAuthorizeForm",
            },
            query: vec![],
            responses: vec![
                Response::Html {
                    status: 200,
                    description: "The next step of the page (or the same with an error)",
                },
                Response::Redirect {
                    description: "Back to the client's redirect URI with `code` and `state`, or \
                                  with `error` (`access_denied`, ...)",
                },
                Response::Html {
                    status: 400,
                    description: "An error page: malformed form, unknown or expired request",
                },
                Response::Html {
                    status: 403,
                    description: "An error page: the form and its cookie differ (CSRF check)",
                },
                Response::FormTooLarge,
                Response::Html {
                    status: 500,
                    description: "An error page: an unexpected condition",
                },
            ],
        },
        Operation {
            method: "post",
            path: "/oauth2/token",
            operation_id: "oauth2Token",
            tag: "oauth2",
            summary: "Exchange a code, client credentials or a refresh token for a token (CSC §8.3.3)",
            description: "Scope `service` gives a Bearer service token; a code of scope \
                          `credential` gives a SAD (`token_type` `SAD`) for signHash. \
                          `client_credentials` is for confidential clients and scope `service`.",
            security: Security::ClientBasicOrNone,
            body: RequestBody::Form {
                schema: "OAuthTokenRequest",
            },
            query: vec![],
            responses: vec![
                Response::Json {
                    status: 200,
                    description: "The token",
                    schema: "OAuthTokenResponse",
                },
                bad_request(
                    "A missing or invalid parameter (`invalid_request`), an invalid, expired or \
                     reused code or refresh token (`invalid_grant`), a wrong scope \
                     (`invalid_scope`), an unknown client or wrong secret",
                ),
                BAD_CLIENT,
                Response::FormTooLarge,
                SERVER_ERROR,
            ],
        },
        Operation {
            method: "post",
            path: "/oauth2/revoke",
            operation_id: "oauth2Revoke",
            tag: "oauth2",
            summary: "Revoke a token issued to the client, or a SAD (CSC §8.3.4)",
            description: "A refresh token takes the access tokens it minted with it.",
            security: Security::ClientBasicOrNone,
            body: RequestBody::Form {
                schema: "OAuthRevokeRequest",
            },
            query: vec![],
            responses: vec![
                Response::Empty {
                    status: 204,
                    description: "Revoked",
                },
                bad_request(
                    "A missing or invalid parameter, a token this client cannot revoke \
                     (`Invalid string parameter token`), an unknown client or wrong secret",
                ),
                BAD_CLIENT,
                Response::FormTooLarge,
                SERVER_ERROR,
            ],
        },
    ]
}

/// The query of `GET oauth2/authorize` (CSC §8.3.2, RFC 6749 §4.1.1, RFC 7636).
fn authorize_query() -> Vec<(&'static str, Value, bool)> {
    let text = |d: &str| string(d);
    vec![
        (
            "response_type",
            json!({ "type": "string", "enum": ["code"] }),
            true,
        ),
        ("client_id", text("The registered client"), true),
        (
            "redirect_uri",
            text("One of the client's registered redirect URIs (default: the first)"),
            false,
        ),
        (
            "scope",
            json!({ "type": "string", "enum": ["service", "credential"] }),
            false,
        ),
        (
            "state",
            json!({ "type": "string", "maxLength": 255, "description": "Returned as is" }),
            false,
        ),
        (
            "code_challenge",
            text("PKCE S256 challenge, base64url (43 characters)"),
            false,
        ),
        (
            "code_challenge_method",
            json!({ "type": "string", "enum": ["S256"] }),
            false,
        ),
        (
            "credentialID",
            text("Scope `credential`: the credential to authorize"),
            false,
        ),
        (
            "numSignatures",
            json!({ "type": "string", "pattern": "^[\\s\\u0085]*\\+?0*[1-9][0-9]{0,18}[\\s\\u0085]*$",
                    "description": "Scope `credential`: how many signatures" }),
            false,
        ),
        (
            "hash",
            text("Scope `credential`: base64url digests, comma-separated (required at SCAL 2)"),
            false,
        ),
        (
            "description",
            json!({ "type": "string", "maxLength": 500, "description": "Shown to the signer" }),
            false,
        ),
        ("lang", text("Preferred language (one is served)"), false),
        (
            "clientData",
            text("Opaque application data, never interpreted"),
            false,
        ),
    ]
}

/// Response headers beyond the CSC ones. (operationId, status) → headers object.
fn response_headers(operation_id: &str, status: u16) -> Option<Value> {
    let no_store = json!({ "required": true, "schema": { "type": "string", "const": "no-store" } });
    match (operation_id, status) {
        // RFC 6749 §5.1
        ("oauth2Token", 200) => Some(json!({ "Cache-Control": no_store })),
        ("oauth2Authorize", 200) => Some(json!({
            "Set-Cookie": {
                "required": true,
                "description": "Binds the page's form to this browser (CSRF check)",
                "schema": { "type": "string" },
            },
            "X-Frame-Options": { "required": true, "schema": { "type": "string", "const": "DENY" } },
        })),
        ("oauth2Authorize" | "oauth2AuthorizeForm", 302) => Some(json!({
            "Location": { "required": true, "schema": { "type": "string" } },
            "Cache-Control": no_store,
        })),
        _ => None,
    }
}

/// OpenAPI links: how a success answer feeds the next call (schemathesis' stateful phase
/// follows them). (from operationId, status, link name, to operationId, request body fields)
pub fn links() -> Vec<(&'static str, u16, &'static str, &'static str, Value)> {
    let credential = json!({ "credentialID": "$response.body#/credentialIDs/0" });
    let sad = json!({
        "credentialID": "$request.body#/credentialID",
        "SAD": "$response.body#/SAD",
    });
    vec![
        (
            "authLogin",
            200,
            "RevokeTheAccessToken",
            "authRevoke",
            json!({ "token": "$response.body#/access_token" }),
        ),
        (
            "credentialsList",
            200,
            "DescribeTheFirstCredential",
            "credentialsInfo",
            credential.clone(),
        ),
        (
            "credentialsList",
            200,
            "AuthorizeTheFirstCredential",
            "credentialsAuthorize",
            credential,
        ),
        (
            "credentialsAuthorize",
            200,
            "SignUnderTheSad",
            "signaturesSignHash",
            sad.clone(),
        ),
        (
            "credentialsAuthorize",
            200,
            "ExtendTheSad",
            "credentialsExtendTransaction",
            sad.clone(),
        ),
        (
            "credentialsExtendTransaction",
            200,
            "SignUnderTheNewSad",
            "signaturesSignHash",
            sad,
        ),
        (
            "oauth2Token",
            200,
            "RevokeTheToken",
            "oauth2Revoke",
            json!({ "token": "$response.body#/access_token" }),
        ),
    ]
}

/// An optional request field: `null` counts as absent.
fn nullable(mut schema: Value) -> Value {
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

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// Standard base64 (RFC 4648 §4), padded, canonical, not empty: what the server decodes.
const BASE64: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$";

fn base64(description: &str) -> Value {
    json!({ "type": "string", "pattern": BASE64, "description": description })
}

fn hashes(description: &str) -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "items": base64("A base64 digest"),
        "description": description,
    })
}

/// A positive integer, which the server also takes as a numeric string.
fn positive_integer(description: &str) -> Value {
    json!({
        "type": ["integer", "string"],
        "minimum": 1,
        // what `str::trim` then `i64::from_str` take (U+0085 is whitespace to Rust only)
        "pattern": "^[\\s\\u0085]*\\+?0*[1-9][0-9]{0,18}[\\s\\u0085]*$",
        "description": description,
    })
}

fn client_data() -> Value {
    nullable(string("Opaque application data, never interpreted"))
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
fn request(required: &[&str], properties: Value, description: &str) -> Value {
    object(required, properties, false, description)
}

/// A response body: exactly these fields.
fn response(required: &[&str], properties: Value, description: &str) -> Value {
    object(required, properties, true, description)
}

/// Every component schema, by name. Wire types are named like their `csc-types` type.
pub fn schemas() -> Map<String, Value> {
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
            json!({
                "specs": { "type": "string", "const": CSC_SPECS },
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
            }),
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
            "hash": nullable(hashes("Digests bound to the SAD (required at SCAL 2)")),
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
            "hash": nullable(hashes("Further digests to bind (SCAL 2)")),
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

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn operation_json(op: &Operation, schemas: &Map<String, Value>) -> Value {
    let mut o = Map::new();
    o.insert("operationId".into(), json!(op.operation_id));
    o.insert("tags".into(), json!([op.tag]));
    o.insert("summary".into(), json!(op.summary));
    if !op.description.is_empty() {
        o.insert("description".into(), json!(op.description));
    }
    let security = match op.security {
        Security::None => json!([]),
        Security::BasicOrNone => json!([{ "BasicAuth": [] }, {}]),
        Security::Bearer => json!([{ "BearerAuth": [] }]),
        Security::ClientBasicOrNone => json!([{ "OAuthClientBasic": [] }, {}]),
    };
    o.insert("security".into(), security);
    match op.body {
        RequestBody::None => {}
        RequestBody::Json { schema } => {
            let required = schemas
                .get(schema)
                .and_then(|s| s.get("required"))
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            o.insert(
                "requestBody".into(),
                json!({
                    "required": required,
                    "content": { "application/json": { "schema": schema_ref(schema) } },
                }),
            );
        }
        RequestBody::Form { schema } => {
            o.insert("requestBody".into(), json!({
                "required": true,
                "content": { "application/x-www-form-urlencoded": { "schema": schema_ref(schema) } },
            }));
        }
    }
    if !op.query.is_empty() {
        let parameters = op
            .query
            .iter()
            .map(|(name, schema, required)| {
                json!({ "name": name, "in": "query", "required": required, "schema": schema })
            })
            .collect();
        o.insert("parameters".into(), parameters);
    }
    let mut responses = Map::new();
    for r in &op.responses {
        let (status, mut value) = match *r {
            Response::Json {
                status,
                description,
                schema,
            } => {
                let v = json!({
                    "description": description,
                    "content": { "application/json": { "schema": schema_ref(schema) } },
                });
                (status, v)
            }
            Response::Empty {
                status,
                description,
            } => (status, json!({ "description": description })),
            Response::Redirect { description } => (
                302,
                json!({
                    "description": description,
                    "headers": { "Location": { "required": true, "schema": { "type": "string" } } },
                }),
            ),
            Response::Html {
                status,
                description,
            } => (
                status,
                json!({
                    "description": description,
                    "content": { "text/html": { "schema": { "type": "string" } } },
                }),
            ),
            Response::FormTooLarge => (
                413,
                json!({
                    "description": "The form is larger than the OAuth2 endpoints' limit (16 KiB)",
                    "content": { "text/plain": { "schema": { "type": "string" } } },
                }),
            ),
        };
        let headers = if matches!(r, Response::Json { .. })
            && status == 401
            && op.security == Security::Bearer
        {
            Some(json!({ "WWW-Authenticate": {
                "required": true,
                "description": "`Bearer error=\"invalid_token\"` or `Bearer error=\"expired_token\"`",
                "schema": { "type": "string", "pattern": "^Bearer error=\"(invalid_token|expired_token)\"$" },
            }}))
        } else {
            None
        };
        // The operation's own headers, if any, win over the Bearer 401 ones.
        if let Some(headers) = response_headers(op.operation_id, status).or(headers)
            && let Some(value) = value.as_object_mut()
        {
            value.insert("headers".into(), headers);
        }
        responses.insert(status.to_string(), value);
    }
    for (from, status, name, to, body) in links() {
        if from == op.operation_id
            && let Some(Value::Object(r)) = responses.get_mut(&status.to_string())
            && let Value::Object(links) = r
                .entry("links")
                .or_insert_with(|| Value::Object(Map::new()))
        {
            links.insert(
                name.into(),
                json!({ "operationId": to, "requestBody": body }),
            );
        }
    }
    o.insert("responses".into(), Value::Object(responses));
    Value::Object(o)
}

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    let schemas = schemas();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in operations() {
        paths
            .entry(op.path)
            .or_default()
            .insert(op.method.to_owned(), operation_json(&op, &schemas));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CSC remote signing server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The Cloud Signature Consortium API v{CSC_SPECS} as this server serves it. \
                 Every error is the CSC error body `{{error, error_description}}`."
            ),
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "service" }, { "name": "info" }, { "name": "auth" },
            { "name": "credentials" }, { "name": "signatures" }, { "name": "oauth2" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "BasicAuth": { "type": "http", "scheme": "basic" },
                "BearerAuth": { "type": "http", "scheme": "bearer" },
                "OAuthClientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An OAuth 2.0 client's client_id and secret (oauth2/token, oauth2/revoke)",
                },
            },
            "schemas": schemas,
        },
    })
}

/// Every documented operation as `(METHOD, path)`, method upper-case.
pub fn documented_routes(doc: &Value) -> Vec<(String, String)> {
    let mut routes = vec![];
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for method in item.keys() {
                    routes.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes.sort();
    routes
}
