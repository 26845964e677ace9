package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flashsale/flashsale/internal/testkit"

	"github.com/flashsale/flashsale/wal"
)

// fakeClock is an injected clock that tests move by hand.
type fakeClock = testkit.Clock

func newFakeClock() *fakeClock { return testkit.NewClock() }

func testSeed(t testing.TB) uint64 { return testkit.Seed(t) }

func openTest(t testing.TB, dir string, clock *fakeClock, tune func(*Options)) *Engine {
	t.Helper()
	o := Options{Dir: dir, ExpiryTick: -1}
	if clock != nil {
		o.Now = clock.Now
	}
	if tune != nil {
		tune(&o)
	}
	e, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return e
}

func mustSet(t testing.TB, e *Engine, sku string, total, limit int64) {
	t.Helper()
	if _, _, err := e.SetSKU(context.Background(), SetSKURequest{SKU: sku, Total: total, LimitPerUser: &limit}); err != nil {
		t.Fatalf("set %s: %v", sku, err)
	}
}

func mustGet(t testing.TB, e *Engine, sku string) SKUState {
	t.Helper()
	st, err := e.Get(context.Background(), sku)
	if err != nil {
		t.Fatalf("get %s: %v", sku, err)
	}
	return st
}

func code(err error) string {
	if err == nil {
		return "ok"
	}
	if c := CodeOf(err); c != nil {
		return c.Code
	}
	return err.Error()
}

// checkInvariants asserts the stock invariant (total == available + reserved + sold, nothing negative) for one SKU state.
func checkInvariants(t testing.TB, st SKUState) {
	t.Helper()
	if st.Available < 0 || st.Reserved < 0 || st.Sold < 0 || st.Total != st.Available+st.Reserved+st.Sold {
		t.Fatalf("invariant broken: %+v", st)
	}
}

// checkLiveEqualsFold asserts that every SKU's live state equals the fold of
// the durable log (snapshot + records): the actors and the log agree.
func checkLiveEqualsFold(t testing.TB, e *Engine) {
	t.Helper()
	st, err := e.StateAt(e.Log().Durable())
	if err != nil {
		t.Fatalf("state at durable: %v", err)
	}
	ids := e.SKUs()
	if len(st.SKUs()) != len(ids) {
		t.Fatalf("fold has %d skus, live %d", len(st.SKUs()), len(ids))
	}
	for _, id := range ids {
		live := mustGet(t, e, id)
		folded, ok := st.SKU(id)
		if !ok || folded != live {
			t.Fatalf("sku %s: live %+v, folded %+v", id, live, folded)
		}
	}
}

func TestDeductReserveConfirmCancelReturn(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, nil)
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "A", 10, 0)
	mustSet(t, e, "B", 5, 2)

	r1, err := e.Deduct(ctx, DeductRequest{RequestID: "d1", UserID: "u1", Items: []Item{{"A", 3}, {"B", 1}}})
	if err != nil || r1.Replayed || r1.Seq == 0 {
		t.Fatalf("deduct: %+v %v", r1, err)
	}
	again, err := e.Deduct(ctx, DeductRequest{RequestID: "d1", UserID: "u1", Items: []Item{{"A", 3}, {"B", 1}}})
	if err != nil || !again.Replayed || again.Seq != r1.Seq {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "d1", UserID: "u1", Items: []Item{{"A", 4}}}); !errors.Is(err, ErrRequestIDConflict) {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "d1", UserID: "u1", Items: []Item{{"A", 3}, {"B", 1}}}); !errors.Is(err, ErrRequestIDConflict) {
		t.Fatalf("deduct id reused for reserve: %v", err)
	}
	if got := mustGet(t, e, "A"); got.Available != 7 || got.Sold != 3 {
		t.Fatalf("A after deduct: %+v", got)
	}
	// Per-user limit on B (2): u1 holds 1, may take 1 more, not 2.
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "d2", UserID: "u1", Items: []Item{{"B", 2}}}); !errors.Is(err, ErrUserLimitExceeded) {
		t.Fatalf("limit: %v", err)
	}
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "d3", Items: []Item{{"B", 1}}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("user required: %v", err)
	}

	res, err := e.Reserve(ctx, ReserveRequest{RequestID: "r1", UserID: "u2", Items: []Item{{"A", 2}}, TTL: 10 * time.Second})
	if err != nil || res.ExpiresAtMs != clock.UnixMilli()+10_000 {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	if got := mustGet(t, e, "A"); got.Available != 5 || got.Reserved != 2 {
		t.Fatalf("A after reserve: %+v", got)
	}
	if _, err := e.Confirm(ctx, "d1"); !errors.Is(err, ErrNotAReservation) {
		t.Fatalf("confirm deduct: %v", err)
	}
	if _, err := e.Return(ctx, ReturnRequest{ReturnID: "ret0", RequestID: "r1", Items: []Item{{"A", 1}}}); !errors.Is(err, ErrReturnExceedsSold) {
		t.Fatalf("return of unconfirmed reservation: %v", err)
	}
	c1, err := e.Confirm(ctx, "r1")
	if err != nil {
		t.Fatalf("confirm: %v", err)
	}
	if c2, err := e.Confirm(ctx, "r1"); err != nil || !c2.Replayed || c2.Seq != c1.Seq {
		t.Fatalf("second confirm: %+v %v", c2, err)
	}
	if _, err := e.Cancel(ctx, "r1"); !errors.Is(err, ErrAlreadyConfirmed) {
		t.Fatalf("cancel after confirm: %v", err)
	}
	if got := mustGet(t, e, "A"); got.Reserved != 0 || got.Sold != 5 {
		t.Fatalf("A after confirm: %+v", got)
	}

	// Returns: in parts, never beyond what was sold.
	if _, err := e.Return(ctx, ReturnRequest{ReturnID: "ret1", RequestID: "d1", Items: []Item{{"A", 2}}}); err != nil {
		t.Fatalf("return: %v", err)
	}
	if rr, err := e.Return(ctx, ReturnRequest{ReturnID: "ret1", RequestID: "d1", Items: []Item{{"A", 2}}}); err != nil || !rr.Replayed {
		t.Fatalf("return replay: %+v %v", rr, err)
	}
	if _, err := e.Return(ctx, ReturnRequest{ReturnID: "ret2", RequestID: "d1", Items: []Item{{"A", 2}}}); !errors.Is(err, ErrReturnExceedsSold) {
		t.Fatalf("over-return: %v", err)
	}
	if _, err := e.Return(ctx, ReturnRequest{ReturnID: "ret3", RequestID: "nope", Items: []Item{{"A", 1}}}); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("unknown request: %v", err)
	}
	if got := mustGet(t, e, "A"); got.Sold != 3 || got.Available != 7 {
		t.Fatalf("A after return: %+v", got)
	}
	// u1 returned nothing of B, so the limit still binds; returning B frees it.
	if _, err := e.Return(ctx, ReturnRequest{ReturnID: "ret4", RequestID: "d1", Items: []Item{{"B", 1}}}); err != nil {
		t.Fatalf("return B: %v", err)
	}
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "d4", UserID: "u1", Items: []Item{{"B", 2}}}); err != nil {
		t.Fatalf("limit after return: %v", err)
	}

	// Cancel and expiry.
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "r2", UserID: "u3", Items: []Item{{"A", 1}}, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Cancel(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Confirm(ctx, "r2"); !errors.Is(err, ErrReservationCanceled) {
		t.Fatalf("confirm after cancel: %v", err)
	}
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "r3", UserID: "u3", Items: []Item{{"A", 1}}, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(1500 * time.Millisecond)
	if n, err := e.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if _, err := e.Confirm(ctx, "r3"); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("confirm after expiry: %v", err)
	}
	if got := mustGet(t, e, "A"); got.Reserved != 0 {
		t.Fatalf("A after expiry: %+v", got)
	}
	checkLiveEqualsFold(t, e)
}

// TestExpireDueSharesCommits: a tick's expiries are group-committed, not
// logged one fsync at a time (which released about 1,200 reservations a
// second, holding stock long past its TTL in a sale).
func TestExpireDueSharesCommits(t *testing.T) {
	const reservations = 2000
	var commits atomic.Int64
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, func(o *Options) {
		o.WAL.OnCommit = func(int, int, time.Duration) { commits.Add(1) }
	})
	defer e.Close()
	ctx := context.Background()
	for _, s := range []string{"A", "B"} {
		if _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: s, Total: reservations}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < reservations; i += 64 {
				sku := []string{"A", "B"}[i%2]
				_, err := e.Reserve(ctx, ReserveRequest{RequestID: fmt.Sprintf("r%d", i), UserID: fmt.Sprintf("u%d", i),
					Items: []Item{{sku, 1}}, TTL: time.Second})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	clock.Advance(1500 * time.Millisecond)
	before := commits.Load()
	n, err := e.ExpireDue(ctx)
	if err != nil || n != reservations {
		t.Fatalf("expired %d of %d: %v", n, reservations, err)
	}
	if c := commits.Load() - before; c > reservations/2 {
		t.Errorf("%d expiries took %d commits; they should share them", reservations, c)
	}
	for _, s := range []string{"A", "B"} {
		if got := mustGet(t, e, s); got.Reserved != 0 || got.Available != reservations {
			t.Errorf("%s after expiry: %+v", s, got)
		}
	}
	if _, err := e.Confirm(ctx, "r7"); !errors.Is(err, ErrReservationExpired) {
		t.Errorf("confirm after expiry: %v", err)
	}
	if n, err := e.ExpireDue(ctx); err != nil || n != 0 {
		t.Errorf("second pass expired %d: %v", n, err)
	}
	checkLiveEqualsFold(t, e)
}

func TestSoldOutAndInsufficient(t *testing.T) {
	e := openTest(t, t.TempDir(), nil, nil)
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "A", 3, 0)
	_, err := e.Deduct(ctx, DeductRequest{RequestID: "x1", Items: []Item{{"A", 5}}})
	var ie *ItemError
	if !errors.Is(err, ErrInsufficientStock) || !errors.As(err, &ie) || ie.Available != 3 || ie.SKU != "A" {
		t.Fatalf("insufficient: %v", err)
	}
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "x2", Items: []Item{{"A", 3}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "x3", Items: []Item{{"A", 1}}}); !errors.Is(err, ErrSoldOut) {
		t.Fatalf("sold out: %v", err)
	}
	// A retry of the request that succeeded still replays when sold out.
	if r, err := e.Deduct(ctx, DeductRequest{RequestID: "x2", Items: []Item{{"A", 3}}}); err != nil || !r.Replayed {
		t.Fatalf("replay when sold out: %+v %v", r, err)
	}
	if st := mustGet(t, e, "A"); !st.SoldOut {
		t.Fatalf("not sold out: %+v", st)
	}
	if _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: "A", Total: 2}); !errors.Is(err, ErrTotalBelowCommitted) {
		t.Fatalf("total below committed: %v", err)
	}
	if _, _, err := e.Restock(ctx, RestockRequest{RequestID: "rs1", SKU: "A", Qty: 4}); err != nil {
		t.Fatal(err)
	}
	st, res, err := e.Restock(ctx, RestockRequest{RequestID: "rs1", SKU: "A", Qty: 4})
	if err != nil || !res.Replayed || st.Total != 7 {
		t.Fatalf("restock replay: %+v %+v %v", st, res, err)
	}
	if _, _, err := e.Restock(ctx, RestockRequest{RequestID: "rs1", SKU: "A", Qty: 5}); !errors.Is(err, ErrRequestIDConflict) {
		t.Fatalf("restock conflict: %v", err)
	}
	if _, _, err := e.Restock(ctx, RestockRequest{RequestID: "rs2", SKU: "Z", Qty: 5}); !errors.Is(err, ErrUnknownSKU) {
		t.Fatalf("restock unknown: %v", err)
	}
}

// TestBadInput: every malformed request gets its error and changes nothing.
func TestBadInput(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, nil)
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "A", 100, 0)
	mustSet(t, e, "L", 100, 1)
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "res", UserID: "u", Items: []Item{{"A", 1}}, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	many := make([]Item, ItemsMax+1)
	for i := range many {
		many[i] = Item{fmt.Sprintf("s%d", i), 1}
	}
	long := strings.Repeat("x", 65)
	cases := []struct {
		name string
		do   func() error
		want *Error
	}{
		{"zero qty", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: []Item{{"A", 0}}})
			return err
		}, ErrBadRequest},
		{"negative qty", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: []Item{{"A", -1}}})
			return err
		}, ErrBadRequest},
		{"huge qty", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: []Item{{"A", QtyMax + 1}}})
			return err
		}, ErrBadRequest},
		{"empty id", func() error { _, err := e.Deduct(ctx, DeductRequest{Items: []Item{{"A", 1}}}); return err }, ErrBadRequest},
		{"long id", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: long, Items: []Item{{"A", 1}}})
			return err
		}, ErrBadRequest},
		{"bad id chars", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "a b", Items: []Item{{"A", 1}}})
			return err
		}, ErrBadRequest},
		{"bad user", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", UserID: "ü", Items: []Item{{"A", 1}}})
			return err
		}, ErrBadRequest},
		{"no items", func() error { _, err := e.Deduct(ctx, DeductRequest{RequestID: "b1"}); return err }, ErrBadRequest},
		{"too many items", func() error { _, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: many}); return err }, ErrBadRequest},
		{"sku twice", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: []Item{{"A", 1}, {"A", 1}}})
			return err
		}, ErrBadRequest},
		{"unknown sku", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: []Item{{"A", 1}, {"nope", 1}}})
			return err
		}, ErrUnknownSKU},
		{"user required", func() error {
			_, err := e.Deduct(ctx, DeductRequest{RequestID: "b1", Items: []Item{{"L", 1}}})
			return err
		}, ErrBadRequest},
		{"ttl too short", func() error {
			_, err := e.Reserve(ctx, ReserveRequest{RequestID: "b1", Items: []Item{{"A", 1}}, TTL: time.Millisecond})
			return err
		}, ErrBadRequest},
		{"return more than sold", func() error {
			_, err := e.Return(ctx, ReturnRequest{ReturnID: "rt", RequestID: "res", Items: []Item{{"A", 1}}})
			return err
		}, ErrReturnExceedsSold},
		{"confirm after expiry", func() error { _, err := e.Confirm(ctx, "res"); return err }, ErrReservationExpired},
		{"confirm unknown", func() error { _, err := e.Confirm(ctx, "nope"); return err }, ErrUnknownRequest},
		{"negative total", func() error { _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: "A", Total: -1}); return err }, ErrBadRequest},
		{"huge total", func() error { _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: "A", Total: TotalMax + 1}); return err }, ErrBadRequest},
	}
	for _, c := range cases {
		// The confirm after expiry legitimately logs the expiry the first
		// time; run it once before measuring "changes nothing".
		if c.name == "confirm after expiry" {
			c.do()
		}
		before := e.Log().Durable()
		a, l := mustGet(t, e, "A"), mustGet(t, e, "L")
		if err := c.do(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %s", c.name, err, c.want.Code)
		}
		if e.Log().Durable() != before || mustGet(t, e, "A") != a || mustGet(t, e, "L") != l {
			t.Errorf("%s: changed state", c.name)
		}
	}
}

// TestOpenChecksReservationTTLDefault: the default TTL obeys the bounds of a
// TTL a reservation names. Open used to take any value: with 1 µs every
// reservation without a TTL expired as it was made (a confirm answered
// reservation_expired), and one of days outlived ReservationTTLMax.
func TestOpenChecksReservationTTLDefault(t *testing.T) {
	for _, d := range []time.Duration{time.Microsecond, ReservationTTLMin - time.Millisecond, ReservationTTLMax + time.Millisecond} {
		e, err := Open(Options{Dir: t.TempDir(), ExpiryTick: -1, ReservationTTLDefault: d})
		if err == nil {
			e.Close()
			t.Errorf("ReservationTTLDefault %v: Open succeeded, want an error", d)
		}
	}
	for _, d := range []time.Duration{0, ReservationTTLMin, ReservationTTLMax} {
		clock := newFakeClock()
		e := openTest(t, t.TempDir(), clock, func(o *Options) { o.ReservationTTLDefault = d })
		ctx := context.Background()
		mustSet(t, e, "A", 1, 0)
		res, err := e.Reserve(ctx, ReserveRequest{RequestID: "r", Items: []Item{{"A", 1}}})
		ttl := d
		if ttl == 0 {
			ttl = ReservationTTLDefault
		}
		want := clock.UnixMilli() + ttl.Milliseconds()
		if err != nil || res.ExpiresAtMs != want {
			t.Errorf("ReservationTTLDefault %v: reserve %+v %v, want expiry at %d", d, res, err, want)
		}
		if _, err := e.Confirm(ctx, "r"); err != nil {
			t.Errorf("ReservationTTLDefault %v: confirm: %v", d, err)
		}
		e.Close()
	}
}

// TestRecoveryAndSnapshots: state survives Close/Open, with snapshots and
// truncation in between, and idempotency survives too.
func TestRecoveryAndSnapshots(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	tune := func(o *Options) { o.SnapshotEveryRecords = 50 }
	e := openTest(t, dir, clock, tune)
	ctx := context.Background()
	mustSet(t, e, "A", 1000, 0)
	mustSet(t, e, "B", 1000, 0)
	var seqs []uint64
	for i := 0; i < 300; i++ {
		r, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("d%d", i), Items: []Item{{"A", 1}, {"B", 2}}})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
		if i%100 == 99 {
			if err := e.snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e.Log().First() <= 1 {
		t.Fatalf("log not truncated: first %d", e.Log().First())
	}
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "keep", Items: []Item{{"A", 5}}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	wantA, wantB := mustGet(t, e, "A"), mustGet(t, e, "B")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openTest(t, dir, clock, tune)
	defer e.Close()
	if got := mustGet(t, e, "A"); got != wantA {
		t.Fatalf("A: %+v, want %+v", got, wantA)
	}
	if got := mustGet(t, e, "B"); got != wantB {
		t.Fatalf("B: %+v, want %+v", got, wantB)
	}
	for i, seq := range seqs {
		r, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("d%d", i), Items: []Item{{"A", 1}, {"B", 2}}})
		if err != nil || !r.Replayed || r.Seq != seq {
			t.Fatalf("d%d after restart: %+v %v (want seq %d)", i, r, err, seq)
		}
	}
	if _, err := e.Confirm(ctx, "keep"); err != nil {
		t.Fatalf("confirm after restart: %v", err)
	}
	checkLiveEqualsFold(t, e)
}

// TestHotSKUNeverOversells: many buyers race for little stock on one SKU and
// on multi-SKU baskets; exactly the stock is sold, never more.
func TestHotSKUNeverOversells(t *testing.T) {
	e := openTest(t, t.TempDir(), nil, nil)
	defer e.Close()
	ctx := context.Background()
	const stock, buyers = 500, 64
	mustSet(t, e, "hot", stock, 0)
	mustSet(t, e, "side", stock, 0)
	var sold atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// A watcher checks the invariants continuously while buyers run.
	var watchErr atomic.Value
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, id := range []string{"hot", "side"} {
				st, err := e.Get(ctx, id)
				if err == nil && (st.Available < 0 || st.Total != st.Available+st.Reserved+st.Sold) {
					watchErr.Store(fmt.Sprintf("%+v", st))
				}
			}
		}
	}()
	for b := 0; b < buyers; b++ {
		wg.Add(1)
		go func(b int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				items := []Item{{"hot", 1}}
				if i%3 == 0 {
					items = append(items, Item{"side", 1})
				}
				_, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("b%d-%d", b, i), Items: items})
				switch {
				case err == nil:
					sold.Add(1)
				case errors.Is(err, ErrSoldOut), errors.Is(err, ErrInsufficientStock):
				default:
					t.Errorf("deduct: %v", err)
				}
			}
		}(b)
	}
	wg.Wait()
	close(stop)
	if v := watchErr.Load(); v != nil {
		t.Fatalf("invariant broken during the run: %s", v)
	}
	hot := mustGet(t, e, "hot")
	if hot.Sold != stock || sold.Load() != stock || hot.Available != 0 {
		t.Fatalf("sold %d (acks %d), want %d: %+v", hot.Sold, sold.Load(), stock, hot)
	}
	checkLiveEqualsFold(t, e)
}

// TestConcurrentMixed: many goroutines, many SKUs, every operation; the
// invariants hold at the end and the live state equals the fold of the log.
func TestConcurrentMixed(t *testing.T) {
	seed := testSeed(t)
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, func(o *Options) { o.SnapshotEveryRecords = 500 })
	defer e.Close()
	ctx := context.Background()
	const skus = 20
	for i := 0; i < skus; i++ {
		mustSet(t, e, fmt.Sprintf("s%d", i), 200, int64(i%3))
	}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			var mine []string
			for i := 0; i < 150; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				user := fmt.Sprintf("u%d", rng.IntN(5))
				n := 1 + rng.IntN(3)
				var items []Item
				for _, k := range rng.Perm(skus)[:n] {
					items = append(items, Item{fmt.Sprintf("s%d", k), int64(1 + rng.IntN(3))})
				}
				var err error
				switch op := rng.IntN(10); {
				case op < 4:
					_, err = e.Deduct(ctx, DeductRequest{RequestID: id, UserID: user, Items: items})
				case op < 7:
					_, err = e.Reserve(ctx, ReserveRequest{RequestID: id, UserID: user, Items: items, TTL: time.Duration(1+rng.IntN(5)) * time.Second})
				case op == 7 && len(mine) > 0:
					_, err = e.Confirm(ctx, mine[rng.IntN(len(mine))])
				case op == 8 && len(mine) > 0:
					_, err = e.Cancel(ctx, mine[rng.IntN(len(mine))])
				case len(mine) > 0:
					ref := mine[rng.IntN(len(mine))]
					req, _ := e.requests.get(ref)
					if len(req.items) > 0 {
						_, err = e.Return(ctx, ReturnRequest{ReturnID: "ret-" + id, RequestID: ref, Items: []Item{{req.items[0].SKU, 1}}})
					}
				}
				if err == nil {
					mine = append(mine, id)
				} else if c := CodeOf(err); c == nil || c.Status >= 500 || c == ErrBadRequest {
					t.Errorf("%s: %v", id, err)
				}
				if i%50 == 0 {
					clock.Advance(time.Second)
					if _, err := e.ExpireDue(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	for _, id := range e.SKUs() {
		checkInvariants(t, mustGet(t, e, id))
	}
	checkLiveEqualsFold(t, e)
}

// model is a deliberately naive engine: it keeps every request and derives
// the counters from them on demand. The randomized test checks the real
// engine against it, operation by operation.
type model struct {
	now      int64
	skus     map[string]*mSKU
	reqs     map[string]*mReq
	returns  map[string]string // id -> body
	restocks map[string]string
}

type mSKU struct{ total, limit int64 }

type mReq struct {
	kind     string // deduct | reserve
	body     string
	user     string
	items    []Item
	status   string // deducted | reserved | confirmed | cancelled | expired
	expires  int64
	returned map[string]int64
}

func (m *model) counters(sku string) (avail, reserved, sold int64) {
	for _, r := range m.reqs {
		for _, it := range r.items {
			if it.SKU != sku {
				continue
			}
			switch r.status {
			case "reserved":
				reserved += it.Qty
			case "deducted", "confirmed":
				sold += it.Qty - r.returned[sku]
			}
		}
	}
	return m.skus[sku].total - reserved - sold, reserved, sold
}

func (m *model) holds(sku, user string) (n int64) {
	for _, r := range m.reqs {
		if r.user != user {
			continue
		}
		for _, it := range r.items {
			if it.SKU == sku && (r.status == "reserved" || r.status == "deducted" || r.status == "confirmed") {
				n += it.Qty - r.returned[sku]
			}
		}
	}
	return n
}

func (m *model) take(kind, id, user string, items []Item, ttl int64) string {
	body := fmt.Sprint(kind, user, items, ttl)
	for _, it := range items {
		if m.skus[it.SKU].limit > 0 && user == "" {
			return "bad_request"
		}
	}
	if r, ok := m.reqs[id]; ok {
		if r.body != body {
			return "request_id_conflict"
		}
		return "replayed"
	}
	for _, it := range items {
		avail, _, _ := m.counters(it.SKU)
		switch {
		case avail == 0:
			return "sold_out"
		case avail < it.Qty:
			return "insufficient_stock"
		case m.skus[it.SKU].limit > 0 && m.holds(it.SKU, user)+it.Qty > m.skus[it.SKU].limit:
			return "user_limit_exceeded"
		}
	}
	status := "deducted"
	if kind == "reserve" {
		status = "reserved"
	}
	m.reqs[id] = &mReq{kind: kind, body: body, user: user, items: items, status: status,
		expires: m.now + ttl, returned: map[string]int64{}}
	return "ok"
}

func (m *model) settle(id, kind string) string {
	r, ok := m.reqs[id]
	switch {
	case !ok:
		return "unknown_request"
	case r.kind != "reserve":
		return "not_a_reservation"
	case r.status == "confirmed" && kind == "confirm", r.status == "cancelled" && kind == "cancel":
		return "replayed"
	case r.status == "confirmed":
		return "already_confirmed"
	case r.status == "cancelled":
		return "reservation_cancelled"
	case r.status == "expired":
		return "reservation_expired"
	case m.now >= r.expires:
		r.status = "expired"
		return "reservation_expired"
	}
	r.status = map[string]string{"confirm": "confirmed", "cancel": "cancelled"}[kind]
	return "ok"
}

func (m *model) ret(retID, id string, items []Item) string {
	body := fmt.Sprint(id, items)
	if b, ok := m.returns[retID]; ok {
		if b != body {
			return "request_id_conflict"
		}
		return "replayed"
	}
	r, ok := m.reqs[id]
	if !ok {
		return "unknown_request"
	}
	for _, it := range items {
		var sold int64
		for _, ri := range r.items {
			if ri.SKU == it.SKU && (r.status == "deducted" || r.status == "confirmed") {
				sold = ri.Qty - r.returned[it.SKU]
			}
		}
		if sold < it.Qty {
			return "return_exceeds_sold"
		}
	}
	for _, it := range items {
		r.returned[it.SKU] += it.Qty
	}
	m.returns[retID] = body
	return "ok"
}

func (m *model) expireDue() {
	for _, r := range m.reqs {
		if r.status == "reserved" && r.expires <= m.now {
			r.status = "expired"
		}
	}
}

// TestModelRandomized drives the engine and the model with the same random
// operations (one at a time) and compares every answer and every SKU.
func TestModelRandomized(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	clock := newFakeClock()
	dir := t.TempDir()
	e := openTest(t, dir, clock, func(o *Options) { o.SnapshotEveryRecords = 100 })
	defer func() { e.Close() }()
	ctx := context.Background()
	m := &model{now: clock.UnixMilli(), skus: map[string]*mSKU{}, reqs: map[string]*mReq{},
		returns: map[string]string{}, restocks: map[string]string{}}
	skus := []string{"a", "b", "c", "d"}
	for i, s := range skus {
		limit := int64(0)
		if i == 3 {
			limit = 4
		}
		mustSet(t, e, s, 20, limit)
		m.skus[s] = &mSKU{total: 20, limit: limit}
	}
	users := []string{"", "u1", "u2"}
	var ids []string
	steps := 1500
	if os.Getenv("FLASHSALE_SOAK") != "" {
		steps = 50_000
	}
	for step := 0; step < steps; step++ {
		pickID := func() string {
			if len(ids) > 0 && rng.IntN(3) > 0 {
				return ids[rng.IntN(len(ids))]
			}
			return fmt.Sprintf("id%d", step)
		}
		randItems := func() []Item {
			var items []Item
			for _, k := range rng.Perm(len(skus))[:1+rng.IntN(2)] {
				items = append(items, Item{skus[k], int64(1 + rng.IntN(4))})
			}
			return items
		}
		var got, want, what string
		switch op := rng.IntN(12); {
		case op < 3 || op == 11:
			id, user, items := pickID(), users[rng.IntN(len(users))], randItems()
			if rng.IntN(4) == 0 {
				if r, ok := m.reqs[id]; ok && r.kind == "deduct" {
					user, items = r.user, r.items // a real retry
				}
			}
			what = fmt.Sprint("deduct ", id, user, items)
			res, err := e.Deduct(ctx, DeductRequest{RequestID: id, UserID: user, Items: items})
			got, want = code(err), m.take("deduct", id, user, items, 0)
			if err == nil && res.Replayed {
				got = "replayed"
			}
			ids = append(ids, id)
		case op < 6:
			id, user, items := pickID(), users[rng.IntN(len(users))], randItems()
			ttl := int64(1000 * (1 + rng.IntN(4)))
			what = fmt.Sprint("reserve ", id, user, items, ttl)
			res, err := e.Reserve(ctx, ReserveRequest{RequestID: id, UserID: user, Items: items, TTL: time.Duration(ttl) * time.Millisecond})
			got, want = code(err), m.take("reserve", id, user, items, ttl)
			if err == nil && res.Replayed {
				got = "replayed"
			}
			ids = append(ids, id)
		case op < 8:
			id := pickID()
			kind := []string{"confirm", "cancel"}[rng.IntN(2)]
			what = kind + " " + id
			var res Result
			var err error
			if kind == "confirm" {
				res, err = e.Confirm(ctx, id)
			} else {
				res, err = e.Cancel(ctx, id)
			}
			got, want = code(err), m.settle(id, kind)
			if err == nil && res.Replayed {
				got = "replayed"
			}
		case op < 10:
			id, retID := pickID(), fmt.Sprintf("ret%d", rng.IntN(step+1))
			items := randItems()
			for i := range items {
				items[i].Qty = int64(1 + rng.IntN(2))
			}
			what = fmt.Sprint("return ", retID, id, items)
			res, err := e.Return(ctx, ReturnRequest{ReturnID: retID, RequestID: id, Items: items})
			got, want = code(err), m.ret(retID, id, items)
			if err == nil && res.Replayed {
				got = "replayed"
			}
		default:
			d := time.Duration(rng.IntN(1500)) * time.Millisecond
			clock.Advance(d)
			m.now = clock.UnixMilli()
			if rng.IntN(2) == 0 {
				if _, err := e.ExpireDue(ctx); err != nil {
					t.Fatal(err)
				}
				m.expireDue()
			}
			what, got, want = "tick", "ok", "ok"
			if rng.IntN(50) == 0 {
				// Restart: recovery must give the same state.
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
				e = openTest(t, dir, clock, func(o *Options) { o.SnapshotEveryRecords = 100 })
				m.expireDue() // Open expires what is due
			}
		}
		if got != want {
			t.Fatalf("step %d %s: engine %s, model %s", step, what, got, want)
		}
		for _, s := range skus {
			st := mustGet(t, e, s)
			avail, reserved, sold := m.counters(s)
			if st.Available != avail || st.Reserved != reserved || st.Sold != sold || st.Total != m.skus[s].total {
				t.Fatalf("step %d %s: sku %s engine %+v, model avail %d reserved %d sold %d", step, what, s, st, avail, reserved, sold)
			}
		}
	}
	checkLiveEqualsFold(t, e)
}

// TestFoldRejectsImpossibleRecords: a record that does not fit the state
// (corruption) is refused and changes nothing.
func TestFoldRejectsImpossibleRecords(t *testing.T) {
	st := NewState()
	if err := st.Fold(1, &wal.Record{Kind: wal.KindSetTotal, RequestID: "x", Items: []wal.Item{{SKU: "a", Qty: 5}}}); err != nil {
		t.Fatal(err)
	}
	bad := []*wal.Record{
		{Kind: wal.KindDeduct, RequestID: "d", Items: []wal.Item{{SKU: "zz", Qty: 1}}},
		{Kind: wal.KindConfirm, RequestID: "nope", Items: []wal.Item{{SKU: "a", Qty: 1}}},
		// A return of a sale not remembered is bounded by what the SKU sold.
		{Kind: wal.KindReturn, RequestID: "r", RefID: "nope", Items: []wal.Item{{SKU: "a", Qty: 1}}},
	}
	for i, r := range bad {
		if err := st.Fold(uint64(2+i), r); err == nil {
			t.Errorf("record %d (%v) folded", i, r.Kind)
		}
	}
	if s, _ := st.SKU("a"); s.Total != 5 || s.Available != 5 || st.Seq != 1 {
		t.Fatalf("state changed: %+v seq %d", s, st.Seq)
	}
	if err := st.Fold(1, &wal.Record{Kind: wal.KindRestock, RequestID: "x", Items: []wal.Item{{SKU: "a", Qty: 1}}}); err == nil {
		t.Fatal("fold accepted an old seq")
	}

}

// TestFoldRejectsRecordsBeyondTheCounters: a record that would take a SKU's
// counters below zero (more sold than available, a confirm of more than is
// reserved, a total below what is committed) is refused with an error, as
// Fold's doc says, and changes nothing. Fold used to apply it and panic on
// the broken invariant, so recovery, ReadState (flashsale reconcile) and the
// snapshotter crashed on such a log instead of reporting it.
func TestFoldRejectsRecordsBeyondTheCounters(t *testing.T) {
	st := NewState()
	for i, r := range []*wal.Record{
		{Kind: wal.KindSetTotal, RequestID: "x", Items: []wal.Item{{SKU: "a", Qty: 5}}},
		{Kind: wal.KindReserve, RequestID: "r", ExpiresAtMs: 1, Items: []wal.Item{{SKU: "a", Qty: 1}}},
	} {
		if err := st.Fold(uint64(1+i), r); err != nil {
			t.Fatal(err)
		}
	}
	bad := []*wal.Record{
		{Kind: wal.KindDeduct, RequestID: "d", Items: []wal.Item{{SKU: "a", Qty: 5}}},
		{Kind: wal.KindReserve, RequestID: "d", ExpiresAtMs: 1, Items: []wal.Item{{SKU: "a", Qty: 5}}},
		{Kind: wal.KindConfirm, RequestID: "r", Items: []wal.Item{{SKU: "a", Qty: 2}}},
		{Kind: wal.KindSetTotal, RequestID: "x", Items: []wal.Item{{SKU: "a", Qty: -5}}},
		{Kind: wal.KindSetTotal, RequestID: "x", Items: []wal.Item{{SKU: "b", Qty: -1}}},
	}
	for i, r := range bad {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("record %d (%v): Fold panicked: %v", i, r.Kind, p)
				}
			}()
			if err := st.Fold(3, r); err == nil {
				t.Errorf("record %d (%v) folded", i, r.Kind)
			}
		}()
	}
	if s, _ := st.SKU("a"); s.Total != 5 || s.Available != 4 || s.Reserved != 1 || s.Sold != 0 || st.Seq != 2 {
		t.Fatalf("state changed: %+v seq %d", s, st.Seq)
	}
	if _, ok := st.SKU("b"); ok {
		t.Fatal("a refused set_total created sku b")
	}
}

// TestReturnOfSaleForgottenBySnapshotter: the snapshotter forgets ids on its
// own clock, so it may have forgotten a sale that the live engine still
// remembers and lets a return name. That acknowledged return must fold,
// and the engine must reopen with it.
func TestReturnOfSaleForgottenBySnapshotter(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	const window = time.Hour
	tune := func(o *Options) { o.IdempotencyWindow = window }
	e := openTest(t, dir, clock, tune)
	ctx := context.Background()
	mustSet(t, e, "A", 10, 0)
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "d1", Items: []Item{{"A", 2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ExpireDue(ctx); err != nil { // the live engine forgets now
		t.Fatal(err)
	}
	clock.Advance(window + time.Millisecond)
	if err := e.snapshot(); err != nil { // the snapshotter forgets later: d1 is gone there
		t.Fatal(err)
	}
	if _, err := e.Return(ctx, ReturnRequest{ReturnID: "ret1", RequestID: "d1", Items: []Item{{"A", 1}}}); err != nil {
		t.Fatalf("return of a sale the live engine remembers: %v", err)
	}
	checkLiveEqualsFold(t, e)
	if err := e.snapshot(); err != nil {
		t.Fatalf("snapshot after the return: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	e = openTest(t, dir, clock, tune)
	defer e.Close()
	if st := mustGet(t, e, "A"); st.Sold != 1 || st.Available != 9 {
		t.Fatalf("after reopen: %+v", st)
	}
}

// TestGetAfterClose: Get on a closed engine answers ErrUnavailable at once
// (it used to wait forever for an actor that was gone).
func TestGetAfterClose(t *testing.T) {
	e := openTest(t, t.TempDir(), newFakeClock(), nil)
	mustSet(t, e, "A", 10, 0)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Get(ctx, "A"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("get after close: %v, want ErrUnavailable", err)
	}
}

// TestExpireDueCancelledKeepsTheRest: an ExpireDue whose context ends does
// not drop the due reservations it did not get to; a later call expires
// them.
func TestExpireDueCancelledKeepsTheRest(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, nil)
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "A", 10, 0)
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := e.Reserve(ctx, ReserveRequest{RequestID: id, Items: []Item{{"A", 1}}, TTL: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Second)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.ExpireDue(cctx); err == nil {
		t.Log("ExpireDue with an ended context: no error (every expiry finished first)")
	}
	if _, err := e.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if st := mustGet(t, e, "A"); st.Reserved != 0 || st.Available != 10 {
		t.Fatalf("after a second pass: %+v, want every reservation expired", st)
	}
}

// TestOpenRefusesCorruptSnapshot: a damaged snapshot stops Open with an
// error; it is never half-loaded.
func TestOpenRefusesCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil, nil)
	mustSet(t, e, "A", 10, 0)
	if err := e.Close(); err != nil { // Close writes a snapshot
		t.Fatal(err)
	}
	seqs, err := listSnapshots(vfs.Default, dir)
	if err != nil || len(seqs) == 0 {
		t.Fatalf("no snapshot after close: %v %v", seqs, err)
	}
	path := filepath.Join(dir, snapshotName(seqs[len(seqs)-1]))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, ExpiryTick: -1}); !errors.Is(err, errSnapshotCorrupt) {
		t.Fatalf("open with a corrupt snapshot: %v", err)
	}
}

// TestSameIDConcurrently: many callers send the same request id at once, to
// one SKU and in one mailbox run (the actor claims ids in batches): exactly
// one sale is made, every caller gets its seq, and all but one are replays.
// A different body under the same id, at the same time, is a conflict.
func TestSameIDConcurrently(t *testing.T) {
	e := openTest(t, t.TempDir(), nil, nil)
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "hot", 1000, 0)
	var wantSold int64
	for round := 0; round < 20; round++ {
		id := fmt.Sprintf("dup-%d", round)
		const callers = 32
		type out struct {
			res Result
			err error
		}
		outs := make(chan out, callers+1)
		var wg sync.WaitGroup
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Deduct(ctx, DeductRequest{RequestID: id, Items: []Item{{SKU: "hot", Qty: 1}}})
				outs <- out{res, err}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Deduct(ctx, DeductRequest{RequestID: id, Items: []Item{{SKU: "hot", Qty: 2}}})
			if err != nil && !errors.Is(err, ErrRequestIDConflict) {
				t.Errorf("other body: %v", err)
			}
			if err == nil {
				outs <- out{Result{Seq: 0}, errors.New("other body first")} // counted below
			}
		}()
		wg.Wait()
		close(outs)
		fresh, replays := 0, 0
		var seq uint64
		for o := range outs {
			if o.err != nil {
				if o.err.Error() == "other body first" {
					fresh++ // the qty-2 request won the id; the rest conflict
					wantSold += 2
					continue
				}
				if errors.Is(o.err, ErrRequestIDConflict) {
					continue
				}
				t.Fatalf("round %d: %v", round, o.err)
			}
			if seq == 0 {
				seq = o.res.Seq
			}
			if o.res.Seq != seq {
				t.Fatalf("round %d: seqs %d and %d for one id", round, seq, o.res.Seq)
			}
			if o.res.Replayed {
				replays++
			} else {
				fresh++
				wantSold++
			}
		}
		if fresh != 1 {
			t.Fatalf("round %d: %d fresh outcomes (%d replays), want exactly 1", round, fresh, replays)
		}
	}
	st := mustGet(t, e, "hot")
	if st.Sold != wantSold || st.Total != st.Available+st.Sold {
		t.Fatalf("after 20 ids: %+v, want sold %d", st, wantSold)
	}
}

// TestExpiryQueueHoldsOnlyOpenReservations: the expiry queue forgets a
// reservation once a confirm or cancel settles it. It kept every one until
// its deadline (up to 24 h), so a client reserving and cancelling one unit
// over and over grew it without bound, past the RequestIDsMax that bounds
// the remembered ids.
func TestExpiryQueueHoldsOnlyOpenReservations(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, t.TempDir(), clock, func(o *Options) { o.RequestIDsMax = 64 })
	defer e.Close()
	ctx := context.Background()
	mustSet(t, e, "A", 1000, 0)
	mustSet(t, e, "B", 1000, 0)
	queued := func() int {
		e.expiries.mu.Lock()
		defer e.expiries.mu.Unlock()
		return e.expiries.h.Len()
	}
	const rounds = 300
	for i := range rounds {
		items := []Item{{"A", 1}}
		if i%3 == 2 {
			items = append(items, Item{"B", 1}) // the multi-SKU path
		}
		id := fmt.Sprintf("r%d", i)
		if _, err := e.Reserve(ctx, ReserveRequest{RequestID: id, Items: items, TTL: ReservationTTLMax}); err != nil {
			t.Fatal(err)
		}
		settle := e.Cancel
		if i%2 == 1 {
			settle = e.Confirm
		}
		if _, err := settle(ctx, id); err != nil {
			t.Fatalf("settle %s: %v", id, err)
		}
		if _, err := e.ExpireDue(ctx); err != nil { // forgets ids past RequestIDsMax
			t.Fatal(err)
		}
	}
	if n := e.requests.len(); n > rounds/2 {
		t.Fatalf("%d request ids remembered, want the bound to hold", n)
	}
	if n := queued(); n != 0 {
		t.Fatalf("%d reservations queued for expiry after every one was settled", n)
	}
	// A confirm after the deadline expires the reservation: it leaves too.
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "late", Items: []Item{{"A", 1}}, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reserve(ctx, ReserveRequest{RequestID: "open", Items: []Item{{"A", 1}}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if _, err := e.Confirm(ctx, "late"); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("late confirm: %v", err)
	}
	if n := queued(); n != 1 {
		t.Fatalf("%d reservations queued, want the one open", n)
	}
	clock.Advance(time.Hour)
	if n, err := e.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expired %d (%v), want the open one", n, err)
	}
	if st := mustGet(t, e, "A"); st.Reserved != 0 || st.Sold != rounds/2 {
		t.Fatalf("A: %+v", st)
	}
}

// TestCheckTakeWantsUserUnderLimit: the SKU's own check refuses a take
// without a user once the SKU has a per-user limit. Take checks the user_id
// requirement before the SKU's actor, so a limit set between that check and
// the actor's decision would otherwise let the take through uncounted.
func TestCheckTakeWantsUserUnderLimit(t *testing.T) {
	s := newSKU("A")
	s.apply(wal.KindSetTotal, "", 10, 2)
	if err := s.checkTake("", 1); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("take without a user under a limit of 2: %v, want bad request", err)
	}
	if err := s.checkTake("alice", 1); err != nil {
		t.Fatalf("alice's take: %v", err)
	}
	s.apply(wal.KindSetTotal, "", 0, 0) // limit off
	if err := s.checkTake("", 1); err != nil {
		t.Fatalf("take without a user, no limit: %v", err)
	}
}

// TestExpiryRequeueKeepsNewerDeadline: an ExpireDue that puts back an entry
// it could not expire yet (a confirm was in flight) must not replace the
// deadline of a newer reservation of the same id, queued meanwhile (the old
// one settled and was forgotten, and another ExpireDue ran beside it).
func TestExpiryRequeueKeepsNewerDeadline(t *testing.T) {
	var q expiryQueue
	q.push("x", 50)
	old := q.popDue(50)
	if len(old) != 1 {
		t.Fatalf("popDue: %v", old)
	}
	q.push("x", 100) // the id reserved again
	q.requeue(old[0])
	if got := q.popDue(60); len(got) != 0 {
		t.Fatalf("due at 60: %v, want nothing (x is due at 100)", got)
	}
	if got := q.popDue(100); len(got) != 1 || got[0] != (due{100, "x"}) {
		t.Fatalf("due at 100: %v, want x at 100", got)
	}
	q.requeue(due{70, "y"}) // not queued: put back
	if got := q.popDue(70); len(got) != 1 || got[0].id != "y" {
		t.Fatalf("requeued y: %v", got)
	}
}
