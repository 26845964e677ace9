package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
)

// setSKUs makes n records in eng: one SetSKU each, SKUs prefix-1..prefix-n.
func setSKUs(t testing.TB, eng *engine.Engine, prefix string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, _, err := eng.SetSKU(context.Background(), engine.SetSKURequest{SKU: fmt.Sprintf("%s-%d", prefix, i), Total: 10}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkpointLogID returns the log_id of the default checkpoint row.
func checkpointLogID(t testing.TB, db *sql.DB) string {
	t.Helper()
	var id string
	if err := db.QueryRow("SELECT log_id FROM sync_checkpoint WHERE name = ?", CheckpointNameDefault).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSyncerRefusesNewLogPastCheckpoint is the bug this pin fixes: a server
// started on a new, empty data directory against tables written from an
// older log, whose log has already passed the old checkpoint (sales went on
// while MySQL was down, or --demo made its catalog), used to have its records
// folded after the old log's and marked synced. It must stop with
// ErrForeignLog, write nothing and tell the engine nothing.
func TestSyncerRefusesNewLogPastCheckpoint(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()

	old := openEngine(t, t.TempDir())
	s := Start(Config{DB: db, Log: old.Log(), MarkSynced: old.MarkSynced})
	const n = 5
	setSKUs(t, old, "old", n)
	catchUp(t, s, old)
	s.Close()
	oldID := old.Log().ID()
	old.Close()
	before := dumpTables(t, db)
	if before.checkpoint != n || checkpointLogID(t, db) != oldID {
		t.Fatalf("old log synced to %d for log %q, want %d for %q", before.checkpoint, checkpointLogID(t, db), n, oldID)
	}

	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	setSKUs(t, eng, "new", n+3) // past the old checkpoint
	var marked []uint64
	s = Start(Config{DB: db, Log: eng.Log(), MarkSynced: func(seq uint64) {
		marked = append(marked, seq)
		eng.MarkSynced(seq)
	}})
	defer s.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := s.WaitSynced(wctx, eng.Log().Durable())
	if !errors.Is(err, ErrForeignLog) {
		t.Fatalf("syncing a new log onto the old log's tables: %v, want ErrForeignLog", err)
	}
	if msg := err.Error(); !strings.Contains(msg, oldID) || !strings.Contains(msg, eng.Log().ID()) {
		t.Fatalf("error does not name both logs: %v", err)
	}
	s.Close()
	if st := s.Status(); st.Running || !strings.Contains(st.Stopped, "another log") {
		t.Fatalf("status %+v", st)
	}
	if len(marked) != 0 || eng.Stats().SyncedSeq != 0 {
		t.Fatalf("the engine was told %v synced (SyncedSeq %d)", marked, eng.Stats().SyncedSeq)
	}
	if after := dumpTables(t, db); !after.equal(before) || checkpointLogID(t, db) != oldID {
		t.Fatal("the refused syncer changed the tables")
	}
}

// TestApplyBatchPinsCheckpoint: in the batch's own transaction, a row pinned
// to another log is refused before anything is folded, and a row pinned to
// none is claimed (even when every entry is re-delivered and nothing else is
// written).
func TestApplyBatchPinsCheckpoint(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	const otherID = "0000000000000000000000000000b002"
	es := script()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[:8], now); err != nil {
		t.Fatal(err)
	}
	if id := checkpointLogID(t, db); id != scriptLogID {
		t.Fatalf("new checkpoint pinned to %q, want %q", id, scriptLogID)
	}
	before := dumpTables(t, db)
	for _, batch := range [][]Entry{es[8:], es[:8], es} { // new, re-delivered, overlapping
		if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, otherID, batch, now); !errors.Is(err, ErrForeignLog) {
			t.Fatalf("batch from seq %d of another log: %v, want ErrForeignLog", batch[0].Seq, err)
		}
	}
	if after := dumpTables(t, db); !after.equal(before) || checkpointLogID(t, db) != scriptLogID {
		t.Fatal("a refused batch changed the tables")
	}

	// A row pinned to none (older than log_id) is claimed by the next batch,
	// here one that folds nothing.
	if _, err := db.Exec("UPDATE sync_checkpoint SET log_id = ''"); err != nil {
		t.Fatal(err)
	}
	if n, cp, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[:8], now); err != nil || n != 0 || cp != 8 {
		t.Fatalf("re-delivery after unpinning: %d %d %v", n, cp, err)
	}
	if id := checkpointLogID(t, db); id != scriptLogID {
		t.Fatalf("unpinned checkpoint claimed as %q, want %q", id, scriptLogID)
	}
	if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, otherID, es[8:], now); !errors.Is(err, ErrForeignLog) {
		t.Fatalf("after the claim, another log: %v, want ErrForeignLog", err)
	}
	if n, cp, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[8:], now); err != nil || n != len(es)-8 || cp != uint64(len(es)) {
		t.Fatalf("the rest from the pinned log: %d %d %v", n, cp, err)
	}
}

// TestMigrateAddsLogIDToOldCheckpoint: a database written by a binary that
// predates log_id (sync_checkpoint without the column, schema version 1)
// gets the column at the next start, with the row pinned to none; the first
// syncer claims it for its log and goes on folding; another log is then
// refused. Re-running the migration changes nothing.
func TestMigrateAddsLogIDToOldCheckpoint(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()
	dir := t.TempDir()
	eng := openEngine(t, dir)
	s := Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced})
	setSKUs(t, eng, "a", 4)
	catchUp(t, s, eng)
	s.Close()
	// Back to the old shape, as the old binary left it.
	if _, err := db.Exec("ALTER TABLE sync_checkpoint DROP COLUMN log_id"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM schema_migrations WHERE version > 1"); err != nil {
		t.Fatal(err)
	}
	if hasLogIDColumn(t, db) {
		t.Fatal("log_id still there")
	}
	// Reconcile reads the old shape too (the row is pinned to none).
	if rep, err := Reconcile(ctx, db, CheckpointNameDefault, eng.Log().ID(), engineState(eng)); err != nil || !rep.Clean {
		t.Fatalf("reconcile of the old schema: %+v %v", rep, err)
	}

	setSKUs(t, eng, "b", 3)
	s = Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced})
	catchUp(t, s, eng)
	s.Close()
	if !hasLogIDColumn(t, db) {
		t.Fatal("migration did not add log_id")
	}
	if id := checkpointLogID(t, db); id != eng.Log().ID() {
		t.Fatalf("checkpoint claimed as %q, want this log's %q", id, eng.Log().ID())
	}
	reconcileClean(t, db, engineState(eng))
	eng.Close()

	// The migration is re-runnable: recorded or not, the column stays as it is.
	if _, err := db.Exec("DELETE FROM schema_migrations WHERE version > 1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := Migrate(ctx, db); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
	}
	var versions int
	if err := db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&versions); err != nil || versions != SchemaVersion() {
		t.Fatalf("schema_migrations rows %d (%v), want %d", versions, err, SchemaVersion())
	}

	// Now pinned: a new log is refused.
	other := openEngine(t, t.TempDir())
	defer other.Close()
	setSKUs(t, other, "c", 10)
	s = Start(Config{DB: db, Log: other.Log(), MarkSynced: other.MarkSynced})
	defer s.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.WaitSynced(wctx, other.Log().Durable()); !errors.Is(err, ErrForeignLog) {
		t.Fatalf("another log after the claim: %v, want ErrForeignLog", err)
	}
}

func hasLogIDColumn(t testing.TB, db *sql.DB) bool {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sync_checkpoint' AND COLUMN_NAME = 'log_id'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestApplyBatchRefusesForkedHistory: a log with the checkpoint's id whose
// records at or below the checkpoint differ from what MySQL folded (a copied
// data directory, or a restored backup, that went on selling) is refused
// when its re-delivered records are compared; the shared part passes.
func TestApplyBatchRefusesForkedHistory(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	es := script()
	if _, cp, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[:7], now); err != nil || cp != 7 {
		t.Fatalf("fold: cp %d, %v", cp, err)
	}
	// The same history: re-delivery is fine.
	if n, cp, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[:3], now); err != nil || n != 0 || cp != 7 {
		t.Fatalf("re-delivery of the shared history: %d %d %v", n, cp, err)
	}
	// A fork: seqs 6..8 hold other records in this copy.
	fork := append([]Entry(nil), es[:8]...)
	for i := 5; i < 8; i++ {
		fork[i].Record.RequestID = fmt.Sprintf("fork-%d", i)
	}
	if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, fork[5:], now); !errors.Is(err, ErrForeignLog) {
		t.Fatalf("fork past the checkpoint: %v, want ErrForeignLog", err)
	}
	var cp uint64
	if err := db.QueryRow("SELECT seq FROM sync_checkpoint WHERE name = ?", CheckpointNameDefault).Scan(&cp); err != nil || cp != 7 {
		t.Fatalf("checkpoint after the refusal: %d %v, want 7", cp, err)
	}
}

// TestSyncerRefusesRestoredBackupPastCheckpoint: a data directory restored
// from a backup older than MySQL's checkpoint, which sold on while MySQL was
// unreachable, has the checkpoint's log id but another history past the
// backup: the syncer stops with ErrForeignLog at start and never tells the
// engine it is synced.
func TestSyncerRefusesRestoredBackupPastCheckpoint(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()
	backup := syncedPastBackup(t, db, func(a *engine.Engine) {
		for i := range 5 {
			if _, err := a.Deduct(ctx, engine.DeductRequest{RequestID: fmt.Sprintf("lost-%d", i), Items: []engine.Item{{SKU: "sku-1", Qty: 1}}}); err != nil {
				t.Fatal(err)
			}
		}
	})

	b := openEngine(t, backup)
	defer b.Close()
	if b.Log().ID() != checkpointLogID(t, db) {
		t.Fatal("the backup has another log id")
	}
	for i := range 6 {
		if _, err := b.Deduct(ctx, engine.DeductRequest{RequestID: fmt.Sprintf("new-%d", i), Items: []engine.Item{{SKU: "sku-2", Qty: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	wantRefused(t, db, b, "restored backup past the checkpoint")
}

// syncedPastBackup makes a data directory with two SKUs, copies it as a
// backup, lets the original go on (diverge) and syncs it into db: the backup
// has the checkpoint's log id and a history that stops before it.
func syncedPastBackup(t *testing.T, db *sql.DB, diverge func(*engine.Engine)) (backup string) {
	t.Helper()
	dir := t.TempDir()
	a := openEngine(t, dir)
	setSKUs(t, a, "sku", 2)
	a.Close()
	backup = t.TempDir() + "/backup"
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	a = openEngine(t, dir)
	diverge(a)
	s := Start(Config{DB: db, Log: a.Log(), MarkSynced: a.MarkSynced})
	catchUp(t, s, a)
	s.Close()
	a.Close()
	return backup
}

// wantRefused starts a syncer on b's log and wants it stopped with
// ErrForeignLog, the engine never told it is synced.
func wantRefused(t *testing.T, db *sql.DB, b *engine.Engine, what string) {
	t.Helper()
	sb := Start(Config{DB: db, Log: b.Log(), MarkSynced: b.MarkSynced})
	defer sb.Close()
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sb.WaitSynced(wctx, b.Log().Durable()); !errors.Is(err, ErrForeignLog) {
		t.Fatalf("%s: %v, want ErrForeignLog", what, err)
	}
	if got := b.Stats().SyncedSeq; got != 0 {
		t.Fatalf("%s: the engine was told it is synced to %d", what, got)
	}
}

// TestSyncerRefusesForkedSetTotalAtCheckpoint: every set_total record carries
// the engine's own request id, so comparing kind and request id alone took a
// restored backup whose record at the checkpoint is another set_total (of
// another SKU, another quantity, another time) for the record MySQL folded,
// and the backup's sales were folded on top of the other history. The whole
// record must match: the syncer stops with ErrForeignLog and writes nothing.
func TestSyncerRefusesForkedSetTotalAtCheckpoint(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()
	backup := syncedPastBackup(t, db, func(a *engine.Engine) {
		if _, _, err := a.SetSKU(ctx, engine.SetSKURequest{SKU: "sku-1", Total: 20}); err != nil {
			t.Fatal(err)
		}
	})
	before := dumpTables(t, db)

	b := openEngine(t, backup)
	defer b.Close()
	if _, _, err := b.SetSKU(ctx, engine.SetSKURequest{SKU: "sku-2", Total: 50}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Deduct(ctx, engine.DeductRequest{RequestID: fmt.Sprintf("b-%d", i), Items: []engine.Item{{SKU: "sku-2", Qty: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if b.Log().ID() != checkpointLogID(t, db) || before.checkpoint != 3 {
		t.Fatalf("set-up: backup log %s, checkpoint %d pinned to %s", b.Log().ID(), before.checkpoint, checkpointLogID(t, db))
	}
	wantRefused(t, db, b, "backup whose set_total at the checkpoint differs")
	if after := dumpTables(t, db); !after.equal(before) {
		t.Fatal("the refused syncer changed the tables")
	}

	// The batch's own check, on the last record it re-delivers, compares
	// whole records too.
	entries, err := readBatch(b.Log(), 1, b.Log().Durable(), BatchBytesMax)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, b.Log().ID(), entries, time.Now()); !errors.Is(err, ErrForeignLog) {
		t.Fatalf("batch re-delivering the backup's set_total at the checkpoint: %v, want ErrForeignLog", err)
	}
	if after := dumpTables(t, db); !after.equal(before) {
		t.Fatal("the refused batch changed the tables")
	}
}
