package bench

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Scenario names.
const (
	ScenarioHot     = "hot"     // one SKU, every buyer tries to buy it
	ScenarioZipf    = "zipf"    // many SKUs, popularity skewed by a Zipf law
	ScenarioReserve = "reserve" // reserve, then confirm, cancel or let expire
	ScenarioReturns = "returns" // sales, some followed by a partial return
)

// Limits on a workload's shape. Config.Validate rejects values beyond them.
const (
	SKUsMax         = 100_000
	BuyersMax       = 10_000_000
	StockMax        = 1_000_000_000_000 // the engine's TotalMax
	QtyMax          = 1_000_000
	zipfExponentMin = 1.0001
	reserveTTLMin   = time.Second
	reserveTTLMax   = time.Minute
)

// Kind is the kind of one request.
type Kind uint8

// The request kinds. Every target implements all of them; KindPing is what
// the noop target sends for whatever step it is given.
const (
	KindDeduct Kind = iota + 1
	KindReserve
	KindConfirm
	KindCancel
	KindReturn
)

func (k Kind) String() string {
	switch k {
	case KindDeduct:
		return "deduct"
	case KindReserve:
		return "reserve"
	case KindConfirm:
		return "confirm"
	case KindCancel:
		return "cancel"
	case KindReturn:
		return "return"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Step is one request. A single item per request: SKU and Qty.
type Step struct {
	Kind Kind
	// RequestID names the sale or reservation: the request's own id for
	// deduct and reserve, the reservation's for confirm and cancel, the sale's
	// for return.
	RequestID string
	ReturnID  string // return only
	UserID    string
	User      int // buyer index, 0..Buyers-1
	SKU       string
	SKUIndex  int
	Qty       int64
	TTL       time.Duration // reserve only
}

// Flow is one unit of work: one or two requests, the second sent only when
// the first succeeded, by the same worker.
type Flow struct {
	Index uint64
	Steps [2]Step
	N     int // steps in use, 1 or 2
}

// Workload turns flow indexes into flows; Flow is a pure function of the
// configuration and the index, so every target gets the identical sequence
// (only the id prefix differs, so that ids are fresh in a store that
// persists between runs). Safe for concurrent use once built.
type Workload struct {
	cfg    Config
	prefix string
	skus   []string
	cdf    []float64 // zipf only: cumulative popularity of SKU ranks
}

// NewWorkload builds the workload of cfg; prefix makes ids and SKU names
// unique to one target run. cfg must be valid (Config.Validate).
func NewWorkload(cfg Config, prefix string) *Workload {
	w := &Workload{cfg: cfg, prefix: prefix, skus: make([]string, cfg.SKUs)}
	for i := range w.skus {
		w.skus[i] = prefix + "-" + cfg.Scenario + "-" + strconv.Itoa(i)
	}
	if cfg.Scenario == ScenarioZipf {
		w.cdf = make([]float64, cfg.SKUs)
		sum := 0.0
		for i := range w.cdf {
			sum += 1 / math.Pow(float64(i+1), cfg.ZipfExponent)
			w.cdf[i] = sum
		}
		for i := range w.cdf {
			w.cdf[i] /= sum
		}
	}
	return w
}

// SKUs returns the SKU ids of the catalog; each starts with Config.Stock.
func (w *Workload) SKUs() []string { return w.skus }

// Config returns the configuration the workload was built from.
func (w *Workload) Config() Config { return w.cfg }

// splitmix64 is a stateless mixer: the same input gives the same output, so a
// flow's random choices depend on (seed, index) only.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (w *Workload) rand(idx uint64, salt uint64) uint64 {
	return splitmix64(uint64(w.cfg.Seed)*0x9e3779b97f4a7c15 ^ splitmix64(idx*4+salt))
}

// unit maps a random word to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// Flow fills f with flow idx.
func (w *Workload) Flow(idx uint64, f *Flow) {
	c := &w.cfg
	user := int(w.rand(idx, 0) % uint64(c.Buyers))
	sku := 0
	switch {
	case c.Scenario == ScenarioZipf:
		sku = sort.SearchFloat64s(w.cdf, unit(w.rand(idx, 1)))
		if sku >= len(w.skus) {
			sku = len(w.skus) - 1
		}
	case c.SKUs > 1:
		sku = int(w.rand(idx, 1) % uint64(c.SKUs))
	}
	id := w.prefix + "-r" + strconv.FormatUint(idx, 10)
	first := Step{
		Kind: KindDeduct, RequestID: id, UserID: "u" + strconv.Itoa(user), User: user,
		SKU: w.skus[sku], SKUIndex: sku, Qty: c.Qty,
	}
	f.Index, f.N = idx, 1
	f.Steps[1] = Step{}
	switch c.Scenario {
	case ScenarioReserve:
		first.Kind, first.TTL = KindReserve, c.ReserveTTL
		u := unit(w.rand(idx, 2))
		switch {
		case u < c.ConfirmRatio:
			f.Steps[1], f.N = first, 2
			f.Steps[1].Kind, f.Steps[1].TTL = KindConfirm, 0
		case u < c.ConfirmRatio+c.CancelRatio:
			f.Steps[1], f.N = first, 2
			f.Steps[1].Kind, f.Steps[1].TTL = KindCancel, 0
		}
	case ScenarioReturns:
		if unit(w.rand(idx, 2)) < c.ReturnRatio {
			f.Steps[1], f.N = first, 2
			f.Steps[1].Kind = KindReturn
			f.Steps[1].ReturnID = w.prefix + "-x" + strconv.FormatUint(idx, 10)
			f.Steps[1].Qty = 1 + int64(w.rand(idx, 3)%uint64(c.Qty)) // partial when Qty > 1
		}
	}
	f.Steps[0] = first
}

// Validate checks the workload part of a configuration.
func (c *Config) validateWorkload() error {
	switch c.Scenario {
	case ScenarioHot:
		if c.SKUs != 1 {
			return fmt.Errorf("%w: the hot scenario has exactly one SKU (skus=%d)", ErrConfig, c.SKUs)
		}
	case ScenarioZipf, ScenarioReserve, ScenarioReturns:
	default:
		return fmt.Errorf("%w: unknown scenario %q (hot, zipf, reserve, returns)", ErrConfig, c.Scenario)
	}
	switch {
	case c.SKUs < 1 || c.SKUs > SKUsMax:
		return fmt.Errorf("%w: skus %d not in 1..%d", ErrConfig, c.SKUs, SKUsMax)
	case c.Buyers < 1 || c.Buyers > BuyersMax:
		return fmt.Errorf("%w: buyers %d not in 1..%d", ErrConfig, c.Buyers, BuyersMax)
	case c.Stock < 0 || c.Stock > StockMax:
		return fmt.Errorf("%w: stock %d not in 0..%d", ErrConfig, c.Stock, int64(StockMax))
	case c.Qty < 1 || c.Qty > QtyMax:
		return fmt.Errorf("%w: qty %d not in 1..%d", ErrConfig, c.Qty, QtyMax)
	case c.LimitPerUser < 0 || c.LimitPerUser > QtyMax:
		return fmt.Errorf("%w: limit per user %d not in 0..%d", ErrConfig, c.LimitPerUser, QtyMax)
	case !finite(c.ZipfExponent):
		return fmt.Errorf("%w: zipf exponent %g is not a finite number", ErrConfig, c.ZipfExponent)
	case c.Scenario == ScenarioZipf && c.ZipfExponent < zipfExponentMin:
		return fmt.Errorf("%w: zipf exponent %g below %g", ErrConfig, c.ZipfExponent, zipfExponentMin)
	case c.Scenario == ScenarioReserve && (c.ReserveTTL < reserveTTLMin || c.ReserveTTL > reserveTTLMax):
		return fmt.Errorf("%w: reserve ttl %v not in %v..%v", ErrConfig, c.ReserveTTL, reserveTTLMin, reserveTTLMax)
	case !finite(c.ConfirmRatio) || !finite(c.CancelRatio) ||
		c.ConfirmRatio < 0 || c.CancelRatio < 0 || c.ConfirmRatio+c.CancelRatio > 1:
		return fmt.Errorf("%w: confirm ratio %g + cancel ratio %g must be within 0..1", ErrConfig, c.ConfirmRatio, c.CancelRatio)
	case !finite(c.ReturnRatio) || c.ReturnRatio < 0 || c.ReturnRatio > 1:
		return fmt.Errorf("%w: return ratio %g not in 0..1", ErrConfig, c.ReturnRatio)
	}
	return nil
}

// finite tells whether v is neither NaN nor infinite. Range checks alone let
// NaN through: every comparison with it is false.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
