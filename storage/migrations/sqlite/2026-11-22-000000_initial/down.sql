DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE sads;
DROP TABLE auth_tokens;
DROP TABLE credential_factors;
DROP TABLE credentials;
DROP TABLE users;
