//! v2 §11.6 credentials/authorize: the SAD for numSignatures signatures from `authData`
//! (`{id, value}` per authentication object of `credentials/info`), `hashes` with
//! `hashAlgorithmOID` (SHALL at SCAL 2), its input errors and the factor errors.

use serde_json::{Value, json};

use crate::checks::authorize::altered;
use crate::checks::{Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{
    Cred, Ctx, Need, authorize_body_v2, expect_error, expect_error_any, with, without,
};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "v2 §11.6 credentials/authorize";

/// The wrong-PIN answer: v1's `invalid_pin`, or v2's `invalid_authentication_data` (V2T only).
pub(crate) const WRONG_PIN: &[(&str, Option<&str>)] = &[
    ("invalid_pin", Some("The PIN is invalid")),
    (
        "invalid_authentication_data",
        Some("The authentication data is invalid"),
    ),
];

/// The wrong-OTP answer: v1's `invalid_otp`, or v2's `invalid_authentication_data` (V2T only).
pub(crate) const WRONG_OTP: &[(&str, Option<&str>)] = &[
    ("invalid_otp", Some("The OTP is invalid")),
    (
        "invalid_authentication_data",
        Some("The authentication data is invalid"),
    ),
];

/// The credential for the input-error checks: one that needs no OTP when there is one (so no
/// code is spent), else the primary.
fn quiet(ctx: &mut Ctx<'_>) -> Need<Cred> {
    ctx.listed("credentials/authorize")?;
    ctx.pick("usable without an OTP", |c| c.otp != "true")
        .or_else(|_| ctx.primary())
}

/// A valid request for `cred` (PIN only: no OTP is spent on a request meant to fail).
fn request_without_otp(ctx: &mut Ctx<'_>, cred: &Cred, n: u32) -> Value {
    let hashes: Vec<Vec<u8>> = (0..n)
        .map(|i| crypto::fresh_digest(Digest::Sha256, &format!("authorize-{i}")))
        .collect();
    let pin = (cred.pin != "false").then(|| ctx.cfg.pin.clone()).flatten();
    authorize_body_v2(
        cred,
        n,
        (cred.scal == 2).then_some(hashes.as_slice()),
        pin.as_deref(),
        None,
    )
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "v2.authorize.sad",
            S,
            "a valid request (authData, and hashes with hashAlgorithmOID at SCAL 2) gives 200 with a SAD string",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.primary()?;
                let h = crypto::fresh_digest(Digest::Sha256, "authorize-sad");
                let body = ctx.authorize_body(&cred, 1, &[h], false)?;
                let r = ctx.call("credentials/authorize", &body)?;
                let ok = r.status == 200 && r.str("SAD").is_some_and(|s| !s.is_empty());
                if let Some(exp) = r.get("expiresIn").cloned() {
                    ctx.memo.insert("v2.authorize.expiresIn".into(), exp);
                } else if r.status == 200 {
                    ctx.memo
                        .insert("v2.authorize.expiresIn".into(), Value::Null);
                }
                Ok(Outcome::check(ok, r#"200 {"SAD":"..."}"#, r.brief()))
            },
        ),
        check(
            "v2.authorize.expiresIn",
            S,
            "expiresIn, when returned, is a positive number of seconds",
            |ctx: &mut Ctx<'_>| {
                let Some(v) = ctx.memo.get("v2.authorize.expiresIn").cloned() else {
                    return Ok(Outcome::skip("v2.authorize.sad got no SAD"));
                };
                Ok(match v {
                    Value::Null => Outcome::pass("absent (3600 s by default)"),
                    v => Outcome::check(
                        v.as_u64().is_some_and(|s| s > 0),
                        "a positive integer",
                        v.to_string(),
                    ),
                })
            },
        ),
        check(
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
        ),
        check(
            "v2.authorize.missing-credentialID",
            S,
            "a missing credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let body = without(request_without_otp(ctx, &cred, 1), "credentialID");
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Missing (or invalid type) string parameter credentialID"),
                ))
            },
        ),
        check(
            "v2.authorize.unknown-credentialID",
            S,
            "an unknown credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let body = with(
                    request_without_otp(ctx, &cred, 1),
                    "credentialID",
                    json!(bogus("credential")),
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
        check(
            "v2.authorize.missing-numSignatures",
            S,
            "a missing numSignatures is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let body = without(request_without_otp(ctx, &cred, 1), "numSignatures");
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Missing (or invalid type) integer parameter numSignatures"),
                ))
            },
        ),
        check(
            "v2.authorize.numSignatures-zero",
            S,
            "numSignatures 0 is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let body = with(
                    request_without_otp(ctx, &cred, 1),
                    "numSignatures",
                    json!(0),
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Invalid value for parameter numSignatures"),
                ))
            },
        ),
        check(
            "v2.authorize.numSignatures-above-multisign",
            S,
            "numSignatures above the credential's multisign is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let n = cred.multisign.saturating_add(1);
                if n > 1000 {
                    return Ok(Outcome::skip(format!(
                        "multisign {} is too large to exceed with hashes",
                        cred.multisign
                    )));
                }
                let body = request_without_otp(ctx, &cred, n);
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Numbers of signatures is too high"),
                ))
            },
        ),
        check(
            "v2.authorize.wrong-PIN",
            S,
            "a wrong value for the PIN object is 400 invalid_pin (v2: invalid_authentication_data)",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx
                    .pick("an explicit credential with a PIN object and no OTP", |c| {
                        c.auth_mode == "explicit" && c.pin == "true" && c.otp != "true"
                    })
                    .or_else(|_| {
                        ctx.pick("an explicit credential with a PIN object", |c| {
                            c.auth_mode == "explicit" && c.pin == "true"
                        })
                    })?;
                let Some(pin) = ctx.cfg.pin.clone() else {
                    return Ok(Outcome::skip(
                        "needs --pin (to send a different, wrong one)",
                    ));
                };
                let (_, otp) = ctx.factors(&cred)?;
                let hs = [crypto::fresh_digest(Digest::Sha256, "wrong-pin")];
                let body = authorize_body_v2(
                    &cred,
                    1,
                    (cred.scal == 2).then_some(hs.as_slice()),
                    Some(&altered(&pin)),
                    otp.as_deref(),
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error_any(&r, 400, WRONG_PIN))
            },
        ),
        check(
            "v2.authorize.wrong-OTP",
            S,
            "a wrong value for the OTP object is 400 invalid_otp (v2: invalid_authentication_data)",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.pick("an explicit credential with an OTP object", |c| {
                    c.auth_mode == "explicit" && c.otp == "true"
                })?;
                let (pin, otp) = ctx.factors(&cred)?;
                let Some(real) = otp else {
                    return Ok(Outcome::skip("no OTP was obtained"));
                };
                let hs = [crypto::fresh_digest(Digest::Sha256, "wrong-otp")];
                let body = authorize_body_v2(
                    &cred,
                    1,
                    (cred.scal == 2).then_some(hs.as_slice()),
                    pin.as_deref(),
                    Some(&altered(&real)),
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error_any(&r, 400, WRONG_OTP))
            },
        ),
        check(
            "v2.authorize.missing-authData",
            S,
            "an explicit credential with a PIN object refuses an authorization without authData (400)",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx
                    .pick("an explicit credential with a PIN object and no OTP", |c| {
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
        ),
        check(
            "v2.authorize.scal2-hashes-required",
            S,
            "a SCAL 2 credential refuses an authorization without hashes (400 invalid_request)",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.pick("of SCAL 2", |c| c.scal == 2)?;
                let body = without(
                    without(request_without_otp(ctx, &cred, 1), "hashes"),
                    "hashAlgorithmOID",
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(&r, 400, "invalid_request", None))
            },
        ),
        check(
            "v2.authorize.other-user",
            S,
            "another user's token cannot authorize the credential: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let other = ctx.other_token()?;
                let body = request_without_otp(ctx, &cred, 1);
                let r = ctx
                    .http
                    .post("credentials/authorize", Auth::Bearer(&other), &body);
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
    ]
}
