package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"
)

// TestServeRebuildFromMySQL: the disaster-recovery path of the real binary.
// A server syncs a sale and a reservation to MySQL and stops; its data
// directory is lost; `serve --rebuild-from-mysql` on an empty directory
// restores the SKU conservatively (what was reserved is not resold) and
// sells from there.
func TestServeRebuildFromMySQL(t *testing.T) {
	dsn := testkit.MySQLDatabase(t)
	bin := buildBinary(t)
	hc := &http.Client{Timeout: 5 * time.Second}
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(t.TempDir(), "serve.log")

	first := &crashProc{t: t, bin: bin, data: t.TempDir(), port: port, logPath: logPath, extra: []string{"--mysql-dsn", dsn}}
	first.start()
	mustCall := func(method, path, token, body string, want int) []byte {
		t.Helper()
		st, b := call(hc, method, base+path, token, body)
		if st != want {
			first.fatalWithLog("%s %s: %d %s, want %d", method, path, st, b, want)
		}
		return b
	}
	mustCall("PUT", "/v1/skus/tv", crashToken, `{"total":10}`, 200)
	mustCall("POST", "/v1/deduct", "", `{"request_id":"sale-1","items":[{"sku":"tv","qty":3}]}`, 200)
	mustCall("POST", "/v1/reserve", "", `{"request_id":"hold-1","items":[{"sku":"tv","qty":2}],"ttl_ms":600000}`, 200)

	// Wait until MySQL has all of it: sold 3, reserved 2.
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var sold, reserved int64
		err := db.QueryRow("SELECT sold, reserved FROM stock_summary WHERE sku = 'tv'").Scan(&sold, &reserved)
		if err == nil && sold == 3 && reserved == 2 {
			break
		}
		if time.Now().After(deadline) {
			first.fatalWithLog("stock_summary not synced in time (sold %d reserved %d, err %v)", sold, reserved, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first.terminate()

	// The data directory is lost: start on an empty one, rebuilding.
	second := &crashProc{t: t, bin: bin, data: t.TempDir(), port: port, logPath: logPath,
		extra: []string{"--mysql-dsn", dsn, "--rebuild-from-mysql"}}
	second.start()
	var sku struct {
		Total, Available, Reserved, Sold int64
	}
	if st, b := call(hc, "GET", base+"/v1/skus/tv", "", ""); st != 200 || json.Unmarshal(b, &sku) != nil {
		second.fatalWithLog("GET after rebuild: %d %s", st, b)
	}
	// Rather undersell: only what was available at the checkpoint is for
	// sale again (10 - 3 sold - 2 reserved).
	if sku.Available != 5 || sku.Total != 5 {
		second.fatalWithLog("after rebuild: %+v, want total 5 available 5", sku)
	}
	if st, b := call(hc, "POST", base+"/v1/deduct", "", `{"request_id":"sale-2","items":[{"sku":"tv","qty":6}]}`); st != 409 {
		second.fatalWithLog("selling more than was left: %d %s, want 409", st, b)
	}
	if st, b := call(hc, "POST", base+"/v1/deduct", "", fmt.Sprintf(`{"request_id":"sale-3","items":[{"sku":"tv","qty":%d}]}`, 5)); st != 200 {
		second.fatalWithLog("selling what was left: %d %s", st, b)
	}
	second.terminate()
}
