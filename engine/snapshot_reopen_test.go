package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestSnapshotReopenRandomized: a random mix of every operation (deducts and
// reservations of one and several SKUs, with and without users, limits set
// and changed, confirms, cancels, expiries by an injected clock, partial
// returns, restocks, ids reused once the window or the id bound forgot
// them), with snapshots written along the way and the engine closed and
// reopened from its snapshot. Every reopen must succeed (the snapshot's
// checks must accept whatever the engine wrote) and give the same state:
// the SKUs, what each user holds, and every open reservation and remembered
// id. Seed printed (FLASHSALE_SEED replays it).
func TestSnapshotReopenRandomized(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	clock := newFakeClock()
	dir := t.TempDir()
	tune := func(o *Options) {
		o.IdempotencyWindow = 20 * time.Second
		o.RequestIDsMax = 6 * tableShards // a few per shard: the bound forgets too
	}
	e := openTest(t, dir, clock, tune)
	defer func() { e.Close() }()
	ctx := context.Background()
	// A small pool of ids, so that ids are retried, reused across kinds,
	// and reused once forgotten.
	id := func(prefix string) string { return fmt.Sprintf("%s%d", prefix, rng.IntN(400)) }
	skus := []string{"a", "b", "c", "d"}
	for _, s := range skus {
		mustSet(t, e, s, 100, 0)
	}
	users := []string{"", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	var taken []string // ids of recent successful takes, for confirms, cancels and returns
	takenItems := map[string][]Item{}
	took := func(id string, it []Item, err error) {
		if err == nil {
			takenItems[id] = it
			taken = append(taken, id)
			if len(taken) > 50 {
				taken = taken[1:]
			}
		}
	}
	sale := func() string {
		if len(taken) > 0 && rng.IntN(5) > 0 {
			return taken[rng.IntN(len(taken))]
		}
		return id("q")
	}
	check := func(step int, what string, err error) {
		t.Helper()
		if err != nil && (CodeOf(err) == nil || CodeOf(err) == ErrUnavailable || CodeOf(err) == ErrOverloaded) {
			t.Fatalf("step %d %s: %v", step, what, err)
		}
	}
	items := func(maxQty int) []Item {
		var out []Item
		for _, k := range rng.Perm(len(skus))[:1+rng.IntN(3)] {
			out = append(out, Item{skus[k], int64(1 + rng.IntN(maxQty))})
		}
		return out
	}
	reopens := 0
	for step := 0; step < 3000; step++ {
		switch op := rng.IntN(20); {
		case op < 4:
			user, q, it := users[rng.IntN(len(users))], id("q"), items(3)
			_, err := e.Deduct(ctx, DeductRequest{RequestID: q, UserID: user, Items: it})
			check(step, "deduct", err)
			took(q, it, err)
		case op < 8:
			user, q, it := users[rng.IntN(len(users))], id("q"), items(3)
			ttl := time.Duration(1+rng.IntN(4)) * time.Second
			_, err := e.Reserve(ctx, ReserveRequest{RequestID: q, UserID: user, Items: it, TTL: ttl})
			check(step, "reserve", err)
			took(q, it, err)
		case op < 10:
			clock.Advance(time.Duration(rng.IntN(300)) * time.Millisecond)
			_, err := e.Confirm(ctx, sale())
			check(step, "confirm", err)
		case op < 11:
			_, err := e.Cancel(ctx, sale())
			check(step, "cancel", err)
		case op < 13:
			q, it := sale(), items(2)
			if sold, ok := takenItems[q]; ok && rng.IntN(4) > 0 {
				// Part of what it sold: some of its SKUs, some of each.
				it = nil
				for _, x := range sold {
					if rng.IntN(2) == 0 || len(it) == 0 {
						it = append(it, Item{x.SKU, 1 + rng.Int64N(x.Qty)})
					}
				}
			}
			_, err := e.Return(ctx, ReturnRequest{ReturnID: id("ret"), RequestID: q, Items: it})
			check(step, "return", err)
		case op < 14:
			_, _, err := e.Restock(ctx, RestockRequest{RequestID: id("rs"), SKU: skus[rng.IntN(len(skus))], Qty: int64(1 + rng.IntN(10))})
			check(step, "restock", err)
		case op < 15:
			s := skus[rng.IntN(len(skus))]
			st := mustGet(t, e, s)
			total := st.Reserved + st.Sold + int64(rng.IntN(60))
			req := SetSKURequest{SKU: s, Total: total}
			if rng.IntN(2) == 0 {
				limit := []int64{0, 0, 6, 20}[rng.IntN(4)]
				req.LimitPerUser = &limit
			}
			_, _, err := e.SetSKU(ctx, req)
			check(step, "set", err)
		case op < 18:
			clock.Advance(time.Duration(rng.IntN(1500)) * time.Millisecond)
			if rng.IntN(2) == 0 {
				_, err := e.ExpireDue(ctx)
				check(step, "expire", err)
			}
		case op < 19:
			if err := e.snapshot(); err != nil {
				t.Fatalf("step %d: snapshot: %v", step, err)
			}
		default:
			reopens++
			// Open expires what is due: so does the engine before.
			_, err := e.ExpireDue(ctx)
			check(step, "expire", err)
			want := engineImage(t, e)
			if err := e.Close(); err != nil {
				t.Fatalf("step %d: close: %v", step, err)
			}
			o := Options{Dir: dir, ExpiryTick: -1, Now: clock.Now}
			tune(&o)
			if e, err = Open(o); err != nil {
				t.Fatalf("step %d: reopen: %v", step, err)
			}
			got := engineImage(t, e)
			compareImages(t, step, want, got)
		}
	}
	if reopens == 0 {
		t.Fatal("no reopen")
	}
	checkLiveEqualsFold(t, e)
}

// engImage is what a reopen must keep of an engine: its SKUs, what each user
// holds of each, and its remembered ids (busy flags aside).
type engImage struct {
	skus     map[string]SKUState
	holdings map[string]map[string]int64
	tables   [3]map[string]request
}

func engineImage(t *testing.T, e *Engine) engImage {
	t.Helper()
	img := engImage{skus: map[string]SKUState{}, holdings: map[string]map[string]int64{}}
	for _, id := range e.SKUs() {
		img.skus[id] = mustGet(t, e, id)
		h := map[string]int64{}
		e.ref(id).s.users.each(func(u string, q int64) { h[u] = q })
		img.holdings[id] = h
	}
	for i, tb := range []*table{e.requests, e.restocks, e.returns} {
		img.tables[i] = map[string]request{}
		for _, r := range tb.entries() {
			c := *r
			c.busy = false
			if tb == e.returns {
				// A live return id remembers no user; one folded from
				// the log remembers its sale's: neither is ever read.
				c.user = ""
			}
			if c.returned != nil {
				var any bool
				for _, v := range c.returned {
					any = any || v != 0
				}
				if !any {
					c.returned = nil
				}
			}
			img.tables[i][c.id] = c
		}
	}
	return img
}

// compareImages: the SKUs and holdings are the same; every id the reopened
// engine remembers is the same as before; every open reservation is still
// there. (The live tables and the snapshotter's may forget at different
// moments, so an id forgotten by one may be kept by the other.)
func compareImages(t *testing.T, step int, want, got engImage) {
	t.Helper()
	if !reflect.DeepEqual(want.skus, got.skus) {
		t.Fatalf("step %d: skus after reopen %+v, before %+v", step, got.skus, want.skus)
	}
	if !reflect.DeepEqual(want.holdings, got.holdings) {
		t.Fatalf("step %d: holdings after reopen %+v, before %+v", step, got.holdings, want.holdings)
	}
	for i := range want.tables {
		for id, g := range got.tables[i] {
			if w, ok := want.tables[i][id]; ok && !reflect.DeepEqual(w, g) {
				t.Fatalf("step %d: table %d id %s after reopen %+v, before %+v", step, i, id, g, w)
			}
		}
	}
	for id, w := range want.tables[0] {
		if w.status == statusReserved {
			if _, ok := got.tables[0][id]; !ok {
				t.Fatalf("step %d: open reservation %s lost by reopen", step, id)
			}
		}
	}
}
