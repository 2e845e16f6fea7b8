//! Backups (JT2A Part I 7.1.7; README "Backups"): the SAM's part of `csc-server backup` and
//! `restore` — an online snapshot of the SQLite database with a seal of its audit head, the rule
//! that refuses a restore behind the live seals ([`rollback_behind_seals`]), and the audit records
//! of both acts (`backup.create` in the live log, `backup.restore` in the restored one; Part I
//! 7.1.4.1: the operator's acts are audited). Bundling the data directory's files is the command's
//! job.

use std::path::Path;

use serde_json::Value;
use storage::AuditEvent;
use storage::AuditSeal;

use crate::roles::{Action, Actor};
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
    pub fn record_backup(
        &self,
        archive: &str,
        detail: Value,
        actor: &Actor,
    ) -> Result<(), SamError> {
        self.record_archive(
            Action::Backup,
            AuditEvent::BackupCreate,
            archive,
            detail,
            actor,
        )
    }

    /// Audits, in the restored log, that it was restored from a backup (`backup.restore`,
    /// subject: the archive's path); `detail` says whether a rollback past the live seals was
    /// allowed.
    pub fn record_restore(
        &self,
        archive: &str,
        detail: Value,
        actor: &Actor,
    ) -> Result<(), SamError> {
        self.record_archive(
            Action::Restore,
            AuditEvent::BackupRestore,
            archive,
            detail,
            actor,
        )
    }

    /// `actor` may do `action` on the archive ([`Sam::permit`]); then the act is audited as
    /// `event`, subject the archive's path.
    fn record_archive(
        &self,
        action: Action,
        event: AuditEvent,
        archive: &str,
        detail: Value,
        actor: &Actor,
    ) -> Result<(), SamError> {
        self.permit(actor, action, archive)?;
        let actor = &actor.audit_name();
        self.store
            .write(|c| c.append_audit(&audit_event(event, actor, archive, "success", detail)))?;
        Ok(())
    }
}

/// The live seal a backup falls behind: restoring the backup would roll the audit log back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAhead {
    /// The highest record the seal file seals.
    pub seq: i64,
    /// The (first) line of the seal file that seals it.
    pub line: u64,
    /// The seal names the backup's own last record number but another record: the backup is of
    /// a history that was rewritten since.
    pub diverged: bool,
}

/// The rollback rule of `csc-server restore` (Part I 7.1.4.3): a backup whose audit head
/// (`backup`, its seal) is behind the highest record sealed in `seal_file`, or names that
/// record's number with another hash, would roll the audit log back. Reads the seal numbers
/// without the key (the token may still be in the archive): a forged line can only cause a
/// refusal, and `audit verify` checks every MAC after the restore. `None` when the file holds no
/// seal ahead.
pub fn rollback_behind_seals(
    seal_file: &Path,
    backup: &AuditSeal,
) -> Result<Option<SealedAhead>, SamError> {
    let Some((seq, hash, line)) = storage::highest_sealed_record(seal_file)? else {
        return Ok(None);
    };
    Ok(if seq > backup.seq {
        Some(SealedAhead {
            seq,
            line,
            diverged: false,
        })
    } else if seq == backup.seq && hash != backup.hash {
        Some(SealedAhead {
            seq,
            line,
            diverged: true,
        })
    } else {
        None
    })
}
