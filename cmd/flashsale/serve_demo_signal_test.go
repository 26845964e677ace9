package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cancelOn is a slog handler that calls cancel when a record with message
// msg is logged, and discards every record.
type cancelOn struct {
	msg    string
	cancel context.CancelFunc
}

func (h cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOn) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.cancel()
	}
	return nil
}
func (h cancelOn) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h cancelOn) WithGroup(string) slog.Handler      { return h }

// TestServeDemoSignalAfterRecovery: a signal that arrives once the engine
// has recovered but before --demo has created its catalog stops serve
// cleanly (no error: exit code 0), as a signal at any other moment does.
func TestServeDemoSignalAfterRecovery(t *testing.T) {
	port := freePort(t)
	f, _, err := parseServeFlags([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--data", t.TempDir(),
		"--admin-listen", "", "--demo"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The signal: right after the engine is open, before the catalog.
	log := slog.New(cancelOn{msg: "engine recovered", cancel: cancel})
	var out strings.Builder
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cancel, f, log, &out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after a signal following recovery: %v (exit code 1, want 0)", err)
		}
	case <-time.After(recoveryTimeout):
		t.Fatal("serve did not return after the signal")
	}
}
