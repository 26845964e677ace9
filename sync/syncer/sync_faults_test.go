package syncer

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// faultProxy forwards loopback TCP to MySQL and, on demand, cuts every
// connection (mid-transaction or not), refuses new ones ("MySQL down") or
// forwards what the client sends at a limited rate ("MySQL slow").
type faultProxy struct {
	ln     net.Listener
	target string
	rate   atomic.Int64 // bytes per second forwarded to MySQL; 0: no limit
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	down   bool
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	return p
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			if dst == s {
				p.copyToServer(s, c)
			} else {
				io.Copy(dst, src)
			}
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(c, s)
		go pipe(s, c)
	}
}

// copyToServer copies what the client sends to MySQL, no faster than the
// proxy's rate.
func (p *faultProxy) copyToServer(dst, src net.Conn) {
	buf := make([]byte, 1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if r := p.rate.Load(); r > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / r))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// setRate limits what the proxy forwards to MySQL to bytesPerSec (0: no
// limit), as if MySQL took that long to take in each statement.
func (p *faultProxy) setRate(bytesPerSec int64) { p.rate.Store(bytesPerSec) }

// cutAll closes every forwarded connection at once.
func (p *faultProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// setDown refuses (down) or accepts new connections; going down cuts the
// open ones too.
func (p *faultProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cutAll()
	}
}

// viaProxy returns dsn with its address replaced by the proxy's.
func (p *faultProxy) viaProxy(t testing.TB, dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = p.ln.Addr().String()
	return cfg.FormatDSN()
}

// killSessions KILLs, from another connection, every session on database
// name except the killer's own: MySQL aborts whatever they were doing.
func killSessions(ctx context.Context, admin *sql.DB, name string) (int, error) {
	rs, err := admin.QueryContext(ctx, "SELECT id FROM information_schema.PROCESSLIST WHERE db = ? AND id <> CONNECTION_ID()", name)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			rs.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rs.Close()
	n := 0
	for _, id := range ids {
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err == nil {
			n++
		}
	}
	return n, nil
}

// TestSyncerSurvivesMySQLFaults folds under load while MySQL's connections are
// cut by a proxy, KILLed from another session, and refused for a while (as if
// MySQL were stopped and started). The engine keeps selling throughout; in
// the end the syncer has caught up by itself, reconcile is clean and every
// acknowledged change has exactly one set of flow rows.
func TestSyncerSurvivesMySQLFaults(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	dsn := testDatabase(t)
	direct := openTestDB(t, dsn)
	cfg, _ := mysql.ParseDSN(dsn)
	proxy := newFaultProxy(t, cfg.Addr)
	viaProxy := openTestDB(t, proxy.viaProxy(t, dsn))

	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	s := Start(Config{DB: viaProxy, Log: eng.Log(), MarkSynced: eng.MarkSynced, BatchRecordsMax: 8 + rng.IntN(64)})
	defer s.Close()
	acks, err := setupCatalog(context.Background(), eng)
	if err != nil {
		t.Fatal(err)
	}

	loadDone := make(chan []ack)
	go func() { loadDone <- runLoad(t, eng, seed, 3, 1_000_000, 3*time.Second) }()
	var cuts, kills, downs int
	var soldWhileDown uint64
	ctx := context.Background()
faults:
	for {
		select {
		case got := <-loadDone:
			acks = append(acks, got...)
			break faults
		case <-time.After(time.Duration(20+rng.IntN(120)) * time.Millisecond):
		}
		switch p := rng.IntN(10); {
		case p < 4:
			proxy.cutAll()
			cuts++
		case p < 8:
			if _, err := killSessions(ctx, direct, cfg.DBName); err != nil {
				t.Fatal(err)
			}
			kills++
		case downs < 2:
			before := eng.Log().Durable()
			proxy.setDown(true)
			time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
			soldWhileDown += eng.Log().Durable() - before
			proxy.setDown(false)
			downs++
		}
	}
	proxy.setDown(false)
	catchUp(t, s, eng)
	reconcileClean(t, direct, engineState(eng))
	checkAcked(t, direct, acks)
	st := s.Status()
	t.Logf("%d cuts, %d kills, %d outages (%d records logged meanwhile); %d acks; status %+v", cuts, kills, downs, soldWhileDown, len(acks), st)
	if st.Errors == 0 {
		t.Fatalf("no fault reached the syncer: the test proved nothing")
	}
	if downs > 0 && soldWhileDown == 0 {
		t.Fatalf("the engine logged nothing while MySQL was down")
	}
}

// TestSyncerProgressesWhenBatchOutlastsTxTimeout: MySQL takes in SQL so
// slowly that the backlog, folded as one batch, cannot commit within the
// transaction timeout (TxTimeoutMax, shortened here). The syncer must still
// catch up, in smaller batches, instead of retrying the same batch forever
// while the log it may not truncate grows.
func TestSyncerProgressesWhenBatchOutlastsTxTimeout(t *testing.T) {
	seed := testSeed(t)
	dsn := testDatabase(t)
	direct := openTestDB(t, dsn)
	cfg, _ := mysql.ParseDSN(dsn)
	proxy := newFaultProxy(t, cfg.Addr)
	slow := openTestDB(t, proxy.viaProxy(t, dsn))
	ctx := context.Background()
	if err := Migrate(ctx, direct); err != nil {
		t.Fatal(err)
	}

	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	acks, err := setupCatalog(ctx, eng)
	if err != nil {
		t.Fatal(err)
	}
	acks = append(acks, runLoad(t, eng, seed, 2, 400, 30*time.Second)...)
	backlog := eng.Log().Durable()
	// About 150 bytes of SQL per record: the whole backlog takes several
	// times the timeout to send, a tenth of it well under.
	proxy.setRate(8 << 10)
	s := Start(Config{DB: slow, Log: eng.Log(), MarkSynced: eng.MarkSynced, txTimeout: 2 * time.Second})
	defer s.Close()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := s.WaitSynced(wctx, backlog); err != nil {
		t.Fatalf("backlog of %d records not folded: %v (status %+v)", backlog, err, s.Status())
	}
	proxy.setRate(0)
	catchUp(t, s, eng)
	reconcileClean(t, direct, engineState(eng))
	checkAcked(t, direct, acks)
	st := s.Status()
	t.Logf("backlog %d records, %d acks; status %+v", backlog, len(acks), st)
	if st.Errors == 0 {
		t.Fatalf("no batch outlasted the timeout: the test proved nothing")
	}
}

// TestSyncerStatusClearsStartError: MySQL down when the syncer starts makes
// its start fail (last_error says why) and retry; once MySQL is back and the
// start succeeds, last_error must not go on showing the outage while nothing
// is wrong (an idle engine commits no batch that would clear it).
func TestSyncerStatusClearsStartError(t *testing.T) {
	dsn := testDatabase(t)
	cfg, _ := mysql.ParseDSN(dsn)
	proxy := newFaultProxy(t, cfg.Addr)
	proxy.setDown(true)
	viaProxy := openTestDB(t, proxy.viaProxy(t, dsn))

	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	s := Start(Config{DB: viaProxy, Log: eng.Log(), MarkSynced: eng.MarkSynced})
	defer s.Close()
	waitStatus := func(what string, ok func(Status) bool) Status {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := s.Status()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := waitStatus("a failed start", func(st Status) bool { return st.Errors > 0 })
	if st.Ready || st.LastError == "" {
		t.Fatalf("while MySQL is down: %+v", st)
	}
	proxy.setDown(false)
	st = waitStatus("the start after MySQL came back", func(st Status) bool { return st.Ready })
	if st.LastError != "" || st.LastErrorAt != "" || !st.Running {
		t.Fatalf("started, nothing wrong, but status says %+v", st)
	}
}
