package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestRetryWithoutUserWaitsForItsOriginal: a retry without a user_id of a
// deduct that is still waiting for its fsync, sent after a per-user limit was
// set on its SKU, waits for the original and replays it, as a retry does
// without the limit. It used to answer 400 (user_id required) at once,
// although the original then succeeded: the client heard "not applied" for a
// sale that was made.
func TestRetryWithoutUserWaitsForItsOriginal(t *testing.T) {
	var stall atomic.Bool
	release := make(chan struct{})
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if stall.Load() && strings.HasSuffix(op.Path, ".log") {
			switch op.Kind {
			case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
				<-release // a slow disk
			}
		}
		return nil
	}))
	e, err := Open(Options{Dir: "data", FS: fs, ExpiryTick: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustSet(t, e, "A", 10, 0)
	stall.Store(true)
	type answer struct {
		res Result
		err error
	}
	req := DeductRequest{RequestID: "d1", Items: []Item{{"A", 1}}}
	original := make(chan answer, 1)
	go func() {
		res, err := e.Deduct(ctx, req)
		original <- answer{res, err}
	}()
	waitFor(t, "the original pending", func() bool { _, _, busy := e.requests.peek("d1"); return busy })
	limit := int64(2)
	go e.SetSKU(ctx, SetSKURequest{SKU: "A", Total: 10, LimitPerUser: &limit}) // logged behind the original
	waitFor(t, "the limit set", func() bool { return e.ref("A").limit.Load() == 2 })
	retry := make(chan answer, 1)
	go func() {
		res, err := e.Deduct(ctx, req)
		retry <- answer{res, err}
	}()
	time.Sleep(20 * time.Millisecond) // let the retry reach the engine while the original waits
	stall.Store(false)
	close(release)
	o, r := <-original, <-retry
	if o.err != nil {
		t.Fatalf("original: %v", o.err)
	}
	if r.err != nil || !r.res.Replayed || r.res.Seq != o.res.Seq {
		t.Fatalf("retry while the original waited for its fsync: %+v %v (bad_request: %v), want a replay of seq %d",
			r.res, r.err, errors.Is(r.err, ErrBadRequest), o.res.Seq)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
