//! Certificate signing requests for the operator's own CA (README "Certificates from your CA"): a
//! PKCS#10 request (RFC 2986) over a credential's key, its `CertificationRequestInfo` built with
//! RustCrypto's `x509-cert` types (DER by `der`) and signed IN THE TOKEN with the credential's key
//! (bound to the credential by its label, as every signature is). `credential import-chain`
//! completes it; until then the credential has no certificate and cannot sign
//! ([`SamError::CertificatePending`]).

use cm_pkcs11::{HashAlg, KeyId, KeySpec, SignMechanism};
use const_oid::db::{rfc5280, rfc5912};
use der::asn1::{BitString, Null, OctetString};
use der::{Any, Decode, Encode};
use serde_json::json;
use std::str::FromStr;
use storage::{Credential, CredentialId};
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::activation::key_id_of;
use crate::roles::{Action, Actor};
use crate::{AuditEvent, Sam, SamError, audit_event};

fn csr_error(e: impl std::fmt::Display) -> SamError {
    SamError::InvalidInput(format!("cannot build the certificate request: {e}"))
}

/// The subject of a request: an RFC 4514 string (`CN=Alice Example,O=Example,C=BE`), else
/// `CN=<the owner's login name>`. Values are written as UTF8String.
fn subject_name(subject: Option<&str>, user_name: &str) -> Result<Name, SamError> {
    let text = match subject {
        Some(s) => s.to_owned(),
        // a login name with RFC 4514 specials is escaped
        None => format!("CN={}", escape_rfc4514(user_name)),
    };
    let name = Name::from_str(&text)
        .map_err(|e| SamError::InvalidInput(format!("invalid subject {text:?}: {e}")))?;
    if name.0.is_empty() {
        return Err(SamError::InvalidInput("the subject is empty".into()));
    }
    Ok(name)
}

/// Checks a request subject before anything is created (see [`subject_name`]).
pub(crate) fn check_subject(subject: Option<&str>, user_name: &str) -> Result<(), SamError> {
    subject_name(subject, user_name).map(|_| ())
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, ch) in value.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(ch, '#' | ' '));
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The signature algorithm of a request signed by a key of `spec`, and its mechanism: RSA
/// PKCS#1 v1.5 with SHA-256, ECDSA with SHA-256 (P-256) or SHA-384 (P-384).
fn signature_algorithm(
    spec: KeySpec,
) -> Result<(AlgorithmIdentifierOwned, SignMechanism), SamError> {
    Ok(match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => (
            AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::encode_from(&Null).map_err(csr_error)?),
            },
            SignMechanism::RsaPkcs1v15 {
                hash: HashAlg::Sha256,
            },
        ),
        KeySpec::EcP256 => (
            AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            SignMechanism::Ecdsa {
                hash: HashAlg::Sha256,
            },
        ),
        KeySpec::EcP384 => (
            AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_384,
                parameters: None,
            },
            SignMechanism::Ecdsa {
                hash: HashAlg::Sha384,
            },
        ),
    })
}

/// The extensionRequest attribute (RFC 2985 §5.4.2): keyUsage digitalSignature +
/// nonRepudiation, critical — what a signing credential's certificate needs (the CA decides).
fn extension_request() -> Result<Attribute, SamError> {
    let usage = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation);
    let ext = Extension {
        extn_id: rfc5280::ID_CE_KEY_USAGE,
        critical: true,
        extn_value: OctetString::new(usage.to_der().map_err(csr_error)?).map_err(csr_error)?,
    };
    Attribute::try_from(ExtensionReq(vec![ext])).map_err(csr_error)
}

impl Sam {
    /// A PKCS#10 certificate request (PEM) over the credential's key, signed in the token with
    /// that key, for `subject` (RFC 4514; default `CN=<owner>`). Written ahead in the audit log
    /// as `credential.csr` (the subject and the request's SHA-256) before the key signs, like
    /// every signature. Blocking. Refusals: [`SamError::UnknownCredential`],
    /// [`SamError::InvalidInput`] (a subject that does not parse).
    pub fn certificate_request(
        &self,
        credential_id: &CredentialId,
        subject: Option<&str>,
        actor: &Actor,
    ) -> Result<String, SamError> {
        self.permit(actor, Action::CredentialCsr, &credential_id.to_string())?;
        self.request_for_id(credential_id, subject, &actor.audit_name())
    }

    /// [`Sam::certificate_request`] once the caller's role is checked (also the request of a
    /// rekey, whose own role check covers it), audited under `actor`.
    pub(crate) fn request_for_id(
        &self,
        credential_id: &CredentialId,
        subject: Option<&str>,
        actor: &str,
    ) -> Result<String, SamError> {
        let credential = self
            .store
            .read(|c| c.credential(credential_id))?
            .ok_or_else(|| SamError::UnknownCredential(credential_id.to_string()))?;
        let owner = self.owner_of(&credential)?;
        let name = subject_name(subject, &owner.name)?;
        self.request_for(&credential, name, actor)
    }

    /// Builds and signs the request for `credential` (see [`Sam::certificate_request`]).
    pub(crate) fn request_for(
        &self,
        credential: &Credential,
        subject: Name,
        actor: &str,
    ) -> Result<String, SamError> {
        let spec: KeySpec = credential
            .key_spec
            .parse()
            .map_err(|_| SamError::InvalidInput("stored key spec is malformed".into()))?;
        let key_id: KeyId = key_id_of(credential)?;
        let public = self.hsm.public_key(&key_id)?;
        let info = CertReqInfo {
            version: Version::V1,
            subject: subject.clone(),
            public_key: SubjectPublicKeyInfoOwned::from_der(&public.spki_der).map_err(csr_error)?,
            attributes: vec![extension_request()?].try_into().map_err(csr_error)?,
        };
        let tbs = info.to_der().map_err(csr_error)?;
        let (algorithm, mechanism) = signature_algorithm(spec)?;
        let digest = mechanism.hash().digest(&tbs);
        let subject_text = subject.to_string();
        let id = credential.id.to_string();
        // write-ahead: no signature of a credential's key leaves without its record
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::CredentialCsr,
                actor,
                &id,
                "success",
                json!({
                    "subject": subject_text,
                    "keyId": key_id.to_string(),
                    "tbsSha256": hex::encode(openssl::sha::sha256(&tbs)),
                }),
            ))
        })?;
        let signature = self
            .hsm
            .sign_digests_for(&key_id, &id, &mechanism, &[digest])?
            .pop()
            .ok_or_else(|| csr_error("the token returned no signature"))?;
        let request = CertReq {
            info,
            algorithm,
            signature: BitString::from_bytes(&signature).map_err(csr_error)?,
        };
        let der = request.to_der().map_err(csr_error)?;
        // a self-check by an independent parser: the request verifies under the token's key
        let parsed = openssl::x509::X509Req::from_der(&der)?;
        let token_key = public.to_openssl()?;
        if !parsed.verify(&token_key)? {
            return Err(csr_error("the signed request does not verify"));
        }
        let pem = parsed.to_pem()?;
        String::from_utf8(pem).map_err(csr_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_rfc4514_order() {
        let name = subject_name(Some("CN=Alice,O=Example,C=BE"), "x").unwrap();
        assert_eq!(name.to_string(), "CN=Alice,O=Example,C=BE");
        // DER order is the reverse of the string's: C first
        assert_eq!(name.0.len(), 3);
        assert!(subject_name(Some("NOPE"), "x").is_err());
        assert_eq!(subject_name(None, "a,b").unwrap().to_string(), "CN=a\\,b");
    }
}
