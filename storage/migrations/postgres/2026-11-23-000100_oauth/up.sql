-- OAuth 2.0 authorization server (CSC v1.0.4.0 §8.3), PostgreSQL flavour. Keep it logically
-- identical to ../../sqlite/2026-11-23-000100_oauth/up.sql (comments there).

ALTER TABLE auth_tokens ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE auth_tokens ADD CONSTRAINT auth_tokens_subject
    CHECK (user_id IS NOT NULL OR client_id IS NOT NULL);

CREATE TABLE oauth_clients (
    client_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL,
    secret_hash   BYTEA,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE oauth_requests (
    request_hash BYTEA   NOT NULL PRIMARY KEY,
    client_id    TEXT COLLATE "C" NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    params       TEXT    NOT NULL,
    user_id      TEXT COLLATE "C" REFERENCES users (id) ON DELETE CASCADE,
    expires_at   TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX oauth_requests_expires_at ON oauth_requests (expires_at);

CREATE TABLE oauth_codes (
    code_hash          BYTEA   NOT NULL PRIMARY KEY,
    client_id          TEXT COLLATE "C" NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id            TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope              TEXT    NOT NULL,
    redirect_uri       TEXT    NOT NULL,
    redirect_uri_given BOOLEAN NOT NULL,
    code_challenge     TEXT,
    credential_id      TEXT COLLATE "C" REFERENCES credentials (id) ON DELETE CASCADE,
    num_signatures     INTEGER,
    hashes             TEXT,
    remember           BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at         TIMESTAMP NOT NULL,
    used               BOOLEAN NOT NULL DEFAULT FALSE,
    issued_hash        BYTEA,
    created_at         TIMESTAMP NOT NULL
);
CREATE INDEX oauth_codes_expires_at ON oauth_codes (expires_at);
