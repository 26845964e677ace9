package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFsyncFailure: once an fsync of the log fails, no change is acknowledged
// any more, and the engine says it is unhealthy.
func TestFsyncFailure(t *testing.T) {
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !failing.Load() || !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo, errorfs.OpFileWrite, errorfs.OpFileWriteAt:
			return errorfs.ErrInjected
		}
		return nil
	}))
	e, err := Open(Options{Dir: "data", FS: fs, ExpiryTick: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustSet(t, e, "A", 1_000_000, 0)
	for i := 0; i < 10; i++ {
		if _, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("ok%d", i), Items: []Item{{"A", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	failing.Store(true)
	var acked atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				_, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("f%d-%d", g, i), Items: []Item{{"A", 1}}})
				if err == nil {
					acked.Add(1)
				} else if !errors.Is(err, ErrUnavailable) {
					t.Errorf("want ErrUnavailable, got %v", err)
				}
			}
		}(g)
	}
	wg.Wait()
	if acked.Load() != 0 {
		t.Fatalf("%d deducts acknowledged after the fsync failed", acked.Load())
	}
	if e.Err() == nil || !errors.Is(e.Err(), ErrUnavailable) {
		t.Fatalf("engine healthy after a failed fsync: %v", e.Err())
	}
	if _, _, err := e.Restock(ctx, RestockRequest{RequestID: "rs", SKU: "A", Qty: 1}); err == nil {
		t.Fatal("restock acknowledged after the fsync failed")
	}
	if err := e.Close(); err == nil {
		t.Fatal("close reported success on a failed log")
	}
}
