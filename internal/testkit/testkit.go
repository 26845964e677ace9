// Package testkit holds what the project's tests share: the replayable seed
// and a throwaway MySQL database. It is imported by _test.go files only.
package testkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver behind sql.Open("mysql")
)

// Seed returns the seed from FLASHSALE_SEED, or a fresh one, and logs it so
// that a failing randomized test can be replayed.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLASHSALE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLASHSALE_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with FLASHSALE_SEED=%d)", seed, seed)
	return seed
}

// MySQLServer is the local MariaDB the tests use (root, no password), or
// FLASHSALE_TEST_MYSQL (a DSN without a database name).
func MySQLServer() string {
	if v := os.Getenv("FLASHSALE_TEST_MYSQL"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// MySQLDatabase creates a fresh database fs_test_<random> and returns a DSN
// for it; it is dropped when the test ends. Without MySQL the test fails
// under CI=true (a missing service must not pass as a skip) and is skipped
// otherwise.
func MySQLDatabase(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("mysql", MySQLServer())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MySQL unreachable at %s (CI=true: failing, not skipping): %v", MySQLServer(), err)
		}
		t.Skipf("MySQL unreachable at %s: %v (run scripts/ensure-services.sh)", MySQLServer(), err)
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
	return strings.TrimSuffix(MySQLServer(), "/") + "/" + name
}

// Clock is a clock that tests move by hand; its Now goes into
// engine.Options.Now. It starts at a fixed instant. Safe for concurrent use.
type Clock struct{ ms atomic.Int64 }

// NewClock returns a Clock at 2023-11-14T22:13:20Z.
func NewClock() *Clock {
	c := &Clock{}
	c.ms.Store(1_700_000_000_000)
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

// UnixMilli returns the clock's time in Unix milliseconds.
func (c *Clock) UnixMilli() int64 { return c.ms.Load() }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }
