//! §11.9 signatures/signHash (and §9 on how many signatures a SAD allows): signatures that
//! verify under the returned certificate, single-use SADs, hash binding at SCAL 2, and the
//! exact input errors. The checks v1 and v2 share are built here for either API (`labelled`
//! gives the v2 id and clause); the request bodies come from [`Ctx::sign_body`] (v1 `hash`, v2
//! `hashes` with `hashAlgorithmOID`). Where the v2 text still has v1's wording (`hash`,
//! `hashAlgo`) a v2 check accepts either; status and `error` are exact.

use csc_types::SignHashResponse;
use serde_json::{Value, json};

use super::{ALGORITHMS, Algorithm, Check, RSA_ENCRYPTION, RSASSA_PSS, bogus, check, labelled};
use crate::Api;
use crate::crypto::{self, Digest};
use crate::ctx::{
    Cred, Ctx, Need, expect_error_any, expect_invalid_request, expect_refused, with, without,
};
use crate::http::{Auth, Resp};
use crate::report::Outcome;

const S: &str = "§11.9 signatures/signHash";
const SAD_RULES: &str = "§9 / §11.9 signatures/signHash";

/// The signatures of a 200 answer, decoded; an error text otherwise. v1 reads the answer as
/// the v1.0.4.0 output; v2 reads the `signatures` array alone.
pub(crate) fn signatures(api: Api, r: &Resp) -> Result<Vec<Vec<u8>>, String> {
    if r.status != 200 {
        return Err(r.brief());
    }
    match api {
        Api::V1 => {
            let parsed = r
                .json
                .clone()
                .and_then(|v| serde_json::from_value::<SignHashResponse>(v).ok())
                .ok_or_else(|| format!("not a signHash output: {}", r.brief()))?;
            parsed.signatures.iter().map(|s| crypto::unb64(s)).collect()
        }
        Api::V2 => {
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
    }
}

pub(crate) fn sign(ctx: &mut Ctx<'_>, body: &Value) -> Need<Resp> {
    ctx.call("signatures/signHash", body)
}

/// `signatures/signHash` of `hashes` under `sad` ([`Ctx::sign_body`]).
pub(crate) fn sign_with(
    ctx: &mut Ctx<'_>,
    cred: &Cred,
    sad: &str,
    hashes: &[Vec<u8>],
    algo: &str,
) -> Need<Resp> {
    let body = ctx.sign_body(cred, sad, hashes, algo);
    sign(ctx, &body)
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
fn verify_check(api: Api, a: &'static Algorithm) -> Check {
    let sent = match api {
        Api::V1 => "",
        Api::V2 => " with hashes and hashAlgorithmOID",
    };
    labelled(
        api,
        check(
            format!("signhash.verify.{}", a.name),
            S,
            format!(
                "signAlgo {} ({}){sent}: the signature value verifies over the hash under the certificate's key",
                a.oid, a.name
            ),
            move |ctx: &mut Ctx<'_>| {
                ctx.listed("signatures/signHash")?;
                let cred = ctx.pick(&format!("a {} key advertising {}", a.key, a.oid), |c| {
                    c.advertises(a.oid) && c.key_kind() == a.key && c.cert().is_some()
                })?;
                let h = crypto::fresh_digest(a.digest, a.name);
                let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
                let mut body = ctx.sign_body(&cred, &sad, std::slice::from_ref(&h), a.oid);
                // v2 always sends hashAlgorithmOID; v1 sends hashAlgo only where the OID
                // names no digest
                if a.hash_algo && ctx.api == Api::V1 {
                    body = with(body, "hashAlgo", json!(a.digest.oid()));
                }
                if let Some(p) = a.params {
                    body = with(body, "signAlgoParams", json!(p));
                }
                let r = sign(ctx, &body)?;
                let sigs = match signatures(ctx.api, &r) {
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
        ),
    )
}

/// The signature check of every algorithm the suite drives.
pub(crate) fn verify_checks(api: Api) -> Vec<Check> {
    ALGORITHMS.iter().map(|a| verify_check(api, a)).collect()
}

/// A fresh SAD and a complete request for the input-error checks (SCAL 1 preferred; a SCAL 2
/// SAD binds the probe hash).
pub(crate) fn probe(ctx: &mut Ctx<'_>) -> Need<(Cred, Value)> {
    probe_where(ctx, "a credential that signs", |_| true)
}

/// [`probe`] on a credential that `pred` accepts.
pub(crate) fn probe_where(
    ctx: &mut Ctx<'_>,
    what: &str,
    pred: impl Fn(&Cred) -> bool,
) -> Need<(Cred, Value)> {
    let (cred, algo, d) = signer(ctx, what, pred)?;
    let h = crypto::fresh_digest(d, "probe");
    let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
    let body = ctx.sign_body(&cred, &sad, &[h], algo);
    Ok((cred, body))
}

/// The descriptions an error about a member may carry: v1's wording; in v2 the v2 wording
/// (`v2`) or, where the v2 text still has it, v1's.
fn wordings(api: Api, v1: String, v2: String) -> Vec<String> {
    match api {
        Api::V1 => vec![v1],
        Api::V2 => vec![v2, v1],
    }
}

/// An input-error check: `mutate` breaks the probe request (it is given the member that
/// carries the hashes), the answer must be 400 invalid_request with one of `descriptions`.
pub(crate) fn input_error(
    api: Api,
    id: impl Into<String>,
    rule: impl Into<String>,
    descriptions: Vec<String>,
    mutate: fn(Value, &'static str) -> Value,
) -> Check {
    let run = move |ctx: &mut Ctx<'_>| {
        let (_, body) = probe(ctx)?;
        let m = ctx.hashes_member();
        let r = sign(ctx, &mutate(body, m))?;
        let pairs: Vec<(&str, Option<&str>)> = descriptions
            .iter()
            .map(|d| ("invalid_request", Some(d.as_str())))
            .collect();
        Ok(expect_error_any(&r, 400, &pairs))
    };
    labelled(api, check(id, S, rule, run))
}

/// Several hashes in one call.
pub(crate) fn batch(api: Api) -> Check {
    labelled(
        api,
        check(
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
                let r = sign_with(ctx, &cred, &sad, &hs, algo)?;
                let sigs = signatures(ctx.api, &r);
                let verified =
                    |id: &str| Outcome::pass(format!("credential {id}: both verify, in order"));
                if ctx.api == Api::V2 {
                    return Ok(match sigs {
                        Ok(sigs) => match verify_all(&cred, algo, &hs, &sigs) {
                            Ok(()) => verified(&cred.id),
                            Err(e) => {
                                Outcome::fail("2 signatures, each over its hash, in order", e)
                            }
                        },
                        Err(e) => Outcome::fail("200 with 2 signatures", e),
                    });
                }
                let sigs = match sigs {
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
                Ok(verified(&cred.id))
            },
        ),
    )
}

/// How many signatures a SAD allows (§9), hash binding at SCAL 2 and the digest length.
pub(crate) fn sad_checks(api: Api) -> Vec<Check> {
    let all = vec![
        check(
            "signhash.sad-replay",
            SAD_RULES,
            "a SAD for one signature that was used cannot be used again (replay refused)",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
                let h = crypto::fresh_digest(d, "replay");
                let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
                let body = ctx.sign_body(&cred, &sad, &[h], algo);
                let first = sign(ctx, &body)?;
                if signatures(ctx.api, &first).is_err() {
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
        ),
        check(
            "signhash.numSignatures-limit",
            SAD_RULES,
            "a SAD for one signature does not sign two hashes in one call",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
                let first = crypto::fresh_digest(d, "limit-0");
                let hs = vec![first.clone(), crypto::fresh_digest(d, "limit-1")];
                let sad = ctx.sad(&cred, 1, std::slice::from_ref(&first))?;
                let r = sign_with(ctx, &cred, &sad, &hs, algo)?;
                Ok(expect_refused(
                    &r,
                    "a refusal: 2 hashes under a SAD for 1 signature",
                ))
            },
        ),
        check(
            "signhash.numSignatures-across-calls",
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
                let first = sign_with(ctx, &cred, &sad, &hs[..1], algo)?;
                if signatures(ctx.api, &first).is_err() {
                    return Ok(Outcome::skip(format!(
                        "the first signHash failed: {}",
                        first.brief()
                    )));
                }
                let r = sign_with(ctx, &cred, &sad, &hs[1..], algo)?;
                Ok(expect_refused(
                    &r,
                    "a refusal: 2 more hashes when 1 signature remains",
                ))
            },
        ),
        check(
            "signhash.scal2-hash-binding",
            "§8.2 SCAL / §11.9 signatures/signHash",
            "at SCAL 2 a hash the SAD was not authorized for is refused",
            |ctx: &mut Ctx<'_>| {
                let (cred, algo, d) = signer(ctx, "of SCAL 2", |c| c.scal == 2)?;
                let bound = crypto::fresh_digest(d, "bound");
                let other = crypto::fresh_digest(d, "not-bound");
                let sad = ctx.sad(&cred, 1, &[bound])?;
                let r = sign_with(ctx, &cred, &sad, &[other], algo)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Hash is not authorized by the SAD."),
                ))
            },
        ),
        check(
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
                let r = sign_with(ctx, &cred, &sad, &[short], algo)?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Invalid digest value length"),
                ))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// The input errors: a missing or unknown SAD and credentialID, a missing, malformed or empty
/// hash list (v2 `hashes`, v1 `hash`), a missing or unknown signAlgo, and rsaEncryption
/// without its hash algorithm (v2 `hashAlgorithmOID`, v1 `hashAlgo`).
pub(crate) fn input_errors(api: Api) -> Vec<Check> {
    let one = |d: &str| vec![d.to_owned()];
    // the member that carries the hashes, and what the descriptions call it
    let m = match api {
        Api::V1 => "hash",
        Api::V2 => "hashes",
    };
    let missing_sad_rule = match api {
        Api::V1 => "a missing SAD is 400 invalid_request",
        Api::V2 => {
            "a missing SAD under a service-scope token (not a credential-scope one) is 400 invalid_request"
        }
    };
    let hash_words = |f: fn(&str) -> String| wordings(api, f("hash"), f(m));
    let mut all = vec![
        input_error(
            api,
            "signhash.missing-SAD",
            missing_sad_rule,
            one("Missing (or invalid type) string parameter SAD"),
            |v, _| without(v, "SAD"),
        ),
        input_error(
            api,
            "signhash.invalid-SAD",
            "an unknown SAD is 400 invalid_request",
            one("Invalid parameter SAD"),
            |v, _| with(v, "SAD", json!(bogus("SAD"))),
        ),
        input_error(
            api,
            "signhash.missing-credentialID",
            "a missing credentialID is 400 invalid_request",
            one("Missing (or invalid type) string parameter credentialID"),
            |v, _| without(v, "credentialID"),
        ),
        input_error(
            api,
            "signhash.unknown-credentialID",
            "an unknown credentialID is 400 invalid_request",
            one("Invalid parameter credentialID"),
            |v, _| with(v, "credentialID", json!(bogus("credential"))),
        ),
        input_error(
            api,
            format!("signhash.missing-{m}"),
            format!("a missing {m} is 400 invalid_request"),
            hash_words(|n| format!("Missing (or invalid type) array parameter {n}")),
            without,
        ),
        input_error(
            api,
            format!("signhash.{m}-not-array"),
            format!("a {m} that is not an array is 400 invalid_request"),
            hash_words(|n| format!("Missing (or invalid type) array parameter {n}")),
            |v, m| {
                let first = v
                    .get(m)
                    .and_then(|h| h.get(0))
                    .cloned()
                    .unwrap_or(Value::Null);
                with(v, m, first)
            },
        ),
        input_error(
            api,
            format!("signhash.empty-{m}"),
            format!("an empty {m} array is 400 invalid_request"),
            hash_words(|n| format!("Empty {n} array")),
            |v, m| with(v, m, json!([])),
        ),
        input_error(
            api,
            "signhash.invalid-base64",
            "a hash that is not base64 is 400 invalid_request",
            hash_words(|n| format!("Invalid Base64 {n} string parameter")),
            |v, m| with(v, m, json!(["@@not base64@@"])),
        ),
        input_error(
            api,
            "signhash.missing-signAlgo",
            "a missing signAlgo is 400 invalid_request",
            one("Missing (or invalid type) string parameter signAlgo"),
            |v, _| without(v, "signAlgo"),
        ),
        input_error(
            api,
            "signhash.invalid-signAlgo",
            "a signAlgo the credential does not allow is 400 invalid_request",
            one("Invalid parameter signAlgo"),
            |v, _| with(v, "signAlgo", json!("1.2.3.4.5")),
        ),
    ];
    let algo_member = match api {
        Api::V1 => "hashAlgo",
        Api::V2 => "hashAlgorithmOID",
    };
    all.push(labelled(
        api,
        check(
            format!("signhash.missing-{algo_member}"),
            S,
            format!(
                "signAlgo rsaEncryption (1.2.840.113549.1.1.1) without {algo_member} is 400 invalid_request"
            ),
            move |ctx: &mut Ctx<'_>| {
                let (_, body) = probe_where(ctx, "advertising rsaEncryption", |c| {
                    c.advertises(RSA_ENCRYPTION)
                })?;
                let r = sign(
                    ctx,
                    &with(without(body, algo_member), "signAlgo", json!(RSA_ENCRYPTION)),
                )?;
                let words = wordings(
                    ctx.api,
                    "Missing (or invalid type) string parameter hashAlgo".to_owned(),
                    format!("Missing (or invalid type) string parameter {algo_member}"),
                );
                let pairs: Vec<(&str, Option<&str>)> = words
                    .iter()
                    .map(|d| ("invalid_request", Some(d.as_str())))
                    .collect();
                Ok(expect_error_any(&r, 400, &pairs))
            },
        ),
    ));
    all
}

/// RSASSA-PSS without its parameters, and another user's token.
pub(crate) fn last_checks(api: Api) -> Vec<Check> {
    let all = vec![
        check(
            "signhash.missing-signAlgoParams",
            S,
            "signAlgo RSASSA-PSS (1.2.840.113549.1.1.10) without signAlgoParams is 400 invalid_request",
            |ctx: &mut Ctx<'_>| {
                let (_, body) =
                    probe_where(ctx, "advertising RSASSA-PSS", |c| c.advertises(RSASSA_PSS))?;
                let r = sign(ctx, &with(body, "signAlgo", json!(RSASSA_PSS)))?;
                Ok(expect_invalid_request(
                    &r,
                    Some("Missing (or invalid type) string parameter signAlgoParams"),
                ))
            },
        ),
        check(
            "signhash.other-user",
            S,
            "a SAD cannot be used with another user's token",
            |ctx: &mut Ctx<'_>| {
                let other = ctx.other_token()?;
                let (_, body) = probe(ctx)?;
                let r = ctx
                    .http
                    .post("signatures/signHash", Auth::Bearer(&other), &body);
                Ok(expect_invalid_request(&r, None))
            },
        ),
    ];
    all.into_iter().map(|c| labelled(api, c)).collect()
}

/// Every v1 check, in order; v2 (`v2::signhash`) puts its own checks among the shared ones.
pub fn checks() -> Vec<Check> {
    let api = Api::V1;
    let mut all = verify_checks(api);
    all.push(check(
        "signhash.hashAlgo-ignored",
        S,
        "a hashAlgo that the signAlgo already implies is ignored (\"omitted or ignored\"), not refused",
        |ctx: &mut Ctx<'_>| {
            let (cred, algo, d) = signer(ctx, "a credential that signs", |_| true)?;
            let h = crypto::fresh_digest(d, "hashalgo");
            let sad = ctx.sad(&cred, 1, std::slice::from_ref(&h))?;
            let body = with(ctx.sign_body(&cred, &sad, &[h], algo), "hashAlgo", json!(d.oid()));
            let r = sign(ctx, &body)?;
            Ok(Outcome::check(signatures(ctx.api, &r).is_ok_and(|s| s.len() == 1), "200 with one signature", r.brief()))
        },
    ));
    all.push(batch(api));
    all.extend(sad_checks(api));
    all.extend(input_errors(api));
    all.extend(last_checks(api));
    all
}
