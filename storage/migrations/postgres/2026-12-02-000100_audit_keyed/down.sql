ALTER TABLE audit_head DROP COLUMN keyed_mac;
ALTER TABLE audit_head DROP COLUMN keyed_from;
