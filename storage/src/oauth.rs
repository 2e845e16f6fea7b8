//! The OAuth 2.0 authorization server's state (CSC v1.0.4.0 §8.3): registered clients, pending
//! authorization requests of the consent page, and authorization codes. Secrets (client
//! secrets, codes, page handles) are stored only as SHA-256 digests ([`crate::secret_hash`]).

use std::fmt;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::connection::Conn;
use crate::error::{StorageError, fk_as_not_found};
use crate::models::{decode_b64_list, encode_b64_list, parse_string_list};
use crate::schema::{oauth_clients as oc, oauth_codes as co, oauth_requests as orq};
use crate::sealed::{Sealed, bytes, flag, int, modify, opt, sealed, text, time};
use crate::types::{CredentialId, UserId, truncate_to_micros, utc_now};

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("invalid {what} in the database"))
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StorageError> {
    s.parse().map_err(|_| corrupt(what))
}

// ---------------------------------------------------------------------------------------------
// clients

/// A client to register (`csc-server client add`).
#[derive(Clone)]
pub struct NewOAuthClient {
    /// The `client_id` (chosen by the caller, e.g. a random string).
    pub client_id: String,
    /// Shown to the signer on the consent page.
    pub name: String,
    /// Exact redirect URIs; the first is the default when a request names none.
    pub redirect_uris: Vec<String>,
    /// SHA-256 of the client secret of a confidential client; `None` for a public client.
    pub secret_hash: Option<Vec<u8>>,
}

impl fmt::Debug for NewOAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOAuthClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.secret_hash.is_some())
            .finish()
    }
}

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id`.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Exact redirect URIs, the default first.
    pub redirect_uris: Vec<String>,
    /// SHA-256 of the secret (confidential clients only).
    pub secret_hash: Option<Vec<u8>>,
    /// Registration time (UTC).
    pub created_at: NaiveDateTime,
}

impl OAuthClient {
    /// Whether the client authenticates with a secret (RFC 6749 §2.1).
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .field("confidential", &self.is_confidential())
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(primary_key(client_id))]
#[diesel(table_name = oc)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct ClientRow {
    pub(crate) client_id: String,
    pub(crate) name: String,
    pub(crate) redirect_uris: String,
    pub(crate) secret_hash: Option<Vec<u8>>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) mac: Option<Vec<u8>>,
}

// redirect URIs and confidentiality (the secret's digest) decide where codes go and who may
// redeem them
sealed!(ClientRow, "oauth_clients", |r| id: r.client_id.clone(), fields: [
    text(&r.client_id),
    text(&r.redirect_uris),
    opt(r.secret_hash.as_deref().map(bytes)),
]);

impl TryFrom<ClientRow> for OAuthClient {
    type Error = StorageError;
    fn try_from(r: ClientRow) -> Result<Self, StorageError> {
        Ok(OAuthClient {
            client_id: r.client_id,
            name: r.name,
            redirect_uris: parse_string_list(&r.redirect_uris, "redirect URI list")?,
            secret_hash: r.secret_hash,
            created_at: r.created_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// pending authorization requests

/// An authorization request shown on the consent page, until it is approved or denied.
#[derive(Debug, Clone)]
pub struct NewOAuthRequest {
    /// SHA-256 of the page's random handle.
    pub request_hash: Vec<u8>,
    /// The client that asked.
    pub client_id: String,
    /// The validated request, serialised by the caller (JSON).
    pub params: String,
    /// Until when the page may be submitted (UTC).
    pub expires_at: NaiveDateTime,
}

/// A stored pending authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRequest {
    /// SHA-256 of the page's handle.
    pub request_hash: Vec<u8>,
    /// The client that asked.
    pub client_id: String,
    /// The validated request (JSON).
    pub params: String,
    /// The signer, once signed in on the page.
    pub user_id: Option<UserId>,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(primary_key(request_hash))]
#[diesel(table_name = orq)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct RequestRow {
    pub(crate) request_hash: Vec<u8>,
    pub(crate) client_id: String,
    pub(crate) params: String,
    pub(crate) user_id: Option<String>,
    pub(crate) expires_at: NaiveDateTime,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) mac: Option<Vec<u8>>,
}

// the signer bound to a pending request decides whose credential the page may grant
sealed!(RequestRow, "oauth_requests", |r| id: hex::encode(&r.request_hash), fields: [
    bytes(&r.request_hash),
    text(&r.client_id),
    text(&r.params),
    opt(r.user_id.as_deref().map(text)),
    time(r.expires_at),
]);

impl TryFrom<RequestRow> for OAuthRequest {
    type Error = StorageError;
    fn try_from(r: RequestRow) -> Result<Self, StorageError> {
        Ok(OAuthRequest {
            request_hash: r.request_hash,
            client_id: r.client_id,
            params: r.params,
            user_id: r
                .user_id
                .as_deref()
                .map(|u| parse(u, "user id"))
                .transpose()?,
            expires_at: r.expires_at,
            created_at: r.created_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// authorization codes

/// An authorization code to store.
#[derive(Debug, Clone)]
pub struct NewOAuthCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The client it is bound to.
    pub client_id: String,
    /// The signer who approved it.
    pub user_id: UserId,
    /// `service` or `credential`.
    pub scope: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorization request named it (then `oauth2/token` must repeat it).
    pub redirect_uri_given: bool,
    /// PKCE S256 `code_challenge`, if one was sent.
    pub code_challenge: Option<String>,
    /// Scope `credential`: the credential approved.
    pub credential_id: Option<CredentialId>,
    /// Scope `credential`: the number of signatures approved.
    pub num_signatures: Option<i32>,
    /// Scope `credential`: the hashes approved (digests), if any.
    pub hashes: Option<Vec<Vec<u8>>>,
    /// Scope `service`: the signer asked to stay signed in (a refresh token is issued).
    pub remember: bool,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
}

/// A stored authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The client it is bound to.
    pub client_id: String,
    /// The signer who approved it.
    pub user_id: UserId,
    /// `service` or `credential`.
    pub scope: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorization request named it.
    pub redirect_uri_given: bool,
    /// PKCE S256 `code_challenge`.
    pub code_challenge: Option<String>,
    /// Scope `credential`: the credential approved.
    pub credential_id: Option<CredentialId>,
    /// Scope `credential`: the number of signatures approved.
    pub num_signatures: Option<i32>,
    /// Scope `credential`: the hashes approved.
    pub hashes: Option<Vec<Vec<u8>>>,
    /// Scope `service`: issue a refresh token.
    pub remember: bool,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// Already exchanged (or presented) once.
    pub used: bool,
    /// SHA-256 of what it was exchanged for (refresh or access token, or SAD).
    pub issued_hash: Option<Vec<u8>>,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(primary_key(code_hash))]
#[diesel(table_name = co)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct CodeRow {
    pub(crate) code_hash: Vec<u8>,
    pub(crate) client_id: String,
    pub(crate) user_id: String,
    pub(crate) scope: String,
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_given: bool,
    pub(crate) code_challenge: Option<String>,
    pub(crate) credential_id: Option<String>,
    pub(crate) num_signatures: Option<i32>,
    pub(crate) hashes: Option<String>,
    pub(crate) remember: bool,
    pub(crate) expires_at: NaiveDateTime,
    pub(crate) used: bool,
    pub(crate) issued_hash: Option<Vec<u8>>,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) mac: Option<Vec<u8>>,
}

// a code buys tokens or a SAD for its user, credential, count and hashes
sealed!(CodeRow, "oauth_codes", |r| id: hex::encode(&r.code_hash), fields: [
    bytes(&r.code_hash),
    text(&r.client_id),
    text(&r.user_id),
    text(&r.scope),
    text(&r.redirect_uri),
    flag(r.redirect_uri_given),
    opt(r.code_challenge.as_deref().map(text)),
    opt(r.credential_id.as_deref().map(text)),
    opt(r.num_signatures.map(i64::from).map(int)),
    opt(r.hashes.as_deref().map(text)),
    flag(r.remember),
    time(r.expires_at),
    flag(r.used),
    opt(r.issued_hash.as_deref().map(bytes)),
    time(r.created_at),
]);

impl TryFrom<CodeRow> for OAuthCode {
    type Error = StorageError;
    fn try_from(r: CodeRow) -> Result<Self, StorageError> {
        Ok(OAuthCode {
            code_hash: r.code_hash,
            client_id: r.client_id,
            user_id: parse(&r.user_id, "user id")?,
            scope: r.scope,
            redirect_uri: r.redirect_uri,
            redirect_uri_given: r.redirect_uri_given,
            code_challenge: r.code_challenge,
            credential_id: r
                .credential_id
                .as_deref()
                .map(|c| parse(c, "credential id"))
                .transpose()?,
            num_signatures: r.num_signatures,
            hashes: r
                .hashes
                .as_deref()
                .map(|h| decode_b64_list(h, "code hash list"))
                .transpose()?,
            remember: r.remember,
            expires_at: r.expires_at,
            used: r.used,
            issued_hash: r.issued_hash,
            created_at: r.created_at,
        })
    }
}

/// What presenting a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// No such code.
    Unknown,
    /// This call used the code (it was unused); check its expiry and bindings.
    Redeemed(OAuthCode),
    /// The code had been used before: a replay.
    AlreadyUsed(OAuthCode),
}

impl Conn<'_> {
    /// Registers a client. [`StorageError::Conflict`] if the `client_id` exists.
    pub fn create_oauth_client(
        &mut self,
        new: &NewOAuthClient,
    ) -> Result<OAuthClient, StorageError> {
        let mut row = ClientRow {
            client_id: new.client_id.clone(),
            name: new.name.clone(),
            redirect_uris: serde_json::to_string(&new.redirect_uris)
                .map_err(|_| corrupt("redirect URI list"))?,
            secret_hash: new.secret_hash.clone(),
            created_at: utc_now(),
            mac: None,
        };
        self.seal(&mut row)?;
        diesel::insert_into(oc::table)
            .values(&row)
            .execute(self.conn)?;
        OAuthClient::try_from(row)
    }

    /// The client with this `client_id`.
    pub fn oauth_client(&mut self, client_id: &str) -> Result<Option<OAuthClient>, StorageError> {
        let row = oc::table
            .find(client_id)
            .get_result::<ClientRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(OAuthClient::try_from).transpose()
    }

    /// Every registered client, by name.
    pub fn list_oauth_clients(&mut self) -> Result<Vec<OAuthClient>, StorageError> {
        let rows = oc::table
            .order((oc::name.asc(), oc::client_id.asc()))
            .load::<ClientRow>(self.conn)?;
        self.admit_all(rows)?
            .into_iter()
            .map(OAuthClient::try_from)
            .collect()
    }

    /// Stores a pending authorization request. [`StorageError::NotFound`] if the client does
    /// not exist.
    pub fn insert_oauth_request(&mut self, new: &NewOAuthRequest) -> Result<(), StorageError> {
        let mut row = RequestRow {
            request_hash: new.request_hash.clone(),
            client_id: new.client_id.clone(),
            params: new.params.clone(),
            user_id: None,
            expires_at: truncate_to_micros(new.expires_at),
            created_at: utc_now(),
            mac: None,
        };
        self.seal(&mut row)?;
        diesel::insert_into(orq::table)
            .values(&row)
            .execute(self.conn)
            .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// The pending request with this handle digest (expired ones included: check
    /// `expires_at`).
    pub fn oauth_request(&mut self, hash: &[u8]) -> Result<Option<OAuthRequest>, StorageError> {
        let row = orq::table
            .find(hash)
            .get_result::<RequestRow>(self.conn)
            .optional()?;
        self.admit_opt(row)?.map(OAuthRequest::try_from).transpose()
    }

    /// Records the signer of a pending request, once: `true` iff it had none, was unexpired
    /// at `now`, and this call set it.
    pub fn bind_oauth_request_user(
        &mut self,
        hash: &[u8],
        user: &UserId,
        now: NaiveDateTime,
    ) -> Result<bool, StorageError> {
        let now = truncate_to_micros(now);
        let bound = modify!(
            self,
            orq,
            RequestRow,
            hash.to_vec(),
            |r: &mut RequestRow| {
                if r.user_id.is_some() || r.expires_at <= now {
                    return Ok(None);
                }
                r.user_id = Some(user.to_string());
                Ok(Some(()))
            }
        )?;
        Ok(bound.is_some())
    }

    /// Ends a pending request; `true` iff this call removed it (so of two concurrent
    /// approvals only one proceeds).
    pub fn delete_oauth_request(&mut self, hash: &[u8]) -> Result<bool, StorageError> {
        Ok(diesel::delete(orq::table.find(hash)).execute(self.conn)? == 1)
    }

    /// Stores an authorization code. [`StorageError::NotFound`] if the client, user or
    /// credential does not exist.
    pub fn insert_oauth_code(&mut self, new: &NewOAuthCode) -> Result<(), StorageError> {
        let mut row = CodeRow {
            code_hash: new.code_hash.clone(),
            client_id: new.client_id.clone(),
            user_id: new.user_id.to_string(),
            scope: new.scope.clone(),
            redirect_uri: new.redirect_uri.clone(),
            redirect_uri_given: new.redirect_uri_given,
            code_challenge: new.code_challenge.clone(),
            credential_id: new.credential_id.map(|c| c.to_string()),
            num_signatures: new.num_signatures,
            hashes: new.hashes.as_deref().map(encode_b64_list).transpose()?,
            remember: new.remember,
            expires_at: truncate_to_micros(new.expires_at),
            used: false,
            issued_hash: None,
            created_at: utc_now(),
            mac: None,
        };
        self.seal(&mut row)?;
        diesel::insert_into(co::table)
            .values(&row)
            .execute(self.conn)
            .map_err(fk_as_not_found)?;
        Ok(())
    }

    /// Presents a code: marks it used in ONE conditional update (`used = false` → `true`), so
    /// of any number of concurrent presentations, on one instance or several, exactly one gets
    /// [`CodeRedemption::Redeemed`]. Expiry and bindings are the caller's to check on the
    /// returned record (an expired code is used up too).
    pub fn redeem_oauth_code(&mut self, hash: &[u8]) -> Result<CodeRedemption, StorageError> {
        self.atomic_conn(|c| {
            let won = modify!(c, co, CodeRow, hash.to_vec(), |r: &mut CodeRow| {
                if r.used {
                    return Ok(None);
                }
                r.used = true;
                Ok(Some(()))
            })?
            .is_some();
            let row = co::table
                .find(hash)
                .get_result::<CodeRow>(c.conn)
                .optional()?;
            let Some(row) = c.admit_opt(row)? else {
                return Ok(CodeRedemption::Unknown);
            };
            let code = OAuthCode::try_from(row)?;
            Ok(if won {
                CodeRedemption::Redeemed(code)
            } else {
                CodeRedemption::AlreadyUsed(code)
            })
        })
    }

    /// Records what a code was exchanged for (the digest of a token or SAD).
    pub fn set_oauth_code_issued(
        &mut self,
        hash: &[u8],
        issued_hash: &[u8],
    ) -> Result<(), StorageError> {
        modify!(self, co, CodeRow, hash.to_vec(), |r: &mut CodeRow| {
            r.issued_hash = Some(issued_hash.to_vec());
            Ok(Some(()))
        })?
        .ok_or(StorageError::NotFound)
    }
}
