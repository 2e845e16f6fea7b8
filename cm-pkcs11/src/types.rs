//! Value types: key ids, key specs, hash algorithms, mechanisms, public keys.

use std::fmt;
use std::str::FromStr;

use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use crate::error::{HsmError, ParseError};

fn parse_error(what: &'static str, value: &str) -> ParseError {
    ParseError {
        what,
        value: value.chars().take(80).collect(),
    }
}

/// Identifier of a key pair in the token: its `CKA_ID`, 16 random bytes from
/// the OS CSPRNG. Displayed and parsed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// Length of a key id in bytes.
    pub const LEN: usize = 16;

    /// A fresh random id from the OS CSPRNG.
    pub fn random() -> Result<KeyId, HsmError> {
        let mut b = [0u8; Self::LEN];
        getrandom::fill(&mut b).map_err(|e| HsmError::Random(e.to_string()))?;
        Ok(KeyId(b))
    }

    /// Wraps raw id bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> KeyId {
        KeyId(bytes)
    }

    /// The raw `CKA_ID` bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; Self::LEN];
        // Only lowercase is canonical, but accept uppercase input too.
        hex::decode_to_slice(s, &mut b).map_err(|_| parse_error("key id", s))?;
        Ok(KeyId(b))
    }
}

/// OID prime256v1 / secp256r1 (1.2.840.10045.3.1.7), DER encoded: the
/// `CKA_EC_PARAMS` of a P-256 key.
pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// OID secp384r1 (1.3.132.0.34), DER encoded: the `CKA_EC_PARAMS` of a P-384 key.
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Key types the module generates. Only approved algorithms and sizes
/// (JT2A Part III 2: RSA >= 2048 bits, NIST P-256 / P-384).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA, 2048-bit modulus, e = 65537.
    Rsa2048,
    /// RSA, 3072-bit modulus, e = 65537.
    Rsa3072,
    /// RSA, 4096-bit modulus, e = 65537.
    Rsa4096,
    /// ECDSA on NIST P-256 (prime256v1).
    EcP256,
    /// ECDSA on NIST P-384 (secp384r1).
    EcP384,
}

impl KeySpec {
    /// All specs, in a stable order.
    pub const ALL: [KeySpec; 5] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EcP256,
        KeySpec::EcP384,
    ];

    /// True for the RSA specs.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    /// Modulus length (RSA) or field size (EC) in bits.
    pub fn bits(self) -> usize {
        match self {
            KeySpec::Rsa2048 => 2048,
            KeySpec::Rsa3072 => 3072,
            KeySpec::Rsa4096 => 4096,
            KeySpec::EcP256 => 256,
            KeySpec::EcP384 => 384,
        }
    }

    /// The canonical name, as accepted by `FromStr`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::Rsa2048 => "rsa-2048",
            KeySpec::Rsa3072 => "rsa-3072",
            KeySpec::Rsa4096 => "rsa-4096",
            KeySpec::EcP256 => "ec-p256",
            KeySpec::EcP384 => "ec-p384",
        }
    }

    /// DER OID of the curve (`CKA_EC_PARAMS`), `None` for RSA.
    pub(crate) fn ec_params(self) -> Option<&'static [u8]> {
        match self {
            KeySpec::EcP256 => Some(OID_P256),
            KeySpec::EcP384 => Some(OID_P384),
            _ => None,
        }
    }

    /// The OpenSSL curve, `None` for RSA.
    pub(crate) fn curve_nid(self) -> Option<Nid> {
        match self {
            KeySpec::EcP256 => Some(Nid::X9_62_PRIME256V1),
            KeySpec::EcP384 => Some(Nid::SECP384R1),
            _ => None,
        }
    }

    /// Spec from a DER-encoded curve OID.
    pub(crate) fn from_ec_params(params: &[u8]) -> Option<KeySpec> {
        if params == OID_P256 {
            Some(KeySpec::EcP256)
        } else if params == OID_P384 {
            Some(KeySpec::EcP384)
        } else {
            None
        }
    }

    /// Spec from an RSA modulus length in bits.
    pub(crate) fn from_rsa_bits(bits: usize) -> Option<KeySpec> {
        match bits {
            2048 => Some(KeySpec::Rsa2048),
            3072 => Some(KeySpec::Rsa3072),
            4096 => Some(KeySpec::Rsa4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeySpec {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeySpec::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| parse_error("key spec", s))
    }
}

/// Approved hash algorithms (JT2A Part III 2: SHA-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Hashes `data` (OpenSSL).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => openssl::sha::sha256(data).to_vec(),
            HashAlg::Sha384 => openssl::sha::sha384(data).to_vec(),
            HashAlg::Sha512 => openssl::sha::sha512(data).to_vec(),
        }
    }

    /// DER prefix of a PKCS#1 v1.5 `DigestInfo` for this hash (RFC 8017
    /// §9.2 note 1): `DigestInfo = prefix || digest`.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// The OpenSSL message digest.
    pub fn md(self) -> MessageDigest {
        match self {
            HashAlg::Sha256 => MessageDigest::sha256(),
            HashAlg::Sha384 => MessageDigest::sha384(),
            HashAlg::Sha512 => MessageDigest::sha512(),
        }
    }

    /// Dotted OID of the hash (e.g. `2.16.840.1.101.3.4.2.1` for SHA-256).
    pub fn oid(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "2.16.840.1.101.3.4.2.1",
            HashAlg::Sha384 => "2.16.840.1.101.3.4.2.2",
            HashAlg::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }

    /// Hash from its dotted OID.
    pub fn from_oid(oid: &str) -> Option<HashAlg> {
        [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
            .into_iter()
            .find(|h| h.oid() == oid)
    }

    /// Lowercase name: `sha256`, `sha384`, `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub(crate) fn mechanism_type(self) -> cryptoki::mechanism::MechanismType {
        use cryptoki::mechanism::MechanismType;
        match self {
            HashAlg::Sha256 => MechanismType::SHA256,
            HashAlg::Sha384 => MechanismType::SHA384,
            HashAlg::Sha512 => MechanismType::SHA512,
        }
    }

    pub(crate) fn mgf(self) -> cryptoki::mechanism::rsa::PkcsMgfType {
        use cryptoki::mechanism::rsa::PkcsMgfType;
        match self {
            HashAlg::Sha256 => PkcsMgfType::MGF1_SHA256,
            HashAlg::Sha384 => PkcsMgfType::MGF1_SHA384,
            HashAlg::Sha512 => PkcsMgfType::MGF1_SHA512,
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashAlg {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha256" => Ok(HashAlg::Sha256),
            "sha384" => Ok(HashAlg::Sha384),
            "sha512" => Ok(HashAlg::Sha512),
            _ => Err(parse_error("hash algorithm", s)),
        }
    }
}

/// The hash of an HMAC computed in the token (RFC 2104) with a secret key
/// made by [`crate::Hsm::import_hmac_secret`] or [`crate::Hsm::secret_key`]:
/// `CKM_SHA_1_HMAC`, `CKM_SHA256_HMAC` or `CKM_SHA512_HMAC`. HMAC-SHA1 is here
/// only for RFC 4226/6238 one-time passwords, whose authenticator apps use
/// it; it is never used to sign documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HmacAlg {
    /// HMAC-SHA1 (`CKM_SHA_1_HMAC`), the RFC 6238 default.
    Sha1,
    /// HMAC-SHA256 (`CKM_SHA256_HMAC`).
    Sha256,
    /// HMAC-SHA512 (`CKM_SHA512_HMAC`).
    Sha512,
}

impl HmacAlg {
    /// Every algorithm, in a stable order.
    pub const ALL: [HmacAlg; 3] = [HmacAlg::Sha1, HmacAlg::Sha256, HmacAlg::Sha512];

    /// Length of the HMAC in bytes (the hash output length).
    pub fn output_len(self) -> usize {
        match self {
            HmacAlg::Sha1 => 20,
            HmacAlg::Sha256 => 32,
            HmacAlg::Sha512 => 64,
        }
    }

    /// The shortest secret accepted for a key of this algorithm: the hash
    /// output length (RFC 2104 §3: "less than L bytes is strongly
    /// discouraged"; RFC 4226 R6 asks at least 128 bits and recommends 160).
    pub fn min_key_len(self) -> usize {
        self.output_len()
    }

    /// Lowercase name: `sha1`, `sha256`, `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            HmacAlg::Sha1 => "sha1",
            HmacAlg::Sha256 => "sha256",
            HmacAlg::Sha512 => "sha512",
        }
    }

    /// The PKCS#11 mechanism.
    pub(crate) fn mechanism_type(self) -> cryptoki::mechanism::MechanismType {
        use cryptoki::mechanism::MechanismType;
        match self {
            HmacAlg::Sha1 => MechanismType::SHA1_HMAC,
            HmacAlg::Sha256 => MechanismType::SHA256_HMAC,
            HmacAlg::Sha512 => MechanismType::SHA512_HMAC,
        }
    }

    /// The `cryptoki` mechanism; built on the thread that uses it
    /// (`Mechanism` is `!Send`).
    pub(crate) fn mechanism(self) -> cryptoki::mechanism::Mechanism<'static> {
        use cryptoki::mechanism::Mechanism;
        match self {
            HmacAlg::Sha1 => Mechanism::Sha1Hmac,
            HmacAlg::Sha256 => Mechanism::Sha256Hmac,
            HmacAlg::Sha512 => Mechanism::Sha512Hmac,
        }
    }
}

impl fmt::Display for HmacAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HmacAlg {
    type Err = ParseError;

    /// Exactly the names [`HmacAlg::as_str`] gives.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HmacAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| parse_error("HMAC algorithm", s))
    }
}

/// How to sign a digest (the signHash case: the caller has already hashed).
///
/// This is plain data and `Send`; the `cryptoki` `Mechanism` (which is
/// `!Send`) is built from it on the thread that signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignMechanism {
    /// `CKM_RSA_PKCS` over `DigestInfo(hash) || digest` (RSASSA-PKCS1-v1_5).
    RsaPkcs1v15 {
        /// The hash that produced the digest.
        hash: HashAlg,
    },
    /// `CKM_RSA_PKCS_PSS` with `CK_RSA_PKCS_PSS_PARAMS` over the digest
    /// (RSASSA-PSS, MGF1).
    RsaPss {
        /// The hash that produced the digest.
        hash: HashAlg,
        /// The MGF1 hash. SoftHSM 2.6.1 only accepts `mgf_hash == hash`
        /// (otherwise `CKR_ARGUMENTS_BAD`, reported as [`HsmError::Pkcs11`]).
        mgf_hash: HashAlg,
        /// Salt length in bytes.
        salt_len: usize,
    },
    /// `CKM_ECDSA` over the digest; the token's `r || s` is returned as a DER
    /// `ECDSA-Sig-Value` (RFC 3279).
    Ecdsa {
        /// The hash that produced the digest.
        hash: HashAlg,
    },
}

impl SignMechanism {
    /// The hash the digest must have been made with.
    pub fn hash(&self) -> HashAlg {
        match *self {
            SignMechanism::RsaPkcs1v15 { hash }
            | SignMechanism::RsaPss { hash, .. }
            | SignMechanism::Ecdsa { hash } => hash,
        }
    }

    /// Short name for messages: `RSA-PKCS1v15`, `RSA-PSS`, `ECDSA`.
    pub fn name(&self) -> &'static str {
        match self {
            SignMechanism::RsaPkcs1v15 { .. } => "RSA-PKCS1v15",
            SignMechanism::RsaPss { .. } => "RSA-PSS",
            SignMechanism::Ecdsa { .. } => "ECDSA",
        }
    }

    /// True if the mechanism needs an RSA key, false if it needs an EC key.
    pub fn is_rsa(&self) -> bool {
        !matches!(self, SignMechanism::Ecdsa { .. })
    }
}

impl fmt::Display for SignMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignMechanism::RsaPkcs1v15 { hash } => write!(f, "RSA-PKCS1v15-{hash}"),
            SignMechanism::RsaPss {
                hash,
                mgf_hash,
                salt_len,
            } => write!(f, "RSA-PSS-{hash}-MGF1-{mgf_hash}-salt{salt_len}"),
            SignMechanism::Ecdsa { hash } => write!(f, "ECDSA-{hash}"),
        }
    }
}

/// A public key exported from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// DER `SubjectPublicKeyInfo` (RFC 5280).
    pub spki_der: Vec<u8>,
    /// Type and size of the key.
    pub spec: KeySpec,
}

impl PublicKey {
    /// Builds the SPKI of an RSA key from `CKA_MODULUS` and
    /// `CKA_PUBLIC_EXPONENT` (big-endian).
    pub(crate) fn from_rsa(spec: KeySpec, n: &[u8], e: &[u8]) -> Result<PublicKey, HsmError> {
        let rsa = Rsa::from_public_components(BigNum::from_slice(n)?, BigNum::from_slice(e)?)?;
        let pkey = PKey::from_rsa(rsa)?;
        Ok(PublicKey {
            spki_der: pkey.public_key_to_der()?,
            spec,
        })
    }

    /// Builds the SPKI of an EC key from `CKA_EC_POINT`, which is a DER OCTET
    /// STRING wrapping `04 || X || Y` (some tokens return the bare point;
    /// both are accepted). OpenSSL checks that the point is on the curve.
    pub(crate) fn from_ec(spec: KeySpec, ec_point: &[u8]) -> Result<PublicKey, HsmError> {
        let nid = spec
            .curve_nid()
            .ok_or_else(|| HsmError::Encoding(format!("{spec} is not an EC key spec")))?;
        let field = spec.bits().div_ceil(8);
        let raw_len = 1 + 2 * field;
        let point_bytes = if ec_point.len() == raw_len && ec_point.first() == Some(&0x04) {
            ec_point
        } else {
            der_octet_string(ec_point).ok_or_else(|| {
                HsmError::Encoding("CKA_EC_POINT is neither a DER OCTET STRING nor a point".into())
            })?
        };
        let group = EcGroup::from_curve_name(nid)?;
        let mut ctx = openssl::bn::BigNumContext::new()?;
        let point = EcPoint::from_bytes(&group, point_bytes, &mut ctx)?;
        let key = EcKey::from_public_key(&group, &point)?;
        key.check_key()?;
        let pkey = PKey::from_ec_key(key)?;
        Ok(PublicKey {
            spki_der: pkey.public_key_to_der()?,
            spec,
        })
    }

    /// The content of the SPKI's `subjectPublicKey` BIT STRING: the DER
    /// `RSAPublicKey` for RSA, the uncompressed point `04 || X || Y` for EC.
    ///
    /// Returns an empty vector if `spki_der` is malformed, which cannot happen
    /// for a key returned by [`crate::Hsm::public_key`]; use
    /// [`PublicKey::try_raw_public_key_bits`] for foreign input.
    pub fn raw_public_key_bits(&self) -> Vec<u8> {
        self.try_raw_public_key_bits().unwrap_or_default()
    }

    /// Like [`PublicKey::raw_public_key_bits`], with an error on malformed DER.
    pub fn try_raw_public_key_bits(&self) -> Result<Vec<u8>, HsmError> {
        spki_bit_string(&self.spki_der)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| HsmError::Encoding("malformed SubjectPublicKeyInfo".into()))
    }

    /// PEM (`-----BEGIN PUBLIC KEY-----`) of the SPKI.
    pub fn to_pem(&self) -> String {
        let b64 = openssl::base64::encode_block(&self.spki_der);
        let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
        out.push_str("-----BEGIN PUBLIC KEY-----\n");
        let mut rest = b64.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            out.push_str(line);
            out.push('\n');
            rest = tail;
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// The key as an OpenSSL public key (for verification).
    pub fn to_openssl(&self) -> Result<PKey<openssl::pkey::Public>, HsmError> {
        Ok(PKey::public_key_from_der(&self.spki_der)?)
    }
}

/// Security attributes of a private key as read back from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttributes {
    /// `CKA_SENSITIVE` (Part III 1).
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE` (Part III 1, 17).
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
    /// `CKA_SIGN`.
    pub sign: bool,
    /// `CKA_DECRYPT` (must be false: sign only, Part III 3, 5).
    pub decrypt: bool,
    /// `CKA_UNWRAP` (must be false).
    pub unwrap: bool,
    /// `CKA_DERIVE` (must be false).
    pub derive: bool,
    /// `CKA_LOCAL`: the key was generated inside the token (Part III 16).
    pub local: bool,
    /// `CKA_MODIFIABLE` (must be false: the label binds the key to its owner).
    pub modifiable: bool,
    /// `CKA_COPYABLE` (must be false: no copy under another label).
    pub copyable: bool,
    /// `CKA_ALLOWED_MECHANISMS`, as PKCS#11 names (e.g. `CKM_ECDSA`); empty
    /// if the token does not report it.
    pub allowed_mechanisms: Vec<String>,
    /// Length of `CKA_VALUE` (EC) or `CKA_PRIVATE_EXPONENT` (RSA) as read
    /// back: must be 0, the token refuses to reveal it.
    pub private_value_len: usize,
}

// ---- minimal DER helpers (only what is needed to unwrap known structures) ----

/// Reads one DER TLV; returns (tag, content, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, r) = rest.split_at(n);
        rest = r;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// Content of a DER OCTET STRING that spans the whole input.
fn der_octet_string(input: &[u8]) -> Option<&[u8]> {
    match der_tlv(input)? {
        (0x04, content, []) => Some(content),
        _ => None,
    }
}

/// The subjectPublicKey bits of a DER SPKI (without the unused-bits byte).
fn spki_bit_string(spki: &[u8]) -> Option<&[u8]> {
    let (0x30, seq, []) = der_tlv(spki)? else {
        return None;
    };
    let (0x30, _alg, rest) = der_tlv(seq)? else {
        return None;
    };
    let (0x03, bits, []) = der_tlv(rest)? else {
        return None;
    };
    match bits.split_first()? {
        (0, content) => Some(content),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_spec_round_trip() {
        for k in KeySpec::ALL {
            assert_eq!(k.to_string().parse::<KeySpec>(), Ok(k));
        }
        assert!("rsa-1024".parse::<KeySpec>().is_err());
    }

    #[test]
    fn hmac_alg_round_trip() {
        for a in HmacAlg::ALL {
            assert_eq!(a.to_string().parse::<HmacAlg>(), Ok(a));
            assert_eq!(a.min_key_len(), a.output_len());
        }
        assert!("SHA1".parse::<HmacAlg>().is_err());
        assert!("md5".parse::<HmacAlg>().is_err());
    }

    #[test]
    fn key_id_round_trip() {
        let id = KeyId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
        assert!("abcd".parse::<KeyId>().is_err());
    }

    #[test]
    fn digest_info_prefix_matches_length() {
        for h in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let p = h.digest_info_prefix();
            assert_eq!(p.len() + h.digest_len() - 2, usize::from(p[1]));
            assert_eq!(usize::from(p[p.len() - 1]), h.digest_len());
            assert_eq!(h.digest(b"abc").len(), h.digest_len());
        }
    }

    #[test]
    fn pem_and_raw_bits() {
        let ec =
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
        let pubkey = EcKey::from_public_key(ec.group(), ec.public_key()).unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let point = pubkey
            .public_key()
            .to_bytes(
                pubkey.group(),
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )
            .unwrap();
        let mut wrapped = vec![0x04, point.len() as u8];
        wrapped.extend_from_slice(&point);
        let pk = PublicKey::from_ec(KeySpec::EcP256, &wrapped).unwrap();
        assert_eq!(pk.raw_public_key_bits(), point);
        let pk2 = PublicKey::from_ec(KeySpec::EcP256, &point).unwrap();
        assert_eq!(pk, pk2);
        let parsed = PKey::public_key_from_pem(pk.to_pem().as_bytes()).unwrap();
        assert_eq!(parsed.public_key_to_der().unwrap(), pk.spki_der);
        assert!(PublicKey::from_ec(KeySpec::EcP384, &wrapped).is_err());
    }

    /// SoftHSM2 returns `CKA_EC_POINT` DER-wrapped (PKCS#11 2.40), kryoptic raw unless
    /// `KRYOPTIC_EC_POINT_ENCODING=DER` (README "HSMs"): both give the same SPKI, anything else is
    /// refused.
    #[test]
    fn ec_points_raw_and_der_wrapped() {
        use openssl::bn::BigNumContext;
        use openssl::ec::{EcGroup, EcKey, PointConversionForm};
        for (spec, nid) in [
            (KeySpec::EcP256, openssl::nid::Nid::X9_62_PRIME256V1),
            (KeySpec::EcP384, openssl::nid::Nid::SECP384R1),
        ] {
            let group = EcGroup::from_curve_name(nid).unwrap();
            let key = EcKey::generate(&group).unwrap();
            let mut ctx = BigNumContext::new().unwrap();
            let raw = key
                .public_key()
                .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
                .unwrap();
            let mut der = vec![0x04, u8::try_from(raw.len()).unwrap()];
            der.extend_from_slice(&raw);
            let expected = PKey::from_ec_key(key).unwrap().public_key_to_der().unwrap();
            assert_eq!(PublicKey::from_ec(spec, &raw).unwrap().spki_der, expected);
            assert_eq!(PublicKey::from_ec(spec, &der).unwrap().spki_der, expected);
            assert!(PublicKey::from_ec(spec, &raw[1..]).is_err());
            assert!(PublicKey::from_ec(spec, &der[..der.len() - 1]).is_err());
        }
    }
}
