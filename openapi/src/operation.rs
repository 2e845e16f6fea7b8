//! The operations the server serves, as data: one [`Operation`] per route, in route-table
//! order, with their responses, the extra response headers and the OpenAPI links between them.

use serde_json::{Value, json};

use crate::schema::string;

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
    /// The admin API: an admin token (`Authorization: Bearer`) or a TLS client certificate.
    Admin,
    /// The admin API's token endpoint: HTTP Basic with an administrator's name and password.
    AdminClientBasic,
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
    /// A binary body of this media type (RFC 3161 `application/timestamp-query`).
    Binary { media_type: &'static str },
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
    /// A text body of this media type (the Prometheus text format of `GET /metrics`).
    Text {
        status: u16,
        description: &'static str,
        media_type: &'static str,
    },
    /// A binary body of this media type (RFC 3161 `application/timestamp-reply`).
    Binary {
        status: u16,
        description: &'static str,
        media_type: &'static str,
    },
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

pub(crate) const ERROR: &str = "ErrorResponse";

pub(crate) fn bad_request(what: &'static str) -> Response {
    Response::Json {
        status: 400,
        description: what,
        schema: ERROR,
    }
}

/// 401 of the OAuth 2.0 token and revoke endpoints: the client did not authenticate.
pub(crate) const BAD_CLIENT: Response = Response::Json {
    status: 401,
    description: "A malformed client `Authorization` header (`invalid_client`), or a \
                  confidential client without its secret",
    schema: ERROR,
};

/// 401 of a Bearer-protected method: a well-formed but unknown, revoked or expired token
/// (`invalid_token` / `expired_token`, with `WWW-Authenticate: Bearer error="..."`).
pub(crate) const BAD_TOKEN: Response = Response::Json {
    status: 401,
    description: "The access token is unknown, revoked or expired (`invalid_token`, `expired_token`); \
                  the `WWW-Authenticate` header says which",
    schema: ERROR,
};

pub(crate) const SERVER_ERROR: Response = Response::Json {
    status: 500,
    description: "An unexpected condition (`server_error`); details are logged, never sent",
    schema: ERROR,
};

/// The description of a Bearer method's 400: its own errors plus the spec's generic one for a
/// missing or malformed `Authorization` header and for a body that is not a JSON object.
pub(crate) const BEARER_400: &str = "A missing or invalid parameter (`invalid_request` with the spec's \
    exact description), a missing or malformed `Authorization: Bearer` header or a body that is \
    not a JSON object within the size limit (`invalid_request`, the spec's generic text)";

pub(crate) fn csc(
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

/// Every operation the server serves: CSC v1 and OAuth 2.0 (`v1_and_oauth2`), then the CSC
/// v2 methods (`v2.rs`), the time-stamping authority (`tsa.rs`) and the OAuth 2.0
/// additions of v2 (`oauth2_v2.rs`).
pub fn operations() -> Vec<Operation> {
    let mut all = v1_and_oauth2();
    all.extend(crate::v2::operations());
    all.extend(crate::tsa::operations());
    all.extend(crate::oauth2_v2::operations());
    all
}

/// The CSC v1 methods and the OAuth 2.0 endpoints of v1, in route-table order.
pub(crate) fn v1_and_oauth2() -> Vec<Operation> {
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
            path: "/ready",
            operation_id: "ready",
            tag: "service",
            summary: "Readiness probe",
            description: "Ready when one database round trip and one HSM call (the session's \
                          state: the token answers and is logged in) succeed; otherwise 503 \
                          with the reason of each failed part.",
            security: Security::None,
            body: RequestBody::None,
            query: vec![],
            responses: vec![
                Response::Json {
                    status: 200,
                    description: "The database and the HSM answer",
                    schema: "Readiness",
                },
                Response::Json {
                    status: 503,
                    description: "The database or the HSM does not answer",
                    schema: "Readiness",
                },
            ],
        },
        Operation {
            method: "get",
            path: "/metrics",
            operation_id: "metrics",
            tag: "service",
            summary: "Metrics in the Prometheus text format",
            description: "Counters, gauges and histograms of the server (README \
                          \"Observability\"). Served here unless `metrics_listen` moves it to \
                          a listener of its own, where it is the only path.",
            security: Security::None,
            body: RequestBody::None,
            query: vec![],
            responses: vec![Response::Text {
                status: 200,
                description: "The Prometheus text exposition format 0.0.4",
                media_type: "text/plain",
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
                          with `rememberMe`. A refresh token is returned to a Basic login with \
                          `rememberMe: true` and to every refresh-token login: refresh tokens \
                          rotate (the one sent is revoked; sent again, it revokes every token \
                          descended from the same login). Password checks are bounded: beyond \
                          the bound the answer is 429 with `Retry-After`.",
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
                Response::Json {
                    status: 429,
                    description: "`temporarily_unavailable`: every password check is busy and \
                                  the queue is full (`login_concurrency`, `login_queue`); retry \
                                  after `Retry-After` seconds",
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
            "The new SAD expires with the transaction at the latest: renewals keep the time of \
             the authorization, and a transaction lives at most the server's \
             `max_transaction_life_secs`.",
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
                          page, never a redirect. Public clients must use PKCE (S256), and so \
                          must every CSC v2 credential request (`authorization_details`, or \
                          `hashes`, `hashAlgorithmOID` or `signatureQualifier`: the same \
                          request in plain parameters), whatever the client. With \
                          `client_id` and the `request_uri` of `oauth2/pushed_authorize` (RFC \
                          9126 §4) the pushed request is the whole request (every other \
                          parameter is ignored); an unknown, used, expired or other client's \
                          `request_uri` is an error page.",
            security: Security::None,
            body: RequestBody::None,
            query: {
                let mut q = authorize_query();
                q.push((
                    "request_uri",
                    string(
                        "The `request_uri` of `oauth2/pushed_authorize` \
                         (`urn:ietf:params:oauth:request_uri:...`): single use, this client's only",
                    ),
                    false,
                ));
                q
            },
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
                                  repeated or malformed parameter, an unknown, used, expired or \
                                  other client's `request_uri`",
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
                    description: "An error page: malformed form, a form over the size limit \
                                  (16 KiB), unknown or expired request",
                },
                Response::Html {
                    status: 403,
                    description: "An error page: the form and its cookie differ (CSRF check)",
                },
                Response::Html {
                    status: 429,
                    description: "The sign-in step again: every password check is busy \
                                  (`Retry-After`)",
                },
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
                          `credential` gives a SAD (`token_type` `SAD`) for signHash; a code of \
                          a request with `authorization_details` or the plain CSC v2 \
                          parameters (`hashes`, ...; CSC v2 §8.4) gives a `Bearer` \
                          credential token (the SAD v2 `signatures/signHash` and \
                          `credentials/info` take as their Bearer) with the approved \
                          `authorization_details` and the `credentialID` they were granted for. \
                          `client_credentials` is for confidential clients and scope `service`.",
            security: Security::ClientBasicOrNone,
            body: RequestBody::Form {
                schema: "OAuthTokenRequest",
            },
            query: vec![],
            responses: vec![
                Response::Json {
                    status: 200,
                    description: "The token: a service token or SAD (`OAuthTokenResponse`), or \
                                  for `authorization_details` a credential token \
                                  (`OAuthCredentialTokenResponse`)",
                    schema: "OAuthTokenAnswer",
                },
                bad_request(
                    "A missing or invalid parameter or a body over the size limit, 16 KiB \
                     (`invalid_request`), an invalid, expired or reused code or refresh token \
                     (`invalid_grant`), a wrong scope (`invalid_scope`), an unknown client or \
                     wrong secret",
                ),
                BAD_CLIENT,
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
                    "A missing or invalid parameter or a body over the size limit, 16 KiB \
                     (`invalid_request`), a token this client cannot revoke (`Invalid string \
                     parameter token`), an unknown client or wrong secret",
                ),
                BAD_CLIENT,
                SERVER_ERROR,
            ],
        },
    ]
}

/// The parameters of an authorization request (CSC §8.3.2, RFC 6749 §4.1.1, RFC 7636, RFC
/// 9396): the query of `GET oauth2/authorize` (which adds `request_uri`) and the form of
/// `POST oauth2/pushed_authorize`.
pub(crate) fn authorize_query() -> Vec<(&'static str, Value, bool)> {
    let text = |d: &str| string(d);
    vec![
        (
            "response_type",
            json!({ "type": "string", "enum": ["code"],
                    "description": "Required, except beside a `request_uri`" }),
            false,
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
            json!({ "type": "string", "maxLength": 255,
                    "description": "Returned as is; at most 255 bytes of UTF-8" }),
            false,
        ),
        (
            "code_challenge",
            text(
                "PKCE S256 challenge, base64url (43 characters): required of public clients \
                 and of every CSC v2 credential request (`authorization_details`, or the plain \
                 v2 parameters `hashes`, `hashAlgorithmOID`, `signatureQualifier`)",
            ),
            false,
        ),
        (
            "code_challenge_method",
            json!({ "type": "string", "enum": ["S256"] }),
            false,
        ),
        (
            "credentialID",
            text(
                "Scope `credential`: the credential to authorize (CSC v2: or \
                 `signatureQualifier`)",
            ),
            false,
        ),
        (
            "numSignatures",
            json!({ "type": "string", "pattern": "^[\\s\\u0085]*\\+?0*[1-9][0-9]{0,18}[\\s\\u0085]*$",
                    "description": "Scope `credential`: how many signatures (with `hashes`: \
                                    optional, and equal to their number)" }),
            false,
        ),
        (
            "hash",
            text(
                "CSC v1, scope `credential`: base64url digests, comma-separated (required at \
                 SCAL 2); not with the CSC v2 `hashes`, `hashAlgorithmOID`, \
                 `signatureQualifier`",
            ),
            false,
        ),
        (
            "hashes",
            text(
                "CSC v2 (§8.4.2), scope `credential`: the digests to sign, base64url \
                 (standard base64 and padding tolerated), comma-separated, 1 to 64, each of \
                 the length of `hashAlgorithmOID`. A request with `hashes`, \
                 `hashAlgorithmOID` or `signatureQualifier` is the credential request of the \
                 equivalent `authorization_details` (one signature per digest; the token is \
                 `Bearer` and echoes them); it needs PKCE S256 and `hashes`",
            ),
            false,
        ),
        (
            "hashAlgorithmOID",
            text(
                "CSC v2, with `hashes` (required with them): the OID of their digest \
                 algorithm, SHA-256/384/512",
            ),
            false,
        ),
        (
            "signatureQualifier",
            text(
                "CSC v2, scope `credential`, instead of `credentialID`: the signer chooses \
                 one of their credentials on the consent page",
            ),
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
        (
            "authorization_details",
            text(
                "RFC 9396 (CSC v2 §8.4): a JSON array of one object of type `credential` (or \
                 `https://cloudsignatureconsortium.org/2025/credential`) with `credentialID` or \
                 `signatureQualifier`, `documentDigests` [{`hash`, `label`}] (1 to 64), \
                 `hashAlgorithmOID` (SHA-256/384/512), optionally `numSignatures` (the number \
                 of digests) and `locations`; no other member. A credential request: not with \
                 scope `service` nor with `credentialID`, `numSignatures`, `hash`, `hashes`, \
                 `hashAlgorithmOID` or `signatureQualifier`; it needs PKCE S256",
            ),
            false,
        ),
    ]
}

/// Response headers beyond the CSC ones. (operationId, status) → headers object.
pub(crate) fn response_headers(operation_id: &str, status: u16) -> Option<Value> {
    let no_store = json!({ "required": true, "schema": { "type": "string", "const": "no-store" } });
    match (operation_id, status) {
        // RFC 6749 §5.1; RFC 9126 §2.2 (the PAR answer is a token-endpoint-like answer)
        ("oauth2Token", 200) | ("oauth2PushedAuthorize", 201) => Some(json!({
            "Cache-Control": no_store,
            "Pragma": { "required": true, "schema": { "type": "string", "const": "no-cache" } },
        })),
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
    let mut all = v1_links();
    all.extend(crate::v2::links());
    all
}

/// The links between the CSC v1 and OAuth 2.0 operations.
fn v1_links() -> Vec<(&'static str, u16, &'static str, &'static str, Value)> {
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
