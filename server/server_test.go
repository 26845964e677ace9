package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/flashsale/flashsale/engine"
)

// TestContract walks every endpoint of the v1 contract end to end over an
// in-memory listener, with every success and error code.
func TestContract(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken})

	// Admin: create SKUs. PUT answers the SKU as GET does.
	a := e.putSKU("A", 10, "")
	if a.str("sku") != "A" || a.num("total") != 10 || a.num("available") != 10 || a.num("sold") != 0 ||
		a.boolean("sold_out") || a.num("limit_per_user") != 0 {
		t.Fatalf("PUT A: %s", a.raw)
	}
	e.putSKU("B", 100, "2")
	e.putSKU("C", 5, "")
	a = e.do("GET", "/v1/skus/B", "", "")
	want(t, a, 200, "")
	if a.num("limit_per_user") != 2 || a.num("total") != 100 {
		t.Fatalf("GET B: %s", a.raw)
	}
	// An omitted limit keeps the current one.
	a = e.putSKU("B", 120, "")
	if a.num("limit_per_user") != 2 || a.num("total") != 120 {
		t.Fatalf("PUT B keeps limit: %s", a.raw)
	}

	// Deduct, replay, conflict.
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r1","user_id":"u1","items":[{"sku":"A","qty":3}]}`)
	want(t, a, 200, "")
	seq := a.num("seq")
	if a.str("request_id") != "r1" || a.str("status") != "deducted" || seq <= 0 || a.boolean("replayed") {
		t.Fatalf("deduct: %s", a.raw)
	}
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r1","user_id":"u1","items":[{"sku":"A","qty":3}],"extra":[1,2]}`)
	want(t, a, 200, "")
	if !a.boolean("replayed") || a.num("seq") != seq {
		t.Fatalf("replay: %s (first seq %d)", a.raw, seq)
	}
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r1","user_id":"u1","items":[{"sku":"A","qty":4}]}`)
	want(t, a, 409, "request_id_conflict")

	// Stock errors carry sku and available.
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r2","items":[{"sku":"A","qty":8}]}`)
	want(t, a, 409, "insufficient_stock")
	if a.str("sku") != "A" || a.num("available") != 7 {
		t.Fatalf("insufficient: %s", a.raw)
	}
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r3","items":[{"sku":"A","qty":7}]}`)
	want(t, a, 200, "")
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r4","items":[{"sku":"A","qty":1}]}`)
	want(t, a, 409, "sold_out")
	if a.str("sku") != "A" || a.num("available") != 0 {
		t.Fatalf("sold out: %s", a.raw)
	}
	// A retry of a success after the sell-out still replays.
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r3","items":[{"sku":"A","qty":7}]}`)
	want(t, a, 200, "")
	if !a.boolean("replayed") {
		t.Fatalf("replay after sold out: %s", a.raw)
	}
	a = e.do("GET", "/v1/skus/A", "", "")
	if a.num("available") != 0 || a.num("sold") != 10 || !a.boolean("sold_out") {
		t.Fatalf("GET A: %s", a.raw)
	}

	// Unknown SKU, checked before the user_id rule and stock.
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r5","items":[{"sku":"B","qty":1},{"sku":"nope","qty":1}]}`)
	want(t, a, 404, "unknown_sku")
	if a.str("sku") != "nope" {
		t.Fatalf("unknown sku: %s", a.raw)
	}
	// user_id required for a SKU with a limit; the limit is per user.
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r6","items":[{"sku":"B","qty":1}]}`)
	want(t, a, 400, "bad_request")
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r7","user_id":"u1","items":[{"sku":"B","qty":2}]}`)
	want(t, a, 200, "")
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r8","user_id":"u1","items":[{"sku":"B","qty":1}]}`)
	want(t, a, 409, "user_limit_exceeded")
	if a.str("sku") != "B" || a.num("limit") != 2 {
		t.Fatalf("limit: %s", a.raw)
	}

	// Multi-SKU is all or nothing: C lacks stock, so B is untouched.
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r9","user_id":"u2","items":[{"sku":"B","qty":1},{"sku":"C","qty":6}]}`)
	want(t, a, 409, "insufficient_stock")
	if a.str("sku") != "C" {
		t.Fatalf("multi: %s", a.raw)
	}
	if a = e.do("GET", "/v1/skus/B", "", ""); a.num("sold") != 2 {
		t.Fatalf("multi applied partly: %s", a.raw)
	}
	a = e.do("POST", "/v1/deduct", "", `{"request_id":"r10","user_id":"u2","items":[{"sku":"B","qty":1},{"sku":"C","qty":2}]}`)
	want(t, a, 200, "")

	// Returns: partial, replayed, never beyond what was sold.
	a = e.do("POST", "/v1/return", "", `{"return_id":"ret1","request_id":"r10","items":[{"sku":"C","qty":1}]}`)
	want(t, a, 200, "")
	if a.str("return_id") != "ret1" || a.str("status") != "returned" || a.boolean("replayed") {
		t.Fatalf("return: %s", a.raw)
	}
	a = e.do("POST", "/v1/return", "", `{"return_id":"ret1","request_id":"r10","items":[{"sku":"C","qty":1}]}`)
	want(t, a, 200, "")
	if !a.boolean("replayed") {
		t.Fatalf("return replay: %s", a.raw)
	}
	a = e.do("POST", "/v1/return", "", `{"return_id":"ret2","request_id":"r10","items":[{"sku":"C","qty":2}]}`)
	want(t, a, 409, "return_exceeds_sold")
	a = e.do("POST", "/v1/return", "", `{"return_id":"ret3","request_id":"r10","items":[{"sku":"A","qty":1}]}`)
	want(t, a, 409, "return_exceeds_sold")
	a = e.do("POST", "/v1/return", "", `{"return_id":"ret4","request_id":"zzz","items":[{"sku":"C","qty":1}]}`)
	want(t, a, 404, "unknown_request")
	a = e.do("POST", "/v1/return", "", `{"return_id":"ret1","request_id":"r10","items":[{"sku":"B","qty":1}]}`)
	want(t, a, 409, "request_id_conflict")

	// Reservations: reserve, confirm, replay, cancel after confirm.
	a = e.do("POST", "/v1/reserve", "", `{"request_id":"v1","user_id":"u3","items":[{"sku":"C","qty":1}],"ttl_ms":60000}`)
	want(t, a, 200, "")
	if a.str("status") != "reserved" || a.num("expires_at_ms") != e.clock.Now().UnixMilli()+60000 {
		t.Fatalf("reserve: %s", a.raw)
	}
	a = e.do("POST", "/v1/confirm", "", `{"request_id":"v1"}`)
	want(t, a, 200, "")
	cseq := a.num("seq")
	if a.str("status") != "confirmed" || a.boolean("replayed") {
		t.Fatalf("confirm: %s", a.raw)
	}
	a = e.do("POST", "/v1/confirm", "", `{"request_id":"v1"}`)
	if want(t, a, 200, ""); !a.boolean("replayed") || a.num("seq") != cseq {
		t.Fatalf("confirm replay: %s", a.raw)
	}
	want(t, e.do("POST", "/v1/cancel", "", `{"request_id":"v1"}`), 409, "already_confirmed")
	// A confirmed reservation can be returned.
	want(t, e.do("POST", "/v1/return", "", `{"return_id":"ret5","request_id":"v1","items":[{"sku":"C","qty":1}]}`), 200, "")

	// Default TTL is 15 minutes.
	a = e.do("POST", "/v1/reserve", "", `{"request_id":"v2","items":[{"sku":"C","qty":1}]}`)
	if want(t, a, 200, ""); a.num("expires_at_ms") != e.clock.Now().UnixMilli()+TTLMsDefault {
		t.Fatalf("default ttl: %s", a.raw)
	}
	a = e.do("POST", "/v1/cancel", "", `{"request_id":"v2"}`)
	if want(t, a, 200, ""); a.str("status") != "cancelled" {
		t.Fatalf("cancel: %s", a.raw)
	}
	a = e.do("POST", "/v1/cancel", "", `{"request_id":"v2"}`)
	if want(t, a, 200, ""); !a.boolean("replayed") {
		t.Fatalf("cancel replay: %s", a.raw)
	}
	want(t, e.do("POST", "/v1/confirm", "", `{"request_id":"v2"}`), 409, "reservation_cancelled")
	want(t, e.do("POST", "/v1/confirm", "", `{"request_id":"r10"}`), 409, "not_a_reservation")
	want(t, e.do("POST", "/v1/cancel", "", `{"request_id":"never"}`), 404, "unknown_request")
	// An unconfirmed reservation cannot be returned.
	want(t, e.do("POST", "/v1/reserve", "", `{"request_id":"v3","items":[{"sku":"C","qty":1}],"ttl_ms":1000}`), 200, "")
	want(t, e.do("POST", "/v1/return", "", `{"return_id":"ret6","request_id":"v3","items":[{"sku":"C","qty":1}]}`), 409, "return_exceeds_sold")
	// Expiry.
	e.clock.Advance(2 * time.Second)
	if _, err := e.eng.ExpireDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	want(t, e.do("POST", "/v1/confirm", "", `{"request_id":"v3"}`), 409, "reservation_expired")
	want(t, e.do("POST", "/v1/cancel", "", `{"request_id":"v3"}`), 409, "reservation_expired")
	a = e.do("GET", "/v1/skus/C", "", "")
	if a.num("reserved") != 0 || a.num("total") != a.num("available")+a.num("reserved")+a.num("sold") {
		t.Fatalf("C after expiry: %s", a.raw)
	}

	// Restock (admin): adds; a retry adds nothing; unknown SKU 404.
	a = e.do("POST", "/v1/skus/A/restock", testToken, `{"request_id":"rs1","qty":5}`)
	if want(t, a, 200, ""); a.num("total") != 15 || a.num("available") != 5 || a.boolean("sold_out") {
		t.Fatalf("restock: %s", a.raw)
	}
	a = e.do("POST", "/v1/skus/A/restock", testToken, `{"request_id":"rs1","qty":5}`)
	if want(t, a, 200, ""); a.num("total") != 15 {
		t.Fatalf("restock replay: %s", a.raw)
	}
	want(t, e.do("POST", "/v1/skus/A/restock", testToken, `{"request_id":"rs1","qty":6}`), 409, "request_id_conflict")
	want(t, e.do("POST", "/v1/skus/nope/restock", testToken, `{"request_id":"rs2","qty":5}`), 404, "unknown_sku")
	// A restock that would take the total past TotalMax: 400, nothing added.
	e.putSKU("Big", TotalMax-1, "")
	want(t, e.do("POST", "/v1/skus/Big/restock", testToken, `{"request_id":"rs3","qty":2}`), 400, "bad_request")
	if a = e.do("GET", "/v1/skus/Big", "", ""); a.num("total") != TotalMax-1 {
		t.Fatalf("refused restock applied: %s", a.raw)
	}
	// PUT below committed.
	want(t, e.do("PUT", "/v1/skus/A", testToken, `{"total":9}`), 409, "total_below_committed")

	// Reads.
	a = e.do("GET", "/v1/skus/nope", "", "")
	if want(t, a, 404, "unknown_sku"); a.str("sku") != "nope" {
		t.Fatalf("GET unknown: %s", a.raw)
	}
	want(t, e.do("GET", "/v1/skus/bad%20id", "", ""), 400, "bad_request")

	// Routing errors.
	a = e.do("GET", "/v1/deduct", "", "")
	if want(t, a, 405, "method_not_allowed"); a.header["Allow"] != "POST" {
		t.Fatalf("405: %v", a.header)
	}
	want(t, e.do("DELETE", "/v1/skus/A", testToken, ""), 405, "method_not_allowed")
	want(t, e.do("GET", "/v1/nothing", "", ""), 404, "not_found")
	want(t, e.do("GET", "/v1/sync", testToken, ""), 503, "sync_disabled")
	want(t, e.do("POST", "/v1/reconcile", testToken, ""), 503, "sync_disabled")

	// Health and metrics.
	if a = e.do("GET", "/healthz", "", ""); a.status != 200 {
		t.Fatalf("healthz: %d", a.status)
	}
	if a = e.do("GET", "/readyz", "", ""); a.status != 200 {
		t.Fatalf("readyz: %d %s", a.status, a.raw)
	}
	a = e.do("GET", "/metrics", "", "")
	for _, s := range []string{`flashsale_http_requests_total{endpoint="deduct",code="200"}`,
		`flashsale_http_errors_total{endpoint="deduct",error="sold_out"} 1`,
		`flashsale_http_request_duration_seconds_bucket{endpoint="deduct"`,
		`flashsale_wal_batch_records_count`, `flashsale_wal_commit_duration_seconds_bucket`,
		`flashsale_http_in_flight`, `flashsale_wal_queued_records`} {
		if !strings.Contains(a.raw, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
}

// TestAdminAuth: admin endpoints need the exact bearer token; without a
// configured token they answer 401 to everyone.
func TestAdminAuth(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken})
	for _, tok := range []string{"", "wrong", testToken + "x", testToken[:len(testToken)-1]} {
		a := e.do("PUT", "/v1/skus/A", tok, `{"total":1}`)
		want(t, a, 401, "unauthorized")
		if a.header["WWW-Authenticate"] == "" {
			t.Fatalf("401 without WWW-Authenticate")
		}
		want(t, e.do("POST", "/v1/skus/A/restock", tok, `{"request_id":"x","qty":1}`), 401, "unauthorized")
		want(t, e.do("GET", "/v1/sync", tok, ""), 401, "unauthorized")
		want(t, e.do("POST", "/v1/reconcile", tok, ""), 401, "unauthorized")
	}
	// Auth is checked before the body.
	want(t, e.do("PUT", "/v1/skus/A", "", `not json`), 401, "unauthorized")
	e.putSKU("A", 1, "")

	n := newEnv(t, Config{})
	want(t, n.do("PUT", "/v1/skus/A", "", `{"total":1}`), 401, "unauthorized")
	want(t, n.do("PUT", "/v1/skus/A", testToken, `{"total":1}`), 401, "unauthorized")
	want(t, n.do("PUT", "/v1/skus/A", " ", `{"total":1}`), 401, "unauthorized")
}

// TestBadRequests: each strictness rule answers 4xx with its code, over
// HTTP (the parser's own table is in parse_test.go).
func TestBadRequests(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken, BodyBytesMax: 4096})
	e.putSKU("A", 100, "")
	items65 := strings.Repeat(`{"sku":"A","qty":1},`, 65)
	cases := []struct{ path, body string }{
		{"/v1/deduct", ``},
		{"/v1/deduct", `[]`},
		{"/v1/deduct", `{"request_id":1,"items":[{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"items":[{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"request_id":"x y","items":[{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"request_id":"` + strings.Repeat("a", 65) + `","items":[{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":1.0}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":1e2}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":"1"}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":0}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":1000001}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":-1}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[]}`},
		{"/v1/deduct", `{"request_id":"r","items":[` + strings.TrimSuffix(items65, ",") + `]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":1},{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"request_id":"r","user_id":"","items":[{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"request_id":"r","items":[{"sku":"A","qty":1}]} trailing`},
		{"/v1/reserve", `{"request_id":"r","items":[{"sku":"A","qty":1}],"ttl_ms":999}`},
		{"/v1/reserve", `{"request_id":"r","items":[{"sku":"A","qty":1}],"ttl_ms":86400001}`},
		{"/v1/confirm", `{}`},
		{"/v1/cancel", `{"request_id":null}`},
		{"/v1/return", `{"return_id":"x","items":[{"sku":"A","qty":1}]}`},
	}
	for _, c := range cases {
		a := e.do("POST", c.path, "", c.body)
		if a.status != 400 || a.str("code") != "bad_request" || a.ctype != contentTypeJSON {
			t.Errorf("POST %s %s: %d %s %s", c.path, c.body, a.status, a.ctype, a.raw)
		}
	}
	want(t, e.do("PUT", "/v1/skus/A", testToken, `{"total":1000000000001}`), 400, "bad_request")
	want(t, e.do("PUT", "/v1/skus/A", testToken, `{"total":5,"limit_per_user":1000001}`), 400, "bad_request")
	want(t, e.do("PUT", "/v1/skus/A", testToken, `{}`), 400, "bad_request")
	want(t, e.do("POST", "/v1/skus/A/restock", testToken, `{"request_id":"x","qty":0}`), 400, "bad_request")

	// Bodies over the limit: 413.
	// The server answers as soon as it has read the headers and closes the
	// connection, so a client may fail to write the rest: use a raw conn.
	big := `{"request_id":"r","items":[{"sku":"A","qty":1}],"pad":"` + strings.Repeat("x", 5000) + `"}`
	conn, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.WriteString(conn, "POST /v1/deduct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
			strconv.Itoa(len(big))+"\r\n\r\n"+big)
	}()
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("reading the 413: %v", err)
	}
	conn.Close()
	if resp.StatusCode() != 413 || string(resp.Header.ContentType()) != contentTypeJSON ||
		!strings.Contains(string(resp.Body()), `"code":"body_too_large"`) {
		t.Fatalf("big body: %d %s %s", resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	var a answer
	// Nothing above was applied.
	if a = e.do("GET", "/v1/skus/A", "", ""); a.num("sold") != 0 {
		t.Fatalf("a bad request was applied: %s", a.raw)
	}
	// Unknown fields are ignored.
	want(t, e.do("POST", "/v1/deduct", "", `{"request_id":"ok","items":[{"sku":"A","qty":1,"x":{}}],"y":null}`), 200, "")
}

// stubBackend answers Deduct (and SetSKU, when set) with a function; every
// other change fails.
type stubBackend struct {
	deduct  func(context.Context, engine.DeductRequest) (engine.Result, error)
	setSKU  func(context.Context, engine.SetSKURequest) (engine.SKUState, engine.Result, error)
	get     func(context.Context, string) (engine.SKUState, error)
	restock func(context.Context, engine.RestockRequest) (engine.SKUState, engine.Result, error)
}

func (s *stubBackend) Deduct(ctx context.Context, r engine.DeductRequest) (engine.Result, error) {
	return s.deduct(ctx, r)
}
func (s *stubBackend) Reserve(context.Context, engine.ReserveRequest) (engine.Result, error) {
	return engine.Result{}, errors.New("stub")
}
func (s *stubBackend) Confirm(context.Context, string) (engine.Result, error) {
	return engine.Result{}, errors.New("stub")
}
func (s *stubBackend) Cancel(context.Context, string) (engine.Result, error) {
	return engine.Result{}, errors.New("stub")
}
func (s *stubBackend) Return(context.Context, engine.ReturnRequest) (engine.Result, error) {
	return engine.Result{}, errors.New("stub")
}
func (s *stubBackend) Restock(ctx context.Context, r engine.RestockRequest) (engine.SKUState, engine.Result, error) {
	if s.restock == nil {
		return engine.SKUState{}, engine.Result{}, errors.New("stub")
	}
	return s.restock(ctx, r)
}
func (s *stubBackend) SetSKU(ctx context.Context, r engine.SetSKURequest) (engine.SKUState, engine.Result, error) {
	if s.setSKU == nil {
		return engine.SKUState{}, engine.Result{}, errors.New("stub")
	}
	return s.setSKU(ctx, r)
}
func (s *stubBackend) Get(ctx context.Context, sku string) (engine.SKUState, error) {
	if s.get == nil {
		return engine.SKUState{}, errors.New("stub")
	}
	return s.get(ctx, sku)
}
func (s *stubBackend) Available(string) (int64, bool) { return 1, true }
func (s *stubBackend) Err() error                     { return nil }
func (s *stubBackend) Stats() engine.Stats            { return engine.Stats{} }

// TestOverload: past the in-flight bound a request is refused at once with
// 503 overloaded and Retry-After, and is not queued; the engine's own
// ErrOverloaded maps to the same answer.
func TestOverload(t *testing.T) {
	const inflightMax = 8
	entered := make(chan struct{}, 64)
	release := make(chan struct{})
	stub := &stubBackend{deduct: func(ctx context.Context, r engine.DeductRequest) (engine.Result, error) {
		if r.RequestID == "eng-overload" {
			return engine.Result{}, engine.ErrOverloaded
		}
		entered <- struct{}{}
		<-release
		return engine.Result{Seq: 1}, nil
	}}
	var client *fasthttp.Client
	serveInMemory(t, stub, Config{InFlightMax: inflightMax}, &client)
	var wg sync.WaitGroup
	results := make(chan answer, inflightMax)
	for i := range inflightMax {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- doRequest(t, client, "POST", "/v1/deduct", "", fmt.Sprintf(`{"request_id":"b%d","items":[{"sku":"A","qty":1}]}`, i))
		}()
	}
	for range inflightMax {
		<-entered
	}
	a := doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"extra","items":[{"sku":"A","qty":1}]}`)
	want(t, a, 503, "overloaded")
	if a.header["Retry-After"] != "1" {
		t.Fatalf("Retry-After %q", a.header["Retry-After"])
	}
	close(release)
	wg.Wait()
	close(results)
	for a := range results {
		want(t, a, 200, "")
	}
	a = doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"eng-overload","items":[{"sku":"A","qty":1}]}`)
	if want(t, a, 503, "overloaded"); a.header["Retry-After"] != "1" {
		t.Fatalf("engine overload without Retry-After")
	}
}

// TestSKUOverload: the per-SKU (stripe) bound refuses a request for a busy
// SKU while another SKU is still served.
func TestSKUOverload(t *testing.T) {
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	stub := &stubBackend{deduct: func(ctx context.Context, r engine.DeductRequest) (engine.Result, error) {
		if r.Items[0].SKU == "hot" {
			entered <- struct{}{}
			<-release
		}
		return engine.Result{Seq: 1}, nil
	}}
	var client *fasthttp.Client
	srv, _ := serveInMemory(t, stub, Config{SKUInFlightMax: 2}, &client)
	other := "cold"
	for i := 0; stripeOf(other) == stripeOf("hot"); i++ {
		other = fmt.Sprintf("cold%d", i)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want(t, doRequest(t, client, "POST", "/v1/deduct", "", fmt.Sprintf(`{"request_id":"h%d","items":[{"sku":"hot","qty":1}]}`, i)), 200, "")
		}()
	}
	<-entered
	<-entered
	want(t, doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"h3","items":[{"sku":"hot","qty":1}]}`), 503, "overloaded")
	want(t, doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"c1","items":[{"sku":"`+other+`","qty":1}]}`), 200, "")
	close(release)
	wg.Wait()
	for i := range srv.stripes {
		if n := srv.stripes[i].n.Load(); n != 0 {
			t.Fatalf("stripe %d holds %d after all requests", i, n)
		}
	}
}

// TestSKUOverloadAdmin: PUT /v1/skus/{sku} and POST .../restock count
// against the path SKU's stripe like deduct and reserve do: refused 503
// overloaded with Retry-After when it is full, and holding it while they
// run.
func TestSKUOverloadAdmin(t *testing.T) {
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	stub := &stubBackend{
		deduct: func(ctx context.Context, r engine.DeductRequest) (engine.Result, error) {
			if r.RequestID == "d1" || r.RequestID == "d2" {
				entered <- struct{}{}
				<-release
			}
			return engine.Result{Seq: 1}, nil
		},
		setSKU: func(ctx context.Context, r engine.SetSKURequest) (engine.SKUState, engine.Result, error) {
			if r.Total >= 50 {
				entered <- struct{}{}
				<-release
			}
			return engine.SKUState{SKU: r.SKU, Total: r.Total, Available: r.Total}, engine.Result{Seq: 1}, nil
		},
	}
	var client *fasthttp.Client
	srv, _ := serveInMemory(t, stub, Config{AdminToken: testToken, SKUInFlightMax: 2}, &client)
	var wg sync.WaitGroup
	released := false
	unblock := func() {
		if !released {
			close(release)
			wg.Wait()
			released = true
		}
	}
	t.Cleanup(unblock) // before the server's shutdown, should a check fail
	hold := func(method, path, token, body string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want(t, doRequest(t, client, method, path, token, body), 200, "")
		}()
		<-entered
	}
	// Two deducts fill the stripe of "hot": admin changes of hot wait their turn.
	hold("POST", "/v1/deduct", "", `{"request_id":"d1","items":[{"sku":"hot","qty":1}]}`)
	hold("POST", "/v1/deduct", "", `{"request_id":"d2","items":[{"sku":"hot","qty":1}]}`)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/skus/hot", `{"total":5}`},
		{"POST", "/v1/skus/hot/restock", `{"request_id":"rs","qty":5}`},
	} {
		a := doRequest(t, client, c.method, c.path, testToken, c.body)
		if want(t, a, 503, "overloaded"); a.header["Retry-After"] != "1" {
			t.Fatalf("%s %s: Retry-After %q", c.method, c.path, a.header["Retry-After"])
		}
	}
	unblock()
	// Two PUTs in flight fill it as well: a deduct of hot is refused.
	release, released = make(chan struct{}), false
	hold("PUT", "/v1/skus/hot", testToken, `{"total":50}`)
	hold("PUT", "/v1/skus/hot", testToken, `{"total":60}`)
	want(t, doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"d3","items":[{"sku":"hot","qty":1}]}`), 503, "overloaded")
	unblock()
	want(t, doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"after","items":[{"sku":"hot","qty":1}]}`), 200, "")
	for i := range srv.stripes {
		if n := srv.stripes[i].n.Load(); n != 0 {
			t.Fatalf("stripe %d holds %d after all requests", i, n)
		}
	}
}

// TestTimeout: a change still waiting at the request deadline answers 504
// timeout.
func TestTimeout(t *testing.T) {
	stub := &stubBackend{deduct: func(ctx context.Context, r engine.DeductRequest) (engine.Result, error) {
		if _, ok := ctx.Deadline(); !ok {
			return engine.Result{}, errors.New("no deadline")
		}
		<-ctx.Done()
		return engine.Result{}, ctx.Err()
	}}
	var client *fasthttp.Client
	serveInMemory(t, stub, Config{RequestTimeout: 30 * time.Millisecond}, &client)
	want(t, doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"t","items":[{"sku":"A","qty":1}]}`), 504, "timeout")
}

// TestReadTimeout: a body that stops short of its Content-Length is
// answered 408 request_timeout (nothing was applied), not the 504 timeout
// whose change may have been applied.
func TestReadTimeout(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken})
	e.putSKU("A", 5, "")
	// Over TCP: the in-memory listener's timeout error is not a net.Error.
	srv := newServer(e.eng, Config{ReadTimeout: 100 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer stopServer(t, srv, done)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"request_id":"slow","items":[{"sku":"A","qty":1}]}`
	if _, err := io.WriteString(conn, "POST /v1/deduct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body)+10)+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatalf("reading the 408: %v", err)
	}
	if resp.StatusCode() != 408 || string(resp.Header.ContentType()) != contentTypeJSON ||
		!strings.Contains(string(resp.Body()), `"code":"request_timeout"`) {
		t.Fatalf("short body: %d %s %s", resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	if a := e.do("GET", "/v1/skus/A", "", ""); a.num("sold") != 0 {
		t.Fatalf("the timed-out request was applied: %s", a.raw)
	}
	var buf strings.Builder
	srv.m.set.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `flashsale_http_errors_total{endpoint="other",error="request_timeout"} 1`) {
		t.Fatalf("/metrics does not count the 408 as request_timeout")
	}
}

// TestConnsMax pins what docs/http.md says of --max-conns: past it
// fasthttp itself answers a plain-text 503 (no JSON body, no Retry-After)
// before reading the request, and closes the connection; no handler of ours
// runs for it.
func TestConnsMax(t *testing.T) {
	e := newEnv(t, Config{ConnsMax: 1})
	first, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// An answered keep-alive request: first holds the only connection slot.
	if _, err := io.WriteString(first, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(first)); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("first connection: %d %v", resp.StatusCode(), err)
	}
	second, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	resp.Reset()
	if err := resp.Read(bufio.NewReader(second)); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if resp.StatusCode() != 503 || string(resp.Header.ContentType()) != "text/plain" || resp.Header.Peek("Retry-After") != nil ||
		!resp.ConnectionClose() {
		t.Fatalf("second connection: %d %s Retry-After %q close %v: %s", resp.StatusCode(), resp.Header.ContentType(),
			resp.Header.Peek("Retry-After"), resp.ConnectionClose(), resp.Body())
	}
}

type fakeSyncer struct {
	drift     bool
	err       error
	statusErr error
	// With started set, Reconcile sends on it, then waits for release.
	started chan struct{}
	release chan struct{}
}

func (f fakeSyncer) Status(context.Context) (any, error) {
	if f.statusErr != nil {
		return nil, f.statusErr
	}
	return map[string]any{"checkpoint": 42}, nil
}
func (f fakeSyncer) Reconcile(context.Context) (any, bool, error) {
	if f.started != nil {
		f.started <- struct{}{}
		<-f.release
	}
	if f.err != nil {
		return nil, false, f.err
	}
	return map[string]any{"skus": 3}, f.drift, nil
}

// TestSyncEndpoints: GET /v1/sync and POST /v1/reconcile with a syncer.
func TestSyncEndpoints(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken, Syncer: fakeSyncer{}})
	a := e.do("GET", "/v1/sync", testToken, "")
	if want(t, a, 200, ""); a.num("checkpoint") != 42 {
		t.Fatalf("sync: %s", a.raw)
	}
	a = e.do("POST", "/v1/reconcile", testToken, "")
	if want(t, a, 200, ""); a.num("skus") != 3 {
		t.Fatalf("reconcile: %s", a.raw)
	}
	d := newEnv(t, Config{AdminToken: testToken, Syncer: fakeSyncer{drift: true}})
	a = d.do("POST", "/v1/reconcile", testToken, "")
	if want(t, a, 409, "drift"); !strings.Contains(a.raw, `"report":{"skus":3}`) {
		t.Fatalf("drift: %s", a.raw)
	}
	// A reconcile that runs out of time only read: its 504 does not say
	// "may have been applied".
	slow := newEnv(t, Config{AdminToken: testToken, Syncer: fakeSyncer{err: fmt.Errorf("scan: %w", context.DeadlineExceeded)}})
	a = slow.do("POST", "/v1/reconcile", testToken, "")
	if want(t, a, 504, "timeout"); strings.Contains(a.raw, "applied") || !strings.Contains(a.raw, "changes nothing") {
		t.Fatalf("reconcile past its deadline: %s", a.raw)
	}
	broken := newEnv(t, Config{AdminToken: testToken, Syncer: fakeSyncer{err: errors.New("connection refused")}})
	want(t, broken.do("POST", "/v1/reconcile", testToken, ""), 500, "internal")
}

// TestReconcileOneAtATime: a reconcile scans whole tables, so a second one
// while the first runs is refused (503 overloaded), not run beside it.
func TestReconcileOneAtATime(t *testing.T) {
	f := fakeSyncer{started: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, Config{AdminToken: testToken, Syncer: f})
	first := make(chan int, 1) // its status (0: no answer); t.Fatal is not for other goroutines
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://flashsale/v1/reconcile")
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", "Bearer "+testToken)
		if err := e.client.DoTimeout(req, resp, 30*time.Second); err != nil {
			first <- 0
			return
		}
		first <- resp.StatusCode()
	}()
	<-f.started
	a := e.do("POST", "/v1/reconcile", testToken, "")
	if want(t, a, 503, "overloaded"); !strings.Contains(a.raw, "already running") {
		t.Fatalf("second reconcile: %s", a.raw)
	}
	close(f.release)
	if status := <-first; status != 200 {
		t.Fatalf("first reconcile: status %d", status)
	}
	go func() { <-f.started }()
	if a := e.do("POST", "/v1/reconcile", testToken, ""); a.status != 200 {
		t.Fatalf("reconcile after the first ended: %d %s", a.status, a.raw)
	}
}

// TestReadyz: 503 once shutdown begins or the engine is closed.
func TestReadyz(t *testing.T) {
	c := newClock()
	eng := openEngine(t, t.TempDir(), c)
	var client *fasthttp.Client
	srv, _ := serveInMemory(t, eng, Config{}, &client)
	if a := doRequest(t, client, "GET", "/readyz", "", ""); a.status != 200 {
		t.Fatalf("readyz %d", a.status)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if a := doRequest(t, client, "GET", "/readyz", "", ""); a.status != 503 || a.boolean("ready") {
		t.Fatalf("readyz after close: %d %s", a.status, a.raw)
	}
	if srv.Ready() == nil {
		t.Fatal("Ready() nil after engine close")
	}
	// A change after close is 503 unavailable, with Retry-After.
	a := doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"x","items":[{"sku":"A","qty":1}]}`)
	if a.status != 503 && a.status != 404 {
		t.Fatalf("deduct after close: %d %s", a.status, a.raw)
	}
}

// TestLoopback runs the contract's main path over a real TCP port with
// net/http, concurrently, and checks no SKU is oversold.
func TestLoopback(t *testing.T) {
	c := newClock()
	eng := openEngine(t, t.TempDir(), c)
	defer eng.Close()
	srv := New(eng, Config{AdminToken: testToken})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != contentTypeJSON {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		return resp.StatusCode, string(b)
	}
	if st, b := call("PUT", "/v1/skus/L", testToken, `{"total":50}`); st != 200 {
		t.Fatalf("PUT: %d %s", st, b)
	}
	const workers, perWorker = 8, 10
	var mu sync.Mutex
	ok := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				st, b := call("POST", "/v1/deduct", "", fmt.Sprintf(`{"request_id":"w%d-%d","items":[{"sku":"L","qty":1}]}`, w, i))
				switch {
				case st == 200:
					mu.Lock()
					ok++
					mu.Unlock()
				case st == 409 && (strings.Contains(b, "sold_out") || strings.Contains(b, "insufficient_stock")):
				default:
					t.Errorf("deduct: %d %s", st, b)
				}
			}
		}()
	}
	wg.Wait()
	if ok != 50 {
		t.Fatalf("%d sales of 50 stock with %d attempts", ok, workers*perWorker)
	}
	st, b := call("GET", "/v1/skus/L", "", "")
	if st != 200 || !strings.Contains(b, `"available":0`) || !strings.Contains(b, `"sold":50`) {
		t.Fatalf("GET: %d %s", st, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHotSKUsDuplicate: a SKU named twice in HotSKUs gets one gauge (a
// second registration of the same series would panic).
func TestHotSKUsDuplicate(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken, HotSKUs: []string{"A", "A", "B"}})
	e.putSKU("A", 7, "")
	a := e.do("GET", "/metrics", "", "")
	if n := strings.Count(a.raw, `flashsale_sku_available{sku="A"} 7`); n != 1 {
		t.Fatalf("gauge of A appears %d times in /metrics:\n%s", n, a.raw)
	}
	if !strings.Contains(a.raw, `flashsale_sku_available{sku="B"}`) {
		t.Fatalf("no gauge of B in /metrics")
	}
}

// TestMethods: the GET endpoints accept HEAD (the same answer without a
// body) and answer any other method 405 with Allow.
func TestMethods(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken})
	e.putSKU("A", 3, "")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			a := e.do(m, path, "", "")
			if want(t, a, 405, "method_not_allowed"); a.header["Allow"] != "GET, HEAD" {
				t.Fatalf("%s %s: Allow %q", m, path, a.header["Allow"])
			}
		}
		if a := e.do("HEAD", path, "", ""); a.status != 200 || a.raw != "" {
			t.Fatalf("HEAD %s: %d %q", path, a.status, a.raw)
		}
	}
	if a := e.do("HEAD", "/v1/skus/A", "", ""); a.status != 200 || a.ctype != contentTypeJSON || a.raw != "" {
		t.Fatalf("HEAD /v1/skus/A: %d %s %q", a.status, a.ctype, a.raw)
	}
	if a := e.do("HEAD", "/v1/skus/nope", "", ""); a.status != 404 {
		t.Fatalf("HEAD /v1/skus/nope: %d", a.status)
	}
	a := e.do("DELETE", "/v1/skus/A", testToken, "")
	if want(t, a, 405, "method_not_allowed"); a.header["Allow"] != "GET, HEAD, PUT" {
		t.Fatalf("DELETE /v1/skus/A: Allow %q", a.header["Allow"])
	}
	if a := e.do("HEAD", "/v1/sync", testToken, ""); a.status != 503 {
		t.Fatalf("HEAD /v1/sync: %d", a.status)
	}
	a = e.do("POST", "/v1/sync", testToken, "")
	if want(t, a, 405, "method_not_allowed"); a.header["Allow"] != "GET, HEAD" {
		t.Fatalf("POST /v1/sync: Allow %q", a.header["Allow"])
	}
}

// TestRecovering: before Attach the server answers /healthz 200, /readyz
// 503 recovering and every other path 503 unavailable, with Retry-After;
// after Attach it serves the API.
func TestRecovering(t *testing.T) {
	srv := NewRecovering(Config{AdminToken: testToken})
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	eng := openEngine(t, t.TempDir(), newClock())
	t.Cleanup(func() {
		stopServer(t, srv, done)
		if err := eng.Close(); err != nil {
			t.Errorf("engine.Close: %v", err)
		}
	})
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	if a := doRequest(t, client, "GET", "/healthz", "", ""); a.status != 200 {
		t.Fatalf("healthz while recovering: %d %s", a.status, a.raw)
	}
	want(t, doRequest(t, client, "POST", "/healthz", "", ""), 405, "method_not_allowed")
	a := doRequest(t, client, "GET", "/readyz", "", "")
	if a.status != 503 || a.str("code") != "recovering" || a.boolean("ready") || a.header["Retry-After"] != "1" {
		t.Fatalf("readyz while recovering: %d %v %s", a.status, a.header, a.raw)
	}
	if srv.Ready() == nil {
		t.Fatal("Ready() nil before Attach")
	}
	for _, c := range []struct{ method, path, token, body string }{
		{"POST", "/v1/deduct", "", `{"request_id":"r","items":[{"sku":"A","qty":1}]}`},
		{"GET", "/v1/skus/A", "", ""},
		{"PUT", "/v1/skus/A", testToken, `{"total":1}`},
		{"GET", "/metrics", "", ""},
		{"GET", "/nothing", "", ""},
	} {
		a := doRequest(t, client, c.method, c.path, c.token, c.body)
		if want(t, a, 503, "unavailable"); a.header["Retry-After"] != "1" {
			t.Fatalf("%s %s while recovering: Retry-After %q", c.method, c.path, a.header["Retry-After"])
		}
	}
	srv.Attach(eng, nil)
	if a := doRequest(t, client, "GET", "/readyz", "", ""); a.status != 200 {
		t.Fatalf("readyz after Attach: %d %s", a.status, a.raw)
	}
	want(t, doRequest(t, client, "PUT", "/v1/skus/A", testToken, `{"total":1}`), 200, "")
	want(t, doRequest(t, client, "POST", "/v1/deduct", "", `{"request_id":"r","items":[{"sku":"A","qty":1}]}`), 200, "")
	m := doRequest(t, client, "GET", "/metrics", "", "")
	for _, name := range []string{"flashsale_engine_skus 1", "flashsale_engine_snapshot_seq ", "flashsale_engine_snapshot_failures 0"} {
		if m.status != 200 || !strings.Contains(m.raw, name) {
			t.Fatalf("metrics after Attach: %d, no %q in\n%s", m.status, name, m.raw)
		}
	}
}

// TestReplayAfterLimitSet: a deduct or reservation that succeeded without a
// user_id replays (200, replayed:true, the original seq) after a per-user
// limit is set on its SKU: a retry gets the original outcome (DESIGN,
// invariant 4), as it does after a sell-out. A new id without a user_id is
// still 400.
func TestReplayAfterLimitSet(t *testing.T) {
	e := newEnv(t, Config{AdminToken: testToken})
	e.putSKU("A", 10, "")
	e.putSKU("B", 10, "")
	bodies := []struct{ path, body string }{
		{"/v1/deduct", `{"request_id":"one","items":[{"sku":"A","qty":1}]}`},
		{"/v1/reserve", `{"request_id":"two","items":[{"sku":"A","qty":1}]}`},
		{"/v1/deduct", `{"request_id":"many","items":[{"sku":"A","qty":1},{"sku":"B","qty":1}]}`},
	}
	seqs := make([]int64, len(bodies))
	for i, b := range bodies {
		a := e.do("POST", b.path, "", b.body)
		want(t, a, 200, "")
		seqs[i] = a.num("seq")
	}
	e.putSKU("A", 10, "2")
	for i, b := range bodies {
		a := e.do("POST", b.path, "", b.body)
		if want(t, a, 200, ""); !a.boolean("replayed") || a.num("seq") != seqs[i] {
			t.Fatalf("retry of %s after the limit was set: %s (first seq %d)", b.body, a.raw, seqs[i])
		}
	}
	want(t, e.do("POST", "/v1/deduct", "", `{"request_id":"new","items":[{"sku":"A","qty":1}]}`), 400, "bad_request")
	// Another body under a used id is still judged afresh: 400 first.
	want(t, e.do("POST", "/v1/deduct", "", `{"request_id":"one","items":[{"sku":"A","qty":2}]}`), 400, "bad_request")
}

// TestReadTimeout504: a read that runs out of time (GET /v1/skus/{sku},
// GET /v1/sync) answers 504 timeout saying nothing was changed, not the
// change endpoints' "it may have been applied: retry with the same id".
func TestReadTimeout504(t *testing.T) {
	stub := &stubBackend{get: func(ctx context.Context, sku string) (engine.SKUState, error) {
		<-ctx.Done()
		return engine.SKUState{}, ctx.Err()
	}}
	var client *fasthttp.Client
	serveInMemory(t, stub, Config{RequestTimeout: 30 * time.Millisecond}, &client)
	a := doRequest(t, client, "GET", "/v1/skus/A", "", "")
	if want(t, a, 504, "timeout"); strings.Contains(a.raw, "applied") || !strings.Contains(a.raw, "changes nothing") {
		t.Fatalf("GET past its deadline: %s", a.raw)
	}
	slow := newEnv(t, Config{AdminToken: testToken, Syncer: fakeSyncer{statusErr: fmt.Errorf("status: %w", context.DeadlineExceeded)}})
	a = slow.do("GET", "/v1/sync", testToken, "")
	if want(t, a, 504, "timeout"); strings.Contains(a.raw, "applied") || !strings.Contains(a.raw, "changes nothing") {
		t.Fatalf("sync status past its deadline: %s", a.raw)
	}
}

// TestAdminTimeout504: a PUT or restock still waiting at the deadline
// answers 504 timeout (it may have been applied) without promising what
// their retries do not answer: neither has replayed in its answer (both
// answer the SKU), and a PUT has no id.
func TestAdminTimeout504(t *testing.T) {
	wait := func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	stub := &stubBackend{
		setSKU: func(ctx context.Context, r engine.SetSKURequest) (engine.SKUState, engine.Result, error) {
			return engine.SKUState{}, engine.Result{}, wait(ctx)
		},
		restock: func(ctx context.Context, r engine.RestockRequest) (engine.SKUState, engine.Result, error) {
			return engine.SKUState{}, engine.Result{}, wait(ctx)
		},
	}
	var client *fasthttp.Client
	serveInMemory(t, stub, Config{AdminToken: testToken, RequestTimeout: 30 * time.Millisecond}, &client)
	a := doRequest(t, client, "PUT", "/v1/skus/A", testToken, `{"total":5}`)
	if want(t, a, 504, "timeout"); strings.Contains(a.raw, "replayed") || strings.Contains(a.raw, "same id") ||
		!strings.Contains(a.raw, "may have been applied") {
		t.Fatalf("PUT past its deadline: %s", a.raw)
	}
	a = doRequest(t, client, "POST", "/v1/skus/A/restock", testToken, `{"request_id":"rs","qty":5}`)
	if want(t, a, 504, "timeout"); strings.Contains(a.raw, "replayed") || !strings.Contains(a.raw, "same id") ||
		!strings.Contains(a.raw, "may have been applied") {
		t.Fatalf("restock past its deadline: %s", a.raw)
	}
}
