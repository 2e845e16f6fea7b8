-- Keyed audit chain (issue 11, DESIGN.md trust model): records from `keyed_from` on are linked
-- with HMAC-SHA256 under the audit key (storage/src/audit.rs), which only the token can give.
-- Records before it were written with plain SHA-256 by an older version: a new database starts
-- keyed at record 1; an existing one at the record after its head. Such a switch point > 1
-- counts only once `keyed_mac` (an HMAC under the audit key over the switch point and the hash
-- before it) is written by `csc-server audit upgrade`, so an insider cannot move it to rewrite
-- records under the plain rule.
-- Keep it logically identical to ../../postgres/2026-12-02-000100_audit_keyed/up.sql.
ALTER TABLE audit_head ADD COLUMN keyed_from BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_head ADD COLUMN keyed_mac TEXT;
UPDATE audit_head SET keyed_from = seq + 1;
