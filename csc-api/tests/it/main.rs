//! The one integration-test binary of `csc-api` (one binary links once: kanidm's rule).

mod api;
mod cli;
mod common;
mod conformance;
mod factors;
mod oauth2;
mod openapi_routes;
mod pyhanko;
mod schemathesis;
