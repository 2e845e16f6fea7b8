//! A SAD presented as the Bearer token (CSC v2.0.0.2 §8.2, §8.4, §11.10: "an access token with
//! scope `credential` can substitute for the SAD"). A v2 credential-scope access token IS a SAD
//! issued by the SAM (what the OAuth 2.0 code exchange returns), bound to the signer, the
//! credential, the number of signatures and the consented hashes; presented in the
//! `Authorization` header it authenticates its signer for that credential only, and is then
//! spent by [`Sam::sign_hash`] like any SAD.

use super::*;

impl Sam {
    /// The signer of a SAD presented as a Bearer token, and the credential it activates: the
    /// [`Caller`] a service token would have given (audit actor: the signer's name;
    /// `token_hash`: the SHA-256 of the SAD, the token presented).
    ///
    /// Unknown, failing its row MAC (read as absent), revoked, expired, used up, or of a user
    /// who is locked, disabled or gone: [`SamError::InvalidToken`] (401 `invalid_token`), as
    /// for a service token nobody issued. Like [`Sam::principal_of`], this authenticates and
    /// audits nothing; what the token is then used for is audited by the method it calls.
    /// One read.
    pub fn caller_of_sad(&self, sad: &str) -> Result<(Caller, CredentialId), SamError> {
        let sad_hash = secret_hash(sad.as_bytes());
        let now = utc_now();
        let found = self.store.read(|c| {
            let Some(s) = c.sad(&sad_hash)? else {
                return Ok(None);
            };
            let user = c.user(&s.user_id)?;
            Ok(Some((s, user)))
        })?;
        match found {
            Some((s, Some(user))) if s.is_usable(now) && !user.locked && !user.disabled => Ok((
                Caller {
                    user: user.id,
                    user_name: user.name,
                    token_hash: sad_hash,
                },
                s.credential_id,
            )),
            _ => Err(SamError::InvalidToken),
        }
    }
}
