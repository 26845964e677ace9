package syncer

import (
	"fmt"
	"time"

	"github.com/flashsale/flashsale/wal"
)

// Entry is one decoded log record and its sequence number.
type Entry struct {
	Seq    uint64
	Record wal.Record
}

// Counts are a SKU's four stock columns. For every SKU,
// Total == Available + Reserved + Sold.
type Counts struct {
	Total     int64 `json:"total"`
	Available int64 `json:"available"`
	Reserved  int64 `json:"reserved"`
	Sold      int64 `json:"sold"`
}

// Add returns c + d, column by column.
func (c Counts) Add(d Counts) Counts {
	return Counts{c.Total + d.Total, c.Available + d.Available, c.Reserved + d.Reserved, c.Sold + d.Sold}
}

// delta is what one flow row (kind, qty) does to a SKU's counts: the fold of
// docs/sync.md (Schema). total = set_total + restock; sold = deduct +
// confirm - return; reserved = reserve - confirm - cancel - expire;
// available = total - reserved - sold. Each delta keeps Total == Available +
// Reserved + Sold.
func delta(kind wal.Kind, qty int64) Counts {
	switch kind {
	case wal.KindSetTotal, wal.KindRestock:
		return Counts{Total: qty, Available: qty}
	case wal.KindDeduct:
		return Counts{Available: -qty, Sold: qty}
	case wal.KindReserve:
		return Counts{Available: -qty, Reserved: qty}
	case wal.KindConfirm:
		return Counts{Reserved: -qty, Sold: qty}
	case wal.KindCancel, wal.KindExpire:
		return Counts{Available: qty, Reserved: -qty}
	case wal.KindReturn:
		return Counts{Available: qty, Sold: -qty}
	}
	panic(fmt.Sprintf("syncer: delta of unknown kind %d", kind))
}

// flowRow is one stock_flow row.
type flowRow struct {
	seq                      uint64
	sku, kind                string
	requestID, refID, userID string
	qty                      int64
	createdAt                time.Time
}

// skuDelta is the change a batch makes to one SKU's summary row.
type skuDelta struct {
	sku     string
	d       Counts
	lastSeq uint64
}

// foldBatch turns entries (ascending seqs) into flow rows and per-SKU summary
// deltas, in first-touched order. It is pure: no I/O, no clock.
func foldBatch(entries []Entry) (rows []flowRow, deltas []skuDelta) {
	index := make(map[string]int)
	for i := range entries {
		e := &entries[i]
		kind := e.Record.Kind.String()
		at := time.UnixMilli(e.Record.TimeMs).UTC()
		for _, it := range e.Record.Items {
			rows = append(rows, flowRow{seq: e.Seq, sku: it.SKU, kind: kind, requestID: e.Record.RequestID,
				refID: e.Record.RefID, userID: e.Record.UserID, qty: it.Qty, createdAt: at})
			j, ok := index[it.SKU]
			if !ok {
				j = len(deltas)
				index[it.SKU] = j
				deltas = append(deltas, skuDelta{sku: it.SKU})
			}
			deltas[j].d = deltas[j].d.Add(delta(e.Record.Kind, it.Qty))
			deltas[j].lastSeq = e.Seq
		}
	}
	return rows, deltas
}

// sqlTimeLayout is how times are sent to DATETIME(3) columns: UTC, ms.
const sqlTimeLayout = "2006-01-02 15:04:05.000"

// sqlTime formats t for a DATETIME(3) column, in UTC.
func sqlTime(t time.Time) string { return t.UTC().Format(sqlTimeLayout) }
