package bench

import "context"

// Status classifies the answer to one request.
type Status uint8

// The statuses. Only StatusUnknown leaves the harness unsure whether the
// change was applied; verification allows for exactly that much.
const (
	// StatusOK: acknowledged; the change was applied.
	StatusOK Status = iota + 1
	// StatusRejected: the target refused for a business reason (sold out,
	// insufficient stock, per-user limit); nothing was applied.
	StatusRejected
	// StatusFailed: a definite error (overloaded, bad request, an answer the
	// harness did not expect); nothing was applied.
	StatusFailed
	// StatusUnknown: no definite answer (timeout, broken connection, 5xx);
	// the change may or may not have been applied.
	StatusUnknown
)

// Outcome is a target's answer to one Step.
type Outcome struct {
	Status   Status
	Seq      uint64 // flashsale targets: the log record of the change
	Replayed bool   // flashsale targets: an idempotent retry
	Err      error  // for StatusFailed and StatusUnknown: why
}

// Observed is one SKU as the target's own store holds it after a run.
// Fields the target does not keep are -1.
type Observed struct {
	Available int64
	Reserved  int64
	Sold      int64
	// Records is the number of flow records the target appended for this
	// SKU's changes (or, for a target that keeps one log for all SKUs, the
	// total, reported on the first SKU with -1 elsewhere); -1 when none.
	Records int64
}

// Info describes a target for reports.
type Info struct {
	Name        string // the row's label, for example "redis-lua"
	AppendFsync string // redis only
	// ServerPID is the process that serves the target, for its CPU use;
	// 0 when unknown or in-process.
	ServerPID int
	// InProcess: the target runs inside the harness's process, so the
	// client's CPU figure includes it.
	InProcess bool
	// Expires: the target releases unconfirmed reservations by itself after
	// their TTL (flashsale); the classic designs leave them held.
	Expires bool
	// Ceiling: the target does no stock work (noop); nothing to verify.
	Ceiling bool
	Conns   int // connections or workers the client uses, 0 if not applicable
}

// Target is a system under test. The harness calls Setup once, then Do from
// Config.Concurrency goroutines at once, then Observe (and Replay, if the
// target implements Replayer), then Close. Do must be safe for concurrent use.
type Target interface {
	Info() Info
	// Setup creates the workload's catalog: every SKU with Config.Stock and
	// Config.LimitPerUser. It may return an error wrapping ErrUnsupported.
	Setup(ctx context.Context, w *Workload) error
	// Do sends one request and classifies the answer. It never panics on an
	// answer it does not expect: that is StatusFailed or StatusUnknown.
	Do(ctx context.Context, s *Step) Outcome
	// Observe reads every SKU back from the target's own store, in the
	// order of skus.
	Observe(ctx context.Context, skus []string) ([]Observed, error)
	Close() error
}

// Replayer is a target with idempotent requests: Replay resends an
// acknowledged step and must answer StatusOK, Replayed, and the original Seq.
type Replayer interface {
	Replay(ctx context.Context, s *Step) Outcome
}
