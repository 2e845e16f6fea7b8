//! The CSC API v2.0.0.2 skin (`/csc/v2/...`; CSC v2 §11): v2's wire format over the one core.
//! Its handlers parse and answer v2's names (`hashes` + `hashAlgorithmOID`, `auth` objects,
//! `authData`, ...) and call the same `sam` functions as v1, so no rule, limit or audit record
//! differs by version: a SAD from either version signs on the other, PIN failures count towards
//! one lock, a signature has one audit record shape. `auth/login`, `auth/revoke` and
//! `credentials/sendOTP` are v1's own handlers.
//!
//! What v2 adds and how it is served here:
//!
//! * `info` describes the server in v2's terms ([`info_response`]).
//! * A credential-scope OAuth 2.0 access token may stand in for the SAD: presented as the Bearer
//!   of `signatures/signHash` (without a `SAD` member) or `credentials/info`, it is resolved by
//!   [`sam::Sam::caller_of_sad`] (such a token IS a SAD the SAM issued) and then spent like any
//!   SAD ([`credential_bearer`]).
//! * Every authorization is synchronous: `credentials/authorize` answers 200 with the SAD, never
//!   202 with a handle, so `credentials/authorizeCheck` has no handle to check, and
//!   `signatures/signHash` offers no asynchronous mode (`info.asynchronousOperationMode`
//!   false).
//!
//! Where only the v2 specification's text words an error (no schema confirms it), the answers keep
//! v1's exact strings (`The PIN is invalid`, `PIN locked`, `Hash is not authorized by the
//! SAD.`, the generic malformed-request text): the same refusal reads the same in both
//! versions; only a description naming a parameter v2 renamed says it in v2's words
//! ([`ApiError::v2`]).

mod credentials;
mod signatures;

use actix_web::{HttpRequest, web};
use csc_types::v2::{InfoResponse, SPECS_VERSION, SignAlgorithms, SignatureFormats};
use sam::{Caller, CredentialId, KeySpec, SamError};

use crate::app::AppState;
use crate::auth::{Authenticated, Bearer};
use crate::body::Body;
use crate::error::ApiError;
use crate::{auth, oauth2};

/// The CSC v2 methods this server implements, exactly (v2 §11.1 `methods`).
pub const METHODS: &[&str] = &[
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/authorizeCheck",
    "credentials/getChallenge",
    "credentials/extendTransaction",
    "credentials/sendOTP",
    "signatures/signHash",
    "signatures/timestamp",
];

/// The routes, mounted at `/csc/v2` (the app factory wraps them in the same middleware as v1).
pub fn scope() -> actix_web::Scope {
    web::scope("/csc/v2")
        .route("/info", web::post().to(info))
        .route("/info", web::get().to(info_get))
        .route("/auth/login", web::post().to(auth::login))
        .route("/auth/revoke", web::post().to(auth::revoke))
        .route("/credentials/list", web::post().to(credentials::list))
        .route("/credentials/info", web::post().to(credentials::info))
        .route(
            "/credentials/authorize",
            web::post().to(credentials::authorize),
        )
        .route(
            "/credentials/authorizeCheck",
            web::post().to(credentials::authorize_check),
        )
        .route(
            "/credentials/getChallenge",
            web::post().to(credentials::get_challenge),
        )
        .route(
            "/credentials/extendTransaction",
            web::post().to(credentials::extend_transaction),
        )
        .route(
            "/credentials/sendOTP",
            web::post().to(crate::credentials::send_otp),
        )
        .route(
            "/signatures/signHash",
            web::post().to(signatures::sign_hash),
        )
        // v2 §11.13 is v1 §11.10 unchanged: the same handler and time-stamping authority
        .route(
            "/signatures/timestamp",
            web::post().to(crate::tsa::timestamp),
        )
}

/// `POST /csc/v2/info` (no authentication; an empty body counts as `{}`).
async fn info(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<InfoResponse>, ApiError> {
    // one language is served; the output `lang` tells the client which (v2 §11.1)
    body.opt_string("lang")?;
    Ok(web::Json(info_response(&state, &req)))
}

/// `GET /csc/v2/info`, as v1 serves it too.
async fn info_get(req: HttpRequest, state: web::Data<AppState>) -> web::Json<InfoResponse> {
    web::Json(info_response(&state, &req))
}

/// RSASSA-PSS-params (RFC 8017) with SHA-256, MGF1-SHA-256, salt 32, trailer 1: a parameter set
/// every RSA key of the server accepts with `1.2.840.113549.1.1.10`, given as its
/// `signAlgorithms.algoParams` entry. Others are accepted too (the hash, the salt up to the
/// key's maximum): `signAlgoParams` of each signHash says which.
pub const PSS_SHA256_PARAMS: &str =
    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=";

/// `signAlgorithms`: every signature algorithm some key of the server can use (the union of
/// `key.algo` over the key types it generates), each with its parameters: `null` for the
/// algorithms that take none, an accepted RSASSA-PSS parameter set for PSS.
pub fn sign_algorithms() -> SignAlgorithms {
    let mut algos: Vec<&str> = Vec::new();
    for spec in KeySpec::ALL {
        for algo in sam::algo::key_algos(spec) {
            if !algos.contains(&algo) {
                algos.push(algo);
            }
        }
    }
    SignAlgorithms {
        algo_params: Some(
            algos
                .iter()
                .map(|a| (*a == sam::algo::RSASSA_PSS).then(|| PSS_SHA256_PARAMS.to_owned()))
                .collect(),
        ),
        algos: algos.into_iter().map(str::to_owned).collect(),
    }
}

/// `signature_formats`: the server signs hashes only (`signatures/signHash`; no `signDoc`), so
/// the formats are those a client builds around the raw signature values it returns, as they
/// come: the CMS-based CAdES (`C`) and PAdES (`P`), whose `SignerInfo.signature` takes an RSA
/// PKCS#1 v1.5 or PSS value and an ECDSA `ECDSA-Sig-Value` in DER (what is returned for
/// `1.2.840.10045.4.3.*`). XAdES and JAdES are not claimed: they carry ECDSA as plain `r‖s`,
/// which this server does not return. The envelope properties are those of each format
/// (CSC v2 §11.11); the client, which builds the envelope, picks one.
pub fn signature_formats() -> SignatureFormats {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    SignatureFormats {
        formats: owned(&["C", "P"]),
        envelope_properties: Some(vec![
            owned(&["Detached", "Attached", "Parallel"]),
            owned(&["Certification", "Revision"]),
        ]),
    }
}

/// `conformance_levels`: the baseline B-B level, what a client reaches with a signature value
/// and the signer's certificate chain (`credentials/info`), and B-T, which adds a signature
/// time-stamp from this server's own authority (`signatures/timestamp`, or RFC 3161 at `/tsa`).
/// The LT/LTA levels need revocation data this server does not publish, so they are not claimed.
pub const CONFORMANCE_LEVELS: &[&str] = &["Ades-B-B", "Ades-B-T"];

/// The v2 `info` answer: v1's members plus v2's. `oauth2` is v1's base URI (the `oauth2/*`
/// paths hang off the server's root) and `oauth2Issuer` the issuer of the RFC 8414 metadata at
/// `/.well-known/oauth-authorization-server`: the same public base URL without a trailing slash.
pub fn info_response(state: &AppState, req: &HttpRequest) -> InfoResponse {
    let info = &state.info;
    let base = oauth2::public_base(state, req);
    InfoResponse {
        specs: SPECS_VERSION.into(),
        name: info.name.clone(),
        logo: info.logo.clone(),
        region: info.region.clone(),
        lang: info.lang.clone(),
        description: info.description.clone(),
        // as v1: user-specific basic (auth/login) and oauth2code; non-user-specific
        // oauth2client
        auth_type: vec!["basic".into(), "oauth2code".into(), "oauth2client".into()],
        oauth2: Some(format!("{base}/")),
        oauth2_issuer: Some(base),
        asynchronous_operation_mode: false,
        methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
        // no signDoc, so no validationInfo to return
        validation_info: false,
        sign_algorithms: sign_algorithms(),
        signature_formats: signature_formats(),
        conformance_levels: CONFORMANCE_LEVELS.iter().map(|l| (*l).to_owned()).collect(),
    }
}

/// Who a Bearer token speaks for where v2 accepts a credential-scope token (`signHash`,
/// `credentials/info`).
pub(crate) enum CredentialBearer {
    /// A service access token (`auth/login`, OAuth 2.0 scope `service`, `client_credentials`).
    Service(Authenticated),
    /// A credential-scope token, i.e. a SAD: its signer, for the credential it activates only.
    Sad(Caller, CredentialId),
}

/// Resolves the Bearer of a v2 method that accepts a credential-scope token: a service token
/// first ([`sam::Sam::principal_of`]); a token no service token matches is tried as a SAD
/// ([`sam::Sam::caller_of_sad`]); neither is 401 `invalid_token`. An expired or revoked service
/// token is 401 `expired_token`, as in v1. Blocking.
pub(crate) fn credential_bearer(
    state: &AppState,
    bearer: &Bearer,
) -> Result<CredentialBearer, ApiError> {
    match state.sam.principal_of(bearer.token()) {
        Ok(principal) => Ok(CredentialBearer::Service(Authenticated(principal))),
        Err(SamError::InvalidToken) => {
            let (caller, credential) = state.sam.caller_of_sad(bearer.token())?;
            Ok(CredentialBearer::Sad(caller, credential))
        }
        Err(e) => Err(e.into()),
    }
}

/// [`credential_bearer`] from an async handler: a service token from the SAM's hot cache on
/// this thread; only a token tried as a SAD (a row read) goes to the blocking pool.
pub(crate) async fn credential_bearer_async(
    state: &web::Data<AppState>,
    bearer: &Bearer,
) -> Result<CredentialBearer, ApiError> {
    match state.sam.principal_of(bearer.token()) {
        Ok(principal) => Ok(CredentialBearer::Service(Authenticated(principal))),
        Err(SamError::InvalidToken) => {
            let (state, token) = (state.clone(), bearer.token().to_owned());
            let (caller, credential) =
                crate::error::blocking(move || Ok(state.sam.caller_of_sad(&token)?)).await?;
            Ok(CredentialBearer::Sad(caller, credential))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_algorithms_are_the_union_of_the_keys_algorithms_with_aligned_parameters() {
        let a = sign_algorithms();
        let params = a.algo_params.unwrap_or_default();
        assert_eq!(params.len(), a.algos.len());
        for spec in KeySpec::ALL {
            for algo in sam::algo::key_algos(spec) {
                assert!(a.algos.iter().any(|x| x == algo), "{algo}");
            }
        }
        for (algo, p) in a.algos.iter().zip(&params) {
            assert_eq!(
                p.is_some(),
                algo == sam::algo::RSASSA_PSS,
                "{algo}: parameters only for PSS"
            );
        }
        // the PSS parameter set offered is one the SAM accepts for every RSA key
        let der = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            PSS_SHA256_PARAMS,
        )
        .unwrap_or_default();
        for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
            assert!(
                sam::algo::resolve_mechanism(spec, sam::algo::RSASSA_PSS, None, Some(&der)).is_ok()
            );
        }
    }

    #[test]
    fn formats_and_envelope_properties_are_aligned() {
        let f = signature_formats();
        assert_eq!(
            f.envelope_properties.map(|e| e.len()),
            Some(f.formats.len())
        );
    }
}
