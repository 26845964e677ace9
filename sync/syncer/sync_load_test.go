package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/internal/testkit"

	"github.com/flashsale/flashsale/engine"
)

func testSeed(t testing.TB) uint64 { return testkit.Seed(t) }

// ack is one change the engine acknowledged: its record must reach
// stock_flow exactly once, as Items rows at Seq. ID is the request id (for
// set_total, which the engine logs under an id of its own, the SKU).
type ack struct {
	Seq   uint64
	Kind  string
	ID    string
	Items int
}

func (a ack) String() string { return fmt.Sprintf("ACK %d %s %s %d", a.Seq, a.Kind, a.ID, a.Items) }

func parseAck(line string) (ack, bool) {
	var a ack
	n, err := fmt.Sscanf(line, "ACK %d %s %s %d", &a.Seq, &a.Kind, &a.ID, &a.Items)
	return a, err == nil && n == 4
}

// loadSKUs is the catalog of the load tests: a scarce SKU and roomy ones.
var loadSKUs = []string{"hot", "sku-1", "sku-2", "sku-3", "sku-4", "Sku-4"}

// setupCatalog creates loadSKUs (idempotent: SetSKU keeps or sets totals).
func setupCatalog(ctx context.Context, eng *engine.Engine) ([]ack, error) {
	var acks []ack
	for i, sku := range loadSKUs {
		if _, ok := eng.Available(sku); ok {
			continue
		}
		total := int64(1_000_000)
		if i == 0 {
			total = 40
		}
		_, res, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: sku, Total: total})
		if err != nil {
			return nil, err
		}
		acks = append(acks, ack{res.Seq, "set_total", sku, 1})
	}
	return acks, nil
}

type sale struct {
	id    string
	items []engine.Item
}

// loader makes random changes to an engine. Not safe for concurrent use:
// give each goroutine its own.
type loader struct {
	eng    *engine.Engine
	rng    *rand.Rand
	prefix string
	n      int
	open   []string
	sales  []sale
}

func newLoader(eng *engine.Engine, seed uint64, prefix string) *loader {
	return &loader{eng: eng, rng: rand.New(rand.NewPCG(seed, 0x5eed)), prefix: prefix}
}

func (l *loader) id() string { l.n++; return fmt.Sprintf("%s-%d", l.prefix, l.n) }

func (l *loader) items() []engine.Item {
	k := 1 + l.rng.IntN(2)
	perm := l.rng.Perm(len(loadSKUs))
	out := make([]engine.Item, k)
	for i := range out {
		out[i] = engine.Item{SKU: loadSKUs[perm[i]], Qty: 1 + l.rng.Int64N(3)}
	}
	return out
}

// step makes one change. ok is false when the engine refused it by a
// business rule (sold out, ...); err is set when the engine is unusable.
func (l *loader) step(ctx context.Context) (a ack, ok bool, err error) {
	var res engine.Result
	p := l.rng.IntN(100)
	switch {
	case p < 40:
		id, items := l.id(), l.items()
		res, err = l.eng.Deduct(ctx, engine.DeductRequest{RequestID: id, UserID: "u" + strconv.Itoa(l.rng.IntN(50)), Items: items})
		a = ack{0, "deduct", id, len(items)}
		if err == nil {
			l.sales = append(l.sales, sale{id, items})
		}
	case p < 65:
		id, items := l.id(), l.items()
		ttl := time.Second + time.Duration(l.rng.IntN(1000))*time.Millisecond
		res, err = l.eng.Reserve(ctx, engine.ReserveRequest{RequestID: id, Items: items, TTL: ttl})
		a = ack{0, "reserve", id, len(items)}
		if err == nil {
			l.open = append(l.open, id)
			l.sales = append(l.sales, sale{id, items}) // returnable once confirmed
		}
	case p < 83 && len(l.open) > 0:
		i := l.rng.IntN(len(l.open))
		id := l.open[i]
		l.open[i] = l.open[len(l.open)-1]
		l.open = l.open[:len(l.open)-1]
		var items int
		for _, s := range l.sales {
			if s.id == id {
				items = len(s.items)
			}
		}
		if l.rng.IntN(2) == 0 {
			res, err = l.eng.Confirm(ctx, id)
			a = ack{0, "confirm", id, items}
		} else {
			res, err = l.eng.Cancel(ctx, id)
			a = ack{0, "cancel", id, items}
		}
	case p < 92 && len(l.sales) > 0:
		s := l.sales[l.rng.IntN(len(l.sales))]
		id := l.id()
		res, err = l.eng.Return(ctx, engine.ReturnRequest{ReturnID: id, RequestID: s.id, Items: []engine.Item{{SKU: s.items[0].SKU, Qty: 1}}})
		a = ack{0, "return", id, 1}
	case p < 97:
		id := l.id()
		_, res, err = l.eng.Restock(ctx, engine.RestockRequest{RequestID: id, SKU: loadSKUs[l.rng.IntN(len(loadSKUs))], Qty: 1 + l.rng.Int64N(20)})
		a = ack{0, "restock", id, 1}
	default:
		sku := loadSKUs[1+l.rng.IntN(len(loadSKUs)-1)]
		_, res, err = l.eng.SetSKU(ctx, engine.SetSKURequest{SKU: sku, Total: 1_000_000 + l.rng.Int64N(1000)})
		a = ack{0, "set_total", sku, 1}
	}
	if err != nil {
		c := engine.CodeOf(err)
		if c != nil && !errors.Is(err, engine.ErrUnavailable) && !errors.Is(err, engine.ErrOverloaded) {
			return ack{}, false, nil
		}
		return ack{}, false, err
	}
	if res.Replayed {
		return ack{}, false, nil
	}
	a.Seq = res.Seq
	return a, true, nil
}

// runLoad runs workers loaders until ops changes are tried or d passes, and
// returns what was acknowledged.
func runLoad(t testing.TB, eng *engine.Engine, seed uint64, workers, ops int, d time.Duration) []ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := newLoader(eng, seed+uint64(w), fmt.Sprintf("w%d", w))
			for i := 0; i < ops/workers && ctx.Err() == nil; i++ {
				a, ok, err := l.step(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("load: %v", err)
					}
					return
				}
				if ok {
					mu.Lock()
					acks = append(acks, a)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return acks
}

// engineState adapts a live engine for Reconcile.
func engineState(eng *engine.Engine) StateAt {
	return func(_ context.Context, seq uint64) (map[string]Counts, error) {
		st, err := eng.StateAt(seq)
		if err != nil {
			return nil, err
		}
		return countsOf(st), nil
	}
}

func countsOf(st *engine.State) map[string]Counts {
	m := map[string]Counts{}
	for _, s := range st.SKUs() {
		m[s.SKU] = Counts{Total: s.Total, Available: s.Available, Reserved: s.Reserved, Sold: s.Sold}
	}
	return m
}

// checkAcked asserts that every acknowledged change has exactly its rows in
// stock_flow: Items rows at its seq, of its kind, under its request id.
func checkAcked(t testing.TB, db *sql.DB, acks []ack) {
	t.Helper()
	type got struct {
		n        int
		kind, id string
	}
	rows := map[uint64]*got{}
	rs, err := db.Query("SELECT seq, sku, kind, request_id FROM stock_flow")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var seq uint64
		var sku, kind, id string
		if err := rs.Scan(&seq, &sku, &kind, &id); err != nil {
			t.Fatal(err)
		}
		g := rows[seq]
		if g == nil {
			g = &got{kind: kind, id: id}
			rows[seq] = g
		}
		g.n++
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, a := range acks {
		g := rows[a.Seq]
		if g == nil || g.n != a.Items || g.kind != a.Kind || (g.id != a.ID && a.Kind != "set_total") {
			if bad++; bad <= 10 {
				t.Errorf("acknowledged %v: stock_flow has %+v", a, g)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d acknowledged changes lack exactly-once rows", bad, len(acks))
	}
}

// reconcileClean asserts that Reconcile finds no drift.
func reconcileClean(t testing.TB, db *sql.DB, state StateAt) *Report {
	t.Helper()
	rep, err := Reconcile(context.Background(), db, CheckpointNameDefault, "", state)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean {
		var sb stringsWriter
		rep.WriteTable(&sb)
		t.Fatalf("reconcile found drift:\n%s", sb)
	}
	return rep
}

type stringsWriter []byte

func (w *stringsWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
func (w stringsWriter) String() string               { return string(w) }

func openEngine(t testing.TB, dir string) *engine.Engine {
	t.Helper()
	eng, err := engine.Open(engine.Options{Dir: dir, KeepUnsynced: true, SnapshotEveryRecords: 500, ExpiryTick: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// catchUp waits until the syncer has folded everything durable now.
func catchUp(t testing.TB, s *Syncer, eng *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.WaitSynced(ctx, eng.Log().Durable()); err != nil {
		t.Fatalf("catch up: %v (status %+v)", err, s.Status())
	}
}

func TestSyncerFollowsEngine(t *testing.T) {
	seed := testSeed(t)
	db := openTestDB(t, testDatabase(t))
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	rng := rand.New(rand.NewPCG(seed, 1))
	s := Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced, BatchRecordsMax: 1 + rng.IntN(300)})
	defer s.Close()
	acks, err := setupCatalog(context.Background(), eng)
	if err != nil {
		t.Fatal(err)
	}
	acks = append(acks, runLoad(t, eng, seed, 4, 4000, 5*time.Second)...)
	durable := eng.Log().Durable() // expiries may add records after this
	catchUp(t, s, eng)
	rep := reconcileClean(t, db, engineState(eng))
	checkAcked(t, db, acks)
	st := s.Status()
	if st.Checkpoint < durable || st.Batches == 0 || st.LastError != "" || !st.Ready || !st.Running {
		t.Fatalf("status after catch-up to %d: %+v", durable, st)
	}
	if eng.Stats().SyncedSeq < durable {
		t.Fatalf("engine synced %d, checkpoint %d", eng.Stats().SyncedSeq, st.Checkpoint)
	}
	t.Logf("%d acks, %+v, reconcile %d SKUs %d records", len(acks), st, rep.SKUs, rep.FlowRecords)
}
