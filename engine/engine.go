package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flashsale/flashsale/wal"
)

// Defaults and limits. Each says what happens when it is reached.
const (
	// IdempotencyWindowDefault: how long a successful request id is remembered.
	IdempotencyWindowDefault = 24 * time.Hour
	// RequestIDsMaxDefault bounds the remembered ids of each namespace; past
	// it the oldest finished ids are forgotten first, so under a flood the
	// effective window is shorter than IdempotencyWindow (see docs).
	RequestIDsMaxDefault = 2_000_000
	// SnapshotEveryRecordsDefault: a snapshot is written after this many
	// records, so recovery replays at most about this many.
	SnapshotEveryRecordsDefault = 1_000_000
	// ReservationTTLDefault is used when a reservation names no TTL.
	ReservationTTLDefault = 15 * time.Minute
	ReservationTTLMin     = time.Second
	ReservationTTLMax     = 24 * time.Hour
	// ExpiryTickDefault: how often due reservations are released; a
	// reservation is released at most one tick after it expires.
	ExpiryTickDefault = 250 * time.Millisecond
	// InFlightMaxDefault caps changes in flight in the whole engine; past it a
	// change is refused with ErrOverloaded before it reaches a SKU.
	InFlightMaxDefault = 1 << 16
	// SKUInFlightMaxDefault caps changes in flight per SKU, likewise.
	SKUInFlightMaxDefault = 1 << 14
	// ItemsMax, QtyMax, TotalMax, LimitMax: request limits (the Limits table of docs/http.md).
	ItemsMax = wal.ItemsMax
	QtyMax   = wal.QtyMax
	TotalMax = wal.TotalMax
	LimitMax = wal.LimitMax
)

// Options configure an Engine. Dir is required; the rest has defaults.
type Options struct {
	Dir    string           // data directory: the log and the snapshots
	FS     vfs.FS           // nil: the operating system's file system
	Now    func() time.Time // nil: time.Now; inject a clock for deterministic tests
	Logger *slog.Logger     // nil: silent. protoactor's own logging goes here too.

	IdempotencyWindow    time.Duration
	RequestIDsMax        int
	SnapshotEveryRecords uint64
	// ReservationTTLDefault: the TTL of a reservation that names none. 0 or
	// negative: 15 min; else ReservationTTLMin..ReservationTTLMax, as for a
	// TTL a reservation names (Open refuses others).
	ReservationTTLDefault time.Duration
	// ExpiryTick: how often the background loop expires reservations and
	// forgets old ids (and the snapshot loop, on its own goroutine, checks
	// whether a snapshot is due). Negative: neither loop runs (call ExpireDue
	// yourself; a snapshot is written at Close).
	ExpiryTick     time.Duration
	InFlightMax    int64
	SKUInFlightMax int64
	// KeepUnsynced: truncate the log only below what MarkSynced confirmed, as
	// well as below the snapshot. Set it when a syncer consumes the log.
	KeepUnsynced bool
	// WAL tunes the log (batch limits, a commit hook for metrics).
	WAL wal.Options
}

func (o *Options) setDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.IdempotencyWindow <= 0 {
		o.IdempotencyWindow = IdempotencyWindowDefault
	}
	if o.RequestIDsMax <= 0 {
		o.RequestIDsMax = RequestIDsMaxDefault
	}
	if o.SnapshotEveryRecords == 0 {
		o.SnapshotEveryRecords = SnapshotEveryRecordsDefault
	}
	if o.ReservationTTLDefault <= 0 {
		o.ReservationTTLDefault = ReservationTTLDefault
	}
	if o.ExpiryTick == 0 {
		o.ExpiryTick = ExpiryTickDefault
	}
	if o.InFlightMax <= 0 {
		o.InFlightMax = InFlightMaxDefault
	}
	if o.SKUInFlightMax <= 0 {
		o.SKUInFlightMax = SKUInFlightMaxDefault
	}
	o.WAL.FS = o.FS
	if o.WAL.Logger == nil {
		o.WAL.Logger = o.Logger
	}
}

// Item is one SKU and quantity of a request.
type Item struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// DeductRequest is a one-phase sale of every item, all or nothing.
type DeductRequest struct {
	RequestID string
	UserID    string // optional unless a SKU has a per-user limit
	Items     []Item
}

// ReserveRequest holds every item, all or nothing, until confirmed,
// cancelled or expired.
type ReserveRequest struct {
	RequestID string
	UserID    string
	Items     []Item
	TTL       time.Duration // 0: Options.ReservationTTLDefault; else 1 s..24 h
}

// ReturnRequest gives back some of what a sale (a deduct or a confirmed
// reservation) sold. ReturnID is its own idempotency key.
type ReturnRequest struct {
	ReturnID  string
	RequestID string
	Items     []Item
}

// RestockRequest adds Qty to a SKU's total; RequestID makes it idempotent.
type RestockRequest struct {
	RequestID string
	SKU       string
	Qty       int64
}

// SetSKURequest creates a SKU or sets its total. LimitPerUser nil keeps the
// current limit (0 for a new SKU).
type SetSKURequest struct {
	SKU          string
	Total        int64
	LimitPerUser *int64
}

// Result is the outcome of a change. Seq is the log record that made it; on
// a replay (Replayed) it is the original record's seq.
type Result struct {
	Seq         uint64
	Replayed    bool
	ExpiresAtMs int64 // reservations only
}

// Engine sells stock. All methods are safe for concurrent use. Every method
// that changes state returns only after the change is durable (fsynced), or
// with an error, in which case nothing was applied, with two exceptions: a
// change whose ctx ended while it waited for its fsync, and a change refused
// with ErrUnavailable because the log failed while committing it (a failed
// fsync may still have put it on disk), may be applied. A retry with the same
// id then answers with Replayed (after a restart, for a failed log).
type Engine struct {
	opts Options
	log  *wal.Log
	sys  *actor.ActorSystem
	root *actor.RootContext

	skus     skuIndex
	skuMu    sync.Mutex // one SKU created at a time
	outMax   int        // takes an actor queues before deciding: outBatchRecordsMax, at most the log's batch
	requests *table     // deducts and reservations
	restocks *table
	returns  *table
	expiries expiryQueue

	inflight atomic.Int64
	closed   atomic.Bool
	closeEnd chan struct{} // closed once the first Close is done (closeErr set)
	closeErr error
	bug      atomic.Pointer[string] // the first invariant violation seen in an actor
	synced   atomic.Uint64
	snapSeq  atomic.Uint64
	snapFail atomic.Uint64 // background snapshots that failed
	snapMu   sync.Mutex    // one snapshot at a time
	shadow   *State        // the state as of the last snapshot (guarded by snapMu)

	stop chan struct{}
	bg   sync.WaitGroup
}

// Open recovers the engine from opts.Dir (the last snapshot plus the log
// after it), expires reservations whose time passed while it was down, and
// returns once it is ready to serve.
func Open(opts Options) (*Engine, error) {
	if opts.Dir == "" {
		return nil, errors.New("engine: Options.Dir is required")
	}
	opts.setDefaults()
	if d := opts.ReservationTTLDefault; d < ReservationTTLMin || d > ReservationTTLMax {
		return nil, fmt.Errorf("engine: Options.ReservationTTLDefault %v, want %v..%v", d, ReservationTTLMin, ReservationTTLMax)
	}
	if err := mkdirDurable(opts.FS, opts.Dir); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	log, err := wal.Open(opts.FS.PathJoin(opts.Dir, "log"), opts.WAL)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, log: log, requests: newTable(opts.RequestIDsMax),
		restocks: newTable(opts.RequestIDsMax), returns: newTable(opts.RequestIDsMax), stop: make(chan struct{}),
		closeEnd: make(chan struct{}), outMax: outBatchRecordsMax}
	if n := opts.WAL.BatchRecordsMax; n > 0 && n < e.outMax {
		e.outMax = n // the log refuses a larger AppendBatch
	}
	logger := opts.Logger
	e.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return logger.With("component", "protoactor")
	}))
	e.root = e.sys.Root
	t0 := time.Now()
	st, err := e.recover()
	if err != nil {
		log.Close()
		e.sys.Shutdown()
		return nil, err
	}
	opts.Logger.Info("engine: recovered", "seq", st.Seq, "took", time.Since(t0))
	e.install(st)
	if _, err := e.ExpireDue(context.Background()); err != nil {
		e.Close()
		return nil, err
	}
	if opts.ExpiryTick > 0 {
		e.bg.Add(2)
		go e.background(e.expireTick)
		go e.background(e.snapshotTick)
	}
	return e, nil
}

// mkdirDurable creates dir and its missing parents, and syncs the parent of
// each directory it created, so that a power loss cannot take the new data
// directory (and every acknowledged change in it) away: Pebble makes the
// log durable inside dir, not dir itself inside its parent.
func mkdirDurable(fs vfs.FS, dir string) error {
	var created []string
	for d := dir; ; {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		parent := fs.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if parent := fs.PathDir(created[i]); parent != created[i] {
			if err := syncDir(fs, parent); err != nil {
				return fmt.Errorf("sync %s: %w", parent, err)
			}
		}
	}
	return nil
}

// Log returns the engine's log, for the syncer to tail (Read up to Durable).
func (e *Engine) Log() *wal.Log { return e.log }

// MarkSynced tells the engine that every record up to seq reached its
// consumer; with Options.KeepUnsynced the log is truncated no further.
func (e *Engine) MarkSynced(seq uint64) {
	for {
		cur := e.synced.Load()
		if seq <= cur || e.synced.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Err returns nil while the engine can apply changes, else why not (the log
// failed, a SKU actor found a broken invariant, or the engine is closed).
func (e *Engine) Err() error {
	if bug := e.bug.Load(); bug != nil {
		return fmt.Errorf("%w: %s", ErrUnavailable, *bug)
	}
	if err := e.log.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if e.closed.Load() {
		return fmt.Errorf("%w: engine closed", ErrUnavailable)
	}
	return nil
}

func (e *Engine) nowMs() int64 { return e.opts.Now().UnixMilli() }

func (e *Engine) ref(id string) *skuRef { return e.skus.get(id) }

// Available returns a SKU's available stock without a hop to its actor (it
// may lag the actor by a change in flight) and whether the SKU exists.
func (e *Engine) Available(id string) (int64, bool) {
	r := e.ref(id)
	if r == nil {
		return 0, false
	}
	return r.available.Load(), true
}

// Get returns a SKU's state, as its actor holds it now. After Close (or
// once Close has begun) it returns ErrUnavailable.
func (e *Engine) Get(ctx context.Context, id string) (SKUState, error) {
	if e.closed.Load() {
		return SKUState{}, e.Err()
	}
	return e.get(ctx, id, e.stop)
}

// get asks id's actor for its state. stop, when it closes, ends the wait
// (the actor may be gone before it answers); changes in flight pass nil, as
// Close keeps the actors until they are done.
func (e *Engine) get(ctx context.Context, id string, stop <-chan struct{}) (SKUState, error) {
	r := e.ref(id)
	if r == nil {
		return SKUState{}, &ItemError{Err: ErrUnknownSKU, SKU: id}
	}
	m := &getMsg{reply: make(chan SKUState, 1)}
	e.root.Send(r.pid, m)
	select {
	case s := <-m.reply:
		return s, nil
	case <-stop:
		return SKUState{}, e.Err()
	case <-ctx.Done():
		return SKUState{}, ctx.Err()
	}
}

// SKUs lists the ids of every SKU, in no particular order.
func (e *Engine) SKUs() []string {
	var out []string
	e.skus.each(func(r *skuRef) { out = append(out, r.id) })
	return out
}

// Stats are counters for metrics.
type Stats struct {
	InFlight    int64
	SKUs        int
	RequestIDs  int
	SnapshotSeq uint64
	// SnapshotFailures counts the background snapshots that failed since
	// Open (each is logged; the next tick tries again). While they fail, the
	// log is not truncated and a restart replays more of it.
	SnapshotFailures uint64
	SyncedSeq        uint64
	Log              wal.Stats
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{InFlight: e.inflight.Load(), SKUs: e.skus.len(), RequestIDs: e.requests.len(),
		SnapshotSeq: e.snapSeq.Load(), SnapshotFailures: e.snapFail.Load(), SyncedSeq: e.synced.Load(), Log: e.log.Stats()}
}

// Close stops the engine: new changes are refused, changes in flight finish
// and are made durable, a snapshot is written, and the log is closed. A
// second Close, concurrent or later, waits for the first to end and returns
// its result.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		<-e.closeEnd
		return e.closeErr
	}
	defer close(e.closeEnd)
	close(e.stop)
	e.bg.Wait()
	// Wait for changes in flight (bounded: each waits for at most an fsync).
	for e.inflight.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	var errs []error
	e.skus.each(func(r *skuRef) { _ = e.root.PoisonFuture(r.pid).Wait() })
	e.sys.Shutdown()
	if e.log.Err() == nil {
		if err := e.snapshot(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.log.Close())
	e.closeErr = errors.Join(errs...)
	return e.closeErr
}

// enter counts a change in flight, refusing it past the engine's bound or
// once Close has begun. It counts first and checks closed after: Close sets
// closed, then waits for the count to reach zero, so either Close sees this
// change in flight or this change sees closed.
func (e *Engine) enter() error {
	if e.inflight.Add(1) > e.opts.InFlightMax {
		e.inflight.Add(-1)
		return ErrOverloaded
	}
	if e.closed.Load() || e.bug.Load() != nil {
		e.inflight.Add(-1)
		return e.Err()
	}
	return nil
}

func (e *Engine) leave() { e.inflight.Add(-1) }

// noteBug records p, the panic of a SKU actor, and returns the error that
// callers get from now on. skuActor.catchBug and skuRef.catchBug call it,
// deferred in every actor message and decision: a panic there is a broken
// invariant (a bug). The engine then refuses all further changes (Err says
// why): every caller waiting on the actor for a change it has not handed to
// the log is answered with ErrUnavailable, and from then on every SKU actor
// answers what it is sent without deciding it (skuActor.refuse). The panic
// goes on to protoactor's supervisor, which logs it and restarts the actor.
func (e *Engine) noteBug(p any) error {
	msg := fmt.Sprint(p)
	e.bug.CompareAndSwap(nil, &msg)
	e.opts.Logger.Error("engine: bug: refusing all further changes", "panic", msg)
	return e.Err()
}

// validateItems checks items' syntax and ranges and that each SKU exists,
// appending the refs to refs. Syntax errors (400) come before unknown SKUs
// (404).
func (e *Engine) validateItems(items []Item, refs []*skuRef) ([]*skuRef, error) {
	if len(items) == 0 || len(items) > ItemsMax {
		return nil, badRequest("items: %d, want 1..%d", len(items), ItemsMax)
	}
	for i, it := range items {
		if !wal.ValidID(it.SKU) {
			return nil, badRequest("items[%d].sku: want 1-64 bytes of [A-Za-z0-9._:-]", i)
		}
		if it.Qty < 1 || it.Qty > QtyMax {
			return nil, badRequest("items[%d].qty: %d, want 1..%d", i, it.Qty, QtyMax)
		}
		for _, prev := range items[:i] {
			if prev.SKU == it.SKU {
				return nil, badRequest("items[%d].sku: %s appears twice", i, it.SKU)
			}
		}
	}
	for _, it := range items {
		r := e.ref(it.SKU)
		if r == nil {
			return nil, &ItemError{Err: ErrUnknownSKU, SKU: it.SKU}
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func validID(what, id string) error {
	if !wal.ValidID(id) {
		return badRequest("%s: want 1-64 bytes of [A-Za-z0-9._:-]", what)
	}
	return nil
}

// bodyHash identifies a request's body for idempotency conflicts: FNV-1a over
// the kind, the user, the items and extra (the TTL), without allocating.
func bodyHash(kind wal.Kind, user string, items []Item, extra int64) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	mixByte := func(b byte) { h = (h ^ uint64(b)) * prime }
	mixInt := func(v int64) {
		for i := 0; i < 8; i++ {
			mixByte(byte(v >> (8 * i)))
		}
	}
	mixStr := func(s string) {
		mixInt(int64(len(s)))
		for i := 0; i < len(s); i++ {
			mixByte(s[i])
		}
	}
	mixByte(byte(kind))
	mixStr(user)
	for _, it := range items {
		mixStr(it.SKU)
		mixInt(it.Qty)
	}
	mixInt(extra)
	return h
}

func toWALItems(items []Item) []wal.Item {
	out := make([]wal.Item, len(items))
	for i, it := range items {
		out[i] = wal.Item{SKU: it.SKU, Qty: it.Qty}
	}
	return out
}
