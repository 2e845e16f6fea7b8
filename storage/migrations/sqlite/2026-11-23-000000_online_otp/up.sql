-- Online OTPs (credentials/sendOTP): the one pending code of a credential, as a SHA-256 digest,
-- until it is used once or expires.
CREATE TABLE online_otps (
    credential_id TEXT NOT NULL PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    code_hash     BLOB NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
