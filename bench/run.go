package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/schollz/progressbar/v3"
)

// Timing limits of a target run.
const (
	// setupTimeout bounds a target's Setup (connecting, creating the catalog).
	setupTimeout = 2 * time.Minute
	// verifyTimeout bounds Observe and the replays after a run.
	verifyTimeout = time.Minute
	// expiryGrace is how long after a reservation's TTL the harness waits for
	// a flashsale target to release it (the contract: at most 1 s).
	expiryGrace = 1500 * time.Millisecond
	// drainGrace is how long past Duration in-flight requests may take before
	// the run's context is cancelled (on top of RequestTimeout).
	drainGrace = 2 * time.Second
	// progressInterval is how often the progress line is redrawn.
	progressInterval = 250 * time.Millisecond
	// histogramMicrosMax is the largest latency recorded (larger ones are
	// recorded as this); it covers RequestTimeoutMax.
	histogramMicrosMax = int64(RequestTimeoutMax / time.Microsecond)
	histogramSigFigs   = 3
)

// Result is one target run: every figure of the table, JSON and chart.
type Result struct {
	Target       string  `json:"target"`
	Scenario     string  `json:"scenario"`
	AppendFsync  string  `json:"appendfsync,omitempty"`
	Mode         string  `json:"mode"` // closed or open (loop)
	Concurrency  int     `json:"concurrency"`
	Conns        int     `json:"conns,omitempty"`
	Rate         float64 `json:"rate,omitempty"` // open loop: scheduled flows per second
	Seed         int64   `json:"seed"`
	SKUs         int     `json:"skus"`
	Stock        int64   `json:"stock"`
	Qty          int64   `json:"qty"`
	Buyers       int     `json:"buyers"`
	LimitPerUser int64   `json:"limit_per_user"`

	DurationS float64 `json:"duration_s"`
	Flows     int64   `json:"flows"`
	// Dropped (open loop) counts flows scheduled within the run that were
	// never sent because the target fell that far behind; each is in the
	// latency histogram with the time it waited until the run's end.
	Dropped         int64   `json:"dropped"`
	Requests        int64   `json:"requests"`
	Successes       int64   `json:"successes"`
	Rejected        int64   `json:"rejected"` // sold out, insufficient stock, per-user limit
	Errors          int64   `json:"errors"`   // failed + unknown outcome
	Unknown         int64   `json:"unknown"`  // no definite answer (timeouts)
	OpsPerSec       float64 `json:"ops_per_sec"`
	SuccessesPerSec float64 `json:"successes_per_sec"`
	MeanMs          float64 `json:"mean_ms"`
	P50Ms           float64 `json:"p50_ms"`
	P90Ms           float64 `json:"p90_ms"`
	P99Ms           float64 `json:"p99_ms"`
	P999Ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`

	// ClientCores is the harness process's CPU time over the run's wall time
	// (it includes an in-process target).
	ClientCores float64 `json:"client_cores"`
	// ServerCores likewise for the server process; -1 when not measured
	// (in-process or unknown: see ServerCPU).
	ServerCores float64 `json:"server_cores"`
	ServerCPU   string  `json:"server_cpu"` // "measured", "shared (in-process)" or "unknown"
	// ServerOpsPerCPUSecond is requests per CPU-second of the server (or of
	// the whole process for an in-process target).
	ServerOpsPerCPUSecond float64 `json:"server_ops_per_cpu_sec"`

	Oversold     int64  `json:"oversold"`
	Verified     bool   `json:"verified"`
	Verification string `json:"verification"` // ok, FAIL, n/a, skipped, error
	VerifyDetail string `json:"verify_detail,omitempty"`
	FirstError   string `json:"first_error,omitempty"`
	Skipped      string `json:"skipped,omitempty"`
}

// Failed tells whether the row makes the harness fail: it oversold, failed
// verification, or could not run.
func (r *Result) Failed() bool {
	return r.Skipped == "" && (!r.Verified || r.Oversold > 0)
}

// Run runs every target in turn with cfg and returns one result per target.
// The error wraps ErrVerificationFailed when any target oversold or failed
// verification, and reports targets that could not run; a target that does
// not support cfg (ErrUnsupported) is skipped, not failed.
func Run(ctx context.Context, cfg Config, targets []Target) ([]Result, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "b" + strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond), 36)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	results := make([]Result, 0, len(targets))
	var errs []error
	for i, t := range targets {
		c := cfg
		c.Prefix = cfg.Prefix + "." + strconv.Itoa(i)
		r, err := RunTarget(ctx, c, t)
		results = append(results, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Info().Name, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return results, errors.Join(errs...)
}

// RunTarget runs cfg against one target: Setup, the load, the verification,
// Close. The result is filled as far as the run got; the error is nil, or
// wraps ErrVerificationFailed, ErrConfig, or why the target could not run.
func RunTarget(ctx context.Context, cfg Config, t Target) (res Result, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "b" + strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond), 36)
	}
	info := t.Info()
	res = Result{
		Target: info.Name, Scenario: cfg.Scenario, AppendFsync: info.AppendFsync, Mode: cfg.Mode(),
		Concurrency: cfg.Concurrency, Conns: info.Conns, Rate: cfg.Rate, Seed: cfg.Seed, SKUs: cfg.SKUs,
		Stock: cfg.Stock, Qty: cfg.Qty, Buyers: cfg.Buyers, LimitPerUser: cfg.LimitPerUser,
		ServerCores: -1, Verification: "error",
	}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	defer func() {
		// A failed Close (a Redis setting not restored, keys left) is
		// reported even when the run already failed.
		if cerr := t.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
			if res.FirstError != "" {
				res.FirstError += "; "
			}
			res.FirstError += "close: " + cerr.Error()
		}
	}()
	wl := NewWorkload(cfg, cfg.Prefix)
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	err = t.Setup(sctx, wl)
	cancel()
	if errors.Is(err, ErrUnsupported) {
		res.Skipped, res.Verification = err.Error(), "skipped"
		return res, nil
	}
	if err != nil {
		res.FirstError, res.ServerCPU = err.Error(), "unknown"
		res.VerifyDetail = "setup failed: " + err.Error()
		return res, fmt.Errorf("setup: %w", err)
	}
	info = t.Info() // Setup may learn the server's pid, connection count or persistence
	res.Conns, res.AppendFsync = info.Conns, info.AppendFsync

	l := NewLedger(cfg)
	l.expires = info.Expires
	lr := runLoad(ctx, cfg, wl, t, l)

	res.DurationS = lr.elapsed.Seconds()
	res.Flows = lr.flows
	res.Dropped = lr.dropped
	res.Requests = l.attempts.Load()
	res.Successes = l.ok.Load()
	res.Rejected = l.rejected.Load()
	res.Unknown = l.unknown.Load()
	res.Errors = l.failed.Load() + res.Unknown
	if lr.firstErr != nil {
		res.FirstError = lr.firstErr.Error()
	}
	if s := res.DurationS; s > 0 {
		res.OpsPerSec = float64(res.Requests) / s
		res.SuccessesPerSec = float64(res.Successes) / s
		res.ClientCores = lr.clientCPU.Seconds() / s
	}
	h := lr.hist
	if h.TotalCount() > 0 {
		ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
		res.MeanMs = h.Mean() / 1000
		res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms = ms(50), ms(90), ms(99), ms(99.9)
		res.MaxMs = float64(h.Max()) / 1000
	}
	switch {
	case info.InProcess:
		res.ServerCPU = "shared (in-process)"
		if lr.clientCPU > 0 {
			res.ServerOpsPerCPUSecond = float64(res.Requests) / lr.clientCPU.Seconds()
		}
	case lr.serverCPU >= 0:
		res.ServerCPU = "measured"
		res.ServerCores = lr.serverCPU.Seconds() / res.DurationS
		if lr.serverCPU > 0 {
			res.ServerOpsPerCPUSecond = float64(res.Requests) / lr.serverCPU.Seconds()
		}
	default:
		res.ServerCPU = "unknown"
	}

	if ctx.Err() != nil {
		return res, fmt.Errorf("run: %w", ctx.Err())
	}
	v, err := verifyTarget(ctx, cfg, wl, t, info, l, lr)
	res.Verified, res.Oversold, res.VerifyDetail, res.Verification = v.Verified, v.Oversold, v.Detail, v.String()
	if err != nil {
		res.Verification = "error"
		res.VerifyDetail = err.Error()
		return res, fmt.Errorf("verify: %w", err)
	}
	if res.Failed() {
		return res, fmt.Errorf("%w: %s", ErrVerificationFailed, v.Detail)
	}
	return res, nil
}

// verifyTarget waits for expiring reservations if the target expires them,
// reads the store back, compares it with the ledger, and replays a sample of
// acknowledged requests on a Replayer.
func verifyTarget(ctx context.Context, cfg Config, wl *Workload, t Target, info Info, l *Ledger, lr loadResult) (Verification, error) {
	if info.Ceiling {
		return Verification{Verified: true, Skipped: true, Detail: "no store: the HTTP ceiling"}, nil
	}
	if info.Expires && lr.lastReserve > 0 {
		wait := time.Until(time.Unix(0, lr.lastReserve).Add(cfg.ReserveTTL + expiryGrace))
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return Verification{}, ctx.Err()
			}
		}
	}
	vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	obs, err := t.Observe(vctx, wl.SKUs())
	if err != nil {
		return Verification{}, fmt.Errorf("observe: %w", err)
	}
	if len(obs) != len(wl.SKUs()) {
		return Verification{}, fmt.Errorf("observe: %d SKUs answered, want %d", len(obs), len(wl.SKUs()))
	}
	v := l.verify(info, obs)
	rp, ok := t.(Replayer)
	if !ok {
		return v, nil
	}
	l.sampleMu.Lock()
	sample := append([]ackedStep(nil), l.sample...)
	l.sampleMu.Unlock()
	bad := 0
	var first string
	for _, a := range sample {
		o := rp.Replay(vctx, &a.step)
		if o.Status != StatusOK || !o.Replayed || o.Seq != a.seq {
			bad++
			if first == "" {
				first = fmt.Sprintf("replay of %s %s: status %d replayed %v seq %d, want replayed seq %d (%v)",
					a.step.Kind, a.step.RequestID, o.Status, o.Replayed, o.Seq, a.seq, o.Err)
			}
		}
	}
	if bad > 0 {
		msg := fmt.Sprintf("%d of %d acknowledged requests not found on replay: %s", bad, len(sample), first)
		if v.Verified {
			v.Detail = msg
		} else {
			v.Detail += "; " + msg
		}
		v.Verified = false
		return v, nil
	}
	if v.Verified {
		v.Detail += fmt.Sprintf(", %d acknowledged requests replayed", len(sample))
	}
	return v, nil
}

type loadResult struct {
	elapsed     time.Duration
	flows       int64
	dropped     int64 // open loop: scheduled, never sent
	hist        *hdrhistogram.Histogram
	clientCPU   time.Duration
	serverCPU   time.Duration // -1: not measured
	firstErr    error
	lastReserve int64 // unix nanos of the last acknowledged reservation, 0 if none
}

// runLoad drives the target with cfg's load and records every answer in l.
func runLoad(ctx context.Context, cfg Config, wl *Workload, t Target, l *Ledger) loadResult {
	info := t.Info()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.RequestTimeout+drainGrace)
	defer cancel()
	var (
		next        atomic.Uint64
		flows       atomic.Int64
		lastReserve atomic.Int64
		errOnce     sync.Once
		firstErr    error
		wg          sync.WaitGroup
	)
	hists := make([]*hdrhistogram.Histogram, cfg.Concurrency)
	var interval float64 // open loop: nanoseconds between scheduled flows
	if cfg.Rate > 0 {
		interval = float64(time.Second) / cfg.Rate
	}
	serverCPU0 := time.Duration(-1)
	if info.ServerPID > 0 && !info.InProcess {
		if c, err := procCPU(info.ServerPID); err == nil {
			serverCPU0 = c
		}
	}
	cpu0 := selfCPU()
	t0 := time.Now()
	deadline := t0.Add(cfg.Duration)
	stop := make(chan struct{})
	progressDone := startProgress(cfg, info, l, flows.Load, t0, stop)
	for w := range hists {
		h := hdrhistogram.New(1, histogramMicrosMax, histogramSigFigs)
		hists[w] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			var f Flow
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if cfg.Requests > 0 && i >= uint64(cfg.Requests) {
					return
				}
				var start time.Time
				if interval > 0 {
					// Compared before the conversion: a flow scheduled far
					// enough ahead would overflow a Duration into the past.
					offset := float64(i) * interval
					if offset > float64(cfg.Duration) {
						return
					}
					start = t0.Add(time.Duration(offset))
					if d := time.Until(start); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done(): // Ctrl-C: no waiting for the flow's time
							return
						}
					}
				} else {
					start = time.Now()
					if start.After(deadline) {
						return
					}
				}
				wl.Flow(i, &f)
				for k := 0; k < f.N; k++ {
					st := &f.Steps[k]
					if k > 0 {
						start = time.Now()
					}
					l.sending(st)
					o := t.Do(ctx, st)
					end := time.Now()
					us := end.Sub(start).Microseconds()
					if us < 1 {
						us = 1
					}
					_ = h.RecordValue(min(us, histogramMicrosMax))
					l.Record(st, o)
					if o.Status == StatusFailed || o.Status == StatusUnknown {
						errOnce.Do(func() { firstErr = fmt.Errorf("%s %s: %w", st.Kind, st.RequestID, o.Err) })
					}
					if o.Status != StatusOK {
						break
					}
					if st.Kind == KindReserve {
						for n := end.UnixNano(); ; {
							old := lastReserve.Load()
							if old >= n || lastReserve.CompareAndSwap(old, n) {
								break
							}
						}
					}
				}
				flows.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := selfCPU() - cpu0
	// Open loop: flows whose time came but that no worker got to send are
	// not left out (coordinated omission): each counts as dropped, with the
	// wait from its scheduled time to the end of the run as its latency.
	var dropped int64
	if interval > 0 {
		scheduled := uint64(float64(cfg.Duration)/interval) + 1
		if cfg.Requests > 0 {
			scheduled = min(scheduled, uint64(cfg.Requests))
		}
		for i := next.Load(); i < scheduled; i++ {
			us := (elapsed - time.Duration(float64(i)*interval)).Microseconds()
			_ = hists[0].RecordValue(min(max(us, 1), histogramMicrosMax))
			dropped++
		}
	}
	close(stop)
	<-progressDone
	serverCPU := time.Duration(-1)
	if serverCPU0 >= 0 {
		if c, err := procCPU(info.ServerPID); err == nil {
			serverCPU = c - serverCPU0
		}
	}
	all := hdrhistogram.New(1, histogramMicrosMax, histogramSigFigs)
	for _, h := range hists {
		all.Merge(h)
	}
	return loadResult{
		elapsed: elapsed, flows: flows.Load(), dropped: dropped, hist: all, clientCPU: cpu, serverCPU: serverCPU,
		firstErr: firstErr, lastReserve: lastReserve.Load(),
	}
}

// startProgress draws the live progress line on cfg.Progress until stop is
// closed; the returned channel closes when it has finished drawing.
func startProgress(cfg Config, info Info, l *Ledger, flows func() int64, t0 time.Time, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	if cfg.Progress == nil {
		close(done)
		return done
	}
	label := info.Name
	if info.AppendFsync != "" {
		label += "(" + info.AppendFsync + ")"
	}
	barMax := cfg.Duration.Milliseconds()
	byCount := cfg.Requests > 0
	if byCount {
		barMax = cfg.Requests
	}
	bar := progressbar.NewOptions64(barMax,
		progressbar.OptionSetWriter(cfg.Progress),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(progressInterval/2),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetDescription(fmt.Sprintf("%-22s", label)),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(cfg.Progress) }),
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				_ = bar.Finish()
				return
			case <-tick.C:
			}
			el := time.Since(t0)
			n := l.attempts.Load()
			bar.Describe(fmt.Sprintf("%-22s %9.0f req/s  ok %d  err %d", label,
				float64(n)/el.Seconds(), l.ok.Load(), l.failed.Load()+l.unknown.Load()))
			if byCount {
				_ = bar.Set64(min(flows(), barMax))
			} else {
				_ = bar.Set64(min(el.Milliseconds(), barMax))
			}
		}
	}()
	return done
}
