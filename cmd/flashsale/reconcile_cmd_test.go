package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/sync/syncer"
)

func reconcileTestDB(t *testing.T) string { return testkit.MySQLDatabase(t) }

// TestReconcileCommand syncs a small history through startSync (the serve
// wiring), checks the live reconcile and the offline command, then edits
// stock_summary by hand and expects the command to report drift, exit 1.
func TestReconcileCommand(t *testing.T) {
	dsn := reconcileTestDB(t)
	dir := t.TempDir()
	ctx := context.Background()
	eng, err := engine.Open(engine.Options{Dir: dir, KeepUnsynced: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := startSync(ctx, eng, syncConfig{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	mustOK := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = eng.SetSKU(ctx, engine.SetSKURequest{SKU: "tee", Total: 10})
	mustOK(nil, err)
	_, _, err = eng.SetSKU(ctx, engine.SetSKURequest{SKU: "mug", Total: 5})
	mustOK(nil, err)
	mustOK(eng.Deduct(ctx, engine.DeductRequest{RequestID: "d1", Items: []engine.Item{{SKU: "tee", Qty: 2}, {SKU: "mug", Qty: 1}}}))
	mustOK(eng.Reserve(ctx, engine.ReserveRequest{RequestID: "r1", Items: []engine.Item{{SKU: "tee", Qty: 3}}}))
	mustOK(eng.Return(ctx, engine.ReturnRequest{ReturnID: "ret1", RequestID: "d1", Items: []engine.Item{{SKU: "mug", Qty: 1}}}))

	runner := h.(*syncRunner)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := runner.s.WaitSynced(wctx, eng.Log().Durable()); err != nil {
		t.Fatal(err)
	}
	st, err := h.Status(ctx)
	if s := st.(syncer.Status); err != nil || s.Checkpoint != 5 || s.LagRecords != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	rep, drift, err := h.Reconcile(ctx)
	if err != nil || drift {
		t.Fatalf("live reconcile: drift=%v err=%v report %+v", drift, err, rep)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	if err := reconcileRun([]string{"--data", dir, "--mysql-dsn", dsn}, &out); err != nil {
		t.Fatalf("reconcile: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "clean") {
		t.Fatalf("output: %s", out.String())
	}

	db, err := syncer.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE stock_summary SET available = available + 1, total = total + 1 WHERE sku = 'tee'"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = reconcileRun([]string{"--data", dir, "--mysql-dsn", dsn}, &out)
	var code interface{ ExitCode() int }
	if !errors.As(err, &code) || code.ExitCode() != exitDrift {
		t.Fatalf("drift: err=%v, want exit code %d\n%s", err, exitDrift, out.String())
	}
	if !strings.Contains(out.String(), "tee") || strings.Contains(out.String(), "mug ") {
		t.Fatalf("drift table should name tee only:\n%s", out.String())
	}
	t.Logf("drift table:\n%s", out.String())

	// Missing arguments and a wrong directory are trouble, not drift.
	if err := reconcileRun(nil, &out); !errors.As(err, &code) || code.ExitCode() != exitTrouble {
		t.Fatalf("no args: %v", err)
	}
}

// migratedDB returns the DSN of a fresh database with the syncer's tables
// and nothing synced (checkpoint 0), and a data directory with an empty log
// whose reconcile against it is clean.
func migratedDB(t *testing.T) (dsn, dir string) {
	t.Helper()
	dsn, dir = reconcileTestDB(t), t.TempDir()
	db, err := syncer.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := syncer.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := reconcileRun([]string{"--data", dir, "--mysql-dsn", dsn}, &out); err != nil || !strings.Contains(out.String(), "clean") {
		t.Fatalf("reconcile of an empty log: %v\n%s", err, out.String())
	}
	return dsn, dir
}

// TestReconcileStrayArguments: an argument that is not a flag (which ends
// flag parsing, so the flags after it would be ignored) is a usage error,
// exit 2, and nothing is checked or printed.
func TestReconcileStrayArguments(t *testing.T) {
	dsn, dir := migratedDB(t)
	for _, args := range [][]string{
		{"--data", dir, "--mysql-dsn", dsn, "--json", "stray"},
		{"--data", dir, "--mysql-dsn", dsn, "stray", "--json"},
	} {
		var out strings.Builder
		err := reconcileRun(args, &out)
		var code interface{ ExitCode() int }
		if !errors.As(err, &code) || code.ExitCode() != exitTrouble || !strings.Contains(err.Error(), "stray") || out.Len() != 0 {
			t.Errorf("%q: %v, want exit code %d naming the argument and no report\n%s", args, err, exitTrouble, out.String())
		}
	}
}

// TestReconcileNotADataDirectory: a directory that holds no engine log (a
// wrong --data, or the log directory itself) is "could not check", exit 2,
// and reconcile writes nothing into it (it used to create an empty log
// there and, with nothing synced yet, answer clean).
func TestReconcileNotADataDirectory(t *testing.T) {
	dsn, dir := migratedDB(t)
	for _, d := range []string{t.TempDir(), filepath.Join(dir, "log")} {
		before, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err = reconcileRun([]string{"--data", d, "--mysql-dsn", dsn}, &out)
		var code interface{ ExitCode() int }
		if !errors.As(err, &code) || code.ExitCode() != exitTrouble {
			t.Errorf("--data %s: %v, want exit code %d\n%s", d, err, exitTrouble, out.String())
		}
		after, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Errorf("--data %s: reconcile wrote into it: %d entries before, %d after", d, len(before), len(after))
		}
	}
}

// TestReconcileRefusesForeignLog: MySQL holds the history of log A; a server
// on another data directory (log B, which went through the same catalog
// set-up, as --demo or a set-up script does on every fresh directory) has the
// same state at A's checkpoint seq. Comparing B's state with A's tables means
// nothing (a seq counts only in the log that numbered it): the live and the
// offline reconcile must refuse (exit 2), not report clean.
func TestReconcileRefusesForeignLog(t *testing.T) {
	dsn := reconcileTestDB(t)
	ctx := context.Background()
	setUp := func(eng *engine.Engine) {
		t.Helper()
		for _, s := range []engine.SetSKURequest{{SKU: "tee", Total: 10}, {SKU: "mug", Total: 5}} {
			if _, _, err := eng.SetSKU(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, err := engine.Open(engine.Options{Dir: t.TempDir(), KeepUnsynced: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := startSync(ctx, a, syncConfig{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	setUp(a)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.(*syncRunner).s.WaitSynced(wctx, a.Log().Durable()); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(h.Close(), a.Close()); err != nil {
		t.Fatal(err)
	}

	dirB := t.TempDir()
	b, err := engine.Open(engine.Options{Dir: dirB, KeepUnsynced: true})
	if err != nil {
		t.Fatal(err)
	}
	setUp(b)
	h, err = startSync(ctx, b, syncConfig{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	rep, drift, err := h.Reconcile(ctx)
	if !errors.Is(err, syncer.ErrForeignLog) {
		t.Fatalf("live reconcile of log B against log A's tables: drift=%v err=%v report %+v, want ErrForeignLog", drift, err, rep)
	}
	if err := errors.Join(h.Close(), b.Close()); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	err = reconcileRun([]string{"--data", dirB, "--mysql-dsn", dsn}, &out)
	var code interface{ ExitCode() int }
	if !errors.As(err, &code) || code.ExitCode() != exitTrouble || !errors.Is(err, syncer.ErrForeignLog) {
		t.Fatalf("offline reconcile of log B against log A's tables: err=%v, want exit %d and ErrForeignLog\n%s", err, exitTrouble, out.String())
	}
}
