//! The one integration-test binary of `csc-api` (one binary links once: kanidm's rule).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod admin_api;
mod admin_lifecycle;
mod api;
mod architecture;
mod audit_export;
mod backup;
mod cli;
mod common;
mod conformance;
mod deploy;
mod factors;
mod hot;
mod insider;
mod kit;
mod lifecycle;
mod methods;
mod oauth2;
mod oauth2_rar;
mod observability;
mod openapi_routes;
mod operator_ca;
mod pyhanko;
mod requirements;
mod roles;
mod schemathesis;
mod seals;
mod second_token;
mod sessions;
mod tls;
mod tsa;
mod v2;
