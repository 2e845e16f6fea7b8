//! The black-box conformance suite (`conformance-tests`, the same catalogue the
//! `csc-conformance` binary runs) against our own server: SoftHSM2, a temporary data
//! directory, alice under test with her rsa, ec and scal2 credentials, bob as the other user.
//! It must report no failure; every skip must say why.
//!
//! The scal2 credential has a PIN and an online OTP: the suite calls `credentials/sendOTP` (v2:
//! `credentials/getChallenge` for the out-of-band OTP object) and then its `--otp-command`,
//! here a shell pipeline that reads the code the server wrote for that credential to
//! `DATA_DIR/otp-outbox.log` (one JSON object per line).
//!
//! The v1 catalogue runs against `/csc/v1`, the v2 catalogue (`Api::V2`) against `/csc/v2`.
//! Both time-stamp (`signatures/timestamp`, v1 §11.10 / v2 §11.13): the suite reads the RFC 3161
//! token, verifies it under the TSA certificate it carries and checks that certificate's
//! critical timeStamping extendedKeyUsage.

use conformance_tests::{Config, Identity, Report, Status};

use crate::common::*;

/// The suite's configuration for our server: alice with rsa and ec (and scal2), bob as the
/// other user, the PIN, and the OTP read from the outbox.
fn config_for(s: &Signers, api: &Api, version: conformance_tests::Api) -> Config {
    let mut config = Config::new(api.base.clone());
    config.api = version;
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
    config
}

/// No failure, a reason for every skip, at least `min_passed` passes and a pass for every id
/// of `must_pass`.
fn assert_green(report: &Report, min_passed: usize, must_pass: &[&str]) {
    let text = report.render();
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
        report.passed >= min_passed,
        "only {} checks passed:\n{text}",
        report.passed
    );
    for id in must_pass {
        assert_eq!(
            report.result(id).map(|r| r.status),
            Some(Status::Pass),
            "{id}:\n{text}"
        );
    }
}

/// Whether the fixture gives scal2 an OTP (then the wrong-OTP check must run too).
fn scal2_has_otp(s: &Signers, api: &Api) -> bool {
    let alice = api.login("alice", ALICE_PASSWORD);
    let (_, scal2) = api.call(
        "credentials/info",
        Some(&alice),
        &serde_json::json!({ "credentialID": s.id("scal2"), "authInfo": true }),
    );
    scal2["OTP"]["presence"] == "true"
}

#[test]
fn the_conformance_suite_passes_against_our_server() {
    let s = Signers::new();
    let (_server, api) = s.serve(&[]);
    let config = config_for(&s, &api, conformance_tests::Api::V1);
    let otp = scal2_has_otp(&s, &api);

    let report = conformance_tests::run(&config);
    println!("{}", report.render());

    // the rules that matter most were exercised, not skipped
    let must_pass: Vec<&str> = [
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
        "timestamp.token",
        "timestamp.messageImprint.sha256",
        "timestamp.nonce",
        "timestamp.genTime",
        "timestamp.signature",
        "timestamp.signer-eku",
        "timestamp.serial-unique",
        "timestamp.invalid-nonce",
        "extend.new-sad",
        "revoke.token-unusable",
        "error.json-body",
    ]
    .into_iter()
    .chain(otp.then_some("authorize.wrong-OTP"))
    .collect();
    assert_green(&report, 100, &must_pass);
}

/// Issue 12: the v2 catalogue (each check citing its v2.0.0.2 clause) against `/csc/v2` of the
/// same fixture: no failure, and the v2 rules that matter most exercised, not skipped.
#[test]
fn conformance_v2_passes_against_our_server() {
    let s = Signers::new();
    let (_server, api) = s.serve(&[]);
    let config = config_for(&s, &api, conformance_tests::Api::V2);
    let otp = scal2_has_otp(&s, &api);

    let report = conformance_tests::run(&config);
    println!("{}", report.render());

    assert_eq!(report.spec, conformance_tests::SPEC_UNDER_TEST_V2);
    let must_pass: Vec<&str> = [
        "v2.info.specs",
        "v2.info.signAlgorithms",
        "v2.info.signature_formats",
        "v2.info.conformance_levels",
        "v2.login.basic",
        "v2.bearer.missing.signatures.signHash",
        "v2.bearer.missing.credentials.getChallenge",
        "v2.bearer.missing.credentials.authorizeCheck",
        "v2.bearer.unknown-token",
        "v2.list.credentialInfos",
        "v2.list.credentialInfos-match-info",
        "v2.list.onlyValid",
        "v2.credinfo.certInfo.issuerDN",
        "v2.credinfo.auth.objects",
        "v2.credinfo.no-v1-auth-members",
        "v2.authorize.sad",
        "v2.authorize.scal2-hashes",
        "v2.authorize.wrong-PIN",
        "v2.getChallenge.challenge",
        "v2.getChallenge.unknown-authObjectID",
        "v2.authorizeCheck.unknown-handle",
        "v2.signhash.verify.sha256-rsa",
        "v2.signhash.verify.rsa-pkcs1-hashalgo-sha256",
        "v2.signhash.verify.rsa-pss-sha256",
        "v2.signhash.verify.ecdsa-sha256",
        "v2.signhash.batch",
        "v2.signhash.operationMode-A-unsupported",
        "v2.signhash.sad-replay",
        "v2.signhash.numSignatures-limit",
        "v2.signhash.numSignatures-across-calls",
        "v2.signhash.scal2-hash-binding",
        "v2.signhash.missing-SAD",
        "v2.signhash.missing-hashAlgorithmOID",
        "v2.signhash.other-user",
        "v2.timestamp.token",
        "v2.timestamp.messageImprint.sha256",
        "v2.timestamp.nonce",
        "v2.timestamp.genTime",
        "v2.timestamp.signature",
        "v2.timestamp.signer-eku",
        "v2.timestamp.serial-unique",
        "v2.timestamp.invalid-nonce",
        "v2.extend.new-sad",
        "v2.revoke.token-unusable",
        "v2.error.json-body",
    ]
    .into_iter()
    .chain(otp.then_some("v2.authorize.wrong-OTP"))
    .collect();
    assert_green(&report, 110, &must_pass);
}
