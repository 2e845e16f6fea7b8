//! §11.9 signatures/signHash (and §9 on how many signatures a SAD allows): signatures that
//! verify under the returned certificate, single-use SADs, hash binding at SCAL 2, and the
//! exact input errors.

use csc_types::{SignHashRequest, SignHashResponse};
use serde_json::{Value, json};

use super::{ALGORITHMS, Algorithm, Check, RSA_ENCRYPTION, RSASSA_PSS, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Cred, Ctx, Need, expect_error, expect_refused, to_json, with, without};
use crate::http::{Auth, Resp};
use crate::report::Outcome;

const S: &str = "§11.9 signatures/signHash";

/// The signatures of a 200 answer, decoded; an error text otherwise.
fn signatures(r: &Resp) -> Result<Vec<Vec<u8>>, String> {
    if r.status != 200 {
        return Err(r.brief());
    }
    let parsed = r
        .json
        .clone()
        .and_then(|v| serde_json::from_value::<SignHashResponse>(v).ok())
        .ok_or_else(|| format!("not a signHash output: {}", r.brief()))?;
    parsed.signatures.iter().map(|s| crypto::unb64(s)).collect()
}

fn sign(ctx: &mut Ctx<'_>, req: &SignHashRequest) -> Need<Resp> {
    ctx.call("signatures/signHash", &to_json(req))
}

/// A credential that signs with the default algorithm, SCAL 1 preferred.
fn signer(
    ctx: &mut Ctx<'_>,
    what: &str,
    pred: impl Fn(&Cred) -> bool,
) -> Need<(Cred, &'static str, Digest)> {
    ctx.listed("signatures/signHash")?;
    let cred = ctx.pick(what, |c| pred(c) && Ctx::default_algo(c).is_some())?;
    let (algo, d) = Ctx::default_algo(&cred).unwrap_or(("", Digest::Sha256));
    Ok((cred, algo, d))
}

/// A signature check for one algorithm.
fn verify_check(a: &'static Algorithm) -> Check {
    check(
        format!("signhash.verify.{}", a.name),
        S,
        format!(
            "signAlgo {} ({}): the signature value verifies over the hash under the certificate's key",
            a.oid, a.name
        ),
        move |ctx: &mut Ctx<'_>| {
            ctx.listed("signatures/signHash")?;
            let cred = ctx.pick(&format!("a {} key advertising {}", a.key, a.oid), |c| {
                c.advertises(a.oid) && c.key_kind() == a.key && c.cert().is_some()
            })?;
            let h = crypto::fresh_digest(a.digest, a.name);
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let mut req = Ctx::sign_request(&cred, &sad, std::slice::from_ref(&h), a.oid);
            if a.hash_algo {
                req.hash_algo = Some(a.digest.oid().into());
            }
            req.sign_algo_params = a.params.map(str::to_owned);
            let r = sign(ctx, &req)?;
            let sigs = match signatures(&r) {
                Ok(s) => s,
                Err(e) => return Ok(Outcome::fail("200 with one signature", e)),
            };
            let [sig] = sigs.as_slice() else {
                return Ok(Outcome::fail(
                    "exactly one signature for one hash",
                    format!("{} signatures", sigs.len()),
                ));
            };
            let cert = cred.cert().ok_or_else(|| Outcome::skip("no certificate"))?;
            Ok(match crypto::verify(cert, &h, a.scheme, sig) {
                Ok(()) => Outcome::pass(format!("credential {}: verified", cred.id)),
                Err(e) => Outcome::fail(
                    "a signature that verifies under the certificate",
                    format!("credential {}: {e}", cred.id),
                ),
            })
        },
    )
}

/// A fresh SAD and a complete request for the input-error checks (SCAL 1 preferred; a SCAL 2
/// SAD binds the probe hash).
fn probe(ctx: &mut Ctx<'_>) -> Need<(Cred, Value)> {
    probe_where(ctx, "a credential that signs", |_| true)
}

/// [`probe`] on a credential that `pred` accepts.
fn probe_where(ctx: &mut Ctx<'_>, what: &str, pred: impl Fn(&Cred) -> bool) -> Need<(Cred, Value)> {
    let (cred, algo, d) = signer(ctx, what, pred)?;
    let h = crypto::fresh_digest(d, "probe");
    let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
    let req = to_json(&Ctx::sign_request(&cred, &sad, &[h], algo));
    Ok((cred, req))
}

/// An input-error check: `mutate` breaks the probe request, the answer must be exactly
/// `description`.
fn input_error(
    id: &'static str,
    rule: &'static str,
    description: &'static str,
    mutate: fn(Value, &Cred) -> Value,
) -> Check {
    check(id, S, rule, move |ctx: &mut Ctx<'_>| {
        let (cred, req) = probe(ctx)?;
        let r = ctx.call("signatures/signHash", &mutate(req, &cred))?;
        Ok(expect_error(&r, 400, "invalid_request", Some(description)))
    })
}

pub fn checks() -> Vec<Check> {
    let mut all: Vec<Check> = ALGORITHMS.iter().map(verify_check).collect();
    all.push(check(
        "signhash.hashAlgo-ignored",
        S,
        "a hashAlgo that the signAlgo already implies is ignored (\"omitted or ignored\"), not refused",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let h = crypto::fresh_digest(d, "hashalgo");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let mut req = Ctx::sign_request(&cred, &sad, &[h], algo);
            req.hash_algo = Some(d.oid().into());
            let r = sign(ctx, &req)?;
            Ok(Outcome::check(signatures(&r).is_ok_and(|s| s.len() == 1), "200 with one signature", r.brief()))
        },
    ));
    all.push(check(
        "signhash.batch",
        S,
        "several hashes in one call are all signed, in the order given",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "allowing 2 signatures (multisign >= 2)", |c| {
                c.multisign >= 2
            })?;
            let hs = vec![
                crypto::fresh_digest(d, "batch-0"),
                crypto::fresh_digest(d, "batch-1"),
            ];
            let sad = ctx.sad(&cred, 2, &hs)?;
            let r = sign(ctx, &Ctx::sign_request(&cred, &sad, &hs, algo))?;
            let sigs = match signatures(&r) {
                Ok(s) if s.len() == 2 => s,
                Ok(s) => return Ok(Outcome::fail("2 signatures", format!("{}", s.len()))),
                Err(e) => return Ok(Outcome::fail("200 with 2 signatures", e)),
            };
            let scheme = ALGORITHMS.iter().find(|a| a.oid == algo).map(|a| a.scheme);
            let (Some(cert), Some(scheme)) = (cred.cert(), scheme) else {
                return Ok(Outcome::skip("no certificate to verify with"));
            };
            for (i, (h, s)) in hs.iter().zip(&sigs).enumerate() {
                if let Err(e) = crypto::verify(cert, h, scheme, s) {
                    return Ok(Outcome::fail(format!("signature {i} over hash {i}"), e));
                }
            }
            Ok(Outcome::pass(format!(
                "credential {}: both verify, in order",
                cred.id
            )))
        },
    ));
    all.push(check(
        "signhash.sad-replay",
        "§9 / §11.9 signatures/signHash",
        "a SAD for one signature that was used cannot be used again (replay refused)",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let h = crypto::fresh_digest(d, "replay");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let req = Ctx::sign_request(&cred, &sad, &[h], algo);
            let first = sign(ctx, &req)?;
            if signatures(&first).is_err() {
                return Ok(Outcome::skip(format!(
                    "the first signHash failed: {}",
                    first.brief()
                )));
            }
            let again = sign(ctx, &req)?;
            Ok(expect_refused(
                &again,
                "a refusal (400 invalid_request) of the replayed SAD, not a second signature",
            ))
        },
    ));
    all.push(check(
        "signhash.numSignatures-limit",
        "§9 / §11.9 signatures/signHash",
        "a SAD for one signature does not sign two hashes in one call",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let first = crypto::fresh_digest(d, "limit-0");
            let hs = vec![first.clone(), crypto::fresh_digest(d, "limit-1")];
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&first))?;
            let r = sign(ctx, &Ctx::sign_request(&cred, &sad, &hs, algo))?;
            Ok(expect_refused(
                &r,
                "a refusal: 2 hashes under a SAD for 1 signature",
            ))
        },
    ));
    all.push(check(
        "signhash.numSignatures-across-calls",
        "§9 / §11.9 signatures/signHash",
        "a SAD for two signatures, one spent, does not sign two more",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "allowing 2 signatures (multisign >= 2)", |c| {
                c.multisign >= 2
            })?;
            let hs = [
                crypto::fresh_digest(d, "across-0"),
                crypto::fresh_digest(d, "across-1"),
                crypto::fresh_digest(d, "across-2"),
            ];
            let sad = ctx.sad(&cred, 2, &hs[..2])?;
            let first = sign(ctx, &Ctx::sign_request(&cred, &sad, &hs[..1], algo))?;
            if signatures(&first).is_err() {
                return Ok(Outcome::skip(format!(
                    "the first signHash failed: {}",
                    first.brief()
                )));
            }
            let r = sign(ctx, &Ctx::sign_request(&cred, &sad, &hs[1..], algo))?;
            Ok(expect_refused(
                &r,
                "a refusal: 2 more hashes when 1 signature remains",
            ))
        },
    ));
    all.push(check(
        "signhash.scal2-hash-binding",
        "§8.2 SCAL / §11.9 signatures/signHash",
        "at SCAL 2 a hash the SAD was not authorized for is refused",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "of SCAL 2", |c| c.scal == 2)?;
            let bound = crypto::fresh_digest(d, "bound");
            let other = crypto::fresh_digest(d, "not-bound");
            let sad = ctx.sad(&cred, 1, &[bound])?;
            let r = sign(ctx, &Ctx::sign_request(&cred, &sad, &[other], algo))?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Hash is not authorized by the SAD."),
            ))
        },
    ));
    all.push(check(
        "signhash.digest-length",
        S,
        "a hash whose length does not fit the algorithm is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, _) = signer(
                ctx,
                "of SCAL 1 (a SCAL 2 SAD binds well-formed hashes)",
                |c| c.scal == 1,
            )?;
            let short = vec![0x5a; 20];
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&short))?;
            let r = sign(ctx, &Ctx::sign_request(&cred, &sad, &[short], algo))?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Invalid digest value length"),
            ))
        },
    ));
    all.push(input_error(
        "signhash.missing-SAD",
        "a missing SAD is 400 invalid_request",
        "Missing (or invalid type) string parameter SAD",
        |v, _| without(v, "SAD"),
    ));
    all.push(input_error(
        "signhash.invalid-SAD",
        "an unknown SAD is 400 invalid_request",
        "Invalid parameter SAD",
        |v, _| with(v, "SAD", json!(bogus("SAD"))),
    ));
    all.push(input_error(
        "signhash.missing-credentialID",
        "a missing credentialID is 400 invalid_request",
        "Missing (or invalid type) string parameter credentialID",
        |v, _| without(v, "credentialID"),
    ));
    all.push(input_error(
        "signhash.unknown-credentialID",
        "an unknown credentialID is 400 invalid_request",
        "Invalid parameter credentialID",
        |v, _| with(v, "credentialID", json!(bogus("credential"))),
    ));
    all.push(input_error(
        "signhash.missing-hash",
        "a missing hash is 400 invalid_request",
        "Missing (or invalid type) array parameter hash",
        |v, _| without(v, "hash"),
    ));
    all.push(input_error(
        "signhash.hash-not-array",
        "a hash that is not an array is 400 invalid_request",
        "Missing (or invalid type) array parameter hash",
        |v, _| {
            let first = v
                .get("hash")
                .and_then(|h| h.get(0))
                .cloned()
                .unwrap_or(Value::Null);
            with(v, "hash", first)
        },
    ));
    all.push(input_error(
        "signhash.empty-hash",
        "an empty hash array is 400 invalid_request",
        "Empty hash array",
        |v, _| with(v, "hash", json!([])),
    ));
    all.push(input_error(
        "signhash.invalid-base64",
        "a hash that is not base64 is 400 invalid_request",
        "Invalid Base64 hash string parameter",
        |v, _| with(v, "hash", json!(["@@not base64@@"])),
    ));
    all.push(input_error(
        "signhash.missing-signAlgo",
        "a missing signAlgo is 400 invalid_request",
        "Missing (or invalid type) string parameter signAlgo",
        |v, _| without(v, "signAlgo"),
    ));
    all.push(input_error(
        "signhash.invalid-signAlgo",
        "a signAlgo the credential does not allow is 400 invalid_request",
        "Invalid parameter signAlgo",
        |v, _| with(v, "signAlgo", json!("1.2.3.4.5")),
    ));
    all.push(check(
        "signhash.missing-hashAlgo",
        S,
        "signAlgo rsaEncryption (1.2.840.113549.1.1.1) without hashAlgo is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            let (_, req) = probe_where(ctx, "advertising rsaEncryption", |c| {
                c.advertises(RSA_ENCRYPTION)
            })?;
            let r = ctx.call(
                "signatures/signHash",
                &with(without(req, "hashAlgo"), "signAlgo", json!(RSA_ENCRYPTION)),
            )?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Missing (or invalid type) string parameter hashAlgo"),
            ))
        },
    ));
    all.push(check(
        "signhash.missing-signAlgoParams",
        S,
        "signAlgo RSASSA-PSS (1.2.840.113549.1.1.10) without signAlgoParams is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            let (_, req) =
                probe_where(ctx, "advertising RSASSA-PSS", |c| c.advertises(RSASSA_PSS))?;
            let r = ctx.call(
                "signatures/signHash",
                &with(req, "signAlgo", json!(RSASSA_PSS)),
            )?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Missing (or invalid type) string parameter signAlgoParams"),
            ))
        },
    ));
    all.push(check(
        "signhash.other-user",
        S,
        "a SAD cannot be used with another user's token",
        |ctx: &mut Ctx<'_>| {
            let other = ctx.other_token()?;
            let (_, req) = probe(ctx)?;
            let r = ctx
                .http
                .post("signatures/signHash", Auth::Bearer(&other), &req);
            Ok(expect_error(&r, 400, "invalid_request", None))
        },
    ));
    all
}
