package wal

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLogIDSurvivesReopenAndDiffers: a new log gets a well-formed id; the
// id stays the same across reopen and truncation (even of every record);
// another new log gets another id.
func TestLogIDSurvivesReopenAndDiffers(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, Options{})
	id := l.ID()
	if !ValidLogID(id) {
		t.Fatalf("new log id %q is not 32 lowercase hex characters", id)
	}
	for i := 0; i < 5; i++ {
		appendWait(t, l, testRecord("r"))
	}
	if err := l.Truncate(l.Durable() + 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		l = openLog(t, fs, Options{})
		if l.ID() != id {
			t.Fatalf("reopen %d: id %q, want %q", round, l.ID(), id)
		}
		if l.Durable() != 5 || l.First() != 6 {
			t.Fatalf("reopen %d: Durable %d, First %d; want 5, 6", round, l.Durable(), l.First())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	other := openLog(t, vfs.NewMem(), Options{})
	defer other.Close()
	if other.ID() == id || !ValidLogID(other.ID()) {
		t.Fatalf("two new logs: ids %q and %q", id, other.ID())
	}
}

// TestLogIDFromRand: the id is the hex of the bytes Options.Rand gives, and
// a reader that fails fails Open (no log without an id is ever handed out).
func TestLogIDFromRand(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab, 0x01}, IDRandBytes/2)
	l := openLog(t, vfs.NewMem(), Options{Rand: bytes.NewReader(raw)})
	defer l.Close()
	if want := strings.Repeat("ab01", IDRandBytes/2); l.ID() != want {
		t.Fatalf("id %q, want %q", l.ID(), want)
	}
	if _, err := Open(testDir, Options{FS: vfs.NewMem(), Rand: bytes.NewReader(raw[:3])}); err == nil {
		t.Fatal("Open with a short random source: no error")
	}
}

// TestLogIDCreatedForOldLog: a log written before ids existed (no id key)
// opens with its records intact and gets an id, which then stays.
func TestLogIDCreatedForOldLog(t *testing.T) {
	fs := vfs.NewMem()
	rawSet(t, fs, rawKV{1, seqRecord(1)}, rawKV{2, seqRecord(2)})
	if v := rawID(t, fs); v != nil {
		t.Fatalf("old log already has an id %q", v)
	}
	l := openLog(t, fs, Options{})
	id := l.ID()
	if !ValidLogID(id) || l.Durable() != 2 {
		t.Fatalf("old log opened with id %q, Durable %d", id, l.Durable())
	}
	if seqs, _ := readAll(t, l, 1, 2); len(seqs) != 2 {
		t.Fatalf("records %v, want 1, 2", seqs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if v := rawID(t, fs); string(v) != id {
		t.Fatalf("id on disk %q, want %q", v, id)
	}
	l = openLog(t, fs, Options{})
	defer l.Close()
	if l.ID() != id {
		t.Fatalf("reopen: id %q, want %q", l.ID(), id)
	}
}

// TestLogIDCorrupt: an id key that is not 32 lowercase hex characters fails
// Open with ErrCorrupt.
func TestLogIDCorrupt(t *testing.T) {
	for _, v := range []string{"", "abc", strings.Repeat("A", 32), strings.Repeat("0", 31) + "g",
		strings.Repeat("0", 33), strings.Repeat("0", 31) + "\x00"} {
		fs := vfs.NewMem()
		l := openLog(t, fs, Options{})
		appendWait(t, l, testRecord("r"))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		openCorruptMeta(t, fs, metaIDKey, []byte(v))
	}
}

// TestMetaKeysSortAfterChunks: both meta keys sort after the key of the
// largest seq, so the chunk walks (bounded by Key(SeqMax+1)) never see them.
func TestMetaKeysSortAfterChunks(t *testing.T) {
	for _, k := range [][]byte{metaFloorKey, metaIDKey} {
		if bytes.Compare(Key(SeqMax+1), k) >= 0 {
			t.Fatalf("meta key %q sorts at or before the chunk bound", k)
		}
	}
}

// rawID returns the id key's value in the closed log in fs, nil if absent.
func rawID(t *testing.T, fs vfs.FS) []byte {
	t.Helper()
	db := openPebble(t, fs)
	defer db.Close()
	v, closer, err := db.Get(metaIDKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return append([]byte(nil), v...)
}
