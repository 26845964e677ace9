package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchCPUProfile: --cpuprofile writes a profile of the run (a gzipped
// pprof file), and a path that cannot be created stops the command before any
// load.
func TestBenchCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	if err := benchMain([]string{"--targets", "engine", "--requests", "300", "--concurrency", "8", "--quiet", "--cpuprofile", path}); err != nil {
		t.Fatalf("bench: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is not a gzipped pprof file: %d bytes", len(b))
	}
	bad := filepath.Join(t.TempDir(), "missing", "cpu.prof")
	if err := benchMain([]string{"--targets", "engine", "--requests", "10", "--quiet", "--cpuprofile", bad}); err == nil {
		t.Fatalf("bench with --cpuprofile %s: no error", bad)
	}
}

// TestBenchFlagsRejected: a bad value is refused when the command line is
// parsed, with a usage error (exit code 2), before any target runs.
func TestBenchFlagsRejected(t *testing.T) {
	for _, args := range [][]string{
		{"--rate", "NaN"},
		{"--rate", "+Inf"},
		{"--rate", "1e-11"}, // below bench.RateMin
		{"--rate", "-1"},
		{"--zipf-s", "NaN"},
		{"--scenario", "zipf", "--zipf-s", "+Inf"},
		{"--confirm-ratio", "NaN"},
		{"--cancel-ratio", "NaN"},
		{"--return-ratio", "NaN"},
		{"--redis-appendfsync", "bogus"},
		{"--redis-appendfsync", "always,"}, // an empty entry is not a run
		{"--redis-appendfsync", ""},
		{"--url", "ftp://x"},
		{"--url", "not a url"},
		{"--url", "http://"},
		{"--server-pid", "-1"},
	} {
		_, _, err := parseBenchFlags(args, io.Discard)
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestBenchFlagsAccepted: the values the bad ones above are told apart from.
func TestBenchFlagsAccepted(t *testing.T) {
	args := []string{"--redis-appendfsync", " keep,no , always", "--url", "http://127.0.0.1:8080/", "--server-pid", "42"}
	f, _, err := parseBenchFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if f.url != "http://127.0.0.1:8080/" || f.serverPID != 42 || !slices.Equal(f.redisFsyncs, []string{"", "no", "always"}) {
		t.Fatalf("%q: url %q, server pid %d, appendfsync runs %q", args, f.url, f.serverPID, f.redisFsyncs)
	}
}

// TestBenchBadAppendFsyncStopsFirst: a bad --redis-appendfsync stops the
// command with exit code 2 before the targets listed ahead of redis-lua run.
func TestBenchBadAppendFsyncStopsFirst(t *testing.T) {
	start := time.Now()
	err := benchMain([]string{"--targets", "engine,redis-lua", "--redis-appendfsync", "bogus", "--duration", "2s", "--quiet"})
	var ue *exitError
	if err == nil || !errors.As(err, &ue) || ue.code != 2 {
		t.Fatalf("err %v, want a usage error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v: the engine target ran first", d)
	}
}

// TestBenchOutputDirCreated: --json and --png into a directory that does not
// exist yet (docs/bench.md uses bench-out/) create it instead of failing after
// the whole run.
func TestBenchOutputDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bench-out", "nested")
	jsonPath, pngPath := filepath.Join(dir, "x.json"), filepath.Join(dir, "x.png")
	if err := benchMain([]string{"--targets", "engine", "--requests", "200", "--concurrency", "4", "--quiet", "--json", jsonPath, "--png", pngPath}); err != nil {
		t.Fatalf("bench: %v", err)
	}
	for _, p := range []string{jsonPath, pngPath} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v (size %v)", p, err, fi)
		}
	}
}

// TestBenchBadOutputPathStopsFirst: an output path whose directory cannot be
// made stops the command before any load (no target runs, so the one
// requested here, which would run for a minute, never starts).
func TestBenchBadOutputPathStopsFirst(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := benchMain([]string{"--targets", "engine", "--duration", "1m", "--quiet", "--json", filepath.Join(file, "x.json")})
	if err == nil || !strings.Contains(err.Error(), "output directory") {
		t.Fatalf("bench with --json under a file: %v, want an output directory error", err)
	}
}
