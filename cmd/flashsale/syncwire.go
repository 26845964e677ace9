package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-sql-driver/mysql"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/sync/syncer"
)

// syncConfig is what `serve` passes to the syncer. DSN and Logger are set by
// serve; the rest by the flags addSyncFlags registers.
type syncConfig struct {
	DSN    string
	Logger *slog.Logger
	// Name is the sync_checkpoint row (one per engine log).
	Name string
}

// addSyncFlags registers the syncer's own `serve` flags into cfg.
func addSyncFlags(fs *flag.FlagSet, cfg *syncConfig) {
	fs.StringVar(&cfg.Name, "sync-name", syncer.CheckpointNameDefault, "sync_checkpoint row this engine's log syncs under")
}

// syncHandle is the running syncer as the server sees it: status for
// GET /v1/sync and an on-demand reconcile for the admin endpoint.
type syncHandle interface {
	Status(ctx context.Context) (any, error)
	Reconcile(ctx context.Context) (report any, drift bool, err error)
	Close() error
}

// startSync starts the syncer inside `serve` when a DSN is given. It returns
// at once, even with MySQL down (the syncer retries by itself, the engine
// keeps selling). The engine must be opened with KeepUnsynced. Status
// returns a syncer.Status; Reconcile a *syncer.Report checked against the
// live engine (eng.StateAt at MySQL's checkpoint).
func startSync(ctx context.Context, eng *engine.Engine, cfg syncConfig) (syncHandle, error) {
	if cfg.DSN == "" {
		return nil, errNoSyncer
	}
	if cfg.Name == "" {
		cfg.Name = syncer.CheckpointNameDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	quietDriver(cfg.Logger)
	db, err := syncer.OpenDB(cfg.DSN)
	if err != nil {
		return nil, err
	}
	s := syncer.Start(syncer.Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced, Name: cfg.Name, Logger: cfg.Logger})
	return &syncRunner{s: s, db: db, eng: eng, name: cfg.Name}, nil
}

// syncRunner implements syncHandle.
type syncRunner struct {
	s    *syncer.Syncer
	db   *sql.DB
	eng  *engine.Engine
	name string
}

func (r *syncRunner) Status(context.Context) (any, error) { return r.s.Status(), nil }

func (r *syncRunner) Reconcile(ctx context.Context) (any, bool, error) {
	rep, err := syncer.Reconcile(ctx, r.db, r.name, r.eng.Log().ID(), func(_ context.Context, seq uint64) (map[string]syncer.Counts, error) {
		st, err := r.eng.StateAt(seq)
		if err != nil {
			return nil, err
		}
		return skuCounts(st), nil
	})
	if err != nil {
		return nil, false, err
	}
	return rep, !rep.Clean, nil
}

func (r *syncRunner) Close() error {
	return errors.Join(r.s.Close(), r.db.Close())
}

// rebuildFromMySQL is `serve --rebuild-from-mysql`: call it after opening a
// FRESH engine (empty data directory) and before startSync. It restores
// every SKU from stock_summary with total = available, archives the old
// tables and returns what it could not know (log it, show it to the operator).
func rebuildFromMySQL(ctx context.Context, eng *engine.Engine, cfg syncConfig) (*syncer.RebuildReport, error) {
	if cfg.DSN == "" {
		return nil, fmt.Errorf("--rebuild-from-mysql: %w", errNoSyncer)
	}
	db, err := syncer.OpenDB(cfg.DSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rep, err := syncer.RebuildFromMySQL(ctx, db, cfg.Name, eng.Log(), func(ctx context.Context, sku string, total int64) error {
		_, _, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: sku, Total: total})
		return err
	})
	if err != nil {
		return nil, err
	}
	if cfg.Logger != nil {
		cfg.Logger.Warn("rebuilt from MySQL", "skus", len(rep.SKUs), "checkpoint", rep.Checkpoint,
			"not_resold", rep.NotResold, "archived", rep.Archived, "unknown", rep.Unknown)
	}
	return rep, nil
}

var quietOnce sync.Once

// quietDriver sends the MySQL driver's own log lines (one per broken
// connection) to slog at debug level instead of stderr.
func quietDriver(l *slog.Logger) {
	quietOnce.Do(func() {
		mysql.SetLogger(mysql.Logger(driverLogger{l}))
	})
}

type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) { d.l.Debug(fmt.Sprint(v...), "component", "mysql") }
