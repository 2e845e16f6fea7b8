//! Online snapshots of an SQLite database (README "Backups"; JT2A Part I 7.1.7): a consistent copy
//! taken while `serve` keeps writing, and the seal of the copy's audit head.
//!
//! The copy is made with `VACUUM INTO`, not with the page-by-page online backup API
//! (`sqlite3_backup_step`): `VACUUM INTO` reads the whole database in ONE read transaction, so
//! the copy is the database as of one commit; in WAL mode that read blocks no writer, and
//! writers do not restart it. The backup API, stepped in parts, restarts from the first page
//! whenever another connection (here: the `serve` process) commits meanwhile, which under a
//! steady signing load may never finish; in one step it is the same single read transaction as
//! `VACUUM INTO`, minus the rest. `VACUUM INTO` also leaves out free pages, so rows deleted
//! before the backup (expired SADs, an older database's plain TOTP seeds) are not carried into
//! it, and it needs no raw SQLite handle (this workspace has no `unsafe`). SQLite does not fsync
//! the file it writes: [`Store::snapshot_sqlite`] does.

use std::fs::File;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::connection::{AnyConnection, Store};
use crate::error::StorageError;
use crate::schema::audit_head;
use crate::seal::AuditSeal;

impl Store {
    /// SQLite only: writes a consistent copy of the whole database to `dest` (which must not
    /// exist; its directory must), fsyncs it, switches the copy to a rollback journal (so the
    /// single file is the whole database) and returns a seal, under the audit key, of the copy's
    /// audit head: the last record the copy holds. BLOCKING; takes no write lock, so writers
    /// carry on meanwhile. On PostgreSQL: [`StorageError::Connection`] (use `pg_dump`).
    pub fn snapshot_sqlite(&self, dest: &Path) -> Result<AuditSeal, StorageError> {
        if dest.exists() {
            return Err(StorageError::Conflict(format!(
                "{} already exists",
                dest.display()
            )));
        }
        let dest_str = dest
            .to_str()
            .ok_or_else(|| StorageError::InvalidUrl("the backup path is not valid UTF-8".into()))?
            .to_owned();
        self.read(|c| match &mut *c.conn {
            AnyConnection::Sqlite(sqlite) => {
                diesel::sql_query("VACUUM INTO ?")
                    .bind::<Text, _>(&dest_str)
                    .execute(sqlite)?;
                Ok(())
            }
            AnyConnection::Postgresql(_) => Err(StorageError::Connection(
                "an online snapshot is for SQLite databases; back up PostgreSQL with pg_dump"
                    .into(),
            )),
        })?;
        let (seq, hash) = {
            let mut copy = SqliteConnection::establish(&dest_str)?;
            copy.batch_execute("PRAGMA journal_mode = DELETE;")
                .map_err(|e| StorageError::Connection(format!("snapshot: {e}")))?;
            audit_head::table
                .find(1)
                .select((audit_head::seq, audit_head::hash))
                .get_result::<(i64, String)>(&mut copy)
                .optional()?
                .ok_or_else(|| StorageError::Corrupt("the snapshot has no audit head row".into()))?
        };
        let fsync = |path: &Path| File::open(path).and_then(|f| f.sync_all());
        fsync(dest)
            .map_err(|e| StorageError::Connection(format!("cannot fsync the snapshot: {e}")))?;
        let keys = self.read(|c| Ok(c.keys()?.clone()))?;
        Ok(AuditSeal::new(&keys, seq, hash))
    }
}

/// The highest record named by a seal line of the seal file at `path`, with its hash and line
/// number; `None` when the file holds no seal. Lines that are not seals are skipped (and MACs
/// are not checked here: this is the cheap pre-check of `csc-server restore`, before any token
/// is at hand; `audit verify` checks every line under the key). An unreadable file is an error.
pub fn highest_sealed_record(path: &Path) -> Result<Option<(i64, String, u64)>, StorageError> {
    let text = std::fs::read_to_string(path).map_err(|source| StorageError::SealFile {
        path: path.display().to_string(),
        source,
    })?;
    let mut best: Option<(i64, String, u64)> = None;
    for (index, line) in text.lines().enumerate() {
        let Ok(seal) = serde_json::from_str::<AuditSeal>(line) else {
            continue;
        };
        let line_no = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        if best.as_ref().is_none_or(|(seq, _, _)| seal.seq > *seq) {
            best = Some((seal.seq, seal.hash, line_no));
        }
    }
    Ok(best)
}
