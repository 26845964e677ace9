package engine

import (
	"fmt"

	"github.com/flashsale/flashsale/wal"
)

// This file is the pure core: SKU counters, request bookkeeping, the checks
// that decide a change, and fold, which applies a logged change. Nothing here
// knows of actors, Pebble or the wall clock: time is passed in as Unix ms.

// sku is one SKU's state. Live, it is owned by the SKU's actor; during
// recovery and snapshots, by the fold.
type sku struct {
	id                               string
	total, available, reserved, sold int64
	limit                            int64    // per-user limit, 0 = none
	users                            holdings // what each user holds (deducted or reserved, net of returns)
	// holds are units promised to multi-SKU requests between their prepare
	// and their record (live only; never logged, never snapshotted).
	holds []hold
}

type hold struct {
	requestID, user string
	qty             int64
}

func newSKU(id string) *sku { return &sku{id: id} }

// SKUState is a SKU as callers see it.
type SKUState struct {
	SKU          string `json:"sku"`
	Total        int64  `json:"total"`
	Available    int64  `json:"available"`
	Reserved     int64  `json:"reserved"`
	Sold         int64  `json:"sold"`
	SoldOut      bool   `json:"sold_out"`
	LimitPerUser int64  `json:"limit_per_user"`
}

func (s *sku) state() SKUState {
	return SKUState{SKU: s.id, Total: s.total, Available: s.available, Reserved: s.reserved,
		Sold: s.sold, SoldOut: s.available == 0, LimitPerUser: s.limit}
}

func (s *sku) held() (qty int64) {
	for _, h := range s.holds {
		qty += h.qty
	}
	return qty
}

func (s *sku) heldBy(user string) (qty int64) {
	for _, h := range s.holds {
		if h.user == user {
			qty += h.qty
		}
	}
	return qty
}

// checkTake decides whether user may take qty (deduct or reserve) now.
// Stock is checked before the per-user limit. A take without a user of a
// SKU with a limit is refused first: the caller checks that too, but a
// limit set since then would not count it.
func (s *sku) checkTake(user string, qty int64) error {
	free := s.available - s.held()
	switch {
	case s.limit > 0 && user == "":
		return badRequest("user_id: required, sku %s has a per-user limit", s.id)
	case free <= 0:
		return &ItemError{Err: ErrSoldOut, SKU: s.id, Available: max(free, 0)}
	case free < qty:
		return &ItemError{Err: ErrInsufficientStock, SKU: s.id, Available: free}
	case s.limit > 0 && s.users.get(user)+s.heldBy(user)+qty > s.limit:
		return &ItemError{Err: ErrUserLimitExceeded, SKU: s.id, Limit: s.limit}
	}
	return nil
}

// fits reports whether one item (qty) of a logged change of kind leaves the
// counters within the invariants, as apply asserts them. s is nil for a SKU
// that a set_total creates.
func (s *sku) fits(kind wal.Kind, qty int64) bool {
	var available, reserved, sold int64
	if s != nil {
		available, reserved, sold = s.available, s.reserved, s.sold
	}
	switch kind {
	case wal.KindSetTotal:
		return available+qty >= 0
	case wal.KindDeduct, wal.KindReserve:
		return qty <= available
	case wal.KindConfirm, wal.KindCancel, wal.KindExpire:
		return qty <= reserved
	case wal.KindReturn:
		return qty <= sold
	}
	return true
}

// checkSetTotal decides whether the total may become total.
func (s *sku) checkSetTotal(total int64) error {
	if total < s.reserved+s.sold+s.held() {
		return &ItemError{Err: ErrTotalBelowCommitted, SKU: s.id}
	}
	return nil
}

// apply applies one item of a logged change. It is the only code that changes
// the counters, and it asserts the invariants afterwards: a violation is a
// bug, so it panics with the values.
func (s *sku) apply(kind wal.Kind, user string, qty, limit int64) {
	switch kind {
	case wal.KindSetTotal:
		s.total += qty
		s.available += qty
		s.limit = limit
	case wal.KindRestock:
		s.total += qty
		s.available += qty
	case wal.KindDeduct:
		s.available -= qty
		s.sold += qty
		s.addUser(user, qty)
	case wal.KindReserve:
		s.available -= qty
		s.reserved += qty
		s.addUser(user, qty)
	case wal.KindConfirm:
		s.reserved -= qty
		s.sold += qty
	case wal.KindCancel, wal.KindExpire:
		s.reserved -= qty
		s.available += qty
		s.addUser(user, -qty)
	case wal.KindReturn:
		s.sold -= qty
		s.available += qty
		s.addUser(user, -qty)
	default:
		panic(fmt.Sprintf("engine: apply kind %v", kind))
	}
	if s.available < 0 || s.reserved < 0 || s.sold < 0 || s.total != s.available+s.reserved+s.sold {
		panic(fmt.Sprintf("engine: invariant broken on %s after %v %d: total %d available %d reserved %d sold %d",
			s.id, kind, qty, s.total, s.available, s.reserved, s.sold))
	}
	if invariantsOn {
		s.checkUsers()
	}
}

// checkLoaded checks a SKU read from a snapshot (held: the sum of its
// users' holdings) against the rules every state keeps.
func (s *sku) checkLoaded(held int64) error {
	in := func(v int64) bool { return v >= 0 && v <= wal.TotalMax }
	switch {
	case !wal.ValidID(s.id):
		return fmt.Errorf("bad sku id %q", s.id)
	case !in(s.total) || !in(s.available) || !in(s.reserved) || !in(s.sold) ||
		s.total != s.available+s.reserved+s.sold:
		return fmt.Errorf("sku %s breaks the invariants: total %d available %d reserved %d sold %d",
			s.id, s.total, s.available, s.reserved, s.sold)
	case s.limit < 0 || s.limit > wal.LimitMax:
		return fmt.Errorf("sku %s: limit %d", s.id, s.limit)
	case held > s.reserved+s.sold:
		return fmt.Errorf("sku %s: users hold %d, more than reserved %d + sold %d", s.id, held, s.reserved, s.sold)
	}
	return nil
}

// checkUsers is an expensive invariant (tests only): what users hold is part
// of what is reserved or sold, and no holding is negative.
func (s *sku) checkUsers() {
	var held int64
	s.users.each(func(u string, q int64) {
		if q <= 0 {
			panic(fmt.Sprintf("engine: sku %s: user %s holds %d", s.id, u, q))
		}
		held += q
	})
	if held > s.reserved+s.sold {
		panic(fmt.Sprintf("engine: sku %s: users hold %d, reserved+sold %d", s.id, held, s.reserved+s.sold))
	}
}

func (s *sku) addUser(user string, qty int64) {
	if user == "" {
		return
	}
	s.users.add(user, qty)
}

func (s *sku) addHold(requestID, user string, qty int64) {
	s.holds = append(s.holds, hold{requestID, user, qty})
}

// dropHold removes requestID's hold and reports whether there was one.
func (s *sku) dropHold(requestID string) bool {
	for i, h := range s.holds {
		if h.requestID == requestID {
			s.holds = append(s.holds[:i], s.holds[i+1:]...)
			return true
		}
	}
	return false
}

// Request statuses.
const (
	statusPending  uint8 = iota // decided, record not yet durable
	statusDeducted              // a deduct, durable
	statusReserved              // a reservation, durable, not yet settled
	statusConfirmed
	statusCancelled
	statusExpired
	statusDone // a restock or return id
)

// request is a copy of what the engine remembers of a deduct or reservation
// (and, with kind KindRestock or KindReturn, of a restock or return id):
// enough to replay its outcome and to judge confirms, cancels and returns.
// The table keeps these facts pointer-free (table.go); a request is the
// plain Go form that callers and tests read.
type request struct {
	id       string
	kind     wal.Kind
	status   uint8
	busy     bool // a confirm, cancel, expire or return of it is in flight
	user     string
	hash     uint64 // the body hash
	seq      uint64 // the record that made it
	doneMs   int64  // when it was decided (the idempotency window counts from here)
	expires  int64  // reservations: Unix ms
	items    []wal.Item
	returned []int64 // per item, what returns gave back (nil: nothing)
	// settleSeq is the record that confirmed, cancelled or expired it.
	settleSeq uint64
}

// soldQty is what request r has sold of item i and not yet had returned.
func (r *request) soldQty(i int) int64 {
	var sold int64
	switch {
	case r.kind == wal.KindDeduct && r.status == statusDeducted:
		sold = r.items[i].Qty
	case r.kind == wal.KindReserve && r.status == statusConfirmed:
		sold = r.items[i].Qty
	default:
		return 0
	}
	if r.returned != nil {
		sold -= r.returned[i]
	}
	return sold
}

func (r *request) itemIndex(skuID string) int {
	for i, it := range r.items {
		if it.SKU == skuID {
			return i
		}
	}
	return -1
}

// State is the whole engine state as a plain value: what recovery and
// snapshots build by folding the log. Fold is deterministic: the same records
// in the same order give the same State.
type State struct {
	Seq  uint64 // the last record folded
	skus map[string]*sku
	// The request tables are the live engine's own type: recovery hands
	// them to the engine as they are, without copying millions of ids.
	requests *table // deducts and reservations
	restocks *table
	returns  *table
}

// NewState returns an empty State that remembers up to
// RequestIDsMaxDefault ids per namespace.
func NewState() *State { return newState(RequestIDsMaxDefault) }

func newState(idsMax int) *State {
	return &State{skus: map[string]*sku{}, requests: newTable(idsMax),
		restocks: newTable(idsMax), returns: newTable(idsMax)}
}

// SKUs returns every SKU's state, in no particular order.
func (st *State) SKUs() []SKUState {
	out := make([]SKUState, 0, len(st.skus))
	for _, s := range st.skus {
		out = append(out, s.state())
	}
	return out
}

// SKU returns one SKU's state.
func (st *State) SKU(id string) (SKUState, bool) {
	s, ok := st.skus[id]
	if !ok {
		return SKUState{}, false
	}
	return s.state(), true
}

// Fold applies the record with sequence number seq. The record must be valid
// (wal.Record.Decode checks) and must follow the previous one; a record that
// does not fit the state (a sale of an unknown SKU, or of more than it has
// available) is corruption and returns an error without changing anything.
func (st *State) Fold(seq uint64, r *wal.Record) error {
	if seq <= st.Seq {
		return fmt.Errorf("engine: fold seq %d after %d", seq, st.Seq)
	}
	for _, it := range r.Items {
		s, ok := st.skus[it.SKU]
		if !ok && r.Kind != wal.KindSetTotal {
			return fmt.Errorf("engine: record %d (%v) names unknown sku %q", seq, r.Kind, it.SKU)
		}
		if !s.fits(r.Kind, it.Qty) {
			var have SKUState
			if s != nil {
				have = s.state()
			}
			return fmt.Errorf("engine: record %d (%v) of %d does not fit sku %s: available %d reserved %d sold %d",
				seq, r.Kind, it.Qty, it.SKU, have.Available, have.Reserved, have.Sold)
		}
	}
	switch r.Kind {
	case wal.KindConfirm, wal.KindCancel, wal.KindExpire:
		if req, ok := st.requests.get(r.RequestID); !ok || req.kind != wal.KindReserve || req.status != statusReserved {
			return fmt.Errorf("engine: record %d settles %q, which is not an open reservation", seq, r.RequestID)
		}
	case wal.KindReturn:
		req, ok := st.requests.get(r.RefID)
		if !ok {
			// The live engine checked this return against its sale, but
			// the sale may be forgotten here: the snapshotter forgets on
			// its own clock, and a reload forgets what the window or the
			// id limit let go. The SKUs' counters still bound it.
			for _, it := range r.Items {
				if s := st.skus[it.SKU]; s.sold < it.Qty {
					return fmt.Errorf("engine: record %d returns %d of %s, which has sold %d (sale %q not remembered)",
						seq, it.Qty, it.SKU, s.sold, r.RefID)
				}
			}
			break
		}
		for _, it := range r.Items {
			i := req.itemIndex(it.SKU)
			if i < 0 || req.soldQty(i) < it.Qty {
				return fmt.Errorf("engine: record %d returns more of %s than %q sold", seq, it.SKU, r.RefID)
			}
		}
	}
	for _, it := range r.Items {
		s := st.skus[it.SKU]
		if s == nil {
			s = newSKU(it.SKU)
			st.skus[it.SKU] = s
		}
		s.apply(r.Kind, r.UserID, it.Qty, r.LimitPerUser)
	}
	st.Seq = seq
	st.remember(seq, r)
	return nil
}

// remember updates the request bookkeeping for a folded record (checked by
// Fold before anything changed).
func (st *State) remember(seq uint64, r *wal.Record) {
	switch r.Kind {
	case wal.KindDeduct, wal.KindReserve:
		st.requests.insertRecord(seq, r)
	case wal.KindConfirm:
		st.requests.settleFolded(r.RequestID, statusConfirmed, seq)
	case wal.KindCancel:
		st.requests.settleFolded(r.RequestID, statusCancelled, seq)
	case wal.KindExpire:
		st.requests.settleFolded(r.RequestID, statusExpired, seq)
	case wal.KindReturn:
		if found, ok := st.requests.returnFolded(r.RefID, r.Items); found && !ok {
			panic(fmt.Sprintf("engine: record %d: return checked, then refused", seq))
		}
		st.returns.insertRecord(seq, r)
	case wal.KindRestock:
		st.restocks.insertRecord(seq, r)
	}
}
