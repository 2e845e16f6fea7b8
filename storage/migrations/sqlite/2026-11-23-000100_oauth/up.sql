-- OAuth 2.0 authorization server (CSC v1.0.4.0 §8.3), SQLite flavour. Keep it logically
-- identical to ../../postgres/2026-11-23-000100_oauth/up.sql.
-- Every secret (client secret, authorization code, pending-request handle) is stored only as its
-- SHA-256 digest.

-- Service tokens of the client_credentials grant act for a client, not for a user: user_id
-- becomes optional (SQLite cannot drop NOT NULL in place, so the table is rebuilt).
CREATE TABLE auth_tokens_new (
    token_hash  BLOB    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    user_id     TEXT    REFERENCES users (id),
    client_id   TEXT,
    scope       TEXT    NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMP NOT NULL,
    parent_hash BLOB,
    CHECK (user_id IS NOT NULL OR client_id IS NOT NULL)
);
INSERT INTO auth_tokens_new (token_hash, kind, user_id, client_id, scope, expires_at, revoked, created_at, parent_hash)
    SELECT token_hash, kind, user_id, client_id, scope, expires_at, revoked, created_at, parent_hash FROM auth_tokens;
DROP TABLE auth_tokens;
ALTER TABLE auth_tokens_new RENAME TO auth_tokens;
CREATE INDEX auth_tokens_parent_hash ON auth_tokens (parent_hash);
CREATE INDEX auth_tokens_expires_at ON auth_tokens (expires_at);

-- Registered clients (`csc-server client add`). redirect_uris: a JSON array of exact URIs, the
-- first is the default. secret_hash: SHA-256 of a confidential client's secret; NULL for a
-- public client (which must use PKCE).
CREATE TABLE oauth_clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL,
    secret_hash   BLOB,
    created_at    TIMESTAMP NOT NULL
);

-- Authorization requests waiting on the consent page: the validated request (JSON), and the
-- signer once signed in. request_hash is the SHA-256 of the page's random handle.
CREATE TABLE oauth_requests (
    request_hash BLOB    NOT NULL PRIMARY KEY,
    client_id    TEXT    NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    params       TEXT    NOT NULL,
    user_id      TEXT    REFERENCES users (id) ON DELETE CASCADE,
    expires_at   TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX oauth_requests_expires_at ON oauth_requests (expires_at);

-- Authorization codes: single use (used flips once), short-lived, bound to the client, the
-- redirect URI and the PKCE challenge; for scope "credential" also to what the signer approved.
-- issued_hash: SHA-256 of what the code was exchanged for (the refresh or access token, or the
-- SAD), revoked if the code is presented again (RFC 6749 §4.1.2).
CREATE TABLE oauth_codes (
    code_hash          BLOB    NOT NULL PRIMARY KEY,
    client_id          TEXT    NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope              TEXT    NOT NULL,
    redirect_uri       TEXT    NOT NULL,
    redirect_uri_given BOOLEAN NOT NULL,
    code_challenge     TEXT,
    credential_id      TEXT    REFERENCES credentials (id) ON DELETE CASCADE,
    num_signatures     INTEGER,
    hashes             TEXT,
    remember           BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at         TIMESTAMP NOT NULL,
    used               BOOLEAN NOT NULL DEFAULT FALSE,
    issued_hash        BLOB,
    created_at         TIMESTAMP NOT NULL
);
CREATE INDEX oauth_codes_expires_at ON oauth_codes (expires_at);
