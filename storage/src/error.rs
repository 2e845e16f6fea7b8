//! The error type of this crate.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Everything that can go wrong in the storage layer.
///
/// Messages never contain secrets: no URLs with passwords, no token or SAD values, no bound
/// query parameters.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The row to read or change does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint was violated (duplicate user name, token hash, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database URL is malformed or names an unsupported backend.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Any other error reported by the database driver.
    #[error("database error: {0}")]
    Database(DieselError),
    /// No pooled connection could be had in time.
    #[error("connection pool: {0}")]
    Pool(diesel::r2d2::PoolError),
    /// A new connection could not be established or set up.
    #[error("cannot connect to the database: {0}")]
    Connection(String),
    /// The embedded migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A shared (group) commit failed: nothing of the job was written.
    #[error("the transaction could not be committed: {0}")]
    Commit(String),
    /// Data read from the database violates an invariant of this crate.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store was opened without its integrity keys ([`crate::Store::with_keys`]), so it
    /// can neither check nor write the MAC of a security-relevant row.
    #[error("the store has no integrity keys: rows can be neither checked nor written")]
    NoIntegrityKeys,
    /// An audit seal file could not be opened, read or written.
    #[error("audit seal file {path}: {source}")]
    SealFile {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

impl From<DieselError> for StorageError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StorageError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StorageError::Conflict(info.message().to_owned())
            }
            other => StorageError::Database(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StorageError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StorageError::Pool(e)
    }
}

impl From<diesel::ConnectionError> for StorageError {
    fn from(e: diesel::ConnectionError) -> Self {
        StorageError::Connection(e.to_string())
    }
}

/// Maps a foreign-key violation (the referenced row does not exist) to [`StorageError::NotFound`].
pub(crate) fn fk_as_not_found(e: DieselError) -> StorageError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            StorageError::NotFound
        }
        other => other.into(),
    }
}
