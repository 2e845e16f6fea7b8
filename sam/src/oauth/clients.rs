//! Registered OAuth 2.0 clients: lookup, client authentication, redirect URIs.

use serde_json::json;
use storage::{NewAuditEvent, OAuthClient};

use super::OAuthError;
use super::pkce::digest_matches;
use crate::tokens::client_actor;
use crate::{Sam, SamError};

/// A client's credentials as sent to the token or revocation endpoint (RFC 6749 §2.3.1: from
/// `Authorization: Basic` or the body). No `Debug`: it holds the secret.
pub struct ClientAuth {
    pub client_id: String,
    pub secret: Option<String>,
}

impl Sam {
    /// The registered client with this `client_id`, if any.
    pub fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>, SamError> {
        Ok(self.store.read(|c| c.oauth_client(client_id))?)
    }

    /// Authenticates a client: known ([`OAuthError::UnknownClient`]); a confidential client
    /// must send its secret ([`OAuthError::ClientAuthRequired`]), compared as SHA-256 digests in
    /// constant time; a wrong secret, or one sent by a public client, is
    /// [`OAuthError::InvalidClientSecret`]. Refusals are audited as `oauth2.client_auth`.
    pub fn authenticate_client(&self, creds: &ClientAuth) -> Result<OAuthClient, SamError> {
        let found = self.oauth_client(&creds.client_id)?;
        let refusal = match (&found, &creds.secret) {
            (None, _) => Some(OAuthError::UnknownClient),
            (Some(c), None) if c.is_confidential() => Some(OAuthError::ClientAuthRequired),
            (Some(c), Some(secret)) => match &c.secret_hash {
                Some(stored) if digest_matches(secret, stored) => None,
                // a wrong secret, or a secret for a public client
                _ => Some(OAuthError::InvalidClientSecret),
            },
            (Some(_), None) => None,
        };
        match (found, refusal) {
            (Some(client), None) => Ok(client),
            (_, refusal) => {
                // client-supplied, so bounded in the audit record
                let actor: String = creds.client_id.chars().take(64).collect();
                self.store.write(|c| {
                    c.append_audit(
                        &NewAuditEvent::new(
                            crate::AuditEvent::OAuth2ClientAuth,
                            client_actor(&actor),
                            &actor,
                            "refused",
                        )
                        .with_detail(json!({ "secretGiven": creds.secret.is_some() })),
                    )
                })?;
                Err(refusal.unwrap_or(OAuthError::UnknownClient).into())
            }
        }
    }

    /// Where an authorization request's answer goes, and whether the request named it: a
    /// `requested` URI must be exactly one the client registered (else
    /// [`OAuthError::RedirectUriNotRegistered`], audited as `oauth2.authorize`: the HTTP layer
    /// must then never redirect, RFC 6749 §4.1.2.1); none requested is the client's first
    /// ([`OAuthError::NoRedirectUri`] if it registered none).
    pub fn redirect_uri_for(
        &self,
        client: &OAuthClient,
        requested: Option<&str>,
    ) -> Result<(String, bool), SamError> {
        match requested {
            Some(r) if client.redirect_uris.iter().any(|u| u == r) => Ok((r.to_owned(), true)),
            Some(_) => {
                self.audit_request_refusal(
                    &client.client_id,
                    json!({ "reason": "redirect_uri not registered" }),
                );
                Err(OAuthError::RedirectUriNotRegistered.into())
            }
            None => client
                .redirect_uris
                .first()
                .map(|r| (r.clone(), false))
                .ok_or_else(|| OAuthError::NoRedirectUri.into()),
        }
    }
}
