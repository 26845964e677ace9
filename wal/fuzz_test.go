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
// decoding that encoding must give the same record.
//
// The format is not canonical: varints may carry redundant continuation bytes
// (see TestDecodeNonMinimalVarint), so encode(decode(x)) == x holds only for
// minimally encoded x. The test checks decode(encode(decode(x))) == decode(x)
// always, and byte equality whenever the re-encoding is the same length.
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

// TestWriteFuzzCorpus regenerates the checked-in seed corpus of FuzzDecode
// (testdata/fuzz/FuzzDecode): two valid records of each kind. It runs only with
// WAL_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("WAL_WRITE_CORPUS") != "1" {
		t.Skip("set WAL_WRITE_CORPUS=1 to rewrite testdata/fuzz/FuzzDecode")
	}
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
