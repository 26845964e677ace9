package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/wal"
)

func rec(kind wal.Kind, id, ref, user string, items ...wal.Item) wal.Record {
	r := wal.Record{Kind: kind, TimeMs: 1_700_000_000_000, RequestID: id, RefID: ref, UserID: user, Items: items}
	if kind == wal.KindReserve {
		r.ExpiresAtMs = 1_700_000_900_000
	}
	return r
}

// script is a small history over two SKUs that uses every kind.
func script() []Entry {
	it := func(sku string, q int64) wal.Item { return wal.Item{SKU: sku, Qty: q} }
	rs := []wal.Record{
		rec(wal.KindSetTotal, "set-a", "", "", it("A", 100)),
		rec(wal.KindSetTotal, "set-b", "", "", it("b", 10)),
		rec(wal.KindDeduct, "d1", "", "u1", it("A", 3), it("b", 2)),
		rec(wal.KindReserve, "r1", "", "u2", it("A", 5)),
		rec(wal.KindReserve, "r2", "", "u2", it("b", 1)),
		rec(wal.KindConfirm, "r1", "", "u2", it("A", 5)),
		rec(wal.KindCancel, "r2", "", "u2", it("b", 1)),
		rec(wal.KindReserve, "r3", "", "", it("A", 7)),
		rec(wal.KindExpire, "r3", "", "", it("A", 7)),
		rec(wal.KindReturn, "ret1", "d1", "u1", it("A", 1)),
		rec(wal.KindRestock, "rs1", "", "", it("b", 4)),
		rec(wal.KindSetTotal, "set-a2", "", "", it("A", -20)),
		rec(wal.KindReserve, "r4", "", "u3", it("A", 2), it("b", 2)),
	}
	out := make([]Entry, len(rs))
	for i, r := range rs {
		out[i] = Entry{Seq: uint64(i + 1), Record: r}
	}
	return out
}

// scriptLogID is the id of the log script() stands for.
const scriptLogID = "5c41970000000000000000000000a001"

// scriptState is script()'s fold, by hand.
var scriptState = map[string]Counts{
	// A: total 100-20=80; sold 3+5-1=7; reserved 2; available 71.
	"A": {Total: 80, Available: 71, Reserved: 2, Sold: 7},
	// b: total 10+4=14; sold 2; reserved 2; available 10.
	"b": {Total: 14, Available: 10, Reserved: 2, Sold: 2},
}

func staticState(m map[string]Counts) StateAt {
	return func(context.Context, uint64) (map[string]Counts, error) { return m, nil }
}

func TestApplyBatchRedeliveryChangesNothing(t *testing.T) {
	dsn := testDatabase(t)
	db := openTestDB(t, dsn)
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db); err != nil { // idempotent
		t.Fatalf("second migrate: %v", err)
	}
	es := script()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n, cp, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[:8], now)
	if err != nil || n != 8 || cp != 8 {
		t.Fatalf("first batch: n=%d cp=%d err=%v", n, cp, err)
	}
	before := dumpTables(t, db)
	// The same batch again, later: nothing changes, not even updated_at.
	n, cp, err = applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[:8], now.Add(time.Hour))
	if err != nil || n != 0 || cp != 8 {
		t.Fatalf("re-delivery: n=%d cp=%d err=%v", n, cp, err)
	}
	if after := dumpTables(t, db); !after.equal(before) {
		t.Fatalf("re-delivery changed the tables:\nbefore %+v\nafter  %+v", before, after)
	}
	// An overlapping batch folds only what is new.
	n, cp, err = applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[5:], now)
	if err != nil || n != len(es)-8 || cp != uint64(len(es)) {
		t.Fatalf("overlap: n=%d cp=%d err=%v", n, cp, err)
	}
	full := dumpTables(t, db)
	if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again := dumpTables(t, db); !again.equal(full) {
		t.Fatal("re-delivering the whole history changed the tables")
	}
	// A batch that would leave a gap is refused and writes nothing.
	gap := []Entry{{Seq: uint64(len(es) + 2), Record: es[0].Record}}
	if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, gap, now); !errors.Is(err, ErrGap) {
		t.Fatalf("gap: err=%v, want ErrGap", err)
	}
	if again := dumpTables(t, db); !again.equal(full) {
		t.Fatal("a refused batch changed the tables")
	}
	if len(full.flow) != 15 { // one row per SKU per record
		t.Fatalf("flow rows %d, want 15", len(full.flow))
	}
	rep, err := Reconcile(ctx, db, CheckpointNameDefault, "", staticState(scriptState))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean {
		var sb strings.Builder
		rep.WriteTable(&sb)
		t.Fatalf("reconcile not clean:\n%s", sb.String())
	}
	// A wrong engine state is drift, and so is a summary row edited by hand.
	wrong := map[string]Counts{"A": scriptState["A"], "b": {Total: 14, Available: 11, Reserved: 1, Sold: 2}}
	if rep, err := Reconcile(ctx, db, CheckpointNameDefault, "", staticState(wrong)); err != nil || rep.Clean || len(rep.Drift) != 1 || rep.Drift[0].SKU != "b" {
		t.Fatalf("drift not found: %+v %v", rep, err)
	}
	if _, err := db.Exec("UPDATE stock_summary SET sold = sold + 1, available = available - 1 WHERE sku = 'A'"); err != nil {
		t.Fatal(err)
	}
	if rep, err := Reconcile(ctx, db, CheckpointNameDefault, "", staticState(scriptState)); err != nil || rep.Clean || rep.Drift[0].SKU != "A" {
		t.Fatalf("summary drift not found: %+v %v", rep, err)
	}
	// A name with no checkpoint row (a typo) cannot be checked: it is not
	// drift of every SKU against an empty state.
	if rep, err := Reconcile(ctx, db, "flashsal", "", staticState(map[string]Counts{})); !errors.Is(err, ErrUnknownCheckpoint) ||
		!strings.Contains(err.Error(), CheckpointNameDefault) {
		t.Fatalf("reconcile of an unknown name: %+v %v, want ErrUnknownCheckpoint naming %q", rep, err, CheckpointNameDefault)
	}
}

func TestFoldKeepsTotalEqualToParts(t *testing.T) {
	rows, deltas := foldBatch(script())
	if len(rows) != 15 {
		t.Fatalf("rows %d", len(rows))
	}
	got := map[string]Counts{}
	for _, d := range deltas {
		got[d.sku] = got[d.sku].Add(d.d)
	}
	for sku, want := range scriptState {
		if got[sku] != want {
			t.Errorf("%s: fold %+v, want %+v", sku, got[sku], want)
		}
	}
}

// TestSyncerRefusesForeignTables starts a syncer for a fresh log against
// tables that another (lost) log filled: it must stop, not mix the two. A
// checkpoint pinned to the other log stops it with ErrForeignLog; one pinned
// to none (written before log_id existed) and beyond the fresh log's end with
// ErrCheckpointAhead.
func TestSyncerRefusesForeignTables(t *testing.T) {
	for _, unpinned := range []bool{false, true} {
		t.Run(fmt.Sprintf("unpinned=%v", unpinned), func(t *testing.T) {
			db := openTestDB(t, testDatabase(t))
			ctx := context.Background()
			if err := Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, script(), time.Now()); err != nil {
				t.Fatal(err)
			}
			want := ErrForeignLog
			if unpinned {
				if _, err := db.Exec("UPDATE sync_checkpoint SET log_id = ''"); err != nil {
					t.Fatal(err)
				}
				want = ErrCheckpointAhead
			}
			eng := openEngine(t, t.TempDir())
			defer eng.Close()
			s := Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced})
			defer s.Close()
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := s.WaitSynced(wctx, 100); !errors.Is(err, want) {
				t.Fatalf("err %v, want %v", err, want)
			}
			if st := s.Status(); st.Running || st.Stopped == "" {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// closedAfterWait is a log that closes between the syncer's WaitDurable and
// its Read: every Read answers wal.ErrClosed, as the real log does after
// Close.
type closedAfterWait struct {
	Source
	reads atomic.Int64
}

func (c *closedAfterWait) Read(from, to uint64, fn func(uint64, []byte) error) error {
	c.reads.Add(1)
	return wal.ErrClosed
}

// TestSyncerStopsQuietlyWhenTheLogCloses: a log closed under the syncer is
// the end of the input, not a failure to retry: no error is counted and the
// syncer reads no more.
func TestSyncerStopsQuietlyWhenTheLogCloses(t *testing.T) {
	db := openTestDB(t, testDatabase(t))
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	ctx := context.Background()
	if _, _, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: "A", Total: 10}); err != nil {
		t.Fatal(err)
	}
	src := &closedAfterWait{Source: eng.Log()}
	s := Start(Config{DB: db, Log: src})
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for src.reads.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the syncer never read the log: %+v", s.Status())
		}
		time.Sleep(time.Millisecond)
	}
	// A retry would come after RetryBackoffMin; give it ten, twice.
	time.Sleep(10 * RetryBackoffMin)
	reads := src.reads.Load()
	time.Sleep(10 * RetryBackoffMin)
	now := src.reads.Load()
	if st := s.Status(); st.Errors != 0 || now != reads { // (Status reads the log itself: after the count)
		t.Fatalf("after the log closed: reads went from %d to %d, status %+v; want no more reads, no error", reads, now, st)
	}
}

// A checkpoint row at seq 0 (its syncer started, nothing folded yet) is
// known, however many other names sync_checkpoint holds: Reconcile compares
// it (clean here) rather than calling the name unknown.
func TestReconcileKnowsCheckpointAtZeroAmongManyNames(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, testDatabase(t))
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := db.ExecContext(ctx, "INSERT INTO sync_checkpoint (name, seq, log_id, updated_at) VALUES (?, 0, '', NOW(3))",
			fmt.Sprintf("a%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO sync_checkpoint (name, seq, log_id, updated_at) VALUES ('z', 0, '', NOW(3))"); err != nil {
		t.Fatal(err)
	}
	rep, err := Reconcile(ctx, db, "z", "", staticState(map[string]Counts{}))
	if err != nil || !rep.Clean {
		t.Fatalf("reconcile of checkpoint z at seq 0: %+v %v, want clean", rep, err)
	}
	if _, err := Reconcile(ctx, db, "zz", "", staticState(map[string]Counts{})); !errors.Is(err, ErrUnknownCheckpoint) {
		t.Fatalf("reconcile of an unknown name: %v, want ErrUnknownCheckpoint", err)
	}
}
