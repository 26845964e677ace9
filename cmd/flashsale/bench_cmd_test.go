package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
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
	} {
		_, _, err := parseBenchFlags(args, io.Discard)
		var ue *exitError
		if err == nil || !errors.As(err, &ue) || ue.code != 2 {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
