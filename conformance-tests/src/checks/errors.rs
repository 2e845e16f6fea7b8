//! §10.1: every error answer the run collected carries the CSC error body.

use super::{Check, check};
use crate::ctx::Ctx;
use crate::http::Observed;
use crate::report::Outcome;

const S: &str = "§10.1 error messages";

fn judge(ctx: &mut Ctx<'_>, what: &str, bad: impl Fn(&Observed) -> Option<String>) -> Outcome {
    let seen = &ctx.http.errors;
    if seen.is_empty() {
        return Outcome::skip("the run saw no error answer");
    }
    let offending: Vec<String> = seen
        .iter()
        .filter_map(|o| bad(o).map(|why| format!("{} -> {why}", o.request)))
        .collect();
    match offending.first() {
        None => Outcome::pass(format!("all {} error answers", seen.len())),
        Some(first) => Outcome::fail(
            format!("every error answer {what}"),
            format!(
                "{} of {} are not, e.g. {first}",
                offending.len(),
                seen.len()
            ),
        ),
    }
}

pub fn checks() -> Vec<Check> {
    vec![
        check(
            "error.json-body",
            S,
            "every error answer is a JSON object with a string error (and error_description, if any, a string)",
            |ctx: &mut Ctx<'_>| {
                Ok(judge(ctx, "has a JSON body with error", |o| {
                    let ok = o.resp.json.as_ref().is_some_and(|v| {
                        v.get("error")
                            .is_some_and(|e| e.as_str().is_some_and(|e| !e.is_empty()))
                            && v.get("error_description").is_none_or(|d| d.is_string())
                    });
                    (!ok).then(|| o.resp.brief())
                }))
            },
        ),
        check(
            "error.content-type",
            S,
            "every error answer is sent as application/json",
            |ctx: &mut Ctx<'_>| {
                Ok(judge(ctx, "is application/json", |o| {
                    (!o.resp.is_json_content_type()).then(|| {
                        format!(
                            "{} as {}",
                            o.resp.status,
                            o.resp
                                .content_type
                                .as_deref()
                                .unwrap_or("(no Content-Type)")
                        )
                    })
                }))
            },
        ),
    ]
}
