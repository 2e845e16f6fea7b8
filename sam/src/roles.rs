//! Roles and separation of duties (JT2A Part I 7.1.1.1-7, 7.1.3.1; EN 419 241-1 roles): who may do
//! which administrative act. [`allows`] is the one table, role → actions; every administrative
//! domain function takes the acting [`Actor`] and calls [`Sam::permit`] first, which refuses
//! with [`SamError::Forbidden`] and audits the refusal as `access.denied` (the allowed act is
//! audited by the function itself). Every audit record names the role: its `actor` column is
//! `ROLE:NAME` (`operator:alice`, `security-officer:cli`), so `audit verify` and the existing
//! consumers, which treat the actor as text, keep working (the CLI's former `operator:cli` is
//! the same form).
//!
//! No domain function returns or sets a PIN or OTP verifier: the signer's PIN is given once, at
//! credential creation, by the signer (standard input or `CSC_PIN` of the command the operator
//! runs: the operator creates the credential), and only its peppered verifier is stored. So no
//! role can both create a credential and read its signer's factors; an operator may lift a
//! factor lock ([`Action::CredentialUnlock`]) but never read or set a PIN.

use serde_json::json;
use storage::{AuditEvent, Role};

use crate::{Sam, SamError, audit_event};

/// Who acts: a name and the one role it acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// `name` acting as `role`.
    pub fn new(name: impl Into<String>, role: Role) -> Actor {
        Actor {
            name: name.into(),
            role,
        }
    }

    /// The `actor` of its audit records: `ROLE:NAME` (user names have no `:`).
    pub fn audit_name(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.name)
    }
}

/// An administrative act, as the role table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create a user of this role (`user add --role`).
    UserCreate(Role),
    UserDisable,
    UserEnable,
    /// Lift a login lock.
    UserUnlock,
    CredentialCreate,
    CredentialCsr,
    CredentialImportChain,
    /// Lift a PIN/OTP lock (never reads or sets a factor).
    CredentialUnlock,
    CredentialList,
    /// Destroy a credential's key (and TOTP key) in the token.
    CredentialDestroy,
    /// Suspend a credential (`credential disable`) or lift that (`credential enable`).
    CredentialDisable,
    CredentialEnable,
    /// End a credential for good, its key destroyed (`credential revoke`).
    CredentialRevoke,
    /// Replace a credential's key by a new one generated in the token (`credential rekey`).
    CredentialRekey,
    /// Move TOTP seeds into token keys (`credential migrate-otp`).
    OtpMigrate,
    ClientRegister,
    ClientList,
    ClientDelegate,
    ClientUndelegate,
    /// Initialise the token.
    TokenInit,
    /// Seal every row with the integrity key (`integrity seal`).
    IntegritySeal,
    /// Switch the audit log to keyed links (`audit upgrade`).
    AuditUpgrade,
    /// Read the audit log.
    AuditRead,
    /// Verify the audit chain and its seals.
    AuditVerify,
    Backup,
    Restore,
    /// Delete a user with all their credentials, keys destroyed in the token (admin API).
    UserDelete,
    /// Read the list of users (admin API).
    UserList,
    /// Disable, enable or unlock an administrative user (an operator, security officer or
    /// auditor): the security officer's, so that an operator manages signers only and cannot
    /// lock out, or lift the lock of, the roles that watch it.
    AdministratorManage,
    /// Export a range of the audit log with its seals, signed by the audit seal key (the
    /// auditor: Part I 7.1.4.6, only auditors read audit records; Part I 7.1.5 archiving).
    AuditExport,
}

impl Action {
    /// Every action, for the exhaustive tests (one of each `UserCreate`).
    pub const ALL: &'static [Action] = &[
        Action::UserCreate(Role::Signer),
        Action::UserCreate(Role::Operator),
        Action::UserCreate(Role::SecurityOfficer),
        Action::UserCreate(Role::Auditor),
        Action::UserDisable,
        Action::UserEnable,
        Action::UserUnlock,
        Action::CredentialCreate,
        Action::CredentialCsr,
        Action::CredentialImportChain,
        Action::CredentialUnlock,
        Action::CredentialList,
        Action::CredentialDestroy,
        Action::CredentialDisable,
        Action::CredentialEnable,
        Action::CredentialRevoke,
        Action::CredentialRekey,
        Action::OtpMigrate,
        Action::ClientRegister,
        Action::ClientList,
        Action::ClientDelegate,
        Action::ClientUndelegate,
        Action::TokenInit,
        Action::IntegritySeal,
        Action::AuditUpgrade,
        Action::AuditRead,
        Action::AuditVerify,
        Action::Backup,
        Action::Restore,
        Action::UserDelete,
        Action::UserList,
        Action::AdministratorManage,
        Action::AuditExport,
    ];

    /// Its name in audit records and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UserCreate(Role::Signer) => "user.create.signer",
            Action::UserCreate(Role::Operator) => "user.create.operator",
            Action::UserCreate(Role::SecurityOfficer) => "user.create.security-officer",
            Action::UserCreate(Role::Auditor) => "user.create.auditor",
            Action::UserDisable => "user.disable",
            Action::UserEnable => "user.enable",
            Action::UserUnlock => "user.unlock",
            Action::CredentialCreate => "credential.create",
            Action::CredentialCsr => "credential.csr",
            Action::CredentialImportChain => "credential.import-chain",
            Action::CredentialUnlock => "credential.unlock",
            Action::CredentialList => "credential.list",
            Action::CredentialDestroy => "credential.destroy",
            Action::CredentialDisable => "credential.disable",
            Action::CredentialEnable => "credential.enable",
            Action::CredentialRevoke => "credential.revoke",
            Action::CredentialRekey => "credential.rekey",
            Action::OtpMigrate => "credential.migrate-otp",
            Action::ClientRegister => "client.register",
            Action::ClientList => "client.list",
            Action::ClientDelegate => "client.delegate",
            Action::ClientUndelegate => "client.undelegate",
            Action::TokenInit => "token.init",
            Action::IntegritySeal => "integrity.seal",
            Action::AuditUpgrade => "audit.upgrade",
            Action::AuditRead => "audit.read",
            Action::AuditVerify => "audit.verify",
            Action::Backup => "backup.create",
            Action::Restore => "backup.restore",
            Action::UserDelete => "user.delete",
            Action::UserList => "user.list",
            Action::AdministratorManage => "user.manage-administrator",
            Action::AuditExport => "audit.export",
        }
    }

    /// What disabling, enabling or unlocking a user of `role` is: `signer_act` for a signer,
    /// [`Action::AdministratorManage`] for an administrative user.
    pub fn on_user(signer_act: Action, role: Role) -> Action {
        if role == Role::Signer {
            signer_act
        } else {
            Action::AdministratorManage
        }
    }

    /// The role a command needs when it does not say (the CLI's default `--as`).
    pub fn default_role(self) -> Role {
        Role::ALL
            .iter()
            .copied()
            .find(|r| allows(*r, self))
            .unwrap_or(Role::SecurityOfficer)
    }
}

/// THE role table (README "Roles"; JT2A Part I 7.1.1.1-7). A signer administers nothing; the
/// operator registers (signers, credentials, unlocks); the security officer keeps keys, the
/// token, the integrity and audit keys, clients and delegations, and creates the
/// administrative users; the auditor reads and verifies the audit log, nothing else.
pub fn allows(role: Role, action: Action) -> bool {
    use Action as A;
    match role {
        Role::Signer => false,
        Role::Operator => matches!(
            action,
            A::UserCreate(Role::Signer)
                | A::UserDisable
                | A::UserEnable
                | A::UserUnlock
                | A::CredentialCreate
                | A::CredentialCsr
                | A::CredentialImportChain
                | A::CredentialUnlock
                | A::CredentialList
                | A::CredentialDisable
                | A::CredentialEnable
                | A::UserList
        ),
        Role::SecurityOfficer => matches!(
            action,
            A::UserCreate(Role::Operator | Role::SecurityOfficer | Role::Auditor)
                | A::CredentialDestroy
                | A::CredentialRevoke
                | A::CredentialRekey
                | A::OtpMigrate
                | A::ClientRegister
                | A::ClientList
                | A::ClientDelegate
                | A::ClientUndelegate
                | A::TokenInit
                | A::IntegritySeal
                | A::AuditUpgrade
                | A::Backup
                | A::Restore
                // it destroys keys in the token, the security officer's charge
                | A::UserDelete
                | A::AdministratorManage
        ),
        Role::Auditor => matches!(action, A::AuditRead | A::AuditVerify | A::AuditExport),
    }
}

impl Sam {
    /// Whether `actor` may do `action` on `subject` ([`allows`]); a refusal is audited as
    /// `access.denied` (best effort: the refusal stands) and returned as
    /// [`SamError::Forbidden`].
    pub fn permit(&self, actor: &Actor, action: Action, subject: &str) -> Result<(), SamError> {
        if allows(actor.role, action) {
            return Ok(());
        }
        self.audit_best_effort(&audit_event(
            AuditEvent::AccessDenied,
            &actor.audit_name(),
            subject,
            "refused",
            json!({ "role": actor.role.as_str(), "action": action.as_str() }),
        ));
        Err(SamError::Forbidden {
            role: actor.role,
            action: action.as_str(),
        })
    }
}

impl Sam {
    /// The audit records after `after_seq` (at most `limit`), for the auditor.
    pub fn audit_records_as(
        &self,
        actor: &Actor,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<storage::AuditRecord>, SamError> {
        self.permit(actor, Action::AuditRead, "audit-log")?;
        self.audit_records(after_seq, limit)
    }

    /// Verifies the audit chain and the seals in `seal_files`, for the auditor.
    pub fn verify_audit_as(
        &self,
        actor: &Actor,
        seal_files: &[std::path::PathBuf],
    ) -> Result<storage::AuditReport, SamError> {
        self.permit(actor, Action::AuditVerify, "audit-log")?;
        self.verify_audit(seal_files)
    }

    /// The credentials with their owners (`user_name`'s only when given), for the operator.
    pub fn credentials_with_owners_as(
        &self,
        actor: &Actor,
        user_name: Option<&str>,
    ) -> Result<Vec<(storage::User, storage::Credential)>, SamError> {
        self.permit(
            actor,
            Action::CredentialList,
            user_name.unwrap_or("credentials"),
        )?;
        self.credentials_with_owners(user_name)
    }

    /// The registered OAuth 2.0 clients and their delegations, for the security officer.
    #[allow(clippy::type_complexity)]
    pub fn clients_as(
        &self,
        actor: &Actor,
    ) -> Result<(Vec<storage::OAuthClient>, Vec<(String, String)>), SamError> {
        self.permit(actor, Action::ClientList, "clients")?;
        Ok((self.clients()?, self.client_delegations()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table_is_exactly_this() {
        // (role, actions allowed); every other pair is refused
        let expected: &[(Role, &[&str])] = &[
            (Role::Signer, &[]),
            (
                Role::Operator,
                &[
                    "user.create.signer",
                    "user.disable",
                    "user.enable",
                    "user.unlock",
                    "credential.create",
                    "credential.csr",
                    "credential.import-chain",
                    "credential.unlock",
                    "credential.list",
                    "credential.disable",
                    "credential.enable",
                    "user.list",
                ],
            ),
            (
                Role::SecurityOfficer,
                &[
                    "user.create.operator",
                    "user.create.security-officer",
                    "user.create.auditor",
                    "credential.destroy",
                    "credential.revoke",
                    "credential.rekey",
                    "credential.migrate-otp",
                    "client.register",
                    "client.list",
                    "client.delegate",
                    "client.undelegate",
                    "token.init",
                    "integrity.seal",
                    "audit.upgrade",
                    "backup.create",
                    "backup.restore",
                    "user.delete",
                    "user.manage-administrator",
                ],
            ),
            (
                Role::Auditor,
                &["audit.read", "audit.verify", "audit.export"],
            ),
        ];
        for (role, allowed) in expected {
            for action in Action::ALL {
                assert_eq!(
                    allows(*role, *action),
                    allowed.contains(&action.as_str()),
                    "{role:?} {action:?}"
                );
            }
        }
        assert_eq!(expected.len(), Role::ALL.len());
    }

    #[test]
    fn every_action_has_exactly_one_role_and_a_default() {
        for action in Action::ALL {
            let roles: Vec<Role> = Role::ALL
                .iter()
                .copied()
                .filter(|r| allows(*r, *action))
                .collect();
            assert_eq!(roles.len(), 1, "{action:?}: {roles:?}");
            assert_eq!(roles.first().copied(), Some(action.default_role()));
        }
    }

    #[test]
    fn no_role_both_creates_credentials_and_administers_keys_or_audit() {
        // separation of duties: the one who registers never destroys keys nor reads the log
        for role in Role::ALL {
            if allows(*role, Action::CredentialCreate) {
                assert!(!allows(*role, Action::CredentialDestroy));
                assert!(!allows(*role, Action::AuditRead));
                assert!(!allows(*role, Action::UserCreate(Role::Operator)));
            }
        }
    }

    #[test]
    fn audit_names_carry_the_role() {
        assert_eq!(
            Actor::new("alice", Role::Operator).audit_name(),
            "operator:alice"
        );
        assert_eq!(
            Actor::new("cli", Role::SecurityOfficer).audit_name(),
            "security-officer:cli"
        );
    }
}
