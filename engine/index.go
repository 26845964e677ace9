package engine

// idIndex finds a table shard's entries by id hash: open addressing with
// linear probing over one array of 8-byte cells, so a lookup of an absent id
// (the common case: a fresh request) usually reads one cache line. A cell
// holds the top 32 bits of the id's hash (its fingerprint, which also gives
// its home position) and the entry's slot+1; 0 is an empty cell. Entries
// whose fingerprints match are told apart by their ids (the caller checks).
// Not safe for concurrent use (the shard's lock guards it).
type idIndex struct {
	cells []uint64
	shift uint8 // home of fingerprint fp: fp >> shift
	n     int   // cells in use
}

const (
	// indexCellsMin is the size of a new index; it doubles when half full.
	indexCellsMin = 64
	// indexLoadMax: the index grows when more than cells/indexLoadMax are used.
	indexLoadMax = 2
)

func fingerprint(h uint64) uint32 { return uint32(h >> 32) }

func (x *idIndex) init(cells int) {
	size := indexCellsMin
	for size < cells {
		size *= 2
	}
	x.cells = make([]uint64, size)
	x.shift = uint8(32 - log2(size))
	x.n = 0
}

func log2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

func (x *idIndex) mask() int { return len(x.cells) - 1 }

// each calls fn with the slot of every entry whose hash has h's fingerprint,
// until fn returns true; it returns that slot.
func (x *idIndex) find(h uint64, fn func(slot uint32) bool) (uint32, bool) {
	if x.cells == nil {
		return 0, false
	}
	fp := fingerprint(h)
	for i := int(fp >> x.shift); ; i = (i + 1) & x.mask() {
		c := x.cells[i]
		if c == 0 {
			return 0, false
		}
		if uint32(c>>32) == fp && fn(uint32(c)-1) {
			return uint32(c) - 1, true
		}
	}
}

// probe returns the cell where a lookup of h starts (to bring it into the
// cache ahead of the lookup).
func (x *idIndex) probe(h uint64) uint64 {
	if x.cells == nil {
		return 0
	}
	return x.cells[int(fingerprint(h)>>x.shift)]
}

// add indexes slot under h.
func (x *idIndex) add(h uint64, slot uint32) {
	if x.cells == nil {
		x.init(indexCellsMin)
	}
	if (x.n+1)*indexLoadMax > len(x.cells) {
		x.grow()
	}
	x.put(uint64(fingerprint(h))<<32 | uint64(slot+1))
	x.n++
}

func (x *idIndex) put(cell uint64) {
	for i := int(uint32(cell>>32) >> x.shift); ; i = (i + 1) & x.mask() {
		if x.cells[i] == 0 {
			x.cells[i] = cell
			return
		}
	}
}

func (x *idIndex) grow() {
	old := x.cells
	x.init(len(old) * 2)
	for _, c := range old {
		if c != 0 {
			x.put(c)
			x.n++
		}
	}
}

// remove drops the cell of slot (indexed under h), shifting later cells of
// the run back so that no lookup stops short (no tombstones).
func (x *idIndex) remove(h uint64, slot uint32) {
	fp := fingerprint(h)
	want := uint64(fp)<<32 | uint64(slot+1)
	m := x.mask()
	i := int(fp >> x.shift)
	for x.cells[i] != want {
		if x.cells[i] == 0 {
			panic("engine: index: removing an absent slot")
		}
		i = (i + 1) & m
	}
	// Backward-shift deletion: move each later cell of the run into the hole
	// unless its home lies cyclically in (hole, its position].
	hole := i
	for j := (i + 1) & m; x.cells[j] != 0; j = (j + 1) & m {
		home := int(uint32(x.cells[j]>>32) >> x.shift)
		if (j-home)&m >= (j-hole)&m {
			x.cells[hole] = x.cells[j]
			hole = j
		}
	}
	x.cells[hole] = 0
	x.n--
}
