//! Secrets by construction: Argon2id verifiers for PINs and passwords, compared in constant
//! time by the argon2 crate, and opaque random values from the OS CSPRNG (Part II 3.2.2.2).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::SamError;

/// `len` bytes from the operating system's CSPRNG.
pub fn random_bytes(len: usize) -> Result<Vec<u8>, SamError> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(|e| SamError::Random(e.to_string()))?;
    Ok(buf)
}

/// An opaque random value of `len` bytes, base64url without padding (SADs, tokens, PINs
/// generated for the token).
pub fn random_token(len: usize) -> Result<String, SamError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(len)?))
}

/// The Argon2id verifier (PHC string) of a PIN or password; the secret itself is never stored.
pub fn hash_secret(secret: &SecretString) -> Result<String, SamError> {
    let salt = random_bytes(16)?;
    Argon2::default()
        .hash_password_with_salt(secret.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SamError::Hashing(e.to_string()))
}

/// Whether `secret` matches the stored verifier. A malformed verifier never matches.
pub fn verify_secret(secret: &SecretString, verifier: &str) -> bool {
    Argon2::default()
        .verify_password(secret.expose_secret().as_bytes(), verifier)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_accepts_only_the_secret() {
        let pin = SecretString::from("123456");
        let v = hash_secret(&pin).expect("hash");
        assert!(v.starts_with("$argon2id$"), "{v}");
        assert!(!v.contains("123456"));
        assert!(verify_secret(&pin, &v));
        assert!(!verify_secret(&SecretString::from("123457"), &v));
        assert!(!verify_secret(&pin, "not a phc string"));
        // two hashes of the same PIN differ (random salt)
        assert_ne!(v, hash_secret(&pin).expect("hash"));
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32).expect("rng");
        let b = random_token(32).expect("rng");
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
