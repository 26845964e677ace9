package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/go-sql-driver/mysql"

	"github.com/flashsale/flashsale/wal"
)

// StateAt returns every SKU's counts in the engine's state as of seq (the
// fold of the log up to and including seq). The caller adapts the engine:
// engine.ReadState offline, Engine.StateAt live.
type StateAt func(ctx context.Context, seq uint64) (map[string]Counts, error)

// SKUReport compares one SKU in the three places it lives. A nil pointer
// means the SKU is missing there.
type SKUReport struct {
	SKU      string   `json:"sku"`
	Engine   *Counts  `json:"engine,omitempty"`
	Summary  *Counts  `json:"summary,omitempty"`
	Flow     *Counts  `json:"flow,omitempty"`
	Problems []string `json:"problems"`
}

// Report is the outcome of Reconcile. Clean is true when nothing drifted.
type Report struct {
	Checkpoint  uint64      `json:"checkpoint"`
	SKUs        int         `json:"skus"`
	FlowRecords uint64      `json:"flow_records"` // distinct seqs in stock_flow
	Clean       bool        `json:"clean"`
	Problems    []string    `json:"problems,omitempty"` // table-wide problems
	Drift       []SKUReport `json:"drift,omitempty"`    // SKUs with a problem, sorted by SKU
}

// Reconcile checks exactly-once sync (docs/sync.md, "Why exactly once")
// against the MySQL tables of checkpoint name: inside one consistent read it
// takes the checkpoint, stock_summary and the sums of stock_flow per SKU and
// kind, then asks state for the engine's state as of that checkpoint. For every
// SKU the engine, the summary and the fold of the flow must agree, each
// summary row must satisfy total = available + reserved + sold, and the flow
// must hold exactly the records 1..checkpoint (every seq once, none beyond).
// It reads whole tables: run it off-peak on large ones.
//
// logID is the id of the log state reads (wal.Log.ID). A checkpoint pinned to
// another log counts seqs of that log, so comparing this log's state with it
// means nothing: that is ErrForeignLog, before state is asked. An empty logID,
// or a checkpoint pinned to none, skips the check.
func Reconcile(ctx context.Context, db *sql.DB, name, logID string, state StateAt) (*Report, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("syncer: reconcile: begin: %w", err)
	}
	defer tx.Rollback()
	// The first read fixes the snapshot for the rest of the transaction.
	var cp uint64
	var pinned string
	var rows int // of this name: 0 or 1
	err = tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(log_id), ''), COUNT(*) FROM sync_checkpoint WHERE name = ?", name).
		Scan(&cp, &pinned, &rows)
	if errors.Is(err, errNoLogIDColumn) {
		// Schema 1 (before log_id; Reconcile does not migrate): pinned to none.
		err = tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM sync_checkpoint WHERE name = ?", name).Scan(&cp, &rows)
	}
	if err != nil {
		return nil, fmt.Errorf("syncer: reconcile: checkpoint: %w", err)
	}
	if logID != "" && pinned != "" && pinned != logID {
		return nil, foreignLog(name, cp, pinned, logID)
	}
	if rows == 0 {
		// No row of this name while others have one: a mistyped or renamed
		// --sync-name, which would compare every SKU with an empty state.
		var names []string
		if err := queryEach(ctx, tx, "SELECT name FROM sync_checkpoint ORDER BY name LIMIT 10", func(rs *sql.Rows) error {
			var n string
			if err := rs.Scan(&n); err != nil {
				return err
			}
			names = append(names, n)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("syncer: reconcile: checkpoint names: %w", err)
		}
		if len(names) > 0 {
			return nil, fmt.Errorf("%w: no checkpoint named %q; sync_checkpoint has %s", ErrUnknownCheckpoint, name, strings.Join(names, ", "))
		}
	}
	summary := map[string]Counts{}
	if err := queryEach(ctx, tx, "SELECT sku, total, available, reserved, sold FROM stock_summary", func(rs *sql.Rows) error {
		var sku string
		var c Counts
		if err := rs.Scan(&sku, &c.Total, &c.Available, &c.Reserved, &c.Sold); err != nil {
			return err
		}
		summary[sku] = c
		return nil
	}); err != nil {
		return nil, fmt.Errorf("syncer: reconcile: summary: %w", err)
	}
	flow := map[string]Counts{}
	var badKinds []string
	if err := queryEach(ctx, tx, "SELECT sku, kind, SUM(qty) FROM stock_flow GROUP BY sku, kind", func(rs *sql.Rows) error {
		var sku, kind string
		var sum int64
		if err := rs.Scan(&sku, &kind, &sum); err != nil {
			return err
		}
		k, ok := kindByName[kind]
		if !ok {
			badKinds = append(badKinds, fmt.Sprintf("%s:%q", sku, kind))
			return nil
		}
		flow[sku] = flow[sku].Add(delta(k, sum))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("syncer: reconcile: flow: %w", err)
	}
	var distinct, minSeq, maxSeq uint64
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(DISTINCT seq), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM stock_flow").
		Scan(&distinct, &minSeq, &maxSeq); err != nil {
		return nil, fmt.Errorf("syncer: reconcile: flow seqs: %w", err)
	}
	tx.Rollback()

	engine, err := state(ctx, cp)
	if err != nil {
		return nil, fmt.Errorf("syncer: reconcile: engine state at %d: %w", cp, err)
	}
	rep := compare(cp, engine, summary, flow)
	rep.FlowRecords = distinct
	if len(badKinds) > 0 {
		rep.Problems = append(rep.Problems, "stock_flow rows with unknown kind: "+strings.Join(badKinds, ", "))
	}
	if maxSeq > cp {
		rep.Problems = append(rep.Problems, fmt.Sprintf("stock_flow has seq %d beyond the checkpoint %d", maxSeq, cp))
	}
	if cp > 0 && (distinct != cp || minSeq != 1) {
		rep.Problems = append(rep.Problems, fmt.Sprintf(
			"stock_flow holds %d distinct seqs from %d to %d; records 1..%d expected once each", distinct, minSeq, maxSeq, cp))
	}
	rep.Clean = len(rep.Problems) == 0 && len(rep.Drift) == 0
	return rep, nil
}

// errNoLogIDColumn matches MySQL's unknown-column error: sync_checkpoint
// without log_id (schema 1).
var errNoLogIDColumn = &mysql.MySQLError{Number: 1054}

var kindByName = func() map[string]wal.Kind {
	m := map[string]wal.Kind{}
	for k := wal.KindSetTotal; k <= wal.KindReturn; k++ {
		m[k.String()] = k
	}
	return m
}()

// compare is Reconcile's pure part.
func compare(cp uint64, engine, summary, flow map[string]Counts) *Report {
	skus := map[string]bool{}
	for _, m := range []map[string]Counts{engine, summary, flow} {
		for sku := range m {
			skus[sku] = true
		}
	}
	rep := &Report{Checkpoint: cp, SKUs: len(skus)}
	ptr := func(m map[string]Counts, sku string) *Counts {
		if c, ok := m[sku]; ok {
			return &c
		}
		return nil
	}
	for sku := range skus {
		r := SKUReport{SKU: sku, Engine: ptr(engine, sku), Summary: ptr(summary, sku), Flow: ptr(flow, sku)}
		switch {
		case r.Engine == nil:
			r.Problems = append(r.Problems, "missing in the engine")
		case r.Summary == nil:
			r.Problems = append(r.Problems, "missing in stock_summary")
		case *r.Engine != *r.Summary:
			r.Problems = append(r.Problems, "stock_summary differs from the engine")
		}
		switch {
		case r.Flow == nil:
			r.Problems = append(r.Problems, "no stock_flow rows")
		case r.Summary != nil && *r.Flow != *r.Summary:
			r.Problems = append(r.Problems, "stock_flow sums differ from stock_summary")
		}
		if c := r.Summary; c != nil && (c.Total != c.Available+c.Reserved+c.Sold || c.Available < 0 || c.Reserved < 0 || c.Sold < 0) {
			r.Problems = append(r.Problems, "stock_summary row breaks total = available + reserved + sold >= 0")
		}
		if len(r.Problems) > 0 {
			rep.Drift = append(rep.Drift, r)
		}
	}
	sort.Slice(rep.Drift, func(i, j int) bool { return rep.Drift[i].SKU < rep.Drift[j].SKU })
	return rep
}

func queryEach(ctx context.Context, tx *sql.Tx, q string, fn func(*sql.Rows) error) error {
	rs, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := fn(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

// WriteTable prints the report as a table: one line per drifting SKU and
// column, engine vs summary vs flow, then the table-wide problems.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "checkpoint %d, %d SKUs, %d flow records: ", r.Checkpoint, r.SKUs, r.FlowRecords)
	if r.Clean {
		fmt.Fprintln(tw, "clean")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "DRIFT in %d SKUs\n", len(r.Drift))
	if len(r.Drift) > 0 {
		fmt.Fprintln(tw, "SKU\tCOLUMN\tENGINE\tSUMMARY\tFLOW\tPROBLEM")
	}
	cell := func(c *Counts, col int) string {
		if c == nil {
			return "-"
		}
		return fmt.Sprint([4]int64{c.Total, c.Available, c.Reserved, c.Sold}[col])
	}
	for _, d := range r.Drift {
		for col, name := range []string{"total", "available", "reserved", "sold"} {
			e, s, f := cell(d.Engine, col), cell(d.Summary, col), cell(d.Flow, col)
			problem := ""
			if col == 0 {
				problem = strings.Join(d.Problems, "; ")
			}
			if e == s && s == f && problem == "" {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.SKU, name, e, s, f, problem)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintln(tw, "problem:", p)
	}
	return tw.Flush()
}
