//! Bearer tokens (stored only as SHA-256 digests).

use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{NewToken, Token, TokenRow, User, UserRow};
use crate::schema::{auth_tokens as t, users};
use crate::sealed::modify;
use crate::types::{UserId, truncate_to_micros, utc_now};

/// Revokes a token row that is not revoked yet (for [`modify!`]).
pub(crate) fn revoke(r: &mut TokenRow) -> Result<Option<()>, StorageError> {
    if r.revoked {
        return Ok(None);
    }
    r.revoked = true;
    Ok(Some(()))
}

impl Conn<'_> {
    /// Stores a token. [`StorageError::Conflict`] if the hash exists, [`StorageError::NotFound`]
    /// if the user does not.
    pub fn insert_token(&mut self, new: &NewToken) -> Result<(), StorageError> {
        let mut row = TokenRow {
            token_hash: new.token_hash.clone(),
            kind: new.kind.as_str().to_owned(),
            user_id: new.user_id.map(|u| u.to_string()),
            client_id: new.client_id.clone(),
            scope: new.scope.clone(),
            expires_at: truncate_to_micros(new.expires_at),
            revoked: false,
            created_at: utc_now(),
            parent_hash: new.parent_hash.clone(),
            mac: None,
            family: new.family.clone(),
        };
        self.seal(&mut row)?;
        diesel::insert_into(t::table)
            .values(&row)
            .execute(self.conn)
            .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// The token with this hash (revoked and expired ones included: check
    /// [`Token::is_active`]).
    pub fn token(&mut self, hash: &[u8]) -> Result<Option<Token>, StorageError> {
        let row = t::table
            .find(hash)
            .get_result::<TokenRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(Token::try_from).transpose()
    }

    /// The token with this hash and the user it acts for (none for a client's own token), in
    /// one query: what every Bearer-protected request reads first.
    pub fn token_and_user(
        &mut self,
        hash: &[u8],
    ) -> Result<Option<(Token, Option<User>)>, StorageError> {
        let Some((token, user)) = t::table
            .find(hash)
            .left_join(users::table)
            .get_result::<(TokenRow, Option<UserRow>)>(self.conn)
            .optional()?
        else {
            return Ok(None);
        };
        let Some(token) = self.admit(token)? else {
            return Ok(None);
        };
        // A token whose user row fails its check acts for nobody: treated as absent.
        let user = match user {
            Some(u) => match self.admit(u)? {
                Some(u) => Some(User::try_from(u)?),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some((Token::try_from(token)?, user)))
    }

    /// Revokes a token; `true` iff this call revoked it (it existed and was not revoked yet).
    pub fn revoke_token(&mut self, hash: &[u8]) -> Result<bool, StorageError> {
        let revoked = modify!(self, t, TokenRow, hash.to_vec(), revoke)?;
        Ok(revoked.is_some())
    }

    /// Revokes every token minted by the refresh token `parent_hash`; returns how many this call
    /// revoked.
    pub fn revoke_tokens_with_parent(&mut self, parent_hash: &[u8]) -> Result<usize, StorageError> {
        let children: Vec<Vec<u8>> = t::table
            .filter(t::parent_hash.eq(parent_hash))
            .filter(t::revoked.eq(false))
            .select(t::token_hash)
            .load(self.conn)?;
        self.revoke_each(children)
    }

    /// Revokes every token of the grant `family` ([`crate::NewToken::family`]): the refresh
    /// tokens rotated from one sign-in and every access token they minted. Returns how many
    /// this call revoked.
    pub fn revoke_token_family(&mut self, family: &[u8]) -> Result<usize, StorageError> {
        let members: Vec<Vec<u8>> = t::table
            .filter(t::family.eq(family))
            .filter(t::revoked.eq(false))
            .select(t::token_hash)
            .load(self.conn)?;
        self.revoke_each(members)
    }

    /// Revokes every access and refresh token that acts for `user` (a lock, an operator's
    /// disable). Returns how many this call revoked.
    pub fn revoke_user_tokens(&mut self, user: &UserId) -> Result<usize, StorageError> {
        let theirs: Vec<Vec<u8>> = t::table
            .filter(t::user_id.eq(user.to_string()))
            .filter(t::revoked.eq(false))
            .select(t::token_hash)
            .load(self.conn)?;
        self.revoke_each(theirs)
    }

    /// Revokes each of these tokens, one sealed row change each; how many this call revoked.
    fn revoke_each(&mut self, hashes: Vec<Vec<u8>>) -> Result<usize, StorageError> {
        let mut n = 0;
        for hash in hashes {
            if modify!(self, t, TokenRow, hash, revoke)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }
}
