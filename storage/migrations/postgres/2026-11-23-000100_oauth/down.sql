DROP TABLE oauth_codes;
DROP TABLE oauth_requests;
DROP TABLE oauth_clients;
DELETE FROM auth_tokens WHERE user_id IS NULL;
ALTER TABLE auth_tokens DROP CONSTRAINT auth_tokens_subject;
ALTER TABLE auth_tokens ALTER COLUMN user_id SET NOT NULL;
