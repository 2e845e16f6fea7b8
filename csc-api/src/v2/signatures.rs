//! `signatures/signHash` of CSC v2 (v2 §11.10): v2's names (`hashes`, `hashAlgorithmOID`,
//! `operationMode`) over the same [`sam::Sam::sign_hash`] as v1, and the SAD either in the body
//! or as the Bearer token (a credential-scope access token IS a SAD).

use actix_web::web;
use csc_types::SignHashResponse;
use sam::{CredentialId, SignAlgoRequest};

use super::{CredentialBearer, credential_bearer_async};
use crate::app::AppState;
use crate::auth::Bearer;
use crate::body::Body;
use crate::credentials::credential_id;
use crate::error::ApiError;
use crate::signatures::{sign_algo, sign_hash_response};

/// `signatures/signHash`, on the worker thread as v1's ([`crate::signatures::sign_hash`]), the
/// token first (a bad token is 401 whatever the body):
///
/// * a service token: the body's `SAD` is spent (absent: `Missing (or invalid type) string
///   parameter SAD`);
/// * a credential-scope token (a SAD, [`sam::Sam::caller_of_sad`]) without `SAD` in the body:
///   the token itself is the SAD, spent for its signer (v2 §11.10: "SAD not needed if the
///   access token scope is credential for this credential"); with a `SAD` member, it must be
///   that same token (`Invalid parameter SAD` otherwise). Another credential than the token's
///   is refused by the SAM as for any SAD (`Invalid parameter SAD`, audited).
///
/// `operationMode` `S` (the default) only: `A` is `Invalid parameter operationMode`, as is any
/// other value, since no asynchronous mode is offered (`info.asynchronousOperationMode`
/// false); `validity_period` and `response_uri` belong to it and are refused with `S`
/// (`Invalid parameter validity_period` / `response_uri`). `hashAlgorithmOID` is v1's
/// `hashAlgo`: needed with `1.2.840.113549.1.1.1`, else omitted or equal to the hash
/// `signAlgo` implies.
pub async fn sign_hash(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SignHashResponse>, ApiError> {
    let who = credential_bearer_async(&state, &bearer).await?;
    let service = matches!(who, CredentialBearer::Service(_));
    let r = parse(&body, service)?;
    let (caller, sad) = match who {
        CredentialBearer::Service(auth) => {
            let sad = r.sad.ok_or_else(|| ApiError::missing("string", "SAD"))?;
            (auth.caller_for_async(&state, r.id).await?, sad)
        }
        CredentialBearer::Sad(caller, _) => {
            if r.sad.as_deref().is_some_and(|s| s != bearer.token()) {
                return Err(ApiError::invalid_parameter("SAD"));
            }
            (caller, bearer.token().to_owned())
        }
    };
    let signatures = state
        .sam
        .sign_hash_async(&caller, &r.id, &sad, &r.hashes, &r.algo)
        .await
        .map_err(ApiError::v2)?;
    Ok(sign_hash_response(&signatures))
}

/// A v2 signHash request, read.
struct SignHashRequest {
    id: CredentialId,
    sad: Option<String>,
    hashes: Vec<Vec<u8>>,
    algo: SignAlgoRequest,
}

/// The request's fields, in the order of the spec's error table: the mode (an asynchronous
/// request is refused whatever else it holds), SAD (required with a service token), credentialID,
/// hashes, the algorithms, the asynchronous-only members, clientData.
fn parse(body: &Body, sad_required: bool) -> Result<SignHashRequest, ApiError> {
    match body.opt_string("operationMode")? {
        None | Some("S") => {}
        Some(_) => return Err(ApiError::invalid_parameter("operationMode")),
    }
    let sad = if sad_required {
        Some(body.string("SAD")?.to_owned())
    } else {
        body.opt_string("SAD")
            .map_err(|_| ApiError::missing("string", "SAD"))?
            .map(str::to_owned)
    };
    let id = credential_id(body)?;
    let hashes = body.hashes("hashes")?;
    let algo = sign_algo(body, "hashAlgorithmOID")?;
    for only_asynchronous in ["validity_period", "response_uri"] {
        if body.0.get(only_asynchronous).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid_parameter(only_asynchronous));
        }
    }
    body.check_client_data()?;
    Ok(SignHashRequest {
        id,
        sad,
        hashes,
        algo,
    })
}
