//! v2 §11.10 signatures/signHash (and v2 §9 on how many signatures a SAD allows): the checks
//! v1 has, built for v2 by [`crate::checks::signhash`] (`hashes` with `hashAlgorithmOID`, and
//! either wording where the v2 text still has v1's `hash`, `hashAlgo`), and what is v2's own:
//! `hashAlgorithmOID` implied by the signAlgo or naming no hash, and `operationMode`.

use serde_json::{Value, json};

use crate::Api;
use crate::checks::signhash::{
    batch, input_error, input_errors, last_checks, probe, probe_where, sad_checks, sign,
    signatures, signer, verify_all, verify_checks,
};
use crate::checks::{Check, RSA_ENCRYPTION, check};
use crate::crypto;
use crate::ctx::{Ctx, expect_error_any, expect_invalid_request, member, with, without};
use crate::report::Outcome;

const S: &str = "v2 §11.10 signatures/signHash";

/// Whether `info` says the server runs asynchronous operations.
fn asynchronous(ctx: &mut Ctx<'_>) -> bool {
    ctx.info()
        .ok()
        .is_some_and(|i| member(&i, &["asynchronousOperationMode"]).as_bool() == Some(true))
}

/// One hash signed with `extra` added to the request (`None`: `hashAlgorithmOID` left out):
/// one signature that verifies.
fn one_signature(ctx: &mut Ctx<'_>, label: &str, extra: Option<(&str, Value)>) -> Outcome {
    let (cred, algo, d) = match signer(ctx, "a credential that signs", |_| true) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let h = crypto::fresh_digest(d, label);
    let sad = match ctx.sad(&cred, 1, std::slice::from_ref(&h)) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let body = ctx.sign_body(&cred, &sad, std::slice::from_ref(&h), algo);
    let body = match extra {
        Some((name, value)) => with(body, name, value),
        None => without(body, "hashAlgorithmOID"),
    };
    let r = match sign(ctx, &body) {
        Ok(r) => r,
        Err(o) => return o,
    };
    match signatures(Api::V2, &r) {
        Ok(sigs) => match verify_all(&cred, algo, &[h], &sigs) {
            Ok(()) => Outcome::pass(format!("credential {}: verified", cred.id)),
            Err(e) => Outcome::fail("one signature that verifies", e),
        },
        Err(e) => Outcome::fail("200 with one signature", e),
    }
}

/// Every v2 check, in the order they run.
pub fn checks() -> Vec<Check> {
    let api = Api::V2;
    let mut all = verify_checks(api);
    all.push(check(
        "v2.signhash.hashAlgorithmOID-implied",
        S,
        "hashAlgorithmOID may be omitted when the signAlgo implies the hash",
        |ctx: &mut Ctx<'_>| Ok(one_signature(ctx, "implied", None)),
    ));
    all.push(batch(api));
    all.push(check(
        "v2.signhash.operationMode-S",
        S,
        "operationMode S (synchronous, the default) gives the signatures at once",
        |ctx: &mut Ctx<'_>| {
            Ok(one_signature(
                ctx,
                "sync",
                Some(("operationMode", json!("S"))),
            ))
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
            Ok(expect_invalid_request(&r, Some("Invalid parameter operationMode")))
        },
    ));
    all.push(input_error(
        api,
        "signhash.invalid-operationMode",
        "an operationMode other than S or A is 400 invalid_request",
        vec!["Invalid parameter operationMode".to_owned()],
        |v, _| with(v, "operationMode", json!("X")),
    ));
    all.extend(sad_checks(api));
    all.extend(input_errors(api));
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
    all.extend(last_checks(api));
    all
}
