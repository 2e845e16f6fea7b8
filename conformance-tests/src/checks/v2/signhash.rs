//! v2 §11.10 signatures/signHash (and v2 §9 on how many signatures a SAD allows): `hashes`
//! with `hashAlgorithmOID`, signatures that verify under the returned certificate, single-use
//! SADs, hash binding at SCAL 2, `operationMode`, and the input errors. Where the v2 text
//! still has v1's wording (`hash`, `hashAlgo`) either wording is accepted; status and `error`
//! are exact.

use serde_json::{Value, json};

use crate::checks::{ALGORITHMS, Algorithm, Check, RSA_ENCRYPTION, RSASSA_PSS, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{
    Cred, Ctx, Need, expect_error, expect_error_any, expect_refused, member, sign_body_v2, with,
    without,
};
use crate::http::{Auth, Resp};
use crate::report::Outcome;

const S: &str = "v2 §11.10 signatures/signHash";
const SAD_RULES: &str = "v2 §9 / §11.10 signatures/signHash";

/// The signatures of a 200 answer, decoded; an error text otherwise.
pub(crate) fn signatures(r: &Resp) -> Result<Vec<Vec<u8>>, String> {
    if r.status != 200 {
        return Err(r.brief());
    }
    let list = r
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no signatures array: {}", r.brief()))?;
    list.iter()
        .map(|s| {
            s.as_str()
                .ok_or_else(|| format!("a signature that is not a string: {s}"))
                .and_then(crypto::unb64)
        })
        .collect()
}

fn sign(ctx: &mut Ctx<'_>, body: &Value) -> Need<Resp> {
    ctx.call("signatures/signHash", body)
}

/// A credential that signs with the default algorithm, SCAL 1 preferred.
pub(crate) fn signer(
    ctx: &mut Ctx<'_>,
    what: &str,
    pred: impl Fn(&Cred) -> bool,
) -> Need<(Cred, &'static str, Digest)> {
    ctx.listed("signatures/signHash")?;
    let cred = ctx.pick(what, |c| pred(c) && Ctx::default_algo(c).is_some())?;
    let (algo, d) = Ctx::default_algo(&cred).unwrap_or(("", Digest::Sha256));
    Ok((cred, algo, d))
}

/// Verifies `sigs` over `hashes` in order under `cred`'s certificate with `algo`'s scheme.
pub(crate) fn verify_all(
    cred: &Cred,
    algo: &str,
    hashes: &[Vec<u8>],
    sigs: &[Vec<u8>],
) -> Result<(), String> {
    let scheme = ALGORITHMS
        .iter()
        .find(|a| a.oid == algo)
        .map(|a| a.scheme)
        .ok_or("an algorithm the suite cannot verify")?;
    let cert = cred.cert().ok_or("no certificate to verify with")?;
    if sigs.len() != hashes.len() {
        return Err(format!(
            "{} signatures for {} hashes",
            sigs.len(),
            hashes.len()
        ));
    }
    for (i, (h, s)) in hashes.iter().zip(sigs).enumerate() {
        crypto::verify(cert, h, scheme, s).map_err(|e| format!("signature {i}: {e}"))?;
    }
    Ok(())
}

/// A signature check for one algorithm.
fn verify_check(a: &'static Algorithm) -> Check {
    check(
        format!("v2.signhash.verify.{}", a.name),
        S,
        format!(
            "signAlgo {} ({}) with hashes and hashAlgorithmOID: the signature value verifies over the hash under the certificate's key",
            a.oid, a.name
        ),
        move |ctx: &mut Ctx<'_>| {
            ctx.listed("signatures/signHash")?;
            let cred = ctx.pick(&format!("a {} key advertising {}", a.key, a.oid), |c| {
                c.advertises(a.oid) && c.key_kind() == a.key && c.cert().is_some()
            })?;
            let h = crypto::fresh_digest(a.digest, a.name);
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let mut body = sign_body_v2(&cred, &sad, std::slice::from_ref(&h), a.oid);
            if let Some(p) = a.params {
                body = with(body, "signAlgoParams", json!(p));
            }
            let r = sign(ctx, &body)?;
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

/// A fresh SAD and a complete request for the input-error checks on a credential `pred`
/// accepts (SCAL 1 preferred; a SCAL 2 SAD binds the probe hash).
fn probe_where(ctx: &mut Ctx<'_>, what: &str, pred: impl Fn(&Cred) -> bool) -> Need<(Cred, Value)> {
    let (cred, algo, d) = signer(ctx, what, pred)?;
    let h = crypto::fresh_digest(d, "probe");
    let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
    let body = sign_body_v2(&cred, &sad, &[h], algo);
    Ok((cred, body))
}

fn probe(ctx: &mut Ctx<'_>) -> Need<(Cred, Value)> {
    probe_where(ctx, "a credential that signs", |_| true)
}

/// An input-error check: `mutate` breaks the probe request, the answer must be 400
/// invalid_request with one of `descriptions`.
fn input_error(
    id: &'static str,
    rule: &'static str,
    descriptions: &'static [&'static str],
    mutate: fn(Value) -> Value,
) -> Check {
    check(id, S, rule, move |ctx: &mut Ctx<'_>| {
        let (_, body) = probe(ctx)?;
        let r = sign(ctx, &mutate(body))?;
        let pairs: Vec<(&str, Option<&str>)> = descriptions
            .iter()
            .map(|d| ("invalid_request", Some(*d)))
            .collect();
        Ok(expect_error_any(&r, 400, &pairs))
    })
}

/// Whether `info` says the server runs asynchronous operations.
fn asynchronous(ctx: &mut Ctx<'_>) -> bool {
    ctx.info()
        .ok()
        .is_some_and(|i| member(&i, &["asynchronousOperationMode"]).as_bool() == Some(true))
}

pub fn checks() -> Vec<Check> {
    let mut all: Vec<Check> = ALGORITHMS.iter().map(verify_check).collect();
    all.push(check(
        "v2.signhash.hashAlgorithmOID-implied",
        S,
        "hashAlgorithmOID may be omitted when the signAlgo implies the hash",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let h = crypto::fresh_digest(d, "implied");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let body = without(
                sign_body_v2(&cred, &sad, std::slice::from_ref(&h), algo),
                "hashAlgorithmOID",
            );
            let r = sign(ctx, &body)?;
            Ok(match signatures(&r) {
                Ok(sigs) => match verify_all(&cred, algo, &[h], &sigs) {
                    Ok(()) => Outcome::pass(format!("credential {}: verified", cred.id)),
                    Err(e) => Outcome::fail("one signature that verifies", e),
                },
                Err(e) => Outcome::fail("200 with one signature", e),
            })
        },
    ));
    all.push(check(
        "v2.signhash.batch",
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
            let r = sign(ctx, &sign_body_v2(&cred, &sad, &hs, algo))?;
            Ok(match signatures(&r) {
                Ok(sigs) => match verify_all(&cred, algo, &hs, &sigs) {
                    Ok(()) => {
                        Outcome::pass(format!("credential {}: both verify, in order", cred.id))
                    }
                    Err(e) => Outcome::fail("2 signatures, each over its hash, in order", e),
                },
                Err(e) => Outcome::fail("200 with 2 signatures", e),
            })
        },
    ));
    all.push(check(
        "v2.signhash.operationMode-S",
        S,
        "operationMode S (synchronous, the default) gives the signatures at once",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let h = crypto::fresh_digest(d, "sync");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let body = with(
                sign_body_v2(&cred, &sad, std::slice::from_ref(&h), algo),
                "operationMode",
                json!("S"),
            );
            let r = sign(ctx, &body)?;
            Ok(match signatures(&r) {
                Ok(sigs) => match verify_all(&cred, algo, &[h], &sigs) {
                    Ok(()) => Outcome::pass(format!("credential {}: verified", cred.id)),
                    Err(e) => Outcome::fail("one signature that verifies", e),
                },
                Err(e) => Outcome::fail("200 with one signature", e),
            })
        },
    ));
    all.push(check(
        "v2.signhash.operationMode-A-unsupported",
        S,
        "operationMode A on a server whose info says asynchronousOperationMode is false (or absent) is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            if asynchronous(ctx) {
                return Ok(Outcome::skip(
                    "info.asynchronousOperationMode is true: A is supported",
                ));
            }
            let (_, body) = probe(ctx)?;
            let r = sign(ctx, &with(body, "operationMode", json!("A")))?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Invalid parameter operationMode"),
            ))
        },
    ));
    all.push(input_error(
        "v2.signhash.invalid-operationMode",
        "an operationMode other than S or A is 400 invalid_request",
        &["Invalid parameter operationMode"],
        |v| with(v, "operationMode", json!("X")),
    ));
    all.push(check(
        "v2.signhash.sad-replay",
        SAD_RULES,
        "a SAD for one signature that was used cannot be used again (replay refused)",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let h = crypto::fresh_digest(d, "replay");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let body = sign_body_v2(&cred, &sad, &[h], algo);
            let first = sign(ctx, &body)?;
            if signatures(&first).is_err() {
                return Ok(Outcome::skip(format!(
                    "the first signHash failed: {}",
                    first.brief()
                )));
            }
            let again = sign(ctx, &body)?;
            Ok(expect_refused(
                &again,
                "a refusal (400 invalid_request) of the replayed SAD, not a second signature",
            ))
        },
    ));
    all.push(check(
        "v2.signhash.numSignatures-limit",
        SAD_RULES,
        "a SAD for one signature does not sign two hashes in one call",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let first = crypto::fresh_digest(d, "limit-0");
            let hs = vec![first.clone(), crypto::fresh_digest(d, "limit-1")];
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&first))?;
            let r = sign(ctx, &sign_body_v2(&cred, &sad, &hs, algo))?;
            Ok(expect_refused(
                &r,
                "a refusal: 2 hashes under a SAD for 1 signature",
            ))
        },
    ));
    all.push(check(
        "v2.signhash.numSignatures-across-calls",
        SAD_RULES,
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
            let first = sign(ctx, &sign_body_v2(&cred, &sad, &hs[..1], algo))?;
            if signatures(&first).is_err() {
                return Ok(Outcome::skip(format!(
                    "the first signHash failed: {}",
                    first.brief()
                )));
            }
            let r = sign(ctx, &sign_body_v2(&cred, &sad, &hs[1..], algo))?;
            Ok(expect_refused(
                &r,
                "a refusal: 2 more hashes when 1 signature remains",
            ))
        },
    ));
    all.push(check(
        "v2.signhash.scal2-hash-binding",
        "v2 §8.2 SCAL / §11.10 signatures/signHash",
        "at SCAL 2 a hash the SAD was not authorized for is refused",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "of SCAL 2", |c| c.scal == 2)?;
            let bound = crypto::fresh_digest(d, "bound");
            let other = crypto::fresh_digest(d, "not-bound");
            let sad = ctx.sad(&cred, 1, &[bound])?;
            let r = sign(ctx, &sign_body_v2(&cred, &sad, &[other], algo))?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Hash is not authorized by the SAD."),
            ))
        },
    ));
    all.push(check(
        "v2.signhash.digest-length",
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
            let r = sign(ctx, &sign_body_v2(&cred, &sad, &[short], algo))?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Invalid digest value length"),
            ))
        },
    ));
    all.push(input_error(
        "v2.signhash.missing-SAD",
        "a missing SAD under a service-scope token (not a credential-scope one) is 400 invalid_request",
        &["Missing (or invalid type) string parameter SAD"],
        |v| without(v, "SAD"),
    ));
    all.push(input_error(
        "v2.signhash.invalid-SAD",
        "an unknown SAD is 400 invalid_request",
        &["Invalid parameter SAD"],
        |v| with(v, "SAD", json!(bogus("SAD"))),
    ));
    all.push(input_error(
        "v2.signhash.missing-credentialID",
        "a missing credentialID is 400 invalid_request",
        &["Missing (or invalid type) string parameter credentialID"],
        |v| without(v, "credentialID"),
    ));
    all.push(input_error(
        "v2.signhash.unknown-credentialID",
        "an unknown credentialID is 400 invalid_request",
        &["Invalid parameter credentialID"],
        |v| with(v, "credentialID", json!(bogus("credential"))),
    ));
    all.push(input_error(
        "v2.signhash.missing-hashes",
        "a missing hashes is 400 invalid_request",
        &[
            "Missing (or invalid type) array parameter hashes",
            "Missing (or invalid type) array parameter hash",
        ],
        |v| without(v, "hashes"),
    ));
    all.push(input_error(
        "v2.signhash.hashes-not-array",
        "a hashes that is not an array is 400 invalid_request",
        &[
            "Missing (or invalid type) array parameter hashes",
            "Missing (or invalid type) array parameter hash",
        ],
        |v| {
            let first = member(&v, &["hashes"])
                .get(0)
                .cloned()
                .unwrap_or(Value::Null);
            with(v, "hashes", first)
        },
    ));
    all.push(input_error(
        "v2.signhash.empty-hashes",
        "an empty hashes array is 400 invalid_request",
        &["Empty hashes array", "Empty hash array"],
        |v| with(v, "hashes", json!([])),
    ));
    all.push(input_error(
        "v2.signhash.invalid-base64",
        "a hash that is not base64 is 400 invalid_request",
        &[
            "Invalid Base64 hashes string parameter",
            "Invalid Base64 hash string parameter",
        ],
        |v| with(v, "hashes", json!(["@@not base64@@"])),
    ));
    all.push(input_error(
        "v2.signhash.missing-signAlgo",
        "a missing signAlgo is 400 invalid_request",
        &["Missing (or invalid type) string parameter signAlgo"],
        |v| without(v, "signAlgo"),
    ));
    all.push(input_error(
        "v2.signhash.invalid-signAlgo",
        "a signAlgo the credential does not allow is 400 invalid_request",
        &["Invalid parameter signAlgo"],
        |v| with(v, "signAlgo", json!("1.2.3.4.5")),
    ));
    all.push(check(
        "v2.signhash.missing-hashAlgorithmOID",
        S,
        "signAlgo rsaEncryption (1.2.840.113549.1.1.1) without hashAlgorithmOID is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            let (_, body) = probe_where(ctx, "advertising rsaEncryption", |c| {
                c.advertises(RSA_ENCRYPTION)
            })?;
            let r = sign(
                ctx,
                &with(without(body, "hashAlgorithmOID"), "signAlgo", json!(RSA_ENCRYPTION)),
            )?;
            Ok(expect_error_any(
                &r,
                400,
                &[
                    (
                        "invalid_request",
                        Some("Missing (or invalid type) string parameter hashAlgorithmOID"),
                    ),
                    (
                        "invalid_request",
                        Some("Missing (or invalid type) string parameter hashAlgo"),
                    ),
                ],
            ))
        },
    ));
    all.push(check(
        "v2.signhash.invalid-hashAlgorithmOID",
        S,
        "signAlgo rsaEncryption with a hashAlgorithmOID that names no hash is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            let (_, body) = probe_where(ctx, "advertising rsaEncryption", |c| {
                c.advertises(RSA_ENCRYPTION)
            })?;
            let body = with(
                with(body, "signAlgo", json!(RSA_ENCRYPTION)),
                "hashAlgorithmOID",
                json!("1.2.3.4.5"),
            );
            let r = sign(ctx, &body)?;
            Ok(expect_error_any(
                &r,
                400,
                &[
                    (
                        "invalid_request",
                        Some("Invalid parameter hashAlgorithmOID"),
                    ),
                    ("invalid_request", Some("Invalid parameter hashAlgo")),
                ],
            ))
        },
    ));
    all.push(check(
        "v2.signhash.missing-signAlgoParams",
        S,
        "signAlgo RSASSA-PSS (1.2.840.113549.1.1.10) without signAlgoParams is 400 invalid_request",
        |ctx: &mut Ctx<'_>| {
            let (_, body) =
                probe_where(ctx, "advertising RSASSA-PSS", |c| c.advertises(RSASSA_PSS))?;
            let r = sign(ctx, &with(body, "signAlgo", json!(RSASSA_PSS)))?;
            Ok(expect_error(
                &r,
                400,
                "invalid_request",
                Some("Missing (or invalid type) string parameter signAlgoParams"),
            ))
        },
    ));
    all.push(check(
        "v2.signhash.other-user",
        S,
        "a SAD cannot be used with another user's token",
        |ctx: &mut Ctx<'_>| {
            let other = ctx.other_token()?;
            let (_, body) = probe(ctx)?;
            let r = ctx
                .http
                .post("signatures/signHash", Auth::Bearer(&other), &body);
            Ok(expect_error(&r, 400, "invalid_request", None))
        },
    ));
    all
}
