//! Offline OTPs (`--otp`, CSC `OTP.type` "offline"): RFC 6238 TOTP whose seed lives in the
//! token as a non-extractable secret key, not in the database (README "Threat model"; JT2A
//! Part III 1, 17 applied to the second factor, Part I 3.5.2 level 2).
//!
//! * **Provisioning** ([`Sam::provision_totp`]): the SAM draws a 20-byte seed from the OS CSPRNG
//!   (Part II 3.2.2.2), imports it once into the token as a sensitive, non-extractable,
//!   sign-only HMAC-SHA1 secret key ([`cm_pkcs11::Hsm::import_hmac_secret`], label
//!   `csc-totp:<credentialID>`), and shows it to the signer once as an `otpauth://` URI for the
//!   authenticator app. That URI is the only place the seed exists in clear outside the token;
//!   every buffer that held it is zeroised.
//! * **The verifier** in `credential_factors.verifier` holds only the token key's id and the
//!   parameters: `hsm-totp:v1:<keyid-hex>:<digits>:<period>:<alg>`
//!   (e.g. `hsm-totp:v1:6c0f…:6:30:sha1`). A copy of the database yields no seed and no code.
//! * **Verification** ([`totp_step`]): the token computes HMAC(seed, counter) for the counters
//!   of the current step and one step either side (three `C_Sign` with `CKM_SHA_1_HMAC`); the
//!   RFC 4226 §5.3 dynamic truncation runs here, and the code is compared in constant time. The
//!   matched step is spent in the granting transaction (anti-replay, `last_otp_step`), exactly
//!   as before the seed moved.
//! * **Older databases** kept the base32 seed itself as the verifier. Such a verifier never
//!   verifies any more (activation is refused, audited, not counted towards the lock); the
//!   operator's one-time upgrade `csc-server credential migrate-otp`
//!   ([`Sam::migrate_otp_seeds`]) moves every such seed into the token and rewrites its
//!   verifier.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use cm_pkcs11::{HmacAlg, Hsm, KeyId};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use storage::{CredentialId, FactorKind};
use zeroize::Zeroizing;

use crate::otp::ONLINE_OTP;
use crate::roles::{Action, Actor};
use crate::secrets::random_bytes;
use crate::{AuditEvent, Sam, SamError, audit_event};

/// Prefix of a TOTP verifier whose seed is in the token.
const VERIFIER_PREFIX: &str = "hsm-totp:v1:";
/// `CKA_LABEL` prefix of the token keys holding TOTP seeds; the credential ID follows.
pub const TOTP_KEY_LABEL_PREFIX: &str = "csc-totp:";
/// Bytes of a new TOTP seed: 160 bits, RFC 4226 R6's recommendation and the HMAC-SHA1 length.
const SEED_LEN: usize = 20;
/// Steps of clock skew accepted on either side of the current one.
pub const TOTP_SKEW: u64 = 1;
/// The issuer shown by authenticator apps.
const OTP_ISSUER: &str = "csc-server";

/// A credential's TOTP: the token key holding its seed and the RFC 6238 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpVerifier {
    /// `CKA_ID` of the seed's secret key in the token.
    pub key: KeyId,
    /// Digits of a code (6 to 8).
    pub digits: u32,
    /// Seconds per time step.
    pub period: u64,
    /// The HMAC of RFC 4226 (SHA-1 for every TOTP this server hands out).
    pub alg: HmacAlg,
}

impl TotpVerifier {
    /// The one TOTP profile this server provisions (RFC 6238 defaults, what every authenticator
    /// app supports): HMAC-SHA1, 6 digits, 30-second steps. The seeds of older databases were
    /// made with it too.
    pub fn standard(key: KeyId) -> TotpVerifier {
        TotpVerifier {
            key,
            digits: 6,
            period: 30,
            alg: HmacAlg::Sha1,
        }
    }

    /// Parses a stored verifier; `None` for anything else (a plain seed of an older database,
    /// the online marker, a malformed value).
    pub fn parse(verifier: &str) -> Option<TotpVerifier> {
        let rest = verifier.strip_prefix(VERIFIER_PREFIX)?;
        let mut parts = rest.split(':');
        let (Some(key), Some(digits), Some(period), Some(alg), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let v = TotpVerifier {
            key: key.parse().ok()?,
            digits: digits.parse().ok()?,
            period: period.parse().ok()?,
            alg: alg.parse().ok()?,
        };
        // canonical form only: what Display writes back
        ((6..=8).contains(&v.digits) && (1..=3600).contains(&v.period) && v.to_string() == verifier)
            .then_some(v)
    }
}

impl fmt::Display for TotpVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERIFIER_PREFIX}{}:{}:{}:{}",
            self.key, self.digits, self.period, self.alg
        )
    }
}

/// Whether a stored OTP verifier is a plain TOTP seed of an older database (neither the online
/// marker nor a verifier of the token form): what [`Sam::migrate_otp_seeds`] moves.
fn is_plain_seed(verifier: &str) -> bool {
    verifier != ONLINE_OTP && !verifier.starts_with("hsm-totp:")
}

/// The RFC 4226 §5.3 value of an HMAC: dynamic truncation to 31 bits, then the last `digits`
/// decimal digits. `None` for an HMAC shorter than 20 bytes or more than 9 digits.
pub fn truncate(mac: &[u8], digits: u32) -> Option<u32> {
    if mac.len() < 20 {
        return None;
    }
    let offset = usize::from(mac.last()? & 0x0f);
    let bytes: [u8; 4] = mac.get(offset..offset + 4)?.try_into().ok()?;
    let modulus = 10u32.checked_pow(digits).filter(|_| digits <= 9)?;
    Some((u32::from_be_bytes(bytes) & 0x7fff_ffff) % modulus)
}

/// The code as a number, if it is exactly `digits` ASCII digits (no sign, no spaces: as before
/// the seed moved to the token).
fn parse_code(code: &str, digits: u32) -> Option<u32> {
    (usize::try_from(digits).ok()? == code.len() && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| code.parse().ok())
        .flatten()
}

/// The time step `code` belongs to at `now` (Unix seconds), if it is the code of the current
/// step or of [`TOTP_SKEW`] steps either side (the earliest matching step when several do);
/// `mac(counter)` is HMAC(seed, counter as 8 bytes big-endian). Every step of the window is
/// computed and compared in constant time, whichever matches.
pub fn totp_step_with(
    v: &TotpVerifier,
    code: &str,
    now: u64,
    mut mac: impl FnMut(u64) -> Result<Vec<u8>, SamError>,
) -> Result<Option<i64>, SamError> {
    let Some(given) = parse_code(code, v.digits) else {
        return Ok(None);
    };
    let origin = now / v.period.max(1);
    let mut found = None;
    for counter in origin.saturating_sub(TOTP_SKEW)..=origin.saturating_add(TOTP_SKEW) {
        let expected = truncate(&mac(counter)?, v.digits).ok_or_else(|| {
            SamError::Hsm(cm_pkcs11::HsmError::Encoding(
                "the token returned an HMAC too short for an OTP".into(),
            ))
        })?;
        if openssl::memcmp::eq(&expected.to_be_bytes(), &given.to_be_bytes()) && found.is_none() {
            found = Some(counter);
        }
    }
    Ok(found.and_then(|step| i64::try_from(step).ok()))
}

/// [`totp_step_with`] at the current time, the HMACs computed in the token.
pub(crate) fn totp_step(
    hsm: &Hsm,
    v: &TotpVerifier,
    code: &SecretString,
) -> Result<Option<i64>, SamError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SamError::InvalidInput("the system clock is before 1970".into()))?
        .as_secs();
    totp_step_with(v, code.expose_secret(), now, |counter| {
        Ok(hsm.hmac(&v.key, v.alg, &counter.to_be_bytes())?)
    })
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The base32 digit of the low five bits of `value`.
fn base32_digit(value: u16) -> char {
    BASE32
        .get(usize::from(value & 0x1f))
        .map_or('A', |&b| char::from(b))
}

/// RFC 4648 base32 without padding (what otpauth URIs carry).
fn base32_encode(data: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(data.len().div_ceil(5) * 8));
    let (mut buffer, mut bits) = (0u16, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_digit(buffer >> bits));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(base32_digit(buffer << (5 - bits)));
    }
    out
}

/// RFC 4648 base32, case-insensitive, padding optional; `None` on any other character.
fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let (mut buffer, mut bits) = (0u16, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE32
            .iter()
            .position(|&b| b == c.to_ascii_uppercase())
            .and_then(|p| u16::try_from(p).ok())?;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// Percent-encodes all but RFC 3986 unreserved characters (an otpauth label part).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Key URI of an authenticator app (`otpauth://totp/ISSUER:ACCOUNT?secret=...`), with the
/// parameters that differ from the defaults. It holds the seed: shown once, never stored.
fn otpauth_uri(seed: &[u8], account: &str, v: &TotpVerifier) -> SecretString {
    use std::fmt::Write as _;
    let issuer = percent_encode(OTP_ISSUER);
    let account = percent_encode(account);
    let secret = base32_encode(seed);
    // room for everything up front: a reallocation would leave a copy of the seed behind
    let mut uri = Zeroizing::new(String::with_capacity(
        128 + issuer.len() * 2 + account.len() + secret.len(),
    ));
    let _ = write!(
        uri,
        "otpauth://totp/{issuer}:{account}?secret={}",
        secret.as_str()
    );
    if v.digits != 6 {
        let _ = write!(uri, "&digits={}", v.digits);
    }
    if v.alg != HmacAlg::Sha1 {
        let _ = write!(uri, "&algorithm={}", v.alg.as_str().to_uppercase());
    }
    let _ = write!(uri, "&issuer={issuer}");
    if v.period != 30 {
        let _ = write!(uri, "&period={}", v.period);
    }
    SecretString::from(uri.as_str())
}

/// The outcome of [`Sam::migrate_otp_seeds`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtpMigration {
    /// Credentials whose plain seed moved into the token.
    pub migrated: Vec<CredentialId>,
    /// Credentials whose verifier could not be moved, with the reason (never the seed).
    pub failed: Vec<(CredentialId, String)>,
}

impl Sam {
    /// Provisions a TOTP for `credential`: a fresh seed imported into the token (see the module
    /// doc) and the otpauth URI for `account`. The caller stores the verifier; if it cannot, it
    /// destroys the key ([`Sam::destroy_totp_key`]).
    pub(crate) fn provision_totp(
        &self,
        credential: &CredentialId,
        account: &str,
    ) -> Result<(TotpVerifier, SecretString), SamError> {
        let seed = Zeroizing::new(random_bytes(SEED_LEN)?);
        let verifier = self.import_seed(credential, &seed)?;
        Ok((verifier, otpauth_uri(&seed, account, &verifier)))
    }

    /// Imports `seed` into the token as `credential`'s TOTP key (label
    /// `csc-totp:<credentialID>`): the verifier that names it.
    fn import_seed(
        &self,
        credential: &CredentialId,
        seed: &Zeroizing<Vec<u8>>,
    ) -> Result<TotpVerifier, SamError> {
        let label = format!("{TOTP_KEY_LABEL_PREFIX}{credential}");
        let key = self.hsm.import_hmac_secret(&label, seed, HmacAlg::Sha1)?;
        Ok(TotpVerifier::standard(key))
    }

    /// Destroys the token key of a TOTP verifier, best effort: a failure (or a key already
    /// gone) is logged, never an error. Plain seeds and online markers have no key.
    pub(crate) fn destroy_totp_key(&self, credential: &CredentialId, verifier: &str) -> bool {
        let Some(v) = TotpVerifier::parse(verifier) else {
            return false;
        };
        match self.hsm.destroy_secret(&v.key) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(credential = %credential, key = %v.key, error = %e, "could not destroy the TOTP key in the token");
                false
            }
        }
    }

    /// The one-time upgrade of a database made before TOTP seeds moved into the token
    /// (`csc-server credential migrate-otp`): every OTP factor whose verifier is a plain base32
    /// seed gets that seed imported into the token (as at provisioning: HMAC-SHA1, 6 digits,
    /// 30 s, the profile those seeds were made with) and its verifier rewritten to the token
    /// form, in a conditional update that keeps the failure count, the lock and the anti-replay
    /// step. Each migration is audited as `otp.migrate` (the new key id, never the seed).
    /// Idempotent: verifiers already in the token form, and online OTPs, are left alone, so
    /// running it again migrates nothing.
    ///
    /// A verifier that is not valid base32 (or too short a seed) is reported in
    /// [`OtpMigration::failed`] and left as it is (it verifies nothing). A seed whose row
    /// changed meanwhile is not migrated and its new key is destroyed. The old seeds may remain
    /// in free pages of the database file and in its backups: whoever may hold such a copy can
    /// still compute codes until the signer's TOTP is enrolled anew (README).
    pub fn migrate_otp_seeds(&self, actor: &Actor) -> Result<OtpMigration, SamError> {
        self.permit(actor, Action::OtpMigrate, "otp-seeds")?;
        let actor = &actor.audit_name();
        let factors = self.store.read(|c| c.factors_of_kind(FactorKind::Otp))?;
        let mut report = OtpMigration::default();
        for factor in factors {
            let id = factor.credential_id;
            if !is_plain_seed(&factor.verifier) {
                if factor.verifier != ONLINE_OTP && TotpVerifier::parse(&factor.verifier).is_none()
                {
                    report
                        .failed
                        .push((id, "the OTP verifier is malformed".to_owned()));
                }
                continue;
            }
            match self.migrate_one(&id, &factor.verifier, actor) {
                Ok(true) => report.migrated.push(id),
                Ok(false) => report.failed.push((
                    id,
                    "the OTP factor changed during the migration; run it again".to_owned(),
                )),
                Err(e) => {
                    tracing::error!(credential = %id, error = %e, "could not move the TOTP seed into the token");
                    report.failed.push((id, e.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// Moves one plain seed into the token; `Ok(false)` if the verifier changed meanwhile.
    fn migrate_one(
        &self,
        credential: &CredentialId,
        plain: &str,
        actor: &str,
    ) -> Result<bool, SamError> {
        let seed = base32_decode(plain.trim())
            .ok_or_else(|| SamError::InvalidInput("the stored TOTP secret is not base32".into()))?;
        let imported = self.import_seed(credential, &seed)?;
        drop(seed);
        let (key, verifier) = (imported.key, imported.to_string());
        let subject = credential.to_string();
        let stored = self.store.write(|c| {
            if !c.replace_factor_verifier(credential, FactorKind::Otp, plain, &verifier)? {
                return Ok(false);
            }
            c.append_audit(&audit_event(
                AuditEvent::OtpMigrate,
                actor,
                &subject,
                "success",
                json!({ "otpKeyId": key.to_string() }),
            ))?;
            Ok(true)
        });
        if !matches!(stored, Ok(true)) {
            self.destroy_totp_key(credential, &verifier);
        }
        Ok(stored?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl_hmac(alg: HmacAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
        let md = match alg {
            HmacAlg::Sha1 => openssl::hash::MessageDigest::sha1(),
            HmacAlg::Sha256 => openssl::hash::MessageDigest::sha256(),
            HmacAlg::Sha512 => openssl::hash::MessageDigest::sha512(),
        };
        let pkey = openssl::pkey::PKey::hmac(key).expect("key");
        let mut s = openssl::sign::Signer::new(md, &pkey).expect("signer");
        s.update(data).expect("update");
        s.sign_to_vec().expect("hmac")
    }

    fn software(alg: HmacAlg, seed: &[u8]) -> impl FnMut(u64) -> Result<Vec<u8>, SamError> {
        let seed = seed.to_vec();
        move |counter| Ok(openssl_hmac(alg, &seed, &counter.to_be_bytes()))
    }

    fn verifier(digits: u32, alg: HmacAlg) -> TotpVerifier {
        TotpVerifier {
            key: KeyId::from_bytes([7; 16]),
            digits,
            period: 30,
            alg,
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in (0u64..).zip(expected) {
            let mac = openssl_hmac(
                HmacAlg::Sha1,
                b"12345678901234567890",
                &counter.to_be_bytes(),
            );
            assert_eq!(truncate(&mac, 6), Some(want), "counter {counter}");
        }
        assert_eq!(truncate(&[0u8; 19], 6), None);
    }

    #[test]
    fn rfc6238_appendix_b_totp_values() {
        let seeds = [
            (HmacAlg::Sha1, &b"12345678901234567890"[..]),
            (HmacAlg::Sha256, &b"12345678901234567890123456789012"[..]),
            (
                HmacAlg::Sha512,
                &b"1234567890123456789012345678901234567890123456789012345678901234"[..],
            ),
        ];
        let table: [(u64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1111111109, ["07081804", "68084774", "25091201"]),
            (1111111111, ["14050471", "67062674", "99943326"]),
            (1234567890, ["89005924", "91819424", "93441116"]),
            (2000000000, ["69279037", "90698825", "38618901"]),
            (20000000000, ["65353130", "77737706", "47863826"]),
        ];
        for (time, codes) in table {
            for ((alg, seed), code) in seeds.iter().zip(codes) {
                let v = verifier(8, *alg);
                let step = totp_step_with(&v, code, time, software(*alg, seed)).expect("check");
                assert_eq!(step, i64::try_from(time / 30).ok(), "{alg} at {time}");
            }
        }
    }

    #[test]
    fn the_window_is_one_step_either_side_and_the_earliest_match_wins() {
        let seed = b"12345678901234567890";
        let v = verifier(6, HmacAlg::Sha1);
        let now = 1_000_000_015u64; // step 33_333_333, 15 s into it
        let code_of = |step: u64| {
            format!(
                "{:06}",
                truncate(&openssl_hmac(HmacAlg::Sha1, seed, &step.to_be_bytes()), 6).expect("code")
            )
        };
        let origin = now / 30;
        for (step, accepted) in [
            (origin - 2, false),
            (origin - 1, true),
            (origin, true),
            (origin + 1, true),
            (origin + 2, false),
        ] {
            let got = totp_step_with(&v, &code_of(step), now, software(HmacAlg::Sha1, seed))
                .expect("check");
            if accepted {
                assert_eq!(got, i64::try_from(step).ok(), "step {step}");
            } else {
                // a code of another step may collide by chance with one in the window; these
                // fixed values do not
                assert_eq!(got, None, "step {step}");
            }
        }
        // when several steps of the window give the code, the earliest is spent (as totp-rs did)
        let same = openssl_hmac(HmacAlg::Sha1, seed, b"any counter");
        let code = format!("{:06}", truncate(&same, 6).expect("code"));
        let got = totp_step_with(&v, &code, now, |_| Ok(same.clone())).expect("check");
        assert_eq!(got, i64::try_from(origin - 1).ok());
        // malformed codes never match (and compute nothing)
        let right = code_of(origin);
        for bad in [
            format!("+{}", &right[1..]),
            format!(" {right}"),
            right[..5].to_owned(),
            format!("{right}0"),
            String::new(),
        ] {
            let got = totp_step_with(&v, &bad, now, |_| panic!("no HMAC for a malformed code"))
                .expect("check");
            assert_eq!(got, None, "{bad:?}");
        }
        // an HSM failure is an error, not a wrong code
        let err = totp_step_with(&v, &right, now, |_| {
            Err(SamError::Hsm(cm_pkcs11::HsmError::KeyNotFound(v.key)))
        });
        assert!(matches!(err, Err(SamError::Hsm(_))), "{err:?}");
    }

    #[test]
    fn verifiers_round_trip_and_only_the_canonical_form_parses() {
        let v = TotpVerifier::standard(KeyId::from_bytes([0xab; 16]));
        let text = v.to_string();
        assert_eq!(text, format!("hsm-totp:v1:{}:6:30:sha1", "ab".repeat(16)));
        assert_eq!(TotpVerifier::parse(&text), Some(v));
        for bad in [
            "JBSWY3DPEHPK3PXP".to_owned(),
            "online".to_owned(),
            text.replace(":6:", ":5:"),
            text.replace(":6:", ":10:"),
            text.replace(":30:", ":0:"),
            text.replace(":sha1", ":md5"),
            text.replace(":sha1", ":SHA1"),
            format!("{text}:extra"),
            text.replace("hsm-totp:v1:", "hsm-totp:v2:"),
            text.replace(&"ab".repeat(16), &"AB".repeat(16)),
            text.replace(&"ab".repeat(16), "abcd"),
        ] {
            assert_eq!(TotpVerifier::parse(&bad), None, "{bad}");
        }
        assert!(is_plain_seed("JBSWY3DPEHPK3PXP"));
        assert!(!is_plain_seed("online"));
        assert!(!is_plain_seed(&text));
        assert!(!is_plain_seed("hsm-totp:v9:whatever"));
    }

    #[test]
    fn base32_follows_rfc4648() {
        // RFC 4648 §10 test vectors, without padding
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()).as_str(), encoded);
            assert_eq!(
                base32_decode(encoded).expect("decode").as_slice(),
                plain.as_bytes()
            );
        }
        assert_eq!(
            base32_decode("mzxw6ytboi======")
                .expect("lowercase, padded")
                .as_slice(),
            b"foobar"
        );
        assert!(base32_decode("MZXW1").is_none(), "1 is not base32");
        assert!(base32_decode("MZ XW").is_none());
    }

    #[test]
    fn the_otpauth_uri_carries_the_seed_once_and_escapes_the_account() {
        let v = TotpVerifier::standard(KeyId::from_bytes([1; 16]));
        let uri = otpauth_uri(b"12345678901234567890", "alice@example.org", &v);
        assert_eq!(
            uri.expose_secret(),
            "otpauth://totp/csc-server:alice%40example.org?\
             secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=csc-server"
        );
        let other = TotpVerifier {
            digits: 8,
            period: 60,
            alg: HmacAlg::Sha256,
            ..v
        };
        assert_eq!(
            otpauth_uri(b"12345678901234567890", "bob", &other).expose_secret(),
            "otpauth://totp/csc-server:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &digits=8&algorithm=SHA256&issuer=csc-server&period=60"
        );
    }
}
