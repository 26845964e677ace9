package engine

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"sync"
)

// tableShards is the number of independently locked parts of a table. A
// power of two; 64 keeps lock contention negligible on the machines we target.
const tableShards = 64

var tableSeed = maphash.MakeSeed()

// table remembers request ids (one namespace) for idempotency and for later
// confirms, cancels and returns. Safe for concurrent use.
type table struct {
	shards [tableShards]tableShard
	// perShardMax bounds each shard: at the bound the oldest finished ids are
	// forgotten first (the effective idempotency window shrinks; see Options).
	perShardMax int
}

type tableShard struct {
	mu    sync.Mutex
	m     map[string]*request
	order []string // ids in the order they finished, oldest first (may name forgotten ids)
	head  int
	_     [40]byte // keep shards on separate cache lines
}

func newTable(idsMax int) *table {
	t := &table{perShardMax: max(idsMax/tableShards, 1)}
	for i := range t.shards {
		t.shards[i].m = map[string]*request{}
	}
	return t
}

// reserve sizes an empty table for n ids (recovery), so that loading does not
// rehash the shards over and over.
func (t *table) reserve(n int) {
	for i := range t.shards {
		sh := &t.shards[i]
		if len(sh.m) == 0 {
			sh.m = make(map[string]*request, n/tableShards+n/(4*tableShards))
			sh.order = make([]string, 0, n/tableShards+n/(4*tableShards))
		}
	}
}

func (t *table) shard(id string) *tableShard {
	return &t.shards[maphash.String(tableSeed, id)&(tableShards-1)]
}

// claimResult says what claim found.
type claimResult uint8

const (
	claimed   claimResult = iota // r is a new pending entry, owned by the caller
	claimDone                    // r is a finished entry with the same id
)

// claim looks id up. A finished entry is returned as is (the caller judges
// replay or conflict). A pending one is waited for (bounded by ctx). Absent,
// fresh (whose id is the key) is inserted as a pending entry and returned.
func (t *table) claim(ctx context.Context, fresh *request) (*request, claimResult, error) {
	id := fresh.id
	sh := t.shard(id)
	for {
		sh.mu.Lock()
		r := sh.m[id]
		if r == nil {
			r = fresh
			r.status = statusPending
			sh.m[id] = r
			sh.mu.Unlock()
			return r, claimed, nil
		}
		if r.status != statusPending {
			sh.mu.Unlock()
			return r, claimDone, nil
		}
		if err := sh.waitLocked(ctx, r); err != nil {
			return nil, 0, err
		}
	}
}

// waitLocked releases sh.mu, waits until r is no longer pending or busy (or
// ctx ends), and returns with sh.mu released.
func (sh *tableShard) waitLocked(ctx context.Context, r *request) error {
	if r.wait == nil {
		r.wait = make(chan struct{})
	}
	ch := r.wait
	sh.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wakeLocked wakes whoever waits on r. Called with the shard's lock held.
func wakeLocked(r *request) {
	if r.wait != nil {
		close(r.wait)
		r.wait = nil
	}
}

// finish marks a pending entry durable (ok) or removes it (a failed request is
// not remembered: a retry is judged afresh).
func (t *table) finish(r *request, ok bool, seq uint64, status uint8) {
	sh := t.shard(r.id)
	sh.mu.Lock()
	if ok {
		r.seq, r.status = seq, status
		sh.order = append(sh.order, r.id)
	} else if sh.m[r.id] == r {
		delete(sh.m, r.id)
	}
	wakeLocked(r)
	sh.mu.Unlock()
}

// acquire finds a finished entry and marks it busy, waiting while it is
// pending or busy. It returns nil when id is unknown.
func (t *table) acquire(ctx context.Context, id string) (*request, error) {
	sh := t.shard(id)
	for {
		sh.mu.Lock()
		r := sh.m[id]
		if r == nil {
			sh.mu.Unlock()
			return nil, nil
		}
		if r.status != statusPending && !r.busy {
			r.busy = true
			sh.mu.Unlock()
			return r, nil
		}
		if err := sh.waitLocked(ctx, r); err != nil {
			return nil, err
		}
	}
}

// tryAcquire marks a finished, idle entry busy without waiting. It returns
// nil when id is unknown; again reports an entry that is pending or busy now.
func (t *table) tryAcquire(id string) (r *request, again bool) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r = sh.m[id]
	if r == nil {
		return nil, false
	}
	if r.status == statusPending || r.busy {
		return nil, true
	}
	r.busy = true
	return r, false
}

// release ends a busy period, applying change (under the lock) first.
func (t *table) release(r *request, change func(r *request)) {
	sh := t.shard(r.id)
	sh.mu.Lock()
	if change != nil {
		change(r)
	}
	r.busy = false
	wakeLocked(r)
	sh.mu.Unlock()
}

// insert puts a finished entry in place (fold and recovery), replacing any
// entry with its id.
func (t *table) insert(r *request) {
	sh := t.shard(r.id)
	sh.mu.Lock()
	if _, ok := sh.m[r.id]; !ok {
		sh.order = append(sh.order, r.id)
	}
	sh.m[r.id] = r
	sh.mu.Unlock()
}

// lookup returns the entry for id, or nil. For single-threaded users (the
// fold); live callers use claim and acquire.
func (t *table) lookup(id string) *request {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

// entries returns every finished entry, oldest first (by decision time, then
// seq), for a snapshot.
func (t *table) entries() []*request {
	var out []*request
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, r := range sh.m {
			if r.status != statusPending {
				out = append(out, r)
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b *request) int {
		if c := cmp.Compare(a.doneMs, b.doneMs); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return out
}

// forget drops finished ids decided before cutoffMs, and the oldest ones
// beyond the bound. Open reservations and busy entries are kept (moved to the
// back). Returns how many were forgotten.
func (t *table) forget(cutoffMs int64) (n int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		// Each id is looked at once at most, so kept entries moved to the
		// back cannot make this loop run forever.
		for steps := len(sh.order) - sh.head; steps > 0; steps-- {
			id := sh.order[sh.head]
			r := sh.m[id]
			if r != nil && r.doneMs >= cutoffMs && len(sh.m) <= t.perShardMax {
				break
			}
			sh.head++
			if r == nil {
				continue
			}
			if r.status == statusReserved || r.status == statusPending || r.busy {
				sh.order = append(sh.order, id)
				continue
			}
			delete(sh.m, id)
			n++
		}
		if sh.head > len(sh.order)/2 {
			sh.order = append(sh.order[:0], sh.order[sh.head:]...)
			sh.head = 0
		}
		sh.mu.Unlock()
	}
	return n
}

// len counts the remembered ids.
func (t *table) len() (n int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// get returns a copy of the entry for id (for tests and replays).
func (t *table) get(id string) (request, bool) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.m[id]
	if r == nil {
		return request{}, false
	}
	return *r, true
}
