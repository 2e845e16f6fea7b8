//! Verifying what the server says against what the certificate says: raw signature values
//! (PKCS#1 v1.5, PSS, DER ECDSA) under the certificate's key, RFC 4514 DNs, serial numbers and
//! GeneralizedTimes of `certInfo`, chains.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::asn1::{Asn1ObjectRef, Asn1Time};
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use openssl::x509::{X509, X509NameRef, X509VerifyResult};

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text)
        .map_err(|e| format!("not standard base64 ({e})"))
}

/// A digest algorithm the suite can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    pub fn oid(self) -> &'static str {
        match self {
            Digest::Sha256 => "2.16.840.1.101.3.4.2.1",
            Digest::Sha384 => "2.16.840.1.101.3.4.2.2",
            Digest::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }

    fn md(self) -> &'static MdRef {
        match self {
            Digest::Sha256 => Md::sha256(),
            Digest::Sha384 => Md::sha384(),
            Digest::Sha512 => Md::sha512(),
        }
    }

    fn message_digest(self) -> openssl::hash::MessageDigest {
        match self {
            Digest::Sha256 => openssl::hash::MessageDigest::sha256(),
            Digest::Sha384 => openssl::hash::MessageDigest::sha384(),
            Digest::Sha512 => openssl::hash::MessageDigest::sha512(),
        }
    }

    /// The digest of `data`.
    pub fn of(self, data: &[u8]) -> Vec<u8> {
        openssl::hash::hash(self.message_digest(), data)
            .map(|d| d.to_vec())
            .unwrap_or_default()
    }
}

/// How a raw signature value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 over a DigestInfo of that digest.
    Pkcs1(Digest),
    /// RSASSA-PSS, MGF1 with the same digest, this salt length.
    Pss(Digest, i32),
    /// ECDSA, the value a DER `ECDSA-Sig-Value`.
    Ecdsa(Digest),
}

/// A fresh random digest of `n` bytes' worth of data, so no two runs sign the same thing.
pub fn fresh_digest(d: Digest, label: &str) -> Vec<u8> {
    let mut nonce = [0u8; 16];
    let _ = openssl::rand::rand_bytes(&mut nonce);
    let mut data = label.as_bytes().to_vec();
    data.extend_from_slice(&nonce);
    d.of(&data)
}

pub fn parse_cert(b64_der: &str) -> Result<X509, String> {
    let der = unb64(b64_der)?;
    X509::from_der(&der).map_err(|e| format!("not a DER X.509 certificate ({e})"))
}

/// Key type and size of a certificate: ("RSA" | "EC" | other, bits).
pub fn key_of(cert: &X509) -> Result<(String, u32), String> {
    let key = cert
        .public_key()
        .map_err(|e| format!("unreadable public key ({e})"))?;
    let kind = match key.id() {
        Id::RSA | Id::RSA_PSS => "RSA".to_owned(),
        Id::EC => "EC".to_owned(),
        other => format!("{other:?}"),
    };
    Ok((kind, key.bits()))
}

/// The named curve OID of an EC certificate key.
pub fn curve_oid(cert: &X509) -> Option<String> {
    let key = cert.public_key().ok()?;
    let ec = key.ec_key().ok()?;
    let nid = ec.group().curve_name()?;
    let obj = openssl::asn1::Asn1Object::from_str(nid.short_name().ok()?).ok()?;
    Some(dotted(&obj))
}

/// Verifies `sig` over `digest` with the certificate's key.
pub fn verify(cert: &X509, digest: &[u8], scheme: Scheme, sig: &[u8]) -> Result<(), String> {
    let key: PKey<Public> = cert
        .public_key()
        .map_err(|e| format!("unreadable public key ({e})"))?;
    let mut ctx = PkeyCtx::new(&key).map_err(|e| e.to_string())?;
    ctx.verify_init().map_err(|e| e.to_string())?;
    let d = match scheme {
        Scheme::Pkcs1(d) => {
            ctx.set_rsa_padding(Padding::PKCS1)
                .map_err(|e| e.to_string())?;
            d
        }
        Scheme::Pss(d, salt) => {
            ctx.set_rsa_padding(Padding::PKCS1_PSS)
                .map_err(|e| e.to_string())?;
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt))
                .map_err(|e| e.to_string())?;
            ctx.set_rsa_mgf1_md(d.md()).map_err(|e| e.to_string())?;
            d
        }
        Scheme::Ecdsa(d) => {
            openssl::ecdsa::EcdsaSig::from_der(sig).map_err(|_| {
                format!(
                    "the {}-byte value is not a DER ECDSA-Sig-Value (raw r||s?)",
                    sig.len()
                )
            })?;
            d
        }
    };
    ctx.set_signature_md(d.md()).map_err(|e| e.to_string())?;
    match ctx.verify(digest, sig) {
        Ok(true) => Ok(()),
        _ => Err("the signature does not verify under the certificate's public key".into()),
    }
}

/// Each certificate is issued and signed by the next one.
pub fn chain_links(chain: &[X509]) -> Result<(), String> {
    for (i, (child, parent)) in chain.iter().zip(chain.iter().skip(1)).enumerate() {
        if parent.issued(child) != X509VerifyResult::OK {
            return Err(format!(
                "certificate {} is not issued by certificate {}",
                i,
                i + 1
            ));
        }
        let key = parent.public_key().map_err(|e| e.to_string())?;
        if !child.verify(&key).unwrap_or(false) {
            return Err(format!(
                "certificate {} is not signed by the key of certificate {}",
                i,
                i + 1
            ));
        }
    }
    Ok(())
}

/// The dotted form of an OID.
pub fn dotted(obj: &Asn1ObjectRef) -> String {
    let owned = obj.to_owned();
    let bytes = owned.as_slice();
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for b in bytes {
        acc = (acc << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let mut out = Vec::new();
    if let Some((&first, rest)) = arcs.split_first() {
        let (a, b) = match first {
            f if f < 40 => (0, f),
            f if f < 80 => (1, f - 40),
            f => (2, f - 80),
        };
        out.push(a.to_string());
        out.push(b.to_string());
        out.extend(rest.iter().map(u128::to_string));
    }
    out.join(".")
}

/// Whether `s` is a dotted OID (`1.2.840.113549.1.1.11`).
pub fn is_oid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// One attribute of a DN: its type (as written) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ava {
    kind: String,
    value: String,
}

/// Parses an RFC 4514 string into its attributes, most significant last as written.
fn parse_rfc4514(s: &str) -> Result<Vec<Ava>, String> {
    let mut avas = Vec::new();
    if s.is_empty() {
        return Ok(avas);
    }
    let mut chars = s.chars().peekable();
    loop {
        let mut kind = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            kind.push(c);
        }
        let kind = kind.trim().to_owned();
        if kind.is_empty() {
            return Err(format!("{s:?}: an attribute without a type"));
        }
        let mut raw: Vec<u8> = Vec::new();
        let mut ended_by_separator = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let Some(n) = chars.next() else {
                        return Err(format!("{s:?}: a dangling backslash"));
                    };
                    if n.is_ascii_hexdigit() {
                        let Some(m) = chars.next().filter(char::is_ascii_hexdigit) else {
                            return Err(format!("{s:?}: a bad \\XX escape"));
                        };
                        let byte = u8::from_str_radix(&format!("{n}{m}"), 16)
                            .map_err(|e| e.to_string())?;
                        raw.push(byte);
                    } else {
                        let mut buf = [0u8; 4];
                        raw.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
                    }
                }
                ',' | '+' => {
                    ended_by_separator = true;
                    break;
                }
                c => {
                    let mut buf = [0u8; 4];
                    raw.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(raw).map_err(|_| format!("{s:?}: a value is not UTF-8"))?;
        avas.push(Ava { kind, value });
        if !ended_by_separator {
            break;
        }
    }
    Ok(avas)
}

/// Checks that `rendered` is the RFC 4514 string of `name`: same attributes, same values, in
/// reverse order of the DER sequence (RFC 4514 §2.1), types as short names or dotted OIDs.
pub fn dn_matches(rendered: &str, name: &X509NameRef) -> Result<(), String> {
    let got = parse_rfc4514(rendered)?;
    let mut want: Vec<(String, String, String)> = Vec::new();
    for e in name.entries() {
        let obj = e.object();
        let short = obj.nid().short_name().unwrap_or("").to_owned();
        let value = e.data().to_string().map_err(|e| e.to_string())?;
        want.push((short, dotted(obj), value));
    }
    want.reverse();
    let shown = want
        .iter()
        .map(|(s, o, v)| format!("{}={v}", if s.is_empty() { o } else { s }))
        .collect::<Vec<_>>()
        .join(",");
    if got.len() != want.len() {
        return Err(format!(
            "{} attributes where the certificate has {} ({shown})",
            got.len(),
            want.len()
        ));
    }
    for (g, (short, oid, value)) in got.iter().zip(&want) {
        let type_ok = g.kind.eq_ignore_ascii_case(short) || g.kind == *oid;
        if !type_ok || g.value != *value {
            return Err(format!(
                "{}={} where the certificate, most specific first, has {shown}",
                g.kind, g.value
            ));
        }
    }
    Ok(())
}

/// Checks a GeneralizedTime `YYYYMMDDHHMMSSZ` against a certificate time.
pub fn time_matches(text: &str, cert_time: &openssl::asn1::Asn1TimeRef) -> Result<(), String> {
    let shape =
        text.len() == 15 && text.ends_with('Z') && text[..14].chars().all(|c| c.is_ascii_digit());
    if !shape {
        return Err(format!("{text:?} is not of the form YYYYMMDDHHMMSSZ"));
    }
    let t = Asn1Time::from_str(text).map_err(|_| format!("{text:?} is not a valid time"))?;
    match t.compare(cert_time) {
        Ok(Ordering::Equal) => Ok(()),
        _ => Err(format!("{text} where the certificate says {cert_time}")),
    }
}

/// Checks a hex serial number against the certificate's.
pub fn serial_matches(text: &str, cert: &X509) -> Result<(), String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not a hex string"));
    }
    let want = cert
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .map_err(|e| e.to_string())?;
    let norm = |s: &str| s.trim_start_matches('0').to_ascii_uppercase();
    if norm(text) == norm(&want) {
        Ok(())
    } else {
        Err(format!("{text} where the certificate's serial is {want}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_strings_are_split_and_unescaped() {
        let avas = parse_rfc4514(r"CN=Doe\, John,O=A\2bB,C=BE").unwrap_or_default();
        let values: Vec<&str> = avas.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(values, ["Doe, John", "A+B", "BE"]);
        assert!(parse_rfc4514("=x").is_err());
    }

    #[test]
    fn oids_are_recognised() {
        assert!(is_oid("1.2.840.113549.1.1.11"));
        assert!(!is_oid("sha256WithRSA"));
        assert!(!is_oid("1..2"));
        let obj = openssl::asn1::Asn1Object::from_str("1.2.840.10045.3.1.7");
        assert_eq!(
            obj.map(|o| dotted(&o)).ok().as_deref(),
            Some("1.2.840.10045.3.1.7")
        );
    }
}
