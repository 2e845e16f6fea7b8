//! The server's assurance level (JT2A Part I 3.5.1 table 3-5, 3.5.2; `assurance_level`): which
//! credentials the SAM creates and activates. Checked when a credential is created and again
//! at every activation, so data made under a lower level never signs under a higher one.
//!
//! * Level 1: one factor may authorize the key (Part I 3.5.2 L1); SCAL 1 or 2.
//! * Level 2: several factors, separate from the login (Part I 3.5.2 L2): a PIN and an OTP.
//! * Level 3: as level 2, and the authorization enforced by the SAM (Part I 3.5.2 L3): SCAL 2
//!   only, each SAD bound to the hashes the signer authorized (Part II 3.2.1.4).
//!
//! Key generation (Part III 16) and import (Part III 15): every key the server has is generated
//! in the token by `cm-pkcs11` (`CKA_SENSITIVE`, never extractable); no signing-key import path
//! exists (`import-chain` imports certificates for a token key only), so the level 2/3 rule
//! "generated inside the HSM only" and the level 3 rule "import refused" hold at every level.

use crate::{SamError, Scal};

/// The configured assurance level (1, 2 or 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum AssuranceLevel {
    /// JT2A level 1.
    #[default]
    One,
    /// JT2A level 2: multi-factor key authorization.
    Two,
    /// JT2A level 3: multi-factor and SCAL 2 only.
    Three,
}

impl AssuranceLevel {
    /// The level numbered `n` (1, 2 or 3).
    pub fn from_number(n: u8) -> Option<AssuranceLevel> {
        match n {
            1 => Some(AssuranceLevel::One),
            2 => Some(AssuranceLevel::Two),
            3 => Some(AssuranceLevel::Three),
            _ => None,
        }
    }

    /// The level's number.
    pub fn number(self) -> u8 {
        match self {
            AssuranceLevel::One => 1,
            AssuranceLevel::Two => 2,
            AssuranceLevel::Three => 3,
        }
    }

    /// Whether a credential of `scal` with `factors` activation factors may exist (and be
    /// activated) at this level; the refusal names what is missing.
    pub fn check(self, scal: Scal, factors: usize) -> Result<(), SamError> {
        let refuse = |reason: &'static str| SamError::AssuranceLevel {
            level: self.number(),
            reason,
        };
        if self >= AssuranceLevel::Two && factors < 2 {
            return Err(refuse(
                "two activation factors (a PIN and an OTP) are required",
            ));
        }
        if self >= AssuranceLevel::Three && scal != Scal::Two {
            return Err(refuse("SCAL 2 is required"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_accepts_exactly_its_credentials() {
        use AssuranceLevel::*;
        let ok = |l: AssuranceLevel, s, f| l.check(s, f).is_ok();
        assert!(ok(One, Scal::One, 1) && ok(One, Scal::Two, 2));
        assert!(!ok(Two, Scal::One, 1) && ok(Two, Scal::One, 2) && ok(Two, Scal::Two, 2));
        assert!(!ok(Three, Scal::One, 2) && !ok(Three, Scal::Two, 1) && ok(Three, Scal::Two, 2));
        assert_eq!(AssuranceLevel::from_number(3), Some(Three));
        assert_eq!(AssuranceLevel::from_number(0), None);
        assert_eq!(AssuranceLevel::default().number(), 1);
    }
}
