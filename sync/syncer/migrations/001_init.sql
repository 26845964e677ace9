-- 001_init: the syncer's tables. Works on MySQL 8 and MariaDB 10.11.
-- Ids are ASCII and case-sensitive ([A-Za-z0-9._:-], 1-64 bytes): binary
-- collation, so 'a' and 'A' are two SKUs, as they are in the engine.
-- Statements are separated by a line that ends with ';'.

-- One row per SKU per log record. (seq, sku) is the primary key, so a
-- re-delivered record can never add a second row; rows arrive in seq order,
-- which keeps inserts at the right edge of the clustered index.
CREATE TABLE IF NOT EXISTS stock_flow (
  seq        BIGINT UNSIGNED NOT NULL,
  sku        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  kind       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  request_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ref_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  user_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  qty        BIGINT NOT NULL,
  created_at DATETIME(3) NOT NULL,
  PRIMARY KEY (seq, sku)
) ENGINE=InnoDB;

-- One row per SKU: the fold of stock_flow.
CREATE TABLE IF NOT EXISTS stock_summary (
  sku        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  total      BIGINT NOT NULL,
  available  BIGINT NOT NULL,
  reserved   BIGINT NOT NULL,
  sold       BIGINT NOT NULL,
  last_seq   BIGINT UNSIGNED NOT NULL,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (sku)
) ENGINE=InnoDB;

-- The last log seq folded, written in the same transaction as the rows it covers.
CREATE TABLE IF NOT EXISTS sync_checkpoint (
  name       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq        BIGINT UNSIGNED NOT NULL,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB;
