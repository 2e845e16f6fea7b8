//! Client delegations (JT2A Part II 3.1.2.2, Part I 7.1.3.1): an OAuth 2.0 client's own token
//! (`client_credentials`, spec §8.1 "non-user-specific", `authType` `oauth2client`) names no user,
//! and acts for no user unless an operator delegated that user to that client (`csc-server client
//! delegate CLIENT USER`). Every user-specific method asks [`Sam::client_may_act_for`] first:
//! `credentials/list` with `userID`, and every method that names a credential (through
//! [`Sam::caller_for`]: `credentials/info`, `authorize`, `extendTransaction`, `sendOTP`,
//! `signatures/signHash`). A disabled user is acted for by no client. Key activation still needs
//! the signer's own factors; a delegation lets a client ask, never sign alone. (Part I 7.1.3.1,
//! access control on objects; Part II 3.1.2.2, signer data touched only by the signer or a
//! privileged user.)

use serde_json::json;
use storage::{NewAuditEvent, UserId};

use crate::oauth::OAuthError;
use crate::roles::{Action, Actor};
use crate::tokens::client_actor;
use crate::{AuditEvent, Sam, SamError, audit_event};

impl Sam {
    /// Lets `client_id`'s own tokens act for the user `user_name` (`csc-server client
    /// delegate`), audited as `client.delegate` by `actor`. `Ok(false)`: it was delegated
    /// already. Only a confidential client has tokens of its own to delegate to.
    pub fn delegate_client(
        &self,
        client_id: &str,
        user_name: &str,
        actor: &Actor,
    ) -> Result<bool, SamError> {
        self.permit(actor, Action::ClientDelegate, client_id)?;
        let actor = &actor.audit_name();
        let client = self
            .oauth_client(client_id)?
            .ok_or(OAuthError::UnknownClient)?;
        if !client.is_confidential() {
            return Err(SamError::InvalidInput(format!(
                "client {client_id} is public: it has no client_credentials token to act with"
            )));
        }
        let user = self
            .user_by_name(user_name)?
            .ok_or_else(|| SamError::UnknownUser(user_name.to_owned()))?;
        Ok(self.store.write(|c| {
            let added = c.insert_client_delegation(client_id, &user.id)?;
            c.append_audit(&audit_event(
                AuditEvent::ClientDelegate,
                actor,
                client_id,
                "success",
                json!({ "user": user.name, "new": added }),
            ))?;
            Ok(added)
        })?)
    }

    /// Withdraws a delegation (`csc-server client undelegate`): the client's tokens stop
    /// acting for the user at their next request. Audited as `client.undelegate` by `actor`.
    /// `Ok(false)`: there was none.
    pub fn undelegate_client(
        &self,
        client_id: &str,
        user_name: &str,
        actor: &Actor,
    ) -> Result<bool, SamError> {
        self.permit(actor, Action::ClientUndelegate, client_id)?;
        let actor = &actor.audit_name();
        self.oauth_client(client_id)?
            .ok_or(OAuthError::UnknownClient)?;
        let user = self
            .user_by_name(user_name)?
            .ok_or_else(|| SamError::UnknownUser(user_name.to_owned()))?;
        Ok(self.store.write(|c| {
            let removed = c.delete_client_delegation(client_id, &user.id)?;
            c.append_audit(&audit_event(
                AuditEvent::ClientUndelegate,
                actor,
                client_id,
                "success",
                json!({ "user": user.name, "existed": removed }),
            ))?;
            Ok(removed)
        })?)
    }

    /// The users delegated to each client: `(client_id, user name)` pairs by client, then
    /// user name.
    pub fn client_delegations(&self) -> Result<Vec<(String, String)>, SamError> {
        let (delegations, users) = self
            .store
            .read(|c| Ok((c.list_client_delegations()?, c.list_users()?)))?;
        let mut pairs: Vec<(String, String)> = delegations
            .into_iter()
            .filter_map(|d| {
                users
                    .iter()
                    .find(|u| u.id == d.user_id)
                    .map(|u| (d.client_id, u.name.clone()))
            })
            .collect();
        pairs.sort();
        Ok(pairs)
    }

    /// Whether `client_id`'s own token may act for `user`: delegated by an operator, and the
    /// user not disabled. A refusal is audited (best effort) as `client.refused`, naming
    /// `subject` (what the client asked about).
    pub fn client_may_act_for(
        &self,
        client_id: &str,
        user: &UserId,
        subject: &str,
    ) -> Result<bool, SamError> {
        let (delegation, found) = self
            .store
            .read(|c| Ok((c.client_delegation(client_id, user)?, c.user(user)?)))?;
        let reason = match (&delegation, &found) {
            (_, None) => return Ok(false),
            (None, Some(_)) => "the user is not delegated to this client",
            (Some(_), Some(u)) if u.disabled => "the user is disabled",
            (Some(_), Some(_)) => return Ok(true),
        };
        let user_name = found.map(|u| u.name).unwrap_or_default();
        self.audit_best_effort(
            &NewAuditEvent::new(
                AuditEvent::ClientRefused,
                client_actor(client_id),
                subject,
                "refused",
            )
            .with_detail(json!({ "user": user_name, "reason": reason })),
        );
        Ok(false)
    }

    /// The user whose credentials a client token lists (`credentials/list` with `userID`, the
    /// user's login name, spec §11.4 NOTE 1): an unknown user, one not delegated to the client,
    /// or a disabled one is [`SamError::InvalidUserId`] alike (400 `Invalid parameter userID`).
    pub fn list_subject_for_client(
        &self,
        client_id: &str,
        user_name: &str,
    ) -> Result<UserId, SamError> {
        let user = self
            .user_by_name(user_name)?
            .ok_or(SamError::InvalidUserId)?;
        // user-supplied, so bounded in the audit record
        let subject: String = user_name.chars().take(64).collect();
        if self.client_may_act_for(client_id, &user.id, &subject)? {
            Ok(user.id)
        } else {
            Err(SamError::InvalidUserId)
        }
    }
}
