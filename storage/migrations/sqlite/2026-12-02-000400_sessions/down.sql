DROP TABLE client_delegations;
ALTER TABLE users DROP COLUMN disabled;
DROP INDEX sads_user_id;
DROP INDEX auth_tokens_user_id;
DROP INDEX auth_tokens_family;
ALTER TABLE auth_tokens DROP COLUMN family;
