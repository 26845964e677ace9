package syncer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/wal"
)

// benchEntries makes n deduct records over skus SKUs, seqs from first.
func benchEntries(n int, first uint64, skus int) []Entry {
	rng := rand.New(rand.NewPCG(1, 2))
	es := make([]Entry, n)
	for i := range es {
		es[i] = Entry{Seq: first + uint64(i), Record: wal.Record{Kind: wal.KindDeduct, TimeMs: 1_700_000_000_000 + int64(i),
			RequestID: fmt.Sprintf("req-%012d", i), UserID: fmt.Sprintf("user-%06d", rng.IntN(100000)),
			Items: []wal.Item{{SKU: fmt.Sprintf("sku-%04d", rng.IntN(skus)), Qty: 1}}}}
	}
	return es
}

// classicRowsMax bounds the one-row-per-transaction baseline (it runs at the
// speed of one fsync per row).
const classicRowsMax = 3000

// BenchmarkFoldVsRowPerTx measures, in one run, the syncer's fold (batches of
// BatchRecordsMax records, one transaction each: multi-row flow INSERT,
// summary upserts, checkpoint) against the classic task-table design's
// insert of one flow row per transaction, into the local MariaDB. One op is
// one flow row. Run: go test -run '^$' -bench FoldVsRowPerTx -benchtime 200000x ./sync/syncer
func BenchmarkFoldVsRowPerTx(b *testing.B) {
	db := openTestDB(b, testDatabase(b))
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	es := benchEntries(b.N, 1, 1000)
	now := time.Now()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(es); i += BatchRecordsMax {
		if _, _, err := applyBatch(ctx, db, CheckpointNameDefault, scriptLogID, es[i:min(len(es), i+BatchRecordsMax)], now); err != nil {
			b.Fatal(err)
		}
	}
	fold := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()

	// Classic: each row its own autocommit INSERT (one fsync each).
	n := min(b.N, classicRowsMax)
	classic := benchEntries(n, uint64(b.N)+1, 1000)
	start = time.Now()
	for _, e := range classic {
		it := e.Record.Items[0]
		if _, err := db.ExecContext(ctx, "INSERT INTO stock_flow (seq, sku, kind, request_id, ref_id, user_id, qty, created_at) VALUES (?,?,?,?,?,?,?,?)",
			e.Seq, it.SKU, "deduct", e.Record.RequestID, "", e.Record.UserID, it.Qty, sqlTime(now)); err != nil {
			b.Fatal(err)
		}
	}
	row := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(fold, "fold_rows/s")
	b.ReportMetric(row, "row_per_tx_rows/s")
	b.ReportMetric(fold/row, "ratio")
}

// BenchmarkLagDrain drives a real engine at its full rate (burstWorkers
// goroutines deducting) for burstDuration while the syncer runs, then
// measures the lag at the end of the burst and how long the syncer takes to
// drain it. Run: go test -run '^$' -bench LagDrain -benchtime 1x ./sync/syncer
func BenchmarkLagDrain(b *testing.B) {
	const (
		burstWorkers  = 128
		burstDuration = 3 * time.Second
		burstSKUs     = 200
	)
	for range b.N {
		db := openTestDB(b, testDatabase(b))
		eng, err := engine.Open(engine.Options{Dir: b.TempDir(), KeepUnsynced: true, ExpiryTick: -1})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for i := range burstSKUs {
			if _, _, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: fmt.Sprintf("sku-%d", i), Total: engine.TotalMax}); err != nil {
				b.Fatal(err)
			}
		}
		s := Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced})
		if err := s.WaitSynced(ctx, eng.Log().Durable()); err != nil {
			b.Fatal(err)
		}
		var acked atomic.Int64
		bctx, cancel := context.WithTimeout(ctx, burstDuration)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range burstWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; bctx.Err() == nil; i++ {
					_, err := eng.Deduct(bctx, engine.DeductRequest{RequestID: fmt.Sprintf("w%d-%d", w, i),
						Items: []engine.Item{{SKU: fmt.Sprintf("sku-%d", (w*7+i)%burstSKUs), Qty: 1}}})
					if err == nil {
						acked.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		cancel()
		burst := time.Since(start)
		durable := eng.Log().Durable()
		lag := durable - s.Checkpoint()
		drainStart := time.Now()
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Minute)
		if err := s.WaitSynced(dctx, durable); err != nil {
			b.Fatal(err)
		}
		dcancel()
		drain := time.Since(drainStart)
		st := s.Status()
		b.ReportMetric(float64(acked.Load())/burst.Seconds(), "engine_changes/s")
		b.ReportMetric(float64(lag), "lag_records_at_burst_end")
		b.ReportMetric(drain.Seconds(), "drain_s")
		b.ReportMetric(float64(st.Records)/(burst+drain).Seconds(), "sync_records/s")
		s.Close()
		eng.Close()
	}
}
