-- Row integrity (issue 11, DESIGN.md trust model): every security-relevant row carries an
-- HMAC-SHA256 under a key only the HSM can give (storage/src/integrity.rs). NULL = not sealed:
-- such a row is never used once the store runs with its keys (`csc-server integrity seal` seals
-- the rows of a database created before this migration, once).
-- credentials.factors: the set of factor kinds the credential requires (comma-separated,
-- sorted), covered by the credential's MAC, so deleting a factor row cannot drop a factor.
-- Keep it logically identical to ../../postgres/2026-12-02-000000_integrity/up.sql.
ALTER TABLE users ADD COLUMN mac BLOB;
ALTER TABLE credentials ADD COLUMN factors TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN mac BLOB;
ALTER TABLE credential_factors ADD COLUMN mac BLOB;
ALTER TABLE auth_tokens ADD COLUMN mac BLOB;
ALTER TABLE sads ADD COLUMN mac BLOB;
ALTER TABLE oauth_clients ADD COLUMN mac BLOB;
ALTER TABLE oauth_requests ADD COLUMN mac BLOB;
ALTER TABLE oauth_codes ADD COLUMN mac BLOB;
