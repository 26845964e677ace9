package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/engine"
)

// backend is what the server needs of the engine; *engine.Engine is the one
// implementation outside tests.
type backend interface {
	Deduct(context.Context, engine.DeductRequest) (engine.Result, error)
	Reserve(context.Context, engine.ReserveRequest) (engine.Result, error)
	Confirm(ctx context.Context, requestID string) (engine.Result, error)
	Cancel(ctx context.Context, requestID string) (engine.Result, error)
	Return(context.Context, engine.ReturnRequest) (engine.Result, error)
	Restock(context.Context, engine.RestockRequest) (engine.SKUState, engine.Result, error)
	SetSKU(context.Context, engine.SetSKURequest) (engine.SKUState, engine.Result, error)
	Get(ctx context.Context, sku string) (engine.SKUState, error)
	Available(sku string) (int64, bool)
	Err() error
	Stats() engine.Stats
}

// Internal bounds.
const (
	// skuStripes is the number of per-SKU in-flight counters; SKUs are
	// hashed onto them, so two SKUs may share one (and its bound).
	skuStripes = 256
	// skuInternMax bounds the table of interned SKU ids; past it, ids are
	// copied per request (correct, one allocation more).
	skuInternMax = 1 << 16
	// deadlineGranularity: requests that start within the same slot of this
	// length share one deadline context, so a request's deadline is
	// RequestTimeout plus at most this, and costs no allocation.
	deadlineGranularity = 10 * time.Millisecond
)

// Server is the HTTP endpoint of one engine. It does not own the engine:
// the caller opens it before New (or Attach) and closes it after Shutdown.
// All methods are safe for concurrent use.
type Server struct {
	// eng and syncer are set once, before attached becomes true; requests
	// read them only after seeing attached true.
	eng      backend
	syncer   Syncer
	attached atomic.Bool
	cfg      Config
	log      *slog.Logger
	srv      *fasthttp.Server
	m        *serverMetrics
	hasToken bool
	tokenSum [sha256.Size]byte

	inflight    atomic.Int64
	reconciling atomic.Bool // one reconcile at a time: each scans whole tables
	stripes     [skuStripes]stripe
	closing     atomic.Bool

	deadline atomic.Pointer[deadlineSlot]
	states   sync.Pool // *reqState

	internMu sync.RWMutex
	intern   map[string]string
}

type stripe struct {
	n atomic.Int64
	_ [56]byte // one cache line each
}

// deadlineSlot is the shared deadline context of one time slot.
type deadlineSlot struct {
	key    int64
	ctx    context.Context
	cancel context.CancelFunc // released by the deadline itself; kept for vet
}

// reqState is the per-request scratch, pooled: parser, parsed bodies, the
// items handed to the engine and the answer buffer.
type reqState struct {
	p       parser
	out     []byte
	order   orderBody
	ref     refBody
	ret     returnBody
	sku     skuBody
	restock restockBody
	items   [ItemsMax]engine.Item
	held    [ItemsMax]uint16 // stripes held by this request
	nHeld   int
}

// New returns a server for eng (open, and kept open until after Shutdown).
func New(eng *engine.Engine, cfg Config) *Server {
	return newServer(eng, cfg)
}

// NewRecovering returns a server without an engine yet, to serve while the
// engine recovers (engine.Open can take seconds): until Attach, /healthz
// answers 200, /readyz 503 with the code recovering, and every other path
// 503 unavailable, both with Retry-After; nothing is applied.
func NewRecovering(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, syncer: cfg.Syncer, log: cfg.Logger, m: newServerMetrics(), intern: map[string]string{}}
	if cfg.AdminToken != "" {
		s.hasToken = true
		s.tokenSum = sha256.Sum256([]byte(cfg.AdminToken))
	}
	s.states.New = func() any { return &reqState{out: make([]byte, 0, 512)} }
	s.m.set.NewGauge("flashsale_http_in_flight", func() float64 { return float64(s.inflight.Load()) })
	metrics.RegisterSet(s.m.set)

	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleProtocolError,
		Name:                         "flashsale",
		Concurrency:                  cfg.ConnsMax,
		ReadBufferSize:               ReadBufferBytesDefault,
		WriteBufferSize:              ReadBufferBytesDefault,
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxRequestBodySize:           cfg.BodyBytesMax,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true, // answers during a drain say Connection: close
		Logger:                       fasthttpLogger{s.log},
	}
	if !s.hasToken {
		s.log.Warn("no admin token configured: every admin endpoint answers 401 (set --admin-token or FLASHSALE_ADMIN_TOKEN)")
	}
	return s
}

// Attach hands a server from NewRecovering its engine (open, and kept open
// until after Shutdown) and, when sy is not nil, the syncer of the admin
// endpoints (in place of Config.Syncer); from then on it serves the API.
// Call it once.
func (s *Server) Attach(eng *engine.Engine, sy Syncer) {
	if eng == nil {
		panic("server: Attach of a nil engine")
	}
	if sy != nil {
		s.syncer = sy
	}
	s.attach(eng)
}

func newServer(eng backend, cfg Config) *Server {
	s := NewRecovering(cfg)
	s.attach(eng)
	return s
}

// attach sets the engine, registers its gauges and opens the API.
func (s *Server) attach(eng backend) {
	if s.attached.Load() {
		panic("server: a second Attach")
	}
	s.eng = eng
	hot := make(map[string]bool, len(s.cfg.HotSKUs))
	for _, id := range s.cfg.HotSKUs {
		if !validID([]byte(id)) {
			s.log.Warn("hot SKU id ignored: not a valid id", "sku", id)
			continue
		}
		if hot[id] {
			continue // one gauge per SKU: registering a series twice panics
		}
		hot[id] = true
		s.m.set.NewGauge(fmt.Sprintf(`flashsale_sku_available{sku=%q}`, id), func() float64 {
			n, _ := s.eng.Available(id)
			return float64(n)
		})
	}
	s.m.set.NewGauge("flashsale_engine_in_flight", func() float64 { return float64(s.eng.Stats().InFlight) })
	s.m.set.NewGauge("flashsale_engine_skus", func() float64 { return float64(s.eng.Stats().SKUs) })
	s.m.set.NewGauge("flashsale_engine_request_ids", func() float64 { return float64(s.eng.Stats().RequestIDs) })
	s.m.set.NewGauge("flashsale_wal_queued_records", func() float64 { return float64(s.eng.Stats().Log.Queued) })
	s.m.set.NewGauge("flashsale_wal_durable_seq", func() float64 { return float64(s.eng.Stats().Log.Durable) })
	s.m.set.NewGauge("flashsale_engine_synced_seq", func() float64 { return float64(s.eng.Stats().SyncedSeq) })
	s.m.set.NewGauge("flashsale_engine_snapshot_seq", func() float64 { return float64(s.eng.Stats().SnapshotSeq) })
	s.m.set.NewGauge("flashsale_engine_snapshot_failures", func() float64 { return float64(s.eng.Stats().SnapshotFailures) })
	s.attached.Store(true)
}

// Handler returns the request handler (for fasthttp servers of one's own,
// or tests); Serve uses the same.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve accepts connections on ln until Shutdown; it returns nil after a
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(ln)
}

// Shutdown stops accepting, lets requests in flight finish and closes the
// connections; it returns when they are done or ctx ends (then ctx's error).
// /readyz answers 503 from the start of Shutdown. The engine stays open.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	err := s.srv.ShutdownWithContext(ctx)
	metrics.UnregisterSet(s.m.set, true)
	return err
}

// fasthttpLogger sends fasthttp's own messages (connection errors from
// misbehaving clients) to slog at debug level: they are per request.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
	}
}

// requestCtx returns the shared deadline context of the current slot.
func (s *Server) requestCtx(now time.Time) context.Context {
	key := now.UnixNano() / int64(deadlineGranularity)
	if d := s.deadline.Load(); d != nil && d.key == key {
		return d.ctx
	}
	end := time.Unix(0, (key+1)*int64(deadlineGranularity)).Add(s.cfg.RequestTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	s.deadline.Store(&deadlineSlot{key: key, ctx: ctx, cancel: cancel})
	return ctx
}

// handle routes one request and counts it.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	started := time.Now()
	st := s.states.Get().(*reqState)
	ep, status := s.route(ctx, st, started)
	s.m.observe(ep, status, started)
	if cap(st.out) <= 64<<10 { // do not keep huge answers (reports) pooled
		s.states.Put(st)
	}
}

const (
	pathDeduct    = "/v1/deduct"
	pathReserve   = "/v1/reserve"
	pathConfirm   = "/v1/confirm"
	pathCancel    = "/v1/cancel"
	pathReturn    = "/v1/return"
	pathSKUs      = "/v1/skus/"
	pathRestock   = "/restock"
	pathSync      = "/v1/sync"
	pathReconcile = "/v1/reconcile"
)

func (s *Server) route(ctx *fasthttp.RequestCtx, st *reqState, started time.Time) (endpoint, int) {
	path := ctx.Path()
	if !s.attached.Load() {
		return s.routeRecovering(ctx, st, path)
	}
	switch string(path) {
	case pathDeduct:
		return epDeduct, s.changeEndpoint(ctx, st, epDeduct, started, s.deduct)
	case pathReserve:
		return epReserve, s.changeEndpoint(ctx, st, epReserve, started, s.reserve)
	case pathConfirm:
		return epConfirm, s.changeEndpoint(ctx, st, epConfirm, started, s.confirm)
	case pathCancel:
		return epCancel, s.changeEndpoint(ctx, st, epCancel, started, s.cancel)
	case pathReturn:
		return epReturn, s.changeEndpoint(ctx, st, epReturn, started, s.doReturn)
	case pathSync:
		if !isGet(ctx) {
			return epSync, s.methodNotAllowed(ctx, st, epSync, allowGet)
		}
		if !s.authorized(ctx) {
			return epSync, s.unauthorized(ctx, st, epSync)
		}
		return epSync, s.syncStatus(ctx, st)
	case pathReconcile:
		if !ctx.IsPost() {
			return epReconcile, s.methodNotAllowed(ctx, st, epReconcile, "POST")
		}
		if !s.authorized(ctx) {
			return epReconcile, s.unauthorized(ctx, st, epReconcile)
		}
		return epReconcile, s.reconcile(ctx, st)
	case "/healthz":
		return epHealthz, s.healthz(ctx, st)
	case "/readyz":
		if !isGet(ctx) {
			return epReadyz, s.methodNotAllowed(ctx, st, epReadyz, allowGet)
		}
		return epReadyz, s.readyz(ctx, st)
	case "/metrics":
		if !isGet(ctx) {
			return epMetrics, s.methodNotAllowed(ctx, st, epMetrics, allowGet)
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		metrics.WritePrometheus(ctx, true)
		return epMetrics, fasthttp.StatusOK
	}
	if rest, ok := bytes.CutPrefix(path, []byte(pathSKUs)); ok {
		if sku, ok := bytes.CutSuffix(rest, []byte(pathRestock)); ok {
			if !ctx.IsPost() {
				return epRestock, s.methodNotAllowed(ctx, st, epRestock, "POST")
			}
			if !s.authorized(ctx) {
				return epRestock, s.unauthorized(ctx, st, epRestock)
			}
			return epRestock, s.changeEndpoint(ctx, st, epRestock, started, func(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
				return s.restockSKU(ctx, st, rctx, sku)
			})
		}
		switch {
		case isGet(ctx):
			return epGetSKU, s.getSKU(ctx, st, started, rest)
		case ctx.IsPut():
			if !s.authorized(ctx) {
				return epPutSKU, s.unauthorized(ctx, st, epPutSKU)
			}
			return epPutSKU, s.changeEndpoint(ctx, st, epPutSKU, started, func(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
				return s.putSKU(ctx, st, rctx, rest)
			})
		}
		return epGetSKU, s.methodNotAllowed(ctx, st, epGetSKU, allowGet+", PUT")
	}
	return epOther, s.fail(ctx, st, epOther, apiError{status: fasthttp.StatusNotFound, code: codeNotFound,
		msg: "no such endpoint (see docs/http.md)"})
}

// recovering is the answer to API calls before Attach.
var recovering = apiError{status: fasthttp.StatusServiceUnavailable, code: engine.ErrUnavailable.Code,
	msg: "the server is starting: the engine is recovering its log; nothing was applied, retry after Retry-After seconds"}

// routeRecovering answers before Attach: /healthz as always, /readyz 503
// recovering, anything else 503 unavailable.
func (s *Server) routeRecovering(ctx *fasthttp.RequestCtx, st *reqState, path []byte) (endpoint, int) {
	switch string(path) {
	case "/healthz":
		return epHealthz, s.healthz(ctx, st)
	case "/readyz":
		if !isGet(ctx) {
			return epReadyz, s.methodNotAllowed(ctx, st, epReadyz, allowGet)
		}
		ctx.Response.Header.SetBytesV("Retry-After", retryAfter)
		writeJSON(ctx, fasthttp.StatusServiceUnavailable,
			append(st.out[:0], `{"ready":false,"code":"recovering","reason":"the engine is recovering its log"}`...))
		return epReadyz, fasthttp.StatusServiceUnavailable
	}
	return epOther, s.fail(ctx, st, epOther, recovering)
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx, st *reqState) int {
	if !isGet(ctx) {
		return s.methodNotAllowed(ctx, st, epHealthz, allowGet)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBodyString(`{"alive":true}`)
	return fasthttp.StatusOK
}

// changeEndpoint runs a POST (or PUT) change handler under the overall
// in-flight bound and the request deadline.
func (s *Server) changeEndpoint(ctx *fasthttp.RequestCtx, st *reqState, ep endpoint, started time.Time,
	h func(*fasthttp.RequestCtx, *reqState, context.Context) int) int {
	if ep != epPutSKU && !ctx.IsPost() {
		return s.methodNotAllowed(ctx, st, ep, "POST")
	}
	if s.inflight.Add(1) > s.cfg.InFlightMax {
		s.inflight.Add(-1)
		return s.fail(ctx, st, ep, overloaded)
	}
	status := h(ctx, st, s.requestCtx(started))
	s.inflight.Add(-1)
	return status
}

// fail writes a as the answer and counts it.
func (s *Server) fail(ctx *fasthttp.RequestCtx, st *reqState, ep endpoint, a apiError) int {
	st.out = writeError(ctx, st.out, a)
	s.m.observeError(ep, a.code)
	return a.status
}

// allowGet is the Allow header of a GET endpoint: HEAD is accepted wherever
// GET is.
const allowGet = "GET, HEAD"

// isGet reports a GET or a HEAD request. fasthttp answers a HEAD with the
// headers of the GET answer and no body.
func isGet(ctx *fasthttp.RequestCtx) bool { return ctx.IsGet() || ctx.IsHead() }

func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, st *reqState, ep endpoint, allow string) int {
	ctx.Response.Header.Set("Allow", allow)
	return s.fail(ctx, st, ep, apiError{status: fasthttp.StatusMethodNotAllowed, code: codeMethod,
		msg: "method not allowed; allowed: " + allow})
}

func (s *Server) unauthorized(ctx *fasthttp.RequestCtx, st *reqState, ep endpoint) int {
	msg := "admin call: send Authorization: Bearer TOKEN"
	if !s.hasToken {
		msg = "admin calls are disabled: the server has no admin token configured"
	}
	return s.fail(ctx, st, ep, apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized, msg: msg})
}

// authorized reports whether the request carries the admin token. The
// comparison is of SHA-256 digests in constant time, so neither the token's
// bytes nor its length leak through timing.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if !s.hasToken {
		return false
	}
	const prefix = "Bearer "
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(h) < len(prefix) || !bytes.EqualFold(h[:len(prefix)], []byte(prefix)) {
		return false
	}
	sum := sha256.Sum256(h[len(prefix):])
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// skuString returns sku as a string that may outlive the request: the
// interned copy for known SKUs, else a fresh copy.
func (s *Server) skuString(sku []byte) string {
	s.internMu.RLock()
	v, ok := s.intern[string(sku)]
	s.internMu.RUnlock()
	if ok {
		return v
	}
	str := string(sku)
	if _, known := s.eng.Available(str); known {
		s.internMu.Lock()
		if len(s.intern) < skuInternMax {
			s.intern[str] = str
		}
		s.internMu.Unlock()
	}
	return str
}

// engineItems converts parsed items into st.items (SKU ids interned).
func (s *Server) engineItems(st *reqState, items []itemBody) []engine.Item {
	out := st.items[:len(items)]
	for i, it := range items {
		out[i] = engine.Item{SKU: s.skuString(it.sku), Qty: it.qty}
	}
	return out
}

// acquire counts the request against the stripes of its SKUs; false (and
// nothing held) when one of them is at SKUInFlightMax.
func (s *Server) acquire(st *reqState, items []engine.Item) bool {
	st.nHeld = 0
	for _, it := range items {
		i := stripeOf(it.SKU)
		if s.stripes[i].n.Add(1) > s.cfg.SKUInFlightMax {
			s.stripes[i].n.Add(-1)
			s.release(st)
			return false
		}
		st.held[st.nHeld] = i
		st.nHeld++
	}
	return true
}

// acquireOne is acquire for a change of one SKU (the admin changes).
func (s *Server) acquireOne(st *reqState, sku string) bool {
	st.items[0] = engine.Item{SKU: sku}
	return s.acquire(st, st.items[:1])
}

func (s *Server) release(st *reqState) {
	for _, i := range st.held[:st.nHeld] {
		s.stripes[i].n.Add(-1)
	}
	st.nHeld = 0
}

// stripeOf hashes a SKU id onto its stripe (FNV-1a).
func stripeOf(sku string) uint16 {
	h := uint32(2166136261)
	for i := 0; i < len(sku); i++ {
		h ^= uint32(sku[i])
		h *= 16777619
	}
	return uint16(h % skuStripes)
}

// optString returns b as a string, "" for nil.
func optString(b []byte) string {
	if b == nil {
		return ""
	}
	return string(b)
}

func (s *Server) deduct(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
	b := &st.order
	if err := st.p.parseOrder(ctx.PostBody(), false, b); err != nil {
		return s.fail(ctx, st, epDeduct, mapError(err))
	}
	items := s.engineItems(st, b.items[:b.n])
	if !s.acquire(st, items) {
		return s.fail(ctx, st, epDeduct, overloaded)
	}
	res, err := s.eng.Deduct(rctx, engine.DeductRequest{RequestID: string(b.requestID), UserID: optString(b.userID), Items: items})
	s.release(st)
	if err != nil {
		return s.fail(ctx, st, epDeduct, mapError(err))
	}
	st.out = appendResult(st.out[:0], "request_id", b.requestID, "deducted", res, false)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

func (s *Server) reserve(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
	b := &st.order
	if err := st.p.parseOrder(ctx.PostBody(), true, b); err != nil {
		return s.fail(ctx, st, epReserve, mapError(err))
	}
	items := s.engineItems(st, b.items[:b.n])
	if !s.acquire(st, items) {
		return s.fail(ctx, st, epReserve, overloaded)
	}
	res, err := s.eng.Reserve(rctx, engine.ReserveRequest{RequestID: string(b.requestID), UserID: optString(b.userID),
		Items: items, TTL: time.Duration(b.ttlMs) * time.Millisecond})
	s.release(st)
	if err != nil {
		return s.fail(ctx, st, epReserve, mapError(err))
	}
	st.out = appendResult(st.out[:0], "request_id", b.requestID, "reserved", res, true)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

func (s *Server) confirm(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
	return s.settle(ctx, st, rctx, epConfirm)
}

func (s *Server) cancel(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
	return s.settle(ctx, st, rctx, epCancel)
}

// settle confirms or cancels a reservation.
func (s *Server) settle(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context, ep endpoint) int {
	b := &st.ref
	if err := st.p.parseRef(ctx.PostBody(), b); err != nil {
		return s.fail(ctx, st, ep, mapError(err))
	}
	var (
		res    engine.Result
		err    error
		status string
	)
	if ep == epConfirm {
		res, err = s.eng.Confirm(rctx, string(b.requestID))
		status = "confirmed"
	} else {
		res, err = s.eng.Cancel(rctx, string(b.requestID))
		status = "cancelled"
	}
	if err != nil {
		return s.fail(ctx, st, ep, mapError(err))
	}
	st.out = appendResult(st.out[:0], "request_id", b.requestID, status, res, false)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

func (s *Server) doReturn(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context) int {
	b := &st.ret
	if err := st.p.parseReturn(ctx.PostBody(), b); err != nil {
		return s.fail(ctx, st, epReturn, mapError(err))
	}
	items := s.engineItems(st, b.items[:b.n])
	if !s.acquire(st, items) {
		return s.fail(ctx, st, epReturn, overloaded)
	}
	res, err := s.eng.Return(rctx, engine.ReturnRequest{ReturnID: string(b.returnID), RequestID: string(b.requestID), Items: items})
	s.release(st)
	if err != nil {
		return s.fail(ctx, st, epReturn, mapError(err))
	}
	st.out = appendResult(st.out[:0], "return_id", b.returnID, "returned", res, false)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

// readTimedOut is the answer to a read that runs out of time: unlike
// mapError's 504 for a change, nothing can have been applied.
var readTimedOut = apiError{status: fasthttp.StatusGatewayTimeout, code: codeTimeout,
	msg: "the request timed out; a read changes nothing, run it again"}

// putTimedOut and restockTimedOut are the 504 answers of the admin changes,
// which answer the SKU (no replayed) on a retry: mapError's message
// promises replayed:true.
var (
	putTimedOut = apiError{status: fasthttp.StatusGatewayTimeout, code: codeTimeout,
		msg: "the request timed out; it may have been applied: send the same PUT again (it sets the total, so a second one changes nothing more)"}
	restockTimedOut = apiError{status: fasthttp.StatusGatewayTimeout, code: codeTimeout,
		msg: "the request timed out; it may have been applied: retry with the same id and body (a retry of an applied restock adds nothing and answers the SKU as it is now)"}
)

// badSKUPath is the answer for a SKU id in a path that is not a valid id.
var badSKUPath = apiError{status: fasthttp.StatusBadRequest, code: codeBadRequest,
	msg: "sku in the path: must be 1..64 bytes of [A-Za-z0-9._:-]"}

func (s *Server) getSKU(ctx *fasthttp.RequestCtx, st *reqState, started time.Time, sku []byte) int {
	if !validID(sku) {
		return s.fail(ctx, st, epGetSKU, badSKUPath)
	}
	if s.inflight.Add(1) > s.cfg.InFlightMax {
		s.inflight.Add(-1)
		return s.fail(ctx, st, epGetSKU, overloaded)
	}
	state, err := s.eng.Get(s.requestCtx(started), s.skuString(sku))
	s.inflight.Add(-1)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.fail(ctx, st, epGetSKU, readTimedOut)
	}
	if err != nil {
		return s.fail(ctx, st, epGetSKU, mapError(err))
	}
	st.out = appendSKU(st.out[:0], state)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

func (s *Server) putSKU(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context, sku []byte) int {
	if !validID(sku) {
		return s.fail(ctx, st, epPutSKU, badSKUPath)
	}
	b := &st.sku
	if err := st.p.parseSKU(ctx.PostBody(), b); err != nil {
		return s.fail(ctx, st, epPutSKU, mapError(err))
	}
	req := engine.SetSKURequest{SKU: s.skuString(sku), Total: b.total}
	if b.hasLimit {
		limit := b.limit
		req.LimitPerUser = &limit
	}
	if !s.acquireOne(st, req.SKU) {
		return s.fail(ctx, st, epPutSKU, overloaded)
	}
	state, _, err := s.eng.SetSKU(rctx, req)
	s.release(st)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.fail(ctx, st, epPutSKU, putTimedOut)
	}
	if err != nil {
		return s.fail(ctx, st, epPutSKU, mapError(err))
	}
	st.out = appendSKU(st.out[:0], state)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

func (s *Server) restockSKU(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context, sku []byte) int {
	if !validID(sku) {
		return s.fail(ctx, st, epRestock, badSKUPath)
	}
	b := &st.restock
	if err := st.p.parseRestock(ctx.PostBody(), b); err != nil {
		return s.fail(ctx, st, epRestock, mapError(err))
	}
	id := s.skuString(sku)
	if !s.acquireOne(st, id) {
		return s.fail(ctx, st, epRestock, overloaded)
	}
	state, _, err := s.eng.Restock(rctx, engine.RestockRequest{RequestID: string(b.requestID), SKU: id, Qty: b.qty})
	s.release(st)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.fail(ctx, st, epRestock, restockTimedOut)
	}
	if err != nil {
		return s.fail(ctx, st, epRestock, mapError(err))
	}
	st.out = appendSKU(st.out[:0], state)
	writeJSON(ctx, fasthttp.StatusOK, st.out)
	return fasthttp.StatusOK
}

// Ready reports whether the server should receive traffic: it has its
// engine (recovery is done once New or Attach has it), the engine is
// healthy and Shutdown has not begun. nil when ready.
func (s *Server) Ready() error {
	if s.closing.Load() {
		return errors.New("shutting down")
	}
	if !s.attached.Load() {
		return errors.New("recovering: the engine is not open yet")
	}
	return s.eng.Err()
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx, st *reqState) int {
	ctx.SetContentType(contentTypeJSON)
	if err := s.Ready(); err != nil {
		b := append(st.out[:0], `{"ready":false,"reason":`...)
		b = appendJSONString(b, err.Error())
		st.out = append(b, '}')
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBody(st.out)
		return fasthttp.StatusServiceUnavailable
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString(`{"ready":true}`)
	return fasthttp.StatusOK
}

var syncDisabled = apiError{status: fasthttp.StatusServiceUnavailable, code: codeSyncDisabled,
	msg: "no MySQL syncer runs in this server (start it with --mysql-dsn)"}

func (s *Server) syncStatus(ctx *fasthttp.RequestCtx, st *reqState) int {
	if s.syncer == nil {
		return s.fail(ctx, st, epSync, syncDisabled)
	}
	rctx, cancel := context.WithTimeout(context.Background(), AdminTimeoutDefault)
	defer cancel()
	status, err := s.syncer.Status(rctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.fail(ctx, st, epSync, readTimedOut)
	}
	if err != nil {
		return s.fail(ctx, st, epSync, mapError(err))
	}
	return s.writeValue(ctx, st, epSync, fasthttp.StatusOK, status)
}

func (s *Server) reconcile(ctx *fasthttp.RequestCtx, st *reqState) int {
	if s.syncer == nil {
		return s.fail(ctx, st, epReconcile, syncDisabled)
	}
	if !s.reconciling.CompareAndSwap(false, true) {
		return s.fail(ctx, st, epReconcile, apiError{status: fasthttp.StatusServiceUnavailable, code: codeOverloaded,
			msg: "a reconcile is already running (one at a time); retry after Retry-After seconds"})
	}
	defer s.reconciling.Store(false)
	rctx, cancel := context.WithTimeout(context.Background(), AdminTimeoutDefault)
	defer cancel()
	report, drift, err := s.syncer.Reconcile(rctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Not mapError's 504: a reconcile only reads, nothing can have
		// been applied.
		return s.fail(ctx, st, epReconcile, apiError{status: fasthttp.StatusGatewayTimeout, code: codeTimeout,
			msg: fmt.Sprintf("reconcile did not finish within %v (MySQL slow or unreachable?): %v; it changes nothing, run it again", AdminTimeoutDefault, err)})
	}
	if err != nil {
		return s.fail(ctx, st, epReconcile, mapError(err))
	}
	if drift {
		s.m.observeError(epReconcile, codeDrift)
		return s.writeValue(ctx, st, epReconcile, fasthttp.StatusConflict, struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Report  any    `json:"report"`
		}{codeDrift, "MySQL differs from the engine's log; see report", report})
	}
	return s.writeValue(ctx, st, epReconcile, fasthttp.StatusOK, report)
}

// writeValue answers v encoded by encoding/json (admin endpoints only).
func (s *Server) writeValue(ctx *fasthttp.RequestCtx, st *reqState, ep endpoint, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return s.fail(ctx, st, ep, apiError{status: fasthttp.StatusInternalServerError, code: codeInternal,
			msg: "encoding the answer: " + err.Error()})
	}
	writeJSON(ctx, status, b)
	return status
}

// handleProtocolError answers requests fasthttp could not read: a body
// over the limit (413 body_too_large), headers over the read buffer (431),
// a read timeout (408 request_timeout: never applied), anything else 400.
func (s *Server) handleProtocolError(ctx *fasthttp.RequestCtx, err error) {
	st := s.states.Get().(*reqState)
	defer s.states.Put(st)
	a := apiError{status: fasthttp.StatusBadRequest, code: codeBadRequest, msg: "malformed HTTP request"}
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		a = apiError{status: fasthttp.StatusRequestEntityTooLarge, code: codeBodyTooLarge,
			msg: fmt.Sprintf("request body over %d bytes", s.cfg.BodyBytesMax)}
	case errors.As(err, &small):
		a = apiError{status: fasthttp.StatusRequestHeaderFieldsTooLarge, code: codeHeaderTooLarge,
			msg: fmt.Sprintf("request line and headers over %d bytes", ReadBufferBytesDefault)}
	case errors.As(err, &nerr) && nerr.Timeout():
		a = apiError{status: fasthttp.StatusRequestTimeout, code: codeRequestTimeout,
			msg: "reading the request timed out; nothing was applied"}
	}
	status := s.fail(ctx, st, epOther, a)
	s.m.observe(epOther, status, time.Now())
}
