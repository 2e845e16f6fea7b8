//! Public records and their database rows.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::error::StorageError;
use crate::schema::{auth_tokens, credential_factors, credentials, sads, users};
use crate::types::{
    AuthMode, CredentialId, CredentialStatus, FactorKind, Role, Scal, TokenKind, UserId,
};

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("invalid {what} in the database"))
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StorageError> {
    s.parse().map_err(|_| corrupt(what))
}

/// Encodes byte strings as a JSON array of standard base64 strings.
pub(crate) fn encode_b64_list(items: &[Vec<u8>]) -> Result<String, StorageError> {
    let strings: Vec<String> = items.iter().map(|i| B64.encode(i)).collect();
    serde_json::to_string(&strings).map_err(|_| corrupt("base64 list"))
}

/// Parses a JSON array of strings (base64 left encoded).
pub(crate) fn parse_string_list(json: &str, what: &str) -> Result<Vec<String>, StorageError> {
    serde_json::from_str(json).map_err(|_| corrupt(what))
}

/// Decodes a JSON array of standard base64 strings.
pub(crate) fn decode_b64_list(json: &str, what: &str) -> Result<Vec<Vec<u8>>, StorageError> {
    parse_string_list(json, what)?
        .iter()
        .map(|s| B64.decode(s).map_err(|_| corrupt(what)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// users

/// A new user; [`crate::Conn::create_user`] assigns the id and creation time.
#[derive(Clone)]
pub struct NewUser {
    /// Unique login name.
    pub name: String,
    /// Argon2 PHC string (hashing is the caller's job).
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A stored user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// Unique login name.
    pub name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// Consecutive failed logins.
    pub failed_logins: i32,
    /// Locked out after too many failures.
    pub locked: bool,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Disabled by an operator (`csc-server user disable`): no login, no session, no client
    /// acting for the user, until `user enable`.
    pub disabled: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("failed_logins", &self.failed_logins)
            .field("locked", &self.locked)
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct UserRow {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub failed_logins: i32,
    pub locked: bool,
    pub created_at: NaiveDateTime,
    pub mac: Option<Vec<u8>>,
    pub disabled: bool,
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;
    fn try_from(r: UserRow) -> Result<Self, StorageError> {
        Ok(User {
            id: parse(&r.id, "user id")?,
            name: r.name,
            password_hash: r.password_hash,
            role: parse(&r.role, "user role")?,
            failed_logins: r.failed_logins,
            locked: r.locked,
            created_at: r.created_at,
            disabled: r.disabled,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// credentials

/// A new credential. The caller chooses the id ([`CredentialId::new`]), so the key in the token
/// can be created under it before the row exists.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// Identifier (the CSC `credentialID`).
    pub id: CredentialId,
    /// Owner.
    pub user_id: UserId,
    /// Hex CKA_ID of the key in the token.
    pub key_id: String,
    /// Key type and size, e.g. "rsa-2048", "ec-p256".
    pub key_spec: String,
    /// DER certificates, signer first; may be empty until a certificate is issued.
    pub cert_chain: Vec<Vec<u8>>,
    /// Hex serial number of the signer certificate.
    pub cert_serial: Option<String>,
    /// Sole Control Assurance Level.
    pub scal: Scal,
    /// Maximum number of signatures one SAD may authorise.
    pub multisign: i32,
    /// Usable or not.
    pub status: CredentialStatus,
    /// How the credential is authorised.
    pub auth_mode: AuthMode,
    /// Free text shown to the user.
    pub description: Option<String>,
}

/// A stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Identifier (the CSC `credentialID`).
    pub id: CredentialId,
    /// Owner.
    pub user_id: UserId,
    /// Hex CKA_ID of the key in the token.
    pub key_id: String,
    /// Key type and size, e.g. "rsa-2048", "ec-p256".
    pub key_spec: String,
    /// The chain as stored: a JSON array of base64 DER certificates, signer first. Use
    /// [`Credential::cert_chain_der`] to decode it.
    pub cert_chain: String,
    /// Hex serial number of the signer certificate.
    pub cert_serial: Option<String>,
    /// Sole Control Assurance Level.
    pub scal: Scal,
    /// Maximum number of signatures one SAD may authorise.
    pub multisign: i32,
    /// Usable or not.
    pub status: CredentialStatus,
    /// How the credential is authorised.
    pub auth_mode: AuthMode,
    /// Free text shown to the user.
    pub description: Option<String>,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// The factors this credential requires, sorted. Covered by the credential's MAC: a
    /// missing factor row is an integrity violation, never a factor less to check.
    pub factors: Vec<FactorKind>,
}

/// The stored form of a factor set: sorted kinds, comma-separated.
pub(crate) fn encode_factor_set(kinds: &[FactorKind]) -> String {
    let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn parse_factor_set(s: &str) -> Result<Vec<FactorKind>, StorageError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(|k| parse(k, "factor set")).collect()
}

impl Credential {
    /// Parses a stored factor set.
    pub(crate) fn try_from_row_factors(s: &str) -> Result<Vec<FactorKind>, StorageError> {
        parse_factor_set(s)
    }

    /// The certificate chain as DER, signer first (empty if none was issued yet).
    pub fn cert_chain_der(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        decode_b64_list(&self.cert_chain, "certificate chain")
    }
}

#[derive(Clone, Queryable, Insertable, AsChangeset)]
#[diesel(table_name = credentials)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct CredentialRow {
    pub id: String,
    pub user_id: String,
    pub key_id: String,
    pub key_spec: String,
    pub cert_chain: String,
    pub cert_serial: Option<String>,
    pub scal: i32,
    pub multisign: i32,
    pub status: String,
    pub auth_mode: String,
    pub description: Option<String>,
    pub created_at: NaiveDateTime,
    pub factors: String,
    pub mac: Option<Vec<u8>>,
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StorageError;
    fn try_from(r: CredentialRow) -> Result<Self, StorageError> {
        Ok(Credential {
            id: parse(&r.id, "credential id")?,
            user_id: parse(&r.user_id, "user id")?,
            key_id: r.key_id,
            key_spec: r.key_spec,
            cert_chain: r.cert_chain,
            cert_serial: r.cert_serial,
            scal: Scal::try_from(r.scal).map_err(|_| corrupt("SCAL"))?,
            multisign: r.multisign,
            status: parse(&r.status, "credential status")?,
            auth_mode: parse(&r.auth_mode, "authorization mode")?,
            description: r.description,
            created_at: r.created_at,
            factors: parse_factor_set(&r.factors)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// factors

/// A key-activation factor of a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    /// The credential it protects.
    pub credential_id: CredentialId,
    /// PIN or OTP.
    pub kind: FactorKind,
    /// For a PIN: Argon2id over an HMAC computed in the token (`hsm-hmac-sha256:` + PHC
    /// string; sam::secrets). For an OTP: an "offline" TOTP whose seed is a secret key in the
    /// token, `hsm-totp:v1:<keyid-hex>:<digits>:<period>:<alg>` (never the seed; sam::totp), or
    /// the marker `online` for codes the server generates and sends on `credentials/sendOTP`
    /// (kept in `online_otps` as HMACs). Databases made before the seeds moved into the token
    /// hold a base32 seed here, which no longer verifies until `csc-server credential
    /// migrate-otp` moves it. Never logged.
    pub verifier: String,
    /// Consecutive failed verifications.
    pub failures: i32,
    /// Locked after too many failures.
    pub locked: bool,
    /// Highest TOTP time step accepted so far (anti-replay).
    pub last_otp_step: Option<i64>,
}

impl fmt::Debug for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Factor")
            .field("credential_id", &self.credential_id)
            .field("kind", &self.kind)
            .field("verifier", &"<redacted>")
            .field("failures", &self.failures)
            .field("locked", &self.locked)
            .field("last_otp_step", &self.last_otp_step)
            .finish()
    }
}

#[derive(Clone, Queryable, Insertable, AsChangeset)]
#[diesel(primary_key(credential_id, kind))]
#[diesel(table_name = credential_factors)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct FactorRow {
    pub credential_id: String,
    pub kind: String,
    pub verifier: String,
    pub failures: i32,
    pub locked: bool,
    pub last_otp_step: Option<i64>,
    pub mac: Option<Vec<u8>>,
}

impl TryFrom<FactorRow> for Factor {
    type Error = StorageError;
    fn try_from(r: FactorRow) -> Result<Self, StorageError> {
        Ok(Factor {
            credential_id: parse(&r.credential_id, "credential id")?,
            kind: parse(&r.kind, "factor kind")?,
            verifier: r.verifier,
            failures: r.failures,
            locked: r.locked,
            last_otp_step: r.last_otp_step,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// tokens

/// A new bearer token, identified by the SHA-256 of its value ([`crate::secret_hash`]).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// SHA-256 of the opaque token.
    pub token_hash: Vec<u8>,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The user it acts for; `None` for a client's own token (OAuth2 `client_credentials`),
    /// which then names its `client_id`.
    pub user_id: Option<UserId>,
    /// OAuth2 client it was issued to, if any.
    pub client_id: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// The refresh token that minted it, if any.
    pub parent_hash: Option<Vec<u8>>,
    /// The grant it descends from: the SHA-256 of the grant's first refresh token (that token's
    /// own hash for the first one); `None` for a token issued without a refresh token.
    /// Rotated refresh tokens and the access tokens they mint keep it, so a whole grant can be
    /// revoked at once ([`crate::Conn::revoke_token_family`]).
    pub family: Option<Vec<u8>>,
}

/// A stored bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// SHA-256 of the opaque token.
    pub token_hash: Vec<u8>,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The user it acts for; `None` for a client's own token (OAuth2 `client_credentials`).
    pub user_id: Option<UserId>,
    /// OAuth2 client it was issued to, if any.
    pub client_id: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// Revoked before expiry.
    pub revoked: bool,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// The refresh token that minted it, if any.
    pub parent_hash: Option<Vec<u8>>,
    /// The grant it descends from ([`NewToken::family`]).
    pub family: Option<Vec<u8>>,
}

impl Token {
    /// Not revoked and not expired at `now` (its SQL form: [`token_active_sql`]).
    pub fn is_active(&self, now: NaiveDateTime) -> bool {
        !self.revoked && self.expires_at > now
    }
}

/// [`Token::is_active`] as a filter on `auth_tokens`.
pub(crate) type TokenActiveSql = diesel::dsl::And<
    diesel::dsl::Eq<auth_tokens::revoked, bool>,
    diesel::dsl::Gt<auth_tokens::expires_at, NaiveDateTime>,
>;

/// The SQL form of [`Token::is_active`], for a query that counts active tokens without reading
/// them: the one place the rule is written as SQL.
pub(crate) fn token_active_sql(now: NaiveDateTime) -> TokenActiveSql {
    auth_tokens::revoked
        .eq(false)
        .and(auth_tokens::expires_at.gt(now))
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(primary_key(token_hash))]
#[diesel(table_name = auth_tokens)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct TokenRow {
    pub token_hash: Vec<u8>,
    pub kind: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub scope: String,
    pub expires_at: NaiveDateTime,
    pub revoked: bool,
    pub created_at: NaiveDateTime,
    pub parent_hash: Option<Vec<u8>>,
    pub mac: Option<Vec<u8>>,
    pub family: Option<Vec<u8>>,
}

impl TryFrom<TokenRow> for Token {
    type Error = StorageError;
    fn try_from(r: TokenRow) -> Result<Self, StorageError> {
        Ok(Token {
            token_hash: r.token_hash,
            kind: parse(&r.kind, "token kind")?,
            user_id: r
                .user_id
                .as_deref()
                .map(|u| parse(u, "user id"))
                .transpose()?,
            client_id: r.client_id,
            scope: r.scope,
            expires_at: r.expires_at,
            revoked: r.revoked,
            created_at: r.created_at,
            parent_hash: r.parent_hash,
            family: r.family,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// SADs

/// A new SAD record, identified by the SHA-256 of the opaque SAD.
#[derive(Debug, Clone)]
pub struct NewSad {
    /// SHA-256 of the opaque SAD.
    pub sad_hash: Vec<u8>,
    /// The signer.
    pub user_id: UserId,
    /// The credential it activates.
    pub credential_id: CredentialId,
    /// SHA-256 of the access token it was issued to.
    pub token_hash: Vec<u8>,
    /// Number of signatures it authorises.
    pub remaining: i32,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// SCAL 2: the exact multiset of hashes it authorises; `None` for SCAL 1.
    pub hashes: Option<Vec<Vec<u8>>>,
    /// When the signer's factors were verified for the transaction this SAD belongs to: now for
    /// `credentials/authorize`, the old SAD's value for a renewal (`extendTransaction`), so the
    /// transaction's maximum life is counted from the activation, not from the last renewal.
    pub authorized_at: NaiveDateTime,
}

/// A stored SAD record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sad {
    /// SHA-256 of the opaque SAD.
    pub sad_hash: Vec<u8>,
    /// The signer.
    pub user_id: UserId,
    /// The credential it activates.
    pub credential_id: CredentialId,
    /// SHA-256 of the access token it was issued to.
    pub token_hash: Vec<u8>,
    /// Signatures still allowed.
    pub remaining: i32,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// SCAL 2: hashes still unspent; `None` for SCAL 1.
    pub hashes: Option<Vec<Vec<u8>>>,
    /// Revoked (e.g. renewed by `extendTransaction`).
    pub revoked: bool,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// When the transaction it belongs to was authorized (UTC; see [`NewSad::authorized_at`]).
    pub authorized_at: NaiveDateTime,
}

impl Sad {
    /// Usable at `now`: not revoked, not expired, signatures left.
    pub fn is_usable(&self, now: NaiveDateTime) -> bool {
        sad_may_sign(self.revoked, self.expires_at, self.remaining, 1, now)
    }
}

/// THE rule of whether a SAD may give `n` more signatures at `now`: not revoked, not expired,
/// at least `n` signatures left. Rust callers use [`Sad::is_usable`]; spending applies it to
/// the row read under its lock (`sads::apply_spend`); a query that counts usable SADs without
/// reading them uses its SQL form for one signature, [`sad_usable_sql`].
pub(crate) fn sad_may_sign(
    revoked: bool,
    expires_at: NaiveDateTime,
    remaining: i32,
    n: i32,
    now: NaiveDateTime,
) -> bool {
    !revoked && expires_at > now && remaining >= n && n >= 1
}

/// [`sad_may_sign`] for one signature, as a filter on `sads`.
pub(crate) type SadUsableSql = diesel::dsl::And<
    diesel::dsl::And<
        diesel::dsl::Eq<sads::revoked, bool>,
        diesel::dsl::Gt<sads::expires_at, NaiveDateTime>,
    >,
    diesel::dsl::GtEq<sads::remaining, i32>,
>;

/// The SQL form of [`sad_may_sign`] with `n` = 1 (what [`Sad::is_usable`] says of a row): the
/// one place the rule is written as SQL.
pub(crate) fn sad_usable_sql(now: NaiveDateTime) -> SadUsableSql {
    sads::revoked
        .eq(false)
        .and(sads::expires_at.gt(now))
        .and(sads::remaining.ge(1))
}

#[derive(Clone, Queryable, Insertable, AsChangeset)]
#[diesel(primary_key(sad_hash))]
#[diesel(table_name = sads)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct SadRow {
    pub sad_hash: Vec<u8>,
    pub user_id: String,
    pub credential_id: String,
    pub token_hash: Vec<u8>,
    pub remaining: i32,
    pub expires_at: NaiveDateTime,
    pub hashes: Option<String>,
    pub revoked: bool,
    pub created_at: NaiveDateTime,
    pub mac: Option<Vec<u8>>,
    pub authorized_at: NaiveDateTime,
}

impl TryFrom<SadRow> for Sad {
    type Error = StorageError;
    fn try_from(r: SadRow) -> Result<Self, StorageError> {
        Ok(Sad {
            sad_hash: r.sad_hash,
            user_id: parse(&r.user_id, "user id")?,
            credential_id: parse(&r.credential_id, "credential id")?,
            token_hash: r.token_hash,
            remaining: r.remaining,
            expires_at: r.expires_at,
            hashes: r
                .hashes
                .as_deref()
                .map(|h| decode_b64_list(h, "SAD hash list"))
                .transpose()?,
            revoked: r.revoked,
            created_at: r.created_at,
            authorized_at: r.authorized_at,
        })
    }
}
