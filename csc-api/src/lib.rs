//! The Server Signing Application (EN 419 241 SSA): the CSC v1 and v2 HTTP APIs on actix-web,
//! the CSC and OAuth 2.0 error model, configuration, and the operator commands behind the
//! `csc-server` binary. It speaks HTTP (and the command line) only: each handler parses, calls one `sam`
//! function and maps the result; every rule, database row and key is behind `sam`.

pub mod admin;
pub mod admin_api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod body;
pub mod certinfo;
pub mod config;
pub mod credentials;
pub mod error;
pub mod notify;
pub mod oauth2;
pub mod observability;
pub mod probe;
pub mod routing;
pub mod server;
pub mod signatures;
pub mod tls;
pub mod tsa;
pub mod v2;
