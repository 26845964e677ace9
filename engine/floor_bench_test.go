package engine

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"
)

// benchFloor is the peer of benchDeduct: the same callers and the same spread
// over skus SKUs, doing the least a deduct that is answered after a group
// commit can do. Each caller locks its SKU, takes one unit, queues itself and
// blocks until a committer goroutine, which answers whatever is queued at once,
// wakes it. Nothing is validated, remembered, logged or made durable. What it
// measures is the machine's cost of callers that each block once per deduct:
// no engine built this way can beat it, so the engine's figure over the
// floor's, in the same run, is how much of the reachable the engine reaches.
func benchFloor(b *testing.B, skus, callers int) {
	type sku struct {
		mu    sync.Mutex
		stock int64
		_     [48]byte // a cache line each, as the engine's SKUs have their own
	}
	stock := make([]sku, skus)
	for i := range stock {
		stock[i].stock = TotalMax
	}
	var (
		mu     sync.Mutex
		queued []chan struct{}
		kick   = make(chan struct{}, 1)
		stop   = make(chan struct{})
		done   = make(chan struct{})
	)
	go func() { // the committer
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-kick:
			}
			mu.Lock()
			q := queued
			queued = nil
			mu.Unlock()
			for _, w := range q {
				w <- struct{}{}
			}
		}
	}()
	b.ResetTimer()
	start, cpuStart := time.Now(), testkit.ProcessCPU()
	var next, oversold atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wake := make(chan struct{}, 1)
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				s := &stock[n%int64(skus)]
				s.mu.Lock()
				if s.stock < 1 {
					oversold.Add(1)
				}
				s.stock--
				s.mu.Unlock()
				mu.Lock()
				queued = append(queued, wake)
				mu.Unlock()
				select {
				case kick <- struct{}{}:
				default:
				}
				<-wake
			}
		}()
	}
	wg.Wait()
	took, cpu := time.Since(start), testkit.ProcessCPU()-cpuStart
	close(stop)
	<-done
	b.ReportMetric(float64(b.N)/took.Seconds(), "deductions/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
	}
	var left int64
	for i := range stock {
		left += stock[i].stock
	}
	if want := int64(skus)*TotalMax - int64(b.N); left != want || oversold.Load() > 0 {
		b.Fatalf("floor lost updates: %d units left, want %d", left, want)
	}
}

// BenchmarkDeductFloorHotSKU is the floor of BenchmarkDeductHotSKU.
func BenchmarkDeductFloorHotSKU(b *testing.B) { benchFloor(b, 1, 4096) }

// BenchmarkDeductFloorManySKUs is the floor of BenchmarkDeductManySKUs.
func BenchmarkDeductFloorManySKUs(b *testing.B) { benchFloor(b, 10_000, 4096) }
