//! Credential provisioning: the SAM generates the key pair through the crypto module, assigns it
//! to the signer with a certificate over the token's own public key (Part II 3.1.1.3-4), keeps
//! the activation factors as verifiers, and audits key generation and destruction
//! (Part I 7.1.4.1). Nothing is left half-made: a key whose credential could not be stored is
//! destroyed again.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cm_pkcs11::{KeyId, KeySpec};
use openssl::pkey::PKey;
use openssl::x509::X509;
use secrecy::SecretString;
use storage::{
    AuthMode, Credential, CredentialId, CredentialStatus, FactorKind, NewCredential, Scal,
};

use crate::secrets::{hash_secret, random_bytes};
use crate::{Sam, SamError, audit_event};

/// The most signatures one authorization may allow on a credential.
pub const MAX_MULTISIGN: u32 = 1000;
const OTP_ISSUER: &str = "csc-server";

/// What an operator asks for when creating a credential.
pub struct NewCredentialRequest {
    pub user_name: String,
    pub spec: KeySpec,
    pub scal: Scal,
    pub multisign: u32,
    pub pin: SecretString,
    pub with_otp: bool,
    pub description: Option<String>,
}

/// A credential just created, with what is shown once: the TOTP provisioning URI.
pub struct CreatedCredential {
    pub credential: Credential,
    pub certificate_der: Vec<u8>,
    pub otpauth_uri: Option<String>,
}

fn check_pin_policy(pin: &SecretString) -> Result<(), SamError> {
    use secrecy::ExposeSecret;
    let len = pin.expose_secret().chars().count();
    if !(4..=64).contains(&len) {
        return Err(SamError::InvalidInput(
            "the PIN must have between 4 and 64 characters".into(),
        ));
    }
    Ok(())
}

fn new_totp(secret: Vec<u8>, account: &str) -> Result<totp_rs::Totp, SamError> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(OTP_ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| SamError::InvalidInput(format!("OTP setup: {e}")))
}

impl Sam {
    /// Generates a key in the HSM for `req.user_name`, certifies it with the development CA and
    /// stores the credential with its PIN (and OTP) verifier. Blocking.
    pub fn create_credential(
        &self,
        req: NewCredentialRequest,
        actor: &str,
    ) -> Result<CreatedCredential, SamError> {
        check_pin_policy(&req.pin)?;
        if req.multisign == 0 || req.multisign > MAX_MULTISIGN {
            return Err(SamError::InvalidInput(format!(
                "multisign must be between 1 and {MAX_MULTISIGN}"
            )));
        }
        let user = self
            .store
            .read(|c| c.user_by_name(&req.user_name))?
            .ok_or_else(|| SamError::UnknownUser(req.user_name.clone()))?;
        let credential_id = CredentialId::new();
        let key_id = match self.hsm.generate_key(req.spec, &credential_id.to_string()) {
            Ok(k) => k,
            Err(e) => {
                self.audit_best_effort(audit_event(
                    "key.generate",
                    actor,
                    &credential_id.to_string(),
                    "failure",
                    serde_json::json!({ "keyAlgo": req.spec.to_string(), "error": e.to_string() }),
                ));
                return Err(e.into());
            }
        };
        match self.finish_credential(&req, &user, credential_id, &key_id, actor) {
            Ok(created) => Ok(created),
            Err(e) => {
                if let Err(destroy) = self.hsm.destroy_key(&key_id) {
                    tracing::error!(error = %destroy, key = %key_id, "could not destroy the key of a credential that failed");
                }
                Err(e)
            }
        }
    }

    fn finish_credential(
        &self,
        req: &NewCredentialRequest,
        user: &storage::User,
        credential_id: CredentialId,
        key_id: &KeyId,
        actor: &str,
    ) -> Result<CreatedCredential, SamError> {
        let public = self.hsm.public_key(key_id)?;
        let cert = self
            .ca
            .issue_signer_certificate(&self.hsm, &user.name, &public)?;
        let pin_verifier = hash_secret(&req.pin)?;
        let otp = if req.with_otp {
            let totp = new_totp(random_bytes(20)?, &user.name)?;
            let uri = totp
                .to_url()
                .map_err(|e| SamError::InvalidInput(format!("OTP setup: {e}")))?;
            Some((totp.secret().to_base32(), uri))
        } else {
            None
        };
        let new = NewCredential {
            id: credential_id,
            user_id: user.id,
            key_id: key_id.to_string(),
            key_spec: req.spec.to_string(),
            cert_chain: vec![cert.der.clone(), self.ca.certificate_der().to_vec()],
            cert_serial: Some(cert.serial_hex.clone()),
            scal: req.scal,
            multisign: i32::try_from(req.multisign).unwrap_or(i32::MAX),
            status: CredentialStatus::Enabled,
            auth_mode: AuthMode::Explicit,
            description: req.description.clone(),
        };
        let subject = credential_id.to_string();
        let credential = self.store.write(|c| {
            let credential = c.create_credential(&new)?;
            c.set_factor(&credential_id, FactorKind::Pin, &pin_verifier)?;
            if let Some((secret, _)) = &otp {
                c.set_factor(&credential_id, FactorKind::Otp, secret)?;
            }
            c.append_audit(&audit_event(
                "key.generate",
                actor,
                &subject,
                "success",
                serde_json::json!({
                    "user": user.name, "keyId": key_id.to_string(), "keyAlgo": req.spec.to_string(),
                }),
            ))?;
            c.append_audit(&audit_event(
                "credential.create",
                actor,
                &subject,
                "success",
                serde_json::json!({
                    "user": user.name, "certificateSerial": cert.serial_hex,
                    "SCAL": req.scal.as_str(), "multisign": req.multisign, "otp": req.with_otp,
                }),
            ))?;
            Ok(credential)
        })?;
        Ok(CreatedCredential {
            credential,
            certificate_der: cert.der,
            otpauth_uri: otp.map(|(_, uri)| uri),
        })
    }

    /// Replaces a credential's certificate chain (signer first) with one issued elsewhere.
    /// Refused unless the first certificate certifies exactly the key in the token and each
    /// certificate is signed by the next (Part II 3.1.1.4).
    pub fn import_certificate_chain(
        &self,
        credential_id: &CredentialId,
        chain_der: Vec<Vec<u8>>,
        actor: &str,
    ) -> Result<Credential, SamError> {
        let subject = credential_id.to_string();
        let result = self.check_chain(credential_id, &chain_der);
        let serial = match result {
            Ok(serial) => serial,
            Err(e) => {
                self.audit_best_effort(audit_event(
                    "credential.import_chain",
                    actor,
                    &subject,
                    "refused",
                    serde_json::json!({ "reason": e.to_string() }),
                ));
                return Err(e);
            }
        };
        Ok(self.store.write(|c| {
            c.set_certificate_chain(credential_id, &chain_der, Some(&serial))?;
            c.append_audit(&audit_event(
                "credential.import_chain",
                actor,
                &subject,
                "success",
                serde_json::json!({ "certificateSerial": serial, "chainLength": chain_der.len() }),
            ))?;
            c.credential(credential_id)?
                .ok_or_else(|| storage::StorageError::NotFound)
        })?)
    }

    /// Checks a chain against the credential's key; returns the signer certificate's serial.
    fn check_chain(
        &self,
        credential_id: &CredentialId,
        chain_der: &[Vec<u8>],
    ) -> Result<String, SamError> {
        let credential = self
            .store
            .read(|c| c.credential(credential_id))?
            .ok_or_else(|| SamError::UnknownCredential(credential_id.to_string()))?;
        let key_id: KeyId = credential
            .key_id
            .parse()
            .map_err(|_| SamError::InvalidInput("stored key id is malformed".into()))?;
        let certs = chain_der
            .iter()
            .map(|der| X509::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SamError::InvalidChain(format!("not a DER certificate: {e}")))?;
        let signer = certs
            .first()
            .ok_or_else(|| SamError::InvalidChain("the chain is empty".into()))?;
        let token_key = PKey::public_key_from_der(&self.hsm.public_key(&key_id)?.spki_der)?;
        if !signer.public_key()?.public_eq(&token_key) {
            return Err(SamError::KeyMismatch);
        }
        for pair in certs.windows(2) {
            if let [child, parent] = pair {
                let parent_key = parent.public_key()?;
                if !child.verify(&parent_key)? {
                    return Err(SamError::InvalidChain(
                        "a certificate is not signed by the next one in the chain".into(),
                    ));
                }
            }
        }
        let serial = signer.serial_number().to_bn()?.to_hex_str()?.to_lowercase();
        Ok(serial)
    }

    /// Destroys a credential's key with the HSM's own mechanism (Part III appendix 1.6). The
    /// credential is disabled first, so a failure half-way leaves it unusable, never usable
    /// without its record.
    pub fn destroy_credential_key(
        &self,
        credential_id: &CredentialId,
        actor: &str,
    ) -> Result<(), SamError> {
        let subject = credential_id.to_string();
        let credential = self
            .store
            .read(|c| c.credential(credential_id))?
            .ok_or_else(|| SamError::UnknownCredential(subject.clone()))?;
        let key_id: KeyId = credential
            .key_id
            .parse()
            .map_err(|_| SamError::InvalidInput("stored key id is malformed".into()))?;
        self.store
            .write(|c| c.set_credential_status(credential_id, CredentialStatus::Disabled))?;
        let destroyed = self.hsm.destroy_key(&key_id);
        let outcome = if destroyed.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.store.write(|c| {
            c.append_audit(&audit_event(
                "key.destroy",
                actor,
                &subject,
                outcome,
                serde_json::json!({ "keyId": key_id.to_string() }),
            ))
        })?;
        destroyed.map_err(SamError::from)
    }

    /// The certificate chain of a credential, base64 DER, signer first.
    pub fn chain_base64(credential: &Credential) -> Result<Vec<String>, SamError> {
        Ok(credential
            .cert_chain_der()?
            .iter()
            .map(|c| STANDARD.encode(c))
            .collect())
    }

    /// Audits a refusal or failure that has no transaction of its own; an audit write failure
    /// is logged, never hidden.
    fn audit_best_effort(&self, event: storage::NewAuditEvent) {
        if let Err(e) = self.store.write(|c| c.append_audit(&event)) {
            tracing::error!(error = %e, event = %event.event, "could not write an audit record");
        }
    }
}
