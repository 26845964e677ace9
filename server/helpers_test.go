package server

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/wal"
)

const testToken = "s3cret-token"

// clock is a settable clock for the engine (reservation expiry).
type clock = testkit.Clock

func newClock() *clock { return testkit.NewClock() }

// env is a server over an in-memory listener in front of a real engine in a
// temporary directory.
type env struct {
	t      testing.TB
	eng    *engine.Engine
	srv    *Server
	clock  *clock
	client *fasthttp.Client
	ln     *fasthttputil.InmemoryListener
}

func openEngine(t testing.TB, dir string, c *clock) *engine.Engine {
	t.Helper()
	opts := engine.Options{Dir: dir, ExpiryTick: -1, WAL: wal.Options{OnCommit: ObserveWALCommit}}
	if c != nil {
		opts.Now = c.Now
	}
	eng, err := engine.Open(opts)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	return eng
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	c := newClock()
	eng := openEngine(t, t.TempDir(), c)
	e := &env{t: t, eng: eng, clock: c}
	e.srv, e.ln = serveInMemory(t, eng, cfg, &e.client)
	t.Cleanup(func() {
		if err := eng.Close(); err != nil {
			t.Errorf("engine.Close: %v", err)
		}
	})
	return e
}

// serveInMemory starts a server for b on an in-memory listener and sets
// *client to a client dialing it. Cleanup shuts the server down.
func serveInMemory(t testing.TB, b backend, cfg Config, client **fasthttp.Client) (*Server, *fasthttputil.InmemoryListener) {
	t.Helper()
	srv := newServer(b, cfg)
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	*client = &fasthttp.Client{
		Dial:                func(string) (net.Conn, error) { return ln.Dial() },
		MaxConnsPerHost:     512,
		ReadTimeout:         10 * time.Second,
		WriteTimeout:        10 * time.Second,
		MaxIdleConnDuration: time.Minute,
	}
	t.Cleanup(func() { stopServer(t, srv, done) })
	return srv, ln
}

// answer is one HTTP answer, its JSON body decoded.
type answer struct {
	status int
	ctype  string
	header map[string]string
	raw    string
	body   map[string]any
}

func (a answer) str(key string) string {
	s, _ := a.body[key].(string)
	return s
}

func (a answer) num(key string) int64 {
	n, ok := a.body[key].(json.Number)
	if !ok {
		return -1 << 62
	}
	v, err := n.Int64()
	if err != nil {
		return -1 << 62
	}
	return v
}

func (a answer) boolean(key string) bool {
	b, _ := a.body[key].(bool)
	return b
}

// do sends one request; token "" sends no Authorization header. The body
// of a JSON answer is decoded, except for HEAD (which has none).
func doRequest(t testing.TB, c *fasthttp.Client, method, path, token, body string) answer {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://flashsale" + path)
	req.Header.SetMethod(method)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	if err := c.DoTimeout(req, resp, 30*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	a := answer{status: resp.StatusCode(), ctype: string(resp.Header.ContentType()), raw: string(resp.Body()),
		header: map[string]string{}}
	for _, k := range []string{"Retry-After", "Allow", "WWW-Authenticate"} {
		if v := resp.Header.Peek(k); v != nil {
			a.header[k] = string(v)
		}
	}
	if strings.HasPrefix(a.ctype, "application/json") && method != "HEAD" {
		d := json.NewDecoder(strings.NewReader(a.raw))
		d.UseNumber()
		if err := d.Decode(&a.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v: %q", method, path, err, a.raw)
		}
	}
	return a
}

func (e *env) do(method, path, token, body string) answer {
	e.t.Helper()
	return doRequest(e.t, e.client, method, path, token, body)
}

// want checks status and (if code != "") the error code of a.
func want(t testing.TB, a answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.raw)
	}
	if code != "" && a.str("code") != code {
		t.Fatalf("code %q, want %q; body %s", a.str("code"), code, a.raw)
	}
	if status >= 300 && (a.str("code") == "" || a.str("message") == "") {
		t.Fatalf("error body without code and message: %s", a.raw)
	}
}

// putSKU creates or sets a SKU through the admin endpoint.
func (e *env) putSKU(sku string, total int64, limit string) answer {
	e.t.Helper()
	body := `{"total":` + itoa(total)
	if limit != "" {
		body += `,"limit_per_user":` + limit
	}
	a := e.do("PUT", "/v1/skus/"+sku, testToken, body+"}")
	want(e.t, a, 200, "")
	return a
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// stopServer shuts srv down (bounded) and checks that Serve, whose result
// comes on done, returned cleanly.
func stopServer(t testing.TB, srv *Server, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
