package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/engine"
)

// Measured on the 2-core dev machine (go test -run Allocs -v ./server, no
// -race, 2026-11): the server's own share of a deduct (stub engine) is 2
// allocations per request: the request_id and user_id strings, which the
// engine keeps (the parser, the SKU id, the deadline context, the answer and
// the metrics allocate nothing). The full path with the real engine, durable
// on disk, is 10 (the engine's request entry, its actor message and reply,
// the log record).
const (
	deductServerAllocsMax = 2
	deductFullAllocsMax   = 20
)

// deductAllocs runs the deduct handler directly on a reused RequestCtx
// (no network) and returns the allocations per request.
func deductAllocs(t *testing.T, h fasthttp.RequestHandler, runs int) float64 {
	t.Helper()
	bodies := make([][]byte, runs+1)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"request_id":"alloc-%d","user_id":"u1","items":[{"sku":"A","qty":1}]}`, i)
	}
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/deduct")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		ctx.Request.SetBody(bodies[i%len(bodies)])
		i++
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("deduct: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
	return allocs
}

// TestDeductAllocs pins the allocations of the deduct handler path.
func TestDeductAllocs(t *testing.T) {
	stub := &stubBackend{deduct: func(ctx context.Context, r engine.DeductRequest) (engine.Result, error) {
		return engine.Result{Seq: 7}, nil
	}}
	srv := newServer(stub, Config{})
	defer srv.Shutdown(context.Background())
	own := deductAllocs(t, srv.Handler(), 500)

	e := newEnv(t, Config{AdminToken: testToken})
	e.putSKU("A", TotalMax, "")
	full := deductAllocs(t, e.srv.Handler(), 200)
	t.Logf("allocations per deduct: server %.1f, server+engine %.1f (race detector: %v)", own, full, raceEnabled)
	if raceEnabled {
		return
	}
	if own > deductServerAllocsMax {
		t.Errorf("server allocates %.1f per deduct, want <= %d", own, deductServerAllocsMax)
	}
	if full > deductFullAllocsMax {
		t.Errorf("server+engine allocate %.1f per deduct, want <= %d", full, deductFullAllocsMax)
	}
}
