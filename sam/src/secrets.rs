//! Secrets by construction: Argon2id verifiers for passwords, HSM-peppered Argon2id verifiers
//! for PINs, both compared in constant time by the argon2 crate, and opaque random values from
//! the OS CSPRNG (Part II 3.2.2.2).
//!
//! ## PIN verifiers
//!
//! A PIN is short (often 6 digits, 10^6 candidates): no Argon2 cost makes its verifier safe in
//! a stolen database (10^6 x 15 ms is four core-hours). What protects it is a key the thief
//! does not have: the PIN is first run through HMAC-SHA256 under a secret key generated in the
//! HSM, sensitive and non-extractable ([`cm_pkcs11::Hsm::secret_key`], label
//! [`PIN_PEPPER_LABEL`]), bound to the credential, and only that 32-byte value is hashed with
//! Argon2id (random salt, PHC string): without the HSM a copy of the database allows no offline
//! guessing at all, and online guessing is capped by the lockout (Part I 7.1.2.5.1). The Argon2
//! parameters are therefore light ([`PIN_ARGON2_PARAMS`]): a PIN check costs one HMAC in the
//! token (~25 us on SoftHSM2) plus ~40 us of Argon2id, instead of 15 ms, which is what lets
//! `authorize` keep up with `signHash`.
//!
//! Stored form: `hsm-hmac-sha256:` + the PHC string. Nothing else verifies: a verifier of the
//! older, unpeppered form (a plain Argon2id PHC string of the PIN) never matches, so an insider
//! who writes one for a PIN of their choice gains nothing (no downgrade; the factor
//! row's MAC refuses the edit anyway). `csc-server integrity seal`, the upgrade step of a
//! database made before, lists the credentials whose PIN must be set again.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cm_pkcs11::{Hsm, KeyId};
use secrecy::{ExposeSecret, SecretString};
use storage::CredentialId;

use crate::SamError;

/// CKA_LABEL of the HSM secret key that peppers PIN verifiers. It also keys the stored digests
/// of online OTPs, under a domain tag of their own (`crate::otp`).
pub const PIN_PEPPER_LABEL: &str = "csc-pin-pepper";
/// Prefix of a peppered PIN verifier.
const PEPPERED: &str = "hsm-hmac-sha256:";
/// Argon2id parameters over the peppered PIN: memory KiB, iterations, lanes.
pub const PIN_ARGON2_PARAMS: (u32, u32, u32) = (64, 1, 1);

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

/// The outcome of a PIN check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMatch {
    /// Wrong PIN (or an unreadable verifier).
    No,
    /// Right PIN.
    Yes,
}

fn pin_argon2() -> Result<Argon2<'static>, SamError> {
    let (m, t, p) = PIN_ARGON2_PARAMS;
    let params = Params::new(m, t, p, None).map_err(|e| SamError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// HMAC-SHA256 in the HSM over a domain tag, the credential and the PIN.
fn peppered(
    hsm: &Hsm,
    key: &KeyId,
    credential: &CredentialId,
    pin: &SecretString,
) -> Result<[u8; 32], SamError> {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(b"csc-pin-v1\0");
    data.extend_from_slice(credential.to_string().as_bytes());
    data.push(0);
    data.extend_from_slice(pin.expose_secret().as_bytes());
    let mac = hsm.hmac_sha256(key, &data);
    // the buffer held the PIN
    data.fill(0);
    Ok(mac?)
}

/// The verifier of `credential`'s PIN: Argon2id over its HSM-keyed HMAC (see the module doc).
pub fn pin_verifier(
    hsm: &Hsm,
    key: &KeyId,
    credential: &CredentialId,
    pin: &SecretString,
) -> Result<String, SamError> {
    let mac = peppered(hsm, key, credential, pin)?;
    let salt = random_bytes(16)?;
    let phc = pin_argon2()?
        .hash_password_with_salt(&mac, &salt)
        .map_err(|e| SamError::Hashing(e.to_string()))?;
    Ok(format!("{PEPPERED}{phc}"))
}

/// Checks `pin` against a stored, HSM-peppered PIN verifier; any other form never matches (no
/// downgrade). An HSM failure is an error, not a wrong PIN (it must not count towards the
/// lock).
pub fn verify_pin(
    hsm: &Hsm,
    key: &KeyId,
    credential: &CredentialId,
    pin: &SecretString,
    verifier: &str,
) -> Result<PinMatch, SamError> {
    let Some(phc) = verifier.strip_prefix(PEPPERED) else {
        tracing::warn!(
            %credential,
            "a PIN verifier of the unpeppered form is refused; set the PIN again"
        );
        return Ok(PinMatch::No);
    };
    let mac = peppered(hsm, key, credential, pin)?;
    // the PHC string carries its own parameters: verification follows what was stored
    let ok = argon2::PasswordHash::new(phc)
        .is_ok_and(|h| Argon2::default().verify_password(&mac, &h).is_ok());
    Ok(if ok { PinMatch::Yes } else { PinMatch::No })
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
