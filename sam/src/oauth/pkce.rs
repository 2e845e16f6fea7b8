//! PKCE S256 (RFC 7636) and constant-time digest comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use storage::secret_hash;

/// RFC 7636 §4.1: a code verifier is 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2: the S256 challenge of a verifier, base64url without padding.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(secret_hash(verifier.as_bytes()))
}

/// Whether S256(`verifier`) is `challenge`, compared in constant time.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let computed = s256(verifier);
    computed.len() == challenge.len()
        && openssl::memcmp::eq(computed.as_bytes(), challenge.as_bytes())
}

/// SHA-256 of a value as bytes, compared in constant time with a stored digest.
pub(crate) fn digest_matches(secret: &str, stored: &[u8]) -> bool {
    let d = secret_hash(secret.as_bytes());
    stored.len() == d.len() && openssl::memcmp::eq(&d, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(valid_code_verifier(verifier));
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!valid_code_verifier("short"));
        assert!(!valid_code_verifier(&"a+".repeat(30)));
    }

    #[test]
    fn digests_compare_only_equal_lengths() {
        let d = secret_hash(b"s3cret");
        assert!(digest_matches("s3cret", &d));
        assert!(!digest_matches("s3cret!", &d));
        assert!(!digest_matches("s3cret", d.get(..31).unwrap_or_default()));
    }
}
