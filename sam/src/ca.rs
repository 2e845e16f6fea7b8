//! The development CA: its key is generated inside the HSM like any signer key, and it issues
//! signer certificates over the HSM-held public key, so the certified key is exactly the key in
//! the token (Part II 3.1.1.4). Not for production: a real deployment imports chains from its CA.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cm_pkcs11::{HashAlg, Hsm, KeyId, KeySpec, PublicKey, SignMechanism};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm, SigningKey,
};
use serde::{Deserialize, Serialize};

use crate::SamError;
use crate::secrets::random_bytes;

const CA_COMMON_NAME: &str = "CSC Development CA";
const CA_ORGANIZATION: &str = "csc-server (not for production use)";
const CA_KEY_LABEL: &str = "csc-dev-ca";
const CA_SPEC: KeySpec = KeySpec::EcP256;
const CA_VALIDITY_DAYS: i64 = 3650;
const SIGNER_VALIDITY_DAYS: i64 = 730;
/// The TSA certificate's validity (within the CA's ten years).
const TSA_VALIDITY_DAYS: i64 = 1825;
/// id-ce-extKeyUsage (RFC 5280 §4.2.1.12).
const EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37];

/// What a key file of the data directory keeps: a key's id in the token and its certificate
/// (base64 DER). The development CA's `dev-ca.json` and the TSA's file ([`crate::tsa`]) are
/// such files. Neither member is secret.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    key_id: String,
    certificate: String,
}

/// Reads the key file at `path`: the key's id and the certificate (DER). `kind` names the file
/// in the errors (`{path} is not a {kind} file`), which `error` makes.
pub(crate) fn read_key_file(
    path: &Path,
    kind: &str,
    error: fn(String) -> SamError,
) -> Result<(KeyId, Vec<u8>), SamError> {
    let text = fs::read_to_string(path)
        .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
    let file: KeyFile = serde_json::from_str(&text)
        .map_err(|e| error(format!("{} is not a {kind} file: {e}", path.display())))?;
    let key_id: KeyId = file
        .key_id
        .parse()
        .map_err(|_| error(format!("{}: bad key id", path.display())))?;
    let cert_der = STANDARD
        .decode(file.certificate)
        .map_err(|e| error(format!("{}: bad certificate: {e}", path.display())))?;
    Ok((key_id, cert_der))
}

/// Writes the key file at `path` (through a temporary file renamed over it, so a crash never
/// leaves half a file). `kind` and `error` as for [`read_key_file`].
pub(crate) fn write_key_file(
    path: &Path,
    key_id: &KeyId,
    cert_der: &[u8],
    kind: &str,
    error: fn(String) -> SamError,
) -> Result<(), SamError> {
    let file = KeyFile {
        key_id: key_id.to_string(),
        certificate: STANDARD.encode(cert_der),
    };
    let text = serde_json::to_string_pretty(&file)
        .map_err(|e| error(format!("cannot encode the {kind} file: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| error(format!("cannot write {}: {e}", path.display())))
}

/// A certificate issued by the development CA.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub serial_hex: String,
}

/// The development CA, whose private key never leaves the HSM.
#[derive(Debug, Clone)]
pub struct DevCa {
    key_id: KeyId,
    raw_public_key: Vec<u8>,
    cert_der: Vec<u8>,
}

/// The key identifier of a public key, RFC 5280 §4.2.1.2 method 1: the SHA-1 of the value of
/// the subjectPublicKey BIT STRING (`raw_public_key`, without tag, length or unused-bits
/// octet). 20 bytes. Every certificate the CA issues carries it as its subjectKeyIdentifier,
/// and the CA's own as its authorityKeyIdentifier (RFC 5280 §4.2.1.1).
pub fn key_identifier(raw_public_key: &[u8]) -> Vec<u8> {
    openssl::sha::sha1(raw_public_key).to_vec()
}

/// An HSM-held key seen through rcgen's signing interface.
struct HsmSigningKey<'a> {
    hsm: &'a Hsm,
    key_id: &'a KeyId,
    raw_public_key: &'a [u8],
}

impl PublicKeyData for HsmSigningKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.raw_public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(CA_SPEC)
    }
}

impl SigningKey for HsmSigningKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = HashAlg::Sha256.digest(msg);
        self.hsm
            .sign_digest(
                self.key_id,
                &SignMechanism::Ecdsa {
                    hash: HashAlg::Sha256,
                },
                &digest,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "the HSM refused to sign a certificate with the CA key");
                rcgen::Error::RemoteKeyError
            })
    }
}

/// A subject public key read from the token, for rcgen.
struct TokenPublicKey {
    raw: Vec<u8>,
    spec: KeySpec,
}

impl PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        rcgen_algorithm(self.spec)
    }
}

/// The rcgen algorithm whose key identifier matches the key type (for an RSA subject key the
/// SubjectPublicKeyInfo says rsaEncryption whatever the size).
fn rcgen_algorithm(spec: KeySpec) -> &'static SignatureAlgorithm {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        KeySpec::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeySpec::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    }
}

/// The CA's parameters; `ca_key_id` is its [`key_identifier`]: its subjectKeyIdentifier, and
/// the authorityKeyIdentifier of everything it signs, itself included (a root may omit the
/// AKI, RFC 5280 §4.2.1.1, but strict path builders and `openssl req -x509` write it).
fn ca_params(ca_key_id: Vec<u8>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.key_identifier_method = KeyIdMethod::PreSpecified(ca_key_id);
    params.use_authority_key_identifier_extension = true;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// An end-entity certificate's parameters: subject CN, valid from now for `days`, not a CA,
/// digitalSignature + nonRepudiation, with the CA's key identifier.
fn leaf_params(common_name: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    params
}

fn random_serial() -> Result<(SerialNumber, String), SamError> {
    let mut bytes = random_bytes(16)?;
    if let Some(first) = bytes.first_mut() {
        // a positive INTEGER without a leading zero octet
        *first = (*first & 0x7f) | 0x40;
    }
    let hex = hex::encode(&bytes);
    Ok((SerialNumber::from_slice(&bytes), hex))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
}

impl DevCa {
    /// Loads the CA described by `path`, or creates its key in the token and its self-signed
    /// certificate. Returns whether it was created.
    pub fn load_or_create(hsm: &Hsm, path: &Path) -> Result<(DevCa, bool), SamError> {
        if path.exists() {
            return Ok((Self::load(hsm, path)?, false));
        }
        let key_id = hsm.generate_key(CA_SPEC, CA_KEY_LABEL)?;
        let created = Self::self_sign(hsm, key_id).and_then(|ca| {
            ca.save(path)?;
            Ok(ca)
        });
        match created {
            Ok(ca) => Ok((ca, true)),
            Err(e) => {
                // nothing half-made: the key without its certificate is of no use
                if let Err(destroy) = hsm.destroy_key(&key_id) {
                    tracing::error!(error = %destroy, "could not destroy the orphaned CA key");
                }
                Err(e)
            }
        }
    }

    fn load(hsm: &Hsm, path: &Path) -> Result<DevCa, SamError> {
        let (key_id, cert_der) = read_key_file(path, "CA", SamError::Ca)?;
        let public = hsm.public_key(&key_id)?;
        let cert = openssl::x509::X509::from_der(&cert_der)?;
        let cert_key = cert.public_key()?;
        let token_key = openssl::pkey::PKey::public_key_from_der(&public.spki_der)?;
        if !cert_key.public_eq(&token_key) {
            return Err(SamError::Ca(
                "the CA certificate does not match the CA key in the token".into(),
            ));
        }
        let raw_public_key = public.try_raw_public_key_bits()?;
        let ski = cert.subject_key_id().map(|id| id.as_slice().to_vec());
        if ski.as_deref() != Some(key_identifier(&raw_public_key).as_slice()) {
            // A CA certificate made by an older version carries an empty subjectKeyIdentifier, to
            // which no correct authorityKeyIdentifier can point: the same key is certified
            // again (same name, new serial and validity) and the file replaced. Certificates
            // issued before keep the old CA certificate in their stored chains.
            tracing::warn!(
                file = %path.display(),
                "the development CA certificate has no proper subjectKeyIdentifier: re-certifying the CA key"
            );
            let ca = Self::self_sign(hsm, key_id)?;
            ca.save(path)?;
            return Ok(ca);
        }
        Ok(DevCa {
            key_id,
            raw_public_key,
            cert_der,
        })
    }

    fn self_sign(hsm: &Hsm, key_id: KeyId) -> Result<DevCa, SamError> {
        let public = hsm.public_key(&key_id)?;
        let raw_public_key = public.try_raw_public_key_bits()?;
        let key = HsmSigningKey {
            hsm,
            key_id: &key_id,
            raw_public_key: &raw_public_key,
        };
        let mut params = ca_params(key_identifier(&raw_public_key));
        validity(&mut params, CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial()?.0);
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().to_vec();
        Ok(DevCa {
            key_id,
            raw_public_key,
            cert_der,
        })
    }

    fn save(&self, path: &Path) -> Result<(), SamError> {
        write_key_file(path, &self.key_id, &self.cert_der, "CA", SamError::Ca)
    }

    /// The CA certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's key identifier (its certificate's subjectKeyIdentifier, 20 bytes).
    pub fn key_identifier(&self) -> Vec<u8> {
        key_identifier(&self.raw_public_key)
    }

    /// Issues a signer certificate (digitalSignature + nonRepudiation, subject CN = the user's
    /// name) over a public key read from the token.
    pub fn issue_signer_certificate(
        &self,
        hsm: &Hsm,
        common_name: &str,
        subject_key: &PublicKey,
    ) -> Result<IssuedCertificate, SamError> {
        self.issue(
            hsm,
            leaf_params(common_name, SIGNER_VALIDITY_DAYS),
            subject_key,
        )
    }

    /// Issues the time-stamping authority's certificate (`sam::tsa`): digitalSignature +
    /// nonRepudiation and extendedKeyUsage = timeStamping only, marked critical as RFC 3161
    /// §2.3 requires of a TSA certificate.
    pub fn issue_tsa_certificate(
        &self,
        hsm: &Hsm,
        common_name: &str,
        subject_key: &PublicKey,
    ) -> Result<IssuedCertificate, SamError> {
        use der::Encode;
        let mut params = leaf_params(common_name, TSA_VALIDITY_DAYS);
        params
            .distinguished_name
            .push(DnType::OrganizationName, CA_ORGANIZATION);
        // rcgen writes extendedKeyUsage non-critical; the TSA's is written as a custom
        // extension, its value DER-encoded by x509-cert's type
        let eku = x509_cert::ext::pkix::ExtendedKeyUsage(vec![
            const_oid::db::rfc5280::ID_KP_TIME_STAMPING,
        ])
        .to_der()
        .map_err(|e| SamError::Ca(format!("cannot encode extendedKeyUsage: {e}")))?;
        let mut ext = CustomExtension::from_oid_content(EXTENDED_KEY_USAGE, eku);
        ext.set_criticality(true);
        params.custom_extensions.push(ext);
        self.issue(hsm, params, subject_key)
    }

    fn issue(
        &self,
        hsm: &Hsm,
        mut params: CertificateParams,
        subject_key: &PublicKey,
    ) -> Result<IssuedCertificate, SamError> {
        let ca_key = HsmSigningKey {
            hsm,
            key_id: &self.key_id,
            raw_public_key: &self.raw_public_key,
        };
        let issuer = Issuer::new(ca_params(self.key_identifier()), ca_key);
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        let subject = TokenPublicKey {
            raw: subject_key.try_raw_public_key_bits()?,
            spec: subject_key.spec,
        };
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(&subject.raw));
        let cert = params.signed_by(&subject, &issuer)?;
        Ok(IssuedCertificate {
            der: cert.der().to_vec(),
            serial_hex,
        })
    }
}

/// The certificates of a PEM bundle, as DER, in file order.
pub fn pem_chain_to_der(pem: &[u8]) -> Result<Vec<Vec<u8>>, SamError> {
    let certs = openssl::x509::X509::stack_from_pem(pem)
        .map_err(|e| SamError::InvalidChain(format!("not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(SamError::InvalidChain(
            "no certificate in the bundle".into(),
        ));
    }
    certs
        .iter()
        .map(|c| c.to_der().map_err(SamError::from))
        .collect()
}
