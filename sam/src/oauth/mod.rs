//! The OAuth 2.0 authorization server's domain (CSC v1.0.4.0 §8.3): the
//! HTTP layer parses requests, renders the page and maps these outcomes to RFC 6749 / CSC
//! errors; every rule and every audit record is here.
//!
//! * [`clients`]: registered clients, client authentication (RFC 6749 §2.3.1; secrets compared
//!   as SHA-256 digests in constant time), the exact redirect-URI match.
//! * [`requests`]: pending authorization requests behind the consent page (a random handle
//!   stored as SHA-256), the sign-in and the consent checks (the SAM's own activation checks),
//!   refusals, and scope `service` codes.
//! * [`grant`]: scope `credential`: the signer's approval with PIN/OTP, verified like
//!   `credentials/authorize`, becomes a code; a redeemed code becomes a SAD.
//! * [`exchange`]: the token endpoint: `authorization_code` (single use; a replay revokes what
//!   the code bought; redirect URI and PKCE S256 bindings), `client_credentials`,
//!   `refresh_token`, and `oauth2/revoke`.
//!
//! Codes are 256 random bits with the prefix [`CODE_PREFIX`], single-use, short-lived and
//! stored only as SHA-256.

mod clients;
mod exchange;
mod grant;
mod pkce;
mod requests;

pub use clients::ClientAuth;
pub use exchange::CodeGrant;
pub use grant::CredentialGrant;
pub use requests::{
    CodeBinding, ConsentView, OpenRequest, OtpOffer, PendingHandle, handle_digest,
    pushed_request_digest,
};

use crate::Sam;
use crate::tokens::client_actor;

/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "csc_ac_";

/// Why the OAuth 2.0 server refuses; each is one error at the HTTP edge (a redirect, a page or
/// an RFC 6749 §5.2 error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    // ---- client authentication (audited as `oauth2.client_auth`)
    /// No client with this `client_id`.
    #[error("unknown client")]
    UnknownClient,
    /// A confidential client sent no secret.
    #[error("the client must authenticate")]
    ClientAuthRequired,
    /// A wrong secret, or a secret for a public client.
    #[error("invalid client secret")]
    InvalidClientSecret,

    // ---- authorization requests (the consent page)
    /// The request names a redirect URI the client did not register (never redirected to).
    #[error("redirect_uri not registered")]
    RedirectUriNotRegistered,
    /// The request names no redirect URI and the client registered none.
    #[error("the client has no registered redirect URI")]
    NoRedirectUri,
    /// The form names a pending request that is unknown or finished.
    #[error("the authorization request is unknown or finished")]
    UnknownRequest,
    /// The form's handle and its cookie differ (CSRF check).
    #[error("the form and its cookie differ (CSRF check)")]
    FormNotVerified,
    /// The pending request has expired.
    #[error("the authorization request has expired")]
    RequestExpired,

    // ---- the token endpoint
    /// A code that is unknown, another client's, or whose signer is gone.
    #[error("invalid authorization code")]
    InvalidCode,
    /// A code presented again, or expired.
    #[error("the authorization code is used or expired")]
    CodeUsedOrExpired,
    /// `redirect_uri` does not repeat the authorization request's.
    #[error("redirect_uri mismatch")]
    RedirectUriMismatch,
    /// The code has a PKCE challenge and no `code_verifier` came.
    #[error("missing code_verifier")]
    MissingCodeVerifier,
    /// The `code_verifier` is malformed or does not match the challenge.
    #[error("invalid code_verifier")]
    InvalidCodeVerifier,
    /// `client_credentials` for a public client.
    #[error("the client may not use client_credentials")]
    UnauthorizedClient,
    /// A refresh token that is unknown, revoked, not a refresh token, or another client's.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A refresh token past its expiry.
    #[error("the refresh token has expired")]
    RefreshTokenExpired,
}

impl Sam {
    /// An `oauth2.authorize` refusal by the client's request itself, before any signer
    /// (best effort).
    pub(crate) fn audit_request_refusal(&self, client_id: &str, detail: serde_json::Value) {
        self.audit_best_effort(
            &storage::NewAuditEvent::new(
                crate::AuditEvent::OAuth2Authorize,
                client_actor(client_id),
                client_id,
                "refused",
            )
            .with_detail(detail),
        );
    }
}
