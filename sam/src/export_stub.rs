//! STUB, to be deleted at merge: the audit export and the audit seal key are built on another
//! branch (`sam/src/audit_export.rs` there); this file only gives the admin API's two routes
//! (`GET /admin/v1/audit/export`, `GET /admin/v1/audit/seal-key`) the exact signatures to
//! compile against. Both are refused until then.

use std::io::Write;
use std::path::PathBuf;

use crate::roles::{Action, Actor};
use crate::{Sam, SamError};

/// What [`Sam::export_audit_as`] exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// The first record exported.
    pub from: i64,
    /// The last record exported (`from - 1`: none).
    pub to: i64,
    /// How many records.
    pub count: u64,
    /// How many seal lines.
    pub seals: u64,
}

impl Sam {
    /// STUB of the export branch's function.
    pub fn export_audit_as(
        &self,
        actor: &Actor,
        _seal_files: &[PathBuf],
        _from: Option<i64>,
        _to: Option<i64>,
        _out: &mut dyn Write,
    ) -> Result<ExportSummary, SamError> {
        self.permit(actor, Action::AuditRead, "audit-log")?;
        Err(SamError::InvalidInput(
            "the audit export is not built here".into(),
        ))
    }

    /// STUB of the export branch's function.
    pub fn audit_seal_public_key_pem(&self, actor: &Actor) -> Result<String, SamError> {
        self.permit(actor, Action::AuditVerify, "csc-audit-seal")?;
        Err(SamError::InvalidInput(
            "the audit seal key is not built here".into(),
        ))
    }
}
