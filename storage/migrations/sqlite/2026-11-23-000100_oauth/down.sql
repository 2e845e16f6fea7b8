DROP TABLE oauth_codes;
DROP TABLE oauth_requests;
DROP TABLE oauth_clients;
CREATE TABLE auth_tokens_old (
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
INSERT INTO auth_tokens_old (token_hash, kind, user_id, client_id, scope, expires_at, revoked, created_at, parent_hash)
    SELECT token_hash, kind, user_id, client_id, scope, expires_at, revoked, created_at, parent_hash
    FROM auth_tokens WHERE user_id IS NOT NULL;
DROP TABLE auth_tokens;
ALTER TABLE auth_tokens_old RENAME TO auth_tokens;
CREATE INDEX auth_tokens_parent_hash ON auth_tokens (parent_hash);
CREATE INDEX auth_tokens_expires_at ON auth_tokens (expires_at);
