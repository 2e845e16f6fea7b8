//! Persistence for the CSC server: users, credentials, activation factors, tokens, SADs and the
//! hash-chained audit log, on SQLite (embedded default) or PostgreSQL (several instances), chosen
//! by URL. Only this crate speaks SQL.
//!
//! Entry point: [`Store::open`] (or [`Store::open_or_create`] for a new SQLite file). Work runs
//! through [`Store::read`] or [`Store::write`], both blocking (async callers wrap them in
//! `spawn_blocking` / `web::block`; the hot path's grouped write has an awaitable form,
//! [`Store::write_grouped_async`]). The closure gets a [`Conn`], which carries every repository
//! method, so several operations can share one transaction:
//!
//! ```no_run
//! # use storage::*;
//! # fn demo(store: &Store, new: &NewCredential) -> Result<(), StorageError> {
//! store.write(|c| {
//!     let cred = c.create_credential(new)?;
//!     c.append_audit(&NewAuditEvent::new(AuditEvent::CredentialCreate, "admin", cred.id.to_string(), "ok"))?;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Secrets never reach the database in clear: tokens and SADs are stored as SHA-256 digests
//! ([`secret_hash`]), PINs and passwords as PHC strings produced by the caller. The audit log is
//! append-only and chained with HMAC under the audit key; [`Store::verify_audit_chain`] detects
//! edits, deletions and reordering, and [`Store::verify_audit`] adds the seals kept outside the
//! database ([`SealLog`]), which show a truncated or rolled-back log.

mod audit;
mod backup;
mod connection;
mod credentials;
mod declared;
mod delegations;
mod error;
mod factors;
mod group;
mod integrity;
mod lockout;
mod models;
mod oauth;
mod observe;
mod purge;
mod sads;
mod schema;
mod seal;
mod sealed;
mod tokens;
mod types;
mod upgrade;
mod users;

pub use audit::AuditQuery;
pub use audit::{
    AuditEvent, AuditPage, AuditRange, AuditRecord, AuditUpgrade, AuditVerdict, NewAuditEvent,
    ZERO_HASH,
};
pub use backup::highest_sealed_record;
pub use connection::{Backend, Conn, Durable, Staged, Store, StoreOptions};
pub use declared::DeclaredRows;
pub use delegations::ClientDelegation;
pub use error::StorageError;
pub use factors::RequiredFactors;
pub use group::Grouped;
pub use integrity::{IntegrityKeys, Violation};
pub use lockout::Counter;
pub use models::{Credential, Factor, NewCredential, NewSad, NewToken, NewUser, Sad, Token, User};
pub use oauth::{
    CodeRedemption, NewOAuthClient, NewOAuthCode, NewOAuthRequest, OAuthClient, OAuthCode,
    OAuthRequest,
};
pub use observe::LiveCounts;
pub use purge::Purged;
pub use sads::SadSpend;

pub use seal::{AuditReport, AuditSeal, SealLog};
pub use types::{
    AuthMode, CredentialId, CredentialStatus, FactorKind, ParseError, Role, Scal, TokenKind,
    UserId, secret_hash, truncate_to_micros, utc_now,
};
pub use upgrade::SealReport;

/// Shorthand for results of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
