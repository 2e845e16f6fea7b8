-- Issue 11, "a SAD's life is capped": sads.authorized_at is when the signer's factors were
-- verified for the transaction the SAD belongs to. credentials/authorize (and the OAuth 2.0
-- consent) set it; credentials/extendTransaction copies it to the renewed SAD, so renewals can
-- never outlive authorized_at + the SAM's max_transaction_life. SADs stored before this
-- migration take their own creation time (a renewed one's transaction began no later). The
-- default only serves that backfill and fails closed: a row written without the column would
-- count as authorized in 1970, its transaction long over.
-- Keep it logically identical to ../../postgres/2026-12-02-000300_activation/up.sql.
ALTER TABLE sads ADD COLUMN authorized_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE sads SET authorized_at = created_at;
