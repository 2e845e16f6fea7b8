//! The time-stamping authority (RFC 3161, as updated by RFC 5816): `signatures/timestamp`
//! (spec v1 §11.10, v2 §11.13) and the plain RFC 3161 endpoint `POST /tsa` both end here.
//!
//! * **Key.** An EC P-256 key generated in the token (label [`TSA_KEY_LABEL`]: sensitive,
//!   non-extractable, sign-only, like every signing key, Part III 1, 16, 17), certified by the
//!   development CA with extendedKeyUsage = timeStamping, critical (RFC 3161 §2.3). P-256
//!   rather than RSA: the CA is P-256 already, a signature costs a tenth of an RSA-2048 one in
//!   SoftHSM2, and every validator we target (OpenSSL, pyHanko) accepts ECDSA time stamps.
//!   The key id and the certificate are kept in a file beside the CA's (`tsa.json`, neither
//!   secret); [`Sam::with_tsa`] loads it, or creates key and certificate when it is missing
//!   (so a data directory from before the TSA gets one at its next start, without re-init).
//! * **Token.** `TSTInfo` (version 1, the configured policy, the message imprint, a fresh
//!   serial, genTime, the configured accuracy, the nonce echoed) in a CMS `SignedData` with
//!   `eContentType` id-ct-TSTInfo, one `SignerInfo` (issuerAndSerialNumber, SHA-256,
//!   ecdsa-with-SHA256) whose signed attributes are contentType, signingTime, messageDigest
//!   and the ESS signing-certificate-v2 (RFC 5816, RFC 5035) naming the TSA certificate by its
//!   SHA-256 and issuer/serial; the certificate itself is included (always for the CSC method,
//!   when `certReq` asks for `/tsa`). Every structure is a type of RustCrypto's `cms`,
//!   `x509-cert`, `x509-tsp`, `cmpv2` (or declared here with `der`'s derive), encoded by `der`:
//!   nothing is written byte by byte. The signature is made in the token (`cm-pkcs11`), by the
//!   key whose label is the TSA's only.
//! * **Serials** are unique across instances without coordination: `0x01 ‖ prefix (32 bits,
//!   `tsa_serial_prefix`, one per instance when set) ‖ 120 random bits` = 160 bits, the most
//!   RFC 3161 §2.4.2 asks clients to accept. Instances with distinct prefixes never collide;
//!   within one prefix two of 2^40 tokens collide with probability below 2^-40.
//! * **Policy.** By default `2.25.156933992464786469901366689354421140955`, a UUID OID
//!   (ITU-T X.667: `2.25.` followed by a random UUID as an integer, unique without
//!   registration). Its last arc does not fit the 32-bit arcs of `const-oid`, so the policy
//!   is held as an `Any` whose content OpenSSL's OID encoder produced.
//! * **Audit.** Every token is one `timestamp.issue` record (serial, hash algorithm, imprint,
//!   policy, genTime, whether a nonce came, which door), written and committed BEFORE the
//!   token is signed (write-ahead, as signHash): a token never leaves without its record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cm_pkcs11::{HashAlg, KeyId};
use cmpv2::status::PkiStatus;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{BitString, GeneralizedTime, Int, OctetString, SetOfVec, UtcTime, Utf8StringRef};
use der::{
    Any, Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag,
    Tagged, Writer,
};
use serde_json::json;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

use crate::ca::{read_key_file, write_key_file};
use crate::secrets::random_bytes;
use crate::service_key::ServiceKey;
use crate::{AuditEvent, Principal, Sam, SamError, audit_event, client_actor};

/// The `CKA_LABEL` of the TSA's key in the token; only a key with this label signs tokens.
pub const TSA_KEY_LABEL: &str = "csc-tsa";
/// The default TSA policy: a UUID OID (X.667), `2.25.` + UUID
/// 76106335-b106-4d34-922e-64ba39447ddb as an integer.
pub const DEFAULT_POLICY_OID: &str = "2.25.156933992464786469901366689354421140955";
/// The default accuracy of genTime (the clock is read to the second).
pub const DEFAULT_ACCURACY: Duration = Duration::from_secs(1);
/// The largest `nonce` accepted, in octets (RFC 3161 suggests 64 bits; 512 are plenty).
pub const MAX_NONCE_BYTES: usize = 64;

/// id-ct-TSTInfo (RFC 3161 §2.4.2).
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// How the TSA is set up ([`Sam::with_tsa`]).
#[derive(Debug, Clone)]
pub struct TsaSettings {
    /// Where the TSA's key id and certificate are kept (`DATA_DIR/tsa.json`).
    pub file: PathBuf,
    /// The certificate's subject CN when it is created (`<service name> TSA`).
    pub common_name: String,
    /// The policy OID of every token (dotted decimal).
    pub policy_oid: String,
    /// The accuracy stated in every token; `None`: no accuracy field.
    pub accuracy: Option<Duration>,
    /// This instance's serial prefix (see the module doc).
    pub serial_prefix: u32,
}

impl TsaSettings {
    /// The defaults, with the TSA record at `file`.
    pub fn new(file: PathBuf, common_name: String) -> TsaSettings {
        TsaSettings {
            file,
            common_name,
            policy_oid: DEFAULT_POLICY_OID.to_owned(),
            accuracy: Some(DEFAULT_ACCURACY),
            serial_prefix: 0,
        }
    }
}

/// The loaded TSA.
#[derive(Debug)]
pub(crate) struct Tsa {
    key_id: KeyId,
    cert_der: Vec<u8>,
    cert: Certificate,
    cert_sha256: [u8; 32],
    /// The policy OID (see the module doc).
    policy: PolicyId,
    policy_text: String,
    accuracy: Option<Accuracy>,
    serial_prefix: u32,
}

/// `TSAPolicyId ::= OBJECT IDENTIFIER` of any arc size: the DER value of the OID, held as an
/// `Any` whose tag is always OBJECT IDENTIFIER (so an optional policy is told apart from the
/// fields that may follow it).
#[derive(Clone, Debug, Eq, PartialEq)]
struct PolicyId(Any);

impl FixedTag for PolicyId {
    const TAG: Tag = Tag::ObjectIdentifier;
}

impl<'a> DecodeValue<'a> for PolicyId {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        Ok(PolicyId(Any::decode_value(reader, header)?))
    }
}

impl EncodeValue for PolicyId {
    fn value_len(&self) -> der::Result<Length> {
        self.0.value_len()
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.0.encode_value(writer)
    }
}

/// ```text
/// PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
///   failInfo PKIFailureInfo OPTIONAL }
/// ```
/// `cmpv2::status::PkiStatusInfo` with `failInfo` as a plain BIT STRING: cmpv2 0.2 declares
/// the PKIFailureInfo flags by value rather than by bit number, so its `FlagSet` cannot carry
/// badDataFormat (5) or unacceptedPolicy (15) correctly.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct StatusInfo<'a> {
    status: PkiStatus,
    #[asn1(optional = "true")]
    status_string: Option<Vec<Utf8StringRef<'a>>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// `TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }`
/// (RFC 3161 §2.4.2), over [`StatusInfo`].
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampResp<'a> {
    status: StatusInfo<'a>,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// The PKIFailureInfo BIT STRING with the one named bit `bit` set (DER drops the trailing
/// zero bits of a named-bit list: X.690 §11.2.2).
fn failure_bits(bit: u8) -> Result<BitString, SamError> {
    let mut bytes = vec![0u8; usize::from(bit / 8) + 1];
    if let Some(last) = bytes.last_mut() {
        *last = 0x80 >> (bit % 8);
    }
    BitString::new(7 - bit % 8, bytes).map_err(tsa_error)
}

/// ```text
/// TSTInfo ::= SEQUENCE { version, policy TSAPolicyId, messageImprint, serialNumber INTEGER,
///   genTime GeneralizedTime, accuracy OPTIONAL, ordering BOOLEAN DEFAULT FALSE,
///   nonce INTEGER OPTIONAL, tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT OPTIONAL }
/// ```
/// `x509_tsp::TstInfo` with the policy as an `Any` (RFC 3161 §2.4.2; see the module doc).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: PolicyId,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: GeneralizedTime,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
}

/// ```text
/// TimeStampReq ::= SEQUENCE { version INTEGER { v1(1) }, messageImprint,
///   reqPolicy TSAPolicyId OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT FALSE,
///   extensions [0] IMPLICIT Extensions OPTIONAL }
/// ```
/// `x509_tsp::TimeStampReq` with the policy as an `Any`, so a UUID policy can be asked for.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampReq {
    version: TspVersion,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<PolicyId>,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// ```text
/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2,
///   policies SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
/// (RFC 5035 §3, the attribute RFC 5816 puts in time-stamp tokens.)
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// ```text
/// ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT {id-sha256},
///   certHash OCTET STRING, issuerSerial IssuerSerial OPTIONAL }
/// ```
/// SHA-256 is the default, so `hashAlgorithm` is absent (DER omits defaults).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

/// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// Why an RFC 3161 request is rejected: the `PKIFailureInfo` bit and a text for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    BadAlg,
    BadDataFormat,
    UnacceptedPolicy,
    UnacceptedExtension,
    SystemFailure,
}

impl Rejection {
    /// The PKIFailureInfo bit (RFC 3161 §2.4.2).
    fn bit(self) -> u8 {
        match self {
            Rejection::BadAlg => 0,
            Rejection::BadDataFormat => 5,
            Rejection::UnacceptedPolicy => 15,
            Rejection::UnacceptedExtension => 16,
            Rejection::SystemFailure => 25,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Rejection::BadAlg => "unsupported hash algorithm",
            Rejection::BadDataFormat => "malformed time-stamp request",
            Rejection::UnacceptedPolicy => "requested policy not supported",
            Rejection::UnacceptedExtension => "request extensions not supported",
            Rejection::SystemFailure => "system failure",
        }
    }
}

/// Which door a token was asked through (the audit record says it).
#[derive(Debug, Clone, Copy)]
enum Door {
    Csc,
    Rfc3161,
}

/// One token to make: what the request fixed.
struct TokenRequest {
    hash: HashAlg,
    imprint: MessageImprint,
    nonce: Option<Int>,
    include_certificate: bool,
    actor: String,
    door: Door,
}

fn tsa_error(e: impl std::fmt::Display) -> SamError {
    SamError::Tsa(e.to_string())
}

/// The policy OID `text` (dotted decimal only) as a DER `OBJECT IDENTIFIER`, encoded by
/// OpenSSL (arcs of any size).
fn policy_oid(text: &str) -> Result<PolicyId, SamError> {
    let well_formed = text.split('.').count() >= 2
        && text
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return Err(tsa_error(format!(
            "the TSA policy {text:?} is not a dotted-decimal OID"
        )));
    }
    let object = openssl::asn1::Asn1Object::from_str(text)
        .map_err(|e| tsa_error(format!("the TSA policy {text:?} is not an OID: {e}")))?;
    Any::new(Tag::ObjectIdentifier, object.as_slice().to_vec())
        .map(PolicyId)
        .map_err(tsa_error)
}

/// The accuracy field for `accuracy` (seconds, then milliseconds, then microseconds).
fn accuracy_of(accuracy: Duration) -> Option<Accuracy> {
    let seconds = accuracy.as_secs();
    let millis = i16::try_from(accuracy.subsec_millis()).unwrap_or(0);
    let micros = i16::try_from(accuracy.subsec_micros() % 1000).unwrap_or(0);
    if seconds == 0 && millis == 0 && micros == 0 {
        return None;
    }
    Some(Accuracy {
        seconds: (seconds > 0).then_some(seconds),
        millis: (millis > 0).then_some(millis),
        micros: (micros > 0).then_some(micros),
    })
}

/// A non-negative INTEGER from big-endian octets (der's `Uint` canonicalises it).
fn positive_int(bytes: &[u8]) -> Result<Int, SamError> {
    let uint = der::asn1::Uint::new(bytes).map_err(tsa_error)?;
    Int::from_der(&uint.to_der().map_err(tsa_error)?).map_err(tsa_error)
}

/// The `nonce` of `signatures/timestamp`: a hex-encoded non-negative integer (spec §11.10),
/// at most [`MAX_NONCE_BYTES`] octets. Anything else is [`SamError::InvalidNonce`].
pub fn parse_hex_nonce(hex_text: &str) -> Result<Vec<u8>, SamError> {
    let digits = hex_text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SamError::InvalidNonce);
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits.to_owned()
    };
    let bytes = hex::decode(padded).map_err(|_| SamError::InvalidNonce)?;
    let significant = bytes.iter().skip_while(|b| **b == 0).count();
    if significant > MAX_NONCE_BYTES {
        return Err(SamError::InvalidNonce);
    }
    Ok(bytes)
}

fn der_of(value: &impl Encode) -> Result<Vec<u8>, SamError> {
    value.to_der().map_err(tsa_error)
}

fn any_of(value: &impl Encode) -> Result<Any, SamError> {
    Any::from_der(&der_of(value)?).map_err(tsa_error)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, SamError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(tsa_error)?,
    })
}

fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    }
}

fn hash_oid(hash: HashAlg) -> ObjectIdentifier {
    match hash {
        HashAlg::Sha256 => rfc5912::ID_SHA_256,
        HashAlg::Sha384 => rfc5912::ID_SHA_384,
        HashAlg::Sha512 => rfc5912::ID_SHA_512,
    }
}

impl Tsa {
    fn new(key_id: KeyId, cert_der: Vec<u8>, settings: &TsaSettings) -> Result<Tsa, SamError> {
        let cert = Certificate::from_der(&cert_der)
            .map_err(|e| tsa_error(format!("the TSA certificate does not parse: {e}")))?;
        Ok(Tsa {
            key_id,
            cert_sha256: openssl::sha::sha256(&cert_der),
            cert_der,
            cert,
            policy: policy_oid(&settings.policy_oid)?,
            policy_text: settings.policy_oid.clone(),
            accuracy: settings.accuracy.and_then(accuracy_of),
            serial_prefix: settings.serial_prefix,
        })
    }

    /// A fresh serial: `0x01 ‖ prefix ‖ 120 random bits` (module doc), and its hex.
    fn serial(&self) -> Result<(Int, String), SamError> {
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&self.serial_prefix.to_be_bytes());
        bytes.extend_from_slice(&random_bytes(15)?);
        let hex_serial = hex::encode(&bytes);
        Ok((Int::new(&bytes).map_err(tsa_error)?, hex_serial))
    }

    /// The `SignedAttributes` of a token whose TSTInfo DER is `tst_der`.
    fn signed_attributes(
        &self,
        tst_der: &[u8],
        signing_time: Duration,
    ) -> Result<SetOfVec<Attribute>, SamError> {
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(self.cert_sha256.to_vec()).map_err(tsa_error)?,
                issuer_serial: IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(
                        self.cert.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: self.cert.tbs_certificate.serial_number.clone(),
                },
            }],
        };
        let digest = OctetString::new(openssl::sha::sha256(tst_der).to_vec()).map_err(tsa_error)?;
        let time = UtcTime::from_unix_duration(signing_time).map_err(tsa_error)?;
        SetOfVec::try_from(vec![
            attribute(rfc5911::ID_CONTENT_TYPE, any_of(&ID_CT_TST_INFO)?)?,
            attribute(rfc5911::ID_SIGNING_TIME, any_of(&time)?)?,
            attribute(rfc5911::ID_MESSAGE_DIGEST, any_of(&digest)?)?,
            attribute(rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2, any_of(&ess)?)?,
        ])
        .map_err(tsa_error)
    }

    /// The token (a DER `ContentInfo`) for `tst`, signed by `sign` over the SHA-256 of the
    /// signed attributes.
    fn token(
        &self,
        tst: &TstInfo,
        signing_time: Duration,
        include_certificate: bool,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, SamError>,
    ) -> Result<Vec<u8>, SamError> {
        let tst_der = der_of(tst)?;
        let signed_attrs = self.signed_attributes(&tst_der, signing_time)?;
        // RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF
        let signature = sign(&openssl::sha::sha256(&der_of(&signed_attrs)?))?;
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: self.cert.tbs_certificate.issuer.clone(),
                serial_number: self.cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: algorithm(rfc5912::ID_SHA_256),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: algorithm(rfc5912::ECDSA_WITH_SHA_256),
            signature: OctetString::new(signature).map_err(tsa_error)?,
            unsigned_attrs: None,
        };
        let certificates = if include_certificate {
            Some(
                CertificateSet::try_from(vec![CertificateChoices::Certificate(self.cert.clone())])
                    .map_err(tsa_error)?,
            )
        } else {
            None
        };
        let signed_data = SignedData {
            // eContentType is not id-data: version 3 (RFC 5652 §5.1)
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![algorithm(rfc5912::ID_SHA_256)])
                .map_err(tsa_error)?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_CT_TST_INFO,
                econtent: Some(any_of(&OctetString::new(tst_der).map_err(tsa_error)?)?),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer]).map_err(tsa_error)?,
        };
        der_of(&ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: any_of(&signed_data)?,
        })
    }

    fn load(hsm: &cm_pkcs11::Hsm, settings: &TsaSettings) -> Result<Tsa, SamError> {
        let path = &settings.file;
        let (key_id, cert_der) = read_key_file(path, "TSA", SamError::Tsa)?;
        let token_key = hsm.public_key(&key_id)?.to_openssl()?;
        let cert_key = openssl::x509::X509::from_der(&cert_der)?.public_key()?;
        if !cert_key.public_eq(&token_key) {
            return Err(tsa_error(
                "the TSA certificate does not match the TSA key in the token",
            ));
        }
        Tsa::new(key_id, cert_der, settings)
    }

    fn save(&self, path: &Path) -> Result<(), SamError> {
        write_key_file(path, &self.key_id, &self.cert_der, "TSA", SamError::Tsa)
    }
}

/// The audit actor of a Bearer caller.
fn actor_of(principal: &Principal) -> String {
    match principal {
        Principal::User(caller) => caller.user_name.clone(),
        Principal::Client { client_id, .. } => client_actor(client_id),
    }
}

/// `TimeStampResp` DER: a rejection.
fn rejection(why: Rejection) -> Result<Vec<u8>, SamError> {
    let text = Utf8StringRef::new(why.text()).map_err(tsa_error)?;
    der_of(&TimeStampResp {
        status: StatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec![text]),
            fail_info: Some(failure_bits(why.bit())?),
        },
        time_stamp_token: None,
    })
}

impl Sam {
    /// Loads the TSA of `settings.file`, or creates its key in the token and its certificate
    /// (audited as `tsa.create`) when the file is missing. Blocking.
    pub fn with_tsa(mut self, settings: &TsaSettings) -> Result<Sam, SamError> {
        // the policy is checked first, so a bad setting creates nothing
        policy_oid(&settings.policy_oid)?;
        let tsa = if settings.file.exists() {
            let tsa = Tsa::load(&self.hsm, settings)?;
            if self.tsa_key_ids_ok(&tsa)? {
                tsa
            } else {
                self.recertify_tsa(tsa, settings)?
            }
        } else {
            self.create_tsa(settings)?
        };
        self.tsa = Some(Arc::new(tsa));
        Ok(self)
    }

    fn create_tsa(&self, settings: &TsaSettings) -> Result<Tsa, SamError> {
        let key_id = ServiceKey::generate(&self.hsm, TSA_KEY_LABEL)?.id;
        let created = self.certify_tsa(key_id, settings, false);
        if created.is_err() {
            // nothing half-made: a key without its certificate is of no use
            if let Err(e) = self.hsm.destroy_key(&key_id) {
                tracing::error!(error = %e, "could not destroy the orphaned TSA key");
            }
        }
        created
    }

    /// Whether the TSA certificate has both key identifiers (RFC 5280 4.2.1.1-2): its own key's as
    /// subjectKeyIdentifier, the CA's as authorityKeyIdentifier (certificates made before were
    /// issued with empty ones).
    fn tsa_key_ids_ok(&self, tsa: &Tsa) -> Result<bool, SamError> {
        let cert = openssl::x509::X509::from_der(&tsa.cert_der)?;
        let own = self
            .hsm
            .public_key(&tsa.key_id)?
            .try_raw_public_key_bits()?;
        let ski = cert.subject_key_id().map(|id| id.as_slice().to_vec());
        let aki = cert.authority_key_id().map(|id| id.as_slice().to_vec());
        Ok(ski == Some(crate::ca::key_identifier(&own)) && aki == Some(self.ca.key_identifier()))
    }

    /// Certifies the TSA's key again (a certificate without key identifiers, or by a CA
    /// certificate since re-certified: [`crate::DevCa`]), keeping the key; audited as
    /// `tsa.create` with `"recertified": true`.
    fn recertify_tsa(&self, old: Tsa, settings: &TsaSettings) -> Result<Tsa, SamError> {
        tracing::warn!(
            file = %settings.file.display(),
            "the TSA certificate lacks proper key identifiers: certifying the TSA key again"
        );
        self.certify_tsa(old.key_id, settings, true)
    }

    /// Certifies the TSA key `key_id` by the dev CA, saves the TSA file and audits it as
    /// `tsa.create` (`recertified`: the key was certified before).
    fn certify_tsa(
        &self,
        key_id: KeyId,
        settings: &TsaSettings,
        recertified: bool,
    ) -> Result<Tsa, SamError> {
        let public = self.hsm.public_key(&key_id)?;
        let issued = self
            .ca
            .issue_tsa_certificate(&self.hsm, &settings.common_name, &public)?;
        let mut detail = json!({
            "keyId": key_id.to_string(),
            "subject": settings.common_name,
            "certificateSerial": issued.serial_hex,
        });
        if recertified && let Some(map) = detail.as_object_mut() {
            map.insert("recertified".into(), json!(true));
        }
        let tsa = Tsa::new(key_id, issued.der, settings)?;
        tsa.save(&settings.file)?;
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::TsaCreate,
                "system",
                &issued.serial_hex,
                "success",
                detail,
            ))
        })?;
        Ok(tsa)
    }

    fn tsa(&self) -> Result<&Tsa, SamError> {
        self.tsa
            .as_deref()
            .ok_or_else(|| tsa_error("no time-stamping authority is configured"))
    }

    /// The TSA certificate (DER), when a TSA is configured.
    pub fn tsa_certificate_der(&self) -> Option<&[u8]> {
        self.tsa.as_deref().map(|t| t.cert_der.as_slice())
    }

    /// `signatures/timestamp` (spec §11.10): a time-stamp token (DER `ContentInfo`, the TSA
    /// certificate included) over `hash`, made with the hash algorithm `hash_algo` (an OID of
    /// the SHA-2 table, else `Invalid parameter hashAlgo`), echoing the hex `nonce`. Refusals:
    /// [`SamError::Algo`], [`SamError::InvalidDigestLength`], [`SamError::InvalidNonce`].
    /// Blocking.
    pub fn timestamp(
        &self,
        principal: &Principal,
        hash_algo: &str,
        hash: &[u8],
        nonce: Option<&str>,
    ) -> Result<Vec<u8>, SamError> {
        let alg = crate::algo::hash_alg(hash_algo)?;
        if hash.len() != alg.digest_len() {
            return Err(SamError::InvalidDigestLength);
        }
        let nonce = nonce
            .map(parse_hex_nonce)
            .transpose()?
            .map(|n| positive_int(&n))
            .transpose()?;
        self.issue_token(TokenRequest {
            hash: alg,
            imprint: MessageImprint {
                hash_algorithm: x509_cert::spki::AlgorithmIdentifier {
                    oid: hash_oid(alg),
                    parameters: None,
                },
                hashed_message: OctetString::new(hash.to_vec()).map_err(tsa_error)?,
            },
            nonce,
            include_certificate: true,
            actor: actor_of(principal),
            door: Door::Csc,
        })
    }

    /// `POST /tsa` (RFC 3161 §3.4): the DER `TimeStampResp` answering the DER `TimeStampReq`
    /// `query`. A request that cannot be served is answered with a rejection and its
    /// `PKIFailureInfo` (badDataFormat, badAlg, unacceptedPolicy, unacceptedExtension; a
    /// failure inside the server: systemFailure, logged). Blocking.
    pub fn tsa_respond(&self, query: &[u8]) -> Result<Vec<u8>, SamError> {
        let request = match self.tsa_request(query) {
            Ok(r) => r,
            Err(why) => return rejection(why),
        };
        match self.issue_token(request) {
            Ok(token) => der_of(&TimeStampResp {
                status: StatusInfo {
                    status: PkiStatus::Accepted,
                    status_string: None,
                    fail_info: None,
                },
                time_stamp_token: Some(ContentInfo::from_der(&token).map_err(tsa_error)?),
            }),
            Err(e) => {
                tracing::error!(error = %e, "the TSA could not issue a token");
                rejection(Rejection::SystemFailure)
            }
        }
    }

    /// A `TimeStampReq` read and checked, or why it is rejected.
    fn tsa_request(&self, query: &[u8]) -> Result<TokenRequest, Rejection> {
        let req = TimeStampReq::from_der(query).map_err(|_| Rejection::BadDataFormat)?;
        let imprint = req.message_imprint;
        let alg =
            HashAlg::from_oid(&imprint.hash_algorithm.oid.to_string()).ok_or(Rejection::BadAlg)?;
        // SHA-2 takes no parameters: absent or NULL (RFC 5754 §2)
        if imprint
            .hash_algorithm
            .parameters
            .as_ref()
            .is_some_and(|p| !(p.tag() == Tag::Null && p.value().is_empty()))
        {
            return Err(Rejection::BadAlg);
        }
        if imprint.hashed_message.as_bytes().len() != alg.digest_len() {
            return Err(Rejection::BadDataFormat);
        }
        let tsa = self.tsa().map_err(|_| Rejection::SystemFailure)?;
        if req.req_policy.as_ref().is_some_and(|p| *p != tsa.policy) {
            return Err(Rejection::UnacceptedPolicy);
        }
        if req.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(Rejection::UnacceptedExtension);
        }
        Ok(TokenRequest {
            hash: alg,
            imprint,
            nonce: req.nonce,
            include_certificate: req.cert_req,
            actor: "tsa".to_owned(),
            door: Door::Rfc3161,
        })
    }

    /// Makes, audits (write-ahead) and signs one token.
    fn issue_token(&self, request: TokenRequest) -> Result<Vec<u8>, SamError> {
        let tsa = self.tsa()?;
        let (serial, serial_hex) = tsa.serial()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(tsa_error)?;
        let now = Duration::from_secs(now.as_secs());
        let gen_time = GeneralizedTime::from_unix_duration(now).map_err(tsa_error)?;
        let detail = json!({
            "serial": serial_hex,
            "hashAlgo": request.hash.oid(),
            "imprint": hex::encode(request.imprint.hashed_message.as_bytes()),
            "policy": tsa.policy_text,
            "genTime": gen_time.to_date_time().to_string(),
            "nonce": request.nonce.is_some(),
            "via": match request.door {
                Door::Csc => "signatures/timestamp",
                Door::Rfc3161 => "rfc3161",
            },
        });
        let tst = TstInfo {
            version: TspVersion::V1,
            policy: tsa.policy.clone(),
            message_imprint: request.imprint,
            serial_number: serial,
            gen_time,
            accuracy: tsa.accuracy.clone(),
            ordering: false,
            nonce: request.nonce,
        };
        // write-ahead: committed before the token is signed, so none leaves unrecorded
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::TimestampIssue,
                &request.actor,
                &serial_hex,
                "success",
                detail.clone(),
            ))
        })?;
        let key = ServiceKey {
            id: tsa.key_id,
            label: TSA_KEY_LABEL,
        };
        let signed = tsa.token(&tst, now, request.include_certificate, |digest| {
            key.sign_sha256(&self.hsm, digest)
        });
        if let Err(e) = &signed {
            let mut failed = detail;
            if let Some(map) = failed.as_object_mut() {
                map.insert("error".into(), json!(e.to_string()));
            }
            self.audit_best_effort(&audit_event(
                AuditEvent::TimestampIssue,
                &request.actor,
                &serial_hex,
                "failure",
                failed,
            ));
        }
        signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_nonces_are_non_negative_integers() {
        assert_eq!(parse_hex_nonce("0a1B").ok(), Some(vec![0x0a, 0x1b]));
        assert_eq!(parse_hex_nonce("abc").ok(), Some(vec![0x0a, 0xbc]));
        for bad in ["", "  ", "xyz", "-12", "0x12", "12 34"] {
            assert!(
                matches!(parse_hex_nonce(bad), Err(SamError::InvalidNonce)),
                "{bad:?}"
            );
        }
        let long = "ff".repeat(MAX_NONCE_BYTES + 1);
        assert!(matches!(
            parse_hex_nonce(&long),
            Err(SamError::InvalidNonce)
        ));
        // leading zero octets do not count
        let padded = format!("0000{}", "ff".repeat(MAX_NONCE_BYTES));
        assert!(parse_hex_nonce(&padded).is_ok());
        // a high first bit stays positive
        let n = positive_int(&[0x80, 0x01]).expect("int");
        assert_eq!(n.to_der().expect("der"), vec![0x02, 0x03, 0x00, 0x80, 0x01]);
        assert_eq!(
            positive_int(&[0, 0, 5])
                .expect("int")
                .to_der()
                .expect("der"),
            vec![2, 1, 5]
        );
    }

    #[test]
    fn the_uuid_policy_is_encoded_whole() {
        let oid = policy_oid(DEFAULT_POLICY_OID).expect("policy");
        let der = oid.0.to_der().expect("der");
        let text = openssl::asn1::Asn1Object::from_str(DEFAULT_POLICY_OID).expect("oid");
        assert_eq!(der.get(2..), Some(text.as_slice()));
        assert_eq!(der.first(), Some(&0x06));
        for bad in ["sha256", "1", "1..2", "1.2.x", ""] {
            assert!(policy_oid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accuracy_is_split_into_its_fields() {
        assert_eq!(accuracy_of(Duration::ZERO), None);
        assert_eq!(
            accuracy_of(Duration::from_millis(1500)),
            Some(Accuracy {
                seconds: Some(1),
                millis: Some(500),
                micros: None
            })
        );
        assert_eq!(
            accuracy_of(Duration::from_micros(250)),
            Some(Accuracy {
                seconds: None,
                millis: None,
                micros: Some(250)
            })
        );
    }

    #[test]
    fn rejections_carry_their_failure_bit() {
        // (bit, the BIT STRING's DER: unused bits, then the bits up to the named one)
        for (why, der) in [
            (Rejection::BadAlg, &[0x03, 0x02, 0x07, 0x80][..]),
            (Rejection::BadDataFormat, &[0x03, 0x02, 0x02, 0x04][..]),
            (
                Rejection::UnacceptedPolicy,
                &[0x03, 0x03, 0x00, 0x00, 0x01][..],
            ),
            (
                Rejection::UnacceptedExtension,
                &[0x03, 0x04, 0x07, 0x00, 0x00, 0x80][..],
            ),
            (
                Rejection::SystemFailure,
                &[0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40][..],
            ),
        ] {
            let bits = failure_bits(why.bit()).expect("bits");
            assert_eq!(bits.to_der().expect("der"), der, "{why:?}");
            let reply = rejection(why).expect("der");
            let resp = TimeStampResp::from_der(&reply).expect("decode");
            assert_eq!(resp.status.status, PkiStatus::Rejection);
            assert_eq!(resp.status.fail_info, Some(bits));
            assert!(resp.time_stamp_token.is_none());
        }
    }
}
