//! v2 §11.9 credentials/extendTransaction: a new SAD within a multi-signature transaction,
//! with `hashes` and `hashAlgorithmOID` at SCAL 2.

use serde_json::{Value, json};

use super::signhash::{signatures, verify_all};
use crate::checks::{Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Cred, Ctx, Need, expect_error, expect_refused, sign_body_v2, with_hashes};
use crate::report::Outcome;

const S: &str = "v2 §11.9 credentials/extendTransaction";

fn multi(ctx: &mut Ctx<'_>) -> Need<(Cred, &'static str, Digest)> {
    ctx.listed("credentials/extendTransaction")?;
    ctx.listed("signatures/signHash")?;
    let cred = ctx.pick(
        "allowing 2 signatures (multisign >= 2) with an algorithm the suite drives",
        |c| c.multisign >= 2 && Ctx::default_algo(c).is_some(),
    )?;
    let (algo, d) = Ctx::default_algo(&cred).unwrap_or(("", Digest::Sha256));
    Ok((cred, algo, d))
}

/// The request: `credentialID`, `SAD` and, at SCAL 2, `hashes` with `hashAlgorithmOID`.
fn extend_body(cred: &Cred, sad: &str, hashes: &[Vec<u8>]) -> Value {
    let body = json!({ "credentialID": cred.id, "SAD": sad });
    if cred.scal == 2 {
        with_hashes(body, hashes)
    } else {
        body
    }
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "v2.extend.new-sad",
            S,
            "after one of two signatures, extendTransaction gives a new SAD that signs the next hash",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = multi(ctx)?;
                let (h1, h2) = (
                    crypto::fresh_digest(d, "extend-1"),
                    crypto::fresh_digest(d, "extend-2"),
                );
                // as in v1 (§13.8): a SCAL 2 SAD binds both hashes at once; the extension
                // renews the second
                let bound = if cred.scal == 2 {
                    vec![h1.clone(), h2.clone()]
                } else {
                    vec![h1.clone()]
                };
                let sad1 = ctx.sad(&cred, 2, &bound)?;
                let first = ctx.call(
                    "signatures/signHash",
                    &sign_body_v2(&cred, &sad1, std::slice::from_ref(&h1), algo),
                )?;
                if first.status != 200 {
                    return Ok(Outcome::skip(format!(
                        "the first signHash failed: {}",
                        first.brief()
                    )));
                }
                let r = ctx.call(
                    "credentials/extendTransaction",
                    &extend_body(&cred, &sad1, std::slice::from_ref(&h2)),
                )?;
                let Some(sad2) = r.str("SAD").filter(|_| r.status == 200).map(str::to_owned) else {
                    return Ok(Outcome::fail(r#"200 {"SAD":"..."}"#, r.brief()));
                };
                if r.get("expiresIn")
                    .is_some_and(|e| e.as_u64().is_none_or(|s| s == 0))
                {
                    return Ok(Outcome::fail("expiresIn a positive integer", r.brief()));
                }
                let second = ctx.call(
                    "signatures/signHash",
                    &sign_body_v2(&cred, &sad2, std::slice::from_ref(&h2), algo),
                )?;
                Ok(match signatures(&second) {
                    Ok(sigs) => match verify_all(&cred, algo, &[h2], &sigs) {
                        Ok(()) => Outcome::pass(format!("credential {}: verified", cred.id)),
                        Err(e) => Outcome::fail("the new SAD signs the second hash", e),
                    },
                    Err(e) => Outcome::fail("the new SAD signs the second hash (200)", e),
                })
            },
        ),
        check(
            "v2.extend.invalid-sad",
            S,
            "an unknown SAD cannot be extended: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (cred, _, d) = multi(ctx)?;
                let h = crypto::fresh_digest(d, "extend-bogus");
                let r = ctx.call(
                    "credentials/extendTransaction",
                    &extend_body(&cred, &bogus("SAD"), &[h]),
                )?;
                Ok(expect_error(&r, 400, "invalid_request", None))
            },
        ),
        check(
            "v2.extend.exhausted",
            S,
            "a SAD whose signatures are all created is invalidated: it cannot be extended",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = multi(ctx)?;
                let hs = vec![
                    crypto::fresh_digest(d, "spent-0"),
                    crypto::fresh_digest(d, "spent-1"),
                ];
                let sad = ctx.sad(&cred, 2, &hs)?;
                let spent =
                    ctx.call("signatures/signHash", &sign_body_v2(&cred, &sad, &hs, algo))?;
                if spent.status != 200 {
                    return Ok(Outcome::skip(format!(
                        "signing both hashes failed: {}",
                        spent.brief()
                    )));
                }
                let next = crypto::fresh_digest(d, "spent-2");
                let r = ctx.call(
                    "credentials/extendTransaction",
                    &extend_body(&cred, &sad, &[next]),
                )?;
                Ok(expect_refused(
                    &r,
                    "a refusal: the SAD has no signature left",
                ))
            },
        ),
    ]
}
