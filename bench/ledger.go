package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
)

// skuBook is what the harness saw acknowledged for one SKU, in units.
type skuBook struct {
	kindUnits // acknowledged
	// unknown holds, per kind, the quantity of requests with no definite
	// answer: each may or may not have changed the stock by that much. Kept
	// per kind because each kind moves the figures one way only (an unknown
	// deduct can lower available, never raise it).
	unknown        kindUnits
	changes        atomic.Int64 // acknowledged changes (flow records expected)
	unknownChanges atomic.Int64
	// committed is a lower bound of what the store holds committed (sold,
	// and reserved where reservations do not expire) at every moment of the
	// run: a take counts from its acknowledgement (it was applied before),
	// a release from when it is sent (it may be applied as soon as it
	// arrives). Above stock at any moment is an oversell, even when later
	// returns or cancellations bring the final books back within stock.
	committed atomic.Int64
	overPeak  atomic.Int64 // the most units committed beyond stock at once
}

// kindUnits counts units per kind of step.
type kindUnits struct {
	deduct, reserve, confirm, cancel, ret atomic.Int64
}

// Ledger records every answer of a run; verification compares it with the
// target's store. Safe for concurrent use.
type Ledger struct {
	cfg     Config
	skus    []skuBook
	limit   bool // track per-user holdings (deduct-only scenarios with a limit)
	expires bool // the target releases unconfirmed reservations itself (Info.Expires)

	userMu   [64]sync.Mutex
	userHeld [64]map[uint64]int64

	sampleN  atomic.Int64
	sampleMu sync.Mutex
	sample   []ackedStep

	attempts, ok, rejected, failed, unknown atomic.Int64
}

type ackedStep struct {
	step Step
	seq  uint64
}

// NewLedger returns an empty ledger for a workload of cfg.
func NewLedger(cfg Config) *Ledger {
	l := &Ledger{cfg: cfg, skus: make([]skuBook, cfg.SKUs)}
	l.limit = cfg.LimitPerUser > 0 && (cfg.Scenario == ScenarioHot || cfg.Scenario == ScenarioZipf)
	if l.limit {
		for i := range l.userHeld {
			l.userHeld[i] = make(map[uint64]int64)
		}
	}
	return l
}

// commitSign tells how a step of kind k moves what the store holds
// committed: +1 a take, -1 a release, 0 neither. Where reservations expire,
// only sales count (the store may reuse an unconfirmed reservation's stock
// after its TTL).
func (l *Ledger) commitSign(k Kind) int64 {
	switch k {
	case KindDeduct:
		return 1
	case KindReserve:
		if !l.expires {
			return 1
		}
	case KindConfirm:
		if l.expires {
			return 1
		}
	case KindCancel:
		if !l.expires {
			return -1
		}
	case KindReturn:
		return -1
	}
	return 0
}

// commit adds qty units (negative: removes them) to what SKU b holds
// committed, and notes how far beyond stock that went.
func (l *Ledger) commit(b *skuBook, qty int64) {
	over := b.committed.Add(qty) - l.cfg.Stock
	for over > 0 {
		old := b.overPeak.Load()
		if old >= over || b.overPeak.CompareAndSwap(old, over) {
			break
		}
	}
}

// sending accounts for step s before it is sent: a release may be applied
// as soon as it arrives.
func (l *Ledger) sending(s *Step) {
	if l.commitSign(s.Kind) < 0 {
		l.commit(&l.skus[s.SKUIndex], -s.Qty)
	}
}

// Record accounts for the answer o to step s.
func (l *Ledger) Record(s *Step, o Outcome) {
	b := &l.skus[s.SKUIndex]
	l.attempts.Add(1)
	switch o.Status {
	case StatusRejected, StatusFailed:
		if o.Status == StatusRejected {
			l.rejected.Add(1)
		} else {
			l.failed.Add(1)
		}
		if l.commitSign(s.Kind) < 0 {
			l.commit(b, s.Qty) // a release not applied: undo what sending counted
		}
		return
	case StatusUnknown:
		l.unknown.Add(1)
		b.unknown.add(s.Kind, s.Qty)
		b.unknownChanges.Add(1)
		return
	case StatusOK:
	default:
		panic(fmt.Sprintf("bench: step %s %s answered with status %d", s.Kind, s.RequestID, o.Status))
	}
	l.ok.Add(1)
	b.changes.Add(1)
	b.add(s.Kind, s.Qty)
	if l.commitSign(s.Kind) > 0 {
		l.commit(b, s.Qty)
	}
	if l.limit && s.Kind == KindDeduct {
		key := uint64(s.User)<<20 | uint64(s.SKUIndex)
		sh := key % uint64(len(l.userMu))
		l.userMu[sh].Lock()
		l.userHeld[sh][key] += s.Qty
		l.userMu[sh].Unlock()
	}
	if s.Kind == KindDeduct || s.Kind == KindReserve {
		// A uniform sample of every acknowledged take (reservoir sampling),
		// so that the replays check the whole run, not only its start.
		if n := l.sampleN.Add(1); n <= verifySampleMax || rand.Int64N(n) < verifySampleMax {
			l.sampleMu.Lock()
			if len(l.sample) < verifySampleMax {
				l.sample = append(l.sample, ackedStep{*s, o.Seq})
			} else {
				l.sample[rand.IntN(verifySampleMax)] = ackedStep{*s, o.Seq}
			}
			l.sampleMu.Unlock()
		}
	}
}

// Successes is the number of acknowledged requests.
func (l *Ledger) Successes() int64 { return l.ok.Load() }

// Verification is the outcome of the check after a run.
type Verification struct {
	Verified bool
	Skipped  bool   // nothing to verify (noop)
	Oversold int64  // units acknowledged beyond stock, or below zero in the store
	Detail   string // what failed, or what was checked
}

func (v Verification) String() string {
	switch {
	case v.Skipped:
		return "n/a"
	case v.Verified:
		return "ok"
	}
	return "FAIL"
}

// problems collects verification failures, bounded so a report stays short.
type problems struct {
	list []string
	n    int
}

const problemsShownMax = 5

func (p *problems) addf(format string, args ...any) {
	p.n++
	if len(p.list) < problemsShownMax {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *problems) String() string {
	s := strings.Join(p.list, "; ")
	if p.n > len(p.list) {
		s += fmt.Sprintf("; and %d more", p.n-len(p.list))
	}
	return s
}

// add counts qty units of kind.
func (u *kindUnits) add(k Kind, qty int64) {
	switch k {
	case KindDeduct:
		u.deduct.Add(qty)
	case KindReserve:
		u.reserve.Add(qty)
	case KindConfirm:
		u.confirm.Add(qty)
	case KindCancel:
		u.cancel.Add(qty)
	case KindReturn:
		u.ret.Add(qty)
	default:
		panic(fmt.Sprintf("bench: step kind %v", k))
	}
}

// span is the range a store's figure may take: exactly want when every
// answer was definite, wider by what the unknown outcomes could have moved
// it, in the direction each could move it.
type span struct{ lo, hi int64 }

func (s span) has(v int64) bool { return s.lo <= v && v <= s.hi }

func (s span) String() string {
	if s.lo == s.hi {
		return fmt.Sprint(s.lo)
	}
	return fmt.Sprintf("%d..%d", s.lo, s.hi)
}

// verify compares the store (obs, one per SKU of the workload) with the
// ledger. expires: the target released every unconfirmed reservation after
// its TTL (the caller waited for that).
func (l *Ledger) verify(info Info, obs []Observed) Verification {
	var p problems
	var oversold int64
	stock := l.cfg.Stock
	var recordsSeen, recordsWant, recordsSlack int64
	recordsKept := false
	for i := range l.skus {
		b := &l.skus[i]
		o := obs[i]
		d, r, c, x, rt := b.deduct.Load(), b.reserve.Load(), b.confirm.Load(), b.cancel.Load(), b.ret.Load()
		ud, ur, uc, ux, urt := b.unknown.deduct.Load(), b.unknown.reserve.Load(), b.unknown.confirm.Load(),
			b.unknown.cancel.Load(), b.unknown.ret.Load()
		sold := d + c - rt
		held := r - c - x // reservations still held by the ledger's account
		// Each unknown outcome may or may not have happened: takes (deduct,
		// reserve, confirm) can only have lowered available or raised sold,
		// releases (cancel, return) only the other way.
		avail := span{stock - d - r + x + rt - ud - ur, stock - d - r + x + rt + ux + urt}
		reserved := span{held - uc - ux, held + ur}
		soldSpan := span{sold - urt, sold + ud + uc}
		if info.Expires {
			// Every reservation not confirmed was released after its TTL,
			// except one with an unknown outcome, which may have been
			// applied after the last acknowledged one (the harness waits
			// for those only) and still be held.
			avail = span{stock - d - c + rt - ud - uc - ur, stock - d - c + rt + urt}
			reserved = span{0, ur}
		}
		// Acknowledged beyond stock: the cardinal sin, whatever the store says.
		// (A target that expires reservations may reuse their stock, so only
		// its sales count there.)
		committed := sold + held
		if info.Expires {
			committed = sold
		}
		// Oversold units: acknowledged beyond stock, or the store below zero
		// (usually the same units seen twice: count the larger).
		peak := b.overPeak.Load()
		over := max(committed-stock, -o.Available, peak, 0)
		oversold += over
		if committed > stock {
			p.addf("sku %d: %d units acknowledged beyond stock %d", i, committed-stock, stock)
		} else if peak > 0 {
			p.addf("sku %d: %d units acknowledged beyond stock %d at one moment of the run (released later)", i, peak, stock)
		}
		if o.Available < 0 {
			p.addf("sku %d: available %d below zero", i, o.Available)
		}
		if !avail.has(o.Available) {
			p.addf("sku %d: available %d, want %v (initial %d - taken + released, widened by unknown outcomes)", i, o.Available, avail, stock)
		}
		if o.Reserved >= 0 && !reserved.has(o.Reserved) {
			p.addf("sku %d: reserved %d, want %v", i, o.Reserved, reserved)
		}
		if o.Sold >= 0 && !soldSpan.has(o.Sold) {
			p.addf("sku %d: sold %d, want %v acknowledged", i, o.Sold, soldSpan)
		}
		if o.Records >= 0 {
			recordsKept = true
			recordsSeen += o.Records
		}
		recordsWant += b.changes.Load()
		recordsSlack += b.unknownChanges.Load()
	}
	if recordsKept && (recordsSeen < recordsWant || recordsSeen > recordsWant+recordsSlack) {
		p.addf("flow records %d, want %d acknowledged changes (+ up to %d unknown)", recordsSeen, recordsWant, recordsSlack)
	}
	// The hot scenario sells exactly min(stock, attempts) when every answer
	// was definite and no limit interfered: no overselling, no underselling.
	if l.cfg.Scenario == ScenarioHot && l.failed.Load() == 0 && l.unknown.Load() == 0 && l.cfg.LimitPerUser == 0 {
		b := &l.skus[0]
		want := min(stock/l.cfg.Qty*l.cfg.Qty, l.attempts.Load()*l.cfg.Qty)
		if got := b.deduct.Load(); got != want {
			p.addf("hot: %d units sold, want min(stock, attempts) = %d", got, want)
		}
	}
	if l.limit {
		for i := range l.userHeld {
			for key, held := range l.userHeld[i] {
				if held > l.cfg.LimitPerUser {
					p.addf("user %d sku %d: %d units acknowledged, limit %d", key>>20, key&(1<<20-1), held, l.cfg.LimitPerUser)
				}
			}
		}
	}
	v := Verification{Verified: p.n == 0, Oversold: oversold}
	if p.n > 0 {
		v.Detail = p.String()
	} else {
		v.Detail = fmt.Sprintf("%d SKUs match the acknowledged changes", len(l.skus))
		if recordsKept {
			v.Detail += fmt.Sprintf(", %d flow records", recordsSeen)
		}
	}
	return v
}
