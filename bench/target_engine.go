package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/flashsale/flashsale/engine"
)

// EngineTarget is the flashsale engine embedded in the harness's process,
// with its own data directory: the figure a gateway that links the engine as
// a library would see (no HTTP, no JSON). Its CPU is shared with the client.
type EngineTarget struct {
	// Dir is the data directory; empty: a fresh temporary directory,
	// removed by Close.
	Dir string
	// Options, if set, tunes the engine (Dir is overridden).
	Options engine.Options
	Logger  *slog.Logger

	eng *engine.Engine
	tmp string
}

// Info implements Target.
func (t *EngineTarget) Info() Info {
	return Info{Name: "engine", InProcess: true, Expires: true}
}

// Setup opens the engine and creates the catalog.
func (t *EngineTarget) Setup(ctx context.Context, w *Workload) error {
	dir := t.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "flashsale-bench-engine-")
		if err != nil {
			return fmt.Errorf("engine target: %w", err)
		}
		dir, t.tmp = d, d
	}
	opts := t.Options
	opts.Dir = dir
	if opts.RequestIDsMax == 0 {
		opts.RequestIDsMax = RequestIDsMax
	}
	if opts.Logger == nil {
		opts.Logger = t.Logger
	}
	eng, err := engine.Open(opts)
	if err != nil {
		return fmt.Errorf("engine target: open %s: %w", dir, err)
	}
	t.eng = eng
	cfg := w.Config()
	for _, sku := range w.SKUs() {
		limit := cfg.LimitPerUser
		if _, _, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: sku, Total: cfg.Stock, LimitPerUser: &limit}); err != nil {
			return fmt.Errorf("engine target: create %s: %w", sku, err)
		}
	}
	return nil
}

// Do implements Target.
func (t *EngineTarget) Do(ctx context.Context, s *Step) Outcome {
	r, err := engineDo(ctx, t.eng, s)
	return engineOutcome(r, err)
}

// Replay implements Replayer: the same request again.
func (t *EngineTarget) Replay(ctx context.Context, s *Step) Outcome { return t.Do(ctx, s) }

func engineDo(ctx context.Context, e *engine.Engine, s *Step) (engine.Result, error) {
	items := []engine.Item{{SKU: s.SKU, Qty: s.Qty}}
	switch s.Kind {
	case KindDeduct:
		return e.Deduct(ctx, engine.DeductRequest{RequestID: s.RequestID, UserID: s.UserID, Items: items})
	case KindReserve:
		return e.Reserve(ctx, engine.ReserveRequest{RequestID: s.RequestID, UserID: s.UserID, Items: items, TTL: s.TTL})
	case KindConfirm:
		return e.Confirm(ctx, s.RequestID)
	case KindCancel:
		return e.Cancel(ctx, s.RequestID)
	case KindReturn:
		return e.Return(ctx, engine.ReturnRequest{ReturnID: s.ReturnID, RequestID: s.RequestID, Items: items})
	}
	panic(fmt.Sprintf("bench: engine target: step kind %d", s.Kind))
}

// engineOutcome classifies the engine's answer like the HTTP target
// classifies the contract's codes.
func engineOutcome(r engine.Result, err error) Outcome {
	if err == nil {
		return Outcome{Status: StatusOK, Seq: r.Seq, Replayed: r.Replayed}
	}
	code := engine.CodeOf(err)
	if code == nil {
		return Outcome{Status: StatusUnknown, Err: err}
	}
	return Outcome{Status: statusOfCode(code.Code), Err: err}
}

// statusOfCode classifies an error code of the HTTP contract. Business
// refusals are rejections; every other code means the request was not
// applied and the harness did not expect it.
func statusOfCode(code string) Status {
	switch code {
	case "sold_out", "insufficient_stock", "user_limit_exceeded":
		return StatusRejected
	}
	return StatusFailed
}

// Observe implements Target.
func (t *EngineTarget) Observe(ctx context.Context, skus []string) ([]Observed, error) {
	out := make([]Observed, len(skus))
	for i, sku := range skus {
		st, err := t.eng.Get(ctx, sku)
		if err != nil {
			return nil, fmt.Errorf("engine target: get %s: %w", sku, err)
		}
		if st.Total != st.Available+st.Reserved+st.Sold {
			return nil, fmt.Errorf("engine target: %s: total %d != available %d + reserved %d + sold %d",
				sku, st.Total, st.Available, st.Reserved, st.Sold)
		}
		out[i] = Observed{Available: st.Available, Reserved: st.Reserved, Sold: st.Sold, Records: -1}
	}
	return out, nil
}

// Close closes the engine and removes a temporary data directory.
func (t *EngineTarget) Close() error {
	var err error
	if t.eng != nil {
		err = t.eng.Close()
		t.eng = nil
	}
	if t.tmp != "" {
		err = errors.Join(err, os.RemoveAll(t.tmp))
		t.tmp = ""
	}
	return err
}
