//! Validation of an authorization request (RFC 6749 §4.1.1, RFC 7636, spec §8.3.2) once its
//! client and redirect URI are known to be good.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sam::{CredentialId, OAuthClient};
use serde::{Deserialize, Serialize};

use crate::oauth2::Params;
use crate::oauth2::rar::{self, CredentialChoice, CredentialDetails};

/// The most hashes one request may carry (it must fit a URL anyway).
const MAX_HASHES: usize = 64;

/// The validated request, kept server-side while the signer is on the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// `service` or `credential`.
    pub scope: String,
    /// Where the answer goes (the request's, or the client's default).
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub credential_id: Option<String>,
    pub num_signatures: Option<i64>,
    /// base64url without padding, as shown to the signer.
    pub hashes: Vec<String>,
    pub description: Option<String>,
    /// `authorization_details` (RFC 9396, CSC v2 §8.4), when the request carried them or the
    /// plain CSC v2 parameters (`hashes`, ...: their equivalent element, [`rar::from_params`]):
    /// then `hashes` and `num_signatures` are its digests and their count, and `credential_id`
    /// is the one it names (`None` when a `signatureQualifier` lets the signer choose).
    #[serde(default)]
    pub authorization_details: Option<CredentialDetails>,
    /// A pushed request (RFC 9126) waiting for its `request_uri`: never a page's form.
    #[serde(default)]
    pub pushed: bool,
}

/// `hash`: base64url values, comma-separated (padding and standard base64 tolerated).
fn parse_hashes(value: &str) -> Option<Vec<Vec<u8>>> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.len() > MAX_HASHES {
        return None;
    }
    items
        .iter()
        .map(|h| {
            let h = h.trim_end_matches('=');
            URL_SAFE_NO_PAD
                .decode(h)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(h))
                .ok()
                .filter(|d| !d.is_empty())
        })
        .collect()
}

/// CSC v2 §8.4.2: `code_challenge` is REQUIRED of every v2 credential request (as
/// `authorization_details` or as the plain v2 parameters), whatever the client; its method
/// (S256 only) is checked with the other PKCE parameters. RFC 9700 §2.1.1 recommends PKCE for
/// confidential clients too; v1 requests keep v1's rule (required of public clients).
fn require_pkce(code_challenge: Option<&String>) -> Result<(), (&'static str, String)> {
    match code_challenge {
        Some(_) => Ok(()),
        None => Err((
            "invalid_request",
            "Missing parameter code_challenge: a CSC v2 request must use PKCE (S256)".into(),
        )),
    }
}

/// Validates a request after the client and redirect URI are known to be good; an `Err` is
/// the `(error, error_description)` of the redirect.
pub(crate) fn validate(
    p: &Params,
    client: &OAuthClient,
    redirect_uri: String,
    redirect_uri_given: bool,
) -> Result<Pending, (&'static str, String)> {
    let bad = |d: &str| ("invalid_request", d.to_owned());
    match p.get("response_type") {
        None => return Err(bad("Missing parameter response_type")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "Only response_type code is supported".into(),
            ));
        }
    }
    let scope = match p.get("scope") {
        None | Some("service") => "service",
        Some("credential") => "credential",
        Some(_) => return Err(("invalid_scope", "Invalid parameter scope".into())),
    };
    let state = p.get("state").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > 255) {
        return Err(bad("Invalid parameter state"));
    }
    // PKCE (RFC 7636): S256 only; required of public clients
    let code_challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, None) if client.is_confidential() => None,
        (None, None) => {
            return Err(bad(
                "Missing parameter code_challenge: a public client must use PKCE (S256)",
            ));
        }
        (None, Some(_)) => return Err(bad("Missing parameter code_challenge")),
        (Some(_), method) if method != Some("S256") => {
            return Err(bad("Invalid parameter code_challenge_method: only S256"));
        }
        (Some(c), _) => {
            if c.len() != 43 || URL_SAFE_NO_PAD.decode(c).is_err() {
                return Err(bad("Invalid parameter code_challenge"));
            }
            Some(c.to_owned())
        }
    };
    let description = p.get("description").map(str::to_owned);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(bad("Invalid parameter description"));
    }
    // the credential request of CSC v2 §8.4, as `authorization_details` (RFC 9396) or as the
    // plain v2 parameters (`hashes`, ...: the same request, rar.rs), with the error code of
    // its refusals
    let details = match p.get("authorization_details") {
        Some(value) => {
            // RAR replaces the v1 CSC parameters and is for credential authorization only
            if p.get("scope") == Some("service") {
                return Err(bad(
                    "authorization_details cannot be combined with scope service",
                ));
            }
            for name in [
                "credentialID",
                "numSignatures",
                "hash",
                "hashes",
                "signatureQualifier",
                "hashAlgorithmOID",
            ] {
                if p.get(name).is_some() {
                    return Err(bad(&format!(
                        "Invalid parameter {name}: not with authorization_details"
                    )));
                }
            }
            require_pkce(code_challenge.as_ref())?;
            Some((rar::parse(value).map_err(|d| (rar::ERROR, d))?, rar::ERROR))
        }
        None => {
            if let Some(name) = rar::plain_v2(p) {
                if scope != "credential" {
                    return Err(bad(&format!(
                        "Invalid parameter {name}: only for scope credential"
                    )));
                }
                require_pkce(code_challenge.as_ref())?;
            }
            rar::from_params(p)
                .map_err(|d| bad(&d))?
                .map(|d| (d, "invalid_request"))
        }
    };
    if let Some((d, error)) = details {
        let credential_id = match &d.credential {
            CredentialChoice::Id(id) => Some(
                id.parse::<CredentialId>()
                    .map_err(|_| (error, "Invalid parameter credentialID".to_owned()))?
                    .to_string(),
            ),
            CredentialChoice::Qualifier(_) => None,
        };
        return Ok(Pending {
            scope: "credential".into(),
            redirect_uri,
            redirect_uri_given,
            state,
            code_challenge,
            credential_id,
            num_signatures: Some(d.signatures()),
            hashes: d.digests.clone(),
            description,
            authorization_details: Some(d),
            pushed: false,
        });
    }
    let (credential_id, num_signatures, hashes) = if scope == "credential" {
        let id = p
            .get("credentialID")
            .ok_or_else(|| bad("Missing parameter credentialID"))?;
        let id: CredentialId = id
            .parse()
            .map_err(|_| bad("Invalid parameter credentialID"))?;
        let n = p
            .get("numSignatures")
            .ok_or_else(|| bad("Missing parameter numSignatures"))?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("Invalid parameter numSignatures"))?;
        let hashes = match p.get("hash") {
            None => vec![],
            Some(h) => parse_hashes(h).ok_or_else(|| bad("Invalid parameter hash"))?,
        };
        (
            Some(id.to_string()),
            Some(n),
            hashes.iter().map(|h| URL_SAFE_NO_PAD.encode(h)).collect(),
        )
    } else {
        for name in ["credentialID", "numSignatures", "hash"] {
            if p.get(name).is_some() {
                return Err(bad(&format!(
                    "Invalid parameter {name}: only for scope credential"
                )));
            }
        }
        (None, None, vec![])
    };
    Ok(Pending {
        scope: scope.into(),
        redirect_uri,
        redirect_uri_given,
        state,
        code_challenge,
        credential_id,
        num_signatures,
        hashes,
        description,
        authorization_details: None,
        pushed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_comma_separated_base64url() {
        let h = parse_hashes("AAEC,_-8").expect("parse");
        assert_eq!(h, vec![vec![0, 1, 2], vec![0xff, 0xef]]);
        assert!(parse_hashes("AA==,").is_none(), "an empty element");
        assert!(parse_hashes("%%%").is_none());
    }
}
