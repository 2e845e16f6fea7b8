//! CSC API v2.0.0.2 at `/csc/v2` (CSC v2 §11): one function per operation, then the v2
//! schemas. Shapes shared with v1 (the error body, `KeyInfo`, `CertInfo`, `SadResponse`, the
//! login and revoke bodies, `SignHashResponse`) are the v1 schemas; v2-only ones are named
//! `V2...`. `signatures/timestamp` of both versions is in `tsa.rs`.

use serde_json::{Value, json};

use crate::CSC_SPECS_V2;
use crate::operation::{
    ERROR, Operation, RequestBody, Response, SERVER_ERROR, Security, bad_request, csc,
    v1_and_oauth2,
};
use crate::schema::{
    base64, client_data, hashes, info_properties, nullable, positive_integer, request, response,
    string,
};

/// Every v2 operation, in the order of the spec's §11.
pub(crate) fn operations() -> Vec<Operation> {
    let mut ops = vec![info(), info_get()];
    ops.extend(from_v1("authLogin", "/csc/v2/auth/login", "v2AuthLogin"));
    ops.extend(from_v1("authRevoke", "/csc/v2/auth/revoke", "v2AuthRevoke"));
    ops.extend([
        credentials_list(),
        credentials_info(),
        credentials_authorize(),
        credentials_authorize_check(),
        credentials_get_challenge(),
        credentials_extend_transaction(),
    ]);
    ops.extend(from_v1(
        "credentialsSendOTP",
        "/csc/v2/credentials/sendOTP",
        "v2CredentialsSendOTP",
    ));
    ops.push(signatures_sign_hash());
    ops
}

/// A v1 operation served unchanged under `/csc/v2` (spec v2 §11.2-11.3: `auth/login` and
/// `auth/revoke` are unchanged; `credentials/sendOTP` is kept for the clients that still call
/// it).
fn from_v1(v1_id: &str, path: &'static str, operation_id: &'static str) -> Option<Operation> {
    let mut op = v1_and_oauth2()
        .into_iter()
        .find(|o| o.operation_id == v1_id)?;
    op.path = path;
    op.operation_id = operation_id;
    Some(op)
}

const INFO_OK: Response = Response::Json {
    status: 200,
    description: "What the service is, which v2 methods it implements and how it signs",
    schema: "V2InfoResponse",
};

fn info() -> Operation {
    Operation {
        method: "post",
        path: "/csc/v2/info",
        operation_id: "v2Info",
        tag: "info",
        summary: "Service information (CSC v2 §11.1)",
        description: "No authentication. An empty body counts as `{}`. `methods` lists exactly \
                      the v2 methods served under `/csc/v2`.",
        security: Security::None,
        body: RequestBody::Json {
            schema: "InfoRequest",
        },
        query: vec![],
        responses: vec![
            INFO_OK,
            bad_request("The body is not a JSON object, or `lang` is not a string"),
            SERVER_ERROR,
        ],
    }
}

fn info_get() -> Operation {
    Operation {
        method: "get",
        path: "/csc/v2/info",
        operation_id: "v2InfoGet",
        tag: "info",
        summary: "Service information, as GET (an extension some clients use)",
        description: "The same answer as `POST /csc/v2/info` with no input.",
        security: Security::None,
        body: RequestBody::None,
        query: vec![],
        responses: vec![INFO_OK],
    }
}

fn credentials_list() -> Operation {
    csc(
        "/csc/v2/credentials/list",
        "v2CredentialsList",
        "credentials",
        "The caller's credentials, with their details on request (CSC v2 §11.4)",
        "With a user's token `userID` must be absent; a client token names the user. \
         `credentialInfo: true` adds `credentialInfos` (each the `credentials/info` answer plus \
         `credentialID`); `onlyValid: true` keeps the credentials usable for signing now. \
         `maxResults` and `pageToken` (v1) are accepted and ignored.",
        "V2CredentialsListRequest",
        Response::Json {
            status: 200,
            description: "The credentials",
            schema: "V2CredentialsListResponse",
        },
    )
}

fn credentials_info() -> Operation {
    csc(
        "/csc/v2/credentials/info",
        "v2CredentialsInfo",
        "credentials",
        "Key, certificate and authentication objects of one credential (CSC v2 §11.5)",
        "A credential that is unknown or not the caller's is `Invalid parameter credentialID`. \
         The factors are authentication objects (`auth`), not v1's `authMode`/`PIN`/`OTP`. \
         The Bearer may also be the credential token of an `authorization_details` grant \
         (`oauth2/token`), for its own credential only (CSC v2 §8.4).",
        "CredentialsInfoRequest",
        Response::Json {
            status: 200,
            description: "The credential",
            schema: "V2CredentialsInfoResponse",
        },
    )
}

fn credentials_authorize() -> Operation {
    csc(
        "/csc/v2/credentials/authorize",
        "v2CredentialsAuthorize",
        "credentials",
        "Authorize a credential for numSignatures signatures: a SAD (CSC v2 §11.6)",
        "The factors come as `authData` (the `id`s of `credentials/info` `auth.objects`) or as \
         the flat `PIN`/`OTP` of v1, not both. `hashes` need `hashAlgorithmOID`; SCAL 2 \
         credentials need exactly `numSignatures` hashes. Authorization is synchronous: never \
         202.",
        "V2AuthorizeRequest",
        Response::Json {
            status: 200,
            description: "Signature activation data",
            schema: "SadResponse",
        },
    )
}

fn credentials_authorize_check() -> Operation {
    let mut op = csc(
        "/csc/v2/credentials/authorizeCheck",
        "v2CredentialsAuthorizeCheck",
        "credentials",
        "The outcome of an asynchronous authorization (CSC v2 §11.7)",
        "This server authorizes synchronously (`credentials/authorize` never answers 202), so it \
         never issues a `handle`: every handle is `Invalid parameter handle`.",
        "V2AuthorizeCheckRequest",
        SERVER_ERROR,
    );
    op.responses = vec![
        Response::Json {
            status: 200,
            description: "The spec's answer once an asynchronous authorization is done; never \
                          sent by this server, which issues no handle",
            schema: "SadResponse",
        },
        Response::Json {
            status: 400,
            description: "`Invalid parameter handle` (no handle is ever issued), `Missing (or \
                          invalid type) string parameter handle`, a missing or malformed \
                          `Authorization: Bearer` header or a body that is not a JSON object",
            schema: ERROR,
        },
        crate::operation::BAD_TOKEN,
        SERVER_ERROR,
    ];
    op
}

fn credentials_get_challenge() -> Operation {
    csc(
        "/csc/v2/credentials/getChallenge",
        "v2CredentialsGetChallenge",
        "credentials",
        "Send the challenge of an authentication object out of band (CSC v2 §11.8)",
        "For the credential's online OTP object the code goes to the owner through the \
         configured notifier, never in the answer (204). Any other object is `Invalid parameter \
         authObjectID`.",
        "V2GetChallengeRequest",
        Response::Empty {
            status: 204,
            description: "The challenge is on its way, out of band",
        },
    )
}

fn credentials_extend_transaction() -> Operation {
    csc(
        "/csc/v2/credentials/extendTransaction",
        "v2CredentialsExtendTransaction",
        "credentials",
        "A new SAD for the remaining signatures of a transaction (CSC v2 §11.9)",
        "As v1: the new SAD expires with the transaction at the latest. `hashes` need \
         `hashAlgorithmOID`.",
        "V2ExtendTransactionRequest",
        Response::Json {
            status: 200,
            description: "The new signature activation data",
            schema: "SadResponse",
        },
    )
}

fn signatures_sign_hash() -> Operation {
    csc(
        "/csc/v2/signatures/signHash",
        "v2SignaturesSignHash",
        "signatures",
        "Sign hashes with a credential (CSC v2 §11.10)",
        "Under the `SAD` of the body, or, without `SAD`, under the Bearer token when it is a \
         credential token of the OAuth 2.0 flow (itself a SAD). Synchronous only: \
         `operationMode` `A` is `Invalid parameter operationMode`. Signature values in the \
         order of `hashes`: RSA raw, ECDSA DER `ECDSA-Sig-Value`.",
        "V2SignHashRequest",
        Response::Json {
            status: 200,
            description: "Base64 signature values",
            schema: "SignHashResponse",
        },
    )
}

/// OpenAPI links of v2, as [`crate::links`].
pub(crate) fn links() -> Vec<(&'static str, u16, &'static str, &'static str, Value)> {
    let credential = json!({ "credentialID": "$response.body#/credentialIDs/0" });
    let sad = json!({
        "credentialID": "$request.body#/credentialID",
        "SAD": "$response.body#/SAD",
    });
    vec![
        (
            "v2AuthLogin",
            200,
            "RevokeTheAccessToken",
            "v2AuthRevoke",
            json!({ "token": "$response.body#/access_token" }),
        ),
        (
            "v2CredentialsList",
            200,
            "DescribeTheFirstCredential",
            "v2CredentialsInfo",
            credential.clone(),
        ),
        (
            "v2CredentialsList",
            200,
            "AuthorizeTheFirstCredential",
            "v2CredentialsAuthorize",
            credential,
        ),
        (
            "v2CredentialsAuthorize",
            200,
            "SignUnderTheSad",
            "v2SignaturesSignHash",
            sad.clone(),
        ),
        (
            "v2CredentialsAuthorize",
            200,
            "ExtendTheSad",
            "v2CredentialsExtendTransaction",
            sad.clone(),
        ),
        (
            "v2CredentialsExtendTransaction",
            200,
            "SignUnderTheNewSad",
            "v2SignaturesSignHash",
            sad,
        ),
    ]
}

/// A signature algorithm or digest OID.
fn oid(description: &str) -> Value {
    json!({ "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)+$", "description": description })
}

/// The fields of a `credentials/info` answer (also each `credentialInfos` item of
/// `credentials/list`, with `credentialID`).
fn credential_info_properties() -> serde_json::Map<String, Value> {
    let properties = json!({
        "description": string("The credential's description"),
        "key": { "$ref": "#/components/schemas/KeyInfo" },
        "cert": { "$ref": "#/components/schemas/CertInfo" },
        "auth": { "$ref": "#/components/schemas/V2AuthInfo" },
        "SCAL": { "type": "string", "enum": ["1", "2"] },
        "multisign": { "type": "integer", "minimum": 1 },
        "lang": string("The language of the answer"),
    });
    match properties {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

const CREDENTIAL_INFO_REQUIRED: &[&str] = &["key", "cert", "auth", "SCAL", "multisign"];

/// The v2 component schemas.
pub(crate) fn schemas() -> Value {
    let mut listed = credential_info_properties();
    listed.insert("credentialID".into(), string("The credential"));
    let mut listed_required = vec!["credentialID"];
    listed_required.extend_from_slice(CREDENTIAL_INFO_REQUIRED);
    let certificates = nullable(json!({
        "type": "string", "enum": ["none", "single", "chain"],
        "description": "Which certificates to return (default `single`)",
    }));
    let hash_algorithm = nullable(oid("The digest OID of `hashes` (required with `hashes`)"));
    json!({
        "V2InfoResponse": response(
            &["specs", "name", "logo", "region", "lang", "description", "authType",
              "asynchronousOperationMode", "methods", "validationInfo", "signAlgorithms",
              "signature_formats", "conformance_levels"],
            info_properties(CSC_SPECS_V2, json!({
                "oauth2Issuer": string(
                    "The authorization server's issuer (RFC 8414 metadata at \
                     `/.well-known/oauth-authorization-server`)"
                ),
                "asynchronousOperationMode": {
                    "type": "boolean", "const": false,
                    "description": "Every authorization and signature is synchronous",
                },
                "validationInfo": {
                    "type": "boolean", "const": false,
                    "description": "No `signDoc`, so no validation information",
                },
                "signAlgorithms": { "$ref": "#/components/schemas/V2SignAlgorithms" },
                "signature_formats": { "$ref": "#/components/schemas/V2SignatureFormats" },
                "conformance_levels": {
                    "type": "array",
                    "items": string("e.g. `Ades-B-B`"),
                },
            })),
            "v2 `info` output",
        ),
        "V2SignAlgorithms": response(&["algos"], json!({
            "algos": { "type": "array", "items": oid("A signature algorithm OID") },
            "algoParams": {
                "type": "array",
                "items": { "type": ["string", "null"], "pattern": crate::schema::BASE64,
                    "description":
                    "Base64 DER parameters of the algorithm at the same index (an accepted \
                     RSASSA-PSS parameter set), or null" },
            },
        }), "v2 `info` signAlgorithms"),
        "V2SignatureFormats": response(&["formats"], json!({
            "formats": {
                "type": "array",
                "items": { "type": "string", "enum": ["C", "P"] },
                "description": "CAdES and PAdES: the formats built around the signature values \
                                signHash returns as they come (ECDSA in DER); not XAdES or JAdES \
                                (ECDSA as plain r||s)",
            },
            "envelope_properties": {
                "type": "array",
                "items": { "type": "array", "items": { "type": "string" } },
                "description": "Per format, at the same index",
            },
        }), "v2 `info` signature_formats"),
        "V2CredentialsListRequest": request(&[], json!({
            "userID": nullable(string(
                "Only with a client token (`client_credentials`): whose credentials; with a \
                 user's token it must be absent (`userID parameter MUST be null`)",
            )),
            "credentialInfo": nullable(json!({ "type": "boolean", "description": "Add `credentialInfos`" })),
            "certificates": certificates.clone(),
            "certInfo": nullable(json!({ "type": "boolean" })),
            "authInfo": nullable(json!({ "type": "boolean" })),
            "onlyValid": nullable(json!({ "type": "boolean", "description": "Only credentials usable for signing now" })),
            "lang": nullable(string("Preferred language (RFC 5646)")),
            "clientData": client_data(),
        }), "v2 `credentials/list` input. v2.0.0.x has no paging: v1's `maxResults` and \
             `pageToken` are ignored, as any other member this server does not read"),
        "V2CredentialsListResponse": response(&["credentialIDs"], json!({
            "credentialIDs": { "type": "array", "items": { "type": "string" } },
            "credentialInfos": {
                "type": "array",
                "items": { "$ref": "#/components/schemas/V2CredentialInfo" },
                "description": "With `credentialInfo: true`",
            },
            "onlyValid": {
                "type": "boolean", "const": true,
                "description": "Present when the `onlyValid` filter was asked for and applied",
            },
        }), "v2 `credentials/list` output"),
        "V2CredentialInfo": response(&listed_required, Value::Object(listed),
            "One credential of v2 `credentials/list`: its ID and its `credentials/info`"),
        "V2CredentialsInfoResponse": response(
            CREDENTIAL_INFO_REQUIRED,
            Value::Object(credential_info_properties()),
            "v2 `credentials/info` output",
        ),
        "V2AuthInfo": response(&["mode"], json!({
            "mode": { "type": "string", "enum": ["explicit", "oauth2code"] },
            "expression": string("explicit: how the objects combine, e.g. `PIN AND OTP`"),
            "objects": {
                "type": "array",
                "items": { "$ref": "#/components/schemas/V2AuthObject" },
                "description": "explicit: the authentication objects",
            },
        }), "v2 `credentials/info` auth"),
        "V2AuthObject": response(&["type", "id"], json!({
            "type": {
                "type": "string", "enum": ["Password", "ChallengeResponse"],
                "description": "`Password`: the PIN (`format` `A`) or an offline TOTP (`format` \
                                `N`, `generator` `totp`); `ChallengeResponse`: the online OTP, \
                                sent out of band by `getChallenge`, answered in band in \
                                `authData`. The OOB types are not used: this server never \
                                collects a factor out of band itself",
            },
            "id": {
                "type": "string", "enum": ["PIN", "OTP"],
                "description": "What `authData` and `getChallenge` name it by",
            },
            "label": string("UI label"),
            "description": string("UI description"),
            "format": { "type": "string", "enum": ["A", "N"] },
            "generator": string("A client-side generator, e.g. `totp`"),
        }), "A v2 authentication object"),
        "V2AuthorizeRequest": request(&["credentialID", "numSignatures"], json!({
            "credentialID": string("The credential"),
            "numSignatures": positive_integer("Signatures to authorize, at most `multisign`"),
            "hashes": nullable(hashes(
                "Digests bound to the SAD (at SCAL 2 required: exactly `numSignatures` of them)"
            )),
            "hashAlgorithmOID": hash_algorithm.clone(),
            "authData": nullable(json!({
                "type": "array",
                "items": { "$ref": "#/components/schemas/V2AuthData" },
                "description": "The values of the credential's authentication objects",
            })),
            "PIN": nullable(string("The credential's PIN (v1 style; not with `authData`)")),
            "OTP": nullable(string("A one-time password (v1 style; not with `authData`)")),
            "description": nullable(string("Shown to the user")),
            "clientData": client_data(),
        }), "v2 `credentials/authorize` input"),
        "V2AuthData": request(&["id"], json!({
            "id": {
                "type": "string", "enum": ["PIN", "OTP"],
                "description": "An authentication object's `id` (the credential's own only: \
                                another is `Invalid parameter authData`)",
            },
            "value": nullable(string("Its value (absent for an out-of-band object)")),
        }), "One `authData` item"),
        "V2AuthorizeCheckRequest": request(&["handle"], json!({
            "handle": string("The `handle` of a 202 `credentials/authorize` (never issued here)"),
            "clientData": client_data(),
        }), "v2 `credentials/authorizeCheck` input"),
        "V2GetChallengeRequest": request(&["credentialID", "authObjectID"], json!({
            "credentialID": string("The credential"),
            "authObjectID": string("The `id` of its challenge-response object"),
            "clientData": client_data(),
        }), "v2 `credentials/getChallenge` input"),
        "V2ExtendTransactionRequest": request(&["credentialID", "SAD"], json!({
            "credentialID": string("The credential"),
            "hashes": nullable(hashes(
                "SCAL 1: further digests to bind; SCAL 2 (required): digests still bound to the \
                 SAD, renewed"
            )),
            "hashAlgorithmOID": hash_algorithm.clone(),
            "SAD": string("The current SAD"),
            "clientData": client_data(),
        }), "v2 `credentials/extendTransaction` input"),
        "V2SignHashRequest": request(&["credentialID", "hashes", "signAlgo"], json!({
            "credentialID": string("The credential"),
            "SAD": nullable(string(
                "From authorize or extendTransaction; absent when the Bearer token is the \
                 credential token (a SAD) of the OAuth 2.0 flow"
            )),
            "hashes": hashes("The digests to sign"),
            "hashAlgorithmOID": nullable(oid("Digest OID, when `signAlgo` does not imply it")),
            "signAlgo": string("A signature algorithm OID of `key.algo`"),
            "signAlgoParams": nullable(base64("DER algorithm parameters (RSASSA-PSS)")),
            "operationMode": nullable(json!({
                "type": "string", "enum": ["S"],
                "description": "`S` (the default) only: `A` is `Invalid parameter \
                                operationMode` (no asynchronous mode)",
            })),
            "validity_period": {
                "type": "null",
                "description": "Only with `operationMode` `A`, which is not served: a value is \
                                `Invalid parameter validity_period`",
            },
            "response_uri": {
                "type": "null",
                "description": "Only with `operationMode` `A`, which is not served: a value is \
                                `Invalid parameter response_uri`",
            },
            "clientData": client_data(),
        }), "v2 `signatures/signHash` input"),
    })
}
