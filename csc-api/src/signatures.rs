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
use crate::error::{ApiError, blocking};

/// `signatures/signHash`. The token, the body and the signing are handled in ONE blocking
/// call, the token first (so a bad token is 401 whatever the body).
pub async fn sign_hash(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SignHashResponse>, ApiError> {
    let signatures = blocking(move || {
        let auth = bearer.authenticate(&state)?;
        let r = parse(&body)?;
        let caller = auth.caller_for(&state, &r.id)?;
        Ok(state
            .sam
            .sign_hash(&caller, &r.id, &r.sad, &r.hashes, &r.algo)?)
    })
    .await?;
    Ok(web::Json(SignHashResponse {
        signatures: signatures.iter().map(|s| STANDARD.encode(s)).collect(),
    }))
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
    let id: CredentialId = body
        .string("credentialID")?
        .parse()
        .map_err(|_| ApiError::invalid_parameter("credentialID"))?;
    let hashes = body.hashes("hash")?;
    let sign_algo = body.string("signAlgo")?.to_owned();
    let hash_algo = body
        .opt_string("hashAlgo")
        .map_err(|_| ApiError::missing("string", "hashAlgo"))?
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
    body.check_client_data()?;
    Ok(SignHashRequest {
        id,
        sad,
        hashes,
        algo: SignAlgoRequest {
            sign_algo,
            hash_algo,
            sign_algo_params,
        },
    })
}
