package engine

import "hash/maphash"

// holdings counts what each user holds of one SKU (deducted or reserved, net
// of returns and releases), for the per-user limit. A SKU of a big sale has
// hundreds of thousands of buyers, so this is built like the request table:
// no Go pointers per user (the garbage collector sees three arrays, not a
// map of strings), and a lookup usually reads one index cell and one entry.
// Only the SKU's actor (or a fold) uses it: not safe for concurrent use.
type holdings struct {
	index   idIndex
	slots   []holding
	free    []uint32
	ids     []byte // user ids back to back; slots point into it
	garbage int    // bytes of ids no slot points to (compact reclaims them)
}

type holding struct {
	hash uint64
	qty  int64 // > 0 for a used slot
	off  int   // into ids: an int, since one SKU's buyers can pass 4 GiB of ids
	n    uint8
}

// holdingsCompactMin: ids are compacted once at least this many of their
// bytes, and half of them, are garbage.
const holdingsCompactMin = 4 << 10

var holdingsSeed = maphash.MakeSeed()

func (hs *holdings) find(h uint64, user string) (uint32, bool) {
	return hs.index.find(h, func(s uint32) bool {
		e := &hs.slots[s]
		return string(hs.ids[e.off:e.off+int(e.n)]) == user
	})
}

// get returns what user holds (0 for a user holding nothing).
func (hs *holdings) get(user string) int64 {
	if s, ok := hs.find(maphash.String(holdingsSeed, user), user); ok {
		return hs.slots[s].qty
	}
	return 0
}

// add adds delta to what user holds; a user left with nothing is forgotten.
// It reports the new holding.
func (hs *holdings) add(user string, delta int64) int64 {
	h := maphash.String(holdingsSeed, user)
	s, ok := hs.find(h, user)
	if ok {
		e := &hs.slots[s]
		e.qty += delta
		if e.qty > 0 {
			return e.qty
		}
		q := e.qty
		hs.index.remove(h, s)
		hs.garbage += int(e.n)
		*e = holding{}
		hs.free = append(hs.free, s)
		hs.compact()
		return q
	}
	if delta <= 0 {
		return delta
	}
	if n := len(hs.free); n > 0 {
		s = hs.free[n-1]
		hs.free = hs.free[:n-1]
	} else {
		hs.slots = append(hs.slots, holding{})
		s = uint32(len(hs.slots) - 1)
	}
	hs.slots[s] = holding{hash: h, qty: delta, off: len(hs.ids), n: uint8(len(user))}
	hs.ids = append(hs.ids, user...)
	hs.index.add(h, s)
	return delta
}

// compact drops the bytes of forgotten users once they are most of ids.
func (hs *holdings) compact() {
	if hs.garbage < holdingsCompactMin || hs.garbage < len(hs.ids)/2 {
		return
	}
	ids := make([]byte, 0, len(hs.ids)-hs.garbage)
	for i := range hs.slots {
		e := &hs.slots[i]
		if e.qty > 0 {
			off := len(ids)
			ids = append(ids, hs.ids[e.off:e.off+int(e.n)]...)
			e.off = off
		}
	}
	hs.ids, hs.garbage = ids, 0
}

// each calls fn for every user holding something, in no particular order.
func (hs *holdings) each(fn func(user string, qty int64)) {
	for i := range hs.slots {
		if e := &hs.slots[i]; e.qty > 0 {
			fn(string(hs.ids[e.off:e.off+int(e.n)]), e.qty)
		}
	}
}

// len is the number of users holding something.
func (hs *holdings) len() int { return len(hs.slots) - len(hs.free) }
