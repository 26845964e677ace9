package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/sync/syncer"
	"github.com/flashsale/flashsale/wal"
)

// errNoSyncer is returned by the sync wiring when no syncer can run (no DSN).
var errNoSyncer = errors.New("syncer: no MySQL DSN given")

// reconcileTimeout bounds a whole `flashsale reconcile` run.
const reconcileTimeout = 10 * time.Minute

// Exit codes of `flashsale reconcile`: 0 clean, 1 drift, 2 could not check.
const (
	exitDrift   = 1
	exitTrouble = 2
)

// reconcileMain runs `flashsale reconcile --data DIR --mysql-dsn DSN`: the
// engine's state as of MySQL's checkpoint, read offline from DIR (the server
// must not be running; on a live server use the admin endpoint), must equal
// stock_summary, and the sums of stock_flow must equal the summary. It prints
// a table of any drift and exits 1 on drift, 2 when it could not check.
func reconcileMain(args []string) error {
	return reconcileRun(args, os.Stdout)
}

func reconcileRun(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	dataDir := fs.String("data", "", "the engine's data directory (required; the server must be stopped)")
	dsn := fs.String("mysql-dsn", "", "MySQL DSN of the synced database, e.g. root@tcp(127.0.0.1:3306)/test (required)")
	name := fs.String("sync-name", syncer.CheckpointNameDefault, "sync_checkpoint row to check")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: flashsale reconcile --data DIR --mysql-dsn DSN [--json] [--sync-name NAME]\n\n"+
			"Compares the engine's state at MySQL's sync checkpoint with stock_summary, and the sums of\n"+
			"stock_flow with the summary. Exit status: 0 clean, 1 drift, 2 could not check.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{exitTrouble, err}
	}
	if fs.NArg() > 0 {
		return &exitError{exitTrouble, fmt.Errorf("reconcile: unexpected arguments %q", fs.Args())}
	}
	if !syncer.ValidName(*name) {
		return &exitError{exitTrouble, fmt.Errorf("reconcile: --sync-name %q: want 1..64 of A-Z a-z 0-9 . _ : -", *name)}
	}
	if *dataDir == "" || *dsn == "" {
		fs.Usage()
		return &exitError{exitTrouble, errors.New("reconcile: --data and --mysql-dsn are required")}
	}
	if st, err := os.Stat(*dataDir); err != nil || !st.IsDir() {
		return &exitError{exitTrouble, fmt.Errorf("reconcile: data directory %s: not a directory (%v)", *dataDir, err)}
	}
	// Opening the log creates it when it is missing: a wrong directory
	// would get an empty log, and compare clean while nothing is synced.
	if st, err := os.Stat(filepath.Join(*dataDir, "log")); err != nil || !st.IsDir() {
		return &exitError{exitTrouble, fmt.Errorf("reconcile: %s is not an engine's data directory: it holds no log directory (%v)", *dataDir, err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
	defer cancel()
	db, err := syncer.OpenDB(*dsn)
	if err != nil {
		return &exitError{exitTrouble, err}
	}
	defer db.Close()
	logID, err := readLogID(*dataDir)
	if err != nil {
		return &exitError{exitTrouble, fmt.Errorf("reconcile: read %s (is the server still running? use its admin endpoint then): %w", *dataDir, err)}
	}
	state := func(_ context.Context, seq uint64) (map[string]syncer.Counts, error) {
		st, err := engine.ReadState(vfs.Default, *dataDir, seq)
		if err != nil {
			return nil, fmt.Errorf("read %s (is the server still running? use its admin endpoint then): %w", *dataDir, err)
		}
		if st.Seq != seq {
			return nil, fmt.Errorf("the log in %s ends at seq %d, before MySQL's checkpoint %d: wrong data directory, or it was lost (docs/sync.md, disaster recovery)", *dataDir, st.Seq, seq)
		}
		return skuCounts(st), nil
	}
	rep, err := syncer.Reconcile(ctx, db, *name, logID, state)
	if err != nil {
		return &exitError{exitTrouble, err}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return &exitError{exitTrouble, err}
		}
	} else if err := rep.WriteTable(stdout); err != nil {
		return &exitError{exitTrouble, err}
	}
	if !rep.Clean {
		return &exitError{exitDrift, fmt.Errorf("reconcile: drift in %d SKUs, %d table problems", len(rep.Drift), len(rep.Problems))}
	}
	return nil
}

// readLogID returns the id (wal.Log.ID) of the engine's log in dataDir, which
// the engine keeps in dataDir/log: reconcile refuses a checkpoint pinned to
// another log.
func readLogID(dataDir string) (string, error) {
	l, err := wal.Open(filepath.Join(dataDir, "log"), wal.Options{})
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.ID(), nil
}

// skuCounts converts an engine state for syncer.Reconcile.
func skuCounts(st *engine.State) map[string]syncer.Counts {
	m := map[string]syncer.Counts{}
	for _, s := range st.SKUs() {
		m[s.SKU] = syncer.Counts{Total: s.Total, Available: s.Available, Reserved: s.Reserved, Sold: s.Sold}
	}
	return m
}
