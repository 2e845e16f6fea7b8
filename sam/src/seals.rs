//! The audit chain's seals (README "Audit log"; JT2A Part I 7.1.4.3): the chain head,
//! MACed under the audit key, appended to a file outside the database ([`storage::SealLog`];
//! format and what it proves in `storage`'s `seal` module). `serve` runs an [`AuditSealer`]
//! every second and when it stops; the operator commands seal what they appended.

use std::path::{Path, PathBuf};

use storage::{AuditReport, AuditSeal, AuditUpgrade, SealLog, Store};

use crate::roles::{Action, Actor};
use crate::{AuditEvent, Sam, SamError, audit_event};

/// Appends a seal of the chain head to one seal file whenever the head moved.
#[derive(Debug)]
pub struct AuditSealer {
    store: Store,
    log: SealLog,
    /// The head last sealed (or, for [`Sam::audit_sealer_from_now`], seen at the start).
    last: Option<(i64, String)>,
}

impl AuditSealer {
    /// Appends (and fsyncs) a seal of the current head unless it is the head last sealed;
    /// returns the seal written. A read of the head and an HMAC when nothing moved. Blocking.
    /// Counted in `csc_audit_seals_total` / `csc_audit_seal_failures_total`.
    pub fn seal_if_moved(&mut self) -> Result<Option<AuditSeal>, SamError> {
        let sealed = self.seal_now_if_moved();
        match &sealed {
            Ok(Some(_)) => crate::observe::count_seal(),
            Ok(None) => {}
            Err(_) => crate::observe::count_seal_failure(),
        }
        sealed
    }

    fn seal_now_if_moved(&mut self) -> Result<Option<AuditSeal>, SamError> {
        let seal = self.store.audit_seal()?;
        if self
            .last
            .as_ref()
            .is_some_and(|(seq, hash)| *seq == seal.seq && *hash == seal.hash)
        {
            return Ok(None);
        }
        self.log.append(&seal)?;
        self.last = Some((seal.seq, seal.hash.clone()));
        Ok(Some(seal))
    }

    /// The seal file.
    pub fn path(&self) -> &Path {
        self.log.path()
    }
}

impl Sam {
    /// A sealer appending to the seal file at `path` (created, mode 0600; its directory must
    /// exist); its first [`AuditSealer::seal_if_moved`] always seals (the head at start).
    pub fn audit_sealer(&self, path: &Path) -> Result<AuditSealer, SamError> {
        Ok(AuditSealer {
            store: self.store.clone(),
            log: SealLog::open(path)?,
            last: None,
        })
    }

    /// A sealer that seals only once the head moves past where it is now (for a command that
    /// may append records).
    pub fn audit_sealer_from_now(&self, path: &Path) -> Result<AuditSealer, SamError> {
        let mut sealer = self.audit_sealer(path)?;
        sealer.last = Some(self.store.read(|c| c.audit_head())?);
        Ok(sealer)
    }

    /// Checks the whole audit chain with the audit key and against the seals in `seal_files`
    /// (`csc-server audit verify`; Part II 3.2.2.4, Part I 7.1.4.3).
    pub fn verify_audit(&self, seal_files: &[PathBuf]) -> Result<AuditReport, SamError> {
        Ok(self.store.verify_audit(seal_files)?)
    }

    /// `csc-server audit upgrade`: confirms, once, the switch of a log begun by a version
    /// without keyed links (storage's `audit` module doc), after verifying the whole chain and
    /// the seals in `seal_files`;
    /// audited as `audit.upgrade` (Part I 7.1.4.1: changes to the audit parameters).
    pub fn confirm_audit_switch(
        &self,
        seal_files: &[PathBuf],
        actor: &Actor,
    ) -> Result<AuditUpgrade, SamError> {
        self.permit(actor, Action::AuditUpgrade, "audit-log")?;
        let actor = &actor.audit_name();
        Ok(self.store.confirm_audit_switch(seal_files, |keyed_from| {
            audit_event(
                AuditEvent::AuditUpgrade,
                actor,
                "audit-log",
                "success",
                serde_json::json!({ "keyedFrom": keyed_from }),
            )
        })?)
    }
}
