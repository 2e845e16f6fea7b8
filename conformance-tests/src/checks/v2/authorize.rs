//! v2 §11.6 credentials/authorize: the SAD for numSignatures signatures from `authData`
//! (`{id, value}` per authentication object of `credentials/info`), `hashes` with
//! `hashAlgorithmOID` (SHALL at SCAL 2). The checks v1 has are built for v2 by
//! [`crate::checks::authorize`]; here are v2's own, among them.

use crate::Api;
use crate::checks::authorize::{
    factor_checks, input_checks, last_checks, request_without_otp, sad_checks,
};
use crate::checks::{Check, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Ctx, expect_error_any, without};
use crate::report::Outcome;

const S: &str = "v2 §11.6 credentials/authorize";

/// Every v2 check, in the order they run.
pub fn checks() -> Vec<Check> {
    let api = Api::V2;
    let mut all = sad_checks(api);
    all.push(check(
        "v2.authorize.scal2-hashes",
        S,
        "a SCAL 2 credential gives a SAD for hashes sent with their hashAlgorithmOID",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/authorize")?;
            let cred = ctx.pick("of SCAL 2", |c| c.scal == 2)?;
            let hs = vec![crypto::fresh_digest(Digest::Sha256, "authorize-scal2")];
            let body = ctx.authorize_body(&cred, 1, &hs, true)?;
            let r = ctx.call("credentials/authorize", &body)?;
            Ok(Outcome::check(
                r.status == 200 && r.str("SAD").is_some_and(|s| !s.is_empty()),
                r#"200 {"SAD":"..."}"#,
                r.brief(),
            ))
        },
    ));
    all.extend(input_checks(api));
    all.extend(factor_checks(api));
    all.push(check(
        "v2.authorize.missing-authData",
        S,
        "an explicit credential with a PIN object refuses an authorization without authData (400)",
        |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/authorize")?;
            let cred = ctx.pick("an explicit credential with a PIN object and no OTP", |c| {
                c.auth_mode == "explicit" && c.pin == "true" && c.otp != "true"
            })?;
            let body = without(request_without_otp(ctx, &cred, 1), "authData");
            let r = ctx.call("credentials/authorize", &body)?;
            let known = [
                ("invalid_request", None),
                ("invalid_pin", None),
                ("invalid_authentication_data", None),
            ];
            Ok(expect_error_any(&r, 400, &known))
        },
    ));
    all.extend(last_checks(api));
    all
}
