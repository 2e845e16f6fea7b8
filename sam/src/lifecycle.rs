//! The credential lifecycle after creation (JT2A Part I 6.4, appendix 4): disable, enable, revoke
//! and rekey. Each takes the acting principal's name (the CLI's `operator:cli`; the admin API's
//! later), changes the credential's sealed status and revokes its live SADs in the same
//! transaction, and is audited (`credential.disable`, `.enable`, `.revoke` with its reason,
//! `.rekey` with the old and new key ids and certificate serials). A credential that is not
//! `enabled`, or whose certificate is outside its validity period, never signs: authorize,
//! extendTransaction, signHash (v1 and v2) and the OAuth 2.0 consent all go through
//! [`Sam::usable`].
//!
//! Rekey policy: the credential ID is kept (the new key is labelled with the same ID, which
//! `sign_digests_for` checks), so signers and clients keep the ID they know; the old key is
//! destroyed in the token at once, so nothing signs with it again. A revoked credential is
//! never rekeyed nor enabled again.

use cm_pkcs11::{KeyId, KeySpec};
use serde_json::json;
use storage::{Credential, CredentialId, CredentialStatus};

use crate::roles::{Action, Actor};
use crate::{AuditEvent, Sam, SamError, audit_event};

/// The longest revocation reason kept in the audit record.
pub const MAX_REASON_CHARS: usize = 500;

/// A credential just rekeyed.
pub struct Rekeyed {
    pub credential: Credential,
    /// The new signer certificate (DER), empty when a CSR awaits the operator's CA.
    pub certificate_der: Vec<u8>,
    /// The PKCS#10 request (PEM) over the new key, when the operator's CA certifies it.
    pub csr_pem: Option<String>,
    /// The old key, now destroyed in the token.
    pub old_key_id: String,
}

/// Who certifies the new key of a rekey.
#[derive(Debug, Clone, Copy)]
pub enum RekeyCertifier<'a> {
    /// The development CA, at once.
    DevCa,
    /// The operator's CA, later (`--csr`): the credential is pending until `import-chain`;
    /// the request's subject (RFC 4514), else `CN=<user>`.
    Csr(Option<&'a str>),
}

/// A usable credential whose signer certificate expires soon ([`Sam::expiring_certificates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCertificate {
    pub credential: CredentialId,
    pub user: String,
    /// The certificate's notAfter, Unix seconds.
    pub not_after: i64,
}

impl Sam {
    /// The enabled credentials whose signer certificate is valid now but expires within
    /// `within_days` days (none when `0`): what `cert_expiry_warning_days` reports on
    /// `/metrics` (`csc_certificates_expiring`) and in `credential list` (and, per credential,
    /// [`Sam::certificate_expires_in_days`] in `credentials/info`). Reads every
    /// credential (the certificates are parsed once, then cached). Blocking.
    pub fn expiring_certificates(
        &self,
        within_days: u32,
    ) -> Result<Vec<ExpiringCertificate>, SamError> {
        if within_days == 0 {
            return Ok(Vec::new());
        }
        let (now, horizon) = expiry_window(within_days);
        let mut out = Vec::new();
        for (user, credential) in self.store.read(|c| c.list_credentials(None))? {
            if credential.status != CredentialStatus::Enabled {
                continue;
            }
            if let Some(not_after) = self.validity.not_after(&credential)?
                && expires_between(not_after, now, horizon)
            {
                out.push(ExpiringCertificate {
                    credential: credential.id,
                    user: user.name,
                    not_after,
                });
            }
        }
        Ok(out)
    }

    /// Whole days left before `credential`'s signer certificate expires, when it is enabled,
    /// valid now and expires within `within_days` days (the rule of
    /// [`Sam::expiring_certificates`]); `None` otherwise. What `credentials/info` reports as
    /// `cert.expiresInDays` (Part I appendix 4: the end of a certificate's use is announced).
    pub fn certificate_expires_in_days(
        &self,
        credential: &Credential,
        within_days: u32,
    ) -> Result<Option<u32>, SamError> {
        if within_days == 0 || credential.status != CredentialStatus::Enabled {
            return Ok(None);
        }
        let (now, horizon) = expiry_window(within_days);
        Ok(self
            .validity
            .not_after(credential)?
            .filter(|not_after| expires_between(*not_after, now, horizon))
            .map(|not_after| u32::try_from((not_after - now) / 86_400).unwrap_or(u32::MAX)))
    }

    /// Whether the token still holds the key `key_id` (a credential's `key_id`): `false` once
    /// it is destroyed (revoke, rekey, destroy). For the operator and the tests.
    pub fn key_in_token(&self, key_id: &str) -> Result<bool, SamError> {
        let id: KeyId = key_id
            .parse()
            .map_err(|_| SamError::InvalidInput(format!("{key_id:?} is not a key id")))?;
        match self.hsm.public_key(&id) {
            Ok(_) => Ok(true),
            Err(cm_pkcs11::HsmError::KeyNotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn existing(&self, id: &CredentialId) -> Result<Credential, SamError> {
        self.store
            .read(|c| c.credential(id))?
            .ok_or_else(|| SamError::UnknownCredential(id.to_string()))
    }

    fn refuse_lifecycle(
        &self,
        event: AuditEvent,
        actor: &str,
        id: &CredentialId,
        e: SamError,
    ) -> SamError {
        self.audit_best_effort(&audit_event(
            event,
            actor,
            &id.to_string(),
            "refused",
            json!({ "reason": e.to_string() }),
        ));
        e
    }

    /// Suspends a credential: it signs nothing until [`Sam::enable_credential`], and every SAD
    /// issued for it is revoked in the same transaction (a SAD from before never signs again,
    /// even after enable). A revoked credential stays revoked ([`SamError::CredentialRevoked`]).
    /// Audited as `credential.disable` with the count of SADs revoked.
    pub fn disable_credential(
        &self,
        id: &CredentialId,
        actor: &Actor,
    ) -> Result<Credential, SamError> {
        self.permit(actor, Action::CredentialDisable, &id.to_string())?;
        let actor = &actor.audit_name();
        self.set_status(
            id,
            CredentialStatus::Disabled,
            AuditEvent::CredentialDisable,
            None,
            actor,
        )
    }

    /// Lifts [`Sam::disable_credential`]. Refused for a revoked credential
    /// ([`SamError::CredentialRevoked`]) and for one whose key is no longer in the token
    /// (`credential destroy`), audited either way as `credential.enable`.
    pub fn enable_credential(
        &self,
        id: &CredentialId,
        actor: &Actor,
    ) -> Result<Credential, SamError> {
        self.permit(actor, Action::CredentialEnable, &id.to_string())?;
        let actor = &actor.audit_name();
        // a credential whose key `credential destroy` removed stays disabled
        let current = self.existing(id)?;
        if current.status != CredentialStatus::Revoked && !self.key_in_token(&current.key_id)? {
            return Err(self.refuse_lifecycle(
                AuditEvent::CredentialEnable,
                actor,
                id,
                SamError::InvalidInput(
                    "the credential's key is no longer in the token (destroyed): it cannot be enabled".into(),
                ),
            ));
        }
        self.set_status(
            id,
            CredentialStatus::Enabled,
            AuditEvent::CredentialEnable,
            None,
            actor,
        )
    }

    /// Revokes a credential for good, with a `reason` (1 to [`MAX_REASON_CHARS`] printable
    /// characters): its status becomes `revoked` and its SADs are revoked in one transaction
    /// (audited `credential.revoke`), then its key (and TOTP key) is destroyed in the token
    /// (audited `key.destroy`). Revoking a revoked credential is refused.
    pub fn revoke_credential(
        &self,
        id: &CredentialId,
        reason: &str,
        actor: &Actor,
    ) -> Result<Credential, SamError> {
        self.permit(actor, Action::CredentialRevoke, &id.to_string())?;
        let actor = &actor.audit_name();
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > MAX_REASON_CHARS
            || reason.chars().any(char::is_control)
        {
            return Err(self.refuse_lifecycle(
                AuditEvent::CredentialRevoke,
                actor,
                id,
                SamError::InvalidInput(format!(
                    "a revocation reason has 1 to {MAX_REASON_CHARS} printable characters"
                )),
            ));
        }
        let credential = self.set_status(
            id,
            CredentialStatus::Revoked,
            AuditEvent::CredentialRevoke,
            Some(reason),
            actor,
        )?;
        let key_id = crate::activation::key_id_of(&credential)?;
        self.destroy_keys(id, &key_id, actor)?;
        Ok(credential)
    }

    /// One status change with its SADs and its audit record, in one transaction.
    fn set_status(
        &self,
        id: &CredentialId,
        status: CredentialStatus,
        event: AuditEvent,
        reason: Option<&str>,
        actor: &str,
    ) -> Result<Credential, SamError> {
        let subject = id.to_string();
        let result = self.store.write(|c| {
            let Some(before) = c.credential(id)? else {
                return Ok(Err(SamError::UnknownCredential(subject.clone())));
            };
            if before.status == CredentialStatus::Revoked {
                return Ok(Err(SamError::CredentialRevoked));
            }
            c.set_credential_status(id, status)?;
            let sads_revoked = if status == CredentialStatus::Enabled {
                0
            } else {
                c.revoke_credential_sads(id)?
            };
            let mut detail = json!({
                "previousStatus": before.status.as_str(),
                "sadsRevoked": sads_revoked,
            });
            if let (Some(reason), Some(map)) = (reason, detail.as_object_mut()) {
                map.insert("reason".into(), json!(reason));
            }
            c.append_audit(&audit_event(event, actor, &subject, "success", detail))?;
            Ok(c.credential(id)?
                .ok_or(SamError::UnknownCredential(subject.clone())))
        })?;
        result.map_err(|e| match e {
            SamError::UnknownCredential(_) => e,
            e => self.refuse_lifecycle(event, actor, id, e),
        })
    }

    /// Gives a credential a new key generated in the token (`spec`, else the old one's) and a
    /// new certificate, keeping its ID and status; its SADs are revoked with the change (one
    /// transaction, audited `credential.rekey` with the old and new key ids and serials), then
    /// the old key is destroyed (audited `key.destroy`). With [`RekeyCertifier::Csr`] the
    /// credential is pending until its chain is imported, and the request is returned. A
    /// revoked credential is refused; a failure before the change destroys the new key.
    pub fn rekey_credential(
        &self,
        id: &CredentialId,
        spec: Option<KeySpec>,
        certifier: RekeyCertifier<'_>,
        actor: &Actor,
    ) -> Result<Rekeyed, SamError> {
        self.permit(actor, Action::CredentialRekey, &id.to_string())?;
        let actor = &actor.audit_name();
        let refuse = |e| self.refuse_lifecycle(AuditEvent::CredentialRekey, actor, id, e);
        let before = self.existing(id)?;
        if before.status == CredentialStatus::Revoked {
            return Err(refuse(SamError::CredentialRevoked));
        }
        let owner = self.owner_of(&before)?;
        if let RekeyCertifier::Csr(subject) = certifier {
            crate::csr::check_subject(subject, &owner.name).map_err(refuse)?;
        }
        let old_key = crate::activation::key_id_of(&before)?;
        let spec = match spec {
            Some(s) => s,
            None => before
                .key_spec
                .parse()
                .map_err(|_| SamError::InvalidInput("stored key spec is malformed".into()))?,
        };
        let new_key = self.hsm.generate_key(spec, &id.to_string())?;
        let changed = self.switch_key(id, &before, &owner.name, spec, &new_key, certifier, actor);
        let (credential, certificate_der) = match changed {
            Ok(done) => done,
            Err(e) => {
                if let Err(destroy) = self.hsm.destroy_key(&new_key) {
                    tracing::error!(error = %destroy, key = %new_key, "could not destroy the new key of a failed rekey");
                }
                return Err(refuse(e));
            }
        };
        self.destroy_signing_key(id, &old_key, actor)?;
        let csr_pem = match certifier {
            RekeyCertifier::Csr(subject) => Some(self.request_for_id(id, subject, actor)?),
            RekeyCertifier::DevCa => None,
        };
        Ok(Rekeyed {
            credential,
            certificate_der,
            csr_pem,
            old_key_id: old_key.to_string(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn switch_key(
        &self,
        id: &CredentialId,
        before: &Credential,
        owner: &str,
        spec: KeySpec,
        new_key: &KeyId,
        certifier: RekeyCertifier<'_>,
        actor: &str,
    ) -> Result<(Credential, Vec<u8>), SamError> {
        let cert = match certifier {
            RekeyCertifier::DevCa => {
                let public = self.hsm.public_key(new_key)?;
                Some(
                    self.ca
                        .issue_signer_certificate(&self.hsm, owner, &public)?,
                )
            }
            RekeyCertifier::Csr(_) => None,
        };
        let chain = match &cert {
            Some(c) => vec![c.der.clone(), self.ca.certificate_der().to_vec()],
            None => Vec::new(),
        };
        let new_serial = cert.as_ref().map(|c| c.serial_hex.clone());
        let subject = id.to_string();
        let credential = self.store.write(|c| {
            let Some(now) = c.credential(id)? else {
                return Ok(Err(SamError::UnknownCredential(subject.clone())));
            };
            // changed meanwhile (revoked, or rekeyed by someone else): give up
            if now.status == CredentialStatus::Revoked || now.key_id != before.key_id {
                return Ok(Err(SamError::CredentialRevoked));
            }
            c.set_credential_key(
                id,
                &new_key.to_string(),
                &spec.to_string(),
                &chain,
                new_serial.as_deref(),
            )?;
            let sads_revoked = c.revoke_credential_sads(id)?;
            c.append_audit(&audit_event(
                AuditEvent::CredentialRekey,
                actor,
                &subject,
                "success",
                json!({
                    "oldKeyId": before.key_id, "newKeyId": new_key.to_string(),
                    "oldKeyAlgo": before.key_spec, "newKeyAlgo": spec.to_string(),
                    "oldCertificateSerial": before.cert_serial,
                    "newCertificateSerial": new_serial,
                    "sadsRevoked": sads_revoked,
                }),
            ))?;
            Ok(c.credential(id)?
                .ok_or(SamError::UnknownCredential(subject.clone())))
        })??;
        Ok((credential, cert.map(|c| c.der).unwrap_or_default()))
    }
}

/// Now and the end of a `within_days` warning window, Unix seconds.
fn expiry_window(within_days: u32) -> (i64, i64) {
    let now = storage::utc_now().and_utc().timestamp();
    (
        now,
        now.saturating_add(i64::from(within_days).saturating_mul(86_400)),
    )
}

/// The expiry rule: a certificate ending at `not_after` (Unix seconds) is valid at `now` and
/// ends no later than `horizon`.
fn expires_between(not_after: i64, now: i64, horizon: i64) -> bool {
    now <= not_after && not_after <= horizon
}
