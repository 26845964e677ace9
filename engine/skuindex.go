package engine

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// skuIndexShards is the number of parts of the SKU index. Adding a SKU
// copies one part, so a part holds (SKUs / skuIndexShards) entries.
const skuIndexShards = 256

// skuIndex maps SKU ids to their refs. Every request looks SKUs up, and SKUs
// are added rarely (PUT, recovery) and never removed, so reads take no lock
// and write nothing shared: each part is an immutable map behind an atomic
// pointer, replaced by a copy when a SKU is added (copy on write).
type skuIndex struct {
	mu    sync.Mutex // serialises writers
	parts [skuIndexShards]atomic.Pointer[map[string]*skuRef]
	n     atomic.Int64
}

var skuIndexSeed = maphash.MakeSeed()

func (x *skuIndex) part(id string) *atomic.Pointer[map[string]*skuRef] {
	return &x.parts[maphash.String(skuIndexSeed, id)&(skuIndexShards-1)]
}

// get returns the ref of id, or nil.
func (x *skuIndex) get(id string) *skuRef {
	if m := x.part(id).Load(); m != nil {
		return (*m)[id]
	}
	return nil
}

// add publishes refs (whose ids are not in the index yet).
func (x *skuIndex) add(refs ...*skuRef) {
	x.mu.Lock()
	defer x.mu.Unlock()
	byPart := map[*atomic.Pointer[map[string]*skuRef]][]*skuRef{}
	for _, r := range refs {
		p := x.part(r.id)
		byPart[p] = append(byPart[p], r)
	}
	for p, rs := range byPart {
		var old map[string]*skuRef
		if m := p.Load(); m != nil {
			old = *m
		}
		m := make(map[string]*skuRef, len(old)+len(rs))
		for k, v := range old {
			m[k] = v
		}
		for _, r := range rs {
			m[r.id] = r
		}
		p.Store(&m)
	}
	x.n.Add(int64(len(refs)))
}

// each calls fn for every ref, in no particular order.
func (x *skuIndex) each(fn func(*skuRef)) {
	for i := range x.parts {
		if m := x.parts[i].Load(); m != nil {
			for _, r := range *m {
				fn(r)
			}
		}
	}
}

func (x *skuIndex) len() int { return int(x.n.Load()) }
