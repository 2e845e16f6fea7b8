-- Initial schema, SQLite flavour. Keep it logically identical to
-- ../../postgres/2026-11-22-000000_initial/up.sql.
-- Times are TIMESTAMP columns holding diesel's text form ("YYYY-MM-DD HH:MM:SS.ffffff", UTC,
-- microseconds), which sorts and compares correctly as text.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE credentials (
    id          TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    key_id      TEXT    NOT NULL,
    key_spec    TEXT    NOT NULL,
    cert_chain  TEXT    NOT NULL DEFAULT '[]',
    cert_serial TEXT,
    scal        INTEGER NOT NULL,
    multisign   INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    auth_mode   TEXT    NOT NULL,
    description TEXT,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX credentials_user_id_id ON credentials (user_id, id);

CREATE TABLE credential_factors (
    credential_id TEXT    NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,
    verifier      TEXT    NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0,
    locked        BOOLEAN NOT NULL DEFAULT FALSE,
    last_otp_step BIGINT,
    PRIMARY KEY (credential_id, kind)
);

CREATE TABLE auth_tokens (
    token_hash  BLOB    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    client_id   TEXT,
    scope       TEXT    NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMP NOT NULL,
    parent_hash BLOB
);
CREATE INDEX auth_tokens_parent_hash ON auth_tokens (parent_hash);
CREATE INDEX auth_tokens_expires_at ON auth_tokens (expires_at);

CREATE TABLE sads (
    sad_hash      BLOB    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    credential_id TEXT    NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    token_hash    BLOB    NOT NULL,
    remaining     INTEGER NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    hashes        TEXT,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX sads_credential_id ON sads (credential_id);
CREATE INDEX sads_expires_at ON sads (expires_at);

-- seq is INTEGER PRIMARY KEY (the rowid alias, 64-bit) so the chain is stored in seq order.
CREATE TABLE audit_log (
    seq       INTEGER NOT NULL PRIMARY KEY,
    at        TIMESTAMP NOT NULL,
    event     TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
