-- Sessions that end (issue 11, "sole control that survives an insider"), SQLite flavour. Keep it
-- logically identical to ../../postgres/2026-12-02-000400_sessions/up.sql.

-- auth_tokens.family: SHA-256 of the first refresh token of the grant a token descends from
-- (its own hash for that first refresh token; NULL for a token issued without a refresh token).
-- Rotation keeps the family, so a reused (already rotated) refresh token revokes every token of
-- its grant in one statement, whatever the purge left of the parent_hash chain.
ALTER TABLE auth_tokens ADD COLUMN family BLOB;
CREATE INDEX auth_tokens_family ON auth_tokens (family);
-- a lock or an operator's disable revokes every token and SAD of the user
CREATE INDEX auth_tokens_user_id ON auth_tokens (user_id);
CREATE INDEX sads_user_id ON sads (user_id);

-- users.disabled: set by the operator (`csc-server user disable`), lifted only by `user enable`
-- (the login lock's `user unlock` does not touch it).
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- A client's own tokens (client_credentials) act only for the users an operator delegated to
-- that client (`csc-server client delegate CLIENT USER`). mac: the row MAC (unused until rows
-- are sealed, storage/src/integrity.rs).
CREATE TABLE client_delegations (
    client_id  TEXT      NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id    TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    mac        BLOB,
    PRIMARY KEY (client_id, user_id)
);
