package engine

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flashsale/flashsale/wal"
)

// benchState folds ids deducts of one SKU by users buyers, as a flash sale
// leaves the snapshotter's shadow state.
func benchState(tb testing.TB, ids, users int) *State {
	st := newState(ids)
	seq := uint64(1)
	if err := st.Fold(seq, &wal.Record{Kind: wal.KindSetTotal, Items: []wal.Item{{SKU: "hot", Qty: int64(ids)}}}); err != nil {
		tb.Fatal(err)
	}
	for i := range ids {
		seq++
		r := &wal.Record{Kind: wal.KindDeduct, RequestID: fmt.Sprintf("req-%09d", i), UserID: fmt.Sprintf("user-%06d", i%users),
			BodyHash: uint64(i) * 0x9e3779b97f4a7c15, TimeMs: 1_700_000_000_000 + int64(i/1000), Items: []wal.Item{{SKU: "hot", Qty: 1}}}
		if err := st.Fold(seq, r); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

// BenchmarkSnapshotWrite writes the snapshot of 1,000,000 remembered ids
// (100,000 buyers of one SKU), as the background snapshotter does every
// SnapshotEveryRecords records; its CPU competes with the sales.
//
//	go test -run '^$' -bench SnapshotWrite -benchtime 5x ./engine
func BenchmarkSnapshotWrite(b *testing.B) {
	const ids = 1_000_000
	st := benchState(b, ids, 100_000)
	dir := b.TempDir()
	b.ResetTimer()
	for b.Loop() {
		if err := writeSnapshot(vfs.Default, dir, st); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ids, "ns/id")
}
