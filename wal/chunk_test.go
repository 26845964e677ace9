package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// seqRecord returns a valid record whose request id names seq.
func seqRecord(seq uint64) []byte { return testRecord(fmt.Sprintf("s%d", seq)) }

// writeGroups appends records to the log in fs (created or continued), one
// commit group per size given, and closes it. The committer is held in
// OnCommit while each group fills, so the groups are exactly those sizes.
// Each record is seqRecord(its seq).
func writeGroups(t *testing.T, fs vfs.FS, sizes ...int) {
	t.Helper()
	entered := make(chan int)
	gate := make(chan struct{})
	l := openLog(t, fs, Options{OnCommit: func(records, _ int, _ time.Duration) {
		entered <- records
		<-gate
	}})
	var acks []chanAck
	for i, n := range sizes {
		for j := 0; j < n; j++ {
			a := newChanAck()
			seq, err := l.Append(seqRecord(l.Stats().Next), a)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			acks = append(acks, a)
			_ = seq
		}
		if i > 0 {
			gate <- struct{}{} // release the previous group: the committer takes this one
		}
		if got := <-entered; got != n {
			t.Fatalf("group %d committed %d records, want %d", i, got, n)
		}
	}
	close(gate)
	for _, a := range acks {
		if res := <-a; res.err != nil {
			t.Fatalf("ack: %v", res.err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// rawKV is one key/value of the log's Pebble store, copied.
type rawKV struct {
	key uint64
	val []byte
}

// openPebble opens the log's Pebble store directly, as the log would.
func openPebble(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(testDir, &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest,
		Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	return db
}

// rawChunks lists the record keys (not the floor key) of the closed log in fs.
func rawChunks(t *testing.T, fs vfs.FS) []rawKV {
	t.Helper()
	db := openPebble(t, fs)
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{UpperBound: Key(SeqMax + 1)})
	if err != nil {
		t.Fatal(err)
	}
	var kvs []rawKV
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) != 8 {
			t.Fatalf("key %x is not 8 bytes", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, rawKV{binary.BigEndian.Uint64(it.Key()), append([]byte(nil), v...)})
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return kvs
}

// rawSet writes key/values straight into the closed log's Pebble store; a nil
// value deletes the key.
func rawSet(t *testing.T, fs vfs.FS, kvs ...rawKV) {
	t.Helper()
	db := openPebble(t, fs)
	for _, kv := range kvs {
		var err error
		if kv.val == nil {
			err = db.Delete(Key(kv.key), pebble.Sync)
		} else {
			err = db.Set(Key(kv.key), kv.val, pebble.Sync)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// chunkLayout returns (key, count) of each raw chunk.
func chunkLayout(t *testing.T, kvs []rawKV) [][2]uint64 {
	t.Helper()
	var out [][2]uint64
	for _, kv := range kvs {
		c, err := readChunk(Key(kv.key), kv.val)
		if err != nil {
			t.Fatalf("chunk at %d: %v", kv.key, err)
		}
		out = append(out, [2]uint64{c.first, c.n})
	}
	return out
}

// checkRead reads [from, to] and checks that it returns exactly seqs
// want..wantTo, each holding seqRecord(seq).
func checkRead(t *testing.T, l *Log, from, to, want, wantTo uint64) {
	t.Helper()
	seqs, recs := readAll(t, l, from, to)
	var exp []uint64
	for s := want; s <= wantTo; s++ {
		exp = append(exp, s)
	}
	if !reflect.DeepEqual(seqs, exp) {
		t.Fatalf("Read(%d, %d) = %v, want %d..%d", from, to, seqs, want, wantTo)
	}
	for i, rec := range recs {
		if !bytes.Equal(rec, seqRecord(seqs[i])) {
			t.Fatalf("Read(%d, %d): seq %d holds %q", from, to, seqs[i], requestID(t, rec))
		}
	}
}

// TestChunksOnDisk: each commit group is one Pebble key, keyed by its first
// seq, holding a version-2 chunk of its records.
func TestChunksOnDisk(t *testing.T) {
	fs := vfs.NewMem()
	writeGroups(t, fs, 1, 5, 3, 7)
	kvs := rawChunks(t, fs)
	want := [][2]uint64{{1, 1}, {2, 5}, {7, 3}, {10, 7}}
	if got := chunkLayout(t, kvs); !reflect.DeepEqual(got, want) {
		t.Fatalf("chunks (key, count) = %v, want %v", got, want)
	}
	for _, kv := range kvs {
		if kv.val[0] != ChunkVersion {
			t.Fatalf("chunk at %d starts with %d", kv.key, kv.val[0])
		}
		// The layout spelled out: version, count, then length-prefixed records.
		var w []byte
		c, _ := readChunk(Key(kv.key), kv.val)
		w = append(w, 2)
		w = binary.AppendUvarint(w, c.n)
		for s := kv.key; s < kv.key+c.n; s++ {
			r := seqRecord(s)
			w = binary.AppendUvarint(w, uint64(len(r)))
			w = append(w, r...)
		}
		if !bytes.Equal(w, kv.val) {
			t.Fatalf("chunk at %d:\n got %x\nwant %x", kv.key, kv.val, w)
		}
	}
	l := openLog(t, fs, Options{})
	defer l.Close()
	if l.First() != 1 || l.Durable() != 16 {
		t.Fatalf("First %d, Durable %d; want 1, 16", l.First(), l.Durable())
	}
}

// TestReadInsideChunks reads every range over a log of several chunks: reads
// that start and end inside chunks, on their edges, and beyond the log.
func TestReadInsideChunks(t *testing.T) {
	fs := vfs.NewMem()
	writeGroups(t, fs, 1, 5, 3, 7) // chunks 1, 2..6, 7..9, 10..16
	l := openLog(t, fs, Options{})
	defer l.Close()
	for from := uint64(0); from <= 18; from++ {
		for to := uint64(0); to <= 18; to++ {
			checkRead(t, l, from, to, max(from, 1), min(to, 16))
		}
	}
	checkRead(t, l, 0, SeqMax, 1, 16)
	// An early stop inside a chunk returns fn's error and stops there.
	stop := errors.New("stop")
	var got []uint64
	err := l.Read(3, 16, func(seq uint64, _ []byte) error {
		got = append(got, seq)
		if seq == 8 {
			return stop
		}
		return nil
	})
	if err != stop || !reflect.DeepEqual(got, []uint64{3, 4, 5, 6, 7, 8}) {
		t.Fatalf("Read with stop at 8: %v, %v", err, got)
	}
}

// TestTruncateInsideChunk truncates below seqs inside chunks, on chunk edges
// and above every record, and checks First, Durable, what Read returns, what
// stays on disk, and that all of it survives a reopen.
func TestTruncateInsideChunk(t *testing.T) {
	fs := vfs.NewMem()
	writeGroups(t, fs, 1, 5, 3, 7) // chunks 1, 2..6, 7..9, 10..16
	l := openLog(t, fs, Options{})
	if err := l.Truncate(4); err != nil {
		t.Fatalf("Truncate(4): %v", err)
	}
	if l.First() != 4 || l.Durable() != 16 {
		t.Fatalf("after Truncate(4): First %d, Durable %d", l.First(), l.Durable())
	}
	checkRead(t, l, 0, SeqMax, 4, 16) // records 2, 3 are on disk but under the floor
	checkRead(t, l, 2, 5, 4, 5)
	checkRead(t, l, 3, 3, 1, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := chunkLayout(t, rawChunks(t, fs)), [][2]uint64{{2, 5}, {7, 3}, {10, 7}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after Truncate(4) chunks = %v, want %v (the chunk holding 4 stays whole)", got, want)
	}

	l = openLog(t, fs, Options{})
	if l.First() != 4 || l.Durable() != 16 {
		t.Fatalf("reopen after Truncate(4): First %d, Durable %d", l.First(), l.Durable())
	}
	checkRead(t, l, 1, SeqMax, 4, 16)
	if err := l.Truncate(10); err != nil { // on a chunk's first seq
		t.Fatal(err)
	}
	checkRead(t, l, 1, SeqMax, 10, 16)
	if err := l.Truncate(16); err != nil { // the last chunk's last record
		t.Fatal(err)
	}
	checkRead(t, l, 1, SeqMax, 16, 16)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := chunkLayout(t, rawChunks(t, fs)), [][2]uint64{{10, 7}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after Truncate(16) chunks = %v, want %v", got, want)
	}

	writeGroups(t, fs, 1, 4) // 17, 18..21
	l = openLog(t, fs, Options{})
	if l.First() != 16 || l.Durable() != 21 {
		t.Fatalf("after appending: First %d, Durable %d; want 16, 21", l.First(), l.Durable())
	}
	checkRead(t, l, 0, SeqMax, 16, 21)
	if err := l.Truncate(22); err != nil { // everything
		t.Fatal(err)
	}
	checkRead(t, l, 0, SeqMax, 1, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if kvs := rawChunks(t, fs); len(kvs) != 0 {
		t.Fatalf("after truncating everything %d chunks remain", len(kvs))
	}
	l = openLog(t, fs, Options{})
	defer l.Close()
	if st := l.Stats(); st.First != 22 || st.Durable != 21 || st.Next != 22 {
		t.Fatalf("reopen of an emptied log: %+v", st)
	}
	if seq := appendWait(t, l, seqRecord(22)); seq != 22 {
		t.Fatalf("next seq %d, want 22", seq)
	}
	checkRead(t, l, 0, SeqMax, 22, 22)
}

// TestReopenContinuesFromChunk: the next seq after a reopen follows the last
// record of the last chunk, not its key.
func TestReopenContinuesFromChunk(t *testing.T) {
	fs := vfs.NewMem()
	writeGroups(t, fs, 1, 6) // 1, 2..7
	l := openLog(t, fs, Options{})
	if l.Durable() != 7 || l.Stats().Next != 8 {
		t.Fatalf("reopen: %+v, want Durable 7, Next 8", l.Stats())
	}
	if seq := appendWait(t, l, seqRecord(8)); seq != 8 {
		t.Fatalf("first seq after reopen = %d, want 8", seq)
	}
	checkRead(t, l, 0, SeqMax, 1, 8)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writeGroups(t, fs, 1, 3) // 9, 10..12
	if got, want := chunkLayout(t, rawChunks(t, fs)), [][2]uint64{{1, 1}, {2, 6}, {8, 1}, {9, 1}, {10, 3}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("chunks = %v, want %v", got, want)
	}
	l = openLog(t, fs, Options{})
	defer l.Close()
	checkRead(t, l, 0, SeqMax, 1, 12)
}

// encodeChunk builds a chunk by hand: version byte, count, then each record
// with its length.
func encodeChunk(version byte, count uint64, recs ...[]byte) []byte {
	v := binary.AppendUvarint([]byte{version}, count)
	for _, r := range recs {
		v = binary.AppendUvarint(v, uint64(len(r)))
		v = append(v, r...)
	}
	return v
}

// TestCorruptChunk damages one chunk of a log in many ways. Damage to the
// last chunk (which Open reads) fails Open; damage to a middle chunk fails
// every Read that reaches it, while reads that stay before it still work.
// Every error wraps ErrCorrupt, and nothing panics.
func TestCorruptChunk(t *testing.T) {
	r := func(s uint64) []byte { return seqRecord(s) }
	good := encodeChunk(2, 3, r(2), r(3), r(4)) // the chunk at 2 holds 2..4
	cut := func(b []byte, n int) []byte { return append([]byte(nil), b[:len(b)-n]...) }
	cases := map[string][]byte{
		"empty value":          {},
		"version 0":            append([]byte{0}, good[1:]...),
		"version 3":            append([]byte{3}, good[1:]...),
		"version only":         {2},
		"count 0":              encodeChunk(2, 0),
		"count 0 with records": encodeChunk(2, 0, r(2), r(3), r(4)),
		"count too high":       encodeChunk(2, 4, r(2), r(3), r(4)),
		"count too low":        encodeChunk(2, 2, r(2), r(3), r(4)),
		"count past SeqMax":    encodeChunk(2, SeqMax, r(2)),
		"count non-minimal":    append([]byte{2, 0x83, 0x00}, good[2:]...),
		"count unterminated":   {2, 0x80, 0x80},
		"length 0":             append(encodeChunk(2, 3, r(2), r(3)), 0),
		"length too big": append(encodeChunk(2, 3, r(2), r(3)),
			binary.AppendUvarint(nil, RecordBytesMax+1)...),
		"length past end":     append(encodeChunk(2, 3, r(2), r(3)), byte(len(r(4))+1)),
		"length huge":         append(encodeChunk(2, 3, r(2), r(3)), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"length non-minimal":  append(append(encodeChunk(2, 3, r(2), r(3)), byte(len(r(4)))|0x80, 0x00), r(4)...),
		"length unterminated": append(encodeChunk(2, 3, r(2), r(3)), 0x80),
		"truncated record":    cut(good, 1),
		"truncated to length": cut(good, len(r(4))),
		"trailing garbage":    append(append([]byte(nil), good...), 0),
		"trailing record":     append(append([]byte(nil), good...), encodeChunk(2, 1, r(5))[2:]...),
		"v1 record too long":  append(r(2), make([]byte, RecordBytesMax)...),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := readChunk(Key(2), bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("readChunk: %v, want ErrCorrupt", err)
			}
			// Damage to the last chunk: Open refuses the log.
			fs := vfs.NewMem()
			writeGroups(t, fs, 1)
			rawSet(t, fs, rawKV{2, bad})
			if l, err := Open(testDir, Options{FS: fs}); !errors.Is(err, ErrCorrupt) {
				if err == nil {
					l.Close()
				}
				t.Fatalf("Open with a corrupt last chunk: %v, want ErrCorrupt", err)
			}
			// Damage to a middle chunk: Open works, Read fails once it gets there.
			fs = vfs.NewMem()
			writeGroups(t, fs, 1, 3, 2) // 1, 2..4, 5..6
			rawSet(t, fs, rawKV{2, bad})
			l := openLog(t, fs, Options{})
			defer l.Close()
			if l.Durable() != 6 {
				t.Fatalf("Durable %d, want 6", l.Durable())
			}
			checkRead(t, l, 1, 1, 1, 1)
			for _, from := range []uint64{1, 2, 3, 4} {
				n := 0
				err := l.Read(from, SeqMax, func(uint64, []byte) error { n++; return nil })
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read(%d, ...) over the corrupt chunk: %v after %d records, want ErrCorrupt", from, err, n)
				}
				want := 0 // none of the corrupt chunk's records is handed out
				if from == 1 {
					want = 1 // seq 1, in the good chunk before it
				}
				if n != want {
					t.Fatalf("Read(%d, ...) handed out %d records, want %d", from, n, want)
				}
			}
		})
	}
}

// TestChunkHolesAndOverlaps: chunks must follow each other exactly. A missing
// chunk or one keyed inside its predecessor is corrupt.
func TestChunkHolesAndOverlaps(t *testing.T) {
	r := func(s uint64) []byte { return seqRecord(s) }
	cases := map[string][]rawKV{
		"hole":            {{5, nil}},                                                         // drop 5..6: 7.. follows 2..4
		"overlap":         {{5, nil}, {4, encodeChunk(2, 3, r(4), r(5), r(6))}},               // 2..4 then 4..6
		"hole at the end": {{7, nil}, {9, encodeChunk(2, 1, r(9))}},                           // 8 is missing: Durable() 9
		"short chunk":     {{5, encodeChunk(2, 1, r(5))}},                                     // 6 is missing
		"long chunk":      {{5, encodeChunk(2, 3, r(5), r(6), r(7))}},                         // 7 twice
		"v1 in the gap":   {{5, nil}, {6, r(6)}},                                              // 5 is missing
		"stray v1 inside": {{3, r(3)}},                                                        // 3 twice
		"missing tail":    {{7, nil}, {8, nil}, {6, encodeChunk(2, 1, r(6))}, {5, r(5)}},      // ends at 6, ok
		"all good":        {{5, encodeChunk(2, 2, r(5), r(6))}, {7, encodeChunk(2, 1, r(7))}}, // rewritten same
	}
	for name, edits := range cases {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			writeGroups(t, fs, 1, 3, 2, 1, 1) // 1, 2..4, 5..6, 7, 8
			rawSet(t, fs, edits...)
			l := openLog(t, fs, Options{})
			defer l.Close()
			var prev uint64
			err := l.Read(1, SeqMax, func(seq uint64, rec []byte) error {
				if seq != prev+1 || !bytes.Equal(rec, r(seq)) {
					return fmt.Errorf("Read handed out seq %d (%q) after %d", seq, requestID(t, rec), prev)
				}
				prev = seq
				return nil
			})
			if name == "hole" {
				if err := l.Read(5, 6, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read(5, 6) inside the hole: %v, want ErrCorrupt", err)
				}
			}
			switch name {
			case "missing tail", "all good":
				if err != nil || prev != l.Durable() {
					t.Fatalf("Read: %v, last seq %d, Durable %d", err, prev, l.Durable())
				}
			default:
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Read: %v (last seq %d), want ErrCorrupt", err, prev)
				}
			}
		})
	}
}

// TestVersion1Log opens a log written before chunks (one key per record, the
// value the record itself) and continues it with chunks: reads, reopen,
// truncation across the two formats.
func TestVersion1Log(t *testing.T) {
	fs := vfs.NewMem()
	var kvs []rawKV
	for s := uint64(3); s <= 7; s++ { // 1, 2 truncated: the floor key says 3
		kvs = append(kvs, rawKV{s, seqRecord(s)})
	}
	rawSet(t, fs, kvs...)
	db := openPebble(t, fs)
	if err := db.Set(metaFloorKey, Key(3), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l := openLog(t, fs, Options{})
	if l.First() != 3 || l.Durable() != 7 {
		t.Fatalf("version-1 log: First %d, Durable %d; want 3, 7", l.First(), l.Durable())
	}
	for from := uint64(0); from <= 8; from++ {
		for to := from; to <= 8; to++ {
			checkRead(t, l, from, to, max(from, 3), min(to, 7))
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writeGroups(t, fs, 1, 4) // 8, 9..12 as chunks after the version-1 keys
	if got, want := chunkLayout(t, rawChunks(t, fs)), [][2]uint64{{3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}, {8, 1}, {9, 4}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("chunks = %v, want %v", got, want)
	}
	l = openLog(t, fs, Options{})
	if l.First() != 3 || l.Durable() != 12 {
		t.Fatalf("mixed log: First %d, Durable %d", l.First(), l.Durable())
	}
	checkRead(t, l, 0, SeqMax, 3, 12)
	checkRead(t, l, 6, 10, 6, 10)
	if err := l.Truncate(6); err != nil {
		t.Fatal(err)
	}
	checkRead(t, l, 0, SeqMax, 6, 12)
	if err := l.Truncate(11); err != nil {
		t.Fatal(err)
	}
	checkRead(t, l, 0, SeqMax, 11, 12)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := chunkLayout(t, rawChunks(t, fs)), [][2]uint64{{9, 4}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after Truncate(11) chunks = %v, want %v", got, want)
	}
	l = openLog(t, fs, Options{})
	defer l.Close()
	if l.First() != 11 || l.Durable() != 12 {
		t.Fatalf("reopen: First %d, Durable %d", l.First(), l.Durable())
	}
	checkRead(t, l, 0, SeqMax, 11, 12)

	// A version-1 log without a floor key, as a log that was never truncated.
	fs = vfs.NewMem()
	rawSet(t, fs, rawKV{1, seqRecord(1)}, rawKV{2, seqRecord(2)})
	l2 := openLog(t, fs, Options{})
	defer l2.Close()
	if l2.First() != 1 || l2.Durable() != 2 {
		t.Fatalf("version-1 log without floor: First %d, Durable %d", l2.First(), l2.Durable())
	}
	if seq := appendWait(t, l2, seqRecord(3)); seq != 3 {
		t.Fatalf("next seq %d, want 3", seq)
	}
	checkRead(t, l2, 0, SeqMax, 1, 3)
}

// TestCorruptFloor: a floor key that cannot be a floor fails Open (it used to
// panic on a short value).
func TestCorruptFloor(t *testing.T) {
	for _, v := range [][]byte{{}, {1, 2, 3}, Key(0), Key(SeqMax + 2), append(Key(1), 0)} {
		fs := vfs.NewMem()
		writeGroups(t, fs, 1)
		openCorruptMeta(t, fs, metaFloorKey, v)
	}
}

// TestAppendRecordSize: Append refuses what a chunk cannot hold.
func TestAppendRecordSize(t *testing.T) {
	l := openLog(t, vfs.NewMem(), Options{})
	defer l.Close()
	for _, n := range []int{0, RecordBytesMax + 1} {
		if _, err := l.Append(make([]byte, n), newChanAck()); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Append of %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	big := append(seqRecord(1), make([]byte, RecordBytesMax-len(seqRecord(1)))...)
	if seq := appendWait(t, l, big); seq != 1 {
		t.Fatalf("seq %d", seq)
	}
	if l.Stats().Next != 2 {
		t.Fatalf("refused Appends used seqs: %+v", l.Stats())
	}
	_, recs := readAll(t, l, 1, 1)
	if len(recs) != 1 || !bytes.Equal(recs[0], big) {
		t.Fatalf("a %d-byte record did not read back", len(big))
	}
}

// TestChunkWriterReuse: a reused writer makes the same chunk as a new one.
func TestChunkWriterReuse(t *testing.T) {
	var w chunkWriter
	for round := 0; round < 3; round++ {
		w.reset()
		var recs [][]byte
		for i := 0; i <= round*200; i++ { // 1, 201, 401 records: 1- and 2-byte counts
			recs = append(recs, seqRecord(uint64(i+1)))
			w.add(recs[i])
		}
		if got, want := w.value(), encodeChunk(2, uint64(len(recs)), recs...); !bytes.Equal(got, want) {
			t.Fatalf("round %d: chunk of %d records differs", round, len(recs))
		}
	}
}

// openCorruptMeta stores v under the meta key of the log in fs and checks
// that Open then refuses the log with ErrCorrupt.
func openCorruptMeta(t *testing.T, fs vfs.FS, key, v []byte) {
	t.Helper()
	db := openPebble(t, fs)
	if err := db.Set(key, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err := Open(testDir, Options{FS: fs}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("Open with %q = %x: %v, want ErrCorrupt", key, v, err)
	}
}
