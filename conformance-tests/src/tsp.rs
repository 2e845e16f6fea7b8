//! RFC 3161 time-stamp tokens (as updated by RFC 5816), read as a client reads them: the
//! `ContentInfo` holding a CMS `SignedData` whose encapsulated content is a `TSTInfo`, the
//! signer's certificate found in the token by the `SignerInfo`'s identifier, the signature
//! checked with that certificate (OpenSSL's CMS verify: signed attributes' messageDigest over
//! the `TSTInfo`, signature under the certificate's key; no chain, the suite trusts nothing),
//! and the RFC 3161 §2.3 rule on the certificate's extendedKeyUsage. The ASN.1 types are
//! RustCrypto's (`cms`, `x509-cert`, `x509-tsp`), decoded by `der`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier, SignerInfos};
use der::asn1::{Int, ObjectIdentifier};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::stack::Stack;
use openssl::x509::X509;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

/// id-signedData (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-ce-extKeyUsage (RFC 5280 §4.2.1.12).
pub const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-ce-subjectKeyIdentifier (RFC 5280 §4.2.1.2).
const ID_CE_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// id-kp-timeStamping (RFC 5280 §4.2.1.12).
pub const ID_KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

/// ```text
/// TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId,
///   messageImprint MessageImprint, serialNumber INTEGER, genTime GeneralizedTime,
///   accuracy Accuracy OPTIONAL, ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL,
///   tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT Extensions OPTIONAL }
/// ```
/// `x509_tsp::TstInfo` read more leniently where the RFC allows what `der` does not: the
/// policy is any OID (a UUID OID's last arc is larger than `const-oid`'s 32 bits), genTime may
/// carry fractional seconds (RFC 3161 §2.4.2), and `tsa` is kept undecoded.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: Any,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// ```text
/// SignedData ::= SEQUENCE { version CMSVersion, digestAlgorithms DigestAlgorithmIdentifiers,
///   encapContentInfo EncapsulatedContentInfo, certificates [0] IMPLICIT CertificateSet OPTIONAL,
///   crls [1] IMPLICIT RevocationInfoChoices OPTIONAL, signerInfos SignerInfos }
/// ```
/// `cms::signed_data::SignedData` with the certificates (and CRLs) kept as a plain list: `der`
/// refuses a SET OF with two equal elements, and OpenSSL's TSA puts the signer certificate in
/// twice when it is also in its `certs` file (BER allows it; the signature does not cover it).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SignedData {
    version: CmsVersion,
    digest_algorithms: Any,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<Vec<Any>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<Vec<Any>>,
    signer_infos: SignerInfos,
}

/// A time-stamp token that parsed: `ContentInfo` → `SignedData` with eContentType
/// id-ct-TSTInfo → `TSTInfo` of version 1.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token as received (DER).
    der: Vec<u8>,
    signed: SignedData,
    /// The encapsulated content: the DER `TSTInfo` the signature covers.
    tst_der: Vec<u8>,
    tst: TstInfo,
}

/// The magnitude of a DER INTEGER: its octets without leading zero octets, and whether it is
/// negative.
fn magnitude(i: &Int) -> (Vec<u8>, bool) {
    let bytes = i.as_bytes();
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    (
        bytes.iter().skip_while(|b| **b == 0).copied().collect(),
        negative,
    )
}

/// Hex of `bytes`, for reports.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The octets of a hex string (an odd length is read with a leading zero), `None` when it is
/// not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let padded = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_owned()
    };
    padded
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

/// A GeneralizedTime `YYYYMMDDHHMMSS[.f...]Z` (RFC 3161 §2.4.2: UTC, fraction optional,
/// without trailing zeros) as a system time.
pub fn generalized_time(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not a GeneralizedTime YYYYMMDDHHMMSS[.fff]Z");
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (w, Some(f)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |from: usize, to: usize| -> Result<u16, String> {
        whole
            .get(from..to)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let small = |from: usize, to: usize| -> Result<u8, String> {
        u8::try_from(field(from, to)?).map_err(|_| bad())
    };
    let t = der::DateTime::new(
        field(0, 4)?,
        small(4, 6)?,
        small(6, 8)?,
        small(8, 10)?,
        small(10, 12)?,
        small(12, 14)?,
    )
    .map_err(|_| bad())?;
    let nanos = fraction.map_or(0, |f| {
        let digits: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<u32>().unwrap_or(0)
    });
    Ok(t.to_system_time() + Duration::from_nanos(u64::from(nanos)))
}

/// How far `t` is from `now`, either way.
pub fn distance(t: SystemTime, now: SystemTime) -> Duration {
    t.duration_since(now)
        .or_else(|_| now.duration_since(t))
        .unwrap_or_default()
}

impl Token {
    /// Parses a DER time-stamp token: a `ContentInfo` of id-signedData whose `SignedData`
    /// encapsulates a `TSTInfo` (eContentType id-ct-TSTInfo, RFC 3161 §2.4.2).
    pub fn parse(der: &[u8]) -> Result<Token, String> {
        let ci =
            ContentInfo::from_der(der).map_err(|e| format!("not a DER CMS ContentInfo ({e})"))?;
        if ci.content_type != ID_SIGNED_DATA {
            return Err(format!(
                "contentType {} where id-signedData ({ID_SIGNED_DATA}) is due",
                ci.content_type
            ));
        }
        let signed: SignedData = ci
            .content
            .decode_as()
            .map_err(|e| format!("not a CMS SignedData ({e})"))?;
        let econtent_type = signed.encap_content_info.econtent_type;
        if econtent_type != ID_CT_TST_INFO {
            return Err(format!(
                "eContentType {econtent_type} where id-ct-TSTInfo ({ID_CT_TST_INFO}) is due"
            ));
        }
        let econtent = signed
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or("the SignedData encapsulates no content (no TSTInfo)")?;
        if econtent.tag() != Tag::OctetString {
            return Err(format!(
                "eContent is a {} where an OCTET STRING is due",
                econtent.tag()
            ));
        }
        let tst_der = econtent.value().to_vec();
        let tst = TstInfo::from_der(&tst_der).map_err(|e| format!("not a DER TSTInfo v1 ({e})"))?;
        if tst.policy.tag() != Tag::ObjectIdentifier {
            return Err(format!(
                "a TSTInfo policy that is a {}, not an OID",
                tst.policy.tag()
            ));
        }
        Ok(Token {
            der: der.to_vec(),
            signed,
            tst_der,
            tst,
        })
    }

    /// `messageImprint`: the hash algorithm's OID (dotted), whether its parameters are absent
    /// or NULL (RFC 5754 §2: absent is preferred, NULL accepted), and the hashed message.
    pub fn imprint(&self) -> (String, bool, Vec<u8>) {
        let m = &self.tst.message_imprint;
        let params_ok = m
            .hash_algorithm
            .parameters
            .as_ref()
            .is_none_or(|p| p.tag() == Tag::Null);
        (
            m.hash_algorithm.oid.to_string(),
            params_ok,
            m.hashed_message.as_bytes().to_vec(),
        )
    }

    /// The nonce's magnitude (no leading zero octets) and whether it is negative; `None` when
    /// the token has none.
    pub fn nonce(&self) -> Option<(Vec<u8>, bool)> {
        self.tst.nonce.as_ref().map(magnitude)
    }

    /// The serial number's octets as encoded.
    pub fn serial(&self) -> Vec<u8> {
        self.tst.serial_number.as_bytes().to_vec()
    }

    /// `genTime`, read.
    pub fn gen_time(&self) -> Result<SystemTime, String> {
        let g = &self.tst.gen_time;
        if g.tag() != Tag::GeneralizedTime {
            return Err(format!("genTime is a {}, not a GeneralizedTime", g.tag()));
        }
        let text = std::str::from_utf8(g.value()).map_err(|_| "genTime is not ASCII")?;
        generalized_time(text)
    }

    /// `genTime` as the token writes it.
    pub fn gen_time_text(&self) -> String {
        String::from_utf8_lossy(self.tst.gen_time.value()).into_owned()
    }

    /// The X.509 certificates the token carries (the other `CertificateChoices` are left
    /// out).
    fn certificates(&self) -> Vec<Certificate> {
        self.signed
            .certificates
            .iter()
            .flatten()
            .filter(|c| c.tag() == Tag::Sequence)
            .filter_map(|c| c.decode_as::<Certificate>().ok())
            .collect()
    }

    /// The certificate of the token's one signer, found among the token's certificates by the
    /// `SignerInfo`'s identifier (issuerAndSerialNumber or subjectKeyIdentifier). `Ok(None)`
    /// when the token carries no certificate at all (a TSA may leave it out: the CSC method
    /// has no `certReq`).
    pub fn signer_certificate(&self) -> Result<Option<Certificate>, String> {
        let infos: Vec<_> = self.signed.signer_infos.0.iter().collect();
        let [info] = infos.as_slice() else {
            return Err(format!(
                "{} SignerInfos where RFC 3161 §2.4.2 has exactly one",
                infos.len()
            ));
        };
        let certs = self.certificates();
        if certs.is_empty() {
            return Ok(None);
        }
        let found = certs.into_iter().find(|c| match &info.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                c.tbs_certificate.issuer == ias.issuer
                    && c.tbs_certificate.serial_number == ias.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => c
                .tbs_certificate
                .extensions
                .iter()
                .flatten()
                .filter(|e| e.extn_id == ID_CE_SUBJECT_KEY_IDENTIFIER)
                .any(|e| {
                    SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).is_ok_and(|k| k == *ski)
                }),
        });
        match found {
            Some(c) => Ok(Some(c)),
            None => Err("none of the token's certificates is the one its SignerInfo names".into()),
        }
    }

    /// Verifies the token's signature with `signer` alone (no certificate inside the token is
    /// used, no chain is built): the signed attributes' messageDigest is the digest of the
    /// `TSTInfo` and the signature over them verifies under the certificate's key.
    pub fn verify_with(&self, signer: &Certificate) -> Result<(), String> {
        let der = signer
            .to_der()
            .map_err(|e| format!("the signer certificate does not re-encode ({e})"))?;
        let cert = X509::from_der(&der).map_err(|e| format!("OpenSSL cannot read it ({e})"))?;
        let mut certs = Stack::new().map_err(|e| e.to_string())?;
        certs.push(cert).map_err(|e| e.to_string())?;
        let mut cms = CmsContentInfo::from_der(&self.der)
            .map_err(|e| format!("OpenSSL cannot read the token ({e})"))?;
        let mut content = Vec::new();
        cms.verify(
            Some(&certs),
            None,
            None,
            Some(&mut content),
            CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
        )
        .map_err(|e| {
            format!("the SignedData does not verify under the signer certificate ({e})")
        })?;
        if content != self.tst_der {
            return Err("the verified content is not the token's TSTInfo".into());
        }
        Ok(())
    }
}

/// RFC 3161 §2.3: the TSA's certificate "MUST contain only one instance of the extended key
/// usage field extension ... with KeyPurposeID having value id-kp-timeStamping. This
/// extension MUST be critical." (read as OpenSSL reads it: timeStamping and nothing else).
pub fn timestamping_eku(cert: &Certificate) -> Result<(), String> {
    let ekus: Vec<_> = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .collect();
    let [eku] = ekus.as_slice() else {
        return Err(format!(
            "{} extendedKeyUsage extensions where exactly one is due",
            ekus.len()
        ));
    };
    let usages = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
        .map_err(|e| format!("an extendedKeyUsage that does not decode ({e})"))?;
    let listed: Vec<String> = usages.0.iter().map(ToString::to_string).collect();
    if usages.0 != [ID_KP_TIME_STAMPING] {
        return Err(format!(
            "extendedKeyUsage [{}] where exactly id-kp-timeStamping ({ID_KP_TIME_STAMPING}) is due",
            listed.join(", ")
        ));
    }
    if !eku.critical {
        return Err("extendedKeyUsage timeStamping is not marked critical".into());
    }
    Ok(())
}

/// The subject of a certificate, for reports.
pub fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// Seconds since the epoch, for reports.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_times_with_and_without_fractions() {
        let t = generalized_time("20141119113239Z").map(unix);
        assert_eq!(t, Ok(1_416_396_759));
        let f = generalized_time("20141119113239.25Z");
        assert_eq!(
            f.map(|f| f.duration_since(UNIX_EPOCH).unwrap_or_default()),
            Ok(Duration::from_millis(1_416_396_759_250))
        );
        for bad in [
            "20141119113239",
            "2014111911323Z",
            "20141119113239.Z",
            "2014-11-19Z",
        ] {
            assert!(generalized_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_round_trips_and_odd_lengths_get_a_leading_zero() {
        assert_eq!(unhex("0a1B"), Some(vec![0x0a, 0x1b]));
        assert_eq!(unhex("abc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(unhex("xy"), None);
        assert_eq!(hex(&[0x80, 0x01]), "8001");
    }

    #[test]
    fn integer_magnitudes_drop_the_sign_octet() {
        let positive = Int::new(&[0x00, 0x80, 0x01]).map(|i| magnitude(&i));
        assert_eq!(positive, Ok((vec![0x80, 0x01], false)));
        let negative = Int::new(&[0x80, 0x01]).map(|i| magnitude(&i));
        assert_eq!(negative.map(|(_, n)| n), Ok(true));
    }

    #[test]
    fn what_is_not_a_token_is_refused_with_a_reason() {
        assert!(Token::parse(b"not DER").is_err());
        // the spec's sample "timestamp" (§11.10) is a bare TSTInfo, not a ContentInfo
        let sample = crate::crypto::unb64(
            "MGwCAQEGCSsGAQQB7U8CATAxMA0GCWCGSAFlAwQCAQUABCCrCqnrjH0VxXyQQlfnFJRx1jjrviTs7/GjKghr2AmluQIIVs5D8OUB4p4YDzIwMTQxMTE5MTEzMjM5WjADAgEBAgkAnWn2SSIWlXk=",
        )
        .unwrap_or_default();
        assert!(Token::parse(&sample).is_err());
        assert!(
            TstInfo::from_der(&sample).is_ok(),
            "the sample is a TSTInfo"
        );
    }

    /// A token made by `openssl ts -reply` (OpenSSL 3.0) over SHA-256("conformance"), with a
    /// nonce, by a self-signed P-256 TSA certificate with a critical extendedKeyUsage
    /// timeStamping, certificate included (`-cert`); accepted by `openssl ts -verify`.
    fn fixture() -> Vec<u8> {
        let text: String = include_str!("testdata/tst-fixture.b64")
            .split_whitespace()
            .collect();
        crate::crypto::unb64(&text).unwrap_or_default()
    }

    #[test]
    fn an_rfc3161_token_is_read_and_verified() {
        let der = fixture();
        let token = Token::parse(&der).expect("the fixture parses");
        let (oid, params_ok, hashed) = token.imprint();
        assert_eq!(oid, "2.16.840.1.101.3.4.2.1");
        assert!(params_ok);
        assert_eq!(hashed, crate::crypto::Digest::Sha256.of(b"conformance"));
        assert_eq!(token.nonce().map(|(_, negative)| negative), Some(false));
        assert!(!token.serial().is_empty());
        let gen_time = token.gen_time().expect("genTime");
        assert!(unix(gen_time) > 1_700_000_000, "{}", token.gen_time_text());
        let signer = token
            .signer_certificate()
            .expect("a signer")
            .expect("included");
        assert_eq!(subject(&signer), "CN=Conformance fixture TSA");
        assert_eq!(timestamping_eku(&signer), Ok(()));
        assert_eq!(token.verify_with(&signer), Ok(()));
    }

    #[test]
    fn a_token_whose_tstinfo_was_changed_does_not_verify() {
        let der = fixture();
        let token = Token::parse(&der).expect("the fixture parses");
        let signer = token
            .signer_certificate()
            .expect("a signer")
            .expect("included");
        // flip one octet of the hashed message inside the encapsulated TSTInfo
        let hashed = crate::crypto::Digest::Sha256.of(b"conformance");
        let at = der
            .windows(hashed.len())
            .position(|w| w == hashed.as_slice())
            .expect("the imprint is in the token");
        let mut tampered = der.clone();
        tampered[at] ^= 0x01;
        let changed = Token::parse(&tampered).expect("still parses");
        assert_ne!(changed.imprint().2, hashed);
        assert!(changed.verify_with(&signer).is_err());
        // and the untouched token does not verify under another key
        let stranger = cert_with_eku(true, &["timeStamping"]);
        assert!(token.verify_with(&stranger).is_err());
    }

    /// A self-signed certificate with the given extendedKeyUsage, as RustCrypto reads it.
    fn cert_with_eku(critical: bool, usages: &[&str]) -> Certificate {
        use openssl::x509::extension::ExtendedKeyUsage as Eku;
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
            .expect("P-256");
        let key =
            openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).expect("key"))
                .expect("pkey");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "EKU test").expect("CN");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        let now = openssl::asn1::Asn1Time::days_from_now(0).expect("time");
        b.set_not_before(&now).expect("not before");
        b.set_not_after(&now).expect("not after");
        if !usages.is_empty() {
            let mut eku = Eku::new();
            if critical {
                eku.critical();
            }
            for u in usages {
                match *u {
                    "timeStamping" => eku.time_stamping(),
                    "codeSigning" => eku.code_signing(),
                    other => eku.other(other),
                };
            }
            b.append_extension(eku.build().expect("eku"))
                .expect("append");
        }
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        Certificate::from_der(&b.build().to_der().expect("DER")).expect("RustCrypto reads it")
    }

    #[test]
    fn the_tsa_certificate_needs_a_critical_timestamping_only_eku() {
        assert_eq!(
            timestamping_eku(&cert_with_eku(true, &["timeStamping"])),
            Ok(())
        );
        let not_critical = timestamping_eku(&cert_with_eku(false, &["timeStamping"]));
        assert!(
            not_critical
                .as_ref()
                .is_err_and(|e| e.contains("not marked critical")),
            "{not_critical:?}"
        );
        let more = timestamping_eku(&cert_with_eku(true, &["timeStamping", "codeSigning"]));
        assert!(
            more.as_ref().is_err_and(|e| e.contains("exactly")),
            "{more:?}"
        );
        let none = timestamping_eku(&cert_with_eku(true, &[]));
        assert!(
            none.as_ref().is_err_and(|e| e.starts_with("0 ")),
            "{none:?}"
        );
    }
}
