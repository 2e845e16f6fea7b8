//! §11.6 credentials/authorize (v2 §11.6): the SAD for numSignatures signatures, its input
//! errors and the factor errors. One set of checks for both APIs: the bodies come from
//! [`Ctx::authorize_body_with`] (v1 `hash`, `PIN`, `OTP`; v2 `hashes` with `hashAlgorithmOID`,
//! `authData`); where v2 differs (its rule texts, `invalid_authentication_data` accepted for a
//! wrong factor, `hashes` and `hashAlgorithmOID` both left out at SCAL 2) it says so here, and
//! v2's own checks are in `v2::authorize`.

use csc_types::SadResponse;
use serde_json::{Value, json};

use super::{Check, bogus, check, labelled};
use crate::Api;
use crate::crypto::{self, Digest};
use crate::ctx::{Cred, Ctx, Need, expect_error_any, expect_invalid_request, with, without};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "§11.6 credentials/authorize";

/// The wrong-PIN answer in v2: v1's `invalid_pin`, or v2's `invalid_authentication_data`
/// (v2 §11.6 only).
pub(crate) const WRONG_PIN: &[(&str, Option<&str>)] = &[
    ("invalid_pin", Some("The PIN is invalid")),
    (
        "invalid_authentication_data",
        Some("The authentication data is invalid"),
    ),
];

/// The wrong-OTP answer in v2: v1's `invalid_otp`, or v2's `invalid_authentication_data`
/// (v2 §11.6 only).
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
pub(crate) fn request_without_otp(ctx: &mut Ctx<'_>, cred: &Cred, n: u32) -> Value {
    let hashes: Vec<Vec<u8>> = (0..n)
        .map(|i| crypto::fresh_digest(Digest::Sha256, &format!("authorize-{i}")))
        .collect();
    let pin = (cred.pin != "false").then(|| ctx.cfg.pin.clone()).flatten();
    ctx.authorize_body_with(
        cred,
        n,
        (cred.scal == 2).then_some(hashes.as_slice()),
        pin.as_deref(),
        None,
    )
}

/// A different code of the same shape (last character changed).
pub(crate) fn altered(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    match chars.last_mut() {
        Some(c) if c.is_ascii_digit() => {
            *c = char::from(b'0' + (c.to_digit(10).unwrap_or(0) as u8 + 1) % 10);
        }
        Some(c) => *c = if *c == 'x' { 'y' } else { 'x' },
        None => chars.push('0'),
    }
    chars.into_iter().collect()
}

/// The memo key of the `expiresIn` that `authorize.sad` saw, and that check's id.
fn sad_check_id(api: Api) -> &'static str {
    match api {
        Api::V1 => "authorize.sad",
        Api::V2 => "v2.authorize.sad",
    }
}

/// `authorize.sad` and `authorize.expiresIn`.
pub(crate) fn sad_checks(api: Api) -> Vec<Check> {
    let rule = match api {
        Api::V1 => "a valid request gives 200 with a SAD string",
        Api::V2 => {
            "a valid request (authData, and hashes with hashAlgorithmOID at SCAL 2) gives 200 with a SAD string"
        }
    };
    let memo = format!("{}.expiresIn", sad_check_id(api).trim_end_matches(".sad"));
    let memo2 = memo.clone();
    let all = vec![
        check("authorize.sad", S, rule, move |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/authorize")?;
            let cred = ctx.primary()?;
            let h = crypto::fresh_digest(Digest::Sha256, "authorize-sad");
            let body = ctx.authorize_body(&cred, 1, &[h], false)?;
            let r = ctx.call("credentials/authorize", &body)?;
            let sad = match ctx.api {
                Api::V1 => r
                    .json
                    .clone()
                    .and_then(|v| serde_json::from_value::<SadResponse>(v).ok())
                    .map(|s| s.sad),
                Api::V2 => r.str("SAD").map(str::to_owned),
            };
            let ok = r.status == 200 && sad.is_some_and(|s| !s.is_empty());
            if let Some(exp) = r.get("expiresIn").cloned() {
                ctx.memo.insert(memo.clone(), exp);
            } else if r.status == 200 {
                ctx.memo.insert(memo.clone(), Value::Null);
            }
            Ok(Outcome::check(ok, r#"200 {"SAD":"..."}"#, r.brief()))
        }),
        check(
            "authorize.expiresIn",
            S,
            "expiresIn, when returned, is a positive number of seconds",
            move |ctx: &mut Ctx<'_>| {
                let Some(v) = ctx.memo.get(&memo2).cloned() else {
                    return Ok(Outcome::skip(format!(
                        "{} got no SAD",
                        sad_check_id(ctx.api)
                    )));
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
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// The input errors: credentialID and numSignatures missing or wrong.
pub(crate) fn input_checks(api: Api) -> Vec<Check> {
    let all = vec![
        check(
            "authorize.missing-credentialID",
            S,
            "a missing credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let body = without(request_without_otp(ctx, &cred, 1), "credentialID");
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Missing (or invalid type) string parameter credentialID"),
                ))
            },
        ),
        check(
            "authorize.unknown-credentialID",
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
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
        check(
            "authorize.missing-numSignatures",
            S,
            "a missing numSignatures is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let body = without(request_without_otp(ctx, &cred, 1), "numSignatures");
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Missing (or invalid type) integer parameter numSignatures"),
                ))
            },
        ),
        check(
            "authorize.numSignatures-zero",
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
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid value for parameter numSignatures"),
                ))
            },
        ),
        check(
            "authorize.numSignatures-above-multisign",
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
                Ok(expect_invalid_request(
                    &r,
                    Some("Numbers of signatures is too high"),
                ))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// A wrong PIN and a wrong OTP (v2: the values of the PIN and OTP objects in `authData`).
pub(crate) fn factor_checks(api: Api) -> Vec<Check> {
    // v2 calls them authentication objects and accepts its own error too
    let (object, pin_rule, otp_rule) = match api {
        Api::V1 => (
            "",
            "a wrong PIN is 400 invalid_pin",
            "a wrong OTP is 400 invalid_otp",
        ),
        Api::V2 => (
            " object",
            "a wrong value for the PIN object is 400 invalid_pin (v2: invalid_authentication_data)",
            "a wrong value for the OTP object is 400 invalid_otp (v2: invalid_authentication_data)",
        ),
    };
    let wrong = |api: Api, pairs: &'static [(&'static str, Option<&'static str>)]| match api {
        Api::V1 => pairs.get(..1).unwrap_or(pairs),
        Api::V2 => pairs,
    };
    let (wrong_pin, wrong_otp) = (wrong(api, WRONG_PIN), wrong(api, WRONG_OTP));
    let all = vec![
        check(
            "authorize.wrong-PIN",
            S,
            pin_rule,
            move |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx
                    .pick(
                        &format!("an explicit credential with a PIN{object} and no OTP"),
                        |c| c.auth_mode == "explicit" && c.pin == "true" && c.otp != "true",
                    )
                    .or_else(|_| {
                        ctx.pick(&format!("an explicit credential with a PIN{object}"), |c| {
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
                let body = ctx.authorize_body_with(
                    &cred,
                    1,
                    (cred.scal == 2).then_some(hs.as_slice()),
                    Some(&altered(&pin)),
                    otp.as_deref(),
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error_any(&r, 400, wrong_pin))
            },
        ),
        check(
            "authorize.wrong-OTP",
            S,
            otp_rule,
            move |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.pick(
                    &format!("an explicit credential with an OTP{object}"),
                    |c| c.auth_mode == "explicit" && c.otp == "true",
                )?;
                let (pin, otp) = ctx.factors(&cred)?;
                let Some(real) = otp else {
                    return Ok(Outcome::skip("no OTP was obtained"));
                };
                let hs = [crypto::fresh_digest(Digest::Sha256, "wrong-otp")];
                let body = ctx.authorize_body_with(
                    &cred,
                    1,
                    (cred.scal == 2).then_some(hs.as_slice()),
                    pin.as_deref(),
                    Some(&altered(&real)),
                );
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error_any(&r, 400, wrong_otp))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// A SCAL 2 credential without hashes (v1 `hash`; v2 `hashes` and `hashAlgorithmOID`), and
/// another user's token.
pub(crate) fn last_checks(api: Api) -> Vec<Check> {
    let (id, rule) = match api {
        Api::V1 => (
            "authorize.scal2-hash-required",
            "a SCAL 2 credential refuses an authorization without hash (400 invalid_request)",
        ),
        Api::V2 => (
            "authorize.scal2-hashes-required",
            "a SCAL 2 credential refuses an authorization without hashes (400 invalid_request)",
        ),
    };
    let all = vec![
        check(id, S, rule, |ctx: &mut Ctx<'_>| {
            ctx.listed("credentials/authorize")?;
            let cred = ctx.pick("of SCAL 2", |c| c.scal == 2)?;
            let body = without(
                without(request_without_otp(ctx, &cred, 1), ctx.hashes_member()),
                "hashAlgorithmOID",
            );
            let r = ctx.call("credentials/authorize", &body)?;
            Ok(expect_invalid_request(&r, None))
        }),
        check(
            "authorize.other-user",
            S,
            "another user's token cannot authorize the credential: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let cred = quiet(ctx)?;
                let other = ctx.other_token()?;
                let body = request_without_otp(ctx, &cred, 1);
                let r = ctx
                    .http
                    .post("credentials/authorize", Auth::Bearer(&other), &body);
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// Every v1 check, in order; v2 (`v2::authorize`) puts its own checks among the shared ones.
pub fn checks() -> Vec<Check> {
    let api = Api::V1;
    let mut all = sad_checks(api);
    all.extend(input_checks(api));
    all.extend(factor_checks(api));
    all.extend(last_checks(api));
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn altered_codes_differ_and_keep_their_shape() {
        assert_eq!(super::altered("123456"), "123457");
        assert_eq!(super::altered("129"), "120");
        assert_eq!(super::altered("abc"), "abx");
    }
}
