package server

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkDeductInmemory measures the full handler path: a fasthttp
// client, the in-memory listener, the server, and the real engine durable
// on disk (every answer after fsync; concurrent requests share fsyncs).
// Run: go test -run '^$' -bench DeductInmemory -benchtime 5s ./server
// It reports requests/s (req/s). clientsPerCPU is b.SetParallelism: the
// closed-loop clients are that many times GOMAXPROCS, each with one request
// in flight.
func BenchmarkDeductInmemory(b *testing.B) {
	for _, par := range []int{1, 32} {
		b.Run("clientsPerCPU="+strconv.Itoa(par), func(b *testing.B) {
			e := newEnv(b, Config{AdminToken: testToken, ConnsMax: 4096})
			e.putSKU("A", TotalMax, "")
			var n atomic.Int64
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := fasthttp.AcquireRequest()
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://flashsale/v1/deduct")
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				var body []byte
				for pb.Next() {
					body = append(body[:0], `{"request_id":"b-`...)
					body = strconv.AppendInt(body, n.Add(1), 10)
					body = append(body, `","items":[{"sku":"A","qty":1}]}`...)
					req.SetBody(body)
					if err := e.client.Do(req, resp); err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode() != 200 {
						b.Errorf("deduct: %d %s", resp.StatusCode(), resp.Body())
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
