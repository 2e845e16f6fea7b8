//! The admin API (csc-api `admin_api`): a document of its own
//! ([`crate::admin_document`]), since it is served by another app on another listener
//! (`admin_listen`): the CSC document, and the CSC app's 405 table, never name an `/admin/v1`
//! path, and the admin app's 405 table comes from this one. Every operation but the token
//! endpoint takes an admin token (`AdminBearer`) or a TLS client certificate (`mutualTLS`).

use serde_json::{Value, json};

use crate::operation::{Operation, RequestBody, Response, Security};
use crate::schema::{nullable, request, response, string};

const ERROR: &str = "ErrorResponse";

fn err(status: u16, description: &'static str) -> Response {
    Response::Json {
        status,
        description,
        schema: ERROR,
    }
}

fn ok(status: u16, description: &'static str, schema: &'static str) -> Response {
    Response::Json {
        status,
        description,
        schema,
    }
}

const BAD: Response = Response::Json {
    status: 400,
    description: "A bad body, field or query (`invalid_request`, naming it; unknown fields are refused)",
    schema: ERROR,
};
const UNAUTHENTICATED: Response = Response::Json {
    status: 401,
    description: "No, or an unknown, expired or revoked admin token (`invalid_token`, with \
                  `WWW-Authenticate`); a CSC service token is refused too",
    schema: ERROR,
};
const FORBIDDEN: Response = Response::Json {
    status: 403,
    description: "The caller's role may not do this (`access_denied`; audited as `access.denied`)",
    schema: ERROR,
};
const SERVER_ERROR: Response = Response::Json {
    status: 500,
    description: "An unexpected condition (`server_error`); details are logged, never sent",
    schema: ERROR,
};

/// One admin operation with the errors every one of them may answer, and `more`.
#[allow(clippy::too_many_arguments)]
fn admin(
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    body: RequestBody,
    query: Vec<(&'static str, Value, bool)>,
    success: Response,
    more: &[Response],
) -> Operation {
    let mut responses = vec![success, BAD, UNAUTHENTICATED, FORBIDDEN];
    responses.extend_from_slice(more);
    responses.push(SERVER_ERROR);
    Operation {
        method,
        path,
        operation_id,
        tag,
        summary,
        description,
        security: Security::Admin,
        body,
        query,
        responses,
    }
}

fn json_body(schema: &'static str) -> RequestBody {
    RequestBody::Json { schema }
}

const NOTHING: RequestBody = RequestBody::Json {
    schema: "AdminEmpty",
};

/// Every admin operation, in route-table order.
pub fn operations() -> Vec<Operation> {
    let not_found = err(404, "No such user, credential or client (`not_found`)");
    let conflict = err(
        409,
        "The state forbids it (`conflict`): a user that exists, a revoked credential, deleting oneself",
    );
    let user = ok(200, "The user as it is now", "AdminUser");
    let credential = ok(
        200,
        "The credential as it is now (never a factor)",
        "AdminCredential",
    );
    vec![
        Operation {
            method: "post",
            path: "/admin/v1/token",
            operation_id: "adminToken",
            tag: "admin",
            summary: "An admin token (OAuth 2.0 client_credentials, RFC 6749 §4.4)",
            description: "HTTP Basic with an administrative user's name and password (operator, \
                          security officer or auditor), under the login lockout. A signer, a \
                          disabled or locked user or a wrong password: 401 `invalid_client`. \
                          Audited as `auth.login` (`method` `admin`).",
            security: Security::AdminClientBasic,
            body: RequestBody::Form {
                schema: "AdminTokenRequest",
            },
            query: vec![],
            responses: vec![
                ok(200, "The admin token", "AdminTokenResponse"),
                err(
                    400,
                    "A bad form (`invalid_request`), another grant type \
                     (`unsupported_grant_type`) or scope (`invalid_scope`)",
                ),
                err(
                    401,
                    "The name and password are not an active administrator's (`invalid_client`, with `WWW-Authenticate: Basic`)",
                ),
                err(
                    429,
                    "Too many password checks at once (`temporarily_unavailable`)",
                ),
                SERVER_ERROR,
            ],
        },
        admin(
            "get",
            "/admin/v1/users",
            "adminListUsers",
            "users",
            "The users",
            "Operator. Audited as `user.list`.",
            RequestBody::None,
            vec![],
            ok(200, "Every user", "AdminUserList"),
            &[],
        ),
        admin(
            "post",
            "/admin/v1/users",
            "adminCreateUser",
            "users",
            "Create a user",
            "An operator creates signers, the security officer the administrative users. The \
             password is never echoed.",
            json_body("AdminNewUser"),
            vec![],
            ok(201, "The new user", "AdminUser"),
            &[conflict],
        ),
        admin(
            "delete",
            "/admin/v1/users/{name}",
            "adminDeleteUser",
            "users",
            "Delete a user and all their credentials",
            "Security officer (it destroys keys): every key of the user's credentials is \
             destroyed in the token, then the user, credentials, tokens, SADs and delegations \
             are deleted. Deleting oneself is refused.",
            RequestBody::None,
            vec![],
            ok(200, "What was deleted", "AdminUserDeleted"),
            &[not_found, conflict],
        ),
        admin(
            "post",
            "/admin/v1/users/{name}/disable",
            "adminDisableUser",
            "users",
            "Disable a user",
            "Operator (a signer), security officer (an administrative user): login refused, \
             every token and SAD revoked.",
            NOTHING,
            vec![],
            user,
            &[not_found],
        ),
        admin(
            "post",
            "/admin/v1/users/{name}/enable",
            "adminEnableUser",
            "users",
            "Enable a user",
            "Operator (a signer), security officer (an administrative user): lifts a disable \
             (a login lock stays).",
            NOTHING,
            vec![],
            user,
            &[not_found],
        ),
        admin(
            "post",
            "/admin/v1/users/{name}/unlock",
            "adminUnlockUser",
            "users",
            "Lift a login lock",
            "Operator (a signer), security officer (an administrative user).",
            NOTHING,
            vec![],
            user,
            &[not_found],
        ),
        admin(
            "get",
            "/admin/v1/credentials",
            "adminListCredentials",
            "credentials",
            "The credentials",
            "Operator. Audited as `credential.read`.",
            RequestBody::None,
            vec![("user", string("Only this user's"), false)],
            ok(
                200,
                "The credentials with their owners",
                "AdminCredentialList",
            ),
            &[],
        ),
        admin(
            "post",
            "/admin/v1/credentials",
            "adminCreateCredential",
            "credentials",
            "Create a credential",
            "Operator: the CLI's `credential create`. The signer's PIN is given once and only \
             its verifier is stored; nothing ever returns it.",
            json_body("AdminNewCredential"),
            vec![],
            ok(201, "The new credential", "AdminCredential"),
            &[not_found],
        ),
        admin(
            "get",
            "/admin/v1/credentials/{id}",
            "adminGetCredential",
            "credentials",
            "One credential",
            "Operator. Audited as `credential.read`.",
            RequestBody::None,
            vec![],
            credential,
            &[not_found],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/csr",
            "adminCredentialCsr",
            "credentials",
            "A PKCS#10 request over the credential's key",
            "Operator.",
            json_body("AdminCsrRequest"),
            vec![],
            ok(200, "The request (PEM)", "AdminCsrResponse"),
            &[not_found],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/chain",
            "adminImportChain",
            "credentials",
            "Import the certificate chain",
            "Operator: the CLI's `import-chain`; refused unless it certifies the key in the token.",
            json_body("AdminChainRequest"),
            vec![],
            credential,
            &[not_found],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/disable",
            "adminDisableCredential",
            "credentials",
            "Disable a credential",
            "Operator: its SADs are revoked now.",
            NOTHING,
            vec![],
            credential,
            &[not_found, conflict],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/enable",
            "adminEnableCredential",
            "credentials",
            "Enable a credential",
            "Operator; never a revoked one.",
            NOTHING,
            vec![],
            credential,
            &[not_found, conflict],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/unlock",
            "adminUnlockCredential",
            "credentials",
            "Lift a PIN/OTP lock",
            "Operator; never reads or sets a factor.",
            NOTHING,
            vec![],
            ok(200, "The factors unlocked", "AdminUnlocked"),
            &[not_found],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/rekey",
            "adminRekeyCredential",
            "credentials",
            "A new key and certificate, same ID",
            "Security officer: the old key is destroyed, the SADs revoked.",
            json_body("AdminRekeyRequest"),
            vec![],
            credential,
            &[not_found, conflict],
        ),
        admin(
            "post",
            "/admin/v1/credentials/{id}/revoke",
            "adminRevokeCredential",
            "credentials",
            "Revoke a credential for good",
            "Security officer: disabled forever, SADs revoked, key destroyed.",
            json_body("AdminRevokeRequest"),
            vec![],
            credential,
            &[not_found, conflict],
        ),
        admin(
            "get",
            "/admin/v1/clients",
            "adminListClients",
            "clients",
            "The OAuth 2.0 clients",
            "Security officer; never a secret. Audited as `client.list`.",
            RequestBody::None,
            vec![],
            ok(200, "The clients", "AdminClientList"),
            &[],
        ),
        admin(
            "post",
            "/admin/v1/clients",
            "adminCreateClient",
            "clients",
            "Register an OAuth 2.0 client",
            "Security officer; the secret is shown once.",
            json_body("AdminNewClient"),
            vec![],
            ok(201, "The client", "AdminClientCreated"),
            &[],
        ),
        admin(
            "post",
            "/admin/v1/clients/{id}/delegations",
            "adminDelegate",
            "clients",
            "Let the client act for a user",
            "Security officer.",
            json_body("AdminDelegationRequest"),
            vec![],
            ok(200, "The delegation", "AdminDelegation"),
            &[not_found],
        ),
        admin(
            "delete",
            "/admin/v1/clients/{id}/delegations/{user}",
            "adminUndelegate",
            "clients",
            "Withdraw a delegation",
            "Security officer.",
            RequestBody::None,
            vec![],
            ok(200, "The delegation", "AdminDelegation"),
            &[not_found],
        ),
        admin(
            "get",
            "/admin/v1/audit",
            "adminSearchAudit",
            "audit",
            "Search the audit log",
            "Auditor (Part I 7.1.4.5-6). Every filter given must match; `next` is the `after` of \
             the next page. Audited as `audit.read`.",
            RequestBody::None,
            vec![
                ("from", string("RFC 3339: at or after"), false),
                ("to", string("RFC 3339: at or before"), false),
                (
                    "event",
                    string("The event, e.g. `credential.create`"),
                    false,
                ),
                ("actor", string("The actor, e.g. `operator:alice`"), false),
                ("subject", string("The subject"), false),
                ("outcome", string("`success`, `refused`, ..."), false),
                ("after", json!({ "type": "integer", "minimum": 0 }), false),
                (
                    "limit",
                    json!({ "type": "integer", "minimum": 1, "description": "At most 1000 (default 100)" }),
                    false,
                ),
            ],
            ok(200, "A page of records", "AdminAuditPage"),
            &[],
        ),
        admin(
            "post",
            "/admin/v1/audit/verify",
            "adminVerifyAudit",
            "audit",
            "Verify the audit chain and the seals",
            "Auditor: the chain under the audit key and the configured seal file. Audited as \
             `audit.verify`.",
            NOTHING,
            vec![],
            ok(200, "The report", "AdminAuditReport"),
            &[],
        ),
        admin(
            "get",
            "/admin/v1/audit/export",
            "adminExportAudit",
            "audit",
            "Export the audit log with its seals",
            "Auditor: the records from..to (default from 1; at most 100,000 a call) and their \
             seals as signed JSON lines, which verify on another machine with the seal key \
             alone. A damaged log is not exported.",
            RequestBody::None,
            vec![
                ("from", json!({ "type": "integer", "minimum": 1 }), false),
                ("to", json!({ "type": "integer", "minimum": 1 }), false),
            ],
            Response::Text {
                status: 200,
                description: "JSON lines",
                media_type: "application/x-ndjson",
            },
            &[],
        ),
        admin(
            "get",
            "/admin/v1/audit/seal-key",
            "adminAuditSealKey",
            "audit",
            "The public audit seal key",
            "Auditor: the PEM public key that verifies an export.",
            RequestBody::None,
            vec![],
            Response::Text {
                status: 200,
                description: "A PEM public key",
                media_type: "application/x-pem-file",
            },
            &[],
        ),
        Operation {
            method: "get",
            path: "/admin/v1/openapi.json",
            operation_id: "adminOpenApi",
            tag: "admin",
            summary: "This document",
            description: "",
            security: Security::None,
            body: RequestBody::None,
            query: vec![],
            responses: vec![ok(
                200,
                "The admin API's OpenAPI document",
                "OpenApiDocument",
            )],
        },
    ]
}

fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

/// The admin API's schemas (and the error body it shares with the CSC API).
pub fn schemas() -> Value {
    let user = response(
        &[
            "name",
            "role",
            "disabled",
            "locked",
            "failedLogins",
            "createdAt",
        ],
        json!({
            "name": string("The login name"),
            "role": { "type": "string", "enum": ["signer", "operator", "security-officer", "auditor"] },
            "disabled": boolean("Disabled by an operator"),
            "locked": boolean("Locked after too many failed logins"),
            "failedLogins": { "type": "integer" },
            "createdAt": string("RFC 3339"),
        }),
        "A user (never a password)",
    );
    let credential = response(
        &[
            "credentialID",
            "user",
            "keyAlgo",
            "SCAL",
            "multisign",
            "status",
            "authMode",
            "certificateSerial",
            "certificate",
            "certificates",
            "certificateStatus",
            "certificateNotAfter",
        ],
        json!({
            "credentialID": string("The credential ID"),
            "user": string("Its owner"),
            "keyAlgo": string("rsa-2048, ..., ec-p384"),
            "SCAL": { "type": "string", "enum": ["1", "2"] },
            "multisign": { "type": "integer" },
            "status": { "type": "string", "enum": ["enabled", "disabled", "revoked"] },
            "authMode": { "type": "string", "enum": ["explicit", "oauth2code", "implicit"] },
            "certificateSerial": nullable(string("Hex serial of the signer certificate")),
            "certificate": nullable(string("Base64 DER of the signer certificate")),
            "certificates": strings("Base64 DER chain, signer first"),
            "certificateStatus": { "type": "string", "enum": ["pending", "valid", "expired"] },
            "certificateNotAfter": nullable(string("RFC 3339")),
            "otp": nullable(json!({ "type": "string", "enum": ["offline", "online"] })),
            "otpauth": string("A new TOTP's otpauth URI: shown once, at creation"),
            "csr": string("A PKCS#10 request (PEM), with csr: true"),
            "oldKeyDestroyed": boolean("After a rekey"),
            "keyDestroyed": boolean("After a revocation"),
        }),
        "A credential (never a factor or a verifier)",
    );
    json!({
        "AdminEmpty": json!({
            "type": "object", "description": "No fields (an empty body is `{}`)",
            "required": [], "properties": {}, "additionalProperties": false,
        }),
        "AdminTokenRequest": request(&["grant_type"], json!({
            "grant_type": { "type": "string", "enum": ["client_credentials"] },
            "scope": { "type": "string", "enum": ["admin"] },
        }), "RFC 6749 §4.4.2"),
        "AdminTokenResponse": response(&["access_token", "token_type", "expires_in", "scope"], json!({
            "access_token": string("Opaque; stored only as its SHA-256"),
            "token_type": { "type": "string", "enum": ["Bearer"] },
            "expires_in": { "type": "integer" },
            "scope": { "type": "string", "enum": ["admin"] },
        }), "RFC 6749 §5.1"),
        "AdminUser": user,
        "AdminUserList": response(&["users"], json!({
            "users": { "type": "array", "items": { "$ref": "#/components/schemas/AdminUser" } },
        }), "Every user, by name"),
        "AdminNewUser": closed_request(&["name", "role", "password"], json!({
            "name": string("1 to 64 of letters, digits and . _ - @"),
            "role": { "type": "string", "enum": ["signer", "operator", "security-officer", "auditor"] },
            "password": string("At least 8 characters; never echoed"),
        }), "A new user"),
        "AdminUserDeleted": response(&["name", "role", "deleted", "credentialsDeleted"], json!({
            "name": string("The user"),
            "role": string("Their role"),
            "deleted": boolean("Always true"),
            "credentialsDeleted": strings("Their credentials, keys destroyed"),
        }), "A deleted user"),
        "AdminCredential": credential,
        "AdminCredentialList": response(&["credentials"], json!({
            "credentials": { "type": "array", "items": { "$ref": "#/components/schemas/AdminCredential" } },
        }), "Credentials by owner, then ID"),
        "AdminNewCredential": closed_request(&["user", "keySpec", "pin"], json!({
            "user": string("The signer"),
            "keySpec": { "type": "string", "enum": ["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"] },
            "scal": nullable(json!({ "type": ["integer", "string"], "enum": [1, 2, "1", "2"] })),
            "multisign": nullable(json!({ "type": "integer", "minimum": 1 })),
            "otp": nullable(json!({ "type": "string", "enum": ["offline", "online"] })),
            "authMode": nullable(json!({ "type": "string", "enum": ["explicit", "oauth2code"] })),
            "pin": string("The signer's PIN (4 to 64 characters), given once; only its verifier is kept"),
            "csr": nullable(boolean("Leave the key for your CA: answers `csr`")),
            "subject": nullable(string("RFC 4514 subject of the request (with csr)")),
        }), "The CLI's `credential create` options"),
        "AdminCsrRequest": closed_request(&[], json!({
            "subject": nullable(string("RFC 4514; default CN=<user>")),
        }), "A certificate request"),
        "AdminCsrResponse": response(&["credentialID", "csr"], json!({
            "credentialID": string("The credential"),
            "csr": string("PKCS#10, PEM"),
        }), "A certificate request"),
        "AdminChainRequest": closed_request(&["certificates"], json!({
            "certificates": strings("PEM bundles or base64 DER certificates, signer first"),
        }), "A certificate chain"),
        "AdminUnlocked": response(&["credentialID", "unlocked"], json!({
            "credentialID": string("The credential"),
            "unlocked": strings("The factors unlocked (`pin`, `otp`)"),
        }), "The factors unlocked"),
        "AdminRekeyRequest": closed_request(&[], json!({
            "keySpec": nullable(json!({ "type": "string", "enum": ["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"] })),
            "csr": nullable(boolean("Leave the new key for your CA")),
            "subject": nullable(string("RFC 4514 (with csr)")),
        }), "A rekey"),
        "AdminRevokeRequest": closed_request(&["reason"], json!({
            "reason": string("1 to 500 printable characters, kept in the audit record"),
        }), "A revocation"),
        "AdminClientList": response(&["clients"], json!({
            "clients": { "type": "array", "items": response(
                &["clientId", "name", "redirectUris", "confidential", "delegatedUsers"],
                json!({
                    "clientId": string("The client_id"),
                    "name": string("Shown on the consent page"),
                    "redirectUris": strings("Exact redirect URIs"),
                    "confidential": boolean("Has a secret"),
                    "delegatedUsers": strings("Users its own tokens may act for"),
                }),
                "A client (never its secret)",
            ) },
        }), "The clients"),
        "AdminNewClient": closed_request(&["name", "redirectUris"], json!({
            "name": string("1 to 100 printable characters"),
            "redirectUris": strings("Exact absolute redirect URIs, the first the default"),
            "confidential": nullable(boolean("With a secret (may use client_credentials)")),
        }), "A new client"),
        "AdminClientCreated": response(&["clientId", "name", "redirectUris", "confidential"], json!({
            "clientId": string("The client_id"),
            "name": string("Its name"),
            "redirectUris": strings("Its redirect URIs"),
            "confidential": boolean("Has a secret"),
            "clientSecret": string("The secret, shown once (confidential clients)"),
        }), "A registered client"),
        "AdminDelegationRequest": closed_request(&["user"], json!({
            "user": string("The user the client may act for"),
        }), "A delegation"),
        "AdminDelegation": response(&["clientId", "user", "delegated", "changed"], json!({
            "clientId": string("The client"),
            "user": string("The user"),
            "delegated": boolean("Whether it is delegated now"),
            "changed": boolean("Whether this call changed it"),
        }), "A delegation"),
        "AdminAuditPage": response(&["records", "next"], json!({
            "records": { "type": "array", "items": response(
                &["seq", "at", "event", "actor", "subject", "outcome", "detail", "prevHash", "hash"],
                json!({
                    "seq": { "type": "integer" },
                    "at": string("RFC 3339"),
                    "event": string("The event"),
                    "actor": string("`ROLE:NAME`, a user, a client or `system`"),
                    "subject": string("What it was done to"),
                    "outcome": string("`success`, `refused`, ..."),
                    "detail": { "type": "object", "description": "Further facts (never a secret)" },
                    "prevHash": string("The previous record's hash"),
                    "hash": string("This record's keyed hash"),
                }),
                "An audit record",
            ) },
            "next": nullable(json!({ "type": "integer", "description": "The `after` of the next page" })),
        }), "A page of audit records"),
        "AdminAuditReport": response(&["intact", "seals", "sealFiles", "keyedFrom"], json!({
            "intact": boolean("The chain and every seal verify"),
            "records": { "type": "integer" },
            "firstBrokenRecord": { "type": "integer" },
            "reason": string("Why it is broken"),
            "seals": { "type": "integer" },
            "sealFiles": strings("The seal files checked"),
            "keyedFrom": { "type": "integer" },
        }), "The verification report"),
    })
}

/// A request body whose unknown fields the admin API refuses (so no `pin` slips in).
fn closed_request(required: &[&str], properties: Value, description: &str) -> Value {
    response(required, properties, description)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    fn refs(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if let (true, Some(r)) = (k == "$ref", v.as_str()) {
                        out.insert(r.to_owned());
                    }
                    refs(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_admin_document_is_well_formed_and_apart_from_the_csc_one() {
        let doc = crate::admin_document();
        let mut found = BTreeSet::new();
        refs(&doc, &mut found);
        for r in &found {
            assert!(doc.pointer(&r[1..]).is_some(), "dangling {r}");
        }
        let schemes = &doc["components"]["securitySchemes"];
        let mut ids = BTreeSet::new();
        for (method, path) in crate::documented_routes(&doc) {
            assert!(path.starts_with("/admin/v1/"), "{path}");
            let op = &doc["paths"][&path][method.to_lowercase()];
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(ids.insert(id.clone()), "duplicate {id}");
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().into_iter().flat_map(|o| o.keys()) {
                    assert!(schemes.get(scheme).is_some(), "{id}: {scheme}");
                }
            }
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorResponse",
                        "{id} {status}"
                    );
                }
            }
        }
        // the two documents share no path: neither app's 405 table knows the other's
        let csc: BTreeSet<String> = crate::documented_routes(&crate::document())
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert!(csc.iter().all(|p| !p.starts_with("/admin")));
        // a new credential's request validates; an unknown field does not
        let schema = json!({ "$ref": "#/components/schemas/AdminNewCredential" });
        let ok = json!({ "user": "alice", "keySpec": "ec-p256", "pin": "123456", "scal": 2, "otp": "online" });
        assert_eq!(
            crate::check::validate(&doc, &schema, &ok),
            Vec::<String>::new()
        );
        let extra =
            json!({ "user": "alice", "keySpec": "ec-p256", "pin": "123456", "pinVerifier": "x" });
        assert!(!crate::check::validate(&doc, &schema, &extra).is_empty());
    }
}
