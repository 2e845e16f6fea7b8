//! The one place where internal errors become CSC errors: the HTTP status, the `error` code and
//! the exact `error_description` strings of spec §10-11. Every [`SamError`] is named in the
//! mapping (no catch-all), so a new refusal cannot silently become a 500. Internal detail is
//! logged, never sent.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use csc_types::ErrorResponse;
use sam::{AlgoError, OAuthError, SamError};

/// The spec's generic text for a malformed request (§11, every method's error table).
pub const MALFORMED: &str = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.";

/// An error as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A CSC error with its status, code and description.
    #[error("{status} {error}: {description}")]
    Csc {
        status: StatusCode,
        error: &'static str,
        description: Cow<'static, str>,
    },
    /// A bearer token that is unknown, revoked or expired (RFC 6750: 401 with
    /// `WWW-Authenticate`).
    #[error("401 {}", error.code())]
    Token { error: TokenError },
    /// Overload: 429 `temporarily_unavailable` with `Retry-After` (spec §10 Table 2: "rejected
    /// due to rate limiting"; applicable to every method).
    #[error("429 temporarily_unavailable: {description}")]
    Busy {
        description: &'static str,
        retry_after_secs: u32,
    },
    /// Anything unexpected: logged in full, sent as a bare `server_error`.
    #[error("internal error: {0}")]
    Internal(String),
    /// A served path asked with a method it does not serve: 405 with `Allow` (RFC 9110
    /// §15.5.6) and the CSC/OAuth error body `invalid_request`. `allow` lists the served
    /// methods, e.g. `GET, POST` (see [`crate::routing`]).
    #[error("405 method not allowed (allow: {allow})")]
    MethodNotAllowed { allow: String },
}

/// What a client is told to wait after a 429 (seconds): one password check's worth, rounded up.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Why a Bearer token is refused (RFC 6750 §3.1 codes; spec §10.1 descriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Unknown, malformed or not a token of this server: `invalid_token`.
    Invalid,
    /// Expired or revoked: `expired_token`.
    Expired,
}

impl TokenError {
    /// The `error` code (and the `WWW-Authenticate` `error` attribute).
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Invalid => "invalid_token",
            TokenError::Expired => "expired_token",
        }
    }

    /// The `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            TokenError::Invalid => "The access or refresh token is invalid",
            TokenError::Expired => "The access or refresh token is expired or has been revoked",
        }
    }
}

impl ApiError {
    /// 400 `invalid_request` with `description`.
    pub fn invalid(description: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Csc {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    /// 400 with another error code.
    pub fn bad(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Csc {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }

    /// The body could not be read as the method's JSON object.
    pub fn malformed() -> Self {
        Self::invalid(MALFORMED)
    }

    /// `Missing (or invalid type) <kind> parameter <name>`.
    pub fn missing(kind: &str, name: &str) -> Self {
        Self::invalid(format!("Missing (or invalid type) {kind} parameter {name}"))
    }

    /// `Invalid parameter <name>`.
    pub fn invalid_parameter(name: &str) -> Self {
        Self::invalid(format!("Invalid parameter {name}"))
    }
}

impl ApiError {
    /// A SAM refusal in the words of CSC v2 (`/csc/v2`): the same errors as v1 (one core, no
    /// rule differs by version), except that a description naming a parameter v2 renamed names
    /// it as v2 does (`hash` → `hashes`, `hashAlgo` → `hashAlgorithmOID`).
    pub fn v2(e: SamError) -> Self {
        match e {
            SamError::MissingHash => Self::missing("array", "hashes"),
            SamError::Algo(AlgoError::MissingHashAlgo) => {
                Self::missing("string", "hashAlgorithmOID")
            }
            SamError::Algo(AlgoError::InvalidHashAlgo) => {
                Self::invalid_parameter("hashAlgorithmOID")
            }
            other => other.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Csc { status, .. } => *status,
            ApiError::Token { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (error, description): (&str, Cow<'_, str>) = match self {
            ApiError::Csc {
                error, description, ..
            } => (error, Cow::Borrowed(description.as_ref())),
            ApiError::Token { error } => (error.code(), Cow::Borrowed(error.description())),
            ApiError::Busy { description, .. } => {
                ("temporarily_unavailable", Cow::Borrowed(*description))
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                (
                    "server_error",
                    Cow::Borrowed("The server encountered an unexpected condition"),
                )
            }
            ApiError::MethodNotAllowed { allow } => (
                "invalid_request",
                Cow::Owned(format!(
                    "The HTTP method is not allowed for this path (allowed: {allow})"
                )),
            ),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Token { error } = self {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer error=\"{}\"", error.code()),
            ));
        }
        if let ApiError::Busy {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.json(ErrorResponse {
            error: error.to_owned(),
            error_description: Some(description.into_owned()),
        })
    }
}

impl From<SamError> for ApiError {
    fn from(e: SamError) -> Self {
        use SamError as S;
        match e {
            S::UnknownCredential(_) => Self::invalid_parameter("credentialID"),
            S::CredentialDisabled | S::CredentialRevoked => {
                Self::invalid("The credential identified by credentialID is disabled")
            }
            S::InvalidNumSignatures => Self::invalid("Invalid value for parameter numSignatures"),
            S::TooManySignatures => Self::invalid("Numbers of signatures is too high"),
            S::MissingHash => Self::missing("array", "hash"),
            S::HashCountMismatch => {
                Self::invalid("The number of hashes must be equal to numSignatures for SCAL 2")
            }
            S::HashNotRenewable => Self::invalid(
                "Hash is not authorized by the SAD. A new credentials/authorize is required",
            ),
            S::EmptyHashes => Self::invalid("Empty hash array"),
            S::MissingPin => Self::missing("string", "PIN"),
            S::MissingOtp => Self::missing("string", "OTP"),
            S::InvalidPin => Self::bad("invalid_pin", "The PIN is invalid"),
            S::InvalidOtp => Self::bad("invalid_otp", "The OTP is invalid"),
            S::PinLocked => Self::invalid("PIN locked"),
            S::OtpLocked => Self::invalid("OTP locked"),
            S::InvalidSad | S::TooManyHashes => Self::invalid_parameter("SAD"),
            S::SadExpired => Self::invalid("SAD expired"),
            S::HashNotAuthorized => Self::invalid("Hash is not authorized by the SAD."),
            S::InvalidDigestLength => Self::invalid("Invalid digest value length"),
            S::CertificateExpired(subject) => {
                Self::invalid(format!("Signing certificate '{subject}' is expired."))
            }
            // `credential create --csr` until `credential import-chain`
            S::CertificatePending => {
                Self::invalid("Invalid certificate status: the credential has no certificate yet")
            }
            S::OAuthOnly => Self::invalid(
                "The credential must be authorized with OAuth 2.0 (authMode oauth2code)",
            ),
            S::TwoFactorsRequired => Self::invalid("SCAL 2 requires two activation factors"),
            // a credential made before `assurance_level` was raised (sam::level; JT2A Part I 3.5.1)
            S::AssuranceLevel { level, reason } => Self::invalid(format!(
                "The credential does not meet the server's assurance level {level}: {reason}"
            )),
            S::NoOnlineOtp => Self::invalid("The credential has no online OTP"),
            // the reason was logged by the SAM; it never holds the code
            S::OtpDelivery(_) => ApiError::Csc {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: "The OTP could not be delivered".into(),
            },
            S::RequestGone => Self::invalid("The authorization request is no longer pending"),
            S::Algo(a) => match a {
                AlgoError::InvalidSignAlgo => Self::invalid_parameter("signAlgo"),
                AlgoError::MissingHashAlgo => Self::missing("string", "hashAlgo"),
                AlgoError::InvalidHashAlgo => Self::invalid_parameter("hashAlgo"),
                AlgoError::MissingSignAlgoParams => Self::missing("string", "signAlgoParams"),
                AlgoError::InvalidSignAlgoParams => Self::invalid_parameter("signAlgoParams"),
            },
            // ---- service tokens and the OAuth 2.0 server
            S::InvalidToken => ApiError::Token {
                error: TokenError::Invalid,
            },
            S::ExpiredToken => ApiError::Token {
                error: TokenError::Expired,
            },
            S::InvalidRefreshToken => Self::invalid("Invalid refresh_token"),
            S::UnknownToken => Self::invalid("Invalid string parameter token"),
            // a login that raced a lock or disable: the login's own refusal (spec §11.2)
            S::UserInactive => Self::bad(
                "authentication_error",
                "An error occurred during authentication process",
            ),
            // unknown, not delegated to the client or disabled alike (spec §11.4)
            S::InvalidUserId => Self::invalid_parameter("userID"),
            S::LoginBusy => ApiError::Busy {
                description: "Too many sign-ins at the moment; retry shortly",
                retry_after_secs: RETRY_AFTER_SECS,
            },
            S::OAuth(o) => o.into(),
            // ---- roles (JT2A Part I 7.1.1): an administrative act the caller's role may not do
            e @ S::Forbidden { .. } => ApiError::Csc {
                status: StatusCode::FORBIDDEN,
                error: "access_denied",
                description: e.to_string().into(),
            },
            // ---- the time-stamping authority (spec §11.10)
            S::InvalidNonce => Self::invalid_parameter("nonce"),
            // ---- the auditor's export (Part I 7.1.5): a range outside the log is the caller's;
            // a damaged log is a state of the server the auditor must see, not a 500
            e @ S::ExportRange(_) => Self::invalid(e.to_string()),
            e @ S::AuditLogBroken { .. } => ApiError::Csc {
                status: StatusCode::CONFLICT,
                error: "audit_log_damaged",
                description: e.to_string().into(),
            },
            // ---- not refusals: trouble inside the server (logged, a bare server_error)
            e @ (S::Hsm(_)
            | S::Storage(_)
            | S::Database { .. }
            | S::UnknownUser(_)
            | S::UserExists(_)
            | S::SelfDeletion
            | S::KeyMismatch
            | S::InvalidChain(_)
            | S::InvalidInput(_)
            | S::Ca(_)
            | S::Certificate(_)
            | S::OpenSsl(_)
            | S::Hashing(_)
            | S::Random(_)
            | S::SigningFailed
            | S::Tsa(_)
            | S::ExportWrite(_)
            | S::AuditSealKey(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

/// The OAuth 2.0 refusals as RFC 6749 §5.2 errors with the spec's descriptions (the page's own
/// refusals never reach JSON: the page shows them; mapped here for completeness).
impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        use OAuthError as O;
        let invalid_grant = |d: &'static str| ApiError::bad("invalid_grant", d);
        match e {
            O::UnknownClient => Self::invalid_parameter("client_id"),
            O::ClientAuthRequired => ApiError::Csc {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_request",
                description: "Client authorization required".into(),
            },
            O::InvalidClientSecret => Self::invalid_parameter("client_secret"),
            O::RedirectUriNotRegistered => Self::invalid_parameter("redirect_uri"),
            O::NoRedirectUri => Self::invalid("Missing parameter redirect_uri"),
            O::UnknownRequest | O::RequestExpired => {
                Self::invalid("The authorization request is no longer pending")
            }
            O::FormNotVerified => ApiError::Csc {
                status: StatusCode::FORBIDDEN,
                error: "access_denied",
                description: "The form could not be verified".into(),
            },
            O::InvalidCode => invalid_grant("Invalid parameter code"),
            O::CodeUsedOrExpired => invalid_grant("Authorization code is invalid or expired"),
            O::RedirectUriMismatch => invalid_grant(
                "redirect_uri parameter does not match redirect_uri parameter of authorization request",
            ),
            O::MissingCodeVerifier => invalid_grant("Missing parameter code_verifier"),
            O::InvalidCodeVerifier => invalid_grant("Invalid parameter code_verifier"),
            O::UnauthorizedClient => ApiError::bad(
                "unauthorized_client",
                "The client is not allowed to use client_credentials",
            ),
            O::InvalidRefreshToken => invalid_grant("Invalid parameter refresh_token"),
            O::RefreshTokenExpired => invalid_grant("Refresh token expired"),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Runs blocking work (database, HSM, Argon2) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    actix_web::web::block(f).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(e: ApiError) -> (u16, &'static str, String) {
        match e {
            ApiError::Csc {
                status,
                error,
                description,
            } => (status.as_u16(), error, description.into_owned()),
            other => panic!("not a CSC error: {other:?}"),
        }
    }

    #[test]
    fn sam_refusals_become_the_spec_errors() {
        assert_eq!(
            parts(SamError::CertificateExpired("O=Example,CN=alice".into()).into()),
            (
                400,
                "invalid_request",
                "Signing certificate 'O=Example,CN=alice' is expired.".into()
            )
        );
        // a credential waiting for its certificate from the operator's CA
        assert_eq!(
            parts(SamError::CertificatePending.into()),
            (
                400,
                "invalid_request",
                "Invalid certificate status: the credential has no certificate yet".into()
            )
        );
        assert_eq!(
            parts(SamError::InvalidPin.into()),
            (400, "invalid_pin", "The PIN is invalid".into())
        );
        assert_eq!(
            parts(SamError::InvalidOtp.into()),
            (400, "invalid_otp", "The OTP is invalid".into())
        );
        assert_eq!(
            parts(SamError::HashNotAuthorized.into()),
            (
                400,
                "invalid_request",
                "Hash is not authorized by the SAD.".into()
            )
        );
        assert!(matches!(
            ApiError::from(SamError::SigningFailed),
            ApiError::Internal(_)
        ));
        assert_eq!(
            parts(SamError::HashCountMismatch.into()),
            (
                400,
                "invalid_request",
                "The number of hashes must be equal to numSignatures for SCAL 2".into()
            )
        );
        assert_eq!(
            parts(SamError::HashNotRenewable.into()),
            (
                400,
                "invalid_request",
                "Hash is not authorized by the SAD. A new credentials/authorize is required".into()
            )
        );
    }

    #[test]
    fn v2_names_the_parameters_v2_renamed_and_nothing_else_changes() {
        assert_eq!(
            parts(ApiError::v2(SamError::MissingHash)),
            (
                400,
                "invalid_request",
                "Missing (or invalid type) array parameter hashes".into()
            )
        );
        assert_eq!(
            parts(ApiError::v2(SamError::Algo(AlgoError::MissingHashAlgo))),
            (
                400,
                "invalid_request",
                "Missing (or invalid type) string parameter hashAlgorithmOID".into()
            )
        );
        assert_eq!(
            parts(ApiError::v2(SamError::Algo(AlgoError::InvalidHashAlgo))),
            (
                400,
                "invalid_request",
                "Invalid parameter hashAlgorithmOID".into()
            )
        );
        // every other refusal reads as in v1
        let same: [fn() -> SamError; 4] = [
            || SamError::InvalidPin,
            || SamError::PinLocked,
            || SamError::HashNotAuthorized,
            || SamError::InvalidSad,
        ];
        for e in same {
            assert_eq!(parts(ApiError::v2(e())), parts(ApiError::from(e())));
        }
    }

    #[test]
    fn token_and_oauth_refusals_become_the_spec_errors() {
        assert!(matches!(
            ApiError::from(SamError::InvalidToken),
            ApiError::Token {
                error: TokenError::Invalid
            }
        ));
        assert!(matches!(
            ApiError::from(SamError::ExpiredToken),
            ApiError::Token {
                error: TokenError::Expired
            }
        ));
        assert_eq!(
            parts(SamError::InvalidRefreshToken.into()),
            (400, "invalid_request", "Invalid refresh_token".into())
        );
        assert_eq!(
            parts(SamError::UnknownToken.into()),
            (
                400,
                "invalid_request",
                "Invalid string parameter token".into()
            )
        );
        assert_eq!(
            parts(SamError::OAuth(OAuthError::CodeUsedOrExpired).into()),
            (
                400,
                "invalid_grant",
                "Authorization code is invalid or expired".into()
            )
        );
        assert_eq!(
            parts(SamError::OAuth(OAuthError::ClientAuthRequired).into()),
            (
                401,
                "invalid_request",
                "Client authorization required".into()
            )
        );
        assert_eq!(
            parts(SamError::OAuth(OAuthError::UnauthorizedClient).into()),
            (
                400,
                "unauthorized_client",
                "The client is not allowed to use client_credentials".into()
            )
        );
    }
}
