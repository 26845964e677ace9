package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"
	"github.com/flashsale/flashsale/wal"
)

// weakHash makes every id collide with many others (same index chain), so
// that the chain handling of the table is exercised.
func weakHash(t *testing.T) {
	old := idHash
	idHash = func(id string) uint64 { return uint64(len(id)%3) * 0x9E3779B97F4A7C15 }
	t.Cleanup(func() { idHash = old })
}

// TestTableModel drives the table with random operations and checks it
// against a map after every step: claims, finishes (ok or not), busy periods,
// settles, returns, forgetting by time and by the bound, with ids that
// collide in the index.
func TestTableModel(t *testing.T) {
	weakHash(t)
	seed := testkit.Seed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	type modelEntry struct {
		r    request
		h    handle
		held bool // pending or busy, held by the test
	}
	const idsMax = tableShards * 8
	tb := newTable(idsMax)
	model := map[string]*modelEntry{}
	ctx := context.Background()
	now := int64(1_000)
	var seq uint64
	ids := func() string { return fmt.Sprintf("id-%d%s", rng.IntN(300), "xyz"[:rng.IntN(3)]) }
	for step := 0; step < 6_000; step++ {
		id := ids()
		m := model[id]
		switch op := rng.IntN(10); {
		case op < 4: // claim, then finish ok or not now or later
			if m != nil && m.held {
				continue // a claim would wait for it
			}
			items := []Item{{SKU: fmt.Sprintf("sku-%d", rng.IntN(5)), Qty: int64(1 + rng.IntN(9))}}
			if rng.IntN(3) == 0 {
				items = append(items, Item{SKU: "sku-x", Qty: 2})
			}
			kind := wal.KindDeduct
			if rng.IntN(2) == 0 {
				kind = wal.KindReserve
			}
			in := reqInit{id: id, user: "u1", kind: kind, bodyHash: uint64(step), doneMs: now, expires: now + 100, items: items}
			h, found, info, err := tb.claim(ctx, &in)
			if err != nil {
				t.Fatal(err)
			}
			if m != nil {
				if found != claimDone || info.seq != m.r.seq || info.bodyHash != m.r.hash || info.kind != m.r.kind {
					t.Fatalf("step %d: claim of remembered %s: %v %+v, want %+v", step, id, found, info, m.r)
				}
				continue
			}
			if found != claimed {
				t.Fatalf("step %d: claim of new %s found %+v", step, id, info)
			}
			seq++
			if rng.IntN(4) == 0 {
				tb.finish(h, false, 0, 0)
				continue
			}
			status := statusDeducted
			if kind == wal.KindReserve {
				status = statusReserved
			}
			tb.finish(h, true, seq, status)
			r := request{id: id, kind: kind, status: status, user: "u1", hash: uint64(step), seq: seq, doneMs: now, expires: now + 100}
			for _, it := range items {
				r.items = append(r.items, wal.Item{SKU: it.SKU, Qty: it.Qty})
			}
			model[id] = &modelEntry{r: r}
		case op < 6 && m != nil && !m.held: // acquire, later release
			h, r, ok, err := tb.acquire(ctx, id)
			if err != nil || !ok {
				t.Fatalf("step %d: acquire %s: %v %v", step, id, ok, err)
			}
			m.r.busy = true
			checkReq(t, step, r, m.r)
			m.h, m.held = h, true
		case op < 8 && m != nil && m.held: // release: plain, settled or returned
			switch {
			case m.r.status == statusReserved && rng.IntN(2) == 0:
				seq++
				tb.releaseSettled(m.h, statusConfirmed, seq)
				m.r.status, m.r.settleSeq = statusConfirmed, seq
			case m.r.soldQty(0) > 0:
				q := 1 + rng.Int64N(m.r.soldQty(0))
				tb.releaseReturned(m.h, []wal.Item{{SKU: m.r.items[0].SKU, Qty: q}})
				if m.r.returned == nil {
					m.r.returned = make([]int64, len(m.r.items))
				}
				m.r.returned[0] += q
			default:
				tb.release(m.h)
			}
			m.r.busy, m.held = false, false
		case op == 8: // time passes and old ids are forgotten
			now += int64(rng.IntN(20))
			tb.forget(now - 200)
			for id, m := range model {
				if _, ok := tb.get(id); !ok {
					if m.held || m.r.status == statusReserved {
						t.Fatalf("step %d: %s forgotten while held or open", step, id)
					}
					delete(model, id)
				}
			}
		default:
			if m == nil {
				if _, ok := tb.get(id); ok {
					t.Fatalf("step %d: %s present, model has none", step, id)
				}
				continue
			}
			r, ok := tb.get(id)
			if !ok {
				t.Fatalf("step %d: %s lost", step, id)
			}
			checkReq(t, step, r, m.r)
		}
		if n := tb.len(); n != len(model) {
			t.Fatalf("step %d: table holds %d ids, model %d", step, n, len(model))
		}
	}
	// Everything the model holds is there, in full, and in order.
	entries := tb.entries()
	if len(entries) != len(model) {
		t.Fatalf("entries: %d, model %d", len(entries), len(model))
	}
	for i, r := range entries {
		checkReq(t, -1, *r, model[r.id].r)
		if i > 0 && (r.doneMs < entries[i-1].doneMs || r.doneMs == entries[i-1].doneMs && r.seq < entries[i-1].seq) {
			t.Fatalf("entries out of order at %d", i)
		}
	}
}

func checkReq(t *testing.T, step int, got, want request) {
	t.Helper()
	g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want)
	if g != w {
		t.Fatalf("step %d: entry\n got %s\nwant %s", step, g, w)
	}
}

// TestTableForgetFreesArena: once ids are forgotten, the arena chunks that
// held them are dropped, even while an old open reservation is kept (its
// bytes move to the newest chunk).
func TestTableForgetFreesArena(t *testing.T) {
	tb := newTable(tableShards * 1_000_000)
	ctx := context.Background()
	add := func(id string, kind wal.Kind, status uint8, doneMs int64) {
		in := reqInit{id: id, user: "someone", kind: kind, doneMs: doneMs, expires: doneMs + 1, items: []Item{{SKU: "s", Qty: 1}}}
		h, _, _, err := tb.claim(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		tb.finish(h, true, 1, status)
	}
	add("open-reservation", wal.KindReserve, statusReserved, 0)
	for i := 0; i < 200_000; i++ {
		add(fmt.Sprintf("sale-%07d", i), wal.KindDeduct, statusDeducted, 1)
	}
	chunks := func() (n int) {
		for i := range tb.shards {
			for _, c := range tb.shards[i].arena.chunks {
				if c != nil {
					n++
				}
			}
		}
		return n
	}
	before := chunks()
	if got := tb.forget(2); got != 200_000 {
		t.Fatalf("forgot %d, want 200000", got)
	}
	if after := chunks(); after > tableShards || after >= before {
		t.Fatalf("arena chunks: %d before forgetting, %d after", before, after)
	}
	r, ok := tb.get("open-reservation")
	if !ok || r.status != statusReserved || r.user != "someone" || len(r.items) != 1 || r.items[0].SKU != "s" {
		t.Fatalf("open reservation after forget: %+v %v", r, ok)
	}
}

// TestTableWaitsForPending: a claim of an id that is pending waits until the
// first finishes, then sees its outcome; ctx bounds the wait.
func TestTableWaitsForPending(t *testing.T) {
	weakHash(t)
	tb := newTable(1000)
	ctx := context.Background()
	in := reqInit{id: "a", kind: wal.KindDeduct, bodyHash: 7, items: []Item{{SKU: "s", Qty: 1}}}
	h, _, _, _ := tb.claim(ctx, &in)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, _, _, err := tb.claim(short, &in); err != context.DeadlineExceeded {
		t.Fatalf("claim of a pending id with a short ctx: %v", err)
	}
	got := make(chan reqInfo)
	go func() {
		_, found, info, err := tb.claim(ctx, &in)
		if err != nil || found != claimDone {
			t.Errorf("second claim: %v %v", found, err)
		}
		got <- info
	}()
	time.Sleep(10 * time.Millisecond)
	tb.finish(h, true, 42, statusDeducted)
	if info := <-got; info.seq != 42 || info.bodyHash != 7 {
		t.Fatalf("second claim saw %+v", info)
	}
	// A failed first attempt leaves the id free for the waiter.
	in.id = "b"
	h, _, _, _ = tb.claim(ctx, &in)
	done := make(chan claimResult)
	go func() {
		h2, found, _, _ := tb.claim(ctx, &in)
		if found == claimed {
			tb.finish(h2, true, 43, statusDeducted)
		}
		done <- found
	}()
	time.Sleep(10 * time.Millisecond)
	tb.finish(h, false, 0, 0)
	if found := <-done; found != claimed {
		t.Fatalf("after a failed first attempt the waiter got %v, want a fresh claim", found)
	}
	if r, _ := tb.get("b"); r.seq != 43 {
		t.Fatalf("b: %+v", r)
	}
}

// TestTableHandleIsChecked: using a handle after its entry is gone panics.
func TestTableHandleIsChecked(t *testing.T) {
	tb := newTable(1000)
	in := reqInit{id: "a", kind: wal.KindDeduct, items: []Item{{SKU: "s", Qty: 1}}}
	h, _, _, _ := tb.claim(context.Background(), &in)
	tb.finish(h, false, 0, 0)
	defer func() {
		if recover() == nil {
			t.Fatal("finish with a stale handle did not panic")
		}
	}()
	tb.finish(h, true, 1, statusDeducted)
}

// TestTableClaimBatch: a batch claims new ids, reports finished ones and
// pending ones (busy, not waited for), and an id twice in one batch is
// claimed once; ids that collide in the index are told apart.
func TestTableClaimBatch(t *testing.T) {
	weakHash(t)
	tb := newTable(1 << 20)
	ctx := context.Background()
	item := []Item{{SKU: "s", Qty: 1}}
	done := reqInit{id: "done", kind: wal.KindDeduct, bodyHash: 9, items: item}
	h, _, _, _ := tb.claim(ctx, &done)
	tb.finish(h, true, 77, statusDeducted)
	pending := reqInit{id: "pending", kind: wal.KindDeduct, items: item}
	ph, _, _, _ := tb.claim(ctx, &pending)
	defer tb.finish(ph, false, 0, 0)
	var ins []reqInit
	for _, id := range []string{"a", "done", "b", "pending", "a", "c"} {
		ins = append(ins, reqInit{id: id, kind: wal.KindDeduct, items: item})
	}
	for i := 0; i < 200; i++ { // long runs of colliding ids in a few shards
		ins = append(ins, reqInit{id: fmt.Sprintf("n%d", i), kind: wal.KindDeduct, items: item})
	}
	outs := make([]claimOut, len(ins))
	tb.claimBatch(ins, outs)
	want := []claimResult{claimed, claimDone, claimed, claimBusy, claimBusy, claimed}
	for i, w := range want {
		if outs[i].res != w {
			t.Fatalf("%s: %v, want %v", ins[i].id, outs[i].res, w)
		}
	}
	if outs[1].info.seq != 77 || outs[1].info.bodyHash != 9 {
		t.Fatalf("done: %+v", outs[1].info)
	}
	for i := range ins {
		if outs[i].res == claimed {
			tb.finish(outs[i].h, true, uint64(1000+i), statusDeducted)
			if r, ok := tb.get(ins[i].id); !ok || r.seq != uint64(1000+i) {
				t.Fatalf("%s after finish: %+v %v", ins[i].id, r, ok)
			}
		}
	}
	if n := tb.len(); n != 2+4+200-1 { // done, pending, a, b, c, n0..n199 (a once)
		t.Fatalf("table holds %d", n)
	}
}
