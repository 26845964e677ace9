package wal

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"
)

// benchAppenders is the number of concurrent appenders in
// BenchmarkAppendCeiling: as many callers as the engine's hot-SKU benchmark.
const benchAppenders = 4096

// benchRecord returns a valid record of about 60 bytes, the size of a
// one-item deduct with short ids.
func benchRecord(b *testing.B) []byte {
	r := Record{Kind: KindDeduct, TimeMs: 1_700_000_000_000, RequestID: "req-0123456789",
		UserID: "user-0001", BodyHash: 0x0123456789abcdef, Items: []Item{{SKU: "sku-hot", Qty: 1}}}
	rec := r.Encode(nil)
	if len(rec) < 50 || len(rec) > 70 {
		b.Fatalf("bench record is %d bytes, want about 60", len(rec))
	}
	return rec
}

// BenchmarkAppendCeiling measures the log alone on the real file system with
// the engine's batching (default Options): benchAppenders goroutines each
// append a record and wait for its ack before appending the next (a closed
// loop), b.N records in all. records/s is the storage ceiling that the
// engine's durable operations cannot exceed. The run is bound by fsync
// latency more than by CPU, so it also reports cpu-ns/record: the process's
// CPU time (all threads, Pebble's flushes included, the benchmark's own
// goroutines and channels too) over the run, per record.
func BenchmarkAppendCeiling(b *testing.B) {
	rec := benchRecord(b)
	var commits, batched atomic.Int64
	l, err := Open(b.TempDir(), Options{OnCommit: func(records, _ int, _ time.Duration) {
		commits.Add(1)
		batched.Add(int64(records))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var tickets atomic.Int64
	n := int64(b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpuStart := time.Now(), testkit.ProcessCPU()
	for g := 0; g < benchAppenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack := newChanAck()
			for tickets.Add(1) <= n {
				if _, err := l.Append(rec, ack); err != nil {
					b.Error(err)
					return
				}
				if res := <-ack; res.err != nil {
					b.Error(res.err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took, cpu := time.Since(start), testkit.ProcessCPU()-cpuStart
	b.StopTimer()
	b.ReportMetric(float64(b.N)/took.Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
	}
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(batched.Load())/float64(c), "records/commit")
	}
}

// BenchmarkAppendSingle is the contrast: one appender, one record at a time,
// so every record pays a whole fsync.
func BenchmarkAppendSingle(b *testing.B) {
	rec := benchRecord(b)
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ack := newChanAck()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(rec, ack); err != nil {
			b.Fatal(err)
		}
		if res := <-ack; res.err != nil {
			b.Fatal(res.err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
