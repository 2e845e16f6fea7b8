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
         (`MessageImprint`), echoing `nonce`. Refusals: `Missing (or invalid type) string \
         parameter hash`, `Empty hash parameter`, `Invalid digest value length`, `Invalid \
         Base64 hash string parameter`, `Invalid parameter hashAlgo`, `Invalid parameter nonce`.",
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
                      PDF tool's timestamper). A DER `TimeStampReq` in, a DER `TimeStampResp` \
                      out; a request the authority refuses (malformed, unsupported digest, \
                      policy not served) is still a 200 with a rejection status and its \
                      `PKIFailureInfo`, as RFC 3161 §2.4.2 says.",
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
                status: 400,
                description: "The body is not a time-stamp query at all (empty or over the \
                              size limit)",
                schema: ERROR,
            },
            Response::Json {
                status: 415,
                description: "The `Content-Type` is not `application/timestamp-query`",
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
                "description": "Its digest OID (`MessageImprint.hashAlgorithm`)",
            }),
            "nonce": nullable(json!({
                "type": "string", "pattern": "^[0-9a-fA-F]+$",
                "description": "A large random number, hex; echoed in the token",
            })),
            "clientData": client_data(),
        }), "`signatures/timestamp` input"),
        "TimestampResponse": response(&["timestamp"], json!({
            "timestamp": base64("The DER `TimeStampToken` (a CMS `ContentInfo`, RFC 3161 / RFC 5816)"),
        }), "`signatures/timestamp` output"),
    })
}
