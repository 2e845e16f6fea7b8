//! §11.7 credentials/extendTransaction: a new SAD within a multi-signature transaction.

use csc_types::{ExtendTransactionRequest, SadResponse};

use super::{ALGORITHMS, Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Cred, Ctx, Need, expect_error, expect_refused, to_json};
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

fn extend_request(cred: &Cred, sad: &str, hashes: &[Vec<u8>]) -> ExtendTransactionRequest {
    ExtendTransactionRequest {
        credential_id: cred.id.clone(),
        sad: sad.to_owned(),
        hash: (cred.scal == 2).then(|| hashes.iter().map(|h| crypto::b64(h)).collect()),
        ..ExtendTransactionRequest::default()
    }
}

pub fn checks() -> Vec<Check> {
    vec![
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
                let first = ctx.call(
                    "signatures/signHash",
                    &to_json(&Ctx::sign_request(
                        &cred,
                        &sad1,
                        std::slice::from_ref(&h1),
                        algo,
                    )),
                )?;
                if first.status != 200 {
                    return Ok(Outcome::skip(format!(
                        "the first signHash failed: {}",
                        first.brief()
                    )));
                }
                let r = ctx.call(
                    "credentials/extendTransaction",
                    &to_json(&extend_request(&cred, &sad1, std::slice::from_ref(&h2))),
                )?;
                let Some(sad2) = r
                    .json
                    .clone()
                    .filter(|_| r.status == 200)
                    .and_then(|v| serde_json::from_value::<SadResponse>(v).ok())
                    .map(|s| s.sad)
                else {
                    return Ok(Outcome::fail(r#"200 {"SAD":"..."}"#, r.brief()));
                };
                let second = ctx.call(
                    "signatures/signHash",
                    &to_json(&Ctx::sign_request(
                        &cred,
                        &sad2,
                        std::slice::from_ref(&h2),
                        algo,
                    )),
                )?;
                let scheme = ALGORITHMS.iter().find(|a| a.oid == algo).map(|a| a.scheme);
                let sig = second
                    .json
                    .as_ref()
                    .and_then(|v| v.get("signatures")?.get(0)?.as_str())
                    .and_then(|s| crypto::unb64(s).ok());
                let verified = match (cred.cert(), scheme, sig) {
                    (Some(cert), Some(scheme), Some(sig)) => {
                        crypto::verify(cert, &h2, scheme, &sig).is_ok()
                    }
                    _ => false,
                };
                Ok(Outcome::check(
                    second.status == 200 && verified,
                    "the new SAD signs the second hash (signature verifies)",
                    second.brief(),
                ))
            },
        ),
        check(
            "extend.invalid-sad",
            S,
            "an unknown SAD cannot be extended: 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (cred, _, d) = multi(ctx)?;
                let h = crypto::fresh_digest(d, "extend-bogus");
                let r = ctx.call(
                    "credentials/extendTransaction",
                    &to_json(&extend_request(&cred, &bogus("SAD"), &[h])),
                )?;
                Ok(expect_error(&r, 400, "invalid_request", None))
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
                let spent = ctx.call(
                    "signatures/signHash",
                    &to_json(&Ctx::sign_request(&cred, &sad, &hs, algo)),
                )?;
                if spent.status != 200 {
                    return Ok(Outcome::skip(format!(
                        "signing both hashes failed: {}",
                        spent.brief()
                    )));
                }
                let next = crypto::fresh_digest(d, "spent-2");
                let r = ctx.call(
                    "credentials/extendTransaction",
                    &to_json(&extend_request(&cred, &sad, &[next])),
                )?;
                Ok(expect_refused(
                    &r,
                    "a refusal: the SAD has no signature left",
                ))
            },
        ),
    ]
}
