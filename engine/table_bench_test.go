package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkTableClaimFinish: the request table's hot path (claim a fresh id,
// finish it) from as many goroutines as CPUs, every id kept.
func BenchmarkTableClaimFinish(b *testing.B) { benchTable(b, 2) }

// BenchmarkTableClaimFinishSerial: the same from one goroutine.
func BenchmarkTableClaimFinishSerial(b *testing.B) { benchTable(b, 1) }

func benchTable(b *testing.B, goroutines int) {
	t := newTable(1 << 24)
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
	}
	items := []Item{{SKU: "sku-hot", Qty: 1}}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				in := reqInit{id: ids[n], kind: 3, bodyHash: 1, doneMs: 1, items: items}
				h, found, _, err := t.claim(ctx, &in)
				if err != nil || found != claimed {
					failed.Store(fmt.Sprint(err, found))
					return
				}
				t.finish(h, true, uint64(n+1), statusDeducted)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
}
