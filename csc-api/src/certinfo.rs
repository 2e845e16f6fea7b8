//! Certificate facts in the formats `credentials/info` prescribes (spec §11.5): RFC 4514
//! distinguished names, hex serial numbers, GeneralizedTime `YYYYMMDDHHMMSSZ`.

use chrono::NaiveDateTime;
use openssl::asn1::Asn1TimeRef;
use openssl::nid::Nid;
use openssl::x509::{X509, X509NameRef};

/// RFC 4514: the most specific RDN first, special characters escaped.
pub fn rfc4514(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = name
        .entries()
        .map(|e| {
            let nid = e.object().nid();
            let key = match nid {
                Nid::COMMONNAME => "CN".to_owned(),
                Nid::COUNTRYNAME => "C".to_owned(),
                Nid::ORGANIZATIONNAME => "O".to_owned(),
                Nid::ORGANIZATIONALUNITNAME => "OU".to_owned(),
                Nid::LOCALITYNAME => "L".to_owned(),
                Nid::STATEORPROVINCENAME => "ST".to_owned(),
                _ => e.object().to_string(),
            };
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={}", escape(&value))
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An ASN.1 time as `YYYYMMDDHHMMSSZ`.
pub fn generalized_time(t: &Asn1TimeRef) -> Option<String> {
    to_naive(t).map(|t| t.format("%Y%m%d%H%M%SZ").to_string())
}

/// An ASN.1 time as a UTC date-time.
pub fn to_naive(t: &Asn1TimeRef) -> Option<NaiveDateTime> {
    // OpenSSL prints e.g. "Nov 23 08:45:31 2026 GMT"
    NaiveDateTime::parse_from_str(&t.to_string(), "%b %e %H:%M:%S %Y GMT").ok()
}

/// Whether the certificate is within its validity period at `now` (UTC, Part I 7.1.1.12).
pub fn is_valid_at(cert: &X509, now: NaiveDateTime) -> bool {
    matches!(
        (to_naive(cert.not_before()), to_naive(cert.not_after())),
        (Some(from), Some(to)) if from <= now && now <= to
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_reverses_and_escapes() {
        let mut b = openssl::x509::X509NameBuilder::new().expect("builder");
        b.append_entry_by_nid(Nid::COUNTRYNAME, "BE").expect("c");
        b.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Acme, Inc")
            .expect("o");
        b.append_entry_by_nid(Nid::COMMONNAME, "alice").expect("cn");
        let name = b.build();
        assert_eq!(rfc4514(&name), "CN=alice,O=Acme\\, Inc,C=BE");
    }

    #[test]
    fn generalized_time_format() {
        let t = openssl::asn1::Asn1Time::from_str("20261123084531Z").expect("time");
        assert_eq!(generalized_time(&t).as_deref(), Some("20261123084531Z"));
        let t = openssl::asn1::Asn1Time::from_str("20260102030405Z").expect("time");
        assert_eq!(generalized_time(&t).as_deref(), Some("20260102030405Z"));
    }
}
