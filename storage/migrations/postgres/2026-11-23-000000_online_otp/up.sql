-- Online OTPs (credentials/sendOTP): the one pending code of a credential, as a SHA-256 digest,
-- until it is used once or expires. Keep identical to the SQLite migration.
CREATE TABLE online_otps (
    credential_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    code_hash     BYTEA NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
