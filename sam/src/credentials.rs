//! What a signer may read of their own credentials (spec §11.4 `credentials/list`, §11.5
//! `credentials/info`): a page of credential IDs and one credential with its factors. Another
//! user's credential is "unknown", never "forbidden", so its existence is not revealed.

use storage::{Conn, Credential, CredentialId, FactorKind, StorageError, UserId};

use crate::activation::Caller;
use crate::otp::OtpType;
use crate::{Sam, SamError};

/// A credential as `credentials/info` describes it.
#[derive(Debug, Clone)]
pub struct CredentialView {
    pub credential: Credential,
    /// The credential has a PIN.
    pub has_pin: bool,
    /// The kind of its OTP, if it has one.
    pub otp: Option<OtpType>,
}

impl Sam {
    /// A page of `user`'s credentials ordered by id: at most `limit`, after `after` when given.
    pub fn credentials_page(
        &self,
        user: &UserId,
        after: Option<&CredentialId>,
        limit: i64,
    ) -> Result<Vec<Credential>, SamError> {
        Ok(self
            .store
            .read(|c| c.credentials_of_user(user, after, limit))?)
    }

    /// [`Sam::credentials_page`], each credential with its factors ([`CredentialView`], as
    /// [`Sam::describe_credential`] gives them): for a listing that describes every credential
    /// (CSC v2 `credentials/list` with `credentialInfo`). One read.
    pub fn credential_views_page(
        &self,
        user: &UserId,
        after: Option<&CredentialId>,
        limit: i64,
    ) -> Result<Vec<CredentialView>, SamError> {
        Ok(self.store.read(|c| {
            let credentials = c.credentials_of_user(user, after, limit)?;
            credentials
                .into_iter()
                .map(|credential| view_of(c, credential))
                .collect()
        })?)
    }

    /// The caller's credential with its factors ([`SamError::UnknownCredential`] when it is
    /// not the caller's).
    pub fn describe_credential(
        &self,
        caller: &Caller,
        id: &CredentialId,
    ) -> Result<CredentialView, SamError> {
        let credential = self.credential_of(caller, id)?;
        Ok(self.store.read(|c| view_of(c, credential))?)
    }
}

/// `credential` with its factors. The sealed factor set says what the credential requires,
/// whatever rows exist.
fn view_of(c: &mut Conn<'_>, credential: Credential) -> Result<CredentialView, StorageError> {
    let has_pin = credential.factors.contains(&FactorKind::Pin);
    let otp = c
        .required_factors(&credential)?
        .otp
        .map(|f| OtpType::of(&f));
    Ok(CredentialView {
        credential,
        has_pin,
        otp,
    })
}
