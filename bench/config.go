package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Limits on a run. Config.Validate rejects values beyond them, so every load
// loop is bounded in count and in time.
const (
	ConcurrencyMax    = 4096
	RateMin           = 0.001      // flows per second: one per 1000 s (0 is the closed loop)
	RateMax           = 10_000_000 // flows per second
	DurationMax       = time.Hour
	RequestsMax       = 1_000_000_000 // flows per target run
	RequestTimeoutMax = 5 * time.Minute
	// RequestIDsMax is how many request ids the engines the harness starts
	// remember (engine.Options.RequestIDsMax, serve --request-ids-max): more
	// than a run acknowledges, so that any of its requests can be replayed.
	// Memory grows with the ids actually used (docs/benchmarks.md has the
	// bytes per id), not with this bound. Against a server of one's own
	// (--url), size its --request-ids-max likewise.
	RequestIDsMax = 1 << 25
	// verifySampleMax is how many acknowledged ids are replayed against a
	// flashsale target after its run.
	verifySampleMax = 256
)

// Errors returned by the harness.
var (
	// ErrConfig: the configuration is not valid; nothing ran.
	ErrConfig = errors.New("bench: bad configuration")
	// ErrVerificationFailed: a target oversold, lost an acknowledged change or
	// otherwise failed the check after its run.
	ErrVerificationFailed = errors.New("bench: verification failed")
	// ErrUnsupported: a target cannot run this configuration (for example a
	// per-user limit on a MySQL peer); its row is skipped.
	ErrUnsupported = errors.New("bench: not supported by this target")
)

// Config describes one load test. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	Scenario     string
	SKUs         int     // SKUs in the catalog (hot: exactly 1)
	Stock        int64   // initial stock of every SKU
	Qty          int64   // quantity of every sale or reservation
	Buyers       int     // distinct user ids, picked uniformly per flow
	LimitPerUser int64   // 0: none; else every SKU's per-user limit
	ZipfExponent float64 // zipf: popularity of rank r is 1/r^s
	ConfirmRatio float64 // reserve: share of reservations confirmed
	CancelRatio  float64 // reserve: share cancelled; the rest expire
	ReserveTTL   time.Duration
	ReturnRatio  float64 // returns: share of sales partly returned

	// Concurrency is the number of workers: the closed loop's in-flight
	// flows, and the open loop's bound on in-flight flows.
	Concurrency int
	// Rate > 0 selects the open loop: flows start on a fixed schedule of Rate
	// per second (RateMin..RateMax), and latency counts from the scheduled
	// time.
	Rate float64
	// Duration bounds each target's run; Requests, when > 0, bounds the
	// number of flows too (the run ends at whichever comes first).
	Duration       time.Duration
	Requests       int64
	RequestTimeout time.Duration
	Seed           int64

	// Prefix makes ids and SKU names unique to this invocation (a store such
	// as a running server keeps what earlier runs left). Empty: derived from
	// the clock.
	Prefix string
	// Progress receives the live progress line; nil: none.
	Progress io.Writer
	Logger   *slog.Logger // nil: silent
}

// DefaultConfig is a 10-second hot sale of 10 million units to 100,000
// buyers by 64 workers.
func DefaultConfig() Config {
	return Config{
		Scenario: ScenarioHot, SKUs: 1, Stock: 10_000_000, Qty: 1, Buyers: 100_000,
		ZipfExponent: 1.1, ConfirmRatio: 0.6, CancelRatio: 0.2, ReserveTTL: 2 * time.Second,
		ReturnRatio: 0.3, Concurrency: 64, Duration: 10 * time.Second,
		RequestTimeout: 10 * time.Second, Seed: 1,
	}
}

// Validate checks every field against its limit.
func (c *Config) Validate() error {
	if err := c.validateWorkload(); err != nil {
		return err
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > ConcurrencyMax:
		return fmt.Errorf("%w: concurrency %d not in 1..%d", ErrConfig, c.Concurrency, ConcurrencyMax)
	case !finite(c.Rate) || c.Rate < 0 || c.Rate > RateMax || c.Rate > 0 && c.Rate < RateMin:
		return fmt.Errorf("%w: rate %g: want 0 (closed loop) or %g..%d", ErrConfig, c.Rate, RateMin, RateMax)
	case c.Duration <= 0 || c.Duration > DurationMax:
		return fmt.Errorf("%w: duration %v not in (0, %v]", ErrConfig, c.Duration, DurationMax)
	case c.Requests < 0 || c.Requests > RequestsMax:
		return fmt.Errorf("%w: requests %d not in 0..%d", ErrConfig, c.Requests, RequestsMax)
	case c.RequestTimeout <= 0 || c.RequestTimeout > RequestTimeoutMax:
		return fmt.Errorf("%w: request timeout %v not in (0, %v]", ErrConfig, c.RequestTimeout, RequestTimeoutMax)
	case len(c.Prefix) > 24:
		return fmt.Errorf("%w: prefix %q longer than 24 bytes", ErrConfig, c.Prefix)
	}
	for _, r := range c.Prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_') {
			return fmt.Errorf("%w: prefix %q: only letters, digits, '.' and '_'", ErrConfig, c.Prefix)
		}
	}
	return nil
}

// Mode names the load mode, for reports.
func (c *Config) Mode() string {
	if c.Rate > 0 {
		return "open"
	}
	return "closed"
}
