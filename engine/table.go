package engine

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"unsafe"

	"github.com/flashsale/flashsale/wal"
)

// The request table remembers request ids (one namespace each: deducts and
// reservations, restocks, returns) for idempotency and for later confirms,
// cancels and returns. It holds millions of ids, so it is built to cost the
// garbage collector nothing: no entry holds a Go pointer. An entry is a
// fixed-size struct in a slab; its strings (id, user, items) are bytes in an
// arena of []byte chunks; the index maps a 64-bit hash of the id to a slot.
// The collector sees a few large pointer-free arrays instead of millions of
// small objects with pointers, which is what made the hot path slow before
// (see docs/benchmarks.md).
//
// Entries are reached by handle (shard, slot, generation). Blob bytes are read
// only under the shard's lock and copied out, so the table may move them
// (forget relocates the blobs of entries it keeps, letting old arena chunks
// go).

const (
	// tableShards is the number of independently locked parts of a table. A
	// power of two; 64 keeps lock contention negligible on the machines we
	// target.
	tableShards = 64
	// arenaChunkBytesMin and arenaChunkBytesMax bound the size of an arena
	// chunk: a shard's first chunk is small (an engine with few ids costs
	// little), later ones double up to the maximum.
	arenaChunkBytesMin = 4 << 10
	arenaChunkBytesMax = 256 << 10
)

var tableSeed = maphash.MakeSeed()

// idHash hashes an id for the index (a variable so that tests can force
// collisions).
var idHash = func(id string) uint64 { return maphash.String(tableSeed, id) }

// table is one namespace of remembered ids. Safe for concurrent use.
type table struct {
	shards [tableShards]tableShard
	// perShardMax bounds each shard: at the bound the oldest finished ids are
	// forgotten first (the effective idempotency window shrinks; see Options).
	perShardMax int
}

// Entry flags.
const (
	flagLive   uint8 = 1 << iota // the slot holds an entry
	flagBusy                     // a confirm, cancel, expiry or return of it is in flight
	flagWaited                   // somebody waits on it (see tableShard.waits)
)

// entry is one remembered id. No field is a Go pointer.
type entry struct {
	idHash    uint64
	bodyHash  uint64
	seq       uint64 // the record that made it
	settleSeq uint64 // the record that confirmed, cancelled or expired it
	doneMs    int64  // when it was decided (the idempotency window counts from here)
	expires   int64  // reservations: Unix ms
	blob      blobRef
	gen       uint32 // bumped when the slot is freed, so stale handles and order tokens are caught
	kind      wal.Kind
	status    uint8
	flags     uint8
	items     uint8
}

// blobRef locates an entry's bytes in its shard's arena. The blob is: the id
// (length byte, bytes), the user (likewise), then per item the SKU id (length
// byte, bytes), the qty and what returns gave back (8 bytes each,
// little-endian).
type blobRef struct {
	chunk, off, n uint32
}

// handle names an entry held by a caller (pending or busy).
type handle struct {
	shard uint32
	slot  uint32
	gen   uint32
}

// tableShard is one part of a table, padded to whole cache lines so that two
// cores working on neighbouring shards do not share a line.
type tableShard struct {
	tableShardFields
	_ [(64 - unsafe.Sizeof(tableShardFields{})%64) % 64]byte
}

type tableShardFields struct {
	// The fields a claim and a finish touch come first, so that they share
	// as few cache lines as possible.
	mu    sync.Mutex
	count int // live entries
	index idIndex
	slab  slab
	arena arena
	free  []uint32 // free slots
	// order holds the finished entries as tokens (gen<<32 | slot) in the
	// order they finished, oldest first from head. A token whose entry is
	// gone (its generation moved on) is skipped.
	order []uint64
	head  int
	// waits holds a channel per slot that somebody waits on (rare: a retry
	// racing its original, a confirm racing a cancel).
	waits map[uint32]chan struct{}
	// sink keeps the compiler from dropping claimBatch's touching loads.
	sink uint64
}

func newTable(idsMax int) *table {
	t := &table{perShardMax: max(idsMax/tableShards, 1)}
	return t
}

// reserve sizes an empty table for n ids (recovery), so that loading does not
// grow the shards over and over.
func (t *table) reserve(n int) {
	per := n/tableShards + n/(4*tableShards)
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.count == 0 && per > 0 {
			sh.index.init(per * indexLoadMax)
			sh.slab.pages = make([]*slabPage, 0, per/slabPageEntries+1)
			sh.order = make([]uint64, 0, per)
		}
	}
}

func (t *table) shardOf(h uint64) (*tableShard, uint32) {
	i := uint32(h & (tableShards - 1))
	return &t.shards[i], i
}

// reqInit is what an entry is made of. The strings are copied.
type reqInit struct {
	id, user  string
	kind      wal.Kind
	status    uint8
	bodyHash  uint64
	seq       uint64
	settleSeq uint64
	doneMs    int64
	expires   int64
	// Items: either items (a live request) or walItems (+ returned, from the
	// log or a snapshot).
	items    []Item
	walItems []wal.Item
	returned []int64
}

// reqInfo is what a claim reports of a finished entry with the same id.
type reqInfo struct {
	kind     wal.Kind
	status   uint8
	bodyHash uint64
	seq      uint64
	expires  int64
}

// claimResult says what claim found.
type claimResult uint8

const (
	claimed   claimResult = iota // a new pending entry, owned by the caller
	claimDone                    // a finished entry with the same id (see reqInfo)
	claimBusy                    // a pending entry with the same id (claimBatch only)
)

// claimOut is claimBatch's outcome for one id.
type claimOut struct {
	h    handle
	res  claimResult
	info reqInfo
}

// claimBatch is claim for many ids at once, without waiting: an id that is
// pending is reported claimBusy (the caller waits with waitIdle and tries
// again). Each shard is locked once for all of its ids, which keeps the hot
// path's table work on one core's cache. outs[i] is the outcome of ins[i];
// an id twice in ins is claimed by the first and busy for the second.
func (t *table) claimBatch(ins []reqInit, outs []claimOut) {
	const batchMax = outBatchRecordsMax
	n := len(ins)
	if n > batchMax {
		panic(fmt.Sprintf("engine: claimBatch of %d ids", n))
	}
	if n == 1 { // the common case with many SKUs: no grouping
		h := idHash(ins[0].id)
		sh, si := t.shardOf(h)
		sh.mu.Lock()
		outs[0] = sh.claimLocked(h, si, &ins[0])
		sh.mu.Unlock()
		return
	}
	// Group the ids by shard (a counting sort), so each shard is locked once.
	var hashes [batchMax]uint64
	var order [batchMax]uint8
	var start [tableShards + 1]uint16
	for i := range ins {
		hashes[i] = idHash(ins[i].id)
		start[hashes[i]&(tableShards-1)+1]++
	}
	for si := 1; si <= tableShards; si++ {
		start[si] += start[si-1]
	}
	next := start
	for i := range n {
		si := hashes[i] & (tableShards - 1)
		order[next[si]] = uint8(i)
		next[si]++
	}
	for si := range uint32(tableShards) {
		group := order[start[si]:start[si+1]]
		if len(group) == 0 {
			continue
		}
		sh := &t.shards[si]
		sh.mu.Lock()
		// First touch every index cell the group will probe, with loads
		// that do not depend on each other, so that their cache misses
		// overlap instead of coming one after the other.
		var sink uint64
		for _, j := range group {
			sink ^= sh.index.probe(hashes[j])
		}
		sh.sink = sink
		for _, j := range group {
			outs[j] = sh.claimLocked(hashes[j], si, &ins[j])
		}
		sh.mu.Unlock()
	}
}

// claimLocked is one id of claimBatch, with the shard's lock held.
func (sh *tableShard) claimLocked(h uint64, si uint32, in *reqInit) claimOut {
	if s, ok := sh.find(h, in.id); ok {
		e := sh.slab.at(s)
		if e.status == statusPending {
			return claimOut{res: claimBusy}
		}
		return claimOut{res: claimDone, info: reqInfo{kind: e.kind, status: e.status, bodyHash: e.bodyHash,
			seq: e.seq, expires: e.expires}}
	}
	s, gen := sh.add(h, in, statusPending)
	return claimOut{h: handle{shard: si, slot: s, gen: gen}, res: claimed}
}

// peek reports the finished entry of id (found), or that id is pending
// (busy), without waiting.
func (t *table) peek(id string) (info reqInfo, found, busy bool) {
	sh, _, s, ok := t.lockFind(id)
	defer sh.mu.Unlock()
	if !ok {
		return reqInfo{}, false, false
	}
	e := sh.slab.at(s)
	if e.status == statusPending {
		return reqInfo{}, false, true
	}
	return reqInfo{kind: e.kind, status: e.status, bodyHash: e.bodyHash, seq: e.seq, expires: e.expires}, true, false
}

// waitIdle waits until id is not pending (finished, or gone), or ctx ends.
func (t *table) waitIdle(ctx context.Context, id string) error {
	h := idHash(id)
	sh, _ := t.shardOf(h)
	for {
		sh.mu.Lock()
		s, ok := sh.find(h, id)
		if !ok || sh.slab.at(s).status != statusPending {
			sh.mu.Unlock()
			return nil
		}
		if err := sh.waitLocked(ctx, s); err != nil {
			return err
		}
	}
}

// claim looks in.id up. A finished entry is reported as is (the caller judges
// replay or conflict). A pending one is waited for (bounded by ctx). Absent,
// a pending entry is made from in and its handle returned.
func (t *table) claim(ctx context.Context, in *reqInit) (handle, claimResult, reqInfo, error) {
	h := idHash(in.id)
	sh, si := t.shardOf(h)
	for {
		sh.mu.Lock()
		s, ok := sh.find(h, in.id)
		if ok {
			e := sh.slab.at(s)
			if e.status != statusPending {
				info := reqInfo{kind: e.kind, status: e.status, bodyHash: e.bodyHash, seq: e.seq, expires: e.expires}
				sh.mu.Unlock()
				return handle{}, claimDone, info, nil
			}
			if err := sh.waitLocked(ctx, s); err != nil {
				return handle{}, 0, reqInfo{}, err
			}
			continue
		}
		s, gen := sh.add(h, in, statusPending)
		sh.mu.Unlock()
		return handle{shard: si, slot: s, gen: gen}, claimed, reqInfo{}, nil
	}
}

// finish marks a pending entry durable (ok) or removes it (a failed request is
// not remembered: a retry is judged afresh).
func (t *table) finish(h handle, ok bool, seq uint64, status uint8) {
	sh := &t.shards[h.shard]
	sh.mu.Lock()
	e := sh.held(h)
	if e.status != statusPending {
		panic(fmt.Sprintf("engine: finish of an entry in status %d", e.status))
	}
	if ok {
		e.seq, e.status = seq, status
		sh.order = append(sh.order, token(h.slot, e.gen))
		sh.wakeLocked(h.slot)
	} else {
		sh.remove(h.slot)
	}
	sh.mu.Unlock()
}

// acquire finds a finished entry, marks it busy and returns its handle and a
// copy, waiting while it is pending or busy. ok is false when id is unknown.
func (t *table) acquire(ctx context.Context, id string) (h handle, r request, ok bool, err error) {
	hash := idHash(id)
	sh, si := t.shardOf(hash)
	for {
		sh.mu.Lock()
		s, found := sh.find(hash, id)
		if !found {
			sh.mu.Unlock()
			return handle{}, request{}, false, nil
		}
		e := sh.slab.at(s)
		if e.status != statusPending && e.flags&flagBusy == 0 {
			e.flags |= flagBusy
			r = sh.copyOut(e)
			sh.mu.Unlock()
			return handle{shard: si, slot: s, gen: e.gen}, r, true, nil
		}
		if err := sh.waitLocked(ctx, s); err != nil {
			return handle{}, request{}, false, err
		}
	}
}

// tryAcquire marks a finished, idle entry busy without waiting. ok is false
// when id is unknown or (again) the entry is pending or busy now.
func (t *table) tryAcquire(id string) (h handle, r request, ok, again bool) {
	sh, si, s, found := t.lockFind(id)
	defer sh.mu.Unlock()
	if !found {
		return handle{}, request{}, false, false
	}
	e := sh.slab.at(s)
	if e.status == statusPending || e.flags&flagBusy != 0 {
		return handle{}, request{}, false, true
	}
	e.flags |= flagBusy
	return handle{shard: si, slot: s, gen: e.gen}, sh.copyOut(e), true, false
}

// release ends a busy period without a change.
func (t *table) release(h handle) { t.releaseWith(h, 0, 0, nil) }

// releaseSettled ends a busy period of a reservation that a confirm, cancel
// or expiry (record seq) settled.
func (t *table) releaseSettled(h handle, status uint8, seq uint64) {
	t.releaseWith(h, status, seq, nil)
}

// releaseReturned ends a busy period of a sale that items were returned from.
func (t *table) releaseReturned(h handle, items []wal.Item) { t.releaseWith(h, 0, 0, items) }

func (t *table) releaseWith(h handle, status uint8, seq uint64, returned []wal.Item) {
	sh := &t.shards[h.shard]
	sh.mu.Lock()
	e := sh.held(h)
	if e.flags&flagBusy == 0 {
		panic("engine: release of an entry that is not busy")
	}
	if status != 0 {
		e.status, e.settleSeq = status, seq
	}
	if returned != nil {
		sh.addReturned(e, returned)
	}
	e.flags &^= flagBusy
	sh.wakeLocked(h.slot)
	sh.mu.Unlock()
}

// insert puts a finished entry in place (fold and recovery), replacing any
// entry with its id (replaced reports one).
func (t *table) insert(in *reqInit) (replaced bool) {
	h := idHash(in.id)
	sh, _ := t.shardOf(h)
	sh.mu.Lock()
	if s, ok := sh.find(h, in.id); ok {
		sh.remove(s)
		replaced = true
	}
	s, gen := sh.add(h, in, in.status)
	sh.order = append(sh.order, token(s, gen))
	sh.mu.Unlock()
	return replaced
}

// insertRecord remembers the request that record r (at seq) made.
func (t *table) insertRecord(seq uint64, r *wal.Record) {
	in := reqInit{id: r.RequestID, user: r.UserID, kind: r.Kind, bodyHash: r.BodyHash, seq: seq,
		doneMs: r.TimeMs, expires: r.ExpiresAtMs, status: statusDone}
	switch r.Kind {
	case wal.KindDeduct:
		in.status, in.walItems = statusDeducted, r.Items
	case wal.KindReserve:
		in.status, in.walItems = statusReserved, r.Items
	}
	t.insert(&in)
}

// settleFolded marks the open reservation id settled by record seq (fold).
// It reports false, changing nothing, if id is not an open reservation.
func (t *table) settleFolded(id string, status uint8, seq uint64) bool {
	sh, _, s, ok := t.lockFind(id)
	defer sh.mu.Unlock()
	if !ok {
		return false
	}
	e := sh.slab.at(s)
	if e.kind != wal.KindReserve || e.status != statusReserved {
		return false
	}
	e.status, e.settleSeq = status, seq
	return true
}

// returnFolded adds items to what sale id had returned (fold). found is
// false if id is not remembered; ok is false, changing nothing, if it is not
// or any item exceeds what is left of the sale.
func (t *table) returnFolded(id string, items []wal.Item) (found, ok bool) {
	sh, _, s, found := t.lockFind(id)
	defer sh.mu.Unlock()
	if !found {
		return false, false
	}
	e := sh.slab.at(s)
	r := sh.copyOut(e)
	for _, it := range items {
		if i := r.itemIndex(it.SKU); i < 0 || r.soldQty(i) < it.Qty {
			return true, false
		}
	}
	sh.addReturned(e, items)
	return true, true
}

// finishedKey locates a finished entry and orders it for a snapshot.
type finishedKey struct {
	doneMs int64
	seq    uint64
	shard  uint32
	slot   uint32
}

// finished returns where every finished entry is, oldest first (by decision
// time, then seq): a snapshot writes them in this order so that a reload
// keeps forgetting in order.
func (t *table) finished() []finishedKey {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += sh.count
		sh.mu.Unlock()
	}
	keys := make([]finishedKey, 0, n)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for s := range sh.slab.n {
			e := sh.slab.at(s)
			if e.flags&flagLive != 0 && e.status != statusPending {
				keys = append(keys, finishedKey{e.doneMs, e.seq, uint32(i), uint32(s)})
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(keys, func(a, b finishedKey) int {
		if a.doneMs != b.doneMs {
			return cmp.Compare(a.doneMs, b.doneMs)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return keys
}

// each calls fn for the entry of every key, in order, with the entry's shard
// locked. fn must not keep views of the entry's bytes. The keys must be
// fresh from finished, on a table nobody changes meanwhile (the
// snapshotter's shadow state).
func (t *table) each(keys []finishedKey, fn func(sh *tableShard, e *entry)) {
	for _, k := range keys {
		sh := &t.shards[k.shard]
		sh.mu.Lock()
		fn(sh, sh.slab.at(k.slot))
		sh.mu.Unlock()
	}
}

// entries returns a copy of every finished entry, in finished's order. For
// tests.
func (t *table) entries() []*request {
	keys := t.finished()
	out := make([]*request, 0, len(keys))
	t.each(keys, func(sh *tableShard, e *entry) {
		r := sh.copyOut(e)
		out = append(out, &r)
	})
	return out
}

// openReservations calls fn for every open reservation (recovery queues them
// for expiry).
func (t *table) openReservations(fn func(id string, expires int64)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for s := range sh.slab.n {
			e := sh.slab.at(s)
			if e.flags&flagLive != 0 && e.status == statusReserved {
				id, _ := sh.strings(e)
				fn(string(id), e.expires)
			}
		}
		sh.mu.Unlock()
	}
}

// forget drops finished ids decided before cutoffMs, and the oldest ones
// beyond the bound. Open reservations and busy entries are kept (moved to the
// back, their bytes too). Returns how many were forgotten.
func (t *table) forget(cutoffMs int64) (n int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		// Each token is looked at once at most, so kept entries moved to the
		// back cannot make this loop run forever.
		for steps := len(sh.order) - sh.head; steps > 0; steps-- {
			tok := sh.order[sh.head]
			s, gen := uint32(tok), uint32(tok>>32)
			e := sh.slab.at(s)
			live := e.flags&flagLive != 0 && e.gen == gen
			if live && e.doneMs >= cutoffMs && sh.count <= t.perShardMax {
				break
			}
			sh.head++
			if !live {
				continue
			}
			if e.status == statusReserved || e.status == statusPending || e.flags&flagBusy != 0 {
				sh.relocate(e)
				sh.order = append(sh.order, tok)
				continue
			}
			sh.remove(s)
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
		n += sh.count
		sh.mu.Unlock()
	}
	return n
}

// get returns a copy of the entry for id (for tests and replays).
func (t *table) get(id string) (request, bool) {
	sh, _, s, ok := t.lockFind(id)
	defer sh.mu.Unlock()
	if !ok {
		return request{}, false
	}
	return sh.copyOut(sh.slab.at(s)), true
}

func token(slot, gen uint32) uint64 { return uint64(gen)<<32 | uint64(slot) }

// lockFind locks the shard of id and finds id's entry in it (slot s, if ok);
// the caller unlocks sh.mu.
func (t *table) lockFind(id string) (sh *tableShard, si, s uint32, ok bool) {
	h := idHash(id)
	sh, si = t.shardOf(h)
	sh.mu.Lock()
	s, ok = sh.find(h, id)
	return sh, si, s, ok
}

// The methods below run with sh.mu held.

// find returns the slot of id's entry.
func (sh *tableShard) find(h uint64, id string) (uint32, bool) {
	return sh.index.find(h, func(s uint32) bool {
		got, _ := sh.strings(sh.slab.at(s))
		return string(got) == id
	})
}

// held returns the entry a caller's handle names; a stale handle is a bug.
func (sh *tableShard) held(h handle) *entry {
	e := sh.slab.at(h.slot)
	if e.flags&flagLive == 0 || e.gen != h.gen {
		panic(fmt.Sprintf("engine: stale table handle %+v", h))
	}
	return e
}

// add makes a new entry from in, with status.
func (sh *tableShard) add(h uint64, in *reqInit, status uint8) (uint32, uint32) {
	var s, gen uint32
	if n := len(sh.free); n > 0 {
		s = sh.free[n-1]
		sh.free = sh.free[:n-1]
		gen = sh.slab.at(s).gen
	} else {
		s = sh.slab.grow() // a new slot: generation 0, and no need to read it
	}
	e := sh.slab.at(s)
	nItems := len(in.items) + len(in.walItems)
	*e = entry{idHash: h, bodyHash: in.bodyHash, seq: in.seq, settleSeq: in.settleSeq, doneMs: in.doneMs,
		expires: in.expires, gen: gen, kind: in.kind, status: status, flags: flagLive, items: uint8(nItems)}
	size := 2 + len(in.id) + len(in.user)
	for _, it := range in.items {
		size += 17 + len(it.SKU)
	}
	for _, it := range in.walItems {
		size += 17 + len(it.SKU)
	}
	var b []byte
	e.blob, b = sh.arena.alloc(size)
	b = appendStr(b[:0], in.id)
	b = appendStr(b, in.user)
	for _, it := range in.items {
		b = appendItem(b, it.SKU, it.Qty, 0)
	}
	for i, it := range in.walItems {
		var ret int64
		if in.returned != nil {
			ret = in.returned[i]
		}
		b = appendItem(b, it.SKU, it.Qty, ret)
	}
	if len(b) != size {
		panic(fmt.Sprintf("engine: blob of %d bytes, sized %d", len(b), size))
	}
	sh.index.add(h, s)
	sh.count++
	return s, gen
}

// remove frees slot s, unlinking it from the index and waking its waiters.
func (sh *tableShard) remove(s uint32) {
	e := sh.slab.at(s)
	sh.index.remove(e.idHash, s)
	sh.wakeLocked(s)
	sh.arena.release(e.blob)
	*e = entry{gen: e.gen + 1}
	sh.free = append(sh.free, s)
	sh.count--
}

// relocate moves e's bytes to the arena's newest chunk, so that an entry kept
// for long (an open reservation) does not pin an old chunk.
func (sh *tableShard) relocate(e *entry) {
	if e.blob.chunk == sh.arena.cur {
		return
	}
	old := sh.arena.bytes(e.blob) // chunks never move, so old stays valid across alloc
	ref, b := sh.arena.alloc(len(old))
	copy(b[:len(old)], old)
	sh.arena.release(e.blob)
	e.blob = ref
}

// strings returns views of e's id and user bytes (valid under the lock only).
func (sh *tableShard) strings(e *entry) (id, user []byte) {
	b := sh.arena.bytes(e.blob)
	n := int(b[0])
	id, b = b[1:1+n], b[1+n:]
	m := int(b[0])
	return id, b[1 : 1+m]
}

// itemsBlob returns the bytes of e's items (valid under the lock only).
func (sh *tableShard) itemsBlob(e *entry) []byte {
	b := sh.arena.bytes(e.blob)
	b = b[1+int(b[0]):]
	return b[1+int(b[0]):]
}

// eachItem calls fn with each of e's items: its SKU id (a view, valid under
// the lock only), qty and what returns gave back.
func (sh *tableShard) eachItem(e *entry, fn func(i int, sku []byte, qty, returned int64)) {
	b := sh.itemsBlob(e)
	for i := range int(e.items) {
		n := int(b[0])
		fn(i, b[1:1+n], int64(binary.LittleEndian.Uint64(b[1+n:])), int64(binary.LittleEndian.Uint64(b[9+n:])))
		b = b[17+n:]
	}
}

// copyOut returns a copy of e that owns its strings.
func (sh *tableShard) copyOut(e *entry) request {
	id, user := sh.strings(e)
	r := request{id: string(id), kind: e.kind, status: e.status, busy: e.flags&flagBusy != 0, user: string(user),
		hash: e.bodyHash, seq: e.seq, doneMs: e.doneMs, expires: e.expires, settleSeq: e.settleSeq}
	if e.items > 0 {
		r.items = make([]wal.Item, e.items)
		sh.eachItem(e, func(i int, sku []byte, qty, ret int64) {
			r.items[i] = wal.Item{SKU: string(sku), Qty: qty}
			if ret != 0 {
				if r.returned == nil {
					r.returned = make([]int64, e.items)
				}
				r.returned[i] = ret
			}
		})
	}
	return r
}

// addReturned adds items' quantities to what e had returned; every item must
// be one of e's.
func (sh *tableShard) addReturned(e *entry, items []wal.Item) {
	for _, it := range items {
		b := sh.itemsBlob(e)
		found := false
		for i := 0; i < int(e.items); i++ {
			n := int(b[0])
			if string(b[1:1+n]) == it.SKU {
				ret := b[9+n : 17+n]
				binary.LittleEndian.PutUint64(ret, binary.LittleEndian.Uint64(ret)+uint64(it.Qty))
				found = true
				break
			}
			b = b[17+n:]
		}
		if !found {
			panic(fmt.Sprintf("engine: return of sku %s, which the sale does not hold", it.SKU))
		}
	}
}

// waitLocked releases sh.mu, waits until slot s changes (finishes, is
// released or removed) or ctx ends, and returns with sh.mu released.
func (sh *tableShard) waitLocked(ctx context.Context, s uint32) error {
	if sh.waits == nil {
		sh.waits = map[uint32]chan struct{}{}
	}
	ch := sh.waits[s]
	if ch == nil {
		ch = make(chan struct{})
		sh.waits[s] = ch
		sh.slab.at(s).flags |= flagWaited
	}
	sh.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wakeLocked wakes whoever waits on slot s.
func (sh *tableShard) wakeLocked(s uint32) {
	e := sh.slab.at(s)
	if e.flags&flagWaited == 0 {
		return
	}
	e.flags &^= flagWaited
	close(sh.waits[s])
	delete(sh.waits, s)
}

func appendStr(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendItem(b []byte, sku string, qty, returned int64) []byte {
	b = appendStr(b, sku)
	b = binary.LittleEndian.AppendUint64(b, uint64(qty))
	return binary.LittleEndian.AppendUint64(b, uint64(returned))
}

// slabPageEntries is the number of entries in one page of a slab.
const slabPageEntries = 512

type slabPage [slabPageEntries]entry

// slab holds a shard's entries in fixed pages, so growing it copies nothing
// and an entry never moves.
type slab struct {
	pages []*slabPage
	n     uint32 // slots handed out
}

func (sl *slab) at(s uint32) *entry { return &sl.pages[s/slabPageEntries][s%slabPageEntries] }

// grow hands out a new slot (zeroed).
func (sl *slab) grow() uint32 {
	if sl.n%slabPageEntries == 0 {
		sl.pages = append(sl.pages, new(slabPage))
	}
	sl.n++
	return sl.n - 1
}

// arena holds the blobs of one shard in chunks of bytes. Chunks never move;
// a chunk is dropped once nothing in it is live (and it is not the one being
// filled). The chunk being filled is described by the arena's own fields
// (off, curLive), so that handing out room writes only the shard's header.
type arena struct {
	cur     uint32
	off     int // bytes handed out of chunks[cur]
	curLive int // live bytes in chunks[cur]
	next    int // size of the next chunk
	chunks  [][]byte
	live    []int // live bytes per chunk; for cur, see curLive
	free    []uint32
}

// alloc returns room for n bytes (a zero-length slice with capacity n).
func (a *arena) alloc(n int) (blobRef, []byte) {
	if len(a.chunks) == 0 || len(a.chunks[a.cur])-a.off < n {
		a.grow(n)
	}
	off := a.off
	a.off += n
	a.curLive += n
	return blobRef{chunk: a.cur, off: uint32(off), n: uint32(n)}, a.chunks[a.cur][off : off : off+n]
}

func (a *arena) grow(n int) {
	if len(a.chunks) > 0 {
		a.live[a.cur] = a.curLive
		if a.curLive == 0 {
			a.drop(a.cur)
		}
	}
	a.next = min(max(a.next*2, arenaChunkBytesMin), arenaChunkBytesMax)
	c := make([]byte, max(a.next, n))
	a.off, a.curLive = 0, 0
	if k := len(a.free); k > 0 {
		a.cur = a.free[k-1]
		a.free = a.free[:k-1]
		a.chunks[a.cur], a.live[a.cur] = c, 0
		return
	}
	a.chunks = append(a.chunks, c)
	a.live = append(a.live, 0)
	a.cur = uint32(len(a.chunks) - 1)
}

func (a *arena) bytes(r blobRef) []byte { return a.chunks[r.chunk][r.off : r.off+r.n] }

func (a *arena) release(r blobRef) {
	if r.chunk == a.cur {
		a.curLive -= int(r.n)
		if a.curLive < 0 {
			panic(fmt.Sprintf("engine: arena chunk %d: live bytes %d", r.chunk, a.curLive))
		}
		return
	}
	a.live[r.chunk] -= int(r.n)
	if a.live[r.chunk] < 0 {
		panic(fmt.Sprintf("engine: arena chunk %d: live bytes %d", r.chunk, a.live[r.chunk]))
	}
	if a.live[r.chunk] == 0 {
		a.drop(r.chunk)
	}
}

func (a *arena) drop(c uint32) {
	a.chunks[c] = nil
	a.free = append(a.free, c)
}

// check validates an entry read from a snapshot (with k items): the table
// stores ids with a length byte, so their bounds are part of its format.
func (in *reqInit) check(k int) error {
	if !wal.ValidID(in.id) || (in.user != "" && !wal.ValidID(in.user)) {
		return fmt.Errorf("entry %q: bad id or user", in.id)
	}
	if in.kind == 0 || in.kind > wal.KindReturn || in.status > statusDone || in.status == statusPending {
		return fmt.Errorf("entry %q: kind %d status %d", in.id, in.kind, in.status)
	}
	if (in.kind == wal.KindDeduct || in.kind == wal.KindReserve) != (k > 0) {
		return fmt.Errorf("entry %q: %v with %d items", in.id, in.kind, k)
	}
	var fits bool // the statuses each kind can reach
	switch in.kind {
	case wal.KindDeduct:
		fits = in.status == statusDeducted
	case wal.KindReserve:
		fits = in.status >= statusReserved && in.status <= statusExpired
	default:
		fits = in.status == statusDone
	}
	if !fits {
		return fmt.Errorf("entry %q: %v in status %d", in.id, in.kind, in.status)
	}
	return nil
}
