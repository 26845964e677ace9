package bench

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// HTTP client limits.
const (
	// httpConnsMin is the least connections the client keeps; normally it
	// keeps one per worker.
	httpConnsMin = 16
	// httpSetupTimeout bounds each setup and verification call.
	httpSetupTimeout = 10 * time.Second
	// httpBodyBytesMax is the largest answer the client reads.
	httpBodyBytesMax = 64 << 10
)

// HTTPTarget drives a running flashsale server over HTTP/1.1 keep-alive with
// fasthttp: one connection per worker. With Noop it sends GET /healthz
// instead of every step: the same client against a trivial endpoint of the
// same server, which is the HTTP ceiling of the machine.
type HTTPTarget struct {
	URL        string // for example http://127.0.0.1:8080
	AdminToken string // for PUT /v1/skus/{sku} during Setup
	Noop       bool
	// ServerPID is the server's process, for its CPU figure (0: unknown).
	ServerPID int
	// InProcess: the server runs inside the harness's process (its CPU is
	// in the client's figure).
	InProcess bool
	// Conns is the number of connections; 0: one per worker.
	Conns   int
	Timeout time.Duration // per request; 0: Config.RequestTimeout

	hc      *fasthttp.HostClient
	base    string
	timeout time.Duration
	parsers fastjson.ParserPool
}

// Info implements Target.
func (t *HTTPTarget) Info() Info {
	name := "http"
	if t.Noop {
		name = "noop"
	}
	return Info{Name: name, ServerPID: t.ServerPID, InProcess: t.InProcess, Expires: true, Ceiling: t.Noop, Conns: t.Conns}
}

// Setup connects and, unless Noop, creates the catalog with the admin token.
func (t *HTTPTarget) Setup(ctx context.Context, w *Workload) error {
	u, err := ParseURL(t.URL)
	if err != nil {
		return fmt.Errorf("http target: %w", err)
	}
	cfg := w.Config()
	if t.Conns <= 0 {
		t.Conns = max(cfg.Concurrency, httpConnsMin)
	}
	t.timeout = t.Timeout
	if t.timeout <= 0 {
		t.timeout = cfg.RequestTimeout
	}
	t.base = strings.TrimSuffix(t.URL, "/")
	t.hc = &fasthttp.HostClient{
		Addr: u.Host, Name: "flashsale-bench", MaxConns: t.Conns,
		ReadTimeout: t.timeout, WriteTimeout: t.timeout, MaxIdleConnDuration: time.Minute,
		MaxResponseBodySize: httpBodyBytesMax, MaxConnWaitTimeout: t.timeout,
	}
	if err := t.setupCall(fasthttp.MethodGet, "/healthz", nil, ""); err != nil {
		return err
	}
	if t.Noop {
		return nil
	}
	for _, sku := range w.SKUs() {
		b := fmt.Appendf(nil, `{"total":%d,"limit_per_user":%d}`, cfg.Stock, cfg.LimitPerUser)
		if err := t.setupCall(fasthttp.MethodPut, "/v1/skus/"+sku, b, t.AdminToken); err != nil {
			return err
		}
	}
	return nil
}

// ParseURL parses a server's base URL as HTTPTarget.URL wants it:
// http://host:port (the client speaks plain HTTP only).
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("url %q: want http://host:port", raw)
	}
	return u, nil
}

// setupCall sends one set-up request and wants 200.
func (t *HTTPTarget) setupCall(method, path string, body []byte, token string) error {
	status, resp, err := t.call(method, path, body, token)
	switch {
	case err != nil:
		return fmt.Errorf("http target: %s %s%s: %w", method, t.base, path, err)
	case status == fasthttp.StatusUnauthorized:
		return fmt.Errorf("http target: %s %s%s: status 401 %q (give the server's admin token: --admin-token or FLASHSALE_ADMIN_TOKEN)",
			method, t.base, path, resp)
	case status != fasthttp.StatusOK:
		return fmt.Errorf("http target: %s %s%s: status %d %q", method, t.base, path, status, resp)
	}
	return nil
}

// call sends one request outside the load (setup, verification).
func (t *HTTPTarget) call(method, path string, body []byte, token string) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(t.base + path)
	req.Header.SetMethod(method)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if err := t.hc.DoTimeout(req, resp, httpSetupTimeout); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// appendStepBody writes the JSON body of s (ids use a character set that
// needs no escaping) and returns the path to post it to.
func appendStepBody(b []byte, s *Step) ([]byte, string) {
	item := func(b []byte) []byte {
		b = append(b, `"items":[{"sku":"`...)
		b = append(b, s.SKU...)
		b = append(b, `","qty":`...)
		b = strconv.AppendInt(b, s.Qty, 10)
		return append(b, `}]`...)
	}
	switch s.Kind {
	case KindDeduct, KindReserve:
		b = append(b, `{"request_id":"`...)
		b = append(b, s.RequestID...)
		b = append(b, `","user_id":"`...)
		b = append(b, s.UserID...)
		b = append(b, `",`...)
		b = item(b)
		if s.Kind == KindReserve {
			if s.TTL > 0 {
				b = append(b, `,"ttl_ms":`...)
				b = strconv.AppendInt(b, s.TTL.Milliseconds(), 10)
			}
			return append(b, '}'), "/v1/reserve"
		}
		return append(b, '}'), "/v1/deduct"
	case KindConfirm, KindCancel:
		b = append(b, `{"request_id":"`...)
		b = append(b, s.RequestID...)
		b = append(b, `"}`...)
		if s.Kind == KindConfirm {
			return b, "/v1/confirm"
		}
		return b, "/v1/cancel"
	case KindReturn:
		b = append(b, `{"return_id":"`...)
		b = append(b, s.ReturnID...)
		b = append(b, `","request_id":"`...)
		b = append(b, s.RequestID...)
		b = append(b, `",`...)
		b = item(b)
		return append(b, '}'), "/v1/return"
	}
	panic(fmt.Sprintf("bench: http target: step kind %d", s.Kind))
}

// Do implements Target.
func (t *HTTPTarget) Do(ctx context.Context, s *Step) Outcome {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if t.Noop {
		req.SetRequestURI(t.base + "/healthz")
		req.Header.SetMethod(fasthttp.MethodGet)
	} else {
		bp := bodyBufs.Get().(*[]byte)
		var path string
		*bp, path = appendStepBody((*bp)[:0], s)
		req.SetBody(*bp)
		bodyBufs.Put(bp)
		req.SetRequestURI(t.base + path)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
	}
	if err := t.hc.DoTimeout(req, resp, t.timeout); err != nil {
		// The request may have reached the server: the outcome is unknown.
		return Outcome{Status: StatusUnknown, Err: fmt.Errorf("http: %w", err)}
	}
	return t.outcome(resp.StatusCode(), resp.Body())
}

// Replay implements Replayer: the same request again.
func (t *HTTPTarget) Replay(ctx context.Context, s *Step) Outcome { return t.Do(ctx, s) }

// outcome classifies an answer of the HTTP contract.
func (t *HTTPTarget) outcome(status int, body []byte) Outcome {
	if t.Noop {
		if status == fasthttp.StatusOK {
			return Outcome{Status: StatusOK}
		}
		return Outcome{Status: StatusFailed, Err: fmt.Errorf("healthz: status %d", status)}
	}
	p := t.parsers.Get()
	defer t.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if status == fasthttp.StatusOK {
		if err != nil {
			return Outcome{Status: StatusUnknown, Err: fmt.Errorf("status 200 with a body that is not JSON: %w", err)}
		}
		return Outcome{Status: StatusOK, Seq: v.GetUint64("seq"), Replayed: v.GetBool("replayed")}
	}
	code := ""
	if err == nil {
		code = string(v.GetStringBytes("code"))
	}
	e := fmt.Errorf("status %d %s", status, code)
	switch {
	case status >= 400 && status < 500 && code != "":
		return Outcome{Status: statusOfCode(code), Err: e}
	case status == fasthttp.StatusServiceUnavailable && (code == "overloaded" || code == "unavailable"):
		return Outcome{Status: StatusFailed, Err: e} // refused before it was applied
	}
	return Outcome{Status: StatusUnknown, Err: e} // 504 timeout and other 5xx: maybe applied
}

// Observe implements Target: GET /v1/skus/{sku} for each SKU.
func (t *HTTPTarget) Observe(ctx context.Context, skus []string) ([]Observed, error) {
	out := make([]Observed, len(skus))
	if t.Noop {
		return out, nil
	}
	var p fastjson.Parser
	for i, sku := range skus {
		status, body, err := t.call(fasthttp.MethodGet, "/v1/skus/"+sku, nil, "")
		if err != nil {
			return nil, fmt.Errorf("http target: GET /v1/skus/%s: %w", sku, err)
		}
		if status != fasthttp.StatusOK {
			return nil, fmt.Errorf("http target: GET /v1/skus/%s: status %d %q", sku, status, body)
		}
		v, err := p.ParseBytes(body)
		if err != nil {
			return nil, fmt.Errorf("http target: GET /v1/skus/%s: %w", sku, err)
		}
		o := Observed{Available: v.GetInt64("available"), Reserved: v.GetInt64("reserved"), Sold: v.GetInt64("sold"), Records: -1}
		if total := v.GetInt64("total"); total != o.Available+o.Reserved+o.Sold {
			return nil, fmt.Errorf("http target: %s: total %d != available %d + reserved %d + sold %d", sku, total, o.Available, o.Reserved, o.Sold)
		}
		out[i] = o
	}
	return out, nil
}

// Close closes the client's idle connections.
func (t *HTTPTarget) Close() error {
	if t.hc != nil {
		t.hc.CloseIdleConnections()
	}
	return nil
}

// bodyBufs recycles request body buffers (SetBody copies).
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}
