package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flashsale/flashsale/wal"
)

// Snapshots. A snapshot is the State folded from the log up to its Seq,
// written to "snapshot-<seq as 16 hex digits>" in the data directory:
//
//	magic "FSSNAP01" | body | crc32c(body), big-endian
//
// body: uvarint seq; the SKUs; then the requests, restocks and returns tables
// (the encoding is in writeState). It is written to a temporary name, fsynced,
// renamed and the directory fsynced, so a crash leaves either the old or the
// new snapshot, never half of one. Snapshots are made from the log alone
// (never from the actors' live state), which makes them consistent without
// pausing anything: the snapshotter folds the durable records since the last
// snapshot into a shadow State.

const (
	snapshotMagic  = "FSSNAP01"
	snapshotPrefix = "snapshot-"
	// snapshotStringBytesMax bounds a string read from a snapshot.
	snapshotStringBytesMax = 1 << 10
)

var errSnapshotCorrupt = errors.New("engine: corrupt snapshot")

func snapshotName(seq uint64) string { return fmt.Sprintf("%s%016x", snapshotPrefix, seq) }

// listSnapshots returns the seqs of the snapshots in dir, ascending.
func listSnapshots(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, n := range names {
		if !strings.HasPrefix(n, snapshotPrefix) || len(n) != len(snapshotPrefix)+16 {
			continue
		}
		seq, err := strconv.ParseUint(n[len(snapshotPrefix):], 16, 64)
		if err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// removeTmpSnapshots deletes the temporary files of snapshots that were
// never finished (the process died before the rename): they are never read,
// and would otherwise pile up, one per crash.
func removeTmpSnapshots(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, snapshotPrefix) && strings.HasSuffix(n, ".tmp") {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				return fmt.Errorf("engine: remove unfinished snapshot: %w", err)
			}
		}
	}
	return nil
}

// loadState returns the newest snapshot at or below upTo (an empty State if
// there is none) and folds the log after it up to upTo.
func loadState(fs vfs.FS, dir string, l *wal.Log, upTo uint64, idsMax int) (*State, error) {
	seqs, err := listSnapshots(fs, dir)
	if err != nil {
		return nil, err
	}
	st := newState(idsMax)
	for i := len(seqs) - 1; i >= 0; i-- {
		if seqs[i] <= upTo {
			if st, err = readSnapshot(fs, fs.PathJoin(dir, snapshotName(seqs[i])), seqs[i], idsMax); err != nil {
				return nil, err
			}
			break
		}
	}
	return st, foldLog(l, st, upTo)
}

// foldLog folds the durable records after st.Seq up to upTo into st.
func foldLog(l *wal.Log, st *State, upTo uint64) error {
	from := st.Seq + 1
	if upTo < from || l.Durable() < from {
		return nil
	}
	if l.First() > from {
		return fmt.Errorf("engine: the log starts at %d but the state needs it from %d", l.First(), from)
	}
	var rec wal.Record
	next := from
	err := l.Read(from, upTo, func(seq uint64, b []byte) error {
		// Read starts at the log's first record: one truncated meanwhile
		// would leave a hole, which must not pass for a state.
		if seq != next {
			return fmt.Errorf("engine: fold needs record %d, the log hands out %d (truncated meanwhile?)", next, seq)
		}
		next++
		if err := rec.Decode(b); err != nil {
			return fmt.Errorf("engine: record %d: %w", seq, err)
		}
		return st.Fold(seq, &rec)
	})
	if err == nil && next <= min(upTo, l.Durable()) && next == from {
		return fmt.Errorf("engine: fold needs record %d, the log has none (truncated meanwhile?)", from)
	}
	return err
}

// recover builds the state to serve from: the newest snapshot plus the log.
// It first removes snapshot files a crash left half-written (.tmp).
func (e *Engine) recover() (*State, error) {
	if err := removeTmpSnapshots(e.opts.FS, e.opts.Dir); err != nil {
		return nil, err
	}
	st, err := loadState(e.opts.FS, e.opts.Dir, e.log, math.MaxUint64, e.opts.RequestIDsMax)
	if err != nil {
		return nil, err
	}
	seqs, _ := listSnapshots(e.opts.FS, e.opts.Dir)
	if len(seqs) > 0 {
		e.snapSeq.Store(seqs[len(seqs)-1])
	}
	if st.Seq < e.log.Durable() && st.Seq+1 < e.log.First() {
		return nil, fmt.Errorf("engine: state at %d, log from %d", st.Seq, e.log.First())
	}
	if st.Seq > e.log.Durable() {
		// The log never ends below a snapshot (truncation keeps the seqs
		// rising), so it was lost or replaced by an older copy: new
		// records would reuse seqs the snapshot already covers and be
		// skipped at the next recovery.
		return nil, fmt.Errorf("engine: snapshot at seq %d is ahead of the log (durable to %d): the log in %s was lost or restored from an older copy",
			st.Seq, e.log.Durable(), e.opts.FS.PathJoin(e.opts.Dir, "log"))
	}
	return st, nil
}

// install hands a recovered State to the live engine: SKU actors, tables and
// the expiry queue. The live engine owns st's parts afterwards.
func (e *Engine) install(st *State) {
	refs := make([]*skuRef, 0, len(st.skus))
	for _, s := range st.skus {
		refs = append(refs, e.spawn(s))
	}
	e.skus.add(refs...)
	e.requests, e.restocks, e.returns = st.requests, st.restocks, st.returns
	e.requests.openReservations(e.expiries.push)
}

// StateAt returns the engine's state as of log record seq, folded from the
// newest snapshot at or below seq and the log after it. seq must not be
// beyond Durable, nor below the oldest snapshot the engine keeps.
func (e *Engine) StateAt(seq uint64) (*State, error) {
	// No snapshot or truncation while the state is read: either could take
	// away the files or records it folds.
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	if seq > e.log.Durable() {
		return nil, fmt.Errorf("engine: state at %d: beyond durable %d", seq, e.log.Durable())
	}
	st, err := loadState(e.opts.FS, e.opts.Dir, e.log, seq, e.opts.RequestIDsMax)
	if err != nil {
		return nil, err
	}
	if st.Seq != seq && seq >= e.log.First() {
		return nil, fmt.Errorf("engine: state at %d: folded only to %d", seq, st.Seq)
	}
	return st, nil
}

// ReadState opens the data directory dir of an engine that is not running
// and returns its state as of record upTo (math.MaxUint64: everything).
func ReadState(fs vfs.FS, dir string, upTo uint64) (*State, error) {
	if fs == nil {
		fs = vfs.Default
	}
	l, err := wal.Open(fs.PathJoin(dir, "log"), wal.Options{FS: fs})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return loadState(fs, dir, l, upTo, RequestIDsMaxDefault)
}

// snapshot folds the records since the last snapshot into the shadow state,
// writes it, then truncates the log below the newest snapshot that is also
// synced (with KeepUnsynced) and deletes snapshots older than that one.
func (e *Engine) snapshot() error {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	fs, dir := e.opts.FS, e.opts.Dir
	if e.shadow == nil {
		st, err := loadState(fs, dir, e.log, e.snapSeq.Load(), e.opts.RequestIDsMax)
		if err != nil {
			return err
		}
		e.shadow = st
	}
	if err := foldLog(e.log, e.shadow, e.log.Durable()); err != nil {
		e.shadow = nil
		return err
	}
	st := e.shadow
	if st.Seq > e.snapSeq.Load() {
		cutoff := e.nowMs() - e.opts.IdempotencyWindow.Milliseconds()
		for _, t := range []*table{st.requests, st.restocks, st.returns} {
			t.forget(cutoff)
		}
		if err := writeSnapshot(fs, dir, st); err != nil {
			return err
		}
		e.snapSeq.Store(st.Seq)
	}
	return e.truncate()
}

func (e *Engine) truncate() error {
	fs, dir := e.opts.FS, e.opts.Dir
	seqs, err := listSnapshots(fs, dir)
	if err != nil {
		return err
	}
	limit := uint64(math.MaxUint64)
	if e.opts.KeepUnsynced {
		limit = e.synced.Load()
	}
	base := -1
	for i, s := range seqs {
		if s <= limit {
			base = i
		}
	}
	if base < 0 {
		return nil
	}
	if err := e.log.Truncate(seqs[base] + 1); err != nil {
		return err
	}
	for _, s := range seqs[:base] {
		if err := fs.Remove(fs.PathJoin(dir, snapshotName(s))); err != nil {
			return err
		}
	}
	return nil
}

func writeSnapshot(fs vfs.FS, dir string, st *State) error {
	final := fs.PathJoin(dir, snapshotName(st.Seq))
	tmp := final + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("engine: snapshot: %w", err)
	}
	w := &snapWriter{f: f, b: make([]byte, 0, snapWriteBytes+snapshotStringBytesMax)}
	_, err = f.Write([]byte(snapshotMagic))
	if err == nil {
		writeState(w, st)
		w.flush()
		err = w.err
	}
	if err == nil {
		_, err = f.Write(binary.BigEndian.AppendUint32(nil, w.crc))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(fs, dir)
	}
	if err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("engine: snapshot: %w", err)
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeState encodes st as a snapshot body. An entry is encoded straight from
// the table's bytes (no copy of millions of ids as Go strings), into a buffer
// that goes to the file a few hundred KiB at a time.
func writeState(w *snapWriter, st *State) {
	w.uvarint(st.Seq)
	w.uvarint(uint64(len(st.skus)))
	for _, s := range st.skus {
		w.str(s.id)
		for _, v := range []int64{s.total, s.available, s.reserved, s.sold, s.limit} {
			w.varint(v)
		}
		w.uvarint(uint64(s.users.len()))
		s.users.each(func(u string, q int64) {
			w.str(u)
			w.varint(q)
			w.maybeFlush()
		})
	}
	for _, t := range []*table{st.requests, st.restocks, st.returns} {
		// Oldest first, so that a reload keeps forgetting in order.
		keys := t.finished()
		w.uvarint(uint64(len(keys)))
		t.each(keys, func(sh *tableShard, e *entry) {
			id, user := sh.strings(e)
			w.bytes(id)
			w.uvarint(uint64(e.kind))
			w.uvarint(uint64(e.status))
			w.bytes(user)
			w.uvarint(e.bodyHash)
			w.uvarint(e.seq)
			w.varint(e.doneMs)
			w.varint(e.expires)
			w.uvarint(e.settleSeq)
			w.uvarint(uint64(e.items))
			sh.eachItem(e, func(_ int, sku []byte, qty, ret int64) {
				w.bytes(sku)
				w.varint(qty)
				w.varint(ret)
			})
			w.maybeFlush()
		})
	}
}

// snapWriteBytes: the snapshot writer hands its buffer to the file (and the
// checksum) once it holds this much.
const snapWriteBytes = 256 << 10

type snapWriter struct {
	f   vfs.File
	b   []byte
	crc uint32 // of the body written so far
	err error
}

// maybeFlush writes the buffer out once it is big enough; call it between
// elements (an element is small: ids and SKUs are bounded).
func (w *snapWriter) maybeFlush() {
	if len(w.b) >= snapWriteBytes {
		w.flush()
	}
}

func (w *snapWriter) flush() {
	if w.err == nil && len(w.b) > 0 {
		w.crc = crc32.Update(w.crc, castagnoli, w.b)
		_, w.err = w.f.Write(w.b)
	}
	w.b = w.b[:0]
}

func (w *snapWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *snapWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *snapWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *snapWriter) bytes(s []byte) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// readSnapshot reads the snapshot at path, which its name says holds the
// state at wantSeq.
func readSnapshot(fs vfs.FS, path string, wantSeq uint64, idsMax int) (*State, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if len(data) < len(snapshotMagic)+4 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: %s: bad header", errSnapshotCorrupt, path)
	}
	body := data[len(snapshotMagic) : len(data)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(data[len(data)-4:]) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", errSnapshotCorrupt, path)
	}
	r := &snapReader{b: body}
	st := newState(idsMax)
	st.Seq = r.uvarint()
	if r.err == nil && st.Seq != wantSeq {
		return nil, fmt.Errorf("%w: %s: holds the state at seq %d, its name says %d", errSnapshotCorrupt, path, st.Seq, wantSeq)
	}
	// Everything is checked as the engine's own rules would have it: the
	// checksum only says the file is as written, and a snapshot that no
	// state could produce would break the engine later, far from here.
	for n := r.count(); n > 0 && r.err == nil; n-- {
		s := newSKU(r.str())
		s.total, s.available, s.reserved, s.sold, s.limit = r.varint(), r.varint(), r.varint(), r.varint(), r.varint()
		var held int64
		for k := r.count(); k > 0 && r.err == nil; k-- {
			u, q := r.view(), r.varint()
			if !wal.ValidID(u) || q <= 0 || q > wal.TotalMax || s.users.get(u) != 0 {
				r.err = fmt.Errorf("sku %s: bad holding %q: %d", s.id, u, q)
				break
			}
			s.users.add(u, q)
			if held += q; held > 2*wal.TotalMax { // more than any SKU can hold; and no overflow
				r.err = fmt.Errorf("sku %s: users hold over %d", s.id, 2*wal.TotalMax)
				break
			}
		}
		if r.err != nil {
			break
		}
		if err := s.checkLoaded(held); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errSnapshotCorrupt, path, err)
		}
		if st.skus[s.id] != nil {
			return nil, fmt.Errorf("%w: %s: sku %s twice", errSnapshotCorrupt, path, s.id)
		}
		st.skus[s.id] = s
	}
	// What the open reservations hold, per SKU: every state's reserved
	// counter is exactly that (recovery queues them for expiry, and each
	// expiry takes its items from reserved).
	open := map[string]int64{}
	for _, t := range []*table{st.requests, st.restocks, st.returns} {
		n := r.count()
		// Sized once: no rehashing while loading. An entry takes at least
		// snapEntryBytesMin bytes, so a count the file cannot hold does not
		// size the tables (a crafted count would allocate far beyond it).
		t.reserve(min(n, len(r.b)/snapEntryBytesMin))
		var items [wal.ItemsMax]wal.Item
		var returned [wal.ItemsMax]int64
		for ; n > 0 && r.err == nil; n-- {
			// The strings are views of the snapshot's bytes: insert copies
			// them into the table, and nothing else keeps them.
			id, kind, status := r.view(), r.uvarint(), r.uvarint()
			if kind > 255 || status > 255 {
				r.err = fmt.Errorf("entry %q: kind %d status %d", id, kind, status)
				break
			}
			q := reqInit{id: id, kind: wal.Kind(kind), status: uint8(status), user: r.view(),
				bodyHash: r.uvarint(), seq: r.uvarint(), doneMs: r.varint(), expires: r.varint(), settleSeq: r.uvarint()}
			k := r.count()
			if k > wal.ItemsMax {
				return nil, fmt.Errorf("%w: %s: %d items", errSnapshotCorrupt, path, k)
			}
			for i := 0; i < k && r.err == nil; i++ {
				items[i] = wal.Item{SKU: r.view(), Qty: r.varint()}
				returned[i] = r.varint()
				switch {
				case st.skus[items[i].SKU] == nil:
					r.err = fmt.Errorf("entry %q: unknown sku %q", q.id, items[i].SKU)
				case items[i].Qty < 1 || items[i].Qty > wal.QtyMax || returned[i] < 0 || returned[i] > items[i].Qty:
					r.err = fmt.Errorf("entry %q: sku %s qty %d returned %d", q.id, items[i].SKU, items[i].Qty, returned[i])
				}
				for j := range i {
					if items[j].SKU == items[i].SKU {
						r.err = fmt.Errorf("entry %q: sku %s twice", q.id, items[i].SKU)
					}
				}
			}
			if err := q.check(k); err != nil || r.err != nil {
				if r.err == nil {
					r.err = err
				}
				break
			}
			q.walItems, q.returned = items[:k], returned[:k]
			if t.insert(&q) {
				r.err = fmt.Errorf("entry %q twice", q.id)
				break
			}
			if t == st.requests && q.kind == wal.KindReserve && q.status == statusReserved {
				for _, it := range items[:k] {
					open[it.SKU] += it.Qty
				}
			}
		}
	}
	for id, s := range st.skus {
		if r.err == nil && open[id] != s.reserved {
			r.err = fmt.Errorf("sku %s: reserved %d, its open reservations hold %d", id, s.reserved, open[id])
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errSnapshotCorrupt, path, r.err)
	}
	return st, nil
}

// snapEntryBytesMin is the fewest bytes a request entry takes in a snapshot:
// an id of one byte (length and byte), then kind, status, an empty user,
// body hash, seq, decision time, expiry, settle seq and item count, one
// byte each.
const snapEntryBytesMin = 11

type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(what string) {
	if r.err == nil {
		r.err = errors.New("truncated " + what)
	}
	r.b = nil
}

func (r *snapReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must be plausible for the bytes left (each
// element takes at least one byte), so corruption cannot force a huge loop.
func (r *snapReader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.fail("count")
		return 0
	}
	return int(v)
}

// view is str without the copy: the string shares the snapshot's bytes and
// must not outlive them.
func (r *snapReader) view() string {
	n := r.uvarint()
	if n > snapshotStringBytesMax || n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := unsafe.String(unsafe.SliceData(r.b), int(n))
	r.b = r.b[n:]
	return s
}

func (r *snapReader) str() string {
	n := r.uvarint()
	if n > snapshotStringBytesMax || n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
