package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// MySQL peer limits.
const (
	// mysqlConnsReserve is how many of the server's max_connections the
	// harness leaves to others; the pool is max(mysqlConnsMin, min(workers,
	// max_connections - mysqlConnsReserve)).
	mysqlConnsReserve = 20
	mysqlConnsMin     = 4
	// mysqlInsertBatchRows bounds the rows of one INSERT when loading stock.
	mysqlInsertBatchRows = 1000
)

// MySQLTarget is a classic MySQL flash-sale design, in its own tables
// (bench_update_stock, or bench_task_stock and bench_task_flow), which Setup
// drops and recreates:
//   - Task false, "mysql-update": one autocommit conditional UPDATE per
//     request: UPDATE ... SET available=available-? WHERE sku=? AND
//     available>=?; a hot SKU's sales queue on its row lock and the redo
//     log's fsync.
//   - Task true, "mysql-task": one transaction per request: the same
//     conditional UPDATE plus an INSERT of a flow row, committed together.
//
// Reservations move stock to a reserved column; none of it is idempotent.
type MySQLTarget struct {
	DSN  string // go-sql-driver DSN; interpolateParams is switched on
	Task bool

	db    *sql.DB // the load: per-request timeouts
	admin *sql.DB // set-up, verification and clean-up: setupTimeout
	conns int
	pid   int
	stock string
	flow  string
}

// Info implements Target.
func (t *MySQLTarget) Info() Info {
	name := "mysql-update"
	if t.Task {
		name = "mysql-task"
	}
	return Info{Name: name, ServerPID: t.pid, Conns: t.conns}
}

// Setup connects, creates the tables and loads the stock. A per-user limit
// is not supported (the classic UPDATE has none): ErrUnsupported.
func (t *MySQLTarget) Setup(ctx context.Context, w *Workload) error {
	cfg := w.Config()
	if cfg.LimitPerUser > 0 {
		return fmt.Errorf("%w: %s has no per-user limit", ErrUnsupported, t.Info().Name)
	}
	mc, err := mysql.ParseDSN(t.DSN)
	if err != nil {
		return fmt.Errorf("mysql target: dsn: %w", err)
	}
	mc.InterpolateParams = true
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = cfg.RequestTimeout, cfg.RequestTimeout, cfg.RequestTimeout
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return fmt.Errorf("mysql target: %w", err)
	}
	t.db = sql.OpenDB(conn)
	// Set-up, verification and clean-up get a pool of their own, with
	// setupTimeout instead of a timeout sized for one request.
	amc := mc.Clone()
	amc.Timeout, amc.ReadTimeout, amc.WriteTimeout = setupTimeout, setupTimeout, setupTimeout
	aconn, err := mysql.NewConnector(amc)
	if err != nil {
		return fmt.Errorf("mysql target: %w", err)
	}
	t.admin = sql.OpenDB(aconn)
	t.admin.SetMaxOpenConns(2)
	var maxConns int
	if err := t.admin.QueryRowContext(ctx, "SELECT @@max_connections").Scan(&maxConns); err != nil {
		return fmt.Errorf("mysql target: %s: %w", mc.Addr, err)
	}
	t.conns = max(min(cfg.Concurrency, maxConns-mysqlConnsReserve), mysqlConnsMin)
	t.db.SetMaxOpenConns(t.conns)
	t.db.SetMaxIdleConns(t.conns)
	if host, _, err := splitHost(mc.Addr); err == nil && isLoopback(host) {
		var pidFile string
		if t.admin.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&pidFile) == nil {
			if b, err := os.ReadFile(pidFile); err == nil {
				t.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
		}
	}
	if t.Task {
		t.stock, t.flow = "bench_task_stock", "bench_task_flow"
	} else {
		t.stock = "bench_update_stock"
	}
	stmts := []string{
		"DROP TABLE IF EXISTS " + t.stock,
		"CREATE TABLE " + t.stock + ` (
			sku VARCHAR(64) NOT NULL PRIMARY KEY,
			available BIGINT NOT NULL,
			reserved BIGINT NOT NULL DEFAULT 0
		) ENGINE=InnoDB`,
	}
	if t.Task {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+t.flow, "CREATE TABLE "+t.flow+` (
			id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
			request_id VARCHAR(64) NOT NULL,
			user_id VARCHAR(64) NOT NULL,
			sku VARCHAR(64) NOT NULL,
			kind VARCHAR(16) NOT NULL,
			qty BIGINT NOT NULL,
			created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
		) ENGINE=InnoDB`)
	}
	for _, s := range stmts {
		if _, err := t.admin.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("mysql target: %s: %w", firstLine(s), err)
		}
	}
	skus := w.SKUs()
	for i := 0; i < len(skus); i += mysqlInsertBatchRows {
		batch := skus[i:min(i+mysqlInsertBatchRows, len(skus))]
		q := "INSERT INTO " + t.stock + " (sku, available) VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?),", len(batch)), ",")
		args := make([]any, 0, 2*len(batch))
		for _, s := range batch {
			args = append(args, s, cfg.Stock)
		}
		if _, err := t.admin.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("mysql target: load stock: %w", err)
		}
	}
	return nil
}

func splitHost(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, "", nil
	}
	return addr[:i], addr[i+1:], nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// update returns the statement that applies s to the stock row, and its
// arguments. Each is conditional where stock could go negative; 0 rows
// affected means refused.
func (t *MySQLTarget) update(s *Step) (string, []any) {
	switch s.Kind {
	case KindDeduct:
		return "UPDATE " + t.stock + " SET available=available-? WHERE sku=? AND available>=?", []any{s.Qty, s.SKU, s.Qty}
	case KindReserve:
		return "UPDATE " + t.stock + " SET available=available-?, reserved=reserved+? WHERE sku=? AND available>=?", []any{s.Qty, s.Qty, s.SKU, s.Qty}
	case KindConfirm:
		return "UPDATE " + t.stock + " SET reserved=reserved-? WHERE sku=? AND reserved>=?", []any{s.Qty, s.SKU, s.Qty}
	case KindCancel:
		return "UPDATE " + t.stock + " SET reserved=reserved-?, available=available+? WHERE sku=? AND reserved>=?", []any{s.Qty, s.Qty, s.SKU, s.Qty}
	case KindReturn:
		return "UPDATE " + t.stock + " SET available=available+? WHERE sku=?", []any{s.Qty, s.SKU}
	}
	panic(fmt.Sprintf("bench: mysql target: step kind %d", s.Kind))
}

// Do implements Target.
func (t *MySQLTarget) Do(ctx context.Context, s *Step) Outcome {
	q, args := t.update(s)
	if !t.Task {
		res, err := t.db.ExecContext(ctx, q, args...)
		return mysqlOutcome(res, err)
	}
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return Outcome{Status: StatusFailed, Err: fmt.Errorf("mysql: begin: %w", err)}
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, q, args...)
	if o := mysqlOutcome(res, err); o.Status != StatusOK {
		if o.Status == StatusUnknown {
			o.Status = StatusFailed // not committed: rolled back
		}
		return o
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.flow+" (request_id, user_id, sku, kind, qty) VALUES (?, ?, ?, ?, ?)",
		s.RequestID, s.UserID, s.SKU, s.Kind.String(), s.Qty); err != nil {
		return Outcome{Status: StatusFailed, Err: fmt.Errorf("mysql: insert flow: %w", err)}
	}
	if err := tx.Commit(); err != nil {
		return Outcome{Status: StatusUnknown, Err: fmt.Errorf("mysql: commit: %w", err)}
	}
	return Outcome{Status: StatusOK}
}

func mysqlOutcome(res sql.Result, err error) Outcome {
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			return Outcome{Status: StatusFailed, Err: fmt.Errorf("mysql: %w", err)}
		}
		return Outcome{Status: StatusUnknown, Err: fmt.Errorf("mysql: %w", err)}
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Outcome{Status: StatusUnknown, Err: fmt.Errorf("mysql: rows affected: %w", err)}
	}
	if n == 1 {
		return Outcome{Status: StatusOK}
	}
	return Outcome{Status: StatusRejected}
}

// Observe implements Target: every SKU's row, and (mysql-task) its flow
// rows. Two whole-table reads, not one query per SKU: a zipf run has up to
// a million SKUs, and the flow table has no index on sku.
func (t *MySQLTarget) Observe(ctx context.Context, skus []string) ([]Observed, error) {
	index := make(map[string]int, len(skus))
	out := make([]Observed, len(skus))
	for i, sku := range skus {
		index[sku] = i
		out[i] = Observed{Available: -1, Reserved: -1, Sold: -1, Records: -1}
	}
	seen := make([]bool, len(skus))
	err := t.scan(ctx, "SELECT sku, available, reserved FROM "+t.stock, func(rows *sql.Rows) error {
		var sku string
		var avail, reserved int64
		if err := rows.Scan(&sku, &avail, &reserved); err != nil {
			return err
		}
		if i, ok := index[sku]; ok {
			out[i].Available, out[i].Reserved, seen[i] = avail, reserved, true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mysql target: read %s: %w", t.stock, err)
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("mysql target: read %s: no row for %s", t.stock, skus[i])
		}
	}
	if !t.Task {
		return out, nil
	}
	for i := range out {
		out[i].Records = 0
	}
	err = t.scan(ctx, "SELECT sku, COUNT(*) FROM "+t.flow+" GROUP BY sku", func(rows *sql.Rows) error {
		var sku string
		var n int64
		if err := rows.Scan(&sku, &n); err != nil {
			return err
		}
		if i, ok := index[sku]; ok {
			out[i].Records = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mysql target: count %s: %w", t.flow, err)
	}
	return out, nil
}

// scan runs query and calls fn for each row.
func (t *MySQLTarget) scan(ctx context.Context, query string, fn func(*sql.Rows) error) error {
	rows, err := t.admin.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Close drops the tables and disconnects.
func (t *MySQLTarget) Close() error {
	if t.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	var errs []error
	for _, tbl := range []string{t.stock, t.flow} {
		if tbl == "" || t.admin == nil {
			continue
		}
		if _, err := t.admin.ExecContext(ctx, "DROP TABLE IF EXISTS "+tbl); err != nil {
			errs = append(errs, fmt.Errorf("mysql target: drop %s: %w", tbl, err))
		}
	}
	errs = append(errs, t.db.Close())
	if t.admin != nil {
		errs = append(errs, t.admin.Close())
	}
	t.db, t.admin = nil, nil
	return errors.Join(errs...)
}
