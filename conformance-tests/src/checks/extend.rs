//! §11.7 credentials/extendTransaction (v2 §11.9): a new SAD within a multi-signature
//! transaction. One set of checks for both APIs: the bodies come from [`Ctx::extend_body`] and
//! [`Ctx::sign_body`] (v2: `hashes` with `hashAlgorithmOID` at SCAL 2); v2 also checks the new
//! SAD's `expiresIn`.

use csc_types::SadResponse;

use super::signhash::{signatures, verify_all};
use super::{ALGORITHMS, Check, bogus, check, labelled};
use crate::Api;
use crate::crypto::{self, Digest};
use crate::ctx::{Cred, Ctx, Need, expect_invalid_request, expect_refused};
use crate::http::Resp;
use crate::report::Outcome;

const S: &str = "§11.7 credentials/extendTransaction";

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

fn extend(ctx: &mut Ctx<'_>, cred: &Cred, sad: &str, hashes: &[Vec<u8>]) -> Need<Resp> {
    let body = ctx.extend_body(cred, sad, hashes);
    ctx.call("credentials/extendTransaction", &body)
}

fn sign(ctx: &mut Ctx<'_>, cred: &Cred, sad: &str, hashes: &[Vec<u8>], algo: &str) -> Need<Resp> {
    super::signhash::sign_with(ctx, cred, sad, hashes, algo)
}

/// The new SAD of an extendTransaction answer, or the failure: v1 reads the v1.0.4.0 output;
/// v2 the `SAD` string and an `expiresIn`, when present, that is a positive integer.
fn new_sad(api: Api, r: &Resp) -> Result<String, Outcome> {
    let fail = || Outcome::fail(r#"200 {"SAD":"..."}"#, r.brief());
    match api {
        Api::V1 => r
            .json
            .clone()
            .filter(|_| r.status == 200)
            .and_then(|v| serde_json::from_value::<SadResponse>(v).ok())
            .map(|s| s.sad)
            .ok_or_else(fail),
        Api::V2 => {
            let sad = r
                .str("SAD")
                .filter(|_| r.status == 200)
                .map(str::to_owned)
                .ok_or_else(fail)?;
            if r.get("expiresIn")
                .is_some_and(|e| e.as_u64().is_none_or(|s| s == 0))
            {
                return Err(Outcome::fail("expiresIn a positive integer", r.brief()));
            }
            Ok(sad)
        }
    }
}

/// Whether the second signature, made with the new SAD, verifies over `h2`.
fn second_verifies(api: Api, cred: &Cred, algo: &str, h2: &[u8], second: &Resp) -> Outcome {
    match api {
        Api::V1 => {
            let scheme = ALGORITHMS.iter().find(|a| a.oid == algo).map(|a| a.scheme);
            let sig = second
                .json
                .as_ref()
                .and_then(|v| v.get("signatures")?.get(0)?.as_str())
                .and_then(|s| crypto::unb64(s).ok());
            let verified = match (cred.cert(), scheme, sig) {
                (Some(cert), Some(scheme), Some(sig)) => {
                    crypto::verify(cert, h2, scheme, &sig).is_ok()
                }
                _ => false,
            };
            Outcome::check(
                second.status == 200 && verified,
                "the new SAD signs the second hash (signature verifies)",
                second.brief(),
            )
        }
        Api::V2 => match signatures(api, second) {
            Ok(sigs) => match verify_all(cred, algo, &[h2.to_vec()], &sigs) {
                Ok(()) => Outcome::pass(format!("credential {}: verified", cred.id)),
                Err(e) => Outcome::fail("the new SAD signs the second hash", e),
            },
            Err(e) => Outcome::fail("the new SAD signs the second hash (200)", e),
        },
    }
}

/// The checks of `api`'s catalogue.
pub(crate) fn checks_for(api: Api) -> Vec<Check> {
    let all = vec![
        check(
            "extend.new-sad",
            S,
            "after one of two signatures, extendTransaction gives a new SAD that signs the next hash",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = multi(ctx)?;
                let (h1, h2) = (
                    crypto::fresh_digest(d, "extend-1"),
                    crypto::fresh_digest(d, "extend-2"),
                );
                // §13.8: authorize 2 signatures knowing only the first hash. A SCAL 2 SAD is
                // linked to its hashes, whose count SHOULD equal numSignatures (§11.6; a server
                // MAY refuse fewer): both are bound at once and the extension renews the second.
                let bound = if cred.scal == 2 {
                    vec![h1.clone(), h2.clone()]
                } else {
                    vec![h1.clone()]
                };
                let sad1 = ctx.sad(&cred, 2, &bound)?;
                let first = sign(ctx, &cred, &sad1, std::slice::from_ref(&h1), algo)?;
                if first.status != 200 {
                    return Ok(Outcome::skip(format!(
                        "the first signHash failed: {}",
                        first.brief()
                    )));
                }
                let r = extend(ctx, &cred, &sad1, std::slice::from_ref(&h2))?;
                let sad2 = match new_sad(ctx.api, &r) {
                    Ok(s) => s,
                    Err(o) => return Ok(o),
                };
                let second = sign(ctx, &cred, &sad2, std::slice::from_ref(&h2), algo)?;
                Ok(second_verifies(ctx.api, &cred, algo, &h2, &second))
            },
        ),
        check(
            "extend.invalid-sad",
            S,
            "an unknown SAD cannot be extended: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (cred, _, d) = multi(ctx)?;
                let h = crypto::fresh_digest(d, "extend-bogus");
                let r = extend(ctx, &cred, &bogus("SAD"), &[h])?;
                Ok(expect_invalid_request(&r, None))
            },
        ),
        check(
            "extend.exhausted",
            S,
            "a SAD whose signatures are all created is invalidated: it cannot be extended",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = multi(ctx)?;
                let hs = vec![
                    crypto::fresh_digest(d, "spent-0"),
                    crypto::fresh_digest(d, "spent-1"),
                ];
                let sad = ctx.sad(&cred, 2, &hs)?;
                let spent = sign(ctx, &cred, &sad, &hs, algo)?;
                if spent.status != 200 {
                    return Ok(Outcome::skip(format!(
                        "signing both hashes failed: {}",
                        spent.brief()
                    )));
                }
                let next = crypto::fresh_digest(d, "spent-2");
                let r = extend(ctx, &cred, &sad, &[next])?;
                Ok(expect_refused(
                    &r,
                    "a refusal: the SAD has no signature left",
                ))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// Every v1 check.
pub fn checks() -> Vec<Check> {
    checks_for(Api::V1)
}
