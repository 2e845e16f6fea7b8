//! Domain types owned by the storage layer: identifiers and the small enums stored as text.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A value could not be parsed into one of this crate's domain types.
///
/// The message names the expected type only, never the rejected input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}")]
pub struct ParseError {
    what: &'static str,
}

impl ParseError {
    pub(crate) fn new(what: &'static str) -> Self {
        ParseError { what }
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh identifier (UUID v7: random, ordered by creation time).
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            /// The canonical lowercase hyphenated UUID, as stored in the database.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(s).map($name).map_err(|_| ParseError::new($what))
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }
    };
}

uuid_id!(
    /// Identifies a user (signer, administrator or auditor).
    UserId,
    "user id"
);
uuid_id!(
    /// Identifies a credential (a signing key with its certificate). Its string form, the UUID,
    /// is the CSC `credentialID`.
    CredentialId,
    "credential id"
);

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) string form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(ParseError::new($what)),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// Sole Control Assurance Level of a credential (CSC `scal`: "1" or "2").
    Scal, "SCAL" {
        /// SCAL 1: the SAD authorises a number of signatures.
        One => "1",
        /// SCAL 2: the SAD is bound to the exact hashes to sign.
        Two => "2",
    }
);

impl Scal {
    /// The integer stored in the database (1 or 2).
    pub const fn as_i32(self) -> i32 {
        match self {
            Scal::One => 1,
            Scal::Two => 2,
        }
    }
}

impl TryFrom<i32> for Scal {
    type Error = ParseError;
    fn try_from(v: i32) -> Result<Self, ParseError> {
        match v {
            1 => Ok(Scal::One),
            2 => Ok(Scal::Two),
            _ => Err(ParseError::new("SCAL")),
        }
    }
}

string_enum!(
    /// Whether a credential may be used.
    CredentialStatus, "credential status" {
        /// Usable.
        Enabled => "enabled",
        /// Suspended by an administrator; `credential enable` lifts it.
        Disabled => "disabled",
        /// Revoked for good (`credential revoke`): its key is destroyed, it is never enabled
        /// again.
        Revoked => "revoked",
    }
);

string_enum!(
    /// How a credential is authorised (CSC `authMode`).
    AuthMode, "authorization mode" {
        /// PIN and/or OTP sent to `credentials/authorize`.
        Explicit => "explicit",
        /// OAuth2 authorization code flow with scope `credential`.
        Oauth2Code => "oauth2code",
        /// Authorised by other means the server controls.
        Implicit => "implicit",
    }
);

string_enum!(
    /// Kind of key-activation factor.
    FactorKind, "factor kind" {
        /// A PIN, stored as an Argon2 PHC string.
        Pin => "pin",
        /// A TOTP, stored as its shared secret.
        Otp => "otp",
    }
);

string_enum!(
    /// Kind of bearer token.
    TokenKind, "token kind" {
        /// An access token.
        Access => "access",
        /// A refresh token.
        Refresh => "refresh",
    }
);

string_enum!(
    /// What a user may do.
    Role, "role" {
        /// Owns credentials and signs.
        Signer => "signer",
        /// Registration: users, credentials, unlocks (JT2A Part I 7.1.1.3 operator).
        Operator => "operator",
        /// Keys, the token, integrity and audit keys, OAuth 2.0 clients and delegation
        /// (JT2A Part I 7.1.3 security officer).
        SecurityOfficer => "security-officer",
        /// Reads and verifies the audit log, nothing else (JT2A Part I 7.1.3 auditor).
        Auditor => "auditor",
    }
);

/// SHA-256 of a secret (token, SAD): the only form in which secrets are stored.
pub fn secret_hash(secret: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(secret)
}

/// Drops sub-microsecond precision, so a time round-trips identically through both backends.
pub fn truncate_to_micros(t: NaiveDateTime) -> NaiveDateTime {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// The current UTC time, truncated to microseconds. Every time this crate stores is UTC.
pub fn utc_now() -> NaiveDateTime {
    truncate_to_micros(Utc::now().naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        for m in AuthMode::ALL {
            assert_eq!(m.to_string().parse::<AuthMode>(), Ok(*m));
        }
        assert_eq!(Scal::try_from(2), Ok(Scal::Two));
        assert!(Scal::try_from(3).is_err());
        assert_eq!(
            serde_json::to_string(&Scal::One).ok().as_deref(),
            Some("\"1\"")
        );
        assert!("bogus".parse::<FactorKind>().is_err());
    }

    #[test]
    fn ids_are_canonical() {
        let id = CredentialId::new();
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<CredentialId>(), Ok(id));
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }

    #[test]
    fn micros() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        assert_eq!(truncate_to_micros(t).nanosecond(), 123_456_000);
    }
}
