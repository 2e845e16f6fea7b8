//! The server's own signing keys in the token — the time-stamping authority's ([`crate::tsa`])
//! and the audit seal key ([`crate::audit_export`]): EC P-256 key pairs generated inside the
//! token like every signing key (sensitive, non-extractable, sign-only; Part III 1, 16, 17), each
//! used only through its label, as a credential's key is through its ID
//! ([`cm_pkcs11::Hsm::sign_digests_for`]): a key id pointed at another key signs nothing.

use cm_pkcs11::{HashAlg, Hsm, KeyId, KeySpec, SignMechanism};

use crate::SamError;

/// The algorithm of every service key: P-256 signs at a tenth of the cost of RSA-2048 in
/// SoftHSM2, and OpenSSL, pyHanko and every auditor's tool verify it.
pub(crate) const SERVICE_KEY_SPEC: KeySpec = KeySpec::EcP256;

/// A service key: its id in the token and the label it must carry to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServiceKey {
    pub(crate) id: KeyId,
    pub(crate) label: &'static str,
}

impl ServiceKey {
    /// Generates a new key pair labelled `label` in the token. Blocking.
    pub(crate) fn generate(hsm: &Hsm, label: &'static str) -> Result<ServiceKey, SamError> {
        Ok(ServiceKey {
            id: hsm.generate_key(SERVICE_KEY_SPEC, label)?,
            label,
        })
    }

    /// ECDSA (DER `Ecdsa-Sig-Value`) over the SHA-256 `digest`, made in the token by this key
    /// only if it is labelled as it should be ([`cm_pkcs11::HsmError::KeyNotBound`] otherwise).
    /// Blocking.
    pub(crate) fn sign_sha256(&self, hsm: &Hsm, digest: &[u8]) -> Result<Vec<u8>, SamError> {
        hsm.sign_digests_for(
            &self.id,
            self.label,
            &SignMechanism::Ecdsa {
                hash: HashAlg::Sha256,
            },
            &[digest.to_vec()],
        )?
        .pop()
        .ok_or_else(|| {
            SamError::Hsm(cm_pkcs11::HsmError::Encoding(
                "the token returned no signature".into(),
            ))
        })
    }
}
