//! Rendering: the OpenAPI 3.1 document built from the operations and the schemas.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::operation::{
    Operation, RequestBody, Response, Security, links, operations, response_headers,
};
use crate::schema::schemas;
use crate::{CSC_SPECS, CSC_SPECS_V2};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A binary body (OpenAPI 3.1 §4.8.14.3; `format: binary` for the tools that still read 3.0).
fn binary(media_type: &str) -> Value {
    json!({ "type": "string", "format": "binary", "contentMediaType": media_type })
}

fn operation_json(op: &Operation, schemas: &Map<String, Value>) -> Value {
    let mut o = Map::new();
    o.insert("operationId".into(), json!(op.operation_id));
    o.insert("tags".into(), json!([op.tag]));
    o.insert("summary".into(), json!(op.summary));
    if !op.description.is_empty() {
        o.insert("description".into(), json!(op.description));
    }
    let security = match op.security {
        Security::None => json!([]),
        Security::BasicOrNone => json!([{ "BasicAuth": [] }, {}]),
        Security::Bearer => json!([{ "BearerAuth": [] }]),
        Security::ClientBasicOrNone => json!([{ "OAuthClientBasic": [] }, {}]),
        Security::Admin => json!([{ "AdminBearer": [] }, { "AdminMutualTls": [] }]),
        Security::AdminClientBasic => json!([{ "AdminClientBasic": [] }]),
    };
    o.insert("security".into(), security);
    match op.body {
        RequestBody::None => {}
        RequestBody::Json { schema } => {
            let required = schemas
                .get(schema)
                .and_then(|s| s.get("required"))
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            o.insert(
                "requestBody".into(),
                json!({
                    "required": required,
                    "content": { "application/json": { "schema": schema_ref(schema) } },
                }),
            );
        }
        RequestBody::Binary { media_type } => {
            o.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": { media_type: { "schema": binary(media_type) } },
                }),
            );
        }
        RequestBody::Form { schema } => {
            o.insert("requestBody".into(), json!({
                "required": true,
                "content": { "application/x-www-form-urlencoded": { "schema": schema_ref(schema) } },
            }));
        }
    }
    if !op.query.is_empty() {
        let parameters = op
            .query
            .iter()
            .map(|(name, schema, required)| {
                json!({ "name": name, "in": "query", "required": required, "schema": schema })
            })
            .collect();
        o.insert("parameters".into(), parameters);
    }
    let mut responses = Map::new();
    for r in &op.responses {
        let (status, mut value) = match *r {
            Response::Json {
                status,
                description,
                schema,
            } => {
                let v = json!({
                    "description": description,
                    "content": { "application/json": { "schema": schema_ref(schema) } },
                });
                (status, v)
            }
            Response::Empty {
                status,
                description,
            } => (status, json!({ "description": description })),
            Response::Redirect { description } => (
                302,
                json!({
                    "description": description,
                    "headers": { "Location": { "required": true, "schema": { "type": "string" } } },
                }),
            ),
            Response::Html {
                status,
                description,
            } => (
                status,
                json!({
                    "description": description,
                    "content": { "text/html": { "schema": { "type": "string" } } },
                }),
            ),
            Response::Text {
                status,
                description,
                media_type,
            } => (
                status,
                json!({
                    "description": description,
                    "content": { media_type: { "schema": { "type": "string" } } },
                }),
            ),
            Response::Binary {
                status,
                description,
                media_type,
            } => (
                status,
                json!({
                    "description": description,
                    "content": { media_type: { "schema": binary(media_type) } },
                }),
            ),
        };
        let admin_401 = if matches!(r, Response::Json { .. }) && status == 401 {
            match op.security {
                Security::Admin => Some(json!({ "WWW-Authenticate": {
                    "required": true,
                    "description": "`Bearer realm=\"csc-admin\", error=\"invalid_token\"`",
                    "schema": { "type": "string" },
                }})),
                Security::AdminClientBasic => Some(json!({ "WWW-Authenticate": {
                    "required": true,
                    "description": "`Basic realm=\"csc-admin\"`",
                    "schema": { "type": "string" },
                }})),
                _ => None,
            }
        } else {
            None
        };
        let headers = if matches!(r, Response::Json { .. })
            && status == 401
            && op.security == Security::Bearer
        {
            Some(json!({ "WWW-Authenticate": {
                "required": true,
                "description": "`Bearer error=\"invalid_token\"` or `Bearer error=\"expired_token\"`",
                "schema": { "type": "string", "pattern": "^Bearer error=\"(invalid_token|expired_token)\"$" },
            }}))
        } else {
            None
        };
        // The operation's own headers, if any, win over the Bearer 401 ones.
        if let Some(headers) = response_headers(op.operation_id, status)
            .or(headers)
            .or(admin_401)
            && let Some(value) = value.as_object_mut()
        {
            value.insert("headers".into(), headers);
        }
        responses.insert(status.to_string(), value);
    }
    for (from, status, name, to, body) in links() {
        if from == op.operation_id
            && let Some(Value::Object(r)) = responses.get_mut(&status.to_string())
            && let Value::Object(links) = r
                .entry("links")
                .or_insert_with(|| Value::Object(Map::new()))
        {
            links.insert(
                name.into(),
                json!({ "operationId": to, "requestBody": body }),
            );
        }
    }
    o.insert("responses".into(), Value::Object(responses));
    Value::Object(o)
}

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    let schemas = schemas();
    let paths = paths_of(&operations(), &schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CSC remote signing server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The Cloud Signature Consortium API v{CSC_SPECS} (`/csc/v1`) and \
                 v{CSC_SPECS_V2} (`/csc/v2`) as this server serves them, its OAuth 2.0 \
                 authorization server and its RFC 3161 time-stamping authority (`/tsa`). \
                 Every error is the CSC error body `{{error, error_description}}`. A served \
                 path asked with a method it does not serve answers 405 with `Allow` (and \
                 that error body); an unknown path answers 404."
            ),
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "service" }, { "name": "info" }, { "name": "auth" },
            { "name": "credentials" }, { "name": "signatures" }, { "name": "oauth2" },
            { "name": "tsa" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "BasicAuth": { "type": "http", "scheme": "basic" },
                "BearerAuth": { "type": "http", "scheme": "bearer" },
                "OAuthClientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An OAuth 2.0 client's client_id and secret (oauth2/token, oauth2/revoke)",
                },
            },
            "schemas": schemas,
        },
    })
}

/// The `paths` object of `ops`.
fn paths_of(ops: &[Operation], schemas: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for op in ops {
        paths
            .entry(op.path.to_owned())
            .or_default()
            .insert(op.method.to_owned(), operation_json(op, schemas));
    }
    paths
        .into_iter()
        .map(|(path, item)| (path, Value::Object(item)))
        .collect()
}

/// The admin API's OpenAPI document (`admin_listen`, csc-api `admin_api`): a document of its
/// own, since another app on another listener serves it ([`crate::admin`]).
pub fn admin_document() -> Value {
    let mut schemas = match crate::admin::schemas() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let shared = crate::schema::schemas();
    for name in ["ErrorResponse", "OpenApiDocument"] {
        if let Some(s) = shared.get(name) {
            schemas.insert(name.into(), s.clone());
        }
    }
    let paths = paths_of(&crate::admin::operations(), &schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CSC remote signing server: admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Remote administration (users, credentials and their lifecycle, \
                 OAuth 2.0 clients, the audit log), served only on the admin listener \
                 (`admin_listen`), never on the CSC one. Every call is authorised by the \
                 caller's role and audited. Every error is `{error, error_description}`. A \
                 served path asked with a method it does not serve answers 405 with `Allow`; \
                 an unknown path answers 404 `not_found`.",
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "admin" }, { "name": "users" }, { "name": "credentials" },
            { "name": "clients" }, { "name": "audit" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "AdminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin token from POST /admin/v1/token",
                },
                "AdminMutualTls": {
                    "type": "mutualTLS",
                    "description": "A client certificate under admin_tls_client_ca_file; its subject CN names the administrator",
                },
                "AdminClientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An administrative user's name and password",
                },
            },
            "schemas": schemas,
        },
    })
}

/// Every documented operation as `(METHOD, path)`, method upper-case.
pub fn documented_routes(doc: &Value) -> Vec<(String, String)> {
    let mut routes = vec![];
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for method in item.keys() {
                    routes.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes.sort();
    routes
}
