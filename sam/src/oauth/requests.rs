//! Pending authorization requests (the consent page, spec §8.3.2): created when the page opens,
//! found again by the form's handle, bound to the signer after sign-in, and ended by a refusal
//! or a code. Scope `service` codes are issued here (signing in is the approval); scope
//! `credential` codes in [`super::grant`].

use serde_json::json;
use storage::{
    Credential, CredentialId, FactorKind, NewAuditEvent, NewOAuthCode, NewOAuthRequest,
    OAuthClient, OAuthRequest, User, UserId, secret_hash, utc_now,
};

use super::{CODE_PREFIX, OAuthError};
use crate::otp::OtpType;
use crate::secrets::random_token;
use crate::{Sam, SamError};

/// The digest a pending request is stored (and its cookie named) under: SHA-256 of the handle.
pub fn handle_digest(handle: &str) -> [u8; 32] {
    secret_hash(handle.as_bytes())
}

/// The digest a pushed request (RFC 9126) is stored under: SHA-256 of `par:` and the handle
/// of its `request_uri`, apart from [`handle_digest`], so a page handle never opens a pushed
/// request nor a `request_uri` a page's form.
pub fn pushed_request_digest(handle: &str) -> [u8; 32] {
    secret_hash(format!("par:{handle}").as_bytes())
}

/// A pending request just created: its random handle (for the form and the cookie, shown
/// once) and the digest stored. No `Debug`: it holds the handle.
pub struct PendingHandle {
    pub handle: String,
    pub request_hash: [u8; 32],
}

impl PendingHandle {
    /// A new random handle and its digest by `digest` ([`handle_digest`] for a page's,
    /// [`pushed_request_digest`] for a pushed request's).
    fn new(digest: fn(&str) -> [u8; 32]) -> Result<PendingHandle, SamError> {
        let handle = random_token(32)?;
        let request_hash = digest(&handle);
        Ok(PendingHandle {
            handle,
            request_hash,
        })
    }

    /// The row of the pending request under this handle: `params` of `client_id`, until `ttl`
    /// from now.
    fn row(&self, client_id: &str, params: &str, ttl: chrono::Duration) -> NewOAuthRequest {
        NewOAuthRequest {
            request_hash: self.request_hash.to_vec(),
            client_id: client_id.to_owned(),
            params: params.to_owned(),
            expires_at: utc_now() + ttl,
        }
    }
}

/// A pending request found by its handle, with its client.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub request: OAuthRequest,
    pub client: OAuthClient,
}

/// What an authorization code is bound to besides the signer: the client, the redirect URI,
/// the PKCE challenge, and the pending request it ends.
#[derive(Debug, Clone)]
pub struct CodeBinding {
    /// The client the code is for.
    pub client_id: String,
    /// The redirect URI the code goes to, and whether the request named it.
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    /// The PKCE S256 challenge, if any.
    pub code_challenge: Option<String>,
    /// SHA-256 of the pending request's handle: removed in the same transaction as the code is
    /// stored, so a request is answered at most once.
    pub pending_request: Vec<u8>,
    /// How long the code lives.
    pub code_ttl: chrono::Duration,
}

/// What the consent page shows of a credential.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub credential: Credential,
    /// The credential has a PIN.
    pub pin: bool,
    /// The credential's OTP, if any.
    pub otp: Option<OtpType>,
}

/// What sending an online OTP on the consent page came to.
#[derive(Debug)]
pub enum OtpOffer {
    /// The credential has no online OTP: nothing to send.
    NotOnline,
    /// A code was sent.
    Sent,
    /// The SAM refused (e.g. [`SamError::OtpLocked`], [`SamError::OtpDelivery`]).
    Refused(SamError),
}

/// A new authorization code and its digest.
pub(crate) fn new_code() -> Result<(String, [u8; 32]), SamError> {
    let code = format!("{CODE_PREFIX}{}", random_token(32)?);
    let hash = secret_hash(code.as_bytes());
    Ok((code, hash))
}

impl Sam {
    /// Stores a validated authorization request (`params`: the HTTP layer's JSON of it) under a
    /// new random handle for `ttl`.
    pub fn create_oauth_request(
        &self,
        client_id: &str,
        params: String,
        ttl: chrono::Duration,
    ) -> Result<PendingHandle, SamError> {
        let pending = PendingHandle::new(handle_digest)?;
        self.store
            .write(|c| c.insert_oauth_request(&pending.row(client_id, &params, ttl)))?;
        Ok(pending)
    }

    /// A pushed authorization request (RFC 9126), validated by the HTTP layer (`params`: its
    /// JSON), stored like a page's pending request for `ttl` under a new random handle (the
    /// `request_uri` carries it; only [`pushed_request_digest`] of it is stored, a digest apart
    /// from the page handles', so neither opens the other). Audited as `oauth2.authorize`
    /// (`"stage": "pushed"`).
    pub fn push_oauth_request(
        &self,
        client_id: &str,
        scope: &str,
        params: String,
        ttl: chrono::Duration,
    ) -> Result<PendingHandle, SamError> {
        let pending = PendingHandle::new(pushed_request_digest)?;
        self.store.write(|c| {
            c.insert_oauth_request(&pending.row(client_id, &params, ttl))?;
            c.append_audit(
                &NewAuditEvent::new(
                    crate::AuditEvent::OAuth2Authorize,
                    crate::tokens::client_actor(client_id),
                    client_id,
                    "success",
                )
                .with_detail(json!({
                    "stage": "pushed",
                    "scope": scope,
                    "expiresIn": ttl.num_seconds(),
                })),
            )
        })?;
        Ok(pending)
    }

    /// The pushed request a `request_uri` names (its handle), for `client_id`, used up: it is
    /// removed in the same transaction, so it opens one authorization page at most
    /// (RFC 9126 §4: single use). Unknown, used or another client's:
    /// [`OAuthError::UnknownRequest`]; expired: [`OAuthError::RequestExpired`] (removed).
    /// Refusals are audited as `oauth2.authorize`.
    pub fn take_pushed_request(
        &self,
        handle: &str,
        client_id: &str,
    ) -> Result<OAuthRequest, SamError> {
        let request_hash = pushed_request_digest(handle);
        let now = utc_now();
        let taken = self.store.write(|c| {
            let Some(r) = c.oauth_request(&request_hash)? else {
                return Ok(Err((
                    "unknown or used request_uri",
                    OAuthError::UnknownRequest,
                )));
            };
            if r.client_id != client_id {
                // left in place: whoever shows another client's request_uri does not spend it
                return Ok(Err((
                    "request_uri of another client",
                    OAuthError::UnknownRequest,
                )));
            }
            let removed = c.delete_oauth_request(&request_hash)?;
            if r.expires_at <= now {
                return Ok(Err(("request_uri expired", OAuthError::RequestExpired)));
            }
            if !removed {
                return Ok(Err((
                    "unknown or used request_uri",
                    OAuthError::UnknownRequest,
                )));
            }
            Ok(Ok(r))
        })?;
        taken.map_err(|(reason, e)| {
            self.audit_request_refusal(
                client_id,
                json!({ "stage": "request_uri", "reason": reason }),
            );
            e.into()
        })
    }

    /// A pushed authorization request refused by its validation (`error`, `description`: the
    /// JSON error the client gets): audited as `oauth2.authorize` (best effort).
    pub fn refuse_pushed_request(&self, client_id: &str, error: &str, description: &str) {
        self.audit_request_refusal(
            client_id,
            json!({ "stage": "pushed", "error": error, "reason": description }),
        );
    }

    /// The pending request a form names by its handle. `form_verified`: the HTTP layer's CSRF
    /// check (the handle equals the request's cookie) passed. Unknown or finished:
    /// [`OAuthError::UnknownRequest`]; unverified: [`OAuthError::FormNotVerified`] (audited as
    /// `oauth2.authorize`); expired: [`OAuthError::RequestExpired`] (the request is removed).
    pub fn open_oauth_request(
        &self,
        handle: &str,
        form_verified: bool,
    ) -> Result<OpenRequest, SamError> {
        let request_hash = handle_digest(handle);
        let found = self.store.read(|c| {
            let Some(r) = c.oauth_request(&request_hash)? else {
                return Ok(None);
            };
            Ok(c.oauth_client(&r.client_id)?.map(|client| (r, client)))
        })?;
        let Some((request, client)) = found else {
            return Err(OAuthError::UnknownRequest.into());
        };
        if !form_verified {
            self.audit_request_refusal(
                &client.client_id,
                json!({ "reason": "the form and its cookie differ (CSRF check)" }),
            );
            return Err(OAuthError::FormNotVerified.into());
        }
        if request.expires_at <= utc_now() {
            if let Err(e) = self.store.write(|c| c.delete_oauth_request(&request_hash)) {
                tracing::warn!(error = %e, "could not remove an expired authorization request");
            }
            return Err(OAuthError::RequestExpired.into());
        }
        Ok(OpenRequest { request, client })
    }

    /// Ends a pending request with an error for the client (`error`, `description`: what the
    /// redirect says): the request is removed, the refusal audited as `oauth2.authorize`.
    pub fn refuse_oauth_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        scope: &str,
        error: &str,
        description: &str,
    ) -> Result<(), SamError> {
        self.store.write(|c| c.delete_oauth_request(request_hash))?;
        self.audit_request_refusal(
            client_id,
            json!({ "scope": scope, "error": error, "reason": description }),
        );
        Ok(())
    }

    /// Scope `service`: signing in is the approval. Ends the pending request and stores a code
    /// for `user` (a refresh token comes with it when `remember`), in one transaction; returns
    /// the code. A request already answered is [`SamError::RequestGone`]. Audited as
    /// `oauth2.authorize`.
    pub fn issue_service_code(
        &self,
        user: &User,
        binding: &CodeBinding,
        remember: bool,
    ) -> Result<String, SamError> {
        let (code, code_hash) = new_code()?;
        let expires_at = utc_now() + binding.code_ttl;
        let issued = self.store.write(|c| {
            if !c.delete_oauth_request(&binding.pending_request)? {
                return Ok(false);
            }
            c.insert_oauth_code(&NewOAuthCode {
                code_hash: code_hash.to_vec(),
                client_id: binding.client_id.clone(),
                user_id: user.id,
                scope: "service".into(),
                redirect_uri: binding.redirect_uri.clone(),
                redirect_uri_given: binding.redirect_uri_given,
                code_challenge: binding.code_challenge.clone(),
                credential_id: None,
                num_signatures: None,
                hashes: None,
                remember,
                expires_at,
            })?;
            c.append_audit(
                &NewAuditEvent::new(
                    crate::AuditEvent::OAuth2Authorize,
                    &user.name,
                    &binding.client_id,
                    "success",
                )
                .with_detail(json!({ "scope": "service", "remember": remember })),
            )?;
            Ok(true)
        })?;
        if issued {
            Ok(code)
        } else {
            Err(SamError::RequestGone)
        }
    }

    /// Binds a pending request to the signer who signed in (once: a request already bound or
    /// gone is [`SamError::RequestGone`]).
    pub fn bind_oauth_request(&self, request_hash: &[u8], user: &UserId) -> Result<(), SamError> {
        if self
            .store
            .write(|c| c.bind_oauth_request_user(request_hash, user, utc_now()))?
        {
            Ok(())
        } else {
            Err(SamError::RequestGone)
        }
    }

    /// What the consent page shows of a credential, and which factors it asks for.
    pub fn consent_view(&self, credential: &CredentialId) -> Result<ConsentView, SamError> {
        let (cred, otp) = self.store.read(|c| {
            let Some(cred) = c.credential(credential)? else {
                return Ok((None, None));
            };
            let otp = c.required_factors(&cred)?.otp.map(|f| OtpType::of(&f));
            Ok((Some(cred), otp))
        })?;
        let credential = cred.ok_or_else(|| SamError::UnknownCredential(credential.to_string()))?;
        // What the page asks for is the sealed factor set, whatever rows exist.
        let pin = credential.factors.contains(&FactorKind::Pin);
        Ok(ConsentView {
            credential,
            pin,
            otp,
        })
    }

    /// Sends an online OTP for the consent step if the credential has one
    /// ([`Sam::send_online_otp`], audited there).
    pub fn offer_online_otp(
        &self,
        caller: &crate::Caller,
        credential: &CredentialId,
    ) -> Result<OtpOffer, SamError> {
        let otp = self.store.read(|c| c.factor(credential, FactorKind::Otp))?;
        if !otp.is_some_and(|f| OtpType::of(&f) == OtpType::Online) {
            return Ok(OtpOffer::NotOnline);
        }
        match self.send_online_otp(caller, credential) {
            Ok(()) => Ok(OtpOffer::Sent),
            Err(e @ SamError::Storage(_)) => Err(e),
            Err(e) => Ok(OtpOffer::Refused(e)),
        }
    }
}
