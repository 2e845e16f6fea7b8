//! The validity period of each credential's signer certificate, parsed once (parsing
//! the X.509 certificate on every request was a quarter of signHash's CPU).
//!
//! Keyed by the SHA-256 of the stored chain text, so a chain replaced by `credential
//! import-chain` (on this instance or another sharing the database) is parsed afresh; the
//! judgement itself is made on every request against the UTC clock (Part I 7.1.1.12).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use storage::Credential;

use crate::SamError;

/// Entries kept before the cache starts over (bounds memory with many credentials).
const MAX_ENTRIES: usize = 65_536;

/// notBefore / notAfter (Unix seconds) and the subject shown when refusing.
struct Validity {
    not_before: i64,
    not_after: i64,
    subject: String,
}

/// Parsed certificate validity periods, shared by the clones of a [`crate::Sam`].
#[derive(Default)]
pub(crate) struct ValidityCache {
    map: Mutex<HashMap<[u8; 32], Option<Arc<Validity>>>>,
}

fn unix(t: &Asn1TimeRef) -> Result<i64, SamError> {
    let d = Asn1Time::from_unix(0)?.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// The validity of the first (signer) certificate of the chain; `None` without a certificate.
fn parse(credential: &Credential) -> Result<Option<Validity>, SamError> {
    let chain = credential.cert_chain_der()?;
    let Some(der) = chain.first() else {
        return Ok(None);
    };
    let cert = openssl::x509::X509::from_der(der)?;
    let subject = cert
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok(Some(Validity {
        not_before: unix(cert.not_before())?,
        not_after: unix(cert.not_after())?,
        subject,
    }))
}

impl ValidityCache {
    /// The signer certificate's notAfter (Unix seconds), `None` without a certificate.
    pub(crate) fn not_after(&self, credential: &Credential) -> Result<Option<i64>, SamError> {
        Ok(self.validity(credential)?.map(|v| v.not_after))
    }

    /// The parsed validity of the credential's signer certificate, from the cache.
    fn validity(&self, credential: &Credential) -> Result<Option<Arc<Validity>>, SamError> {
        let key = openssl::sha::sha256(credential.cert_chain.as_bytes());
        let cached = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let validity = match cached {
            Some(v) => v,
            None => {
                let parsed = parse(credential)?.map(Arc::new);
                let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
                map.insert(key, parsed.clone());
                parsed
            }
        };
        Ok(validity)
    }

    /// A key is not activated under a certificate outside its validity period, judged on the
    /// UTC clock now (Part I 7.1.1.12): [`SamError::CertificateExpired`] naming the subject. A
    /// credential without a certificate (waiting for the operator's CA) is
    /// [`SamError::CertificatePending`].
    pub(crate) fn check(&self, credential: &Credential) -> Result<(), SamError> {
        let validity = self.validity(credential)?;
        let Some(v) = validity else {
            return Err(SamError::CertificatePending);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SamError::InvalidInput("the system clock is before 1970".into()))?
            .as_secs();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        if v.not_after < now || v.not_before > now {
            return Err(SamError::CertificateExpired(v.subject.clone()));
        }
        Ok(())
    }
}
