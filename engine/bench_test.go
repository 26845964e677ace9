package engine

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"
	"github.com/flashsale/flashsale/wal"
)

// benchDeduct runs b.N durable single-unit deducts from callers goroutines,
// spread over skus SKUs, and reports deductions/s. Without snapshots the
// engine runs no background loop (the sales path alone); with them it runs
// the default one, which folds the log into its shadow state and writes a
// snapshot every SnapshotEveryRecordsDefault records, as in production.
func benchDeduct(b *testing.B, skus, callers int, snapshots bool) {
	var commits, committed, commitNs atomic.Int64
	opts := Options{Dir: b.TempDir(), ExpiryTick: -1, RequestIDsMax: 1 << 22, SnapshotEveryRecords: 1 << 40,
		WAL: wal.Options{OnCommit: func(records, _ int, took time.Duration) {
			commits.Add(1)
			committed.Add(int64(records))
			commitNs.Add(int64(took))
		}}}
	if snapshots {
		opts.ExpiryTick, opts.SnapshotEveryRecords = 0, 0 // the defaults
	}
	e, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	ids := make([]string, skus)
	for i := range ids {
		ids[i] = fmt.Sprintf("sku-%d", i)
		if _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: ids[i], Total: TotalMax}); err != nil {
			b.Fatal(err)
		}
	}
	// Request ids come from the client; make them before the clock starts.
	reqIDs := make([]string, b.N+1)
	for i := range reqIDs {
		reqIDs[i] = "r" + strconv.Itoa(i)
	}
	b.ResetTimer()
	start, cpuStart := time.Now(), testkit.ProcessCPU()
	if f := os.Getenv("FLASHSALE_BENCH_CPUPROFILE"); f != "" {
		pf, _ := os.Create(f)
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				_, err := e.Deduct(ctx, DeductRequest{RequestID: reqIDs[n], Items: []Item{{SKU: ids[n%int64(skus)], Qty: 1}}})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took, cpu := time.Since(start), testkit.ProcessCPU()-cpuStart
	if os.Getenv("FLASHSALE_BENCH_CPUPROFILE") != "" {
		pprof.StopCPUProfile()
	}
	b.ReportMetric(float64(b.N)/took.Seconds(), "deductions/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
	}
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(committed.Load())/float64(c), "records/commit")
		b.ReportMetric(float64(commitNs.Load())/float64(c)/1e6, "ms/commit")
	}
	if failed.Load() > 0 {
		b.Fatalf("%d deducts failed", failed.Load())
	}
}

// BenchmarkDeductHotSKU: one SKU, 4096 concurrent callers, durable deducts.
func BenchmarkDeductHotSKU(b *testing.B) { benchDeduct(b, 1, 4096, false) }

// BenchmarkDeductManySKUs: 10,000 SKUs, uniform, 4096 concurrent callers.
func BenchmarkDeductManySKUs(b *testing.B) { benchDeduct(b, 10_000, 4096, false) }

// BenchmarkDeductHotSKUSnapshots is BenchmarkDeductHotSKU with the background
// snapshotter of a production engine sharing the two cores.
func BenchmarkDeductHotSKUSnapshots(b *testing.B) { benchDeduct(b, 1, 4096, true) }
