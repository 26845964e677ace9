package server

import (
	"context"
	"log/slog"
	"time"
)

// Limits of the HTTP contract (docs/http.md). Each is enforced by the parser
// with a 4xx answer; none blocks.
const (
	// BodyBytesMaxDefault is the default request body limit; a larger body
	// is answered 413 body_too_large before the handler runs.
	BodyBytesMaxDefault = 64 << 10
	// IDBytesMax bounds request, return, user and SKU ids (1..IDBytesMax bytes
	// of [A-Za-z0-9._:-]); a longer id is 400 bad_request.
	IDBytesMax = 64
	// ItemsMax bounds the items of one request; more is 400 bad_request.
	ItemsMax = 64
	// QtyMax bounds one item's quantity (1..QtyMax), and a restock's.
	QtyMax = 1_000_000
	// TotalMax bounds a SKU's total (0..TotalMax) in PUT /v1/skus/{sku}; a
	// restock that would take the total past it is 400 bad_request (engine).
	TotalMax = 1_000_000_000_000
	// LimitPerUserMax bounds limit_per_user (0..LimitPerUserMax; 0 = none).
	LimitPerUserMax = 1_000_000
	// TTLMsMin and TTLMsMax bound a reservation's ttl_ms; TTLMsDefault is
	// used when the body omits it.
	TTLMsMin     = 1_000
	TTLMsMax     = 86_400_000
	TTLMsDefault = 900_000
)

// Defaults of Config. Each limit says what happens when it is reached.
const (
	// RequestTimeoutDefault is the per-request deadline handed to the
	// engine. A change that is still waiting for its fsync at the deadline is
	// answered 504 timeout and may or may not have been applied: a retry with
	// the same id answers replayed:true if it was.
	RequestTimeoutDefault = 3 * time.Second
	// ReadTimeoutDefault bounds reading one request (headers and body); past
	// it the connection is closed.
	ReadTimeoutDefault = 5 * time.Second
	// WriteTimeoutDefault bounds writing one response; past it the
	// connection is closed.
	WriteTimeoutDefault = 5 * time.Second
	// IdleTimeoutDefault closes keep-alive connections idle this long.
	IdleTimeoutDefault = 60 * time.Second
	// ConnsMaxDefault bounds open connections (fasthttp's Concurrency); past
	// it new connections get fasthttp's own plain-text 503 (no JSON body, no
	// Retry-After: fasthttp has no hook for it) and are closed.
	ConnsMaxDefault = 16 << 10
	// InFlightMaxDefault bounds requests inside the handler at once; past it
	// a request is answered 503 overloaded with Retry-After, never queued.
	InFlightMaxDefault = 4096
	// SKUInFlightMaxDefault bounds in-flight changes that name one SKU
	// (deduct, reserve, return, and the admin PUT and restock; striped: SKUs
	// that hash to the same stripe share the bound); past it 503 overloaded.
	SKUInFlightMaxDefault = 1024
	// ReadBufferBytesDefault is the per-connection read buffer; it also
	// bounds the request line plus headers (past it: 431).
	ReadBufferBytesDefault = 8 << 10
	// AdminTimeoutDefault is the deadline of the sync status and reconcile
	// admin calls, which read MySQL.
	AdminTimeoutDefault = 60 * time.Second
	// HotSKUsMax bounds Config.HotSKUs, so the per-SKU stock gauges keep a
	// bounded label cardinality.
	HotSKUsMax = 100
	// RetryAfterSeconds is the Retry-After of 503 answers.
	RetryAfterSeconds = 1
)

// Syncer is the running MySQL syncer as the admin endpoints see it
// (GET /v1/sync and POST /v1/reconcile). Both values are encoded with
// encoding/json. Safe for concurrent use.
type Syncer interface {
	Status(ctx context.Context) (any, error)
	Reconcile(ctx context.Context) (report any, drift bool, err error)
}

// Config configures a Server. The zero value is usable: every zero field
// takes its default, and an empty AdminToken makes every admin call 401.
type Config struct {
	// AdminToken guards the admin endpoints (Authorization: Bearer TOKEN).
	// Empty: admin endpoints answer 401 to everyone. Never logged.
	AdminToken string
	// BodyBytesMax: request bodies above it are answered 413.
	BodyBytesMax   int
	RequestTimeout time.Duration
	ReadTimeout    time.Duration
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration
	ConnsMax       int
	InFlightMax    int64
	SKUInFlightMax int64
	// HotSKUs get a stock gauge each in /metrics (at most HotSKUsMax; an id
	// named twice gets one, an invalid id none).
	HotSKUs []string
	// Syncer, if set, serves GET /v1/sync and POST /v1/reconcile; nil
	// answers them 503 sync_disabled.
	Syncer Syncer
	// Logger: nil is silent. The server never logs a line per request at
	// info level, and never logs the admin token.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.BodyBytesMax <= 0 {
		c.BodyBytesMax = BodyBytesMaxDefault
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = ReadTimeoutDefault
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = WriteTimeoutDefault
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = IdleTimeoutDefault
	}
	if c.ConnsMax <= 0 {
		c.ConnsMax = ConnsMaxDefault
	}
	if c.InFlightMax <= 0 {
		c.InFlightMax = InFlightMaxDefault
	}
	if c.SKUInFlightMax <= 0 {
		c.SKUInFlightMax = SKUInFlightMaxDefault
	}
	if len(c.HotSKUs) > HotSKUsMax {
		c.HotSKUs = c.HotSKUs[:HotSKUsMax]
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
