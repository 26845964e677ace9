package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/flashsale/flashsale/wal"
)

// Batch and retry limits. A batch is one MySQL transaction.
const (
	// BatchRecordsMax caps the log records in one batch; the rest go in the
	// next batch. After a failed batch the cap is halved, and doubled back
	// after each batch that commits.
	BatchRecordsMax = 4096
	// BatchBytesMax caps the encoded log bytes read into one batch (the
	// record that crosses it is the last one in); the SQL sent is about
	// three times this.
	BatchBytesMax = 2 << 20
	// BatchLingerMax is how long a batch that is not full waits for more
	// durable records before it is written anyway: the latency the syncer
	// adds to amortise one commit over more records.
	BatchLingerMax = 5 * time.Millisecond
	// TxTimeoutMax bounds one batch transaction; past it the transaction is
	// abandoned (rolled back) and retried with half the records.
	TxTimeoutMax = 60 * time.Second
	// RetryBackoffMin and RetryBackoffMax bound the wait after a failed
	// batch: it doubles from the minimum to the cap and resets on success.
	RetryBackoffMin = 50 * time.Millisecond
	RetryBackoffMax = 5 * time.Second
)

// logIDBytesMax is the width of sync_checkpoint.log_id.
const logIDBytesMax = 64

// CheckpointNameDefault is the sync_checkpoint row the syncer uses unless
// told otherwise.
const CheckpointNameDefault = "flashsale"

// Source is the log the syncer tails; *wal.Log implements it. Read never
// hands out records beyond Durable. ID names the log for good (wal.Log.ID):
// the checkpoint is pinned to it, so that the seqs of another log are never
// taken for this one's. It must not be empty and must not change.
type Source interface {
	ID() string
	Durable() uint64
	First() uint64
	WaitDurable(ctx context.Context, after uint64) (uint64, error)
	Read(from, to uint64, fn func(seq uint64, rec []byte) error) error
}

// Config configures a Syncer.
type Config struct {
	DB  *sql.DB // see OpenDB
	Log Source
	// MarkSynced, if set, is told the checkpoint after every commit (and on
	// start), so the engine may truncate the log below it.
	MarkSynced func(seq uint64)
	Name       string           // sync_checkpoint.name; "" = CheckpointNameDefault
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now
	// BatchRecordsMax overrides the constant of the same name when > 0
	// (tests and benchmarks use it to vary batch sizes).
	BatchRecordsMax int
	// txTimeout overrides TxTimeoutMax when > 0 (tests: a MySQL slower than
	// the timeout without waiting a minute per batch).
	txTimeout time.Duration
}

// Syncer folds the log into MySQL. Start it with Start; Status, WaitSynced
// and Close are safe for concurrent use.
type Syncer struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
	// batchMax caps the records of the next batch: cfg.BatchRecordsMax at
	// first, half the records of a batch that failed, doubled (up to
	// cfg.BatchRecordsMax) after each that commits. step's goroutine only.
	batchMax int

	checkpoint atomic.Uint64
	batches    atomic.Uint64
	rows       atomic.Uint64
	records    atomic.Uint64
	errs       atomic.Uint64

	mu        sync.Mutex
	notify    chan struct{} // closed and replaced when the checkpoint moves
	lastErr   error
	lastErrAt time.Time
	ready     bool  // schema migrated and checkpoint loaded
	stopped   error // the permanent error Run stopped on, if any
}

// Metrics, in VictoriaMetrics' default set. The lag gauges read the most
// recently started Syncer of the process.
var (
	metricBatches = metrics.NewCounter("flashsale_sync_batches_total")
	metricRecords = metrics.NewCounter("flashsale_sync_records_total")
	metricRows    = metrics.NewCounter("flashsale_sync_rows_total")
	metricErrors  = metrics.NewCounter("flashsale_sync_errors_total")
	metricBatchS  = metrics.NewHistogram("flashsale_sync_batch_duration_seconds")
	active        atomic.Pointer[Syncer]
	_             = metrics.NewGauge("flashsale_sync_lag_records", func() float64 {
		if s := active.Load(); s != nil {
			return float64(s.lagRecords())
		}
		return 0
	})
	_ = metrics.NewGauge("flashsale_sync_lag_seconds", func() float64 {
		if s := active.Load(); s != nil {
			return s.lagSeconds()
		}
		return 0
	})
	_ = metrics.NewGauge("flashsale_sync_checkpoint_seq", func() float64 {
		if s := active.Load(); s != nil {
			return float64(s.checkpoint.Load())
		}
		return 0
	})
)

// ValidName reports whether name can name a sync_checkpoint row: 1 to 64
// bytes of A-Z a-z 0-9 . _ : - (the ids' alphabet; the column holds 64 ASCII
// bytes and compares them exactly).
func ValidName(name string) bool { return wal.ValidID(name) }

// Start starts a syncer in the background and returns at once: MySQL may be
// down, in which case the syncer keeps retrying (capped backoff) while the
// engine keeps selling. Stop it with Close. A Config.Name that is not
// ValidName panics (a flag should be checked with ValidName first).
func Start(cfg Config) *Syncer {
	if cfg.DB == nil || cfg.Log == nil {
		panic("syncer: Start needs Config.DB and Config.Log")
	}
	if id := cfg.Log.ID(); id == "" || len(id) > logIDBytesMax {
		panic(fmt.Sprintf("syncer: Config.Log.ID() is %q, want 1..%d bytes", id, logIDBytesMax))
	}
	if cfg.Name == "" {
		cfg.Name = CheckpointNameDefault
	}
	if !ValidName(cfg.Name) {
		panic(fmt.Sprintf("syncer: Config.Name %q: want 1..64 of A-Z a-z 0-9 . _ : - (ValidName)", cfg.Name))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchRecordsMax <= 0 {
		cfg.BatchRecordsMax = BatchRecordsMax
	}
	if cfg.txTimeout <= 0 {
		cfg.txTimeout = TxTimeoutMax
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syncer{cfg: cfg, cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}), batchMax: cfg.BatchRecordsMax}
	active.Store(s)
	go func() {
		defer close(s.done)
		err := s.run(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("syncer stopped", "err", err)
			s.mu.Lock()
			s.stopped = err
			close(s.notify)
			s.notify = make(chan struct{})
			s.mu.Unlock()
		}
	}()
	return s
}

// Close stops the syncer and waits for it. A batch in flight is abandoned
// (rolled back) or committed; either way the checkpoint tells the next start
// where to resume.
func (s *Syncer) Close() error {
	s.cancel()
	<-s.done
	active.CompareAndSwap(s, nil)
	return nil
}

// permanent reports whether err cannot heal by retrying.
func permanent(err error) bool {
	return errors.Is(err, ErrGap) || errors.Is(err, ErrCheckpointAhead) || errors.Is(err, ErrFlowConflict) ||
		errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrForeignLog) || errors.Is(err, wal.ErrCorrupt)
}

// run migrates, loads the checkpoint, then folds batches until ctx ends or a
// permanent error stops it. Every transient error is retried with backoff.
func (s *Syncer) run(ctx context.Context) error {
	backoff := RetryBackoffMin
	fail := func(err error) error {
		metricErrors.Inc()
		s.errs.Add(1)
		s.setErr(err)
		if permanent(err) {
			return err
		}
		s.cfg.Logger.Warn("syncer: retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		backoff = min(2*backoff, RetryBackoffMax)
		return nil
	}
	for ctx.Err() == nil {
		err := s.start(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := fail(err); err != nil {
			return err
		}
	}
	backoff = RetryBackoffMin
	for ctx.Err() == nil {
		err := s.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		backoff = RetryBackoffMin
	}
	return nil
}

// start migrates the schema and loads the checkpoint.
func (s *Syncer) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.txTimeout)
	defer cancel()
	if err := Migrate(ctx, s.cfg.DB); err != nil {
		return err
	}
	cp, pinned, err := readCheckpointRow(ctx, s.cfg.DB, s.cfg.Name)
	if err != nil {
		return err
	}
	if err := s.checkAgainstLog(cp, pinned); err != nil {
		return err
	}
	if log := s.cfg.Log; cp > 0 && cp >= log.First() && cp <= log.Durable() {
		// The record at the checkpoint must be the one MySQL folded there
		// before this log is told it is synced that far.
		entries, err := readBatch(log, cp, cp, BatchBytesMax)
		if err != nil {
			return err
		}
		if len(entries) == 1 {
			if err := checkFolded(ctx, s.cfg.DB, s.cfg.Name, &entries[0]); err != nil {
				return err
			}
		}
	}
	s.advance(cp)
	s.mu.Lock()
	s.ready = true
	s.lastErr = nil // the failed starts before this one are over
	s.mu.Unlock()
	s.cfg.Logger.Info("syncer: started", "checkpoint", cp, "durable", s.cfg.Log.Durable(),
		"log_id", s.cfg.Log.ID(), "checkpoint_log_id", pinned)
	return nil
}

// checkAgainstLog refuses a checkpoint that this log cannot continue from:
// one pinned to another log (pinned is the row's log_id; empty when the row
// is pinned to none yet, or not known here), or one that this log's seqs do not
// reach. Every batch checks the pin again under the row lock (applyBatch):
// this early check makes a foreign checkpoint stop the syncer at start, and
// before MarkSynced is told anything.
func (s *Syncer) checkAgainstLog(cp uint64, pinned string) error {
	if pinned != "" && pinned != s.cfg.Log.ID() {
		return foreignLog(s.cfg.Name, cp, pinned, s.cfg.Log.ID())
	}
	if d := s.cfg.Log.Durable(); cp > d {
		return fmt.Errorf("%w: checkpoint %d, log durable %d", ErrCheckpointAhead, cp, d)
	}
	if f := s.cfg.Log.First(); cp+1 < f && cp < s.cfg.Log.Durable() {
		return fmt.Errorf("%w: checkpoint %d, but the log starts at %d", ErrGap, cp, f)
	}
	return nil
}

// step waits for durable records beyond the checkpoint, reads one batch and
// folds it.
func (s *Syncer) step(ctx context.Context) error {
	cp := s.checkpoint.Load()
	durable, err := s.cfg.Log.WaitDurable(ctx, cp)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, wal.ErrClosed) {
			<-ctx.Done() // the log is closing: nothing more will come
			return nil
		}
		return fmt.Errorf("syncer: wait for log: %w", err)
	}
	limit := uint64(s.batchMax)
	if durable-cp < limit {
		lctx, cancel := context.WithTimeout(ctx, BatchLingerMax)
		for durable-cp < limit {
			d, err := s.cfg.Log.WaitDurable(lctx, durable)
			if err != nil {
				break
			}
			durable = d
		}
		cancel()
	}
	if err := s.checkAgainstLog(cp, ""); err != nil {
		return err
	}
	entries, err := readBatch(s.cfg.Log, cp+1, min(durable, cp+limit), BatchBytesMax)
	if errors.Is(err, wal.ErrClosed) {
		<-ctx.Done() // the log closed since WaitDurable: as above
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, s.cfg.txTimeout)
	defer cancel()
	folded, newCP, err := applyBatch(tctx, s.cfg.DB, s.cfg.Name, s.cfg.Log.ID(), entries, s.cfg.Now())
	if err != nil {
		// The batch may have failed for its size (MySQL slower than the
		// transaction timeout for it): the retry takes half as many records,
		// so that a slow MySQL still makes progress.
		s.batchMax = max(1, len(entries)/2)
		return err
	}
	s.batchMax = min(s.cfg.BatchRecordsMax, 2*s.batchMax)
	if newCP < cp {
		return fmt.Errorf("syncer: checkpoint %q went back from %d to %d: another writer?", s.cfg.Name, cp, newCP)
	}
	metricBatchS.UpdateDuration(start)
	var rows int
	for i := len(entries) - folded; i < len(entries); i++ {
		rows += len(entries[i].Record.Items)
	}
	metricBatches.Inc()
	metricRecords.Add(folded)
	metricRows.Add(rows)
	s.batches.Add(1)
	s.records.Add(uint64(folded))
	s.rows.Add(uint64(rows))
	s.advance(newCP)
	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
	return nil
}

// readBatch reads and decodes records from..to (inclusive), stopping after
// the record that reaches bytesMax.
func readBatch(log Source, from, to uint64, bytesMax int) ([]Entry, error) {
	entries := make([]Entry, 0, min(to-from+1, BatchRecordsMax))
	errFull := errors.New("full")
	bytes := 0
	err := log.Read(from, to, func(seq uint64, rec []byte) error {
		entries = append(entries, Entry{Seq: seq})
		if err := entries[len(entries)-1].Record.Decode(rec); err != nil {
			return fmt.Errorf("syncer: log record %d: %w", seq, err)
		}
		bytes += len(rec)
		if bytes >= bytesMax {
			return errFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, err
	}
	return entries, nil
}

// advance records a new checkpoint and tells the engine.
func (s *Syncer) advance(cp uint64) {
	s.checkpoint.Store(cp)
	if s.cfg.MarkSynced != nil {
		s.cfg.MarkSynced(cp)
	}
	s.mu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

func (s *Syncer) setErr(err error) {
	s.mu.Lock()
	s.lastErr, s.lastErrAt = err, s.cfg.Now()
	s.mu.Unlock()
}

// Checkpoint returns the last seq known to be folded into MySQL.
func (s *Syncer) Checkpoint() uint64 { return s.checkpoint.Load() }

// WaitSynced blocks until the checkpoint reaches seq, the syncer stops on a
// permanent error (returned), or ctx ends.
func (s *Syncer) WaitSynced(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		ch, stopped := s.notify, s.stopped
		s.mu.Unlock()
		if s.checkpoint.Load() >= seq {
			return nil
		}
		if stopped != nil {
			return stopped
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("syncer: waiting for checkpoint %d (at %d): %w", seq, s.checkpoint.Load(), ctx.Err())
		}
	}
}

func (s *Syncer) lagRecords() uint64 {
	d, cp := s.cfg.Log.Durable(), s.checkpoint.Load()
	if d <= cp {
		return 0
	}
	return d - cp
}

// lagSeconds is the age of the oldest durable record not yet folded (0 when
// nothing waits), by the record's own timestamp.
func (s *Syncer) lagSeconds() float64 {
	cp := s.checkpoint.Load()
	if s.cfg.Log.Durable() <= cp {
		return 0
	}
	var ms int64 = -1
	_ = s.cfg.Log.Read(cp+1, cp+1, func(_ uint64, rec []byte) error {
		var r wal.Record
		if r.Decode(rec) == nil {
			ms = r.TimeMs
		}
		return nil
	})
	if ms < 0 {
		return 0
	}
	return max(0, float64(s.cfg.Now().UnixMilli()-ms)/1000)
}

// Status is the syncer's state for GET /v1/sync.
type Status struct {
	Name        string  `json:"name"`
	Ready       bool    `json:"ready"` // schema migrated and checkpoint loaded
	Running     bool    `json:"running"`
	Checkpoint  uint64  `json:"checkpoint"`
	DurableSeq  uint64  `json:"durable_seq"`
	LagRecords  uint64  `json:"lag_records"`
	LagSeconds  float64 `json:"lag_seconds"`
	Batches     uint64  `json:"batches"`
	Records     uint64  `json:"records"`
	Rows        uint64  `json:"rows"`
	Errors      uint64  `json:"errors"` // failed attempts (each one retried unless Stopped)
	LastError   string  `json:"last_error,omitempty"`
	LastErrorAt string  `json:"last_error_at,omitempty"` // RFC 3339, UTC
	Stopped     string  `json:"stopped,omitempty"`       // the permanent error that stopped the syncer
}

// Status returns a snapshot of the syncer's state. It does not touch MySQL.
func (s *Syncer) Status() Status {
	st := Status{Name: s.cfg.Name, Checkpoint: s.checkpoint.Load(), DurableSeq: s.cfg.Log.Durable(),
		LagRecords: s.lagRecords(), LagSeconds: s.lagSeconds(), Batches: s.batches.Load(),
		Records: s.records.Load(), Rows: s.rows.Load(), Errors: s.errs.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Ready = s.ready
	st.Running = s.stopped == nil
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
		st.LastErrorAt = s.lastErrAt.UTC().Format(time.RFC3339Nano)
	}
	if s.stopped != nil {
		st.Stopped = s.stopped.Error()
	}
	select {
	case <-s.done:
		st.Running = false
	default:
	}
	return st
}
