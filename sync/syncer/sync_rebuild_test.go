package syncer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
)

// TestRebuildFromMySQL loses a data directory after syncing and rebuilds a
// new engine from MySQL: every SKU comes back with total = the summary's
// available (reserved stock is not resold), the old tables are archived, and
// the new engine syncs and reconciles cleanly into fresh tables.
func TestRebuildFromMySQL(t *testing.T) {
	seed := testSeed(t)
	db := openTestDB(t, testDatabase(t))
	ctx := context.Background()

	lost := openEngine(t, t.TempDir())
	s := Start(Config{DB: db, Log: lost.Log(), MarkSynced: lost.MarkSynced})
	if _, err := setupCatalog(ctx, lost); err != nil {
		t.Fatal(err)
	}
	runLoad(t, lost, seed, 2, 1500, 3*time.Second)
	catchUp(t, s, lost)
	s.Close()
	before := dumpTables(t, db)
	summary, err := engineState(lost)(ctx, before.checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	lostID := lost.Log().ID()
	lost.Close() // ...and its directory is gone.

	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	create := func(ctx context.Context, sku string, total int64) error {
		_, _, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: sku, Total: total})
		return err
	}
	rep, err := RebuildFromMySQL(ctx, db, "", eng.Log(), create)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.SKUs) != len(summary) || rep.Checkpoint != before.checkpoint || len(rep.Unknown) == 0 {
		t.Fatalf("report %+v, want %d SKUs at checkpoint %d", rep, len(summary), before.checkpoint)
	}
	var reserved int64
	for sku, c := range summary {
		got, err := eng.Get(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != c.Available || got.Available != c.Available || got.Reserved != 0 || got.Sold != 0 {
			t.Errorf("%s rebuilt as %+v from %+v", sku, got, c)
		}
		reserved += c.Reserved
	}
	if rep.NotResold != reserved {
		t.Errorf("not resold %d, want %d", rep.NotResold, reserved)
	}
	// The history is kept, renamed.
	var archived int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + rep.Archived[0]).Scan(&archived); err != nil || archived != len(before.flow) {
		t.Fatalf("archived flow rows %d (%v), want %d", archived, err, len(before.flow))
	}
	// The new checkpoint is pinned to the new log, deliberately; the archived
	// one stays pinned to the lost log.
	if id := checkpointLogID(t, db); id != eng.Log().ID() || id == lostID {
		t.Fatalf("rebuilt checkpoint pinned to %q, want the new log's %q", id, eng.Log().ID())
	}
	var archivedID string
	if err := db.QueryRow("SELECT log_id FROM "+rep.Archived[2]+" WHERE name = ?", CheckpointNameDefault).Scan(&archivedID); err != nil || archivedID != lostID {
		t.Fatalf("archived checkpoint pinned to %q (%v), want the lost log's %q", archivedID, err, lostID)
	}
	// A second rebuild into the now non-empty engine is refused.
	if _, err := RebuildFromMySQL(ctx, db, "", eng.Log(), create); !errors.Is(err, ErrNotFresh) {
		t.Fatalf("second rebuild: %v, want ErrNotFresh", err)
	}
	// The new engine syncs into the fresh tables and reconciles.
	s2 := Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced})
	defer s2.Close()
	acks := runLoad(t, eng, seed+1, 2, 500, 2*time.Second)
	catchUp(t, s2, eng)
	reconcileClean(t, db, engineState(eng))
	checkAcked(t, db, acks)
}
