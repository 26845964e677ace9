package syncer

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

// mysqlServerDSN is the local MariaDB the tests use (root, no password).
// FLASHSALE_TEST_MYSQL overrides it (a DSN without a database name).
func mysqlServerDSN() string {
	if v := os.Getenv("FLASHSALE_TEST_MYSQL"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// testDatabase creates a fresh database fs_test_<random> and returns a DSN
// for it; the database is dropped when the test ends. Without MySQL the test
// fails under CI=true and is skipped otherwise.
func testDatabase(t testing.TB) string {
	t.Helper()
	admin, err := OpenDB(mysqlServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MySQL unreachable at %s (CI=true: failing, not skipping): %v", mysqlServerDSN(), err)
		}
		t.Skipf("MySQL unreachable at %s: %v (run scripts/ensure-services.sh)", mysqlServerDSN(), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "fs_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return strings.TrimSuffix(mysqlServerDSN(), "/") + "/" + name
}

// openTestDB opens dsn and closes it when the test ends.
func openTestDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tableDump is the whole content of the syncer's tables, without updated_at
// (which a no-op may not touch anyway), for before/after comparisons.
type tableDump struct {
	flow, summary []string
	checkpoint    uint64
}

func dumpTables(t testing.TB, db *sql.DB) tableDump {
	t.Helper()
	var d tableDump
	ctx := context.Background()
	q := func(query string, out *[]string) {
		rs, err := db.QueryContext(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		cols, _ := rs.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rs.Next() {
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			for _, v := range vals {
				sb.Write(v)
				sb.WriteByte('|')
			}
			*out = append(*out, sb.String())
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	q("SELECT seq, sku, kind, request_id, ref_id, user_id, qty, created_at FROM stock_flow ORDER BY seq, sku", &d.flow)
	q("SELECT sku, total, available, reserved, sold, last_seq, updated_at FROM stock_summary ORDER BY sku", &d.summary)
	cp, err := ReadCheckpoint(ctx, db, CheckpointNameDefault)
	if err != nil {
		t.Fatal(err)
	}
	d.checkpoint = cp
	return d
}

func (d tableDump) equal(o tableDump) bool {
	return d.checkpoint == o.checkpoint && strings.Join(d.flow, "\n") == strings.Join(o.flow, "\n") &&
		strings.Join(d.summary, "\n") == strings.Join(o.summary, "\n")
}
