package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrNotFresh: RebuildFromMySQL was given an engine that already has a log.
var ErrNotFresh = errors.New("syncer: rebuild needs a fresh, empty engine")

// ErrNothingToRebuild: stock_summary has no rows.
var ErrNothingToRebuild = errors.New("syncer: stock_summary is empty, nothing to rebuild")

// FreshLog is the new engine's log as RebuildFromMySQL sees it; *wal.Log
// implements it.
type FreshLog interface {
	ID() string
	Durable() uint64
}

// SKUCreator creates sku in the new engine with the given total (and no
// per-user limit), returning once that change is durable.
type SKUCreator func(ctx context.Context, sku string, total int64) error

// RebuiltSKU is one SKU restored by RebuildFromMySQL.
type RebuiltSKU struct {
	SKU      string `json:"sku"`
	Summary  Counts `json:"summary"`   // stock_summary as of the checkpoint
	NewTotal int64  `json:"new_total"` // the new engine's total (= summary.available)
}

// RebuildReport says what RebuildFromMySQL restored, where the old tables
// went, and what it could not know.
type RebuildReport struct {
	Checkpoint   uint64       `json:"checkpoint"`    // the last seq the lost log had synced
	CheckpointAt string       `json:"checkpoint_at"` // when (UTC)
	SKUs         []RebuiltSKU `json:"skus"`
	NotResold    int64        `json:"not_resold"` // units reserved at the checkpoint, held back
	Archived     []string     `json:"archived"`   // the old tables, renamed
	Unknown      []string     `json:"unknown"`    // what the rebuild could not know
}

// archiveSuffixLayout names archived tables: stock_flow_lost_20260102150405.
const archiveSuffixLayout = "20060102150405"

// RebuildFromMySQL restores SKUs into a fresh engine after its data directory
// was lost, from the MySQL tables the lost log was synced into. It is
// conservative ("rather undersell"): every SKU in stock_summary is created
// with total = summary.available, so stock that was reserved (in flight) is
// not sold again, and what was sold stays history in MySQL. Then, so that the
// new log (whose seqs start again at 1) folds into tables of its own, it
// renames stock_flow, stock_summary and sync_checkpoint to *_lost_<UTC time>
// and puts empty ones in their place, in one atomic RENAME TABLE. The new
// sync_checkpoint holds, from that same rename on, the row name at seq 0
// pinned to the new log (newLog.ID()): the rebuild is the one deliberate way
// to move a checkpoint's tables from one log to another.
//
// newLog is the new engine's Log(): its Durable() must be 0 (ErrNotFresh).
// The SKUs are created (durably) before the tables are renamed: a crash in
// between leaves MySQL untouched and the new engine non-empty; delete its
// data directory and run the rebuild again. Start the syncer only after this
// returns.
func RebuildFromMySQL(ctx context.Context, db *sql.DB, name string, newLog FreshLog, create SKUCreator) (*RebuildReport, error) {
	if d := newLog.Durable(); d != 0 {
		return nil, fmt.Errorf("%w: its log is at seq %d", ErrNotFresh, d)
	}
	logID := newLog.ID()
	if logID == "" || len(logID) > logIDBytesMax {
		panic(fmt.Sprintf("syncer: rebuild: the new log's id is %q, want 1..%d bytes", logID, logIDBytesMax))
	}
	if name == "" {
		name = CheckpointNameDefault
	}
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	rep := &RebuildReport{}
	if err := readForRebuild(ctx, db, name, rep); err != nil {
		return nil, err
	}
	if len(rep.SKUs) == 0 {
		return nil, ErrNothingToRebuild
	}
	for i := range rep.SKUs {
		s := &rep.SKUs[i]
		s.NewTotal = max(0, s.Summary.Available)
		rep.NotResold += s.Summary.Reserved
		if err := create(ctx, s.SKU, s.NewTotal); err != nil {
			return nil, fmt.Errorf("syncer: rebuild: create %s with total %d: %w", s.SKU, s.NewTotal, err)
		}
	}
	suffix := "_lost_" + time.Now().UTC().Format(archiveSuffixLayout)
	tables := []string{"stock_flow", "stock_summary", "sync_checkpoint"}
	var renames []string
	for _, t := range tables {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+t+"_new"); err != nil {
			return nil, fmt.Errorf("syncer: rebuild: %w", err)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE "+t+"_new LIKE "+t); err != nil {
			return nil, fmt.Errorf("syncer: rebuild: %w", err)
		}
		renames = append(renames, t+" TO "+t+suffix, t+"_new TO "+t)
		rep.Archived = append(rep.Archived, t+suffix)
	}
	// The new checkpoint is pinned to the new log before it takes the old
	// one's place, so no syncer ever sees it pinned to none.
	if _, err := db.ExecContext(ctx, "INSERT INTO sync_checkpoint_new (name, seq, log_id, updated_at) VALUES (?, 0, ?, ?)",
		name, logID, sqlTime(time.Now())); err != nil {
		return nil, fmt.Errorf("syncer: rebuild: pin the new checkpoint to log %s: %w", logID, err)
	}
	if _, err := db.ExecContext(ctx, "RENAME TABLE "+strings.Join(renames, ", ")); err != nil {
		return nil, fmt.Errorf("syncer: rebuild: archive old tables: %w", err)
	}
	open := 0
	for _, s := range rep.SKUs {
		if s.Summary.Reserved > 0 {
			open++
		}
	}
	rep.Unknown = []string{
		fmt.Sprintf("changes acknowledged after seq %d (synced at %s) were only in the lost log: they are in neither MySQL nor the new engine; sales among them can be sold again, and their buyers' retries are treated as new requests", rep.Checkpoint, rep.CheckpointAt),
		fmt.Sprintf("%d units reserved in %d SKUs at the checkpoint are held back (not resold); their reservations are unknown to the new engine, so confirm and cancel answer unknown_request", rep.NotResold, open),
		"per-user limits (limit_per_user) and what each user holds are not in MySQL: every SKU starts with no limit; set limits again with PUT /v1/skus/{sku}",
		"idempotency memory is lost: a request id used before the loss is a new request to the new engine, and returns of sales made before the loss answer unknown_request",
	}
	return rep, nil
}

// readForRebuild reads the checkpoint and every summary row in one
// consistent snapshot.
func readForRebuild(ctx context.Context, db *sql.DB, name string, rep *RebuildReport) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("syncer: rebuild: begin: %w", err)
	}
	defer tx.Rollback()
	var at sql.NullString
	err = tx.QueryRowContext(ctx, "SELECT seq, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM sync_checkpoint WHERE name = ?", name).
		Scan(&rep.Checkpoint, &at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("syncer: rebuild: checkpoint: %w", err)
	}
	rep.CheckpointAt = at.String
	if err := queryEach(ctx, tx, "SELECT sku, total, available, reserved, sold FROM stock_summary ORDER BY sku", func(rs *sql.Rows) error {
		var s RebuiltSKU
		if err := rs.Scan(&s.SKU, &s.Summary.Total, &s.Summary.Available, &s.Summary.Reserved, &s.Summary.Sold); err != nil {
			return err
		}
		rep.SKUs = append(rep.SKUs, s)
		return nil
	}); err != nil {
		return fmt.Errorf("syncer: rebuild: summary: %w", err)
	}
	sort.Slice(rep.SKUs, func(i, j int) bool { return rep.SKUs[i].SKU < rep.SKUs[j].SKU })
	return nil
}
