//! §11.6 credentials/authorize: the SAD for numSignatures signatures, its input errors and the
//! factor errors.

use csc_types::SadResponse;
use serde_json::{Value, json};

use super::{Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Cred, Ctx, Need, expect_error, to_json, with, without};
use crate::http::Auth;
use crate::report::Outcome;

const S: &str = "§11.6 credentials/authorize";

/// The credential for the input-error checks: one that needs no OTP when there is one (so no
/// code is spent), else the primary.
fn quiet(ctx: &mut Ctx<'_>) -> Need<Cred> {
    ctx.listed("credentials/authorize")?;
    ctx.pick("usable without an OTP", |c| c.otp != "true")
        .or_else(|_| ctx.primary())
}

/// A valid request for `cred` (PIN only: no OTP is spent on a request meant to fail), as JSON.
fn request_without_otp(ctx: &mut Ctx<'_>, cred: &Cred, n: u32) -> Value {
    let hashes: Vec<Vec<u8>> = (0..n)
        .map(|i| crypto::fresh_digest(Digest::Sha256, &format!("authorize-{i}")))
        .collect();
    let mut body = json!({ "credentialID": cred.id, "numSignatures": n });
    if cred.scal == 2 {
        let hashes: Vec<String> = hashes.iter().map(|h| crypto::b64(h)).collect();
        body = with(body, "hash", json!(hashes));
    }
    if cred.pin != "false"
        && let Some(pin) = &ctx.cfg.pin
    {
        body = with(body, "PIN", json!(pin));
    }
    body
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

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "authorize.sad",
            S,
            "a valid request gives 200 with a SAD string",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.primary()?;
                let h = crypto::fresh_digest(Digest::Sha256, "authorize-sad");
                let req = ctx.authorize_request(&cred, 1, &[h], false)?;
                let r = ctx.call("credentials/authorize", &to_json(&req))?;
                let parsed = r
                    .json
                    .clone()
                    .and_then(|v| serde_json::from_value::<SadResponse>(v).ok());
                let ok = r.status == 200 && parsed.as_ref().is_some_and(|s| !s.sad.is_empty());
                if let Some(exp) = r.get("expiresIn").cloned() {
                    ctx.memo.insert("authorize.expiresIn".into(), exp);
                } else if r.status == 200 {
                    ctx.memo.insert("authorize.expiresIn".into(), Value::Null);
                }
                Ok(Outcome::check(ok, r#"200 {"SAD":"..."}"#, r.brief()))
            },
        ),
        check(
            "authorize.expiresIn",
            S,
            "expiresIn, when returned, is a positive number of seconds",
            |ctx: &mut Ctx<'_>| {
                let Some(v) = ctx.memo.get("authorize.expiresIn").cloned() else {
                    return Ok(Outcome::skip("authorize.sad got no SAD"));
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
            "authorize.missing-credentialID",
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
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
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
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
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
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
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
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_request",
                    Some("Numbers of signatures is too high"),
                ))
            },
        ),
        check(
            "authorize.wrong-PIN",
            S,
            "a wrong PIN is 400 invalid_pin",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx
                    .pick("an explicit credential with a PIN and no OTP", |c| {
                        c.auth_mode == "explicit" && c.pin == "true" && c.otp != "true"
                    })
                    .or_else(|_| {
                        ctx.pick("an explicit credential with a PIN", |c| {
                            c.auth_mode == "explicit" && c.pin == "true"
                        })
                    })?;
                let Some(pin) = ctx.cfg.pin.clone() else {
                    return Ok(Outcome::skip(
                        "needs --pin (to send a different, wrong one)",
                    ));
                };
                let mut req = ctx.authorize_request(
                    &cred,
                    1,
                    &[crypto::fresh_digest(Digest::Sha256, "wrong-pin")],
                    false,
                )?;
                req.pin = Some(altered(&pin));
                let r = ctx.call("credentials/authorize", &to_json(&req))?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_pin",
                    Some("The PIN is invalid"),
                ))
            },
        ),
        check(
            "authorize.wrong-OTP",
            S,
            "a wrong OTP is 400 invalid_otp",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.pick("an explicit credential with an OTP", |c| {
                    c.auth_mode == "explicit" && c.otp == "true"
                })?;
                let mut req = ctx.authorize_request(
                    &cred,
                    1,
                    &[crypto::fresh_digest(Digest::Sha256, "wrong-otp")],
                    false,
                )?;
                let Some(real) = req.otp.take() else {
                    return Ok(Outcome::skip("no OTP was obtained"));
                };
                req.otp = Some(altered(&real));
                let r = ctx.call("credentials/authorize", &to_json(&req))?;
                Ok(expect_error(
                    &r,
                    400,
                    "invalid_otp",
                    Some("The OTP is invalid"),
                ))
            },
        ),
        check(
            "authorize.scal2-hash-required",
            S,
            "a SCAL 2 credential refuses an authorization without hash (400 invalid_request)",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorize")?;
                let cred = ctx.pick("of SCAL 2", |c| c.scal == 2)?;
                let body = without(request_without_otp(ctx, &cred, 1), "hash");
                let r = ctx.call("credentials/authorize", &body)?;
                Ok(expect_error(&r, 400, "invalid_request", None))
            },
        ),
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

#[cfg(test)]
mod tests {
    #[test]
    fn altered_codes_differ_and_keep_their_shape() {
        assert_eq!(super::altered("123456"), "123457");
        assert_eq!(super::altered("129"), "120");
        assert_eq!(super::altered("abc"), "abx");
    }
}
