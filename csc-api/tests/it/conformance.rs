//! The black-box conformance suite (`conformance-tests`, the same catalogue the
//! `csc-conformance` binary runs) against our own server: SoftHSM2, a temporary data
//! directory, alice under test with her rsa, ec and scal2 credentials, bob as the other user.
//! It must report no failure; every skip must say why.
//!
//! The scal2 credential has a PIN and an online OTP: the suite calls `credentials/sendOTP` and
//! then its `--otp-command`, here a shell pipeline that reads the code the server wrote for
//! that credential to `DATA_DIR/otp-outbox.log` (one JSON object per line).

use conformance_tests::{Config, Identity, Status};

use crate::common::*;

#[test]
fn the_conformance_suite_passes_against_our_server() {
    let s = Signers::new();
    let (_server, api) = s.serve(&[]);
    let mut config = Config::new(api.base.clone());
    config.identity = Some(Identity::Login {
        user: "alice".into(),
        password: ALICE_PASSWORD.into(),
    });
    config.other = Some(Identity::Login {
        user: "bob".into(),
        password: BOB_PASSWORD.into(),
    });
    config.credentials = vec![s.id("rsa").to_owned(), s.id("ec").to_owned()];
    config.scal2_credential = Some(s.id("scal2").to_owned());
    config.pin = Some(PIN.into());
    config.otp_command = Some(format!(
        r#"grep -F "\"credentialID\":\"$CSC_CREDENTIAL_ID\"" '{}' | tail -n 1 | sed -n 's/.*"otp":"\([^"]*\)".*/\1/p'"#,
        s.dir().join("otp-outbox.log").display()
    ));

    // whether the fixture gives scal2 an OTP (then the wrong-OTP check must run too)
    let alice = api.login("alice", ALICE_PASSWORD);
    let (_, scal2) = api.call(
        "credentials/info",
        Some(&alice),
        &serde_json::json!({ "credentialID": s.id("scal2"), "authInfo": true }),
    );
    let scal2_has_otp = scal2["OTP"]["presence"] == "true";

    let report = conformance_tests::run(&config);
    let text = report.render();
    println!("{text}");

    assert_eq!(report.failed, 0, "{text}");
    for r in &report.results {
        if r.status == Status::Skip {
            assert!(
                r.detail.as_deref().is_some_and(|d| !d.is_empty()),
                "{} skipped without a reason",
                r.id
            );
        }
    }
    assert!(
        report.passed >= 100,
        "only {} checks passed:\n{text}",
        report.passed
    );
    // the rules that matter most were exercised, not skipped
    for id in [
        "login.basic",
        "bearer.missing.signatures.signHash",
        "bearer.unknown-token",
        "list.paging",
        "credinfo.certInfo.issuerDN",
        "authorize.wrong-PIN",
        "signhash.verify.sha256-rsa",
        "signhash.verify.rsa-pss-sha256",
        "signhash.verify.ecdsa-sha256",
        "signhash.sad-replay",
        "signhash.numSignatures-limit",
        "signhash.numSignatures-across-calls",
        "signhash.scal2-hash-binding",
        "signhash.other-user",
        "extend.new-sad",
        "revoke.token-unusable",
        "error.json-body",
    ]
    .into_iter()
    .chain(scal2_has_otp.then_some("authorize.wrong-OTP"))
    {
        assert_eq!(
            report.result(id).map(|r| r.status),
            Some(Status::Pass),
            "{id}:\n{text}"
        );
    }
}
