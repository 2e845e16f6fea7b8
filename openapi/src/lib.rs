//! The OpenAPI 3.1 document of everything the CSC server serves (CSC v1, CSC v2, the OAuth 2.0
//! authorization server, the RFC 3161 time-stamping authority), served by `csc-server` at
//! `GET /openapi.json`. csc-api's default service also reads it: the methods a path serves,
//! for the `Allow` of a 405 (csc-api `routing`).
//!
//! The document is written by hand, as data: one [`Operation`] per route in [`operations`] and
//! one JSON Schema per wire type in [`schemas`]. It describes what *this* server does, which is
//! stricter or more lenient than the official v1.0.3.0 document in places:
//!
//! * requests: optional fields may be `null` (read as absent), unknown fields are ignored,
//!   integers may come as numeric strings (the spec's own §13.8 diagram sends `"2"`);
//! * responses: exactly the fields this server emits (`additionalProperties: false`), every
//!   error as the CSC error body, 401s with `WWW-Authenticate`.
//!
//! It is checked, not trusted: `tests/wire_types.rs` compares every component schema with the
//! serde form of the `csc-types` type of the same name (a field renamed on one side fails), and
//! `csc-api/tests/it/openapi_routes.rs` compares the documented operations with what the
//! running server answers. schemathesis then fuzzes the server against this document
//! (`csc-api/tests/it/schemathesis.rs`).
//!
//! The CSC v2 methods are in `v2.rs`, the time-stamping authority in `tsa.rs`
//! and the OAuth 2.0 additions of v2 (PAR, RFC 8414 metadata) in `oauth2_v2.rs`:
//! one function per operation there, its schemas beside it.
//!
//! Adding an endpoint: one [`Operation`] in [`operations`] (form-encoded bodies and query
//! parameters are supported for the OAuth2 endpoints) and, for a new wire type, one schema in
//! [`schemas`] named like its `csc-types` type plus a sample in the tests.

mod admin;
mod oauth2_v2;
mod operation;
mod render;
mod schema;
mod tsa;
mod v2;

pub mod check;

pub use operation::{Operation, RequestBody, Response, Security, links, operations};
pub use render::{admin_document, document, documented_routes};
pub use schema::schemas;

/// The CSC specification version the document describes.
pub const CSC_SPECS: &str = "1.0.4.0";

/// The CSC specification version `/csc/v2` implements (its `info.specs`).
pub const CSC_SPECS_V2: &str = "2.0.0.2";
