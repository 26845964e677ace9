package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRestart measures recovery after a crash: a child process writes
// FLASHSALE_RESTART_RECORDS records (default 10,000,000) through the engine,
// with the background snapshots of a normal run, and exits without Close
// (like a kill: every acknowledged record is durable, nothing else is done).
// Then Open is timed. Run it alone:
//
//	go test -run '^$' -bench BenchmarkRestart -benchtime 1x ./engine
func BenchmarkRestart(b *testing.B) {
	if os.Getenv("FLASHSALE_RESTART_CHILD") != "" {
		return
	}
	records := int64(10_000_000)
	if s := os.Getenv("FLASHSALE_RESTART_RECORDS"); s != "" {
		records, _ = strconv.ParseInt(s, 10, 64)
	}
	dir := b.TempDir()
	if d := os.Getenv("FLASHSALE_RESTART_DIR"); d != "" {
		dir = d // keep the data for a closer look
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRestartChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FLASHSALE_RESTART_CHILD="+dir, "FLASHSALE_RESTART_RECORDS="+strconv.FormatInt(records, 10))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("child: %v", err)
	}
	write := time.Since(start)
	b.ResetTimer()
	var open time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		e, err := Open(Options{Dir: dir, ExpiryTick: -1})
		open = time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		st := e.Stats()
		b.ReportMetric(float64(st.Log.Durable), "records")
		b.ReportMetric(float64(st.Log.Durable-st.SnapshotSeq), "replayed")
		b.ReportMetric(float64(st.RequestIDs), "request-ids")
		b.StopTimer()
		e.log.Close() // no snapshot: the next round recovers the same way
		e.sys.Shutdown()
		b.StartTimer()
	}
	b.ReportMetric(open.Seconds(), "restart-s")
	b.ReportMetric(write.Seconds(), "write-s")
}

// TestRestartChild is BenchmarkRestart's child; it does nothing otherwise.
func TestRestartChild(t *testing.T) {
	dir := os.Getenv("FLASHSALE_RESTART_CHILD")
	if dir == "" {
		return
	}
	records, _ := strconv.ParseInt(os.Getenv("FLASHSALE_RESTART_RECORDS"), 10, 64)
	e, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const skus = 1000
	for i := 0; i < skus; i++ {
		if _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: fmt.Sprintf("s%d", i), Total: TotalMax}); err != nil {
			t.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 1024; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > records {
					return
				}
				id := "r" + strconv.FormatInt(n, 10)
				if _, err := e.Deduct(ctx, DeductRequest{RequestID: id, Items: []Item{{fmt.Sprintf("s%d", n%skus), 1}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(0) // a crash after the last ack: no Close, no final snapshot
}

// BenchmarkMemory reports the heap bytes per SKU and per remembered request
// id (one single-SKU deduct each).
func BenchmarkMemory(b *testing.B) {
	e := openTest(b, b.TempDir(), nil, nil)
	defer e.Close()
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const skus, ids = 10_000, 200_000
	h0 := heap()
	for i := 0; i < skus; i++ {
		mustSet(b, e, fmt.Sprintf("sku-%d", i), TotalMax, 0)
	}
	h1 := heap()
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < ids; i += 64 {
				if _, err := e.Deduct(ctx, DeductRequest{RequestID: fmt.Sprintf("request-%08d", i), UserID: "user-1",
					Items: []Item{{fmt.Sprintf("sku-%d", i%skus), 1}}}); err != nil {
					b.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	h2 := heap()
	b.ReportMetric(float64(h1-h0)/skus, "bytes/sku")
	b.ReportMetric(float64(h2-h1)/ids, "bytes/request-id")
}
