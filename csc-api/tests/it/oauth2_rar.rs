//! OAuth 2.0 for CSC v2 (issue 12): the authorization server's metadata (RFC 8414), pushed
//! authorization requests (RFC 9126) and `authorization_details` of type `credential`
//! (RFC 9396, CSC v2 §8.4): strict validation, the consent page with each document's label and
//! digest, the `Bearer` credential token that signs exactly the consented digests; the same
//! request made with the plain CSC v2 parameters (`hashes`, `hashAlgorithmOID`,
//! `signatureQualifier`, PKCE required) on `oauth2/authorize` and PAR; and the
//! OAuth error shape for oversized bodies. In process on the kit, plus one flow through the
//! real page in headless Chromium against a `csc-server` process.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::*;
use crate::kit::{BASE, Kit, audit_records};
use crate::oauth2::{
    Agent, ECDSA_SHA256, Page, REDIRECT_URI, SHA256_RSA, add_client, authorize_url, b64url,
    browser, catcher, chromedriver, click, digest, form_post, handle_of, pkce, query_of, sign_hash,
    signer_cert, type_into, verifies,
};

const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// A confidential client of the kit (PAR authenticates the client like the token endpoint).
struct Rar {
    k: Kit,
    client_id: String,
    secret: String,
}

fn rar_fixture(set: impl FnOnce(&mut csc_api::config::Config)) -> Rar {
    let k = Kit::with(set);
    let (client_id, secret) = k.client_add("RAR App", &[REDIRECT_URI], true);
    Rar {
        k,
        client_id,
        secret: secret.expect("a confidential client's secret"),
    }
}

/// One `authorization_details` element of type `credential` for these documents.
fn details(credential: (&str, &str), documents: &[(&str, &[u8])]) -> Value {
    let mut element = json!({
        "type": "credential",
        "documentDigests": documents
            .iter()
            .map(|(label, d)| json!({ "hash": STANDARD.encode(d), "label": label }))
            .collect::<Vec<_>>(),
        "hashAlgorithmOID": SHA256_OID,
    });
    element[credential.0] = json!(credential.1);
    json!([element])
}

impl Rar {
    /// `POST oauth2/pushed_authorize` with the client's secret (HTTP Basic) and `fields`.
    fn push(&self, fields: &[(&str, &str)]) -> (u16, Value) {
        self.k.form_post(
            "pushed_authorize",
            fields,
            Some((&self.client_id, &self.secret)),
        )
    }

    /// Pushes a credential request with `details`: `(request_uri, code_verifier)`.
    fn push_details(&self, details: &Value) -> (String, String) {
        let (verifier, challenge) = pkce();
        let (status, body) = self.push(&[
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("authorization_details", &details.to_string()),
        ]);
        assert_eq!(status, 201, "{body}");
        (
            body["request_uri"]
                .as_str()
                .expect("request_uri")
                .to_owned(),
            verifier,
        )
    }

    /// `oauth2/authorize?client_id=…&request_uri=…`, opened by `agent`.
    fn open(&self, agent: &mut Agent<'_>, client_id: &str, request_uri: &str) -> Page {
        agent.get(&authorize_url(
            BASE,
            &[("client_id", client_id), ("request_uri", request_uri)],
        ))
    }

    /// Opens the page for `request_uri` and signs in as alice: the agent, the form's handle and
    /// the consent page.
    fn consent(&self, request_uri: &str) -> (Agent<'_>, String, Page) {
        let mut agent = Agent::new(&self.k);
        let page = self.open(&mut agent, &self.client_id, request_uri);
        let (handle, page) = sign_in(&mut agent, page);
        (agent, handle, page)
    }

    /// The code of an approved consent (PIN only: SCAL 1 credentials).
    fn approve(&self, agent: &mut Agent<'_>, handle: &str, extra: &[(&str, &str)]) -> String {
        let mut fields = vec![("request", handle), ("PIN", PIN), ("action", "approve")];
        fields.extend_from_slice(extra);
        let page = agent.post(&fields);
        let landed = page
            .location
            .unwrap_or_else(|| panic!("no redirect: {} {}", page.status, page.body));
        let q = query_of(&landed);
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"), "{landed}");
        q.get("code")
            .unwrap_or_else(|| panic!("no code: {landed}"))
            .clone()
    }

    fn token(&self, code: &str, verifier: &str) -> (u16, Value) {
        self.k.form_post(
            "token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
            Some((&self.client_id, &self.secret)),
        )
    }
}

/// Signs in as alice on the authorization `page` the agent opened: the form's handle and the
/// consent page.
fn sign_in(agent: &mut Agent<'_>, page: Page) -> (String, Page) {
    assert_eq!(page.status, 200, "{}", page.body);
    let handle = handle_of(&page.body);
    let page = agent.post(&[
        ("request", &handle),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ]);
    assert_eq!(page.status, 200, "{}", page.body);
    (handle, page)
}

/// Signs `hashes` with the credential token of an `authorization_details` grant, as a v2
/// client does: `POST /csc/v2/signatures/signHash` with `Authorization: Bearer <token>` and no
/// `SAD` (CSC v2 §11.10: a credential-scope Bearer authorises the signature by itself).
fn sign_with_credential_token(
    api: &impl Csc,
    cred: &str,
    bearer: &str,
    hashes: &[Vec<u8>],
    sign_algo: &str,
) -> (u16, Value) {
    api.call_v2(
        "signatures/signHash",
        Some(bearer),
        &json!({
            "credentialID": cred,
            "hashes": hashes.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
            "hashAlgorithmOID": SHA256_OID,
            "signAlgo": sign_algo,
        }),
    )
}

/// The credential token `bearer` refuses a digest outside the consent, then signs exactly
/// `docs` (ECDSA with SHA-256), each signature verified against the credential's certificate.
fn assert_bearer_signs_exactly(k: &Kit, cred: &str, bearer: &str, docs: &[Vec<u8>]) {
    assert_error(
        &sign_with_credential_token(k, cred, bearer, &[digest(b"forged")], ECDSA_SHA256),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    let (status, signed) = sign_with_credential_token(k, cred, bearer, docs, ECDSA_SHA256);
    assert_eq!(status, 200, "{signed}");
    let alice = k.login("alice", ALICE_PASSWORD);
    let cert = signer_cert(k, &alice, cred);
    let sigs = signed["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), docs.len());
    for (h, sig) in docs.iter().zip(sigs) {
        assert!(verifies(&cert, h, &decode(sig.as_str().expect("b64"))));
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8414 metadata

#[test]
fn the_metadata_document_describes_the_authorization_server() {
    let k = Kit::new();
    let resp = k.send(k.get("/.well-known/oauth-authorization-server"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let auth = json!(["client_secret_basic", "client_secret_post", "none"]);
    assert_eq!(
        resp.json(),
        json!({
            "issuer": BASE,
            "authorization_endpoint": format!("{BASE}/oauth2/authorize"),
            "token_endpoint": format!("{BASE}/oauth2/token"),
            "revocation_endpoint": format!("{BASE}/oauth2/revoke"),
            "pushed_authorization_request_endpoint": format!("{BASE}/oauth2/pushed_authorize"),
            "require_pushed_authorization_requests": false,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth,
            "revocation_endpoint_auth_methods_supported": auth,
            "scopes_supported": ["service", "credential"],
            "authorization_details_types_supported": [
                "credential",
                "https://cloudsignatureconsortium.org/2025/credential",
            ],
        })
    );
    // the issuer is the base v1 info advertises (its `oauth2` is the issuer and a slash)
    let (status, info) = k.call("info", None, &json!({}));
    assert_eq!(status, 200);
    assert_eq!(info["oauth2"], format!("{BASE}/"));
}

// ---------------------------------------------------------------------------------------------
// RFC 9126 pushed authorization requests

#[test]
fn a_pushed_request_answers_201_and_its_request_uri_opens_one_page_for_its_client_only() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("ec").to_owned();
    let d = details(("credentialID", &cred), &[("doc", &digest(b"doc"))]);
    let (_, challenge) = pkce();
    let fields = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("authorization_details", &d.to_string()),
    ];
    // the 201 shape (RFC 9126 §2.2), never cached
    let req =
        f.k.post("/oauth2/pushed_authorize")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("authorization", crate::kit::basic(&f.client_id, &f.secret)))
            .set_payload(serde_urlencoded::to_string(fields).expect("form"));
    let resp = f.k.send(req);
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["expires_in", "request_uri"]);
    assert_eq!(body["expires_in"], 60, "oauth2_code_ttl_secs");
    let request_uri = body["request_uri"].as_str().expect("request_uri");
    let handle = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .expect("urn:ietf:params:oauth:request_uri:");
    assert_eq!(handle.len(), 43, "256 random bits, base64url");

    // another client's request_uri: refused on the page, and not spent by it
    let (other, _) = f.k.client_add("Other", &[REDIRECT_URI], false);
    let mut agent = Agent::new(&f.k);
    let page = f.open(&mut agent, &other, request_uri);
    assert_eq!(page.status, 400);
    assert!(page.location.is_none(), "never redirected");
    assert!(
        page.body
            .contains("The request_uri is unknown, used, expired or not this application")
    );

    // its own client: the sign-in page, with the page's own cookie-bound handle
    let page = f.open(&mut agent, &f.client_id, request_uri);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("RAR App"));
    assert_ne!(
        handle_of(&page.body),
        handle,
        "the page handle is not the request_uri"
    );
    // the request_uri's handle is no page handle (the form refuses it)
    let refused = agent.post(&[
        ("request", handle),
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("action", "login"),
    ]);
    assert_eq!(refused.status, 400, "{}", refused.body);

    // single use (RFC 9126 §4)
    let again = f.open(&mut Agent::new(&f.k), &f.client_id, request_uri);
    assert_eq!(again.status, 400);
    assert!(again.location.is_none());
    // unknown
    let unknown = f.open(
        &mut Agent::new(&f.k),
        &f.client_id,
        &format!("{REQUEST_URI_PREFIX}nothing"),
    );
    assert_eq!(unknown.status, 400);

    // each push, and each refused request_uri, is audited
    let records = f.k.audit_records();
    assert!(records.iter().any(|r| r.event == "oauth2.authorize"
        && r.outcome == "success"
        && r.detail.contains("\"stage\":\"pushed\"")));
    assert!(records.iter().any(|r| r.event == "oauth2.authorize"
        && r.outcome == "refused"
        && r.detail.contains("request_uri of another client")));
    assert!(records.iter().any(|r| r.event == "oauth2.authorize"
        && r.outcome == "refused"
        && r.detail.contains("unknown or used request_uri")));
    assert!(f.k.audit_intact());
}

#[test]
fn a_pushed_request_authenticates_the_client_and_refuses_a_request_uri_inside() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("ec").to_owned();
    let d = details(("credentialID", &cred), &[("doc", &digest(b"doc"))]).to_string();
    let (_, challenge) = pkce();
    let fields = [
        ("response_type", "code"),
        ("client_id", f.client_id.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("authorization_details", d.as_str()),
    ];
    // a confidential client without its secret; with a wrong one; an unknown client
    assert_error(
        &f.k.form_post("pushed_authorize", &fields, None),
        401,
        "invalid_request",
        "Client authorization required",
    );
    assert_error(
        &f.k.form_post("pushed_authorize", &fields, Some((&f.client_id, "wrong"))),
        400,
        "invalid_request",
        "Invalid parameter client_secret",
    );
    assert_error(
        &f.k.form_post("pushed_authorize", &[("client_id", "nobody")], None),
        400,
        "invalid_request",
        "Invalid parameter client_id",
    );
    // RFC 9126 §2.1: no request_uri in a pushed request
    let mut with_uri = fields.to_vec();
    with_uri.push(("request_uri", "urn:ietf:params:oauth:request_uri:x"));
    assert_error(
        &f.push(&with_uri[1..]),
        400,
        "invalid_request",
        "Invalid parameter request_uri: not in a pushed authorization request",
    );
    // a redirect URI it did not register; a public client without PKCE
    assert_error(
        &f.push(&[
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
            ("authorization_details", d.as_str()),
        ]),
        400,
        "invalid_request",
        "Invalid parameter redirect_uri",
    );
    let (public, _) = f.k.client_add("Public", &[REDIRECT_URI], false);
    assert_error(
        &f.k.form_post(
            "pushed_authorize",
            &[
                ("response_type", "code"),
                ("client_id", public.as_str()),
                ("authorization_details", d.as_str()),
            ],
            None,
        ),
        400,
        "invalid_request",
        "Missing parameter code_challenge: a public client must use PKCE (S256)",
    );
    // a public client with PKCE may push (it authenticates as at the token endpoint: by id)
    let (status, body) = f.k.form_post(
        "pushed_authorize",
        &[
            ("response_type", "code"),
            ("client_id", public.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("authorization_details", d.as_str()),
        ],
        None,
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn an_expired_request_uri_is_refused() {
    let f = rar_fixture(|c| c.oauth2_code_ttl_secs = 1);
    let cred = f.k.id("ec").to_owned();
    let (request_uri, _) = f.push_details(&details(
        ("credentialID", &cred),
        &[("doc", &digest(b"doc"))],
    ));
    std::thread::sleep(Duration::from_millis(2100));
    let page = f.open(&mut Agent::new(&f.k), &f.client_id, &request_uri);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none());
    assert!(
        f.k.audit_records()
            .iter()
            .any(|r| r.outcome == "refused" && r.detail.contains("request_uri expired"))
    );
}

// ---------------------------------------------------------------------------------------------
// RFC 9396 authorization_details

#[test]
fn authorization_details_are_validated_strictly() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("ec").to_owned();
    let good = details(("credentialID", &cred), &[("doc", &digest(b"doc"))]);
    let (_, challenge) = pkce();
    let push = |details: &str, extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("response_type", "code"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("authorization_details", details),
        ];
        fields.extend_from_slice(extra);
        f.push(&fields)
    };
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        edit(&mut d[0]);
        d.to_string()
    };
    let refusals: Vec<(String, &str)> = vec![
        (
            "not json".into(),
            "authorization_details must be a JSON array",
        ),
        (
            json!([good[0], good[0]]).to_string(),
            "authorization_details must hold exactly one element",
        ),
        (
            with(&|d| d["type"] = json!("payment_initiation")),
            "Unsupported authorization_details type payment_initiation",
        ),
        (
            with(&|d| d["actions"] = json!(["sign"])),
            "Unsupported member actions in authorization_details",
        ),
        (
            with(&|d| d["signatureQualifier"] = json!("eu_eidas_qes")),
            "authorization_details must name credentialID or signatureQualifier, not both",
        ),
        (
            with(&|d| {
                d.as_object_mut().expect("object").remove("credentialID");
            }),
            "Missing parameter credentialID or signatureQualifier in authorization_details",
        ),
        (
            with(&|d| d["documentDigests"] = json!([])),
            "Missing parameter documentDigests in authorization_details",
        ),
        (
            with(&|d| {
                d.as_object_mut()
                    .expect("object")
                    .remove("hashAlgorithmOID");
            }),
            "Missing parameter hashAlgorithmOID in authorization_details",
        ),
        (
            with(&|d| d["hashAlgorithmOID"] = json!("1.3.14.3.2.26")),
            "Invalid parameter hashAlgorithmOID",
        ),
        (
            with(&|d| d["documentDigests"][0]["hash"] = json!(STANDARD.encode([1u8; 20]))),
            "Invalid digest value length in documentDigests",
        ),
        (
            with(&|d| d["documentDigests"][0]["hash"] = json!("not base64!")),
            "Invalid parameter hash in documentDigests (base64)",
        ),
        (
            with(&|d| d["numSignatures"] = json!(2)),
            "numSignatures must equal the number of documentDigests",
        ),
        (
            with(&|d| d["credentialID"] = json!("not-a-credential-id")),
            "Invalid parameter credentialID",
        ),
    ];
    for (d, description) in &refusals {
        assert_error(
            &push(d, &[]),
            400,
            "invalid_authorization_details",
            description,
        );
    }
    // the URL-safe alphabet, numSignatures equal to the digests and `locations` are accepted
    let fine = with(&|d| {
        d["documentDigests"][0]["hash"] = json!(b64url(&digest(b"doc")));
        d["numSignatures"] = json!(1);
        d["locations"] = json!(["https://rssp.example"]);
    });
    assert_eq!(push(&fine, &[]).0, 201);
    // the v1 CSC parameters and scope service do not mix with authorization_details
    let good = good.to_string();
    for (extra, description) in [
        (
            ("credentialID", cred.as_str()),
            "Invalid parameter credentialID: not with authorization_details",
        ),
        (
            ("numSignatures", "1"),
            "Invalid parameter numSignatures: not with authorization_details",
        ),
        (
            ("hash", "AAEC"),
            "Invalid parameter hash: not with authorization_details",
        ),
        (
            ("scope", "service"),
            "authorization_details cannot be combined with scope service",
        ),
    ] {
        assert_error(&push(&good, &[extra]), 400, "invalid_request", description);
    }
    // refusals of pushed requests are audited
    assert!(
        f.k.audit_records()
            .iter()
            .any(|r| r.event == "oauth2.authorize"
                && r.outcome == "refused"
                && r.detail.contains("invalid_authorization_details"))
    );

    // on oauth2/authorize the error goes back to the client by redirect (RFC 9396 §5)
    let (_, challenge) = pkce();
    let refused = |details: &str, with_pkce: bool| {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", f.client_id.as_str()),
            ("state", "st-9"),
            ("authorization_details", details),
        ];
        if with_pkce {
            params.extend([
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]);
        }
        let page = Agent::new(&f.k).get(&authorize_url(BASE, &params));
        assert_eq!(page.status, 302, "{}", page.body);
        query_of(page.location.as_deref().expect("location"))
    };
    let q = refused("[]", true);
    assert_eq!(q["error"], "invalid_authorization_details");
    assert_eq!(
        q["error_description"],
        "authorization_details must hold exactly one element"
    );
    assert_eq!(q["state"], "st-9");
    // a CSC v2 request uses PKCE, even from a confidential client (v2 §8.4.2)
    let q = refused(&good, false);
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(
        q["error_description"],
        "Missing parameter code_challenge: a CSC v2 request must use PKCE (S256)"
    );
}

#[test]
fn the_consent_shows_each_document_and_the_bearer_signs_exactly_those_digests() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("multi").to_owned();
    let docs = [digest(b"contract.pdf"), digest(b"annex.pdf")];
    let labels = ["Contract <v2> & \"terms\"", "Annex A"];
    let d = details(
        ("credentialID", &cred),
        &[(labels[0], &docs[0]), (labels[1], &docs[1])],
    );
    let (request_uri, verifier) = f.push_details(&d);
    let (mut agent, handle, page) = f.consent(&request_uri);

    // each document's label (escaped) and digest, the credential, the count
    let body = &page.body;
    assert!(
        body.contains("Contract &lt;v2&gt; &amp; &quot;terms&quot;"),
        "{body}"
    );
    assert!(!body.contains("<v2>"));
    assert!(body.contains("Annex A"));
    for (i, h) in docs.iter().enumerate() {
        assert!(body.contains(&format!("id=\"digest-{i}\">{}</code>", STANDARD.encode(h))));
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert!(body.contains(&format!("id=\"hex-{i}\">{hex}</code>")));
    }
    assert!(body.contains(&format!("<code id=\"credential\">{cred}</code>")));
    assert!(body.contains("<dd id=\"numSignatures\">2</dd>"));

    let code = f.approve(&mut agent, &handle, &[]);
    let (status, token) = f.token(&code, &verifier);
    assert_eq!(status, 200, "{token}");
    // a Bearer credential token; the approved details and the credential echoed (RFC 9396 §7)
    assert_eq!(token["token_type"], "Bearer");
    assert!(token.get("refresh_token").is_none());
    assert!(token["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(token["credentialID"], cred.as_str());
    let mut approved = d.clone();
    approved[0]["numSignatures"] = json!(2);
    assert_eq!(token["authorization_details"], approved);
    let bearer = token["access_token"].as_str().expect("access_token");

    // a digest outside the consent is refused; the consented ones sign, once
    assert_bearer_signs_exactly(&f.k, &cred, bearer, &docs);
    // the token is used up: as a Bearer it is no token any more (RFC 6750 §3.1)
    assert_error(
        &sign_with_credential_token(&f.k, &cred, bearer, &docs[..1], ECDSA_SHA256),
        401,
        "invalid_token",
        "The access or refresh token is invalid",
    );

    // the code is single-use, as every code
    assert_error(
        &f.token(&code, &verifier),
        400,
        "invalid_grant",
        "Authorization code is invalid or expired",
    );
    let records = f.k.audit_records();
    assert!(records.iter().any(|r| r.event == "oauth2.consent"
        && r.outcome == "success"
        && r.detail.contains("\"authorizationDetails\":true")));
    assert!(
        records
            .iter()
            .any(|r| r.event == "sad.authorize" && r.detail.contains("\"boundHashes\":2"))
    );
    assert!(
        records
            .iter()
            .any(|r| r.event == "oauth2.token" && r.outcome == "success")
    );
    assert!(f.k.audit_intact());
}

#[test]
fn authorization_details_on_the_authorize_query_work_as_pushed_and_v1_keeps_sad() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("ec").to_owned();
    let h = digest(b"invoice");
    let d = details(("credentialID", &cred), &[("Invoice 7", &h)]);
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        BASE,
        &[
            ("response_type", "code"),
            ("client_id", f.client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("authorization_details", &d.to_string()),
        ],
    );
    let mut agent = Agent::new(&f.k);
    let page = agent.get(&url);
    let (handle, page) = sign_in(&mut agent, page);
    assert!(page.body.contains("Invoice 7"), "{}", page.body);
    let code = f.approve(&mut agent, &handle, &[]);
    let (status, token) = f.token(&code, &verifier);
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["credentialID"], cred.as_str());
    let bearer = token["access_token"].as_str().expect("token");
    let (status, signed) =
        sign_with_credential_token(&f.k, &cred, bearer, std::slice::from_ref(&h), ECDSA_SHA256);
    assert_eq!(status, 200, "{signed}");

    // a v1 credential request (no authorization_details) is answered as before: token_type SAD
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        BASE,
        &[
            ("response_type", "code"),
            ("client_id", f.client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st-1"),
            ("scope", "credential"),
            ("credentialID", cred.as_str()),
            ("numSignatures", "1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let mut agent = Agent::new(&f.k);
    let page = agent.get(&url);
    let (handle, _) = sign_in(&mut agent, page);
    let code = f.approve(&mut agent, &handle, &[]);
    let (status, token) = f.token(&code, &verifier);
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "SAD");
    let keys: Vec<&String> = token.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
}

#[test]
fn a_signature_qualifier_lets_the_signer_choose_the_key_and_the_token_names_it() {
    let f = rar_fixture(|_| {});
    f.k.create(&["rsa", "ec"]);
    let (rsa, ec) = (f.k.id("rsa").to_owned(), f.k.id("ec").to_owned());
    let h = digest(b"deed");
    let mut d = details(("signatureQualifier", "eu_eidas_aes"), &[("Deed", &h)]);
    d[0]["type"] = json!("https://cloudsignatureconsortium.org/2025/credential");
    let (request_uri, verifier) = f.push_details(&d);
    let (mut agent, handle, page) = f.consent(&request_uri);
    // a select of the signer's enabled credentials, the qualifier shown
    assert!(
        page.body
            .contains("<select id=\"credentialID\" name=\"credentialID\">")
    );
    assert!(page.body.contains(&format!("<option value=\"{rsa}\">")));
    assert!(page.body.contains(&format!("<option value=\"{ec}\">")));
    assert!(page.body.contains("<dd id=\"qualifier\">eu_eidas_aes</dd>"));
    assert!(page.body.contains("Deed"));

    // no key chosen: asked again; then the signer chooses ec
    let again = agent.post(&[("request", &handle), ("PIN", PIN), ("action", "approve")]);
    assert_eq!(again.status, 200);
    assert!(again.body.contains("Choose the key to sign with."));
    let code = f.approve(&mut agent, &handle, &[("credentialID", &ec)]);
    let (status, token) = f.token(&code, &verifier);
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["credentialID"], ec.as_str());
    assert_eq!(
        token["authorization_details"][0]["credentialID"],
        ec.as_str()
    );
    assert_eq!(
        token["authorization_details"][0]["signatureQualifier"],
        "eu_eidas_aes"
    );
    let bearer = token["access_token"].as_str().expect("token");
    // the token is for the chosen key only
    assert_error(
        &sign_with_credential_token(&f.k, &rsa, bearer, std::slice::from_ref(&h), SHA256_RSA),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let (status, signed) =
        sign_with_credential_token(&f.k, &ec, bearer, std::slice::from_ref(&h), ECDSA_SHA256);
    assert_eq!(status, 200, "{signed}");
}

// ---------------------------------------------------------------------------------------------
// oversized bodies

#[test]
fn an_oversized_oauth_body_is_an_oauth_error_not_a_plain_413() {
    let k = Kit::new();
    let big = format!("grant_type=authorization_code&code={}", "x".repeat(20_000));
    for endpoint in ["token", "revoke", "pushed_authorize"] {
        let resp = k.send(
            k.post(&format!("/oauth2/{endpoint}"))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(big.clone()),
        );
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "{endpoint}"
        );
        assert_error(
            &resp.pair(),
            400,
            "invalid_request",
            "Request body too large (at most 16384 bytes)",
        );
    }
    // the page answers a browser's oversized form with its HTML error page
    let resp = k.send(
        k.post("/oauth2/authorize")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(big),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        resp.text()
            .contains("The form is too large or could not be read.")
    );
}

// ---------------------------------------------------------------------------------------------
// the whole flow in headless Chromium

#[test]
fn chromium_pushes_authorization_details_shows_the_documents_and_the_bearer_signs_them() {
    let s = Signers::only(&["scal2"]);
    let app = catcher();
    let (client_id, secret) = add_client(s.dir(), "Chromium RAR App", &[&app.redirect_uri], true);
    let secret = secret.expect("secret");
    let (_server, api) = s.serve(&[]);
    let cred = s.id("scal2").to_owned();
    let docs = [digest(b"lease agreement"), digest(b"inventory list")];
    let labels = ["Lease agreement <2026>", "Inventory list"];
    let d = details(
        ("credentialID", &cred),
        &[(labels[0], &docs[0]), (labels[1], &docs[1])],
    );
    let (verifier, challenge) = pkce();
    let (status, pushed) = form_post(
        &api,
        "pushed_authorize",
        &[
            ("response_type", "code"),
            ("redirect_uri", &app.redirect_uri),
            ("state", "chromium-rar"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("authorization_details", &d.to_string()),
        ],
        Some((&client_id, &secret)),
    );
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().expect("request_uri");
    let url = authorize_url(
        &api.base,
        &[("client_id", &client_id), ("request_uri", request_uri)],
    );

    let driver = chromedriver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outbox = s.dir().join("otp-outbox.log");
    let landed = rt.block_on(async {
        use fantoccini::Locator;
        let c = browser(&driver).await;
        c.goto(&url).await.expect("open the authorization page");
        type_into(&c, "username", "alice").await;
        type_into(&c, "password", ALICE_PASSWORD).await;
        click(&c, "login").await;
        // the consent step: both labels and both digests
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("documents"))
            .await
            .expect("consent page with the documents");
        for (i, (label, h)) in labels.iter().zip(&docs).enumerate() {
            let shown = c
                .find(Locator::Id(&format!("label-{i}")))
                .await
                .expect("label");
            assert_eq!(shown.text().await.expect("text"), *label);
            let shown = c
                .find(Locator::Id(&format!("digest-{i}")))
                .await
                .expect("digest");
            assert_eq!(shown.text().await.expect("text"), STANDARD.encode(h));
        }
        let shown = c.find(Locator::Id("credential")).await.expect("credential");
        assert_eq!(shown.text().await.expect("text"), cred);
        let n = c.find(Locator::Id("numSignatures")).await.expect("count");
        assert_eq!(n.text().await.expect("text"), "2");
        // the PIN and the online OTP sent when the consent step opened
        let otp = outbox_code(&outbox, &cred).expect("an OTP was sent");
        type_into(&c, "pin", PIN).await;
        type_into(&c, "otp", &otp).await;
        click(&c, "approve").await;
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("done"))
            .await
            .expect("back in the app");
        let landed = c.current_url().await.expect("url").to_string();
        let _ = c.close().await;
        landed
    });
    drop(driver);

    assert!(landed.starts_with(&app.redirect_uri), "{landed}");
    let q = query_of(&landed);
    assert_eq!(q.get("state").map(String::as_str), Some("chromium-rar"));
    let code = q.get("code").expect("code").clone();
    let (status, token) = form_post(
        &api,
        "token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &app.redirect_uri),
            ("code_verifier", &verifier),
        ],
        Some((&client_id, &secret)),
    );
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["credentialID"], cred.as_str());
    assert_eq!(
        token["authorization_details"][0]["documentDigests"],
        d[0]["documentDigests"]
    );
    let bearer = token["access_token"].as_str().expect("token");

    // a digest outside the consent is refused; the two documents sign, verified
    assert_error(
        &sign_with_credential_token(&api, &cred, bearer, &[digest(b"forged")], SHA256_RSA),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD.",
    );
    let (status, signed) = sign_with_credential_token(&api, &cred, bearer, &docs, SHA256_RSA);
    assert_eq!(status, 200, "{signed}");
    let alice = api.login("alice", ALICE_PASSWORD);
    let cert = signer_cert(&api, &alice, &cred);
    let sigs = signed["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 2);
    for (h, sig) in docs.iter().zip(sigs) {
        assert!(verifies(&cert, h, &decode(sig.as_str().expect("b64"))));
    }
    let records = audit_records(s.dir());
    assert!(
        records
            .iter()
            .any(|r| r.event == "oauth2.authorize" && r.detail.contains("\"stage\":\"pushed\""))
    );
    assert!(records.iter().any(|r| r.event == "oauth2.consent"
        && r.outcome == "success"
        && r.detail.contains("\"authorizationDetails\":true")));
}

// ---------------------------------------------------------------------------------------------
// the plain CSC v2 parameters (REFERENCE §6.15): `hashes`, `hashAlgorithmOID`,
// `signatureQualifier` on oauth2/authorize and PAR make the request authorization_details would

/// The plain v2 parameters of a credential request for `digests` (comma-separated base64url,
/// as EUDI-KT joins them), PKCE S256 included: `(fields, code_verifier)`.
fn plain_v2(credential: (&str, &str), digests: &[Vec<u8>]) -> (Vec<(String, String)>, String) {
    let (verifier, challenge) = pkce();
    let hashes: Vec<String> = digests.iter().map(|d| b64url(d)).collect();
    let fields = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("state", "st-1"),
        ("scope", "credential"),
        credential,
        ("numSignatures", &digests.len().to_string()),
        ("hashes", &hashes.join(",")),
        ("hashAlgorithmOID", SHA256_OID),
        ("description", "Quarterly report"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    (fields, verifier)
}

/// `fields` as `(&str, &str)` pairs, without the parameter `drop` and with `extra` added.
fn edited<'a>(
    fields: &'a [(String, String)],
    drop: &[&str],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (k, v) in extra {
        out.retain(|(name, _)| name != k);
        out.push((k, v));
    }
    out
}

#[test]
fn plain_v2_parameters_on_authorize_show_the_digests_and_the_bearer_signs_exactly_them() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("multi").to_owned();
    let docs = [digest(b"report.pdf"), digest(b"appendix.pdf")];
    let (fields, verifier) = plain_v2(("credentialID", &cred), &docs);
    let mut query = edited(&fields, &[], &[]);
    query.push(("client_id", &f.client_id));
    let mut agent = Agent::new(&f.k);
    let page = agent.get(&authorize_url(BASE, &query));
    let (handle, page) = sign_in(&mut agent, page);

    // the consent step lists each digest (as sent, and in hex), no labels, the count, the purpose
    let body = &page.body;
    for (i, h) in docs.iter().enumerate() {
        assert!(
            body.contains(&format!("id=\"digest-{i}\">{}</code>", b64url(h))),
            "{body}"
        );
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert!(body.contains(&format!("id=\"hex-{i}\">{hex}</code>")));
    }
    assert!(!body.contains("class=\"label\""), "{body}");
    assert!(body.contains(&format!("<code id=\"credential\">{cred}</code>")));
    assert!(body.contains("<dd id=\"numSignatures\">2</dd>"));
    assert!(body.contains("<dd id=\"description\">Quarterly report</dd>"));

    let code = f.approve(&mut agent, &handle, &[]);
    let (status, token) = f.token(&code, &verifier);
    assert_eq!(status, 200, "{token}");
    // the answer of the equivalent authorization_details request: Bearer, the credential, and
    // the approved element (the digests as sent, without labels)
    assert_eq!(token["token_type"], "Bearer");
    assert!(token.get("refresh_token").is_none());
    assert_eq!(token["credentialID"], cred.as_str());
    assert_eq!(
        token["authorization_details"],
        json!([{
            "type": "credential",
            "credentialID": cred,
            "documentDigests": docs.iter().map(|d| json!({ "hash": b64url(d) })).collect::<Vec<_>>(),
            "hashAlgorithmOID": SHA256_OID,
            "numSignatures": 2,
        }])
    );
    let bearer = token["access_token"].as_str().expect("access_token");

    // another digest is refused; exactly the consented ones sign, verified against the cert
    assert_bearer_signs_exactly(&f.k, &cred, bearer, &docs);
    let records = f.k.audit_records();
    assert!(records.iter().any(|r| r.event == "oauth2.consent"
        && r.outcome == "success"
        && r.detail.contains("\"authorizationDetails\":true")));
    assert!(
        records
            .iter()
            .any(|r| r.event == "sad.authorize" && r.detail.contains("\"boundHashes\":2"))
    );
    assert!(f.k.audit_intact());
}

#[test]
fn plain_v2_parameters_pushed_work_like_authorization_details_with_a_signature_qualifier() {
    let f = rar_fixture(|_| {});
    f.k.create(&["rsa", "ec"]);
    let (rsa, ec) = (f.k.id("rsa").to_owned(), f.k.id("ec").to_owned());
    let h = digest(b"deed");
    let (fields, verifier) = plain_v2(
        ("signatureQualifier", "eu_eidas_aes"),
        std::slice::from_ref(&h),
    );
    // numSignatures may be left out: one signature per hash
    let (status, pushed) = f.push(&edited(&fields, &["numSignatures"], &[]));
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().expect("request_uri");
    let (mut agent, handle, page) = f.consent(request_uri);
    assert!(page.body.contains("<dd id=\"qualifier\">eu_eidas_aes</dd>"));
    assert!(page.body.contains(&format!("<option value=\"{ec}\">")));
    assert!(
        page.body
            .contains(&format!("id=\"digest-0\">{}</code>", b64url(&h)))
    );
    assert!(page.body.contains("<dd id=\"numSignatures\">1</dd>"));
    let code = f.approve(&mut agent, &handle, &[("credentialID", &ec)]);
    let (status, token) = f.token(&code, &verifier);
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["credentialID"], ec.as_str());
    assert_eq!(
        token["authorization_details"][0]["signatureQualifier"],
        "eu_eidas_aes"
    );
    let bearer = token["access_token"].as_str().expect("token");
    assert_error(
        &sign_with_credential_token(&f.k, &rsa, bearer, std::slice::from_ref(&h), SHA256_RSA),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let (status, signed) =
        sign_with_credential_token(&f.k, &ec, bearer, std::slice::from_ref(&h), ECDSA_SHA256);
    assert_eq!(status, 200, "{signed}");
    let alice = f.k.login("alice", ALICE_PASSWORD);
    let cert = signer_cert(&f.k, &alice, &ec);
    let sig = signed["signatures"][0].as_str().expect("signature");
    assert!(verifies(&cert, &h, &decode(sig)));
}

#[test]
fn plain_v2_parameters_are_refused_with_their_exact_errors_and_v1_is_unchanged() {
    let f = rar_fixture(|_| {});
    let cred = f.k.id("multi").to_owned();
    let docs = [digest(b"one"), digest(b"two")];
    let (fields, _) = plain_v2(("credentialID", &cred), &docs);
    let short = b64url(&[1u8; 20]);
    let d = details(("credentialID", &cred), &[("doc", &docs[0])]).to_string();
    let refusals: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            edited(&fields, &["hashAlgorithmOID"], &[]),
            "Missing parameter hashAlgorithmOID",
        ),
        (
            edited(&fields, &["numSignatures"], &[("hashes", &short)]),
            "Invalid digest value length in hashes",
        ),
        (
            edited(&fields, &[], &[("numSignatures", "3")]),
            "numSignatures must equal the number of hashes",
        ),
        (
            edited(&fields, &[], &[("hash", "AAEC")]),
            "Invalid parameter hash: not with hashes",
        ),
        (
            edited(&fields, &["hashes"], &[("hash", "AAEC")]),
            "Invalid parameter hash: not with hashAlgorithmOID",
        ),
        (
            edited(
                &fields,
                &["scope", "credentialID", "numSignatures", "hashes"],
                &[("authorization_details", &d)],
            ),
            "Invalid parameter hashAlgorithmOID: not with authorization_details",
        ),
        (
            edited(&fields, &["code_challenge", "code_challenge_method"], &[]),
            "Missing parameter code_challenge: a CSC v2 request must use PKCE (S256)",
        ),
        (
            edited(&fields, &[], &[("code_challenge_method", "plain")]),
            "Invalid parameter code_challenge_method: only S256",
        ),
        (
            edited(&fields, &["hashes", "numSignatures"], &[]),
            "Missing parameter hashes",
        ),
        (
            edited(&fields, &["scope"], &[]),
            "Invalid parameter hashes: only for scope credential",
        ),
        (
            edited(&fields, &[], &[("signatureQualifier", "eu_eidas_qes")]),
            "The request must name credentialID or signatureQualifier, not both",
        ),
    ];
    // PAR answers a JSON error (RFC 6749 §5.2)
    for (fields, description) in &refusals {
        assert_error(&f.push(fields), 400, "invalid_request", description);
    }
    // oauth2/authorize redirects it to the client with the state (RFC 6749 §4.1.2.1)
    for (fields, description) in &refusals {
        let mut query = fields.clone();
        query.push(("client_id", &f.client_id));
        let page = Agent::new(&f.k).get(&authorize_url(BASE, &query));
        assert_eq!(page.status, 302, "{description}: {}", page.body);
        let landed = page.location.expect("location");
        assert!(landed.starts_with(REDIRECT_URI), "{landed}");
        let q = query_of(&landed);
        assert_eq!(q["error"], "invalid_request", "{landed}");
        assert_eq!(q["error_description"], *description);
        assert_eq!(q["state"], "st-1");
    }

    // v1 is unchanged: hash (comma-separated base64url) without PKCE from a confidential
    // client, answered with token_type SAD that signs through v1 signHash
    let hashes = docs.iter().map(|d| b64url(d)).collect::<Vec<_>>().join(",");
    let mut agent = Agent::new(&f.k);
    let page = agent.get(&authorize_url(
        BASE,
        &[
            ("response_type", "code"),
            ("client_id", f.client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st-1"),
            ("scope", "credential"),
            ("credentialID", cred.as_str()),
            ("numSignatures", "2"),
            ("hash", &hashes),
        ],
    ));
    let (handle, page) = sign_in(&mut agent, page);
    assert!(page.body.contains("<ol id=\"hashes\">"), "{}", page.body);
    let code = f.approve(&mut agent, &handle, &[]);
    let (status, token) = f.k.form_post(
        "token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
        Some((&f.client_id, &f.secret)),
    );
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "SAD");
    let keys: Vec<&String> = token.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
    let sad = token["access_token"].as_str().expect("SAD");
    let alice = f.k.login("alice", ALICE_PASSWORD);
    let (status, signed) = sign_hash(&f.k, &alice, &cred, sad, &docs, ECDSA_SHA256);
    assert_eq!(status, 200, "{signed}");
    let cert = signer_cert(&f.k, &alice, &cred);
    for (h, sig) in docs
        .iter()
        .zip(signed["signatures"].as_array().expect("signatures"))
    {
        assert!(verifies(&cert, h, &decode(sig.as_str().expect("b64"))));
    }
}
