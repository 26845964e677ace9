package engine

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flashsale/flashsale/wal"
)

// TestSnapshotRoundTrip: a State written as a snapshot and read back is the
// same State, field by field: SKUs, per-user holdings, and every remembered
// id of the three tables (with items, returns and settlements) in the same
// order. Random records of every kind, seed printed.
func TestSnapshotRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	st := newState(RequestIDsMaxDefault)
	seq := uint64(0)
	fold := func(r *wal.Record) {
		t.Helper()
		seq++
		r.TimeMs = 1_700_000_000_000 + int64(seq/3) - int64(rng.IntN(2)) // not quite monotonic, like actors' clocks
		if err := st.Fold(seq, r); err != nil {
			t.Fatalf("fold %d %+v: %v", seq, r, err)
		}
	}
	skus := []string{"a", "b", "c", "d", "e"}
	for i, s := range skus {
		fold(&wal.Record{Kind: wal.KindSetTotal, LimitPerUser: int64(i * 3), Items: []wal.Item{{SKU: s, Qty: 1_000_000}}})
	}
	type sale struct {
		id, user string
		items    []wal.Item
	}
	var open, sold []sale
	for i := range 3000 {
		id, user := fmt.Sprintf("r%05d", i), fmt.Sprintf("u%d", rng.IntN(50))
		if rng.IntN(4) == 0 {
			user = ""
		}
		var items []wal.Item
		for _, k := range rng.Perm(len(skus))[:1+rng.IntN(3)] {
			items = append(items, wal.Item{SKU: skus[k], Qty: 1 + rng.Int64N(2)})
		}
		switch n := rng.IntN(10); {
		case n < 4:
			fold(&wal.Record{Kind: wal.KindDeduct, RequestID: id, UserID: user, BodyHash: rng.Uint64(), Items: items})
			sold = append(sold, sale{id, user, items})
		case n < 7:
			fold(&wal.Record{Kind: wal.KindReserve, RequestID: id, UserID: user, BodyHash: rng.Uint64(),
				ExpiresAtMs: 1_800_000_000_000 + int64(i), Items: items})
			open = append(open, sale{id, user, items})
		case n < 8 && len(open) > 0:
			k := rng.IntN(len(open))
			s := open[k]
			open = slices.Delete(open, k, k+1)
			kind := []wal.Kind{wal.KindConfirm, wal.KindCancel, wal.KindExpire}[rng.IntN(3)]
			fold(&wal.Record{Kind: kind, RequestID: s.id, UserID: s.user, Items: s.items})
			if kind == wal.KindConfirm {
				sold = append(sold, s)
			}
		case n < 9 && len(sold) > 0:
			k := rng.IntN(len(sold))
			s := sold[k]
			sold = slices.Delete(sold, k, k+1) // returned once, partly
			it := s.items[rng.IntN(len(s.items))]
			fold(&wal.Record{Kind: wal.KindReturn, RequestID: "ret-" + id, RefID: s.id, UserID: s.user, BodyHash: rng.Uint64(),
				Items: []wal.Item{{SKU: it.SKU, Qty: 1}}})
		default:
			fold(&wal.Record{Kind: wal.KindRestock, RequestID: "rs-" + id, BodyHash: rng.Uint64(),
				Items: []wal.Item{{SKU: items[0].SKU, Qty: 1 + rng.Int64N(5)}}})
		}
	}

	dir := t.TempDir()
	if err := writeSnapshot(vfs.Default, dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := readSnapshot(vfs.Default, filepath.Join(dir, snapshotName(st.Seq)), st.Seq, RequestIDsMaxDefault)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != st.Seq {
		t.Fatalf("seq %d, want %d", got.Seq, st.Seq)
	}
	holdings := func(s *sku) map[string]int64 {
		m := map[string]int64{}
		s.users.each(func(u string, q int64) { m[u] = q })
		return m
	}
	if len(got.skus) != len(st.skus) {
		t.Fatalf("%d skus, want %d", len(got.skus), len(st.skus))
	}
	for id, want := range st.skus {
		g := got.skus[id]
		if g == nil || g.state() != want.state() || g.limit != want.limit {
			t.Fatalf("sku %s: %+v, want %+v", id, g, want)
		}
		if h, w := holdings(g), holdings(want); !reflect.DeepEqual(h, w) || len(w) == 0 {
			t.Fatalf("sku %s holdings: %v, want %v", id, h, w)
		}
	}
	for i, pair := range [][2]*table{{got.requests, st.requests}, {got.restocks, st.restocks}, {got.returns, st.returns}} {
		g, w := pair[0].entries(), pair[1].entries()
		if len(w) == 0 {
			t.Fatalf("table %d: nothing to compare", i)
		}
		if !reflect.DeepEqual(g, w) {
			for k := range min(len(g), len(w)) {
				if !reflect.DeepEqual(g[k], w[k]) {
					t.Fatalf("table %d entry %d: %+v, want %+v", i, k, g[k], w[k])
				}
			}
			t.Fatalf("table %d: %d entries, want %d", i, len(g), len(w))
		}
	}
}
