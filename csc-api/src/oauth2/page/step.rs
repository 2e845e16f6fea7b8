//! The POST steps of the page, a small state machine over the pending request: a request not
//! yet bound to a signer takes `login` (or `deny`); a bound one takes `approve`, `resend` (or
//! `deny`). Every rule and every audit record is the SAM's; this maps its outcomes to pages and
//! redirects.

use actix_web::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sam::{
    Caller, CodeBinding, Credential, CredentialGrant, CredentialId, CredentialStatus, Factors,
    OAuthClient, OAuthError, OtpOffer, SamError, User, UserId,
};
use secrecy::SecretString;

use super::answer::{
    Answer, Origin, cookie_name, error_page, error_redirect, internal, page, success_redirect,
};
use super::validate::Pending;
use crate::app::AppState;
use crate::error::ApiError;
use crate::oauth2::html::{self, ConsentPage, CredentialView, DocumentView, LoginPage};
use crate::oauth2::rar::CredentialChoice;
use crate::oauth2::{Params, ParamsError};

/// Everything a POST step knows.
struct Step<'a> {
    state: &'a AppState,
    handle: String,
    /// SHA-256 of the handle: the pending request's key.
    request_hash: Vec<u8>,
    pending: Pending,
    client: OAuthClient,
}

/// The page's notice and error after an online OTP was (or was not) sent.
type OtpMessages = (Option<&'static str>, Option<&'static str>);

fn otp_messages(offer: &OtpOffer) -> OtpMessages {
    match offer {
        OtpOffer::NotOnline => (None, None),
        OtpOffer::Sent => (Some("A one-time code was sent to you."), None),
        OtpOffer::Refused(SamError::OtpLocked) => (None, Some("OTP locked")),
        OtpOffer::Refused(SamError::OtpDelivery(_)) => (
            None,
            Some("The one-time code could not be sent. Try \"Send a new code\" later."),
        ),
        OtpOffer::Refused(_) => (None, Some("No one-time code can be sent for this key.")),
    }
}

pub(super) fn step(
    state: &AppState,
    origin: &Origin,
    params: Result<Params, ParamsError>,
) -> Answer {
    let bad_page = |status: StatusCode, m: &str| error_page(state, status, m);
    let Ok(p) = params else {
        return bad_page(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    let Some(handle) = p.get("request").map(str::to_owned) else {
        return bad_page(
            StatusCode::BAD_REQUEST,
            "The form names no sign-in request.",
        );
    };
    let request_hash = sam::oauth::handle_digest(&handle);
    // CSRF: the hidden field must equal the cookie set with the form
    let cookie_ok = origin.cookie(&cookie_name(&request_hash)).is_some_and(|v| {
        v.len() == handle.len() && openssl::memcmp::eq(v.as_bytes(), handle.as_bytes())
    });
    let open = match state.sam.open_oauth_request(&handle, cookie_ok) {
        Ok(o) => o,
        Err(SamError::OAuth(OAuthError::UnknownRequest)) => {
            return bad_page(
                StatusCode::BAD_REQUEST,
                "This sign-in request is unknown, finished or expired.",
            );
        }
        Err(SamError::OAuth(OAuthError::FormNotVerified)) => {
            return bad_page(
                StatusCode::FORBIDDEN,
                "This form could not be verified (it must be sent from this page, with cookies enabled).",
            );
        }
        Err(SamError::OAuth(OAuthError::RequestExpired)) => {
            return bad_page(StatusCode::BAD_REQUEST, "This sign-in request has expired.");
        }
        Err(e) => return internal(state, e.into()),
    };
    let pending: Pending = match serde_json::from_str(&open.request.params) {
        Ok(p) => p,
        Err(e) => return internal(state, ApiError::Internal(format!("pending request: {e}"))),
    };
    if pending.pushed {
        // a pushed request opens only through its request_uri (RFC 9126 §4)
        return bad_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request is unknown, finished or expired.",
        );
    }
    let s = Step {
        state,
        handle,
        request_hash: open.request.request_hash,
        pending,
        client: open.client,
    };
    let result = match (p.get("action"), open.request.user_id) {
        (Some("deny"), _) => Ok(s.deny()),
        (Some("login") | None, None) => s.login(&p),
        (Some("approve") | None, Some(user)) => s.approve(&p, user),
        (Some("resend"), Some(user)) => s.resend(&p, user),
        _ => Ok(bad_page(StatusCode::BAD_REQUEST, "Unexpected form action.")),
    };
    result.unwrap_or_else(|e| internal(state, e))
}

impl Step<'_> {
    /// Ends the request with an error redirect (the SAM removes and audits it).
    fn finish_with_error(&self, error: &str, description: &str) -> Result<Answer, ApiError> {
        self.state.sam.refuse_oauth_request(
            &self.request_hash,
            &self.client.client_id,
            &self.pending.scope,
            error,
            description,
        )?;
        Ok(error_redirect(
            &self.pending.redirect_uri,
            self.pending.state.as_deref(),
            error,
            description,
        ))
    }

    fn success(&self, code: &str) -> Answer {
        success_redirect(
            &self.pending.redirect_uri,
            self.pending.state.as_deref(),
            code,
        )
    }

    fn already_answered(&self) -> Answer {
        error_page(
            self.state,
            StatusCode::BAD_REQUEST,
            "This sign-in request was already answered.",
        )
    }

    fn deny(&self) -> Answer {
        self.finish_with_error("access_denied", "The user refused the request")
            .unwrap_or_else(|e| internal(self.state, e))
    }

    fn login_page(&self, user: Option<&str>, error: Option<&str>) -> Answer {
        self.login_page_with_status(StatusCode::OK, user, error)
    }

    fn login_page_with_status(
        &self,
        status: StatusCode,
        user: Option<&str>,
        error: Option<&str>,
    ) -> Answer {
        page(
            status,
            html::login_page(&LoginPage {
                service: &self.state.info.name,
                client: &self.client.name,
                scope: &self.pending.scope,
                handle: &self.handle,
                user,
                error,
            }),
            Some(&self.pending.redirect_uri),
            None,
        )
    }

    /// What a code from this request is bound to.
    fn binding(&self) -> CodeBinding {
        CodeBinding {
            client_id: self.client.client_id.clone(),
            redirect_uri: self.pending.redirect_uri.clone(),
            redirect_uri_given: self.pending.redirect_uri_given,
            code_challenge: self.pending.code_challenge.clone(),
            pending_request: self.request_hash.clone(),
            code_ttl: self.state.oauth.code_ttl,
        }
    }

    /// The sign-in step.
    fn login(&self, p: &Params) -> Result<Answer, ApiError> {
        let (Some(name), Some(password)) = (p.get("username"), p.get("password")) else {
            return Ok(self.login_page(
                p.get("username"),
                Some("Enter your user name and password."),
            ));
        };
        let password = SecretString::from(password.to_owned());
        let checked = match self
            .state
            .sam
            .oauth_sign_in(name, &password, &self.client.client_id)
        {
            // every password check is busy: the form again, 429 with Retry-After
            Err(SamError::LoginBusy) => {
                return Ok(self.login_page_with_status(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(name),
                    Some("Too many sign-ins at the moment. Please try again in a moment."),
                ));
            }
            other => other?,
        };
        let user = match checked {
            Ok(u) => u,
            Err(_) => {
                return Ok(self.login_page(
                    Some(name),
                    Some("Sign-in failed: wrong user name or password, or the account is locked."),
                ));
            }
        };
        if self.pending.scope == "service" {
            return self.issue_service_code(&user, p.get("remember").is_some());
        }
        self.start_consent(&user)
    }

    /// Scope `service`: signing in is the approval.
    fn issue_service_code(&self, user: &User, remember: bool) -> Result<Answer, ApiError> {
        match self
            .state
            .sam
            .issue_service_code(user, &self.binding(), remember)
        {
            Ok(code) => Ok(self.success(&code)),
            Err(SamError::RequestGone) => Ok(self.already_answered()),
            Err(e) => Err(e.into()),
        }
    }

    fn caller(&self, user: &User) -> Caller {
        let mut token_hash = [0u8; 32];
        if self.request_hash.len() == 32 {
            token_hash.copy_from_slice(&self.request_hash);
        }
        Caller {
            user: user.id,
            user_name: user.name.clone(),
            token_hash,
        }
    }

    fn credential_id(&self) -> Result<CredentialId, ApiError> {
        self.pending
            .credential_id
            .as_deref()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| ApiError::Internal("pending request without a credential".into()))
    }

    /// A `signatureQualifier` request: the signer chooses the credential on the page.
    fn signer_chooses(&self) -> bool {
        self.pending.credential_id.is_none()
            && self
                .pending
                .authorization_details
                .as_ref()
                .is_some_and(|d| matches!(d.credential, CredentialChoice::Qualifier(_)))
    }

    /// The credential of the grant: the request's, or the one the signer chose on the page
    /// (the form's `credentialID`; `None` when none was chosen). The SAM's activation checks
    /// that it is the signer's, enabled and fit for the request, like any other.
    fn chosen_credential(&self, p: &Params) -> Result<Option<CredentialId>, ApiError> {
        if !self.signer_chooses() {
            return self.credential_id().map(Some);
        }
        Ok(p.get("credentialID").and_then(|c| c.parse().ok()))
    }

    /// The signer's enabled credentials, for the choice of a `signatureQualifier` request.
    fn choices(&self, user: &User) -> Result<Vec<CredentialView>, ApiError> {
        let creds = self.state.sam.credentials_page(&user.id, None, 100)?;
        Ok(creds
            .into_iter()
            .filter(|c| c.status == CredentialStatus::Enabled)
            .filter(|c| i64::from(c.multisign) >= self.pending.num_signatures.unwrap_or(1))
            .map(|c| credential_view(&c))
            .collect())
    }

    /// The pending hashes as digests (`None` when there are none).
    fn hashes(&self) -> Result<Option<Vec<Vec<u8>>>, ApiError> {
        let hashes = self
            .pending
            .hashes
            .iter()
            .map(|h| URL_SAFE_NO_PAD.decode(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::Internal(format!("pending hashes: {e}")))?;
        Ok((!hashes.is_empty()).then_some(hashes))
    }

    /// Ends the request with the redirect that a SAM refusal of the credential or the request
    /// means (spec §8.3.2 error texts).
    fn refused(&self, e: SamError) -> Result<Answer, ApiError> {
        match e {
            SamError::CredentialDisabled => self.finish_with_error(
                "access_denied",
                "The credential identified by credentialID is disabled",
            ),
            // spec §8.3.2: hash SHALL be sent for a SCAL 2 credential
            SamError::MissingHash => {
                self.finish_with_error("invalid_request", "Missing parameter hash")
            }
            SamError::PinLocked => self.finish_with_error("access_denied", "PIN locked"),
            SamError::OtpLocked => self.finish_with_error("access_denied", "OTP locked"),
            e => match ApiError::from(e) {
                ApiError::Csc { description, .. } => {
                    self.finish_with_error("invalid_request", &description)
                }
                other => Err(other),
            },
        }
    }

    /// Binds the pending request to the signer ([`sam::Sam::bind_oauth_request`]): `false` when
    /// it is already bound or gone ([`SamError::RequestGone`]).
    fn bind(&self, user: &User) -> Result<bool, ApiError> {
        match self
            .state
            .sam
            .bind_oauth_request(&self.request_hash, &user.id)
        {
            Ok(()) => Ok(true),
            Err(SamError::RequestGone) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Scope `credential`, after sign-in: the SAM's own activation checks (before the factors),
    /// binds the request to the signer, sends an online OTP, shows the consent step.
    fn start_consent(&self, user: &User) -> Result<Answer, ApiError> {
        if self.signer_chooses() {
            if self.choices(user)?.is_empty() {
                return self.finish_with_error(
                    "access_denied",
                    "The user has no credential usable for this request",
                );
            }
            if !self.bind(user)? {
                return Ok(self.already_answered());
            }
            return self.consent_page(user, None, None);
        }
        let id = self.credential_id()?;
        let caller = self.caller(user);
        if let Err(e) = self.state.sam.check_activation(
            &caller,
            &id,
            self.pending.num_signatures.unwrap_or(0),
            self.hashes()?,
        ) {
            return self.refused(e);
        }
        if !self.bind(user)? {
            return Ok(self.already_answered());
        }
        match self.state.sam.offer_online_otp(&caller, &id)? {
            OtpOffer::Refused(SamError::OtpLocked) => {
                self.finish_with_error("access_denied", "OTP locked")
            }
            offer => {
                let (notice, error) = otp_messages(&offer);
                self.consent_page(user, error, notice)
            }
        }
    }

    fn consent_page(
        &self,
        user: &User,
        error: Option<&str>,
        notice: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let (credential, choices, pin, otp) = if self.signer_chooses() {
            (None, self.choices(user)?, true, Some("any"))
        } else {
            let view = self.state.sam.consent_view(&self.credential_id()?)?;
            (
                Some(credential_view(&view.credential)),
                vec![],
                view.pin,
                view.otp.map(sam::OtpType::csc_type),
            )
        };
        let details = self.pending.authorization_details.as_ref();
        let documents: Vec<DocumentView> = details
            .map(|d| {
                d.documents
                    .iter()
                    .zip(&d.digests)
                    .map(|(doc, digest)| DocumentView {
                        label: doc.label.clone(),
                        base64: doc.hash.clone(),
                        hex: URL_SAFE_NO_PAD
                            .decode(digest)
                            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let qualifier = details.and_then(|d| match &d.credential {
            CredentialChoice::Qualifier(q) => Some(q.as_str()),
            CredentialChoice::Id(_) => None,
        });
        Ok(page(
            StatusCode::OK,
            html::consent_page(&ConsentPage {
                service: &self.state.info.name,
                client: &self.client.name,
                user: &user.name,
                handle: &self.handle,
                credential: credential.as_ref(),
                choices: &choices,
                qualifier,
                num_signatures: self.pending.num_signatures.unwrap_or(0),
                hashes: &self.pending.hashes,
                documents: &documents,
                description: self.pending.description.as_deref(),
                pin,
                otp,
                error,
                notice,
            }),
            Some(&self.pending.redirect_uri),
            None,
        ))
    }

    fn signer(&self, user_id: UserId) -> Result<User, ApiError> {
        self.state
            .sam
            .user_by_id(&user_id)?
            .ok_or_else(|| ApiError::Internal("the signer vanished".into()))
    }

    fn resend(&self, p: &Params, user_id: UserId) -> Result<Answer, ApiError> {
        let user = self.signer(user_id)?;
        let Some(credential) = self.chosen_credential(p)? else {
            return self.consent_page(&user, Some("Choose the key to sign with."), None);
        };
        let offer = self
            .state
            .sam
            .offer_online_otp(&self.caller(&user), &credential)?;
        let (notice, error) = otp_messages(&offer);
        let notice = notice.map(|_| "A new one-time code was sent to you.");
        self.consent_page(&user, error, notice)
    }

    /// The consent step's approval: the SAM verifies PIN and OTP and stores the code.
    fn approve(&self, p: &Params, user_id: UserId) -> Result<Answer, ApiError> {
        let user = self.signer(user_id)?;
        let factors = Factors {
            pin: p.get("PIN").map(|s| SecretString::from(s.to_owned())),
            otp: p
                .get("OTP")
                .map(|s| SecretString::from(s.trim().to_owned())),
        };
        let Some(credential) = self.chosen_credential(p)? else {
            return self.consent_page(&user, Some("Choose the key to sign with."), None);
        };
        // what the token response echoes (RFC 9396 §7): as requested, with the credential used
        let authorization_details = self
            .pending
            .authorization_details
            .as_ref()
            .map(|d| d.approved(&credential.to_string()).to_string());
        let grant = CredentialGrant {
            credential,
            num_signatures: self.pending.num_signatures.unwrap_or(0),
            hashes: self.hashes()?,
            binding: self.binding(),
            authorization_details,
        };
        let again = |msg: &str| self.consent_page(&user, Some(msg), None);
        match self
            .state
            .sam
            .approve_credential_grant(&self.caller(&user), &grant, factors)
        {
            Ok(code) => Ok(self.success(&code)),
            Err(SamError::InvalidPin) => again("The PIN is invalid."),
            Err(SamError::MissingPin) => again("Enter the PIN of this key."),
            Err(SamError::InvalidOtp) => again("The one-time code is invalid or expired."),
            Err(SamError::MissingOtp) => again("Enter the one-time code."),
            Err(SamError::RequestGone) => Ok(self.already_answered()),
            Err(e @ (SamError::PinLocked | SamError::OtpLocked)) => self.refused(e),
            Err(e) => match ApiError::from(e) {
                ApiError::Csc { description, .. } => {
                    self.finish_with_error("invalid_request", &description)
                }
                other => Err(other),
            },
        }
    }
}

/// What the consent page shows of a credential.
fn credential_view(cred: &Credential) -> CredentialView {
    let subject = cred
        .cert_chain_der()
        .ok()
        .and_then(|chain| chain.into_iter().next())
        .and_then(|der| openssl::x509::X509::from_der(&der).ok())
        .map(|c| crate::certinfo::rfc4514(c.subject_name()));
    CredentialView {
        id: cred.id.to_string(),
        description: cred.description.clone(),
        key: cred.key_spec.clone(),
        subject,
        scal: cred.scal.as_str().into(),
    }
}
