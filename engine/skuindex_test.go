package engine

import (
	"fmt"
	"testing"
)

func BenchmarkSKUIndexGet(b *testing.B) {
	var x skuIndex
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("sku-%d", i)
		x.add(&skuRef{id: ids[i]})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if x.get(ids[i%len(ids)]) == nil {
			b.Fatal("missing")
		}
	}
}
