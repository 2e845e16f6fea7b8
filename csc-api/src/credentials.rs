//! `credentials/*` (spec §11.4-11.7): list, info, authorize and extendTransaction. The SAM
//! decides; this module reads the request, asks, and shapes the answer.

use actix_web::HttpResponse;
use actix_web::web;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use csc_types::{
    CertInfo, CredentialsInfoResponse, CredentialsListResponse, KeyInfo, OtpInfo, PinInfo,
    SadResponse,
};
use openssl::x509::X509;
use sam::{
    AuthMode, Credential, CredentialId, CredentialStatus, CredentialView, Factors, IssuedSad,
    KeySpec, OtpType, utc_now,
};
use secrecy::SecretString;

use crate::app::AppState;
use crate::auth::{Authenticated, Bearer};
use crate::body::Body;
use crate::certinfo;
use crate::error::{ApiError, blocking};

/// The most credential IDs one `credentials/list` page holds.
pub const MAX_PAGE: i64 = 100;

/// `credentialID`: missing or not a string, or not a credential ID at all (`Invalid parameter
/// credentialID`, as for an unknown one).
pub(crate) fn credential_id(body: &Body) -> Result<CredentialId, ApiError> {
    body.string("credentialID")?
        .parse()
        .map_err(|_| ApiError::invalid_parameter("credentialID"))
}

/// `userID` of `credentials/list` (both versions), as sent: user-specific service
/// authorization: the user is the token's and userID must be absent; a client token
/// (client_credentials) names the user (spec §11.4 NOTE 1). [`Authenticated::list_user`]
/// decides whom it names.
pub(crate) fn user_id(auth: &Authenticated, body: &Body) -> Result<Option<String>, ApiError> {
    match body.0.get("userID") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(u)) => Ok(Some(u.clone())),
        Some(_) if matches!(auth.0, crate::auth::Principal::User(_)) => {
            Err(ApiError::invalid("userID parameter MUST be null"))
        }
        Some(_) => Err(ApiError::invalid_parameter("userID")),
    }
}

/// `credentials/list`.
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<CredentialsListResponse>, ApiError> {
    body.check_client_data()?;
    let user_id = user_id(&auth, &body)?;
    let limit = match body.opt_integer("maxResults")? {
        None => MAX_PAGE,
        Some(n) if n >= 1 => n.min(MAX_PAGE),
        Some(_) => return Err(ApiError::invalid_parameter("maxResults")),
    };
    let after = match body.opt_string("pageToken")? {
        None => None,
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<CredentialId>().ok())
                .ok_or_else(|| ApiError::invalid_parameter("pageToken"))?,
        ),
    };
    let mut page = blocking(move || {
        let user = auth.list_user(&state, user_id.as_deref())?;
        Ok(state
            .sam
            .credentials_page(&user, after.as_ref(), limit + 1)?)
    })
    .await?;
    let more = i64::try_from(page.len()).unwrap_or(i64::MAX) > limit;
    page.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_page_token = more
        .then(|| page.last())
        .flatten()
        .map(|c| URL_SAFE_NO_PAD.encode(c.id.to_string()));
    Ok(web::Json(CredentialsListResponse {
        credential_ids: page.iter().map(|c| c.id.to_string()).collect(),
        next_page_token,
    }))
}

/// What a description of a credential shows (`credentials/info` of both versions, v2
/// `credentials/list` with `credentialInfo`): `certificates` (`single` by default), `certInfo`,
/// `authInfo`.
#[derive(Debug, Clone, Copy)]
pub struct InfoOptions {
    /// How many certificates of the chain, signer first (`none` 0, `single` 1, `chain` all).
    pub certificates: usize,
    /// Add the certificate's details (`certInfo`).
    pub cert_info: bool,
    /// Add the activation factors (`authInfo`).
    pub auth_info: bool,
}

impl InfoOptions {
    /// Reads `certificates` (else `Invalid parameter certificates`), `certInfo`, `authInfo`.
    pub fn parse(body: &Body) -> Result<InfoOptions, ApiError> {
        let certificates = match body.opt_string("certificates")? {
            None | Some("single") => 1,
            Some("chain") => usize::MAX,
            Some("none") => 0,
            Some(_) => return Err(ApiError::invalid_parameter("certificates")),
        };
        Ok(InfoOptions {
            certificates,
            cert_info: body.opt_bool("certInfo")?.unwrap_or(false),
            auth_info: body.opt_bool("authInfo")?.unwrap_or(false),
        })
    }
}

/// A credential's stored chain (DER, signer first) and its signer certificate, if any.
fn chain_of(credential: &Credential) -> Result<(Vec<Vec<u8>>, Option<X509>), ApiError> {
    let chain = credential
        .cert_chain_der()
        .map_err(|e| ApiError::Internal(format!("stored certificate chain: {e}")))?;
    let signer = chain
        .first()
        .map(|der| X509::from_der(der))
        .transpose()
        .map_err(|e| ApiError::Internal(format!("stored certificate: {e}")))?;
    Ok((chain, signer))
}

/// Whether the credential can sign now: its key enabled and its signer certificate within its
/// validity period (v2 `credentials/list` `onlyValid`; the SAM refuses the others).
pub fn usable_now(credential: &Credential) -> Result<bool, ApiError> {
    Ok(credential.status == CredentialStatus::Enabled
        && chain_of(credential)?
            .1
            .is_some_and(|c| certinfo::is_valid_at(&c, utc_now())))
}

/// The `key` and `cert` members of a credential's description, the same in v1 and v2 (spec
/// §11.5): the key's status, algorithms, length and curve; the certificate's status, the
/// certificates asked for and, with `certInfo`, its DNs, serial and validity.
pub fn key_and_cert(
    credential: &Credential,
    opts: &InfoOptions,
) -> Result<(KeyInfo, CertInfo), ApiError> {
    let spec: KeySpec = credential
        .key_spec
        .parse()
        .map_err(|_| ApiError::Internal(format!("stored key spec {:?}", credential.key_spec)))?;
    let (chain, signer) = chain_of(credential)?;
    let mut cert = CertInfo {
        status: signer.as_ref().map(|c| {
            if certinfo::is_valid_at(c, utc_now()) {
                "valid".to_owned()
            } else {
                "expired".to_owned()
            }
        }),
        ..CertInfo::default()
    };
    if opts.certificates > 0 {
        cert.certificates = Some(
            chain
                .iter()
                .take(opts.certificates)
                .map(|c| STANDARD.encode(c))
                .collect(),
        );
    }
    if opts.cert_info
        && let Some(c) = &signer
    {
        cert.issuer_dn = Some(certinfo::rfc4514(c.issuer_name()));
        cert.subject_dn = Some(certinfo::rfc4514(c.subject_name()));
        cert.serial_number = c
            .serial_number()
            .to_bn()
            .and_then(|b| b.to_hex_str().map(|h| h.to_lowercase()))
            .ok();
        cert.valid_from = certinfo::generalized_time(c.not_before());
        cert.valid_to = certinfo::generalized_time(c.not_after());
    }
    let key = KeyInfo {
        // a key waiting for its certificate (`credential create --csr`) cannot sign: `disabled`
        // (§11.5: e.g. "because the cert is expired"); `cert.status` is then absent, none of the
        // spec's four values being accurate
        status: if credential.status == CredentialStatus::Enabled && signer.is_some() {
            "enabled".into()
        } else {
            "disabled".into()
        },
        algo: sam::algo::key_algos(spec)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        len: u32::try_from(spec.bits()).unwrap_or(u32::MAX),
        curve: sam::algo::curve_oid(spec).map(str::to_owned),
    };
    Ok((key, cert))
}

/// `credentials/info`.
pub async fn info(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<CredentialsInfoResponse>, ApiError> {
    body.check_client_data()?;
    let id = credential_id(&body)?;
    let opts = InfoOptions::parse(&body)?;
    // one language is served; the output `lang` says which (as for `info`)
    body.opt_string("lang")?;
    let lang = state.info.lang.clone();
    let (
        CredentialView {
            credential,
            has_pin,
            otp: otp_type,
        },
        expires_in_days,
    ) = blocking(move || {
        let caller = auth.caller_for(&state, &id)?;
        let view = state.sam.describe_credential(&caller, &id)?;
        let expires = state
            .sam
            .certificate_expires_in_days(&view.credential, state.cert_expiry_warning_days)?;
        Ok((view, expires))
    })
    .await?;
    let (key, mut cert) = key_and_cert(&credential, &opts)?;
    cert.expires_in_days = expires_in_days;
    let explicit = credential.auth_mode == AuthMode::Explicit;
    let (pin, otp) = if opts.auth_info && explicit {
        (
            Some(if has_pin {
                PinInfo {
                    presence: "true".into(),
                    format: Some("A".into()),
                    label: Some("PIN".into()),
                    description: Some("The PIN chosen for this signing key".into()),
                }
            } else {
                PinInfo {
                    presence: "false".into(),
                    format: None,
                    label: None,
                    description: None,
                }
            }),
            // what the OTP really is: a TOTP app ("offline") or a code this server sends on
            // credentials/sendOTP ("online"), spec §11.5
            Some(if let Some(kind) = otp_type {
                OtpInfo {
                    presence: "true".into(),
                    otp_type: Some(kind.csc_type().into()),
                    format: Some("N".into()),
                    label: Some("OTP".into()),
                    description: Some(match kind {
                        OtpType::Totp => {
                            "The 6-digit code of the authenticator app enrolled for this key".into()
                        }
                        OtpType::Online => {
                            "The 6-digit code sent to you on request (credentials/sendOTP)".into()
                        }
                    }),
                    id: Some(credential.id.to_string()),
                    provider: match kind {
                        OtpType::Totp => Some("totp".into()),
                        OtpType::Online => Some("csc-server".into()),
                    },
                }
            } else {
                OtpInfo {
                    presence: "false".into(),
                    otp_type: None,
                    format: None,
                    label: None,
                    description: None,
                    id: None,
                    provider: None,
                }
            }),
        )
    } else {
        (None, None)
    };
    Ok(web::Json(CredentialsInfoResponse {
        description: credential.description.clone(),
        key,
        cert,
        auth_mode: credential.auth_mode.as_str().into(),
        scal: credential.scal.as_str().into(),
        pin,
        otp,
        multisign: u32::try_from(credential.multisign).unwrap_or(1),
        lang: Some(lang),
    }))
}

/// An optional secret string (`PIN`, `OTP`): present but not a string is `Missing (or invalid
/// type) string parameter NAME`.
fn secret(body: &Body, name: &str) -> Result<Option<SecretString>, ApiError> {
    Ok(body
        .opt_string(name)
        .map_err(|_| ApiError::missing("string", name))?
        .map(|s| SecretString::from(s.to_owned())))
}

/// The activation factors as v1 sends them (and some v2 clients instead of v2 §11.6 `authData`):
/// the optional strings `PIN` and `OTP` ([`secret`]), read in that order.
pub(crate) fn flat_factors(body: &Body) -> Result<Factors, ApiError> {
    Ok(Factors {
        pin: secret(body, "PIN")?,
        otp: secret(body, "OTP")?,
    })
}

/// `credentials/authorize`. The token first (so a bad token is 401 whatever the body), then
/// the body, then [`sam::Sam::authorize_async`], on the worker thread as signHash: its durable
/// writes are awaited, not blocked on. Only a client token's caller (a delegation read) goes
/// to the blocking pool.
pub async fn authorize(
    bearer: Bearer,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SadResponse>, ApiError> {
    let auth = bearer.authenticate(&state)?;
    body.check_client_data()?;
    let id = credential_id(&body)?;
    let num_signatures = body.integer("numSignatures")?;
    let hashes = body.opt_hashes("hash")?;
    let factors = flat_factors(&body)?;
    body.opt_string("description")?;
    let caller = auth.caller_for_async(&state, id).await?;
    let issued = state
        .sam
        .authorize_async(&caller, &id, num_signatures, hashes, factors)
        .await?;
    Ok(sad_response(issued))
}

/// The `{SAD, expiresIn}` answer of `credentials/authorize` and `credentials/extendTransaction`
/// (both versions).
pub(crate) fn sad_response(issued: IssuedSad) -> web::Json<SadResponse> {
    web::Json(SadResponse {
        sad: issued.sad,
        expires_in: Some(issued.expires_in),
    })
}

/// `credentials/extendTransaction`.
pub async fn extend_transaction(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<web::Json<SadResponse>, ApiError> {
    body.check_client_data()?;
    let id = credential_id(&body)?;
    let hashes = body.opt_hashes("hash")?;
    let sad = body.string("SAD")?.to_owned();
    let issued = blocking(move || {
        let caller = auth.caller_for(&state, &id)?;
        Ok(state.sam.extend_transaction(&caller, &id, &sad, hashes)?)
    })
    .await?;
    Ok(sad_response(issued))
}

/// `credentials/sendOTP` (spec §11.8): the SAM makes a fresh online OTP and
/// its notifier delivers it to the signer; 204, and the code is never in the response.
pub async fn send_otp(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    body.check_client_data()?;
    let id = credential_id(&body)?;
    blocking(move || {
        let caller = auth.caller_for(&state, &id)?;
        Ok(state.sam.send_online_otp(&caller, &id)?)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
