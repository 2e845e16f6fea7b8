//! `credentials/*` of CSC v2 (v2 §11.4-11.9): list, info, authorize, authorizeCheck,
//! getChallenge and extendTransaction, on the same SAM functions as v1.
//!
//! A credential's factors are v2 *authentication objects* (v2 §8.3):
//!
//! * the PIN: `{"type":"Password","id":"PIN","format":"A"}`;
//! * an offline TOTP: `{"type":"Password","id":"OTP","format":"N","generator":"totp"}`;
//! * an online OTP: `{"type":"ChallengeResponse","id":"OTP","format":"N"}`. Why
//!   `ChallengeResponse` rather than `ChallengeResponseOOB` or `PasswordOOB`: the signer gets
//!   the code out of band (`credentials/getChallenge` with `authObjectID` `OTP` sends it and
//!   answers 204, v2 §11.8) but the signature application sends the code back IN band, in
//!   `authData` as `{"id":"OTP","value":"123456"}`. That is v2 §8.3.1.4 "ChallengeResponse,
//!   in-band response" (whose getChallenge may send the challenge out of band); both OOB types
//!   send an empty object (`{"id":...}`) because the RSSP itself acquires the response out of
//!   band, which this server never does.
//!
//! `expression` joins the objects with `AND` (every factor of a credential is required).
//! `auth.mode` is the credential's: `explicit` (an `implicit` credential too: v2 folds implicit
//! into explicit with the objects it has) or `oauth2code`, which has no expression or objects.

use actix_web::{HttpResponse, web};
use csc_types::SadResponse;
use csc_types::v2::{AuthInfo, AuthObject, CredentialInfo, CredentialsListResponse};
use sam::{AuthMode, CredentialView, FactorKind, Factors, OtpType, SamError};
use secrecy::SecretString;
use serde_json::Value;

use super::{CredentialBearer, credential_bearer};
use crate::app::AppState;
use crate::auth::{Authenticated, Bearer};
use crate::body::Body;
use crate::credentials::{
    InfoOptions, credential_id, flat_factors, key_and_cert, sad_response, usable_now, user_id,
};
use crate::error::{ApiError, blocking};

/// The most credentials one v2 `credentials/list` answers, in credential-ID order. v2.0.0.x
/// has no paging (`maxResults` and `pageToken` are accepted and ignored), so the answer is
/// bounded here rather than by the client.
pub const MAX_LIST: i64 = 1000;

/// The `authData` id of the PIN.
pub const PIN_ID: &str = "PIN";
/// The `authData` id of the OTP (offline or online).
pub const OTP_ID: &str = "OTP";

/// The authentication objects of a credential's factors, PIN first (module doc).
fn auth_objects(view: &CredentialView) -> Vec<AuthObject> {
    let mut objects = Vec::with_capacity(2);
    if view.has_pin {
        objects.push(AuthObject {
            object_type: "Password".into(),
            id: PIN_ID.into(),
            format: Some("A".into()),
            generator: None,
            label: Some("PIN".into()),
            description: Some("The PIN chosen for this signing key".into()),
        });
    }
    match view.otp {
        Some(OtpType::Totp) => objects.push(AuthObject {
            object_type: "Password".into(),
            id: OTP_ID.into(),
            format: Some("N".into()),
            generator: Some("totp".into()),
            label: Some("OTP".into()),
            description: Some(
                "The 6-digit code of the authenticator app enrolled for this key".into(),
            ),
        }),
        Some(OtpType::Online) => objects.push(AuthObject {
            object_type: "ChallengeResponse".into(),
            id: OTP_ID.into(),
            format: Some("N".into()),
            generator: None,
            label: Some("OTP".into()),
            description: Some(
                "The 6-digit code sent to you on request (credentials/getChallenge)".into(),
            ),
        }),
        None => {}
    }
    objects
}

/// `auth` of a credential's description: the mode always; with `authInfo`, for an explicit
/// credential, the objects and their expression.
fn auth_info(view: &CredentialView, with_objects: bool) -> AuthInfo {
    if view.credential.auth_mode == AuthMode::Oauth2Code {
        return AuthInfo {
            mode: "oauth2code".into(),
            expression: None,
            objects: None,
        };
    }
    let objects = with_objects.then(|| auth_objects(view));
    let expression = objects.as_ref().filter(|o| !o.is_empty()).map(|o| {
        o.iter()
            .map(|x| x.id.as_str())
            .collect::<Vec<_>>()
            .join(" AND ")
    });
    AuthInfo {
        mode: "explicit".into(),
        expression,
        objects,
    }
}

/// A credential's v2 description (`credentials/info`; an entry of `credentialInfos`, which
/// carries `credentialID`).
fn describe(
    view: &CredentialView,
    opts: &InfoOptions,
    lang: &str,
    with_id: bool,
) -> Result<CredentialInfo, ApiError> {
    let credential = &view.credential;
    let (key, cert) = key_and_cert(credential, opts)?;
    Ok(CredentialInfo {
        credential_id: with_id.then(|| credential.id.to_string()),
        description: credential.description.clone(),
        key,
        cert,
        auth: auth_info(view, opts.auth_info),
        scal: credential.scal.as_str().into(),
        multisign: u32::try_from(credential.multisign).unwrap_or(1),
        lang: Some(lang.to_owned()),
    })
}

/// `credentials/list` (v2 §11.4): `credentialIDs`; with `credentialInfo`, `credentialInfos`
/// (`certificates`, `certInfo`, `authInfo` as for `credentials/info`); with `onlyValid`, only
/// the credentials that can sign now (key enabled, certificate within its validity period),
/// and `onlyValid: true` in the answer. `userID` as in v1.
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<CredentialsListResponse>, ApiError> {
    body.check_client_data()?;
    let user_id = user_id(&auth, &body)?;
    let with_info = body.opt_bool("credentialInfo")?.unwrap_or(false);
    let opts = InfoOptions::parse(&body)?;
    let only_valid = body.opt_bool("onlyValid")?.unwrap_or(false);
    body.opt_string("lang")?;
    let lang = state.info.lang.clone();
    let views = blocking(move || {
        let user = auth.list_user(&state, user_id.as_deref())?;
        Ok(state.sam.credential_views_page(&user, None, MAX_LIST)?)
    })
    .await?;
    let mut ids = Vec::with_capacity(views.len());
    let mut infos = Vec::new();
    for view in &views {
        if only_valid && !usable_now(&view.credential)? {
            continue;
        }
        ids.push(view.credential.id.to_string());
        if with_info {
            infos.push(describe(view, &opts, &lang, true)?);
        }
    }
    Ok(web::Json(CredentialsListResponse {
        credential_ids: ids,
        credential_infos: with_info.then_some(infos),
        only_valid: only_valid.then_some(true),
    }))
}

/// `credentials/info` (v2 §11.5). Besides a service token, the Bearer may be a
/// credential-scope token (a SAD), for its own credential only (v2 §8.4: such a token "also
/// covers service authorization for credentials/info"); another credential is `Invalid
/// parameter credentialID`, as an unknown one.
pub async fn info(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<CredentialInfo>, ApiError> {
    let lang = state.info.lang.clone();
    let (view, opts, expires) = blocking(move || {
        let who = credential_bearer(&state, &bearer)?;
        body.check_client_data()?;
        let id = credential_id(&body)?;
        let opts = InfoOptions::parse(&body)?;
        // one language is served; the output `lang` says which
        body.opt_string("lang")?;
        let caller = match who {
            CredentialBearer::Service(auth) => auth.caller_for(&state, &id)?,
            CredentialBearer::Sad(caller, credential) if credential == id => caller,
            CredentialBearer::Sad(..) => return Err(ApiError::invalid_parameter("credentialID")),
        };
        let view = state
            .sam
            .describe_credential(&caller, &id)
            .map_err(ApiError::v2)?;
        let expires = state
            .sam
            .certificate_expires_in_days(&view.credential, state.cert_expiry_warning_days)?;
        Ok((view, opts, expires))
    })
    .await?;
    let mut info = describe(&view, &opts, &lang, false)?;
    info.cert.expires_in_days = expires;
    Ok(web::Json(info))
}

/// The activation factors of a v2 authorize: `authData` (`[{"id","value"}]`, v2 §11.6) or the
/// flat v1 `PIN`/`OTP` some v2 clients still send instead (as v1 §11.6), never both (`Invalid
/// parameter authData`). With `authData`: not an array is `Missing (or invalid type) array
/// parameter authData`; an entry that is not an object with a string `id` (and, if present, a
/// string `value`), an id given twice, or an id that is not `PIN` or `OTP` (no credential has
/// another object) is `Invalid parameter authData`. An object without `value` (as the OOB types
/// send) presents nothing: the SAM then says the factor is missing. Returns the factors and the
/// `authData` ids, if `authData` was used.
fn factors(body: &Body) -> Result<(Factors, Option<Vec<String>>), ApiError> {
    let invalid = || ApiError::invalid_parameter("authData");
    let auth_data = match body.0.get("authData") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items),
        Some(_) => return Err(ApiError::missing("array", "authData")),
    };
    let flat = flat_factors(body)?;
    let Some(items) = auth_data else {
        return Ok((flat, None));
    };
    if flat.pin.is_some() || flat.otp.is_some() {
        return Err(invalid());
    }
    let mut factors = Factors::default();
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let object = item.as_object().ok_or_else(invalid)?;
        let id = object
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let value = match object.get("value") {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) => Some(SecretString::from(v.clone())),
            Some(_) => return Err(invalid()),
        };
        if ids.iter().any(|seen| seen == id) {
            return Err(invalid());
        }
        match id {
            PIN_ID => factors.pin = value,
            OTP_ID => factors.otp = value,
            _ => return Err(invalid()),
        }
        ids.push(id.to_owned());
    }
    Ok((factors, Some(ids)))
}

/// `credentials/authorize` (v2 §11.6): `credentialID`, `numSignatures`, `hashes` with
/// `hashAlgorithmOID` ([`Body::opt_hashes_with_algorithm`]), the factors ([`factors`]),
/// `description`, `clientData` → `{SAD, expiresIn}`, always synchronously (200). Every rule
/// (ownership, `numSignatures`, SCAL 2 hash binding, factors and their lock, the audit record) is
/// [`sam::Sam::authorize_async`]'s, as in v1. The token is checked first (a bad token is 401
/// whatever the body), then the body, on the worker thread as in v1.
///
/// An `authData` id that is not among the credential's objects (`OTP` for a credential without
/// an OTP) is `Invalid parameter authData`, found from the credential's sealed factor set
/// before the activation: a malformed request, not a wrong secret, so neither the v2-only
/// `invalid_authentication_data` (which reads as a failed verification) nor a count towards
/// the lock. A wrong PIN or OTP is `invalid_pin` / `invalid_otp` as in v1.
pub async fn authorize(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SadResponse>, ApiError> {
    let auth = bearer.authenticate(&state)?;
    body.check_client_data()?;
    let id = credential_id(&body)?;
    let num_signatures = body.integer("numSignatures")?;
    let hashes = body.opt_hashes_with_algorithm("hashes")?;
    let (factors, ids) = factors(&body)?;
    body.opt_string("description")?;
    let caller = auth.caller_for_async(&state, id).await?;
    if let Some(ids) = ids
        // not the caller's, or unknown: the activation refuses it (and audits that)
        && let Ok(credential) = state.sam.credential_of(&caller, &id)
        && credential.auth_mode != AuthMode::Oauth2Code
    {
        let has = |kind| credential.factors.contains(&kind);
        let known = |id: &str| match id {
            PIN_ID => has(FactorKind::Pin),
            OTP_ID => has(FactorKind::Otp),
            _ => false,
        };
        if !ids.iter().all(|i| known(i)) {
            return Err(ApiError::invalid_parameter("authData"));
        }
    }
    let issued = state
        .sam
        .authorize_async(&caller, &id, num_signatures, hashes, factors)
        .await
        .map_err(ApiError::v2)?;
    Ok(sad_response(issued))
}

/// `credentials/authorizeCheck` (v2 §11.7). Every authorization of this server is synchronous:
/// `credentials/authorize` answers 200 with the SAD (the signer's factors are verified in the
/// request itself) and never 202 with a `handle`, so no handle exists to check. A missing
/// handle is `Missing (or invalid type) string parameter handle`; any handle is `Invalid
/// parameter handle`, as an unknown one would be.
pub async fn authorize_check(_auth: Authenticated, body: Body) -> Result<HttpResponse, ApiError> {
    body.check_client_data()?;
    body.string("handle")?;
    Err(ApiError::invalid_parameter("handle"))
}

/// `credentials/getChallenge` (v2 §11.8): for the online OTP object (`authObjectID` `OTP` of a
/// credential whose OTP is online), a fresh code goes to the signer out of band through the
/// same [`sam::Sam::send_online_otp`] as v1's `credentials/sendOTP` (audited as `otp.send`):
/// 204. Any other object (the PIN, an offline TOTP, an unknown id) has no challenge: `Invalid
/// parameter authObjectID`.
pub async fn get_challenge(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    body.check_client_data()?;
    let id = credential_id(&body)?;
    if body.string("authObjectID")? != OTP_ID {
        return Err(ApiError::invalid_parameter("authObjectID"));
    }
    blocking(move || {
        let caller = auth.caller_for(&state, &id)?;
        state
            .sam
            .send_online_otp(&caller, &id)
            .map_err(|e| match e {
                SamError::NoOnlineOtp => ApiError::invalid_parameter("authObjectID"),
                other => ApiError::v2(other),
            })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `credentials/extendTransaction` (v2 §11.9): `credentialID`, `hashes` with
/// `hashAlgorithmOID`, `SAD` → a new `{SAD, expiresIn}` from [`sam::Sam::extend_transaction`].
pub async fn extend_transaction(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SadResponse>, ApiError> {
    body.check_client_data()?;
    let id = credential_id(&body)?;
    let hashes = body.opt_hashes_with_algorithm("hashes")?;
    let sad = body.string("SAD")?.to_owned();
    let issued = blocking(move || {
        let caller = auth.caller_for(&state, &id)?;
        state
            .sam
            .extend_transaction(&caller, &id, &sad, hashes)
            .map_err(ApiError::v2)
    })
    .await?;
    Ok(sad_response(issued))
}
