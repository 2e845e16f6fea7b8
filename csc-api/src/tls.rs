//! `serve`'s own TLS (README "TLS"): rustls with the ring provider, TLS 1.2 and 1.3 only with
//! rustls' default (modern, forward-secret AEAD) suites, the certificate chain and key read from
//! PEM files and swapped in place on SIGHUP ([`ReloadingCert`]: connections already open keep
//! theirs, new handshakes get the new one; files that do not load keep the old one), and
//! optionally client certificates verified against a CA file (`tls_client_ca_file`).
//!
//! The channel protects the signer's credentials, tokens and SADs between the signature
//! application and the server (requirement II 3.2.1.2: confidentiality of secret SAD parts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Whether a client must present a certificate when `tls_client_ca_file` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Every connection must present a certificate issued under the client CA (machine clients
    /// only; a browser without one cannot reach the OAuth 2.0 page).
    #[default]
    Required,
    /// A connection may present none; one that presents a certificate must present a valid one.
    Optional,
}

/// The TLS settings of `serve` (README "Configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server certificate first, then its chain.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM: the CA certificate(s) client certificates must chain to; `None`: no client
    /// certificates asked.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is required (only with `client_ca_file`).
    pub client_auth: ClientAuth,
}

/// Why TLS could not be set up or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid PEM: {detail}")]
    Pem { path: PathBuf, detail: String },
    #[error("{path} holds no certificate (PEM `CERTIFICATE`)")]
    NoCertificate { path: PathBuf },
    #[error(
        "{path} holds no private key (PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
    )]
    NoKey { path: PathBuf },
    #[error("the key in {key} does not fit the certificate in {cert}: {detail}")]
    Key {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("the client CA file {path} is not usable: {detail}")]
    ClientCa { path: PathBuf, detail: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider: ring, with rustls' default cipher suites and key exchange groups.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, in order.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The certificate chain and key of `files`, checked to belong together.
fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key_file.to_owned(),
        },
        e => TlsError::Pem {
            path: key_file.to_owned(),
            detail: e.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Key {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        detail: e.to_string(),
    })
}

/// What the log says about a loaded certificate: its subject and validity, and a warning
/// when it is expired or not yet valid (it is served all the same: the operator decides).
fn log_loaded(key: &CertifiedKey, file: &Path, what: &str) {
    let Some(leaf) = key
        .cert
        .first()
        .and_then(|der| openssl::x509::X509::from_der(der).ok())
    else {
        tracing::info!(file = %file.display(), "{what}");
        return;
    };
    let subject = leaf
        .subject_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let not_after = leaf.not_after().to_string();
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok();
    let expired = now.as_ref().is_some_and(|now| leaf.not_after() < now);
    let early = now.as_ref().is_some_and(|now| leaf.not_before() > now);
    tracing::info!(file = %file.display(), subject, not_after, chain = key.cert.len(), "{what}");
    if expired || early {
        tracing::warn!(
            file = %file.display(),
            not_before = %leaf.not_before(),
            not_after,
            "the TLS certificate is {}: clients will refuse it",
            if expired { "expired" } else { "not yet valid" }
        );
    }
}

/// The server certificate resolver: the chain and key of two PEM files, read at start and again
/// by [`ReloadingCert::reload`] (on SIGHUP). A handshake takes the pair current when it starts.
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair (refused when either file does not load or they do not belong together).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ReloadingCert, TlsError> {
        let provider = provider();
        let key = load_certified_key(cert_file, key_file, &provider)?;
        log_loaded(&key, cert_file, "TLS certificate loaded");
        Ok(ReloadingCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Reads the files again and swaps the pair in; on any error the current pair stays and the
    /// error is returned (the caller logs it).
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.cert_file, &self.key_file, &self.provider)?;
        log_loaded(&key, &self.cert_file, "TLS certificate reloaded");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration of `serve`: TLS 1.3 and 1.2 only, the certificate from `cert`, and
/// client certificates per `settings`. The client CA file is read here, once (a restart changes
/// it).
pub fn server_config(
    settings: &TlsSettings,
    cert: Arc<ReloadingCert>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &settings.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(path)? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match settings.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            }
            .build()
            .map_err(|e| TlsError::ClientCa {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(builder.with_cert_resolver(cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_broken_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = ReloadingCert::load(&cert, &key).expect_err("missing");
        assert!(err.to_string().contains("cert.pem"), "{err}");
        std::fs::write(&cert, "not PEM at all\n").expect("write");
        std::fs::write(&key, "").expect("write");
        let err = ReloadingCert::load(&cert, &key).expect_err("no certificate");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }

    #[test]
    fn client_auth_reads_as_lowercase_words() {
        #[derive(Deserialize)]
        struct W {
            a: ClientAuth,
        }
        let w: W = serde_json::from_str(r#"{"a":"optional"}"#).expect("optional");
        assert_eq!(w.a, ClientAuth::Optional);
        assert!(serde_json::from_str::<W>(r#"{"a":"sometimes"}"#).is_err());
        assert_eq!(ClientAuth::default(), ClientAuth::Required);
    }
}
