package syncer

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockName is the MySQL named lock (GET_LOCK) that serialises
// migrations when several processes start against one database at once.
const migrateLockName = "flashsale_schema_migrate"

// migrateLockWaitSeconds is how long Migrate waits for another process's
// migration before it gives up with an error.
const migrateLockWaitSeconds = 60

// migration is one versioned file, migrations/NNN_name.sql.
type migration struct {
	version int
	name    string
	stmts   []string
}

// loadMigrations parses the embedded files, in version order. A file whose
// name does not start with a number is a programmer error and panics.
func loadMigrations() []migration {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		panic(fmt.Sprintf("syncer: embedded migrations: %v", err))
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			panic(fmt.Sprintf("syncer: migration file %q is not NNN_name.sql", name))
		}
		b, err := migrationFS.ReadFile("migrations/" + name)
		if err != nil {
			panic(fmt.Sprintf("syncer: read migration %s: %v", name, err))
		}
		out = append(out, migration{version: v, name: name, stmts: splitStatements(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := range out {
		if out[i].version != i+1 {
			panic(fmt.Sprintf("syncer: migrations must be numbered 1, 2, 3...; found %s at %d", out[i].name, i+1))
		}
	}
	return out
}

// splitStatements splits a migration into statements: a statement ends with
// a line ending in ';'. Lines starting with "--" are comments.
func splitStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int { return len(loadMigrations()) }

// Migrate brings the database that db names to the newest schema version:
// it applies, in order, every embedded migration not yet recorded in
// schema_migrations, under a named lock so that concurrent starts apply each
// migration once. DDL is not transactional in MySQL: each migration is
// written to be re-runnable (IF NOT EXISTS), and its version is recorded only
// after all its statements succeed. A database whose recorded version is
// newer than this binary's is refused (ErrSchemaTooNew).
func Migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("syncer: migrate: connect: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLockName, migrateLockWaitSeconds).Scan(&got); err != nil {
		return fmt.Errorf("syncer: migrate: lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("syncer: migrate: lock %s not granted within %ds", migrateLockName, migrateLockWaitSeconds)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", migrateLockName)

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INT NOT NULL,
  name       VARCHAR(255) NOT NULL,
  applied_at DATETIME(3) NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB`); err != nil {
		return fmt.Errorf("syncer: migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("syncer: migrate: read version: %w", err)
	}
	all := loadMigrations()
	if current > len(all) {
		return fmt.Errorf("%w: database at version %d, this binary knows %d", ErrSchemaTooNew, current, len(all))
	}
	for _, m := range all[current:] {
		for _, s := range m.stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("syncer: migration %s: %w", m.name, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.version, m.name, sqlTime(time.Now())); err != nil {
			return fmt.Errorf("syncer: record migration %s: %w", m.name, err)
		}
	}
	return nil
}
