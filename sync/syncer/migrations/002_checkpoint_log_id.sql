-- 002_checkpoint_log_id: sync_checkpoint records which log its seq counts
-- in (wal.Log.ID, 32 hex characters), so that a new log is never folded
-- onto the tables of another one. '' = not yet claimed: the first syncer to
-- lock the row claims it for its log (rows written before this migration).
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS, so the column is added only when
-- information_schema does not list it: re-running this file changes nothing.
-- Statements are separated by a line that ends with ';'.
SET @flashsale_migrate_002 = (SELECT IF(COUNT(*) = 0,
  'ALTER TABLE sync_checkpoint ADD COLUMN log_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '''' AFTER seq',
  'DO 0')
  FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sync_checkpoint' AND COLUMN_NAME = 'log_id');
PREPARE flashsale_migrate_002 FROM @flashsale_migrate_002;
EXECUTE flashsale_migrate_002;
DEALLOCATE PREPARE flashsale_migrate_002;
