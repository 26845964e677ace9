package syncer

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/internal/testkit"
)

func testDatabase(t testing.TB) string { return testkit.MySQLDatabase(t) }

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
