package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// insertRowsMax caps the rows of one multi-row INSERT statement (flow rows or
// summary upserts); a batch with more rows sends several statements inside
// its one transaction. 1000 rows of stock_flow are about 200 KB of SQL, far
// below MySQL's smallest max_allowed_packet default (4 MiB on MariaDB, 64 MiB
// on MySQL 8).
const insertRowsMax = 1000

// Sentinel errors. Each is wrapped with context; compare with errors.Is.
var (
	// ErrGap: the records handed to the fold do not start right after the
	// checkpoint, or skip a seq. Folding them would lose records, so nothing
	// is written. From the log it means records below what MySQL holds were
	// truncated: permanent, an operator must look.
	ErrGap = errors.New("syncer: gap between checkpoint and records")
	// ErrCheckpointAhead: MySQL's checkpoint is beyond the log's durable
	// seq, so the tables belong to another (lost or replaced) log. The
	// syncer refuses to write; see docs/sync.md, disaster recovery.
	ErrCheckpointAhead = errors.New("syncer: MySQL checkpoint is ahead of the log")
	// ErrFlowConflict: stock_flow already holds a row above the checkpoint,
	// which only a writer other than this syncer can have put there.
	ErrFlowConflict = errors.New("syncer: stock_flow has rows beyond the checkpoint")
	// ErrSchemaTooNew: the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("syncer: schema newer than this binary")
	// ErrForeignLog: the checkpoint row is pinned to another log
	// (sync_checkpoint.log_id is not this log's wal.Log.ID), so its seq
	// counts records of that log, not of this one. Folding would append
	// this log's records after the other's and mark records synced that
	// never were. Permanent: the syncer writes nothing; see docs/sync.md.
	ErrForeignLog = errors.New("syncer: MySQL checkpoint belongs to another log")
	// ErrUnknownCheckpoint: Reconcile was asked for a checkpoint name that
	// sync_checkpoint does not hold, while it holds others (a mistyped or
	// renamed --sync-name).
	ErrUnknownCheckpoint = errors.New("syncer: no such checkpoint")
)

// foreignLog is the ErrForeignLog error for checkpoint name pinned to
// pinned while this syncer reads log mine.
func foreignLog(name string, cp uint64, pinned, mine string) error {
	return fmt.Errorf("%w: checkpoint %q (seq %d) was written from log %s, this server's log is %s;"+
		" start the server on that log's data directory, or sync this log into another database, or, if that"+
		" log is lost, use --rebuild-from-mysql (docs/sync.md)", ErrForeignLog, name, cp, pinned, mine)
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// checkFolded compares e, a record of this log at or below the checkpoint,
// with what MySQL folded at its seq (stock_flow's rows there: kind,
// request_id, ref_id, user_id, each SKU's qty and created_at): a different
// record there means this log is not the one that wrote the checkpoint,
// though it has its id (a copied data directory, or one restored from an
// older backup, whose history then forked). That is ErrForeignLog. Kind and
// request id alone are not enough: every set_total carries the engine's own
// request id. A seq with no flow rows (archived by a rebuild) cannot be
// checked.
func checkFolded(ctx context.Context, q querier, name string, e *Entry) error {
	rs, err := q.QueryContext(ctx, "SELECT sku, kind, request_id, ref_id, user_id, qty,"+
		" DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') FROM stock_flow WHERE seq = ?", e.Seq)
	if err != nil {
		return fmt.Errorf("syncer: read stock_flow at seq %d: %w", e.Seq, err)
	}
	defer rs.Close()
	var folded []string
	var kind, reqID string
	for rs.Next() {
		var sku, refID, userID, at string
		var qty int64
		if err := rs.Scan(&sku, &kind, &reqID, &refID, &userID, &qty, &at); err != nil {
			return fmt.Errorf("syncer: read stock_flow at seq %d: %w", e.Seq, err)
		}
		folded = append(folded, fmt.Sprintf("%s %q %q %q %s %d %s", kind, reqID, refID, userID, sku, qty, at))
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("syncer: read stock_flow at seq %d: %w", e.Seq, err)
	}
	if len(folded) == 0 {
		return nil
	}
	rows, _ := foldBatch([]Entry{*e})
	mine := make([]string, len(rows))
	for i, r := range rows {
		mine[i] = fmt.Sprintf("%s %q %q %q %s %d %s", r.kind, r.requestID, r.refID, r.userID, r.sku, r.qty,
			r.createdAt.Format("2006-01-02 15:04:05.000000"))
	}
	sort.Strings(folded)
	sort.Strings(mine)
	if !slices.Equal(folded, mine) {
		return fmt.Errorf("%w: checkpoint %q: MySQL folded %s %q at seq %d (%s), this log has %s %q there (%s): the data directory is a copy"+
			" of the log that wrote the checkpoint, or an older backup of it, and their histories differ (docs/sync.md)",
			ErrForeignLog, name, kind, reqID, e.Seq, strings.Join(folded, "; "), e.Record.Kind, e.Record.RequestID, strings.Join(mine, "; "))
	}
	return nil
}

// errDuplicate matches MySQL's duplicate-key error.
var errDuplicate = &mysql.MySQLError{Number: 1062}

// applyBatch folds entries into MySQL as ONE transaction: it locks the
// checkpoint row (SELECT ... FOR UPDATE), skips every entry at or below it,
// inserts the rest as stock_flow rows, adds their deltas to stock_summary and
// moves the checkpoint to the last entry. Entries must have ascending,
// consecutive seqs. Applying the same entries again changes nothing (they
// are all at or below the checkpoint then): that, and the checkpoint being
// written in the same transaction as the rows, is the exactly-once argument
// (etcd's cindex). It returns how many entries it folded and the checkpoint
// after the call. When Commit fails the outcome is unknown; the next call
// finds out from the checkpoint.
//
// The entries come from the log whose wal.Log.ID is logID. The checkpoint
// row is pinned to one log: under the same lock, before anything is folded,
// a row pinned to another log is refused (ErrForeignLog, nothing written),
// and a row not yet pinned (new, or older than the log_id column) is claimed
// for logID, in this transaction.
func applyBatch(ctx context.Context, db *sql.DB, name, logID string, entries []Entry, now time.Time) (folded int, checkpoint uint64, err error) {
	if logID == "" {
		panic("syncer: applyBatch without a log id")
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("syncer: begin: %w", err)
	}
	defer tx.Rollback()

	cp, claimed, err := lockCheckpoint(ctx, tx, name, logID, now)
	if err != nil {
		return 0, 0, err
	}
	skip := 0
	for skip < len(entries) && entries[skip].Seq <= cp {
		skip++
	}
	if skip > 0 {
		// Re-delivered: MySQL must hold these very records, not another
		// log's with the same id and seqs.
		if err := checkFolded(ctx, tx, name, &entries[skip-1]); err != nil {
			return 0, cp, err
		}
	}
	entries = entries[skip:]
	if len(entries) == 0 {
		if claimed {
			// Nothing to fold, but keep the claim.
			if err := tx.Commit(); err != nil {
				return 0, cp, fmt.Errorf("syncer: commit the claim of checkpoint %q: %w", name, err)
			}
		}
		return 0, cp, nil // all re-delivered: nothing to do (the deferred Rollback releases the lock)
	}
	for i := range entries {
		if want := cp + 1 + uint64(i); entries[i].Seq != want {
			return 0, cp, fmt.Errorf("%w: checkpoint %d, expected seq %d, got %d", ErrGap, cp, want, entries[i].Seq)
		}
	}
	rows, deltas := foldBatch(entries)
	if err := insertFlow(ctx, tx, rows); err != nil {
		return 0, cp, err
	}
	if err := upsertSummary(ctx, tx, deltas, now); err != nil {
		return 0, cp, err
	}
	last := entries[len(entries)-1].Seq
	if _, err := tx.ExecContext(ctx, "UPDATE sync_checkpoint SET seq = ?, updated_at = ? WHERE name = ?",
		last, sqlTime(now), name); err != nil {
		return 0, cp, fmt.Errorf("syncer: update checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, cp, fmt.Errorf("syncer: commit (outcome unknown until the checkpoint is read again): %w", err)
	}
	return len(entries), last, nil
}

// lockCheckpoint reads the checkpoint row with FOR UPDATE, creating it at 0
// for logID when missing. A concurrent creator makes this fail with a
// duplicate key, which the caller's retry resolves. A row pinned to another
// log is ErrForeignLog; a row pinned to none (an empty log_id: written before
// the column existed) is claimed for logID (claimed is true; the caller commits
// the claim with the transaction).
func lockCheckpoint(ctx context.Context, tx *sql.Tx, name, logID string, now time.Time) (cp uint64, claimed bool, err error) {
	var pinned string
	err = tx.QueryRowContext(ctx, "SELECT seq, log_id FROM sync_checkpoint WHERE name = ? FOR UPDATE", name).Scan(&cp, &pinned)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO sync_checkpoint (name, seq, log_id, updated_at) VALUES (?, 0, ?, ?)",
			name, logID, sqlTime(now)); err != nil {
			return 0, false, fmt.Errorf("syncer: create checkpoint %q: %w", name, err)
		}
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("syncer: lock checkpoint %q: %w", name, err)
	}
	switch pinned {
	case logID:
		return cp, false, nil
	case "":
		if _, err := tx.ExecContext(ctx, "UPDATE sync_checkpoint SET log_id = ? WHERE name = ?", logID, name); err != nil {
			return 0, false, fmt.Errorf("syncer: claim checkpoint %q for log %s: %w", name, logID, err)
		}
		return cp, true, nil
	default:
		return 0, false, foreignLog(name, cp, pinned, logID)
	}
}

// insertFlow inserts rows with multi-row INSERTs of at most insertRowsMax rows.
func insertFlow(ctx context.Context, tx *sql.Tx, rows []flowRow) error {
	const head = "INSERT INTO stock_flow (seq, sku, kind, request_id, ref_id, user_id, qty, created_at) VALUES "
	var sb strings.Builder
	args := make([]any, 0, 8*min(len(rows), insertRowsMax))
	for start := 0; start < len(rows); start += insertRowsMax {
		chunk := rows[start:min(len(rows), start+insertRowsMax)]
		sb.Reset()
		sb.Grow(len(head) + len(chunk)*18)
		sb.WriteString(head)
		args = args[:0]
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?)")
			args = append(args, r.seq, r.sku, r.kind, r.requestID, r.refID, r.userID, r.qty, sqlTime(r.createdAt))
		}
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			if errors.Is(err, errDuplicate) {
				return fmt.Errorf("%w: %w", ErrFlowConflict, err)
			}
			return fmt.Errorf("syncer: insert %d flow rows from seq %d: %w", len(chunk), chunk[0].seq, err)
		}
	}
	return nil
}

// upsertSummary adds each delta to its SKU's stock_summary row, creating the
// row (from zero) for a new SKU.
func upsertSummary(ctx context.Context, tx *sql.Tx, deltas []skuDelta, now time.Time) error {
	const head = "INSERT INTO stock_summary (sku, total, available, reserved, sold, last_seq, updated_at) VALUES "
	const tail = " ON DUPLICATE KEY UPDATE total = total + VALUES(total), available = available + VALUES(available)," +
		" reserved = reserved + VALUES(reserved), sold = sold + VALUES(sold)," +
		" last_seq = GREATEST(last_seq, VALUES(last_seq)), updated_at = VALUES(updated_at)"
	at := sqlTime(now)
	var sb strings.Builder
	args := make([]any, 0, 7*min(len(deltas), insertRowsMax))
	for start := 0; start < len(deltas); start += insertRowsMax {
		chunk := deltas[start:min(len(deltas), start+insertRowsMax)]
		sb.Reset()
		sb.WriteString(head)
		args = args[:0]
		for i, d := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?)")
			args = append(args, d.sku, d.d.Total, d.d.Available, d.d.Reserved, d.d.Sold, d.lastSeq, at)
		}
		sb.WriteString(tail)
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("syncer: upsert %d summary rows: %w", len(chunk), err)
		}
	}
	return nil
}

// ReadCheckpoint returns the checkpoint called name (0 when it does not exist).
func ReadCheckpoint(ctx context.Context, db *sql.DB, name string) (uint64, error) {
	cp, _, err := readCheckpointRow(ctx, db, name)
	return cp, err
}

// readCheckpointRow returns the checkpoint called name and the id of the log
// it is pinned to (empty when it is pinned to none, or does not exist).
func readCheckpointRow(ctx context.Context, db *sql.DB, name string) (cp uint64, logID string, err error) {
	err = db.QueryRowContext(ctx, "SELECT seq, log_id FROM sync_checkpoint WHERE name = ?", name).Scan(&cp, &logID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("syncer: read checkpoint %q: %w", name, err)
	}
	return cp, logID, nil
}

// OpenDB opens a MySQL pool for dsn with the settings the syncer relies on:
// interpolateParams=true (no prepare round trip per statement), UTC, and
// dial/read/write timeouts when the DSN sets none, so that a hung server
// turns into an error and a retry instead of a stuck syncer.
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("syncer: parse dsn: %w", err)
	}
	cfg.InterpolateParams = true
	cfg.Loc = time.UTC
	if cfg.Timeout == 0 {
		cfg.Timeout = dialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = ioTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = ioTimeout
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Session time zone UTC, so DATETIME(3) values read back as written.
	cfg.Params["time_zone"] = "'+00:00'"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("syncer: dsn: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(poolConnsMax)
	db.SetMaxIdleConns(poolConnsMax)
	db.SetConnMaxLifetime(connLifetimeMax)
	return db, nil
}

// Pool and timeout limits of OpenDB.
const (
	dialTimeout     = 5 * time.Second  // connecting to MySQL; then an error and a retry
	ioTimeout       = 30 * time.Second // one read or write on the connection; then an error and a retry
	poolConnsMax    = 4                // the syncer uses one at a time; reconcile and status may add a few
	connLifetimeMax = 30 * time.Minute // connections are recycled after this long
)
