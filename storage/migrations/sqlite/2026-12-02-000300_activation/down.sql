ALTER TABLE sads DROP COLUMN authorized_at;
