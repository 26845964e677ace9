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
// spread over skus SKUs, and reports deductions/s. With users > 0 each deduct
// names one of that many buyers (spread evenly), and each SKU has a per-user
// limit, as in a real sale; with 0 it names none. Without snapshots the
// engine runs no background loop (the sales path alone); with them it runs
// the default one, which folds the log into its shadow state and writes a
// snapshot every SnapshotEveryRecordsDefault records, as in production.
func benchDeduct(b *testing.B, skus, callers, users int, snapshots bool) {
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
		req := SetSKURequest{SKU: ids[i], Total: TotalMax}
		if users > 0 {
			limit := int64(LimitMax)
			req.LimitPerUser = &limit
		}
		if _, _, err := e.SetSKU(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	// Request ids come from the client; make them before the clock starts.
	reqIDs := make([]string, b.N+1)
	for i := range reqIDs {
		reqIDs[i] = "r" + strconv.Itoa(i)
	}
	userIDs := make([]string, b.N+1)
	for i := range userIDs {
		if users > 0 {
			// A multiplicative step, so that consecutive requests name
			// buyers far apart in the table.
			userIDs[i] = "user-" + strconv.Itoa(int(uint64(i)*2654435761%uint64(users)))
		}
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
				_, err := e.Deduct(ctx, DeductRequest{RequestID: reqIDs[n], UserID: userIDs[n], Items: []Item{{SKU: ids[n%int64(skus)], Qty: 1}}})
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
func BenchmarkDeductHotSKU(b *testing.B) { benchDeduct(b, 1, 4096, 0, false) }

// BenchmarkDeductHotSKUBuyers is BenchmarkDeductHotSKU with a buyer per
// deduct, one of 100,000, and a per-user limit: the engine keeps what each
// buyer holds.
func BenchmarkDeductHotSKUBuyers(b *testing.B) { benchDeduct(b, 1, 4096, 100_000, false) }

// BenchmarkDeductManySKUs: 10,000 SKUs, uniform, 4096 concurrent callers.
func BenchmarkDeductManySKUs(b *testing.B) { benchDeduct(b, 10_000, 4096, 0, false) }

// BenchmarkDeductHotSKUSnapshots is BenchmarkDeductHotSKU with the background
// snapshotter of a production engine sharing the two cores.
func BenchmarkDeductHotSKUSnapshots(b *testing.B) { benchDeduct(b, 1, 4096, 0, true) }
