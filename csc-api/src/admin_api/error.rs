//! The admin API's errors: `{error, error_description}` with the HTTP status of what went wrong
//! (README "Admin API"). Every [`SamError`] is named once in [`AdminError::from`] (no
//! catch-all), as in `crate::error` for the CSC API: 400 `invalid_request` (a bad body, field or
//! query, named), 401 `invalid_token` (Bearer) or `invalid_client` (the token endpoint) with
//! `WWW-Authenticate`, 403 `access_denied` (the role; audited by `Sam::permit`), 404
//! `not_found`, 409 `conflict` (a state forbids the act), 429, 500 `server_error` (logged,
//! never sent).

use std::borrow::Cow;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use csc_types::ErrorResponse;
use sam::{OAuthError, SamError};

/// An admin API error as the client sees it.
#[derive(Debug, thiserror::Error)]
#[error("{status} {error}: {description}")]
pub struct AdminError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: Cow<'static, str>,
    /// The `WWW-Authenticate` challenge of a 401; `Allow` of a 405; `Retry-After` of a 429.
    header: Option<(header::HeaderName, String)>,
}

impl AdminError {
    fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        AdminError {
            status,
            error,
            description: description.into(),
            header: None,
        }
    }

    /// The same error with another `error` code (`unsupported_grant_type`, ...).
    pub fn with_code(mut self, error: &'static str) -> Self {
        self.error = error;
        self
    }

    /// 400 `invalid_request`.
    pub fn invalid(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 404 `not_found`.
    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }

    /// 409 `conflict`.
    pub fn conflict(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", description)
    }

    /// 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750
    /// §3.1; an expired or revoked token too).
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description);
        e.header = Some((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"csc-admin\", error=\"invalid_token\"".into(),
        ));
        e
    }

    /// 401 `invalid_client` with `WWW-Authenticate: Basic` (RFC 6749 §5.2): the token
    /// endpoint's refusal of a name and password, whichever was wrong.
    pub fn invalid_client() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
        e.header = Some((header::WWW_AUTHENTICATE, "Basic realm=\"csc-admin\"".into()));
        e
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(allow: String) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            format!("The HTTP method is not allowed for this path (allowed: {allow})"),
        );
        e.header = Some((header::ALLOW, allow));
        e
    }

    /// 500 `server_error`; `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "admin request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server encountered an unexpected condition",
        )
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some((name, value)) = &self.header {
            response.insert_header((name.clone(), value.as_str()));
        }
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        response.json(ErrorResponse {
            error: self.error.to_owned(),
            error_description: Some(self.description.clone().into_owned()),
        })
    }
}

impl From<actix_web::error::BlockingError> for AdminError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AdminError::internal(e)
    }
}

impl From<SamError> for AdminError {
    fn from(e: SamError) -> Self {
        use SamError as S;
        match e {
            // ---- the caller
            e @ S::Forbidden { .. } => {
                Self::new(StatusCode::FORBIDDEN, "access_denied", e.to_string())
            }
            S::InvalidToken | S::ExpiredToken => {
                Self::invalid_token("The admin access token is invalid, expired or revoked")
            }
            S::LoginBusy => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "Too many sign-ins at the moment; retry shortly",
                );
                e.header = Some((
                    header::RETRY_AFTER,
                    crate::error::RETRY_AFTER_SECS.to_string(),
                ));
                e
            }
            // ---- what the act names does not exist
            e @ (S::UnknownUser(_) | S::UnknownCredential(_)) => Self::not_found(e.to_string()),
            S::OAuth(OAuthError::UnknownClient) => Self::not_found("no such client"),
            // ---- a state forbids the act
            e @ (S::UserExists(_)
            | S::SelfDeletion
            | S::CredentialRevoked
            | S::CredentialDisabled
            | S::CertificatePending
            // a damaged log is not exported (the auditor verifies it to find where)
            | S::AuditLogBroken { .. }) => Self::conflict(e.to_string()),
            // ---- a bad field
            e @ (S::InvalidInput(_)
            | S::InvalidChain(_)
            | S::KeyMismatch
            | S::AssuranceLevel { .. }
            | S::TwoFactorsRequired
            | S::CertificateExpired(_)
            | S::ExportRange(_)) => Self::invalid(e.to_string()),
            // ---- refusals of the CSC and OAuth 2.0 flows, which no admin route reaches
            e @ (S::OAuth(_)
            | S::InvalidNumSignatures
            | S::TooManySignatures
            | S::MissingHash
            | S::HashCountMismatch
            | S::HashNotRenewable
            | S::EmptyHashes
            | S::MissingPin
            | S::MissingOtp
            | S::InvalidPin
            | S::InvalidOtp
            | S::PinLocked
            | S::OtpLocked
            | S::InvalidSad
            | S::SadExpired
            | S::HashNotAuthorized
            | S::TooManyHashes
            | S::InvalidDigestLength
            | S::Algo(_)
            | S::OAuthOnly
            | S::NoOnlineOtp
            | S::OtpDelivery(_)
            | S::RequestGone
            | S::InvalidRefreshToken
            | S::UnknownToken
            | S::UserInactive
            | S::InvalidUserId
            | S::InvalidNonce) => Self::conflict(e.to_string()),
            // ---- trouble inside the server
            e @ (S::Hsm(_)
            | S::Storage(_)
            | S::Database { .. }
            | S::Ca(_)
            | S::Certificate(_)
            | S::OpenSsl(_)
            | S::Hashing(_)
            | S::Random(_)
            | S::SigningFailed
            | S::Tsa(_)
            | S::ExportWrite(_)
            | S::AuditSealKey(_)) => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_get_their_status() {
        let status = |e: SamError| AdminError::from(e).status.as_u16();
        assert_eq!(status(SamError::UnknownUser("x".into())), 404);
        assert_eq!(status(SamError::UserExists("x".into())), 409);
        assert_eq!(status(SamError::CredentialRevoked), 409);
        assert_eq!(status(SamError::InvalidInput("x".into())), 400);
        assert_eq!(status(SamError::InvalidToken), 401);
        assert_eq!(status(SamError::ExpiredToken), 401);
        assert_eq!(
            status(SamError::Forbidden {
                role: sam::Role::Auditor,
                action: "user.delete"
            }),
            403
        );
        assert_eq!(status(SamError::OAuth(OAuthError::UnknownClient)), 404);
    }
}
