//! The OpenAPI 3.1 document of everything the CSC server serves (CSC v1 and OAuth2).
//!
//! At this stage the server serves only `info`; the full document and the drift test that keeps
//! it in step with the routes and the wire types arrive with the conformance issue.

/// The OpenAPI document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "CSC remote signing server", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/csc/v1/info": {
                "post": {
                    "operationId": "info",
                    "responses": { "200": { "description": "Service information" } }
                }
            }
        }
    })
}
