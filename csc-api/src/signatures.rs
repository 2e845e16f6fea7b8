//! `signatures/signHash` (spec §11.9): the request is checked here for form, the SAM checks the
//! SAD and signs.

use actix_web::web;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use csc_types::SignHashResponse;
use sam::CredentialId;
use sam::SignAlgoRequest;

use crate::app::AppState;
use crate::auth::Bearer;
use crate::body::Body;
use crate::credentials::credential_id;
use crate::error::ApiError;

/// `signatures/signHash`. The token first (so a bad token is 401 whatever the body), then the
/// body, then [`sam::Sam::sign_hash_async`], all on the worker thread: the token and the
/// credential come from the SAM's hot cache, and the SAD's spend is awaited, not blocked on
/// (README "Benchmark"). Only a client token's caller (a delegation read) goes to the blocking
/// pool.
pub async fn sign_hash(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SignHashResponse>, ApiError> {
    let auth = bearer.authenticate(&state)?;
    let r = parse(&body)?;
    let caller = auth.caller_for_async(&state, r.id).await?;
    let signatures = state
        .sam
        .sign_hash_async(&caller, &r.id, &r.sad, &r.hashes, &r.algo)
        .await?;
    Ok(sign_hash_response(&signatures))
}

/// A signHash request, read.
struct SignHashRequest {
    id: CredentialId,
    sad: String,
    hashes: Vec<Vec<u8>>,
    algo: SignAlgoRequest,
}

/// The request's fields, checked in the order of the spec's error table: SAD, credentialID,
/// hash, algorithms, clientData.
fn parse(body: &Body) -> Result<SignHashRequest, ApiError> {
    let sad = body.string("SAD")?.to_owned();
    let id = credential_id(body)?;
    let hashes = body.hashes("hash")?;
    let algo = sign_algo(body, "hashAlgo")?;
    body.check_client_data()?;
    Ok(SignHashRequest {
        id,
        sad,
        hashes,
        algo,
    })
}

/// The algorithms of a signHash request (both versions), in the order of the spec's error
/// table: `signAlgo` (required), the hash algorithm (`hash_algo`: v1's `hashAlgo`, v2's
/// `hashAlgorithmOID`), `signAlgoParams` (base64 DER, else `Invalid parameter
/// signAlgoParams`). A present optional member that is not a string is `Missing (or invalid
/// type) string parameter NAME`.
pub(crate) fn sign_algo(body: &Body, hash_algo: &str) -> Result<SignAlgoRequest, ApiError> {
    let sign_algo = body.string("signAlgo")?.to_owned();
    let hash_algo = body
        .opt_string(hash_algo)
        .map_err(|_| ApiError::missing("string", hash_algo))?
        .map(str::to_owned);
    let sign_algo_params = match body
        .opt_string("signAlgoParams")
        .map_err(|_| ApiError::missing("string", "signAlgoParams"))?
    {
        None => None,
        Some(p) => Some(
            STANDARD
                .decode(p)
                .map_err(|_| ApiError::invalid_parameter("signAlgoParams"))?,
        ),
    };
    Ok(SignAlgoRequest {
        sign_algo,
        hash_algo,
        sign_algo_params,
    })
}

/// The answer of signHash (both versions): the signature values, base64.
pub(crate) fn sign_hash_response(signatures: &[Vec<u8>]) -> web::Json<SignHashResponse> {
    web::Json(SignHashResponse {
        signatures: signatures.iter().map(|s| STANDARD.encode(s)).collect(),
    })
}
