//! The v2 catalogue: CSC API v2.0.0.2 under `/csc/v2/`, with the same depth as v1. Every
//! check names its v2 clause (v2.0.0.2 numbering: 11.1 info, 11.2 auth/login, 11.3
//! auth/revoke, 11.4 credentials/list, 11.5 credentials/info, 11.6 credentials/authorize, 11.7
//! credentials/authorizeCheck, 11.8 credentials/getChallenge, 11.9
//! credentials/extendTransaction, 11.10 signatures/signHash, 11.13 signatures/timestamp; §8.3
//! authentication objects, §10 errors). What v2 left unchanged (`auth/login`, `auth/revoke`,
//! `signatures/timestamp`, most of `credentials/info`, the error body) runs the v1 checks
//! again, relabelled `v2.*` with the v2 clause. The checks whose rule is v1's but whose
//! request is v2's (`info`, the Bearer checks, `credentials/authorize`, `signatures/signHash`,
//! `credentials/extendTransaction`) are built for either API by the v1 modules (the `Ctx`
//! writes `hashes` with `hashAlgorithmOID` and `authData`; `checks::labelled` names
//! them), with v2's differences said there; what only v2 has is written here from the v2
//! text (`auth` objects, `getChallenge`, `authorizeCheck`, `operationMode`, ...).

use super::{Check, bearer, errors, extend, login, revoke, timestamp};
use crate::Api;

mod authorize;
mod challenge;
mod credinfo;
mod info;
mod list;
mod signhash;

/// The v1 sections whose clause number (or name) moved in v2.0.0.2.
const MOVED: &[(&str, &str)] = &[
    (
        "§11.7 credentials/extendTransaction",
        "§11.9 credentials/extendTransaction",
    ),
    ("§11.9 signatures/signHash", "§11.10 signatures/signHash"),
    (
        "§9 / §11.9 signatures/signHash",
        "§9 / §11.10 signatures/signHash",
    ),
    (
        "§8.2 SCAL / §11.9 signatures/signHash",
        "§8.2 SCAL / §11.10 signatures/signHash",
    ),
    ("§11.10 signatures/timestamp", "§11.13 signatures/timestamp"),
    // v1's status table; v2's own bearer checks cite it so
    ("§10 Table 2", "§10 statuses"),
];

/// The v2 clause of a v1 section: `v2 ` and the clause, renumbered where v2 moved it.
pub(crate) fn v2_section(v1: &str) -> String {
    let clause = MOVED
        .iter()
        .find(|(old, _)| *old == v1)
        .map_or(v1, |(_, new)| *new);
    format!("v2 {clause}")
}

/// A v1 check run again against `/csc/v2`: id `v2.<id>`, section the v2 clause.
pub(crate) fn relabel(mut c: Check) -> Check {
    c.id = format!("v2.{}", c.id);
    c.section = v2_section(&c.section);
    c
}

/// Every v2 check, in the order they run (`auth/revoke` last among the requests, the §10
/// error-body checks after it).
pub fn catalogue() -> Vec<Check> {
    let mut all = Vec::new();
    all.extend(info::checks());
    all.extend(login::checks().into_iter().map(relabel));
    all.extend(bearer::checks_for(Api::V2));
    all.extend(list::checks());
    all.extend(credinfo::checks());
    all.extend(authorize::checks());
    all.extend(challenge::checks());
    all.extend(signhash::checks());
    all.extend(timestamp::checks().into_iter().map(relabel));
    all.extend(extend::checks_for(Api::V2));
    all.extend(revoke::checks().into_iter().map(relabel));
    all.extend(errors::checks().into_iter().map(relabel));
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn moved_clauses_are_renumbered_and_the_others_prefixed() {
        assert_eq!(
            super::v2_section("§11.9 signatures/signHash"),
            "v2 §11.10 signatures/signHash"
        );
        assert_eq!(super::v2_section("§11.2 auth/login"), "v2 §11.2 auth/login");
        assert_eq!(
            super::v2_section("§11.10 signatures/timestamp"),
            "v2 §11.13 signatures/timestamp"
        );
    }
}
