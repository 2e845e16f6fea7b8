//! Key activation through the OAuth 2.0 authorization server (CSC v1.0.4.0 §8.3.2-8.3.3, scope
//! `credential`).
//!
//! On the consent page the signer, signed in, approves a credential, a number of signatures and
//! (SCAL 2) the hashes, and enters the credential's PIN and OTP. [`Sam::approve_credential_grant`]
//! verifies them exactly as `credentials/authorize` does (the same code: lockout, OTP single
//! use, SCAL 2 two factors) and, in the same transaction, stores the authorization code bound to
//! what was approved. `Sam::grant_sad_for_code` later turns a redeemed code into a SAD (the
//! `access_token` of `token_type` "SAD"), bound like any SAD to the user, the credential, the
//! count and the hashes, so signHash applies the same single-use and hash-binding rules. A code
//! yields at most one SAD: the token endpoint redeems it with storage's single conditional
//! update in the same transaction.

use serde_json::json;
use storage::{
    Conn, CredentialId, FactorKind, NewOAuthCode, NewOAuthRequest, NewSad, OAuthCode, StorageError,
    secret_hash, utc_now,
};

use super::OAuthError;
use super::requests::{CodeBinding, new_code};
use crate::activation::{
    ActivationRequest, Caller, Factors, IssuedSad, Via, refusal_event, sad_ref, seconds_until,
};
use crate::{AuditEvent, Sam, SamError, audit_event};

/// Where the approved `authorization_details` of a code are kept until the code is redeemed: a
/// row of `oauth_requests` (sealed like every pending request) under SHA-256 of a tag and the
/// code's digest, stored in the transaction that stores the code and expiring with it. The
/// digest is not a page handle's nor a `request_uri`'s (and holds no pending request a page
/// could take).
pub(crate) fn details_digest(code_hash: &[u8]) -> [u8; 32] {
    let mut input = b"authorization_details:".to_vec();
    input.extend_from_slice(code_hash);
    secret_hash(&input)
}

/// What the signer approves on the consent page, and what the code is bound to.
#[derive(Debug, Clone)]
pub struct CredentialGrant {
    /// The credential (`credentialID`).
    pub credential: CredentialId,
    /// `numSignatures`.
    pub num_signatures: i64,
    /// `hash` (digests), if any; required for SCAL 2.
    pub hashes: Option<Vec<Vec<u8>>>,
    /// The client, redirect URI, PKCE challenge and pending request of the code.
    pub binding: CodeBinding,
    /// The request's `authorization_details` (RFC 9396) as approved, JSON (CSC v2 §8.4): the
    /// code then buys a `Bearer` token that echoes them. `None`: a v1 request (`SAD`).
    pub authorization_details: Option<String>,
}

impl Sam {
    /// The consent page's approval (scope `credential`): verifies the factors like
    /// [`Sam::authorize`] (which see) and stores the authorization code bound to the client,
    /// the redirect URI, the PKCE challenge, the credential, the number of signatures and the
    /// hashes; returns the code. Audited as `oauth2.consent`. A request already approved or
    /// expired is [`SamError::RequestGone`].
    pub fn approve_credential_grant(
        &self,
        caller: &Caller,
        grant: &CredentialGrant,
        factors: Factors,
    ) -> Result<String, SamError> {
        let (code, code_hash) = new_code()?;
        let code_expires_at = utc_now() + grant.binding.code_ttl;
        self.activate(
            &ActivationRequest {
                event: AuditEvent::OAuth2Consent,
                caller,
                credential: &grant.credential,
                num_signatures: grant.num_signatures,
                hashes: grant.hashes.clone(),
                via: Via::OAuth2,
            },
            factors,
            {
                let (grant, user) = (grant.clone(), caller.user);
                move |c, granted| {
                    let b = &grant.binding;
                    if !c.delete_oauth_request(&b.pending_request)? {
                        return Ok(Err(SamError::RequestGone));
                    }
                    c.insert_oauth_code(&NewOAuthCode {
                        code_hash: code_hash.to_vec(),
                        client_id: b.client_id.clone(),
                        user_id: user,
                        scope: "credential".into(),
                        redirect_uri: b.redirect_uri.clone(),
                        redirect_uri_given: b.redirect_uri_given,
                        code_challenge: b.code_challenge.clone(),
                        credential_id: Some(grant.credential),
                        num_signatures: Some(granted.num),
                        hashes: granted.hashes.clone(),
                        remember: false,
                        expires_at: code_expires_at,
                    })?;
                    if let Some(details) = &grant.authorization_details {
                        c.insert_oauth_request(&NewOAuthRequest {
                            request_hash: details_digest(&code_hash).to_vec(),
                            client_id: b.client_id.clone(),
                            params: details.clone(),
                            expires_at: code_expires_at,
                        })?;
                    }
                    Ok(Ok(if grant.authorization_details.is_some() {
                        json!({ "client": b.client_id, "authorizationDetails": true })
                    } else {
                        json!({ "client": b.client_id })
                    }))
                }
            },
        )?;
        Ok(code)
    }

    /// `oauth2/token` with a credential-scope code just redeemed in the caller's transaction
    /// (see [`Sam::exchange_code`], which redeems, checks and issues in ONE transaction): issues
    /// the SAD the signer approved (Part II 3.2.1.1: the factors were verified when the code was
    /// made) and records it as what the code bought. The signer must be neither locked nor
    /// disabled (read with the row locked), and the credential still theirs, enabled, under a
    /// valid certificate, with no factor locked since. `sad` is the new SAD's value, made
    /// before the transaction. The SAD's record names the code's digest where a
    /// credentials/authorize SAD names the access token. Audited as `sad.authorize` with
    /// `"via": "oauth2"`, a refusal too (`Ok(Err(_))`: the caller commits the code as used).
    pub(crate) fn grant_sad_for_code(
        &self,
        c: &mut Conn<'_>,
        code: &OAuthCode,
        sad: &str,
    ) -> Result<Result<IssuedSad, SamError>, StorageError> {
        const EVENT: AuditEvent = AuditEvent::SadAuthorize;
        let (Some(credential), Some(num)) = (code.credential_id, code.num_signatures) else {
            return Ok(Err(SamError::InvalidInput(
                "the authorization code is not for a credential".into(),
            )));
        };
        let subject = credential.to_string();
        let user = match c.user_for_update(&code.user_id)? {
            Some(u) if !u.locked && !u.disabled => u,
            _ => return Ok(Err(OAuthError::InvalidCode.into())),
        };
        // locked: a concurrent disable/revoke/rekey cannot miss the SAD issued here (Part I 6.4)
        let found = c.credential_for_update(&credential)?;
        // the credential's sealed factor set names the factor rows that must exist (README
        // "Threat model": deleting a factor row never drops a factor)
        let required = match &found {
            Some(cred) => Some(c.required_factors(cred)?),
            None => None,
        };
        let mut code_hash = [0u8; 32];
        if code.code_hash.len() == 32 {
            code_hash.copy_from_slice(&code.code_hash);
        }
        let caller = Caller {
            user: user.id,
            user_name: user.name,
            token_hash: code_hash,
        };
        let detail = || json!({ "via": "oauth2", "client": code.client_id });
        let lock_error = |kind: FactorKind| match kind {
            FactorKind::Pin => SamError::PinLocked,
            FactorKind::Otp => SamError::OtpLocked,
        };
        let checked = self.usable(&caller, &credential, found).and_then(|cred| {
            let Some(required) = &required else {
                return Ok(cred);
            };
            // a required factor whose row is gone or forged refuses as a lock
            if let Some(&kind) = required.missing.first() {
                return Err(lock_error(kind));
            }
            match [required.pin.as_ref(), required.otp.as_ref()]
                .into_iter()
                .flatten()
                .find(|f| f.locked)
            {
                Some(f) => Err(lock_error(f.kind)),
                None => Ok(cred),
            }
        });
        let cred = match checked {
            Ok(cred) => cred,
            Err(e) => {
                c.append_audit(&refusal_event(EVENT, &caller, &subject, &e, detail()))?;
                return Ok(Err(e));
            }
        };
        let sad_hash = secret_hash(sad.as_bytes());
        let now = utc_now();
        // The transaction was authorized when the signer consented (the code was made): its
        // maximum life counts from then.
        let authorized_at = code.created_at;
        let expires_at = match self.policy.sad_expiry(authorized_at, now) {
            Ok(at) if at > now => at,
            Ok(_) => {
                let e = SamError::SadExpired;
                c.append_audit(&refusal_event(EVENT, &caller, &subject, &e, detail()))?;
                return Ok(Err(e));
            }
            Err(e) => return Ok(Err(e)),
        };
        let lifetime = seconds_until(expires_at, now);
        let bound = code.hashes.as_ref().map_or(0, Vec::len);
        c.insert_sad(&NewSad {
            sad_hash: sad_hash.to_vec(),
            user_id: caller.user,
            credential_id: credential,
            token_hash: code.code_hash.clone(),
            remaining: num,
            expires_at,
            hashes: code.hashes.clone(),
            authorized_at,
        })?;
        c.set_oauth_code_issued(&code.code_hash, &sad_hash)?;
        c.append_audit(&audit_event(
            EVENT,
            &caller.user_name,
            &subject,
            "success",
            json!({
                "via": "oauth2",
                "client": code.client_id,
                "sad": sad_ref(&sad_hash),
                "numSignatures": num,
                "boundHashes": bound,
                "SCAL": cred.scal.as_str(),
                "certificateSerial": cred.cert_serial,
                "expiresIn": lifetime,
            }),
        ))?;
        Ok(Ok(IssuedSad {
            sad: sad.to_owned(),
            expires_in: lifetime,
        }))
    }
}
