package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestPowerLossKeepsNewDataDir: a data directory that Open creates is made
// durable in its parent, so an acknowledged change survives a power loss
// (an in-memory file system that forgets whatever was not synced).
func TestPowerLossKeepsNewDataDir(t *testing.T) {
	for _, dir := range []string{"data", "srv/flash/data"} {
		fs := vfs.NewCrashableMem()
		e, err := Open(Options{Dir: dir, FS: fs, ExpiryTick: -1})
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, e, "A", 10, 0)
		res, err := e.Deduct(context.Background(), DeductRequest{RequestID: "d1", Items: []Item{{"A", 1}}})
		if err != nil {
			t.Fatal(err)
		}
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
		e.Close()
		e2, err := Open(Options{Dir: dir, FS: clone, ExpiryTick: -1})
		if err != nil {
			t.Fatalf("%s: open after power loss: %v", dir, err)
		}
		r2, err := e2.Deduct(context.Background(), DeductRequest{RequestID: "d1", Items: []Item{{"A", 1}}})
		if err != nil || !r2.Replayed || r2.Seq != res.Seq {
			t.Errorf("%s: deduct d1 (seq %d) lost in a power loss: %+v %v", dir, res.Seq, r2, err)
		}
		e2.Close()
	}
}

// TestOpenRefusesSnapshotAheadOfLog: a log lost (or restored from an older
// copy) beside a newer snapshot stops Open; serving would hand out seqs the
// snapshot covers, and the next recovery would skip those changes.
func TestOpenRefusesSnapshotAheadOfLog(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 100, 0)
	for i := range 10 {
		if _, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("d%d", i), Items: []Item{{"A", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil { // writes a snapshot at seq 11
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
	e, err := Open(Options{Dir: dir, ExpiryTick: -1})
	if err == nil {
		e.Close()
		t.Fatal("Open served a snapshot at seq 11 over an empty log")
	}
	if !strings.Contains(err.Error(), "ahead of the log") {
		t.Fatalf("Open: %v", err)
	}
}

// TestExpireDueDuringClose: an ExpireDue racing Close finishes (Close waits
// for it, or it is refused); it used to wait forever for actors Close had
// stopped.
func TestExpireDueDuringClose(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, nil)
	ctx := context.Background()
	const skus, perSKU = 50, 100
	for s := range skus {
		mustSet(t, e, fmt.Sprintf("S%d", s), perSKU, 0)
	}
	var wg sync.WaitGroup
	for s := range skus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSKU {
				if _, err := e.Reserve(ctx, ReserveRequest{RequestID: fmt.Sprintf("r%d-%d", s, i),
					Items: []Item{{fmt.Sprintf("S%d", s), 1}}, TTL: time.Second}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	clock.Advance(2 * time.Second)
	done := make(chan error, 1)
	go func() { _, err := e.ExpireDue(ctx); done <- err }()
	time.Sleep(2 * time.Millisecond)
	cerr := e.Close()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Errorf("ExpireDue during Close: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("ExpireDue still blocked a minute after Close returned (Close: %v)", cerr)
	}
}

// TestCloseTwiceWaitsForTheFirst: a Close that finds another one running
// waits for it and returns its result. It used to return nil at once, while
// the log was still open: reopening the directory then failed (lock held).
func TestCloseTwiceWaitsForTheFirst(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 10, 0)
	if err := e.enter(); err != nil { // a change in flight: the first Close waits for it
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- e.Close() }()
	for !e.closed.Load() {
		runtime.Gosched()
	}
	second := make(chan error, 1)
	go func() {
		err := e.Close()
		// Once any Close has returned, the directory is free again.
		e2, oerr := Open(Options{Dir: dir, ExpiryTick: -1})
		if oerr == nil {
			oerr = e2.Close()
		}
		second <- errors.Join(err, oerr)
	}()
	select {
	case err := <-second:
		// Only a Close that did not wait can end here: the first is held.
		t.Fatalf("second Close returned while the first was still closing: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	e.leave()
	if err := <-first; err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second Close, then reopen: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close after Close: %v", err)
	}
}

// TestRestockDuringCloseIsAnsweredAsDone: a restock that Close let finish is
// answered as done (it is durable), not as unavailable.
func TestRestockDuringCloseIsAnsweredAsDone(t *testing.T) {
	for range 5 {
		dir := t.TempDir()
		e := openTest(t, dir, nil, nil)
		mustSet(t, e, "A", 10, 0)
		type out struct {
			st  SKUState
			err error
		}
		ch := make(chan out, 1)
		go func() {
			st, _, err := e.Restock(context.Background(), RestockRequest{RequestID: "r1", SKU: "A", Qty: 5})
			ch <- out{st, err}
		}()
		for e.inflight.Load() == 0 && len(ch) == 0 {
			time.Sleep(10 * time.Microsecond)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		o := <-ch
		e2 := openTest(t, dir, nil, nil)
		total := mustGet(t, e2, "A").Total
		e2.Close()
		switch {
		case o.err == nil && (total != 15 || o.st.Total != 15):
			t.Fatalf("restock answered done (total %d) but the total after restart is %d", o.st.Total, total)
		case o.err != nil && total != 10:
			t.Fatalf("restock answered %v but it was applied: total after restart %d", o.err, total)
		}
	}
}

// TestRestockRacingCreate: a restock that finds a SKU while SetSKU is
// creating it is logged after the SKU's set_total, so the log still folds
// and the engine reopens.
func TestRestockRacingCreate(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	ctx := context.Background()
	for i := range 200 {
		sku := fmt.Sprintf("new%d", i)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); mustSet(t, e, sku, 10, 0) }()
		go func() {
			defer wg.Done()
			for {
				_, _, err := e.Restock(ctx, RestockRequest{RequestID: "rs-" + sku, SKU: sku, Qty: 5})
				if errors.Is(err, ErrUnknownSKU) {
					continue
				}
				if err != nil {
					t.Errorf("restock %s: %v", sku, err)
				}
				return
			}
		}()
		wg.Wait()
	}
	checkLiveEqualsFold(t, e)
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	e = openTest(t, dir, nil, nil)
	defer e.Close()
	for i := range 200 {
		if st := mustGet(t, e, fmt.Sprintf("new%d", i)); st.Total != 15 {
			t.Fatalf("new%d after reopen: %+v", i, st)
		}
	}
}

// TestSmallLogBatchHotSKU: with the log's BatchRecordsMax below what an
// actor batches, every sale is still logged (the actor hands the log no
// more than it takes); the live state used to drift from the log, sales
// answered unavailable yet applied in memory.
func TestSmallLogBatchHotSKU(t *testing.T) {
	e := openTest(t, t.TempDir(), nil, func(o *Options) { o.WAL.BatchRecordsMax = 32 })
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "hot", 100000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked int64
	var errs []error
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				_, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("g%d-%d", g, i), Items: []Item{{"hot", 1}}})
				mu.Lock()
				if err == nil {
					acked++
				} else {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d deducts failed, the first: %v", len(errs), errs[0])
	}
	if st := mustGet(t, e, "hot"); st.Sold != acked {
		t.Errorf("live sold %d, acknowledged %d", st.Sold, acked)
	}
	checkLiveEqualsFold(t, e)
}

// TestOpenRemovesUnfinishedSnapshots: a snapshot's temporary file left by a
// crash is removed at the next Open (and never read).
func TestOpenRemovesUnfinishedSnapshots(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 10, 0)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, snapshotName(99)+".tmp")
	if err := os.WriteFile(tmp, []byte("half a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	e = openTest(t, dir, nil, nil)
	defer e.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unfinished snapshot still there after Open: %v", err)
	}
	if st := mustGet(t, e, "A"); st.Total != 10 {
		t.Fatalf("A: %+v", st)
	}
}

// TestExpiryNotDelayedBySnapshot: a reservation is released at most about a
// tick after it expires, even while the background snapshot is slow (a big
// state, or the first snapshot after a restart, which loads the whole state
// again). The snapshot used to run on the expiry loop's goroutine, so no
// reservation was released until it was done.
func TestExpiryNotDelayedBySnapshot(t *testing.T) {
	var blocking atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.Contains(op.Path, snapshotPrefix) && blocking.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release // the snapshot is slow: it waits here until the test lets it go
		}
		return nil
	}))
	clock := newFakeClock()
	e, err := Open(Options{Dir: "data", FS: fs, Now: clock.Now, ExpiryTick: 5 * time.Millisecond, SnapshotEveryRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	released := false
	defer func() { // before Close, which waits for the snapshot
		if !released {
			close(release)
		}
	}()
	ctx := context.Background()
	mustSet(t, e, "A", 100, 0)
	res, err := e.Reserve(ctx, ReserveRequest{RequestID: "r1", Items: []Item{{"A", 1}}, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	blocking.Store(true)
	for i := range 10 { // past SnapshotEveryRecords: the next tick starts a snapshot
		if _, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("d%d", i), Items: []Item{{"A", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("no background snapshot started")
	}
	clock.Advance(2 * time.Second) // r1 is due now, while the snapshot is in progress
	deadline := time.Now().Add(10 * time.Second)
	for mustGet(t, e, "A").Reserved != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("reservation (expires at %d) still held 10 s after it was due, with a tick of 5 ms: expiry waits for the snapshot",
				res.ExpiresAtMs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	released = true
	close(release)
}

// TestSnapshotFailuresAreCounted: a background snapshot that fails (here its
// file cannot be created, as on a full disk) is counted in Stats, sales go
// on, and once the disk is back the next tick writes the snapshot.
func TestSnapshotFailuresAreCounted(t *testing.T) {
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.Contains(op.Path, snapshotPrefix) && failing.Load() {
			return errorfs.ErrInjected
		}
		return nil
	}))
	e, err := Open(Options{Dir: "data", FS: fs, ExpiryTick: 5 * time.Millisecond, SnapshotEveryRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	failing.Store(true)
	mustSet(t, e, "A", 100, 0)
	for i := range 10 {
		if _, err := e.Deduct(context.Background(), DeductRequest{RequestID: fmt.Sprintf("d%d", i), Items: []Item{{"A", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ok func(Stats) bool) Stats {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			if st := e.Stats(); ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute: %+v", what, e.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	st := waitFor("a failed snapshot counted", func(st Stats) bool { return st.SnapshotFailures > 0 })
	if st.SnapshotSeq != 0 {
		t.Fatalf("snapshot seq %d while every snapshot fails", st.SnapshotSeq)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("a failed snapshot made the engine unavailable: %v", err)
	}
	if _, err := e.Deduct(context.Background(), DeductRequest{RequestID: "after", Items: []Item{{"A", 1}}}); err != nil {
		t.Fatalf("deduct while snapshots fail: %v", err)
	}
	failing.Store(false)
	waitFor("a snapshot once the disk is back", func(st Stats) bool { return st.SnapshotSeq > 0 })
}
