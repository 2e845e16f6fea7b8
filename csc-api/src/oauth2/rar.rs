//! `authorization_details` (RFC 9396) of the CSC v2 types `credential` and
//! `https://cloudsignatureconsortium.org/2025/credential` (CSC v2 §8.4):
//! parsed strictly into what the consent page shows and the SAD binds.
//!
//! Decisions where the sources are silent or leave a choice:
//! * exactly one element (one credential per authorization; RFC 9396 allows several, CSC
//!   describes one);
//! * members: `type`, `credentialID` xor `signatureQualifier`, `documentDigests` (required,
//!   1..=64, each `{hash, label?}`), `hashAlgorithmOID` (required: SHA-256/384/512),
//!   `numSignatures` (optional; when given it must equal the number of digests: each consented
//!   digest is one signature), `locations` (the RFC 9396 §2 common member, accepted and echoed,
//!   not interpreted). Any other member is refused (RFC 9396 §5: details "not conforming to
//!   the respective type definition"): a client that adds a restriction we would not enforce
//!   must not believe it was granted;
//! * `hash`: base64, standard or URL-safe alphabet, padding optional; its length must be the
//!   digest length of `hashAlgorithmOID`; `label` at most 500 characters (shown HTML-escaped).
//!
//! Every refusal is `invalid_authorization_details` (RFC 9396 §5) with a description naming
//! the member.
//!
//! The plain CSC v2 parameters (`credentialID` or `signatureQualifier`, `numSignatures`,
//! `hashes`, `hashAlgorithmOID`; CSC v2 §8.4.2) are the same request in another form:
//! [`from_params`] turns them into the equivalent element (type `credential`, digests without
//! labels) through the same validation, so both forms share the consent page, the grant and the
//! `Bearer` token answer (which echoes the approved element in either case: one answer shape
//! for every v2 credential token, telling the client what was approved; RFC 6749 §5.1 has
//! clients ignore members they do not know). Their refusals are `invalid_request`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use sam::HashAlg;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Params;

/// The two `type` values accepted (CSC v2.0 and v2.2 spellings).
pub const TYPES: [&str; 2] = [
    "credential",
    "https://cloudsignatureconsortium.org/2025/credential",
];

/// RFC 9396 §5's error code.
pub const ERROR: &str = "invalid_authorization_details";

/// The most document digests one authorization may carry.
const MAX_DIGESTS: usize = 64;
/// The longest label or qualifier accepted.
const MAX_LABEL_CHARS: usize = 500;

/// One document to sign: its digest as the client sent it and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentDigest {
    /// base64 as sent (echoed as sent).
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// What the credential is chosen by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialChoice {
    /// `credentialID`: the client named it.
    Id(String),
    /// `signatureQualifier`: the signer chooses among their credentials on the consent page.
    Qualifier(String),
}

/// A validated `authorization_details` element (kept in the pending request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDetails {
    /// `type` as sent (one of [`TYPES`]).
    pub kind: String,
    pub credential: CredentialChoice,
    pub documents: Vec<DocumentDigest>,
    /// `hashAlgorithmOID` as sent.
    pub hash_algorithm_oid: String,
    /// `numSignatures` as sent, if it was.
    pub num_signatures: Option<i64>,
    /// `locations` as sent, if it was.
    pub locations: Option<Vec<String>>,
    /// The decoded digests, in order, base64url without padding (what the SAD binds).
    pub digests: Vec<String>,
}

/// The wire form of one element (strict: unknown members refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "credentialID")]
    credential_id: Option<String>,
    #[serde(rename = "signatureQualifier")]
    signature_qualifier: Option<String>,
    #[serde(rename = "documentDigests")]
    document_digests: Option<Vec<WireDigest>>,
    #[serde(rename = "hashAlgorithmOID")]
    hash_algorithm_oid: Option<String>,
    #[serde(rename = "numSignatures")]
    num_signatures: Option<Value>,
    locations: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDigest {
    hash: String,
    label: Option<String>,
}

/// A refusal: the `error_description` of `invalid_authorization_details`.
pub type Refusal = String;

/// Decodes base64 in either alphabet, padding optional.
fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

fn bounded(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_LABEL_CHARS
}

/// Where a credential request came from: how its refusals name the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An `authorization_details` element.
    Details,
    /// The plain CSC v2 parameters of `oauth2/authorize` (`hashes`, `hashAlgorithmOID`, ...).
    Plain,
}

impl Form {
    /// Where a missing member was looked for (`" in authorization_details"`, or nothing).
    fn within(self) -> &'static str {
        match self {
            Form::Details => " in authorization_details",
            Form::Plain => "",
        }
    }

    /// The digests' member.
    fn digests(self) -> &'static str {
        match self {
            Form::Details => "documentDigests",
            Form::Plain => "hashes",
        }
    }

    /// One digest.
    fn hash(self) -> &'static str {
        match self {
            Form::Details => "hash in documentDigests",
            Form::Plain => "hashes",
        }
    }

    /// The request as a whole.
    fn request(self) -> &'static str {
        match self {
            Form::Details => "authorization_details",
            Form::Plain => "The request",
        }
    }
}

/// Parses the `authorization_details` parameter (a JSON array of one element).
pub fn parse(value: &str) -> Result<CredentialDetails, Refusal> {
    let elements: Vec<Value> = serde_json::from_str(value)
        .map_err(|_| "authorization_details must be a JSON array".to_owned())?;
    let [element] = <[Value; 1]>::try_from(elements)
        .map_err(|_| "authorization_details must hold exactly one element".to_owned())?;
    let kind = element
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| "Missing parameter type in authorization_details".to_owned())?;
    if !TYPES.contains(&kind) {
        return Err(format!("Unsupported authorization_details type {kind}"));
    }
    // the member is named, never its value
    if let Some(member) = unknown_member(&element) {
        return Err(format!(
            "Unsupported member {member} in authorization_details"
        ));
    }
    let w: Wire = serde_json::from_value(element)
        .map_err(|_| "Malformed authorization_details".to_owned())?;
    check(w, Form::Details)
}

/// The members an element may carry: the fields of [`Wire`].
const MEMBERS: [&str; 7] = [
    "type",
    "credentialID",
    "signatureQualifier",
    "documentDigests",
    "hashAlgorithmOID",
    "numSignatures",
    "locations",
];

/// The members a `documentDigests` entry may carry: the fields of [`WireDigest`].
const DIGEST_MEMBERS: [&str; 2] = ["hash", "label"];

/// The first member of the element, or of one of its `documentDigests` entries, that is not
/// one of [`MEMBERS`] / [`DIGEST_MEMBERS`].
fn unknown_member(element: &Value) -> Option<&str> {
    let top = element.as_object()?;
    let entries = top
        .get("documentDigests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object);
    top.keys()
        .find(|k| !MEMBERS.contains(&k.as_str()))
        .or_else(|| {
            entries
                .flat_map(|d| d.keys())
                .find(|k| !DIGEST_MEMBERS.contains(&k.as_str()))
        })
        .map(String::as_str)
}

/// The parameters only a CSC v2 credential request has (CSC v2 §8.4.2): a request with any
/// of them is one ([`from_params`]).
pub const PLAIN_V2: [&str; 3] = ["hashes", "hashAlgorithmOID", "signatureQualifier"];

/// The first of [`PLAIN_V2`] the request carries: `Some` for a plain CSC v2 credential request.
pub fn plain_v2(p: &Params) -> Option<&'static str> {
    PLAIN_V2.into_iter().find(|n| p.get(n).is_some())
}

/// The plain CSC v2 parameters of `oauth2/authorize` (CSC v2 §8.4.2) as the
/// equivalent `authorization_details` element, so that both forms take one path (consent
/// page, grant, `Bearer` token): `None` when the request has none of [`PLAIN_V2`] (a v1 or
/// service request). `credentialID` xor `signatureQualifier`; `hashes` (required here, as
/// `documentDigests` is: comma-separated base64url, standard base64 and padding tolerated);
/// `hashAlgorithmOID` (required with `hashes`); `numSignatures` (optional; when given it must
/// equal the number of hashes). The v1 `hash` does not mix with them. A refusal is the
/// `error_description` of an `invalid_request` (the caller's: no `authorization_details` were
/// sent); `scope`, PKCE and `authorization_details` itself are the caller's to check.
pub fn from_params(p: &Params) -> Result<Option<CredentialDetails>, Refusal> {
    let Some(v2) = plain_v2(p) else {
        return Ok(None);
    };
    if p.get("hash").is_some() {
        return Err(format!("Invalid parameter hash: not with {v2}"));
    }
    let w = Wire {
        kind: "credential".into(),
        credential_id: p.get("credentialID").map(str::to_owned),
        signature_qualifier: p.get("signatureQualifier").map(str::to_owned),
        document_digests: p.get("hashes").map(|h| {
            h.split(',')
                .map(|hash| WireDigest {
                    hash: hash.trim().to_owned(),
                    label: None,
                })
                .collect()
        }),
        hash_algorithm_oid: p.get("hashAlgorithmOID").map(str::to_owned),
        num_signatures: p.get("numSignatures").map(|n| {
            n.trim()
                .parse::<i64>()
                .map_or_else(|_| Value::from(n), Value::from)
        }),
        locations: None,
    };
    check(w, Form::Plain).map(Some)
}

/// The one validation of a credential request, whichever form it came in.
fn check(w: Wire, form: Form) -> Result<CredentialDetails, Refusal> {
    let (within, request) = (form.within(), form.request());
    let credential = match (w.credential_id, w.signature_qualifier) {
        (Some(id), None) if bounded(&id) => CredentialChoice::Id(id),
        (None, Some(q)) if bounded(&q) => CredentialChoice::Qualifier(q),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{request} must name credentialID or signatureQualifier, not both"
            ));
        }
        (None, None) => {
            return Err(format!(
                "Missing parameter credentialID or signatureQualifier{within}"
            ));
        }
        (Some(_), None) => return Err("Invalid parameter credentialID".into()),
        (None, Some(_)) => return Err("Invalid parameter signatureQualifier".into()),
    };
    let documents = w
        .document_digests
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("Missing parameter {}{within}", form.digests()))?;
    if documents.len() > MAX_DIGESTS {
        return Err(format!(
            "Invalid parameter {}: at most {MAX_DIGESTS} digests",
            form.digests()
        ));
    }
    let oid = w
        .hash_algorithm_oid
        .ok_or_else(|| format!("Missing parameter hashAlgorithmOID{within}"))?;
    let alg =
        HashAlg::from_oid(&oid).ok_or_else(|| "Invalid parameter hashAlgorithmOID".to_owned())?;
    let mut digests = Vec::with_capacity(documents.len());
    for d in &documents {
        let bytes =
            decode(&d.hash).ok_or_else(|| format!("Invalid parameter {} (base64)", form.hash()))?;
        if bytes.len() != alg.digest_len() {
            return Err(format!("Invalid digest value length in {}", form.digests()));
        }
        if d.label.as_deref().is_some_and(|l| !bounded(l)) {
            return Err("Invalid parameter label in documentDigests".into());
        }
        digests.push(URL_SAFE_NO_PAD.encode(bytes));
    }
    let num_signatures = match w.num_signatures {
        None => None,
        Some(v) => {
            let n = v
                .as_i64()
                .ok_or_else(|| "Invalid parameter numSignatures".to_owned())?;
            if usize::try_from(n).ok() != Some(documents.len()) {
                return Err(format!(
                    "numSignatures must equal the number of {}",
                    form.digests()
                ));
            }
            Some(n)
        }
    };
    Ok(CredentialDetails {
        kind: w.kind,
        credential,
        documents: documents
            .into_iter()
            .map(|d| DocumentDigest {
                hash: d.hash,
                label: d.label,
            })
            .collect(),
        hash_algorithm_oid: oid,
        num_signatures,
        locations: w.locations,
        digests,
    })
}

impl CredentialDetails {
    /// The number of signatures granted: one per digest.
    pub fn signatures(&self) -> i64 {
        i64::try_from(self.documents.len()).unwrap_or(i64::MAX)
    }

    /// The details as approved, for the token response (RFC 9396 §7): as requested, with the
    /// credential the signer used (`credentialID`, also when a `signatureQualifier` chose it).
    pub fn approved(&self, credential_id: &str) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("type".into(), self.kind.clone().into());
        o.insert("credentialID".into(), credential_id.into());
        if let CredentialChoice::Qualifier(q) = &self.credential {
            o.insert("signatureQualifier".into(), q.clone().into());
        }
        o.insert(
            "documentDigests".into(),
            serde_json::to_value(&self.documents).unwrap_or(Value::Null),
        );
        o.insert(
            "hashAlgorithmOID".into(),
            self.hash_algorithm_oid.clone().into(),
        );
        o.insert("numSignatures".into(), self.signatures().into());
        if let Some(l) = &self.locations {
            o.insert("locations".into(), l.clone().into());
        }
        Value::Array(vec![Value::Object(o)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // 0..32, standard

    fn one(extra: &str) -> String {
        format!(
            r#"[{{"type":"credential","credentialID":"c1","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1",
                "documentDigests":[{{"hash":"{H32}","label":"A <b>"}}]{extra}}}]"#
        )
    }

    #[test]
    fn a_well_formed_element_is_kept_as_sent() {
        let d = parse(&one(r#","numSignatures":1,"locations":["x"]"#)).expect("valid");
        assert_eq!(d.credential, CredentialChoice::Id("c1".into()));
        assert_eq!(d.documents[0].label.as_deref(), Some("A <b>"));
        assert_eq!(
            d.digests,
            vec![URL_SAFE_NO_PAD.encode((0u8..32).collect::<Vec<_>>())]
        );
        let approved = d.approved("c1");
        assert_eq!(approved[0]["documentDigests"][0]["hash"], H32);
        assert_eq!(approved[0]["numSignatures"], 1);
        // the URL-safe alphabet, unpadded, is the same digest
        let url = one("").replace(H32, &URL_SAFE_NO_PAD.encode((0u8..32).collect::<Vec<_>>()));
        assert_eq!(parse(&url).expect("url-safe").digests, d.digests);
    }

    #[test]
    fn bad_elements_are_refused_with_the_member_named() {
        let cases = [
            ("{}", "must be a JSON array"),
            ("[]", "exactly one element"),
            (
                &one("").replace("\"credential\",", "\"payment\","),
                "Unsupported authorization_details type",
            ),
            (&one(r#","extra":1"#), "Unsupported member extra"),
            (
                &one("").replace(r#""label":"#, r#""size":1,"label":"#),
                "Unsupported member size in authorization_details",
            ),
            (
                &one(r#","locations":"eu""#),
                "Malformed authorization_details",
            ),
            (&one(r#","signatureQualifier":"eu_eidas_qes""#), "not both"),
            (
                &one("").replace(r#""credentialID":"c1","#, ""),
                "Missing parameter credentialID",
            ),
            (&one(r#","numSignatures":2"#), "numSignatures must equal"),
            (&one("").replace(H32, "AAEC"), "Invalid digest value length"),
            (&one("").replace(H32, "%%%"), "Invalid parameter hash"),
            (
                &one("").replace("2.16.840.1.101.3.4.2.1", "1.3.14.3.2.26"),
                "hashAlgorithmOID",
            ),
        ];
        for (input, expected) in cases {
            let e = parse(input).expect_err(input);
            assert!(e.contains(expected), "{input}: {e}");
        }
    }

    /// [`MEMBERS`] and [`DIGEST_MEMBERS`] are exactly the fields of the wire structs: an element
    /// carrying every one of them deserializes (`deny_unknown_fields` would refuse a name that
    /// is not a field).
    #[test]
    fn the_member_lists_are_the_wire_fields() {
        let value = |m: &str| match m {
            "documentDigests" => serde_json::json!([{ "hash": H32, "label": "l" }]),
            "numSignatures" => serde_json::json!(1),
            "locations" => serde_json::json!(["eu"]),
            _ => serde_json::json!("x"),
        };
        let element: serde_json::Map<String, Value> = MEMBERS
            .iter()
            .map(|m| ((*m).to_owned(), value(m)))
            .collect();
        let element = Value::Object(element);
        assert_eq!(unknown_member(&element), None);
        assert!(serde_json::from_value::<Wire>(element).is_ok());
        let entry: serde_json::Map<String, Value> = DIGEST_MEMBERS
            .iter()
            .map(|m| ((*m).to_owned(), serde_json::json!("x")))
            .collect();
        assert!(serde_json::from_value::<WireDigest>(Value::Object(entry)).is_ok());
    }

    fn params(query: &str) -> Params {
        Params::parse(query.as_bytes()).expect("params")
    }

    #[test]
    fn plain_v2_parameters_are_the_equivalent_element() {
        let url = URL_SAFE_NO_PAD.encode((0u8..32).collect::<Vec<_>>());
        let std = H32
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let p = params(&format!(
            "credentialID=c1&numSignatures=2&hashes={url},{std}&hashAlgorithmOID=2.16.840.1.101.3.4.2.1"
        ));
        let d = from_params(&p).expect("valid").expect("a v2 request");
        assert_eq!(d.kind, "credential");
        assert_eq!(d.credential, CredentialChoice::Id("c1".into()));
        assert_eq!(d.digests, vec![url.clone(), url.clone()]);
        assert!(d.documents.iter().all(|doc| doc.label.is_none()));
        assert_eq!(d.signatures(), 2);
        // the same element its authorization_details would make
        let json = format!(
            r#"[{{"type":"credential","credentialID":"c1","hashAlgorithmOID":"2.16.840.1.101.3.4.2.1",
                "numSignatures":2,"documentDigests":[{{"hash":"{url}"}},{{"hash":"{H32}"}}]}}]"#
        );
        assert_eq!(parse(&json).expect("rar"), d);
        // v1 and service requests are not v2 requests
        assert_eq!(
            from_params(&params("credentialID=c1&numSignatures=1&hash=AAEC")),
            Ok(None)
        );
        assert_eq!(from_params(&params("scope=service")), Ok(None));
    }

    #[test]
    fn bad_plain_v2_parameters_are_refused_with_the_parameter_named() {
        let sha256 = "hashAlgorithmOID=2.16.840.1.101.3.4.2.1";
        let h = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let cases = [
            (
                format!("credentialID=c1&hashes={h}"),
                "Missing parameter hashAlgorithmOID".to_owned(),
            ),
            (
                format!("credentialID=c1&{sha256}"),
                "Missing parameter hashes".into(),
            ),
            (
                format!("hashes={h}&{sha256}"),
                "Missing parameter credentialID or signatureQualifier".into(),
            ),
            (
                format!("credentialID=c1&signatureQualifier=eu_eidas_qes&hashes={h}&{sha256}"),
                "The request must name credentialID or signatureQualifier, not both".into(),
            ),
            (
                format!("credentialID=c1&hashes=AAEC&{sha256}"),
                "Invalid digest value length in hashes".into(),
            ),
            (
                format!("credentialID=c1&hashes=%25%25&{sha256}"),
                "Invalid parameter hashes (base64)".into(),
            ),
            (
                format!("credentialID=c1&hashes={h},{h}&numSignatures=1&{sha256}"),
                "numSignatures must equal the number of hashes".into(),
            ),
            (
                format!("credentialID=c1&hashes={h}&numSignatures=one&{sha256}"),
                "Invalid parameter numSignatures".into(),
            ),
            (
                format!("credentialID=c1&hashes={h}&hash={h}&{sha256}"),
                "Invalid parameter hash: not with hashes".into(),
            ),
            (
                format!("credentialID=c1&hashes={h}&hashAlgorithmOID=1.3.14.3.2.26"),
                "Invalid parameter hashAlgorithmOID".into(),
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(from_params(&params(&query)), Err(expected), "{query}");
        }
    }
}
