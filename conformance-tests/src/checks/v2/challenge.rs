//! v2 §11.8 credentials/getChallenge (a challenge for a ChallengeResponse object, or 204 when
//! it goes out of band, e.g. an OTP by SMS) and v2 §11.7 credentials/authorizeCheck (polling
//! an authorization answered 202 with a handle).

use serde_json::{Value, json};

use crate::checks::{Check, bogus, check};
use crate::ctx::{Cred, Ctx, Need, expect_invalid_request, without};
use crate::http::Auth;
use crate::report::Outcome;

const CHALLENGE: &str = "v2 §11.8 credentials/getChallenge";
const CHECK: &str = "v2 §11.7 credentials/authorizeCheck";

/// A credential with a challenge OTP object (`PasswordOOB`, `ChallengeResponse` or
/// `ChallengeResponseOOB`) and the body asking for its challenge.
fn oob(ctx: &mut Ctx<'_>) -> Need<(Cred, Value)> {
    ctx.listed("credentials/getChallenge")?;
    let cred = ctx.pick(
        "a credential with a challenge OTP object (PasswordOOB or ChallengeResponse(OOB))",
        |c| c.otp_online && c.otp_id.is_some(),
    )?;
    let body = json!({
        "credentialID": cred.id,
        "authObjectID": cred.otp_id.clone().unwrap_or_default(),
    });
    Ok((cred, body))
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "v2.getChallenge.challenge",
            CHALLENGE,
            "getChallenge for the credential's challenge object is 204 with no body (challenge sent out of band) or, for an in-band ChallengeResponse, 200 with a challenge string",
            |ctx: &mut Ctx<'_>| {
                let (cred, body) = oob(ctx)?;
                let object_type = crate::ctx::member(&cred.raw, &["auth", "objects"])
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .find(|o| o.get("id").and_then(Value::as_str) == cred.otp_id.as_deref())
                    })
                    .and_then(|o| o.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let r = ctx.call("credentials/getChallenge", &body)?;
                let out_of_band = r.status == 204 && r.text.is_empty();
                let in_band = r.status == 200 && r.str("challenge").is_some_and(|c| !c.is_empty());
                Ok(if object_type == "ChallengeResponse" {
                    Outcome::check(
                        out_of_band || in_band,
                        r#"204 with no body, or 200 {"challenge":"..."}"#,
                        r.brief(),
                    )
                } else {
                    Outcome::check(out_of_band, "204 with no body", r.brief())
                })
            },
        ),
        check(
            "v2.getChallenge.missing-credentialID",
            CHALLENGE,
            "a missing credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (_, body) = oob(ctx)?;
                let r = ctx.call("credentials/getChallenge", &without(body, "credentialID"))?;
                Ok(expect_invalid_request(&r, None))
            },
        ),
        check(
            "v2.getChallenge.unknown-credentialID",
            CHALLENGE,
            "an unknown credentialID is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/getChallenge")?;
                let body = json!({ "credentialID": bogus("credential"), "authObjectID": "OTP" });
                let r = ctx.call("credentials/getChallenge", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
        check(
            "v2.getChallenge.unknown-authObjectID",
            CHALLENGE,
            "an authObjectID that is not one of the credential's objects is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (_, body) = oob(ctx)?;
                let body = crate::ctx::with(body, "authObjectID", json!(bogus("object")));
                let r = ctx.call("credentials/getChallenge", &body)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter authObjectID"),
                ))
            },
        ),
        check(
            "v2.getChallenge.other-user",
            CHALLENGE,
            "another user's token cannot ask for the credential's challenge: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (_, body) = oob(ctx)?;
                let other = ctx.other_token()?;
                let r = ctx
                    .http
                    .post("credentials/getChallenge", Auth::Bearer(&other), &body);
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid parameter credentialID"),
                ))
            },
        ),
        check(
            "v2.authorizeCheck.unknown-handle",
            CHECK,
            "a handle the server never issued is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorizeCheck")?;
                let r = ctx.call(
                    "credentials/authorizeCheck",
                    &json!({ "handle": bogus("handle") }),
                )?;
                Ok(expect_invalid_request(&r, Some("Invalid parameter handle")))
            },
        ),
        check(
            "v2.authorizeCheck.missing-handle",
            CHECK,
            "a missing handle is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                ctx.listed("credentials/authorizeCheck")?;
                let r = ctx.call("credentials/authorizeCheck", &json!({}))?;
                Ok(expect_invalid_request(&r, None))
            },
        ),
    ]
}
