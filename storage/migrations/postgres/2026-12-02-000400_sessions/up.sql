-- Sessions that end (issue 11, "sole control that survives an insider"), PostgreSQL flavour.
-- Keep it logically identical to ../../sqlite/2026-12-02-000400_sessions/up.sql (comments there).

ALTER TABLE auth_tokens ADD COLUMN family BYTEA;
CREATE INDEX auth_tokens_family ON auth_tokens (family);
CREATE INDEX auth_tokens_user_id ON auth_tokens (user_id);
CREATE INDEX sads_user_id ON sads (user_id);

ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE client_delegations (
    client_id  TEXT COLLATE "C" NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    mac        BYTEA,
    PRIMARY KEY (client_id, user_id)
);
