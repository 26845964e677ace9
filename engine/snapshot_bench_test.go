package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flashsale/flashsale/wal"
)

// benchSKURecord creates the one SKU of the snapshot benchmarks.
var benchSKURecord = wal.Record{Kind: wal.KindSetTotal, RequestID: "set-hot", Items: []wal.Item{{SKU: "hot", Qty: wal.TotalMax}}}

// benchSale is the i-th sale of the snapshot benchmarks: one unit of that
// SKU, bought by the given user.
func benchSale(i, user int) *wal.Record {
	return &wal.Record{Kind: wal.KindDeduct, RequestID: fmt.Sprintf("req-%09d", i), UserID: fmt.Sprintf("user-%06d", user),
		BodyHash: uint64(i) * 0x9e3779b97f4a7c15, TimeMs: 1_700_000_000_000 + int64(i/1000), Items: []wal.Item{{SKU: "hot", Qty: 1}}}
}

// benchState folds ids deducts of one SKU by users buyers, as a flash sale
// leaves the snapshotter's shadow state.
func benchState(tb testing.TB, ids, users int) *State {
	st := newState(ids)
	if err := st.Fold(1, &benchSKURecord); err != nil {
		tb.Fatal(err)
	}
	for i := range ids {
		if err := st.Fold(uint64(i)+2, benchSale(i, i%users)); err != nil {
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
	for b.Loop() {
		if err := writeSnapshot(vfs.Default, dir, st); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ids, "ns/id")
}

type nopAck struct{}

func (nopAck) Durable(uint64, error) {}

// BenchmarkSnapshotFold folds 1,000,000 logged deducts (100,000 buyers of one
// SKU) from the log into a state that already remembers 1,000,000 ids: the
// snapshotter's work per record between two snapshots (read, decode, apply,
// remember).
//
//	go test -run '^$' -bench SnapshotFold -benchtime 5x ./engine
func BenchmarkSnapshotFold(b *testing.B) {
	const ids, users = 1_000_000, 100_000
	l, err := wal.Open(b.TempDir(), wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	recs, acks := [][]byte{benchSKURecord.Encode(nil)}, []wal.Ack{nopAck{}}
	for i := range 2 * ids {
		recs, acks = append(recs, benchSale(i, (i*7919)%users).Encode(nil)), append(acks, nopAck{})
		if len(recs) == 4096 || i == 2*ids-1 {
			if _, err := l.AppendBatch(recs, acks); err != nil {
				b.Fatal(err)
			}
			recs, acks = recs[:0], acks[:0]
		}
	}
	if _, err := l.WaitDurable(context.Background(), 2*ids); err != nil {
		b.Fatal(err)
	}
	var ns int64
	for b.Loop() {
		b.StopTimer()
		st := newState(2 * ids)
		if err := foldLog(l, st, ids+1); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := foldLog(l, st, 2*ids+1); err != nil {
			b.Fatal(err)
		}
		ns += time.Since(t0).Nanoseconds()
		if st.Seq != 2*ids+1 {
			b.Fatalf("folded up to %d", st.Seq)
		}
	}
	b.ReportMetric(float64(ns)/float64(b.N)/ids, "ns/record")
}
