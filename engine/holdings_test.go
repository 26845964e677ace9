package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/flashsale/flashsale/internal/testkit"
)

// TestHoldingsModel: random adds against a map, with enough churn to compact
// the id bytes and reuse slots; every step checks the user touched, and the
// end checks every user.
func TestHoldingsModel(t *testing.T) {
	seed := testkit.Seed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	var hs holdings
	model := map[string]int64{}
	for step := 0; step < 50_000; step++ {
		u := fmt.Sprintf("user-%d", rng.IntN(2000))
		delta := rng.Int64N(7) - 3
		if delta < 0 && model[u] == 0 {
			delta = -delta
		}
		if -delta > model[u] {
			delta = -model[u]
		}
		hs.add(u, delta)
		model[u] += delta
		if model[u] == 0 {
			delete(model, u)
		}
		if got := hs.get(u); got != model[u] {
			t.Fatalf("step %d: %s holds %d, want %d", step, u, got, model[u])
		}
	}
	if hs.len() != len(model) {
		t.Fatalf("%d users, want %d", hs.len(), len(model))
	}
	seen := 0
	hs.each(func(u string, q int64) {
		seen++
		if model[u] != q {
			t.Fatalf("each: %s holds %d, want %d", u, q, model[u])
		}
	})
	if seen != len(model) {
		t.Fatalf("each saw %d users, want %d", seen, len(model))
	}
}
