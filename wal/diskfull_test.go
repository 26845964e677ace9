package wal

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFlushFailureFailsTheLog: a flush that cannot write its table (a full
// disk: Pebble's WAL file is preallocated, so commits still succeed until
// the memtables fill and writes stall) fails the log at once and for good:
// Err says so, Append refuses with ErrFailed, WaitDurable returns, and what
// was acknowledged stays acknowledged. Before, the log stayed healthy while
// every write stalled behind the failing flush.
func TestFlushFailureFailsTheLog(t *testing.T) {
	var full atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() && strings.HasSuffix(op.Path, ".sst") {
			switch op.Kind {
			case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync:
				return syscall.ENOSPC
			}
		}
		return nil
	})
	l := openLog(t, errorfs.Wrap(vfs.NewMem(), inj), Options{})
	defer l.Close()
	var last uint64
	for i := range 20 {
		last = appendWait(t, l, testRecord("r"+string(rune('a'+i))))
	}
	waited := make(chan error, 1)
	go func() {
		_, err := l.WaitDurable(context.Background(), last)
		waited <- err
	}()
	full.Store(true)
	if _, err := l.db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for l.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a flush failed with ENOSPC and the log still reports no error")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(l.Err(), ErrFailed) || !errors.Is(l.Err(), syscall.ENOSPC) {
		t.Fatalf("Err() = %v, want ErrFailed wrapping ENOSPC", l.Err())
	}
	if _, err := l.Append(testRecord("after"), newChanAck()); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after the failure: %v, want ErrFailed", err)
	}
	select {
	case err := <-waited:
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("WaitDurable: %v, want ErrFailed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("WaitDurable still waiting after the log failed")
	}
	if d := l.Durable(); d != last {
		t.Fatalf("durable %d, want %d (what was acknowledged)", d, last)
	}
}
