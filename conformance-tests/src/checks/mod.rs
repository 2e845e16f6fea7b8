//! The catalogues: every check with its id, the section of CSC API v1.0.4.0 (or, in
//! [`v2`], the clause of v2.0.0.2) it comes from and the one rule it covers. Checks run in
//! catalogue order; `auth/revoke` comes last among the requests because it kills a token, and
//! the §10.1 error-body checks then judge every error answer the run collected.

use crate::Api;
use crate::crypto::{Digest, Scheme};
use crate::ctx::{Ctx, Need};
use crate::report::Outcome;

pub(crate) mod authorize;
pub(crate) mod bearer;
pub(crate) mod credinfo;
pub(crate) mod errors;
mod extend;
pub(crate) mod info;
mod list;
pub(crate) mod login;
pub(crate) mod revoke;
pub(crate) mod signhash;
pub(crate) mod timestamp;
pub mod v2;

/// The body of a check: a verdict, or (as `Err`) a skip for a missing prerequisite.
type RunFn = Box<dyn Fn(&mut Ctx<'_>) -> Need<Outcome>>;

/// One check of the catalogue.
pub struct Check {
    pub id: String,
    /// e.g. `§11.9 signatures/signHash`, `v2 §11.10 signatures/signHash`.
    pub section: String,
    /// The rule, in one sentence.
    pub rule: String,
    run: RunFn,
}

impl Check {
    pub(crate) fn run(&self, ctx: &mut Ctx<'_>) -> Outcome {
        (self.run)(ctx).unwrap_or_else(|o| o)
    }
}

pub(crate) fn check(
    id: impl Into<String>,
    section: impl Into<String>,
    rule: impl Into<String>,
    run: impl Fn(&mut Ctx<'_>) -> Need<Outcome> + 'static,
) -> Check {
    Check {
        id: id.into(),
        section: section.into(),
        rule: rule.into(),
        run: Box::new(run),
    }
}

/// A check as the catalogue of `api` names it: as written (v1 id and section) or, for v2,
/// [`v2::relabel`]led (`v2.` id, v2 clause).
pub(crate) fn labelled(api: Api, c: Check) -> Check {
    match api {
        Api::V1 => c,
        Api::V2 => v2::relabel(c),
    }
}

/// The catalogue of `api`: [`catalogue`] for v1, [`v2::catalogue`] for v2.
pub fn catalogue_for(api: crate::Api) -> Vec<Check> {
    match api {
        crate::Api::V1 => catalogue(),
        crate::Api::V2 => v2::catalogue(),
    }
}

/// Every v1 check, in the order they run.
pub fn catalogue() -> Vec<Check> {
    let mut all = Vec::new();
    all.extend(info::checks());
    all.extend(login::checks());
    all.extend(bearer::checks());
    all.extend(list::checks());
    all.extend(credinfo::checks());
    all.extend(authorize::checks());
    all.extend(signhash::checks());
    all.extend(timestamp::checks());
    all.extend(extend::checks());
    all.extend(revoke::checks());
    all.extend(errors::checks());
    all
}

/// A signature algorithm the suite can exercise and verify.
#[derive(Debug, Clone, Copy)]
pub struct Algorithm {
    /// Short name used in check ids.
    pub name: &'static str,
    pub oid: &'static str,
    /// `RSA` or `EC`.
    pub key: &'static str,
    pub digest: Digest,
    pub scheme: Scheme,
    /// `hashAlgo` must be sent (the OID names no digest).
    pub hash_algo: bool,
    /// `signAlgoParams` to send.
    pub params: Option<&'static str>,
    /// Needs neither `hashAlgo` nor `signAlgoParams`: the default for other checks.
    pub plain: bool,
}

/// RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt 32, trailer 1.
pub const PSS_SHA256_PARAMS: &str =
    "MDmgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEgowMCAQE=";

pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        name: "sha256-rsa",
        oid: "1.2.840.113549.1.1.11",
        key: "RSA",
        digest: Digest::Sha256,
        scheme: Scheme::Pkcs1(Digest::Sha256),
        hash_algo: false,
        params: None,
        plain: true,
    },
    Algorithm {
        name: "sha384-rsa",
        oid: "1.2.840.113549.1.1.12",
        key: "RSA",
        digest: Digest::Sha384,
        scheme: Scheme::Pkcs1(Digest::Sha384),
        hash_algo: false,
        params: None,
        plain: true,
    },
    Algorithm {
        name: "sha512-rsa",
        oid: "1.2.840.113549.1.1.13",
        key: "RSA",
        digest: Digest::Sha512,
        scheme: Scheme::Pkcs1(Digest::Sha512),
        hash_algo: false,
        params: None,
        plain: true,
    },
    Algorithm {
        name: "rsa-pkcs1-hashalgo-sha256",
        oid: RSA_ENCRYPTION,
        key: "RSA",
        digest: Digest::Sha256,
        scheme: Scheme::Pkcs1(Digest::Sha256),
        hash_algo: true,
        params: None,
        plain: false,
    },
    Algorithm {
        name: "rsa-pss-sha256",
        oid: RSASSA_PSS,
        key: "RSA",
        digest: Digest::Sha256,
        scheme: Scheme::Pss(Digest::Sha256, 32),
        hash_algo: false,
        params: Some(PSS_SHA256_PARAMS),
        plain: false,
    },
    Algorithm {
        name: "ecdsa-sha256",
        oid: "1.2.840.10045.4.3.2",
        key: "EC",
        digest: Digest::Sha256,
        scheme: Scheme::Ecdsa(Digest::Sha256),
        hash_algo: false,
        params: None,
        plain: true,
    },
    Algorithm {
        name: "ecdsa-sha384",
        oid: "1.2.840.10045.4.3.3",
        key: "EC",
        digest: Digest::Sha384,
        scheme: Scheme::Ecdsa(Digest::Sha384),
        hash_algo: false,
        params: None,
        plain: true,
    },
    Algorithm {
        name: "ecdsa-sha512",
        oid: "1.2.840.10045.4.3.4",
        key: "EC",
        digest: Digest::Sha512,
        scheme: Scheme::Ecdsa(Digest::Sha512),
        hash_algo: false,
        params: None,
        plain: true,
    },
];

/// The signature algorithm OIDs of each key type the suite knows (for `key.algo` sanity).
pub(crate) fn key_type_of_algo(oid: &str) -> Option<&'static str> {
    const RSA: &[&str] = &[
        "1.2.840.113549.1.1.1",
        "1.2.840.113549.1.1.5",
        "1.2.840.113549.1.1.10",
        "1.2.840.113549.1.1.11",
        "1.2.840.113549.1.1.12",
        "1.2.840.113549.1.1.13",
        "1.2.840.113549.1.1.14",
    ];
    const EC: &[&str] = &[
        "1.2.840.10045.4.1",
        "1.2.840.10045.4.3.1",
        "1.2.840.10045.4.3.2",
        "1.2.840.10045.4.3.3",
        "1.2.840.10045.4.3.4",
        "0.4.0.127.0.7.1.1.4.1.1",
        "0.4.0.127.0.7.1.1.4.1.2",
        "0.4.0.127.0.7.1.1.4.1.3",
        "0.4.0.127.0.7.1.1.4.1.4",
        "0.4.0.127.0.7.1.1.4.1.5",
    ];
    if RSA.contains(&oid) {
        Some("RSA")
    } else if EC.contains(&oid) {
        Some("EC")
    } else {
        None
    }
}

/// A random identifier nobody has: for "unknown credential" and "unknown token" checks.
pub(crate) fn bogus(label: &str) -> String {
    let mut b = [0u8; 8];
    let _ = openssl::rand::rand_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("conformance-{label}-{hex}")
}
