//! The time-stamping authority: `signatures/timestamp` of CSC v1 (§11.10) and v2 (§11.13), the
//! same method at both paths, and the plain RFC 3161 endpoint `POST /tsa`.

use serde_json::{Value, json};

use crate::operation::{ERROR, Operation, RequestBody, Response, SERVER_ERROR, Security, csc};
use crate::schema::{base64, client_data, nullable, request, response};

pub(crate) fn operations() -> Vec<Operation> {
    vec![
        timestamp(
            "/csc/v1/signatures/timestamp",
            "signaturesTimestamp",
            "An RFC 3161 time-stamp token over a hash (CSC §11.10)",
        ),
        timestamp(
            "/csc/v2/signatures/timestamp",
            "v2SignaturesTimestamp",
            "An RFC 3161 time-stamp token over a hash (CSC v2 §11.13)",
        ),
        tsa(),
    ]
}

/// `signatures/timestamp`, identical in v1 and v2.
fn timestamp(path: &'static str, operation_id: &'static str, summary: &'static str) -> Operation {
    csc(
        path,
        operation_id,
        "signatures",
        summary,
        "The server's time-stamping authority (its key in the HSM) stamps `hash` \
         (`MessageImprint`), echoing `nonce`. The Bearer is a service access token (`auth/login`, \
         or OAuth 2.0 scope `service` and `client_credentials`); the credential token of an \
         `authorization_details` grant (a SAD) is not one (401 `invalid_token`). The token is \
         checked before the body. Refusals (400 `invalid_request`), in the order they are \
         checked: `Missing (or invalid type) string parameter hash`, `Empty hash parameter`, \
         `Invalid Base64 hash string parameter`, `Missing (or invalid type) string parameter \
         hashAlgo`, `Invalid parameter nonce` (not a string), `Invalid parameter clientData`, \
         `Invalid parameter hashAlgo` (not SHA-256, SHA-384 or SHA-512), `Invalid digest value \
         length`, `Invalid parameter nonce` (not hex, or over 64 octets).",
        "TimestampRequest",
        Response::Json {
            status: 200,
            description: "The time-stamp token",
            schema: "TimestampResponse",
        },
    )
}

/// `POST /tsa`: RFC 3161 over HTTP (§3.4).
fn tsa() -> Operation {
    Operation {
        method: "post",
        path: "/tsa",
        operation_id: "tsa",
        tag: "tsa",
        summary: "RFC 3161 time-stamping over HTTP",
        description: "The same authority as `signatures/timestamp`, for any RFC 3161 client (a \
                      PDF tool's timestamper); no authentication. A DER `TimeStampReq` of at \
                      most 16 KiB in, a DER `TimeStampResp` out. A request the authority \
                      refuses is still a 200 with a rejection status and its `PKIFailureInfo` \
                      (RFC 3161 §2.4.2): `badDataFormat` (not a request, an empty body, or a \
                      digest of the wrong length), `badAlg` (not SHA-2, or parameters other \
                      than NULL), `unacceptedPolicy` (a `reqPolicy` other than the server's), \
                      `unacceptedExtension` (any request extension), `systemFailure` (the \
                      server could not issue). Only the transport is refused with an HTTP \
                      error (the CSC error body): the media type (415) and the size (413).",
        security: Security::None,
        body: RequestBody::Binary {
            media_type: "application/timestamp-query",
        },
        query: vec![],
        responses: vec![
            Response::Binary {
                status: 200,
                description: "A `TimeStampResp`: granted with the token, or a rejection",
                media_type: "application/timestamp-reply",
            },
            Response::Json {
                status: 413,
                description: "`A time-stamp query is at most 16384 bytes` (`invalid_request`)",
                schema: ERROR,
            },
            Response::Json {
                status: 415,
                description: "`The request body must be application/timestamp-query` \
                              (`invalid_request`): the `Content-Type` is missing or another \
                              media type (parameters such as a charset are ignored, the type \
                              is compared without regard to case)",
                schema: ERROR,
            },
            SERVER_ERROR,
        ],
    }
}

pub(crate) fn schemas() -> Value {
    json!({
        "TimestampRequest": request(&["hash", "hashAlgo"], json!({
            "hash": base64("The digest to stamp (`MessageImprint.hashedMessage`)"),
            "hashAlgo": json!({
                "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)+$",
                "description": "Its digest OID (`MessageImprint.hashAlgorithm`): SHA-256, \
                                SHA-384 or SHA-512, `hash` being of its length",
            }),
            "nonce": nullable(json!({
                // hex digits; surrounding whitespace is trimmed (`str::trim`: U+0085 too)
                "type": "string", "pattern": "^[\\s\\u0085]*[0-9a-fA-F]+[\\s\\u0085]*$",
                "description": "A large random number: a non-negative integer in hex (odd \
                                length allowed), at most 64 octets without its leading \
                                zeros; echoed in the token",
            })),
            "clientData": client_data(),
        }), "`signatures/timestamp` input"),
        "TimestampResponse": response(&["timestamp"], json!({
            "timestamp": base64(
                "The DER `TimeStampToken` (a CMS `ContentInfo`, RFC 3161 / RFC 5816), the TSA \
                 certificate included; not the whole `TimeStampResp`",
            ),
        }), "`signatures/timestamp` output"),
    })
}
