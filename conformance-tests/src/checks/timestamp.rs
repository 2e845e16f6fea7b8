//! §11.10 signatures/timestamp (v2 §11.13 is the same method; the v2 catalogue runs these
//! checks again under that clause): the answer is an RFC 3161 time-stamp token (RFC 5816) over
//! the hash and algorithm sent, echoing the nonce, dated now, signed by a certificate fit for
//! time-stamping (RFC 3161 §2.3), with a fresh serial number each time; and the exact input
//! errors of the §11.10 table. The method is optional: every check is skipped, with the reason,
//! when `info.methods` does not list it.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{Check, bogus, check};
use crate::crypto::{self, Digest};
use crate::ctx::{Ctx, Need, expect_error_any, expect_invalid_request, with, without};
use crate::http::{Auth, Resp};
use crate::report::Outcome;
use crate::tsp::{self, Token};

const S: &str = "§11.10 signatures/timestamp";
const METHOD: &str = "signatures/timestamp";

/// How far `genTime` may be from the suite's clock. Generous, so that neither a slow server
/// nor a drifting clock fails the check, yet a token from another hour does.
const GEN_TIME_TOLERANCE: Duration = Duration::from_secs(10 * 60);

/// One time-stamp request: a fresh digest, its algorithm and, when set, a hex nonce.
#[derive(Debug, Clone)]
struct Asked {
    digest: Digest,
    hash: Vec<u8>,
    nonce: Option<String>,
}

impl Asked {
    fn new(digest: Digest, label: &str) -> Asked {
        Asked {
            digest,
            hash: crypto::fresh_digest(digest, label),
            nonce: None,
        }
    }

    /// With a random 128-bit nonce whose first bit is set, so that a server that encodes it
    /// as a negative INTEGER (no leading zero octet) is caught.
    fn with_nonce(mut self) -> Asked {
        let mut n = [0u8; 16];
        let _ = openssl::rand::rand_bytes(&mut n);
        if let Some(first) = n.first_mut() {
            *first |= 0x80;
        }
        self.nonce = Some(tsp::hex(&n));
        self
    }

    fn body(&self) -> Value {
        let body = json!({ "hash": crypto::b64(&self.hash), "hashAlgo": self.digest.oid() });
        match &self.nonce {
            Some(n) => with(body, "nonce", json!(n)),
            None => body,
        }
    }
}

/// The token of a 200 answer, parsed; what was wrong otherwise.
fn token_of(r: &Resp) -> Result<Token, String> {
    if r.status != 200 {
        return Err(r.brief());
    }
    let text = r
        .str("timestamp")
        .ok_or_else(|| format!("no timestamp string: {}", r.brief()))?;
    let der = crypto::unb64(text).map_err(|e| format!("timestamp is {e}"))?;
    Token::parse(&der)
}

/// Sends `body` to signatures/timestamp with the identity's token; skipped when the method is
/// not listed.
fn call(ctx: &mut Ctx<'_>, body: &Value) -> Need<Resp> {
    ctx.listed(METHOD)?;
    ctx.call(METHOD, body)
}

/// A token for `asked`, or the failed outcome saying what came instead.
fn stamp(ctx: &mut Ctx<'_>, asked: &Asked) -> Need<Result<Token, Outcome>> {
    let r = call(ctx, &asked.body())?;
    Ok(token_of(&r).map_err(|e| {
        Outcome::fail(
            "200 with a base64 DER time-stamp token (ContentInfo, SignedData, TSTInfo)",
            e,
        )
    }))
}

/// A check on one token over a fresh SHA-256 digest (with a nonce when `nonce`).
fn token_check(
    id: &'static str,
    rule: &'static str,
    nonce: bool,
    judge: fn(&Asked, &Token) -> Outcome,
) -> Check {
    check(id, S, rule, move |ctx: &mut Ctx<'_>| {
        let mut asked = Asked::new(Digest::Sha256, id);
        if nonce {
            asked = asked.with_nonce();
        }
        Ok(match stamp(ctx, &asked)? {
            Ok(token) => judge(&asked, &token),
            Err(failed) => failed,
        })
    })
}

/// The imprint check for one hash algorithm. SHA-256 must be served (the method's own
/// sample uses it); another algorithm refused as `Invalid parameter hashAlgo` is skipped.
fn imprint_check(name: &'static str, digest: Digest) -> Check {
    check(
        format!("timestamp.messageImprint.{name}"),
        S,
        format!(
            "the token's TSTInfo messageImprint is the {name} hash sent, with hashAlgorithm {} (RFC 3161 §2.4.2)",
            digest.oid()
        ),
        move |ctx: &mut Ctx<'_>| {
            let asked = Asked::new(digest, name);
            let r = call(ctx, &asked.body())?;
            if digest != Digest::Sha256
                && r.status == 400
                && r.str("error_description") == Some("Invalid parameter hashAlgo")
            {
                return Ok(Outcome::skip(format!(
                    "the server does not time-stamp {name} hashes: {}",
                    r.brief()
                )));
            }
            let token = match token_of(&r) {
                Ok(t) => t,
                Err(e) => return Ok(Outcome::fail("200 with a time-stamp token", e)),
            };
            let (oid, params_ok, hashed) = token.imprint();
            Ok(if oid != digest.oid() {
                Outcome::fail(format!("hashAlgorithm {}", digest.oid()), oid)
            } else if !params_ok {
                Outcome::fail(
                    "hashAlgorithm parameters absent or NULL",
                    "other parameters",
                )
            } else if hashed != asked.hash {
                Outcome::fail(
                    format!("hashedMessage {}", tsp::hex(&asked.hash)),
                    tsp::hex(&hashed),
                )
            } else {
                Outcome::pass(format!("{oid}, {}", tsp::hex(&hashed)))
            })
        },
    )
}

fn judge_token(_: &Asked, token: &Token) -> Outcome {
    Outcome::pass(format!(
        "TSTInfo v1, serial {}, genTime {}",
        tsp::hex(&token.serial()),
        token.gen_time_text()
    ))
}

fn judge_nonce(asked: &Asked, token: &Token) -> Outcome {
    let sent = asked.nonce.as_deref().unwrap_or_default();
    let want: Vec<u8> = tsp::unhex(sent)
        .unwrap_or_default()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let expected = format!("the nonce 0x{sent} as a positive INTEGER");
    match token.nonce() {
        None => Outcome::fail(expected, "a token without a nonce"),
        Some((_, true)) => Outcome::fail(expected, "a negative nonce (no leading zero octet)"),
        Some((got, false)) if got == want => Outcome::pass(format!("nonce 0x{sent} echoed")),
        Some((got, false)) => Outcome::fail(expected, format!("0x{}", tsp::hex(&got))),
    }
}

fn judge_gen_time(_: &Asked, token: &Token) -> Outcome {
    let now = SystemTime::now();
    match token.gen_time() {
        Err(e) => Outcome::fail("a GeneralizedTime genTime", e),
        Ok(t) => {
            let off = tsp::distance(t, now);
            Outcome::check(
                off <= GEN_TIME_TOLERANCE,
                format!(
                    "genTime within {} minutes of the suite's clock ({} s since the epoch)",
                    GEN_TIME_TOLERANCE.as_secs() / 60,
                    tsp::unix(now)
                ),
                format!(
                    "genTime {} ({} s away)",
                    token.gen_time_text(),
                    off.as_secs()
                ),
            )
        }
    }
}

/// The signer certificate, or the outcome for a token without one (skip) or with a signer
/// that is not among its certificates (fail).
fn signer_of(token: &Token) -> Result<x509_cert::Certificate, Outcome> {
    match token.signer_certificate() {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Outcome::skip(
            "the token carries no certificate to verify with (the method has no certReq)",
        )),
        Err(e) => Err(Outcome::fail(
            "the SignerInfo's certificate among the token's certificates",
            e,
        )),
    }
}

fn judge_signature(_: &Asked, token: &Token) -> Outcome {
    let signer = match signer_of(token) {
        Ok(c) => c,
        Err(o) => return o,
    };
    match token.verify_with(&signer) {
        Ok(()) => Outcome::pass(format!("verified under {}", tsp::subject(&signer))),
        Err(e) => Outcome::fail(
            "a SignedData whose messageDigest and signature verify under the signer certificate",
            e,
        ),
    }
}

fn judge_eku(_: &Asked, token: &Token) -> Outcome {
    let signer = match signer_of(token) {
        Ok(c) => c,
        Err(o) => return o,
    };
    match tsp::timestamping_eku(&signer) {
        Ok(()) => Outcome::pass(format!(
            "{}: extendedKeyUsage timeStamping, critical",
            tsp::subject(&signer)
        )),
        Err(e) => Outcome::fail(
            "one critical extendedKeyUsage extension with id-kp-timeStamping only",
            format!("{}: {e}", tsp::subject(&signer)),
        ),
    }
}

/// An input-error check: `mutate` breaks a valid request, the answer must be exactly
/// `description` (the §11.10 table).
fn input_error(
    id: &'static str,
    rule: &'static str,
    description: &'static str,
    mutate: fn(Value) -> Value,
) -> Check {
    check(id, S, rule, move |ctx: &mut Ctx<'_>| {
        let body = mutate(Asked::new(Digest::Sha256, id).body());
        let r = call(ctx, &body)?;
        Ok(expect_invalid_request(&r, Some(description)))
    })
}

pub fn checks() -> Vec<Check> {
    let mut all = vec![token_check(
        "timestamp.token",
        "the answer is 200 with timestamp: a base64 DER TimeStampToken, a CMS ContentInfo of SignedData whose eContentType is id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4) holding a TSTInfo v1 (RFC 3161 §2.4.2)",
        false,
        judge_token,
    )];
    all.extend([
        imprint_check("sha256", Digest::Sha256),
        imprint_check("sha384", Digest::Sha384),
        imprint_check("sha512", Digest::Sha512),
    ]);
    all.push(token_check(
        "timestamp.nonce",
        "the nonce sent (hex) is in the token, the same positive INTEGER (\"it SHALL also be included in the time-stamp token\")",
        true,
        judge_nonce,
    ));
    all.push(token_check(
        "timestamp.genTime",
        "the token's genTime is now (within 10 minutes of the suite's clock)",
        false,
        judge_gen_time,
    ));
    all.push(token_check(
        "timestamp.signature",
        "the token's SignedData verifies under its signer certificate (signed attributes' messageDigest over the TSTInfo, signature under the certificate's key)",
        true,
        judge_signature,
    ));
    all.push(token_check(
        "timestamp.signer-eku",
        "the signer certificate has one extendedKeyUsage extension, critical, with id-kp-timeStamping only (RFC 3161 §2.3)",
        false,
        judge_eku,
    ));
    all.push(check(
        "timestamp.serial-unique",
        S,
        "two tokens for the same hash carry different serial numbers (RFC 3161 §2.4.2)",
        |ctx: &mut Ctx<'_>| {
            let asked = Asked::new(Digest::Sha256, "serial");
            let first = match stamp(ctx, &asked)? {
                Ok(t) => t,
                Err(failed) => return Ok(failed),
            };
            let second = match stamp(ctx, &asked)? {
                Ok(t) => t,
                Err(failed) => return Ok(failed),
            };
            let (a, b) = (first.serial(), second.serial());
            Ok(Outcome::check(
                a != b,
                "two different serial numbers",
                format!("{} and {}", tsp::hex(&a), tsp::hex(&b)),
            ))
        },
    ));
    all.push(check(
        "timestamp.clientData",
        S,
        "a request with clientData (optional, a string) is served",
        |ctx: &mut Ctx<'_>| {
            let asked = Asked::new(Digest::Sha256, "clientData");
            let body = with(asked.body(), "clientData", json!(bogus("clientData")));
            let r = call(ctx, &body)?;
            Ok(match token_of(&r) {
                Ok(_) => Outcome::pass("200 with a time-stamp token"),
                Err(e) => Outcome::fail("200 with a time-stamp token", e),
            })
        },
    ));
    all.push(input_error(
        "timestamp.missing-hash",
        "a missing hash is 400 invalid_request",
        "Missing (or invalid type) string parameter hash",
        |v| without(v, "hash"),
    ));
    all.push(input_error(
        "timestamp.hash-not-string",
        "a hash that is not a string (an array, as signHash takes) is 400 invalid_request",
        "Missing (or invalid type) string parameter hash",
        |v| {
            let h = v.get("hash").cloned().unwrap_or(Value::Null);
            with(v, "hash", json!([h]))
        },
    ));
    all.push(input_error(
        "timestamp.empty-hash",
        "an empty hash is 400 invalid_request",
        "Empty hash parameter",
        |v| with(v, "hash", json!("")),
    ));
    all.push(input_error(
        "timestamp.invalid-base64",
        "a hash that is not base64 is 400 invalid_request",
        "Invalid Base64 hash string parameter",
        |v| with(v, "hash", json!("@@not base64@@")),
    ));
    all.push(input_error(
        "timestamp.digest-length",
        "a hash whose length does not fit hashAlgo (20 octets for SHA-256) is 400 invalid_request",
        "Invalid digest value length",
        |v| with(v, "hash", json!(crypto::b64(&[0x5a; 20]))),
    ));
    all.push(input_error(
        "timestamp.invalid-hashAlgo",
        "a hashAlgo that is no hash algorithm is 400 invalid_request",
        "Invalid parameter hashAlgo",
        |v| with(v, "hashAlgo", json!("1.2.3.4.5")),
    ));
    all.push(check(
        "timestamp.missing-hashAlgo",
        S,
        "a missing hashAlgo is 400 invalid_request (the §11.10 table has no row of its own: the common \"Missing (or invalid type)\" text or \"Invalid parameter hashAlgo\")",
        |ctx: &mut Ctx<'_>| {
            let body = without(Asked::new(Digest::Sha256, "no-hashAlgo").body(), "hashAlgo");
            let r = call(ctx, &body)?;
            Ok(expect_error_any(
                &r,
                400,
                &[
                    (
                        "invalid_request",
                        Some("Missing (or invalid type) string parameter hashAlgo"),
                    ),
                    ("invalid_request", Some("Invalid parameter hashAlgo")),
                ],
            ))
        },
    ));
    all.push(input_error(
        "timestamp.invalid-nonce",
        "a nonce that is not a hex number is 400 invalid_request",
        "Invalid parameter nonce",
        |v| with(v, "nonce", json!("not-a-hex-nonce")),
    ));
    all.push(check(
        "timestamp.unknown-token",
        "§10 Table 2",
        "signatures/timestamp with a well-formed but unknown bearer token is refused with 401",
        |ctx: &mut Ctx<'_>| {
            ctx.listed(METHOD)?;
            let token = bogus("token");
            let body = Asked::new(Digest::Sha256, "unknown-token").body();
            let r = ctx.http.post(METHOD, Auth::Bearer(&token), &body);
            Ok(Outcome::check(
                r.status == 401,
                "401 (bad or expired authorization token), not a token",
                r.brief(),
            ))
        },
    ));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_what_the_method_takes() {
        let asked = Asked::new(Digest::Sha384, "t").with_nonce();
        let body = asked.body();
        assert_eq!(body["hashAlgo"], "2.16.840.1.101.3.4.2.2");
        assert_eq!(
            crypto::unb64(body["hash"].as_str().unwrap_or_default()).map(|h| h.len()),
            Ok(48)
        );
        let nonce = body["nonce"].as_str().unwrap_or_default();
        assert_eq!(nonce.len(), 32);
        assert!(nonce.starts_with(['8', '9', 'a', 'b', 'c', 'd', 'e', 'f']));
        assert!(
            Asked::new(Digest::Sha256, "t")
                .body()
                .get("nonce")
                .is_none()
        );
    }

    #[test]
    fn every_check_names_the_timestamp_clause() {
        for c in checks() {
            assert!(c.id.starts_with("timestamp."), "{}", c.id);
            assert!(c.section == S || c.section == "§10 Table 2", "{}", c.id);
        }
    }
}
