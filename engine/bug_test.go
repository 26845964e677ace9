package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// breakSKU makes id's counters disagree (total one above available +
// reserved + sold), so that the next change its actor applies panics in
// sku.apply: an invariant bug, injected. The actor must be idle: mustGet
// before it orders the actor's last touch of the state before this write.
func breakSKU(t *testing.T, e *Engine, id string) {
	t.Helper()
	mustGet(t, e, id)
	e.ref(id).s.total++
}

// closeWithin closes e, failing the test if Close does not return.
func closeWithin(t *testing.T, e *Engine) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close still blocked a minute after the engine found a bug")
	}
}

// holdActor keeps ref's actor busy answering a get until the test receives
// from the returned channel, so that what is sent meanwhile queues up.
func holdActor(e *Engine, ref *skuRef) chan SKUState {
	hold := make(chan SKUState)
	go e.root.Send(ref.pid, &getMsg{reply: hold})
	for ref.mailbox.status.Load() != mailboxRunning {
		runtime.Gosched()
	}
	return hold
}

// wantUnavailable wants n answers from errs within a minute, each
// ErrUnavailable.
func wantUnavailable(t *testing.T, errs <-chan error, n int, what string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for i := range n {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%s after the bug: %v, want ErrUnavailable", what, err)
			}
		case <-deadline:
			t.Fatalf("%s: %d of %d still unanswered a minute after the actor panicked", what, n-i, n)
		}
	}
}

// TestBugAnswersWaitingTakes: when a SKU actor panics (a broken invariant)
// while callers wait on it without a deadline (some in the batch it was
// deciding, some still in its mailbox), every one of them is answered with
// ErrUnavailable, none is acknowledged, and Close returns. They used to wait
// forever: the batch died with the panic, and the restarted actor decided it
// again (claimBusy on its own ids) or, after protoactor's restart limit,
// dropped the mailbox.
func TestBugAnswersWaitingTakes(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 1000, 0)
	breakSKU(t, e, "A")
	ref := e.ref("A")

	// Hold the actor (it blocks answering this get) so that every deduct
	// below is queued before it decides any: one batch of outMax, the rest
	// in the mailbox behind it.
	hold := holdActor(e, ref)
	const n = outBatchRecordsMax + 44
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := e.Deduct(context.Background(), DeductRequest{RequestID: fmt.Sprintf("d%d", i), Items: []Item{{"A", 1}}})
			errs <- err
		}()
	}
	for ref.mailbox.UserMessageCount() < n {
		runtime.Gosched()
	}
	<-hold

	wantUnavailable(t, errs, n, "deduct")
	if err := e.Err(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "invariant broken") {
		t.Fatalf("Err() = %v, want ErrUnavailable naming the broken invariant", err)
	}
	if _, err := e.Deduct(context.Background(), DeductRequest{RequestID: "late", Items: []Item{{"A", 1}}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("deduct after the bug: %v, want ErrUnavailable", err)
	}
	closeWithin(t, e)

	// Nothing was acknowledged, and nothing reached the log.
	e2 := openTest(t, dir, nil, nil)
	defer e2.Close()
	if st := mustGet(t, e2, "A"); st.Sold != 0 || st.Available != 1000 {
		t.Fatalf("after reopening: %+v, want nothing sold", st)
	}
}

// TestBugAnswersWaitingMultiSKU: a multi-SKU deduct whose apply panics in one
// SKU's actor (its record is already in the log) is answered, and Close
// returns. The coordinator used to wait forever for that actor's apply, and
// Close for the change in flight.
func TestBugAnswersWaitingMultiSKU(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 10, 0)
	mustSet(t, e, "B", 10, 0)
	breakSKU(t, e, "B")

	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := e.Deduct(context.Background(), DeductRequest{RequestID: "m1", Items: []Item{{"A", 1}, {"B", 1}}})
		done <- out{res, err}
	}()
	var o out
	select {
	case o = <-done:
	case <-time.After(time.Minute):
		t.Fatal("multi-SKU deduct still unanswered a minute after an actor panicked applying it")
	}
	// Its record was logged before the apply: it is durable, and the
	// answer says so (an error would claim nothing was applied).
	if o.err != nil || o.res.Seq == 0 {
		t.Fatalf("multi-SKU deduct: %+v %v, want its durable seq", o.res, o.err)
	}
	if err := e.Err(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Err() = %v, want ErrUnavailable", err)
	}
	if _, err := e.Deduct(context.Background(), DeductRequest{RequestID: "m2", Items: []Item{{"A", 1}, {"B", 1}}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("deduct after the bug: %v, want ErrUnavailable", err)
	}
	closeWithin(t, e)

	e2 := openTest(t, dir, nil, nil)
	defer e2.Close()
	for _, id := range []string{"A", "B"} {
		if st := mustGet(t, e2, id); st.Sold != 1 {
			t.Fatalf("after reopening, %s: %+v, want the acknowledged deduct", id, st)
		}
	}
}

// TestBugAnswersQueuedMessages: the messages queued behind a panic on a SKU
// actor (a multi-SKU deduct's prepare, a restock, a set) are answered with
// ErrUnavailable, not handled by the broken actor; nothing acknowledged is
// lost.
func TestBugAnswersQueuedMessages(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 10, 0)
	mustSet(t, e, "B", 10, 0)
	breakSKU(t, e, "A")
	ref := e.ref("A")

	hold := holdActor(e, ref)
	ctx := context.Background()
	calls := []func() error{
		func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "d1", Items: []Item{{"A", 1}}}) // panics
			return err
		},
		func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "m1", Items: []Item{{"A", 1}, {"B", 1}}})
			return err
		},
		func() error {
			_, _, err := e.Restock(ctx, RestockRequest{RequestID: "r1", SKU: "A", Qty: 1})
			return err
		},
		func() error {
			_, _, err := e.SetSKU(ctx, SetSKURequest{SKU: "A", Total: 20})
			return err
		},
	}
	errs := make(chan error, len(calls))
	for i, call := range calls {
		go func() { errs <- call() }()
		for ref.mailbox.UserMessageCount() < i+1 {
			runtime.Gosched()
		}
	}
	<-hold
	wantUnavailable(t, errs, len(calls), "call queued behind the bug")
	closeWithin(t, e)
	e2 := openTest(t, dir, nil, nil)
	defer e2.Close()
	for _, id := range []string{"A", "B"} {
		if st := mustGet(t, e2, id); st != (SKUState{SKU: id, Total: 10, Available: 10}) {
			t.Fatalf("after reopening, %s: %+v, want it untouched", id, st)
		}
	}
}

// TestRetryWaitsForItsQueuedOriginal: a retry must not be answered sold_out
// by the sold-out shortcut while its original is still queued at the SKU's
// actor, unclaimed: the original can still succeed (stock freed ahead of it),
// and the retry must then replay it.
func TestRetryWaitsForItsQueuedOriginal(t *testing.T) {
	ctx := context.Background()
	e := openTest(t, t.TempDir(), newFakeClock(), nil)
	defer e.Close()
	mustSet(t, e, "s", 2, 0)
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "r0", Items: []Item{{SKU: "s", Qty: 1}}}); err != nil {
		t.Fatal(err)
	}
	ref := e.ref("s")
	queued := func(n int32) {
		for ref.mailbox.userN.Load() != n {
			runtime.Gosched()
		}
	}
	deduct := func(id string) <-chan error {
		errc := make(chan error, 1)
		go func() {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: id, Items: []Item{{SKU: "s", Qty: 1}}})
			errc <- err
		}()
		return errc
	}
	// The actor's queue, behind a held get: t1 takes the last free unit, a
	// second get holds the actor once t1 is decided, r0's cancel frees a
	// unit, and d1 comes last.
	hold0 := holdActor(e, ref)
	t1 := deduct("t1")
	queued(1)
	hold1 := make(chan SKUState)
	go e.root.Send(ref.pid, &getMsg{reply: hold1})
	queued(2)
	cancelled := make(chan error, 1)
	go func() {
		_, err := e.Cancel(ctx, "r0")
		cancelled <- err
	}()
	queued(3)
	d1 := deduct("d1")
	queued(4)
	<-hold0
	for ref.available.Load() != 0 { // t1 decided; the actor is held again
		runtime.Gosched()
	}
	retry := deduct("d1")
	var early error
	select {
	case err := <-retry:
		early = fmt.Errorf("the retry of d1 was answered (%v) while d1 was still queued", err)
	case <-time.After(100 * time.Millisecond):
	}
	<-hold1
	if early != nil {
		t.Fatal(early)
	}
	for name, errc := range map[string]<-chan error{"t1": t1, "r0's cancel": cancelled, "d1": d1, "the retry of d1": retry} {
		if err := <-errc; err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if st := mustGet(t, e, "s"); st.Sold != 2 || st.Available != 0 || st.Reserved != 0 {
		t.Fatalf("after t1 and d1: %+v", st)
	}
}
