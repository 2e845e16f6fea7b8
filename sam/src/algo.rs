//! CSC signature algorithm OIDs (`key.algo`, `signAlgo`, `hashAlgo`, `signAlgoParams`) and the
//! PKCS#11 mechanism each one selects (spec §11.9; RFC 4055 for RSASSA-PSS).
//!
//! Only approved algorithms are offered (JT2A Part III 2: RSA >= 2048 bits, P-256/P-384,
//! SHA-2); SHA-1 is refused everywhere, also inside RSASSA-PSS parameters. The hash-specific
//! OIDs are listed, not only `rsaEncryption`, because pyHanko refuses a credential whose
//! `key.algo` lacks the OID it picked.

use cm_pkcs11::{HashAlg, KeySpec, SignMechanism};
use yasna::models::ObjectIdentifier;
use yasna::{ASN1Result, BERReader, Tag};

/// rsaEncryption: RSASSA-PKCS1-v1_5 with the hash named by `hashAlgo`.
pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// RSASSA-PSS; hash, MGF and salt come in `signAlgoParams`.
pub const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
/// sha256WithRSAEncryption.
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// sha384WithRSAEncryption.
pub const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
/// sha512WithRSAEncryption.
pub const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// ecdsa-with-SHA384.
pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
/// ecdsa-with-SHA512.
pub const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";
/// NIST P-256 (prime256v1 / secp256r1).
pub const CURVE_P256: &str = "1.2.840.10045.3.1.7";
/// NIST P-384 (secp384r1).
pub const CURVE_P384: &str = "1.3.132.0.34";

/// id-mgf1 (RFC 8017 appendix B.2.1).
const MGF1: &[u64] = &[1, 2, 840, 113549, 1, 1, 8];
/// RSASSA-PSS trailerField trailerFieldBC, the only one RFC 8017 defines.
const TRAILER_FIELD_BC: u64 = 1;

const RSA_ALGOS: &[&str] = &[
    SHA256_WITH_RSA,
    SHA384_WITH_RSA,
    SHA512_WITH_RSA,
    RSASSA_PSS,
    RSA_ENCRYPTION,
];
const EC_ALGOS: &[&str] = &[ECDSA_WITH_SHA256, ECDSA_WITH_SHA384, ECDSA_WITH_SHA512];

/// Why a `signAlgo` / `hashAlgo` / `signAlgoParams` combination is refused. Each variant is one
/// CSC error of signHash (spec §11.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlgoError {
    /// `signAlgo` is not one of the credential's `key.algo`.
    #[error("the signature algorithm is not supported by this credential's key")]
    InvalidSignAlgo,
    /// `rsaEncryption` without `hashAlgo`.
    #[error("hashAlgo is required with rsaEncryption")]
    MissingHashAlgo,
    /// `hashAlgo` unknown, not approved (SHA-1), or contradicting the hash `signAlgo` implies.
    #[error("the hash algorithm is unknown, not allowed or contradicts signAlgo")]
    InvalidHashAlgo,
    /// RSASSA-PSS without `signAlgoParams`.
    #[error("signAlgoParams is required with RSASSA-PSS")]
    MissingSignAlgoParams,
    /// `signAlgoParams` unparseable or not acceptable (SHA-1, MGF1 hash different from the
    /// message hash, salt too long for the key, trailer field other than 1).
    #[error("the signature algorithm parameters are invalid")]
    InvalidSignAlgoParams,
}

/// The digest named by a `hashAlgo` OID (SHA-256/384/512; anything else, SHA-1 included, is
/// [`AlgoError::InvalidHashAlgo`]): `signatures/timestamp` and the RFC 3161 endpoint.
pub fn hash_alg(oid: &str) -> Result<HashAlg, AlgoError> {
    HashAlg::from_oid(oid).ok_or(AlgoError::InvalidHashAlgo)
}

/// The `key.algo` list of credentials/info for a key: the signature algorithms `signHash`
/// accepts for it.
pub fn key_algos(spec: KeySpec) -> Vec<&'static str> {
    if spec.is_rsa() {
        RSA_ALGOS.to_vec()
    } else {
        EC_ALGOS.to_vec()
    }
}

/// The `key.curve` OID of an EC key, `None` for RSA.
pub fn curve_oid(spec: KeySpec) -> Option<&'static str> {
    match spec {
        KeySpec::EcP256 => Some(CURVE_P256),
        KeySpec::EcP384 => Some(CURVE_P384),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => None,
    }
}

/// The hash a signature algorithm OID implies, if any.
fn implied_hash(sign_algo: &str) -> Option<HashAlg> {
    match sign_algo {
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 => Some(HashAlg::Sha256),
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => Some(HashAlg::Sha384),
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// The largest PSS salt the key allows: emLen - hLen - 2 (RFC 8017 §9.1.1), emLen being the
/// modulus length in bytes for the moduli we generate (multiples of 8 bits).
pub fn max_pss_salt_len(spec: KeySpec, hash: HashAlg) -> usize {
    (spec.bits() / 8).saturating_sub(hash.digest_len() + 2)
}

/// Selects the PKCS#11 mechanism for a signHash request (spec §11.9):
///
/// * `sign_algo` must be one of [`key_algos`] of the key, else [`AlgoError::InvalidSignAlgo`];
/// * an algorithm that implies a hash accepts `hash_algo` absent or equal to it (pyHanko always
///   sends it); a different or unknown one is [`AlgoError::InvalidHashAlgo`];
/// * `rsaEncryption` needs `hash_algo` (SHA-256/384/512 only);
/// * RSASSA-PSS needs `sign_algo_params`, the DER `RSASSA-PSS-params` of RFC 8017 (parsed with
///   yasna): SHA-2 hash, MGF1 with the same hash (SoftHSM refuses any other), a salt the key
///   can hold, trailer field 1. Explicitly encoded DEFAULT values are tolerated (INTESI's test
///   vector carries `trailerField 1`). A `hash_algo` next to it must equal the PSS hash;
/// * other algorithms take no parameters: `sign_algo_params` may be absent, empty or a DER
///   NULL; anything else is [`AlgoError::InvalidSignAlgoParams`] rather than silently ignored.
///
/// ECDSA yields [`SignMechanism::Ecdsa`]: the HSM layer returns a DER `ECDSA-Sig-Value`, what
/// CMS and pyHanko expect for `1.2.840.10045.4.3.*`.
pub fn resolve_mechanism(
    spec: KeySpec,
    sign_algo: &str,
    hash_algo: Option<&str>,
    sign_algo_params: Option<&[u8]>,
) -> Result<SignMechanism, AlgoError> {
    if !key_algos(spec).contains(&sign_algo) {
        return Err(AlgoError::InvalidSignAlgo);
    }
    let requested = hash_algo
        .map(|oid| HashAlg::from_oid(oid).ok_or(AlgoError::InvalidHashAlgo))
        .transpose()?;
    let agree = |hash: HashAlg| match requested {
        Some(r) if r != hash => Err(AlgoError::InvalidHashAlgo),
        _ => Ok(hash),
    };
    if sign_algo == RSASSA_PSS {
        let der = sign_algo_params.ok_or(AlgoError::MissingSignAlgoParams)?;
        let params = parse_pss_params(der).ok_or(AlgoError::InvalidSignAlgoParams)?;
        let hash = params.hash()?;
        if params.mgf_hash()? != hash
            || params.trailer_field != TRAILER_FIELD_BC
            || params.salt_len > max_pss_salt_len(spec, hash) as u64
        {
            return Err(AlgoError::InvalidSignAlgoParams);
        }
        let hash = agree(hash)?;
        return Ok(SignMechanism::RsaPss {
            hash,
            mgf_hash: hash,
            salt_len: usize::try_from(params.salt_len)
                .map_err(|_| AlgoError::InvalidSignAlgoParams)?,
        });
    }
    if !params_are_absent(sign_algo_params) {
        return Err(AlgoError::InvalidSignAlgoParams);
    }
    if sign_algo == RSA_ENCRYPTION {
        let hash = requested.ok_or(AlgoError::MissingHashAlgo)?;
        return Ok(SignMechanism::RsaPkcs1v15 { hash });
    }
    let hash = agree(implied_hash(sign_algo).ok_or(AlgoError::InvalidSignAlgo)?)?;
    Ok(if spec.is_rsa() {
        SignMechanism::RsaPkcs1v15 { hash }
    } else {
        SignMechanism::Ecdsa { hash }
    })
}

/// No parameters: absent, empty, or a DER NULL.
fn params_are_absent(params: Option<&[u8]>) -> bool {
    matches!(params, None | Some([] | [0x05, 0x00]))
}

/// `RSASSA-PSS-params` as decoded, defaults applied (RFC 8017 appendix A.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PssParams {
    hash: ObjectIdentifier,
    mgf: ObjectIdentifier,
    mgf_hash: ObjectIdentifier,
    salt_len: u64,
    trailer_field: u64,
}

impl PssParams {
    fn hash(&self) -> Result<HashAlg, AlgoError> {
        HashAlg::from_oid(&self.hash.to_string()).ok_or(AlgoError::InvalidSignAlgoParams)
    }

    fn mgf_hash(&self) -> Result<HashAlg, AlgoError> {
        if self.mgf.components().as_slice() != MGF1 {
            return Err(AlgoError::InvalidSignAlgoParams);
        }
        HashAlg::from_oid(&self.mgf_hash.to_string()).ok_or(AlgoError::InvalidSignAlgoParams)
    }
}

/// SHA-1 (1.3.14.3.2.26): the default hash of RSASSA-PSS-params.
fn sha1_oid() -> ObjectIdentifier {
    ObjectIdentifier::from_slice(&[1, 3, 14, 3, 2, 26])
}

/// An `AlgorithmIdentifier` whose parameters are absent or NULL (hash algorithms); returns the
/// OID.
fn read_hash_algorithm(r: BERReader<'_, '_>) -> ASN1Result<ObjectIdentifier> {
    r.read_sequence(|r| {
        let oid = r.next().read_oid()?;
        r.read_optional(|r| r.read_null())?;
        Ok(oid)
    })
}

/// `MaskGenAlgorithm`: (algorithm OID, hash OID of its parameters).
fn read_mask_gen(r: BERReader<'_, '_>) -> ASN1Result<(ObjectIdentifier, ObjectIdentifier)> {
    r.read_sequence(|r| {
        let oid = r.next().read_oid()?;
        let hash = read_hash_algorithm(r.next())?;
        Ok((oid, hash))
    })
}

/// Parses DER `RSASSA-PSS-params`; `None` if malformed (trailing bytes included).
fn parse_pss_params(der: &[u8]) -> Option<PssParams> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let hash = r.read_optional(|r| r.read_tagged(Tag::context(0), read_hash_algorithm))?;
            let mgf = r.read_optional(|r| r.read_tagged(Tag::context(1), read_mask_gen))?;
            let salt_len = r.read_optional(|r| r.read_tagged(Tag::context(2), |r| r.read_u64()))?;
            let trailer_field =
                r.read_optional(|r| r.read_tagged(Tag::context(3), |r| r.read_u64()))?;
            let (mgf, mgf_hash) =
                mgf.unwrap_or_else(|| (ObjectIdentifier::from_slice(MGF1), sha1_oid()));
            Ok(PssParams {
                hash: hash.unwrap_or_else(sha1_oid),
                mgf,
                mgf_hash,
                salt_len: salt_len.unwrap_or(20),
                trailer_field: trailer_field.unwrap_or(TRAILER_FIELD_BC),
            })
        })
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    /// INTESI's vector: SHA-256, MGF1-SHA-256, salt 32, trailer 1 (explicit).
    const INTESI_PSS: &str =
        "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=";
    /// EUDI-KT's vector: SHA-1 / MGF1-SHA-1 / salt 20.
    const SHA1_PSS: &str = "MDGgCzAJBgUrDgMCGgUAoRgwFgYJKoZIhvcNAQEIMAkGBSsOAwIaBQCiAwIBFKMDAgEB";

    const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    const SHA512: &str = "2.16.840.1.101.3.4.2.3";
    const SHA1: &str = "1.3.14.3.2.26";
    const SHA224: &str = "2.16.840.1.101.3.4.2.4";

    fn b64(s: &str) -> Vec<u8> {
        STANDARD.decode(s).expect("base64")
    }

    /// DER RSASSA-PSS-params built with yasna's writer (an independent encoder).
    fn pss_der(hash: &[u64], mgf_hash: &[u64], salt: Option<u64>, trailer: Option<u64>) -> Vec<u8> {
        let alg = |w: yasna::DERWriter<'_>, oid: &[u64]| {
            w.write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(oid));
                w.next().write_null();
            });
        };
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_tagged(Tag::context(0), |w| alg(w, hash));
                w.next().write_tagged(Tag::context(1), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(MGF1));
                        alg(w.next(), mgf_hash);
                    });
                });
                if let Some(s) = salt {
                    w.next().write_tagged(Tag::context(2), |w| w.write_u64(s));
                }
                if let Some(t) = trailer {
                    w.next().write_tagged(Tag::context(3), |w| w.write_u64(t));
                }
            });
        })
    }

    const H256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
    const H384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
    const H512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];

    #[test]
    fn key_algos_and_curves() {
        for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
            assert_eq!(
                key_algos(spec),
                vec![
                    "1.2.840.113549.1.1.11",
                    "1.2.840.113549.1.1.12",
                    "1.2.840.113549.1.1.13",
                    "1.2.840.113549.1.1.10",
                    "1.2.840.113549.1.1.1",
                ]
            );
            assert_eq!(curve_oid(spec), None);
        }
        for spec in [KeySpec::EcP256, KeySpec::EcP384] {
            assert_eq!(
                key_algos(spec),
                vec![
                    "1.2.840.10045.4.3.2",
                    "1.2.840.10045.4.3.3",
                    "1.2.840.10045.4.3.4"
                ]
            );
        }
        assert_eq!(curve_oid(KeySpec::EcP256), Some("1.2.840.10045.3.1.7"));
        assert_eq!(curve_oid(KeySpec::EcP384), Some("1.3.132.0.34"));
    }

    #[test]
    fn sign_algo_must_fit_the_key() {
        let r = |spec, algo| resolve_mechanism(spec, algo, None, None);
        assert_eq!(
            r(KeySpec::EcP256, SHA256_WITH_RSA),
            Err(AlgoError::InvalidSignAlgo)
        );
        assert_eq!(
            r(KeySpec::Rsa2048, ECDSA_WITH_SHA256),
            Err(AlgoError::InvalidSignAlgo)
        );
        // SHA-1 RSA, Ed25519, a BSI plain ECDSA OID, garbage
        for algo in [
            "1.2.840.113549.1.1.5",
            "1.3.101.112",
            "0.4.0.127.0.7.1.1.4.1.3",
            "",
            "sha256WithRSA",
        ] {
            assert_eq!(r(KeySpec::Rsa2048, algo), Err(AlgoError::InvalidSignAlgo));
            assert_eq!(r(KeySpec::EcP256, algo), Err(AlgoError::InvalidSignAlgo));
        }
    }

    #[test]
    fn implied_hash_may_be_repeated_but_not_contradicted() {
        let cases = [
            (KeySpec::Rsa2048, SHA256_WITH_RSA, HashAlg::Sha256, SHA256),
            (KeySpec::Rsa3072, SHA384_WITH_RSA, HashAlg::Sha384, SHA384),
            (KeySpec::Rsa4096, SHA512_WITH_RSA, HashAlg::Sha512, SHA512),
        ];
        for (spec, algo, hash, oid) in cases {
            let want = SignMechanism::RsaPkcs1v15 { hash };
            assert_eq!(resolve_mechanism(spec, algo, None, None), Ok(want));
            assert_eq!(resolve_mechanism(spec, algo, Some(oid), None), Ok(want));
        }
        let ec = [
            (ECDSA_WITH_SHA256, HashAlg::Sha256, SHA256),
            (ECDSA_WITH_SHA384, HashAlg::Sha384, SHA384),
            (ECDSA_WITH_SHA512, HashAlg::Sha512, SHA512),
        ];
        for (algo, hash, oid) in ec {
            let want = SignMechanism::Ecdsa { hash };
            assert_eq!(
                resolve_mechanism(KeySpec::EcP384, algo, None, None),
                Ok(want)
            );
            assert_eq!(
                resolve_mechanism(KeySpec::EcP256, algo, Some(oid), None),
                Ok(want)
            );
        }
        for bad in [SHA384, SHA1, SHA224, "1.2.3", ""] {
            assert_eq!(
                resolve_mechanism(KeySpec::Rsa2048, SHA256_WITH_RSA, Some(bad), None),
                Err(AlgoError::InvalidHashAlgo),
                "{bad}"
            );
            assert_eq!(
                resolve_mechanism(KeySpec::EcP256, ECDSA_WITH_SHA256, Some(bad), None),
                Err(AlgoError::InvalidHashAlgo),
                "{bad}"
            );
        }
    }

    #[test]
    fn rsa_encryption_needs_an_approved_hash_algo() {
        let r = |h| resolve_mechanism(KeySpec::Rsa2048, RSA_ENCRYPTION, h, None);
        assert_eq!(r(None), Err(AlgoError::MissingHashAlgo));
        assert_eq!(r(Some(SHA1)), Err(AlgoError::InvalidHashAlgo));
        assert_eq!(r(Some(SHA224)), Err(AlgoError::InvalidHashAlgo));
        assert_eq!(r(Some("not an oid")), Err(AlgoError::InvalidHashAlgo));
        assert_eq!(
            r(Some(SHA384)),
            Ok(SignMechanism::RsaPkcs1v15 {
                hash: HashAlg::Sha384
            })
        );
        assert_eq!(
            r(Some(SHA512)),
            Ok(SignMechanism::RsaPkcs1v15 {
                hash: HashAlg::Sha512
            })
        );
    }

    #[test]
    fn parameters_are_refused_where_none_belong() {
        let r = |p: &[u8]| resolve_mechanism(KeySpec::Rsa2048, SHA256_WITH_RSA, None, Some(p));
        assert!(r(&[]).is_ok());
        assert!(r(&[0x05, 0x00]).is_ok());
        assert_eq!(r(&b64(INTESI_PSS)), Err(AlgoError::InvalidSignAlgoParams));
        assert_eq!(r(b"junk"), Err(AlgoError::InvalidSignAlgoParams));
    }

    #[test]
    fn pss_needs_parameters() {
        assert_eq!(
            resolve_mechanism(KeySpec::Rsa2048, RSASSA_PSS, Some(SHA256), None),
            Err(AlgoError::MissingSignAlgoParams)
        );
        assert_eq!(
            resolve_mechanism(KeySpec::EcP256, RSASSA_PSS, None, Some(&b64(INTESI_PSS))),
            Err(AlgoError::InvalidSignAlgo)
        );
    }

    #[test]
    fn intesi_pss_vector() {
        let der = b64(INTESI_PSS);
        let want = SignMechanism::RsaPss {
            hash: HashAlg::Sha256,
            mgf_hash: HashAlg::Sha256,
            salt_len: 32,
        };
        for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
            assert_eq!(
                resolve_mechanism(spec, RSASSA_PSS, None, Some(&der)),
                Ok(want)
            );
            assert_eq!(
                resolve_mechanism(spec, RSASSA_PSS, Some(SHA256), Some(&der)),
                Ok(want)
            );
        }
        // a hashAlgo that contradicts the PSS hash
        assert_eq!(
            resolve_mechanism(KeySpec::Rsa2048, RSASSA_PSS, Some(SHA512), Some(&der)),
            Err(AlgoError::InvalidHashAlgo)
        );
        // our own encoder agrees with the vector (minus the explicit default trailer)
        assert_eq!(
            parse_pss_params(&der),
            parse_pss_params(&pss_der(H256, H256, Some(32), None))
        );
    }

    #[test]
    fn pss_with_the_maximum_salt_as_pyhanko_sends_it() {
        // emLen - hLen - 2
        let cases = [
            (KeySpec::Rsa2048, H256, HashAlg::Sha256, 222),
            (KeySpec::Rsa3072, H384, HashAlg::Sha384, 334),
            (KeySpec::Rsa4096, H512, HashAlg::Sha512, 446),
        ];
        for (spec, oid, hash, max) in cases {
            assert_eq!(max_pss_salt_len(spec, hash), max);
            let ok = pss_der(oid, oid, Some(max as u64), Some(1));
            assert_eq!(
                resolve_mechanism(spec, RSASSA_PSS, Some(hash.oid()), Some(&ok)),
                Ok(SignMechanism::RsaPss {
                    hash,
                    mgf_hash: hash,
                    salt_len: max
                })
            );
            let too_long = pss_der(oid, oid, Some(max as u64 + 1), None);
            assert_eq!(
                resolve_mechanism(spec, RSASSA_PSS, None, Some(&too_long)),
                Err(AlgoError::InvalidSignAlgoParams)
            );
        }
        // salt 0 is legal
        let zero = pss_der(H256, H256, Some(0), None);
        assert!(matches!(
            resolve_mechanism(KeySpec::Rsa2048, RSASSA_PSS, None, Some(&zero)),
            Ok(SignMechanism::RsaPss { salt_len: 0, .. })
        ));
        // absent salt means the default 20
        let default_salt = pss_der(H256, H256, None, None);
        assert!(matches!(
            resolve_mechanism(KeySpec::Rsa2048, RSASSA_PSS, None, Some(&default_salt)),
            Ok(SignMechanism::RsaPss { salt_len: 20, .. })
        ));
    }

    #[test]
    fn bad_pss_parameters() {
        let bad = |der: &[u8]| {
            resolve_mechanism(KeySpec::Rsa2048, RSASSA_PSS, None, Some(der))
                == Err(AlgoError::InvalidSignAlgoParams)
        };
        // SHA-1 (explicit, and by default: an empty SEQUENCE means SHA-1/MGF1-SHA-1/20)
        assert!(bad(&b64(SHA1_PSS)));
        assert!(bad(&[0x30, 0x00]));
        // MGF1 hash different from the message hash (SoftHSM refuses it)
        assert!(bad(&pss_der(H256, H384, Some(32), None)));
        assert!(bad(&pss_der(H512, H256, Some(32), None)));
        // trailer field other than 1
        assert!(bad(&pss_der(H256, H256, Some(32), Some(2))));
        // unparseable: garbage, truncated, trailing bytes, not a SEQUENCE
        let intesi = b64(INTESI_PSS);
        assert!(bad(b"junk"));
        assert!(bad(&[]));
        assert!(bad(&intesi[..intesi.len() - 1]));
        let mut trailing = intesi.clone();
        trailing.push(0);
        assert!(bad(&trailing));
        assert!(bad(&[0x05, 0x00]));
        // a negative salt length
        let mut negative = pss_der(H256, H256, Some(32), None);
        let pos = negative.len() - 1;
        negative[pos] = 0xe0; // 32 -> -32
        assert!(bad(&negative));
        // unknown hash OID inside the params
        assert!(bad(&pss_der(&[1, 2, 3, 4], &[1, 2, 3, 4], Some(32), None)));
        // a mask generation function other than MGF1
        let not_mgf1 = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(H256));
                    });
                });
                w.next().write_tagged(Tag::context(1), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(&[
                            1, 2, 840, 113549, 1, 1, 9,
                        ]));
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&ObjectIdentifier::from_slice(H256));
                        });
                    });
                });
            });
        });
        assert!(bad(&not_mgf1));
    }
}
