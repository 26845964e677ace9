package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
)

// recoveryTimeout bounds each wait of the recovery tests (polls, exits);
// none of them asserts a duration.
const recoveryTimeout = 30 * time.Second

// holdRecovery makes serve's engine.Open wait until the returned release is
// called (or the test ends); open then runs (nil: it fails instead). entered
// is closed when serve has begun opening the engine.
func holdRecovery(t *testing.T, open func(engine.Options) (*engine.Engine, error)) (entered <-chan struct{}, release func()) {
	t.Helper()
	in, hold := make(chan struct{}), make(chan struct{})
	var once, inOnce sync.Once
	release = func() { once.Do(func() { close(hold) }) }
	orig := openEngine
	openEngine = func(o engine.Options) (*engine.Engine, error) {
		inOnce.Do(func() { close(in) })
		<-hold
		if open == nil {
			return nil, errors.New("test: recovery abandoned")
		}
		return open(o)
	}
	t.Cleanup(func() {
		release()
		openEngine = orig
	})
	return in, release
}

// readyz polls GET /readyz until the server answers at all, and returns that
// answer.
func readyz(t *testing.T, hc *http.Client, base string) (int, http.Header, []byte) {
	t.Helper()
	deadline := time.Now().Add(recoveryTimeout)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(base + "/readyz")
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return resp.StatusCode, resp.Header, b
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no answer from %s/readyz within %v", base, recoveryTimeout)
	return 0, nil, nil
}

// wantRecovering checks a /readyz answer during recovery.
func wantRecovering(t *testing.T, st int, h http.Header, b []byte) {
	t.Helper()
	var body struct {
		Ready *bool
		Code  string
	}
	if st != 503 || json.Unmarshal(b, &body) != nil || body.Ready == nil || *body.Ready || body.Code != "recovering" ||
		h.Get("Retry-After") != "1" {
		t.Fatalf("/readyz during recovery: %d Retry-After %q %s", st, h.Get("Retry-After"), b)
	}
}

// TestServeRecovering: serve binds its listener before the engine recovers.
// While recovery runs, /healthz answers 200, /readyz 503 recovering and the
// API 503 unavailable (all with Retry-After where 503); once the engine is
// open /readyz answers 200 and the API serves.
func TestServeRecovering(t *testing.T) {
	entered, release := holdRecovery(t, engine.Open)
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	f, _, err := parseServeFlags([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--data", t.TempDir(),
		"--admin-listen", "", "--admin-token", crashToken}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cancel, f, slog.New(slog.DiscardHandler), io.Discard) }()
	hc := &http.Client{Timeout: 5 * time.Second}

	st, h, b := readyz(t, hc, base)
	wantRecovering(t, st, h, b)
	<-entered
	if st, b := call(hc, "GET", base+"/healthz", "", ""); st != 200 {
		t.Fatalf("/healthz during recovery: %d %s", st, b)
	}
	if st, b := call(hc, "PUT", base+"/v1/skus/tv", crashToken, `{"total":5}`); st != 503 {
		t.Fatalf("PUT during recovery: %d %s, want 503", st, b)
	}

	release()
	deadline := time.Now().Add(recoveryTimeout)
	for {
		st, h, b := readyz(t, hc, base)
		if st == 200 {
			break
		}
		if wantRecovering(t, st, h, b); time.Now().After(deadline) {
			t.Fatalf("not ready within %v of the end of recovery", recoveryTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, b := call(hc, "PUT", base+"/v1/skus/tv", crashToken, `{"total":5}`); st != 200 {
		t.Fatalf("PUT after recovery: %d %s", st, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(recoveryTimeout):
		t.Fatal("serve did not return after cancel")
	}
}

// TestServeSignalDuringRecovery: SIGTERM while the engine recovers stops
// serve without waiting for the recovery (which here never ends), with no
// error (exit code 0) and the listener closed.
func TestServeSignalDuringRecovery(t *testing.T) {
	entered, _ := holdRecovery(t, nil)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	done := make(chan error, 1)
	go func() {
		done <- serveMain([]string{"--listen", addr, "--data", t.TempDir(), "--admin-listen", "", "--log-level", "warn"})
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	// An answer from /readyz means serveMain handles SIGTERM already: it
	// registers for signals before it listens.
	st, h, b := readyz(t, hc, "http://"+addr)
	wantRecovering(t, st, h, b)
	<-entered
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGTERM during recovery: %v", err)
		}
	case <-time.After(recoveryTimeout):
		t.Fatal("serve did not return after SIGTERM during recovery")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the API listener is still bound after serve returned: %v", err)
	}
	ln.Close()
}
