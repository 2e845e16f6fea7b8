//! The operator's acts that are not key provisioning (see `provision` for those): OAuth 2.0
//! client registration (spec §8.3), listings for the operator, the audit check, the token's
//! initialisation record and the purge of expired rows. Each administrative act takes the
//! acting [`crate::Actor`], is checked against its role (`roles`) and audited with the actor as
//! `ROLE:NAME` (the CLI's `operator:cli`, `security-officer:cli`).

use chrono::NaiveDateTime;
use serde_json::json;
use storage::{Credential, NewOAuthClient, OAuthClient, Purged, User, secret_hash};

use crate::roles::{Action, Actor};
use crate::{AuditEvent, Sam, SamError, audit_event, secrets};

/// A client just registered; `secret` is shown once (a confidential client's) and stored only
/// as its SHA-256.
#[derive(Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A redirect URI a client may register: absolute (a scheme), no fragment, no spaces
/// (RFC 6749 §3.1.2). Matched exactly at authorization time.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let web = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    scheme_ok
        && !rest.is_empty()
        && (!web || rest.starts_with("//") && rest.len() > 2)
        && !uri.contains('#')
        && uri.len() <= 2000
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Sam {
    /// Records that the operator initialised the token `label` (`token.init`).
    pub fn record_token_init(&self, label: &str, actor: &Actor) -> Result<(), SamError> {
        self.permit(actor, Action::TokenInit, label)?;
        let actor = &actor.audit_name();
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::TokenInit,
                actor,
                label,
                "success",
                json!({}),
            ))
        })?;
        Ok(())
    }

    /// Registers an OAuth 2.0 client (spec §8.3: client id, exact redirect URIs, and a secret
    /// for a confidential client), audited as `client.register`.
    pub fn register_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        confidential: bool,
        actor: &Actor,
    ) -> Result<RegisteredClient, SamError> {
        self.permit(actor, Action::ClientRegister, name)?;
        let actor = &actor.audit_name();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(SamError::InvalidInput(
                "a client name has 1 to 100 printable characters".into(),
            ));
        }
        if redirect_uris.is_empty() {
            return Err(SamError::InvalidInput(
                "give at least one --redirect-uri".into(),
            ));
        }
        if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
            return Err(SamError::InvalidInput(format!(
                "{bad:?} is not an absolute redirect URI without a fragment"
            )));
        }
        // a prefix, so that no id starts with `-` (base64url), which a command line would take for an option
        let client_id = format!("csc_ci_{}", secrets::random_token(16)?);
        let secret = if confidential {
            Some(format!("csc_cs_{}", secrets::random_token(32)?))
        } else {
            None
        };
        let new = NewOAuthClient {
            client_id: client_id.clone(),
            name: name.to_owned(),
            redirect_uris: redirect_uris.to_vec(),
            secret_hash: secret.as_ref().map(|s| secret_hash(s.as_bytes()).to_vec()),
        };
        self.store.write(|c| {
            c.create_oauth_client(&new)?;
            c.append_audit(&audit_event(
                AuditEvent::ClientRegister,
                actor,
                &client_id,
                "success",
                json!({ "name": name, "redirectURIs": redirect_uris, "confidential": confidential }),
            ))
        })?;
        Ok(RegisteredClient { client_id, secret })
    }

    /// The registered OAuth 2.0 clients (their secrets are digests).
    pub fn clients(&self) -> Result<Vec<OAuthClient>, SamError> {
        Ok(self.store.read(|c| c.list_oauth_clients())?)
    }

    /// Every credential with its owner, by user name then id; only `user_name`'s when given
    /// ([`SamError::UnknownUser`] if there is no such user).
    pub fn credentials_with_owners(
        &self,
        user_name: Option<&str>,
    ) -> Result<Vec<(User, Credential)>, SamError> {
        self.store.read(|c| {
            if let Some(name) = user_name
                && c.user_by_name(name)?.is_none()
            {
                return Ok(Err(SamError::UnknownUser(name.to_owned())));
            }
            Ok(Ok(c.list_credentials(user_name)?))
        })?
    }

    /// The owner of `credential`.
    pub fn owner_of(&self, credential: &Credential) -> Result<User, SamError> {
        self.user_by_id(&credential.user_id)?
            .ok_or_else(|| SamError::UnknownUser(credential.user_id.to_string()))
    }

    /// The one-time upgrade step of a database made before row integrity (`csc-server
    /// integrity seal`): seals every row, once ([`storage::Store::seal_unsealed_rows`]), audited
    /// as `integrity.seal`. The report lists credentials whose PIN verifier is of the older,
    /// unpeppered form: they never verify now; set their PIN again.
    pub fn seal_database(&self, actor: &Actor) -> Result<storage::SealReport, SamError> {
        self.permit(actor, Action::IntegritySeal, "database")?;
        let actor = &actor.audit_name();
        let report = self.store.seal_unsealed_rows()?;
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::IntegritySeal,
                actor,
                "database",
                "success",
                json!({
                    "sealed": report.sealed,
                    "legacyPinCredentials": report.legacy_pin_credentials,
                }),
            ))
        })?;
        Ok(report)
    }

    /// Audit records after `after_seq`, at most `limit` (for the auditor and the tests).
    pub fn audit_records(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<storage::AuditRecord>, SamError> {
        Ok(self.store.read(|c| c.audit_records(after_seq, limit))?)
    }

    /// Deletes the SADs, tokens, online OTPs and OAuth 2.0 codes and requests that expired
    /// before `before`, `batch` rows per table per transaction, each audited
    /// (`housekeeping.purge`). Several instances may purge one database: each deletion is by
    /// key, so they only share the work.
    pub fn purge_expired(&self, before: NaiveDateTime, batch: usize) -> Result<Purged, SamError> {
        Ok(self.store.purge_expired_before(before, batch)?)
    }

    /// How many transactions group commit ran, for how many jobs (logged when `serve` stops).
    pub fn group_commit_stats(&self) -> (u64, u64) {
        self.store.group_commit_stats()
    }
}
