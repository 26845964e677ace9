package wal

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzMinimizeDefault is this package's default for -fuzzminimizetime (go
// test's own default is 60s). Coverage-guided runs of this package are
// instrumented together with all of Pebble, and minimizing one interesting
// input of a few kilobytes (the fuzzer learns valid checksums) takes hundreds
// of thousands of executions: with the default, the 10 s run of `make test`
// spends its whole time minimizing one input. 200 executions per input keeps
// it fuzzing (about 10,000 execs/s on 2 cores). An explicit flag wins.
const fuzzMinimizeDefault = "200x"

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.fuzzminimizetime" })
	if !explicit {
		if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeDefault); err != nil {
			fmt.Fprintln(os.Stderr, "wal tests:", err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// FuzzDecode feeds arbitrary bytes to Record.Decode. Decode must never panic
// and must refuse anything it cannot fully validate with an error wrapping
// ErrCorrupt. What it accepts must be a valid record that encodes again, and
// decoding that encoding must give the same record. The format is canonical
// (Decode refuses non-minimal varints, see TestDecodeNonMinimalVarint), so
// the re-encoding must also be byte for byte the input.
func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range allKinds() {
		r := randRecord(rng, k)
		f.Add(r.Encode(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{FormatVersion, byte(KindDeduct), 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		err := r.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid record: %v\n%+v", err, r)
		}
		enc := r.Encode(nil)
		var r2 Record
		if err := r2.Decode(enc); err != nil {
			t.Fatalf("re-encoding of a decoded record does not decode: %v\n%+v", err, r)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("decode(encode(decode(x))) != decode(x):\n%+v\n%+v", r2, r)
		}
		// The format is canonical (minimal varints only): a record has one
		// encoding, so whatever decodes re-encodes to the same bytes.
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, enc)
		}
	})
}

// FuzzChunk feeds arbitrary values (under an arbitrary key seq) to the chunk
// checker, readChunk. It must never panic and must refuse with an error
// wrapping ErrCorrupt whatever is not a well-formed chunk. What it accepts
// holds exactly its count of records, all inside SeqMax; and since the chunk
// encoding is canonical, writing those records again with the writer Append
// uses (chunkWriter) gives the same bytes.
func FuzzChunk(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := validSamples(rng)
	var w chunkWriter
	for i := 1; i <= 3; i++ {
		w.reset()
		for _, r := range recs[:i] {
			w.add(r)
		}
		f.Add(uint64(1), append([]byte(nil), w.value()...))
	}
	f.Add(uint64(7), recs[0])                    // a version-1 value
	f.Add(uint64(SeqMax), []byte{2, 1, 1, 0xaa}) // a one-byte record at the last seq
	f.Add(uint64(1), []byte{})
	f.Add(uint64(0), []byte{2, 1, 1, 0})
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		c, err := readChunk(Key(seq), v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("readChunk error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if c.first != seq || seq == 0 || c.n == 0 || c.first+c.n-1 > SeqMax {
			t.Fatalf("readChunk accepted seq %d with first %d, count %d", seq, c.first, c.n)
		}
		var got []uint64
		var w chunkWriter
		w.reset()
		err = c.each(0, SeqMax, func(s uint64, rec []byte) error {
			if len(rec) == 0 || len(rec) > RecordBytesMax {
				t.Fatalf("record of %d bytes", len(rec))
			}
			got = append(got, s)
			w.add(rec)
			return nil
		})
		if err != nil {
			t.Fatalf("each over an accepted chunk: %v", err)
		}
		if uint64(len(got)) != c.n || got[0] != seq || got[len(got)-1] != seq+c.n-1 {
			t.Fatalf("each handed out seqs %v for a chunk of %d records at %d", got, c.n, seq)
		}
		if c.v1 {
			if v[0] != FormatVersion || !bytes.Equal(c.body, v) {
				t.Fatalf("version-1 value misread")
			}
			return
		}
		if enc := w.value(); !bytes.Equal(enc, v) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", v, enc)
		}
		// A sub-range hands out exactly its part.
		mid := seq + c.n/2
		var part []uint64
		_ = c.each(mid, mid, func(s uint64, _ []byte) error { part = append(part, s); return nil })
		if len(part) != 1 || part[0] != mid {
			t.Fatalf("each(%d, %d) = %v", mid, mid, part)
		}
	})
}

// TestWriteFuzzCorpus regenerates the checked-in seed corpora:
// testdata/fuzz/FuzzDecode, two valid records of each kind, and
// testdata/fuzz/FuzzChunk, a few valid and corrupt chunks. It runs only with
// WAL_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("WAL_WRITE_CORPUS") != "1" {
		t.Skip("set WAL_WRITE_CORPUS=1 to rewrite testdata/fuzz/FuzzDecode and FuzzChunk")
	}
	writeChunkCorpus(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(20240601, 7))
	for _, k := range allKinds() {
		for i := 0; i < 2; i++ {
			r := randRecord(rng, k)
			if len(r.Items) > 3 {
				r.Items = r.Items[:3]
			}
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", r.Encode(nil))
			name := filepath.Join(dir, fmt.Sprintf("%s-%d", k, i))
			if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeChunkCorpus writes testdata/fuzz/FuzzChunk: chunks of 1, 2, 5 and 130
// small records (a two-byte count), a version-1 value, and damaged chunks (cut
// short, a trailing byte, a bad count, a zero length).
func writeChunkCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzChunk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(20260101, 11))
	chunkOf := func(n int) []byte {
		var w chunkWriter
		w.reset()
		for i := 0; i < n; i++ {
			r := randRecord(rng, allKinds()[rng.IntN(len(allKinds()))])
			if len(r.Items) > 2 {
				r.Items = r.Items[:2]
			}
			w.add(r.Encode(nil))
		}
		return append([]byte(nil), w.value()...)
	}
	one, two, five := chunkOf(1), chunkOf(2), chunkOf(5)
	var w chunkWriter // 130 small records: a two-byte count in a small seed
	w.reset()
	for i := 0; i < 130; i++ {
		r := Record{Kind: KindDeduct, RequestID: fmt.Sprint(i), Items: []Item{{SKU: "s", Qty: 1}}}
		w.add(r.Encode(nil))
	}
	many := w.value()
	v1 := validSamples(rng)[2]
	seeds := []struct {
		name string
		seq  uint64
		v    []byte
	}{
		{"chunk-1", 1, one},
		{"chunk-2", 100, two},
		{"chunk-5", 1 << 40, five},
		{"chunk-130", 7, many},
		{"chunk-at-seqmax", SeqMax, one},
		{"v1-record", 3, v1},
		{"cut-short", 1, five[:len(five)-3]},
		{"trailing-byte", 1, append(append([]byte(nil), two...), 0)},
		{"count-too-high", 1, append([]byte{2, 3}, two[2:]...)},
		{"zero-length", 1, []byte{2, 1, 0}},
	}
	for _, s := range seeds {
		content := fmt.Sprintf("go test fuzz v1\nuint64(%d)\n[]byte(%q)\n", s.seq, s.v)
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
