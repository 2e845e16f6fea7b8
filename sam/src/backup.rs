//! Backups (issue 13): the SAM's part of `csc-server backup` and `restore` — an online snapshot
//! of the SQLite database with a seal of its audit head, and the audit records of both acts
//! (`backup.create` in the live log, `backup.restore` in the restored one; Part I 7.1.4.1: the
//! operator's acts are audited). Bundling the data directory's files is the command's job.

use std::path::Path;

use serde_json::Value;
use storage::AuditEvent;
use storage::AuditSeal;
pub use storage::highest_sealed_record;

use crate::{Sam, SamError, audit_event};

impl Sam {
    /// A consistent copy of the SQLite database at `dest` (taken online: `serve` keeps signing;
    /// storage's `backup` module says how), and a seal under the audit key of the copy's audit
    /// head. Refused for PostgreSQL (`pg_dump` is its backup tool). BLOCKING.
    pub fn snapshot_database(&self, dest: &Path) -> Result<AuditSeal, SamError> {
        Ok(self.store.snapshot_sqlite(dest)?)
    }

    /// Audits a backup the operator takes (`backup.create`, subject: the archive's path),
    /// before the copy is made so that the copy holds the record. Never put a secret in
    /// `detail`.
    pub fn record_backup(&self, archive: &str, detail: Value, actor: &str) -> Result<(), SamError> {
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::BackupCreate,
                actor,
                archive,
                "success",
                detail,
            ))
        })?;
        Ok(())
    }

    /// Audits, in the restored log, that it was restored from a backup (`backup.restore`,
    /// subject: the archive's path); `detail` says whether a rollback past the live seals was
    /// allowed.
    pub fn record_restore(
        &self,
        archive: &str,
        detail: Value,
        actor: &str,
    ) -> Result<(), SamError> {
        self.store.write(|c| {
            c.append_audit(&audit_event(
                AuditEvent::BackupRestore,
                actor,
                archive,
                "success",
                detail,
            ))
        })?;
        Ok(())
    }
}
