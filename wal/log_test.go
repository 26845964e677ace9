package wal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// testDir is the log's directory inside each test's in-memory file system.
const testDir = "wal"

// ackResult is what an Ack was told.
type ackResult struct {
	seq uint64
	err error
}

// chanAck delivers its result on a buffered channel, as the engine's acks do.
type chanAck chan ackResult

func newChanAck() chanAck { return make(chanAck, 1) }

func (a chanAck) Durable(seq uint64, err error) { a <- ackResult{seq, err} }

// funcAck runs f on the committer goroutine.
type funcAck func(seq uint64, err error)

func (f funcAck) Durable(seq uint64, err error) { f(seq, err) }

func openLog(t testing.TB, fs vfs.FS, opts Options) *Log {
	t.Helper()
	opts.FS = fs
	l, err := Open(testDir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// testRecord returns a valid encoded record whose request id names it.
func testRecord(id string) []byte {
	r := Record{Kind: KindDeduct, TimeMs: 1_700_000_000_000, RequestID: id, UserID: "user-1",
		BodyHash: 42, Items: []Item{{SKU: "sku-1", Qty: 1}}}
	return r.Encode(nil)
}

// appendWait appends rec and waits for its ack.
func appendWait(t testing.TB, l *Log, rec []byte) uint64 {
	t.Helper()
	a := newChanAck()
	seq, err := l.Append(rec, a)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	res := <-a
	if res.err != nil || res.seq != seq {
		t.Fatalf("ack = (%d, %v), want (%d, nil)", res.seq, res.err, seq)
	}
	return seq
}

// readAll returns the records Read hands out for [from, to], copied.
func readAll(t testing.TB, l *Log, from, to uint64) (seqs []uint64, recs [][]byte) {
	t.Helper()
	err := l.Read(from, to, func(seq uint64, rec []byte) error {
		seqs = append(seqs, seq)
		recs = append(recs, append([]byte(nil), rec...))
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%d, %d): %v", from, to, err)
	}
	return seqs, recs
}

func requestID(t testing.TB, rec []byte) string {
	t.Helper()
	var r Record
	if err := r.Decode(rec); err != nil {
		t.Fatalf("record read back does not decode: %v", err)
	}
	return r.RequestID
}

// TestAppendAcksAfterDurable appends from many goroutines and checks the
// protocol: seqs are contiguous from 1, each ack comes with its own seq and
// after Durable() has reached it, acks arrive in seq order, and Read hands
// back exactly what was appended under each seq.
func TestAppendAcksAfterDurable(t *testing.T) {
	const (
		appenders   = 64
		perAppender = 100
		total       = appenders * perAppender
	)
	var commits, committed atomic.Int64
	l := openLog(t, vfs.NewMem(), Options{
		BatchRecordsMax: 50, // force many batches
		OnCommit: func(records, bytes int, took time.Duration) {
			if records < 1 || records > 50 || bytes <= 0 {
				t.Errorf("OnCommit(%d, %d, %v)", records, bytes, took)
			}
			commits.Add(1)
			committed.Add(int64(records))
		},
	})
	defer l.Close()

	var (
		mu       sync.Mutex
		bySeq    = make(map[uint64]string, total)
		lastAck  uint64 // only touched by acks, which the log calls one at a time
		ackFails atomic.Int64
	)
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perAppender; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				done := make(chan ackResult, 1)
				var ack funcAck = func(seq uint64, err error) {
					if d := l.Durable(); seq > d || err != nil {
						t.Errorf("ack(%d, %v) while Durable() = %d", seq, err, d)
						ackFails.Add(1)
					}
					if seq != lastAck+1 {
						t.Errorf("ack for seq %d after ack for %d: not in seq order", seq, lastAck)
					}
					lastAck = seq
					done <- ackResult{seq, err}
				}
				seq, err := l.Append(testRecord(id), ack)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := bySeq[seq]; dup {
					t.Errorf("seq %d handed out twice (%s, %s)", seq, prev, id)
				}
				bySeq[seq] = id
				mu.Unlock()
				if res := <-done; res.seq != seq {
					t.Errorf("Append returned seq %d, ack said %d", seq, res.seq)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for seq := uint64(1); seq <= total; seq++ {
		if _, ok := bySeq[seq]; !ok {
			t.Fatalf("seq %d never handed out; seqs are not contiguous from 1", seq)
		}
	}
	if got := l.Durable(); got != total {
		t.Fatalf("Durable() = %d, want %d", got, total)
	}
	if got := committed.Load(); got != total {
		t.Fatalf("OnCommit saw %d records, want %d", got, total)
	}
	t.Logf("%d records in %d commits", total, commits.Load())
	st := l.Stats()
	if st.First != 1 || st.Durable != total || st.Next != total+1 || st.Queued != 0 {
		t.Fatalf("Stats() = %+v", st)
	}
	seqs, recs := readAll(t, l, 1, total+100)
	if len(seqs) != total {
		t.Fatalf("Read returned %d records, want %d", len(seqs), total)
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("Read returned seq %d at position %d", seq, i)
		}
		if got := requestID(t, recs[i]); got != bySeq[seq] {
			t.Fatalf("seq %d holds %q, want %q", seq, got, bySeq[seq])
		}
	}
	// Ranges and early stop.
	if seqs, _ := readAll(t, l, 10, 19); len(seqs) != 10 || seqs[0] != 10 || seqs[9] != 19 {
		t.Fatalf("Read(10, 19) = %v", seqs)
	}
	if seqs, _ := readAll(t, l, 20, 10); len(seqs) != 0 {
		t.Fatalf("Read(20, 10) = %v", seqs)
	}
	stop := errors.New("stop")
	n := 0
	err := l.Read(1, total, func(uint64, []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Read with failing fn: err %v after %d calls", err, n)
	}
}

// TestReadNeverBeyondDurable reads concurrently with appends: nothing Read
// hands out is above the Durable() observed after Read returns.
func TestReadNeverBeyondDurable(t *testing.T) {
	l := openLog(t, vfs.NewMem(), Options{BatchRecordsMax: 8})
	defer l.Close()
	const records = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < records/8; i++ {
					a := newChanAck()
					if _, err := l.Append(testRecord(fmt.Sprintf("r%d-%d", g, i)), a); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					<-a
				}
			}()
		}
		wg.Wait()
	}()
	reads := 0
	for {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		var maxSeq uint64
		var prev uint64
		err := l.Read(1, SeqMax, func(seq uint64, _ []byte) error {
			if seq != prev+1 {
				return fmt.Errorf("seq %d after %d: hole", seq, prev)
			}
			prev, maxSeq = seq, seq
			return nil
		})
		if d := l.Durable(); err == nil && maxSeq > d {
			err = fmt.Errorf("Read returned seq %d beyond Durable() %d", maxSeq, d)
		}
		if err == nil && finished && maxSeq != records {
			err = fmt.Errorf("appenders done, Read ends at seq %d, want %d", maxSeq, records)
		}
		if err != nil {
			<-done // let the appenders finish before the test ends
			t.Fatal(err)
		}
		reads++
		if maxSeq == records {
			break
		}
	}
	<-done
	t.Logf("%d concurrent reads", reads)
}

func TestReopenKeepsRecordsAndContinuesSeqs(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, Options{})
	for i := 1; i <= 10; i++ {
		if seq := appendWait(t, l, testRecord(fmt.Sprintf("a%d", i))); seq != uint64(i) {
			t.Fatalf("seq %d, want %d", seq, i)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Append(testRecord("late"), newChanAck()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	l = openLog(t, fs, Options{})
	defer l.Close()
	if l.Durable() != 10 || l.First() != 1 {
		t.Fatalf("after reopen Durable() = %d, First() = %d; want 10, 1", l.Durable(), l.First())
	}
	if seq := appendWait(t, l, testRecord("b11")); seq != 11 {
		t.Fatalf("first seq after reopen = %d, want 11", seq)
	}
	seqs, recs := readAll(t, l, 0, 100)
	if len(seqs) != 11 {
		t.Fatalf("Read after reopen: %v", seqs)
	}
	for i, rec := range recs {
		want := fmt.Sprintf("a%d", i+1)
		if i == 10 {
			want = "b11"
		}
		if got := requestID(t, rec); got != want {
			t.Fatalf("seq %d holds %q, want %q", seqs[i], got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, Options{})
	for i := 1; i <= 10; i++ {
		appendWait(t, l, testRecord(fmt.Sprintf("a%d", i)))
	}
	if err := l.Truncate(12); err == nil {
		t.Fatalf("Truncate(12) with Durable() = 10 succeeded")
	}
	if err := l.Truncate(5); err != nil {
		t.Fatalf("Truncate(5): %v", err)
	}
	if l.First() != 5 {
		t.Fatalf("First() = %d after Truncate(5)", l.First())
	}
	if err := l.Truncate(3); err != nil || l.First() != 5 {
		t.Fatalf("Truncate(3) below First: %v, First() = %d", err, l.First())
	}
	if seqs, _ := readAll(t, l, 1, 100); len(seqs) != 6 || seqs[0] != 5 || seqs[5] != 10 {
		t.Fatalf("Read after Truncate(5) = %v, want 5..10", seqs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, fs, Options{})
	if l.First() != 5 || l.Durable() != 10 {
		t.Fatalf("reopen after Truncate(5): First %d Durable %d", l.First(), l.Durable())
	}
	// Truncate everything: the floor key alone keeps the seqs rising.
	if err := l.Truncate(11); err != nil {
		t.Fatalf("Truncate(11): %v", err)
	}
	if seqs, _ := readAll(t, l, 0, SeqMax); len(seqs) != 0 {
		t.Fatalf("Read after truncating everything = %v", seqs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		l = openLog(t, fs, Options{})
		if l.First() != 11 || l.Durable() != 10 || l.Stats().Next != 11 {
			t.Fatalf("reopen %d of an emptied log: %+v, want First 11, Durable 10, Next 11", round, l.Stats())
		}
		if err := l.Close(); err != nil { // a reopen without appends keeps the floor
			t.Fatal(err)
		}
	}
	l = openLog(t, fs, Options{})
	defer l.Close()
	if seq := appendWait(t, l, testRecord("after")); seq != 11 {
		t.Fatalf("first seq after truncating everything = %d, want 11", seq)
	}
	if seqs, recs := readAll(t, l, 0, SeqMax); len(seqs) != 1 || seqs[0] != 11 || requestID(t, recs[0]) != "after" {
		t.Fatalf("Read = %v", seqs)
	}
}

func TestWaitDurable(t *testing.T) {
	l := openLog(t, vfs.NewMem(), Options{})
	got := make(chan ackResult, 1)
	go func() {
		d, err := l.WaitDurable(context.Background(), 0)
		got <- ackResult{d, err}
	}()
	seq := appendWait(t, l, testRecord("a"))
	if res := <-got; res.err != nil || res.seq < seq {
		t.Fatalf("WaitDurable(0) = %d, %v; want >= %d", res.seq, res.err, seq)
	}
	// Already past: returns at once.
	if d, err := l.WaitDurable(context.Background(), 0); err != nil || d != 1 {
		t.Fatalf("WaitDurable(0) after durable = %d, %v", d, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		d, err := l.WaitDurable(ctx, 1)
		got <- ackResult{d, err}
	}()
	cancel()
	if res := <-got; !errors.Is(res.err, context.Canceled) {
		t.Fatalf("WaitDurable after cancel = %d, %v", res.seq, res.err)
	}
	go func() {
		d, err := l.WaitDurable(context.Background(), 1)
		got <- ackResult{d, err}
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if res := <-got; !errors.Is(res.err, ErrClosed) {
		t.Fatalf("WaitDurable across Close = %d, %v; want ErrClosed", res.seq, res.err)
	}
}

// TestCloseAcksQueued appends without waiting and closes: every record
// appended before Close is acked durable and survives a reopen.
func TestCloseAcksQueued(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, Options{BatchRecordsMax: 7})
	const n = 500
	acks := make([]chanAck, n)
	for i := range acks {
		acks[i] = newChanAck()
		if _, err := l.Append(testRecord(fmt.Sprintf("q%d", i)), acks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i, a := range acks {
		select {
		case res := <-a:
			if res.err != nil || res.seq != uint64(i+1) {
				t.Fatalf("ack %d = %+v", i, res)
			}
		default:
			t.Fatalf("record %d not acked when Close returned", i+1)
		}
	}
	l = openLog(t, fs, Options{})
	defer l.Close()
	if l.Durable() != n {
		t.Fatalf("Durable() after reopen = %d, want %d", l.Durable(), n)
	}
}

// TestBackpressure stalls the committer (OnCommit runs on it) and checks that
// Append blocks once QueueRecordsMax records wait, then completes when the
// committer moves again; and that batches never exceed BatchRecordsMax.
func TestBackpressure(t *testing.T) {
	const (
		batchMax = 2
		queueMax = 4
	)
	gate := make(chan struct{})
	var stalled atomic.Bool
	var maxQueued atomic.Int64
	var l *Log
	l = openLog(t, vfs.NewMem(), Options{
		BatchRecordsMax: batchMax,
		QueueRecordsMax: queueMax,
		OnCommit: func(records, _ int, _ time.Duration) {
			if records > batchMax {
				t.Errorf("commit of %d records > BatchRecordsMax %d", records, batchMax)
			}
			if stalled.CompareAndSwap(false, true) {
				<-gate
			}
		},
	})
	defer l.Close()

	// Record 1 is committed, and the committer stalls in OnCommit with it
	// still counted as queued.
	first := newChanAck()
	if _, err := l.Append(testRecord("first"), first); err != nil {
		t.Fatal(err)
	}
	var returned atomic.Int64
	const extra = 40
	acks := make([]chanAck, extra)
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := range acks {
			acks[i] = newChanAck()
			if _, err := l.Append(testRecord(fmt.Sprintf("x%d", i)), acks[i]); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			returned.Add(1)
		}
	}()
	// Wait until the appender can go no further: queueMax-1 more records.
	deadline := time.Now().Add(10 * time.Second)
	for returned.Load() < queueMax-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // give a broken limit the chance to show
	if got := returned.Load(); got != queueMax-1 {
		t.Fatalf("with the committer stalled, %d Appends returned; want %d (QueueRecordsMax %d)", got, queueMax-1, queueMax)
	}
	if q := l.Stats().Queued; q != queueMax {
		t.Fatalf("Stats().Queued = %d, want %d", q, queueMax)
	}
	sample := make(chan struct{})
	go func() { // the queue stays bounded while it drains
		defer close(sample)
		for {
			select {
			case <-appended:
				return
			default:
			}
			maxQueued.Store(max(maxQueued.Load(), int64(l.Stats().Queued)))
			time.Sleep(100 * time.Microsecond)
		}
	}()
	close(gate)
	<-appended
	<-sample
	if res := <-first; res.err != nil {
		t.Fatal(res.err)
	}
	for i, a := range acks {
		if res := <-a; res.err != nil || res.seq != uint64(i+2) {
			t.Fatalf("ack %d = %+v", i, res)
		}
	}
	if m := maxQueued.Load(); m > queueMax {
		t.Fatalf("Stats().Queued reached %d > QueueRecordsMax %d", m, queueMax)
	}
}

// TestCrashClone appends under load and takes crash clones of the in-memory
// file system at random moments (only synced data survives, plus, in some
// rounds, a random part of what was not synced). On each clone: the log opens,
// every record acked before the clone is present and intact, each appender's
// records form a prefix of what it appended, and seqs run from 1 without holes.
// Only whole groups survive: every chunk in every clone is exactly a group the
// committer committed (same first seq, same record count).
func TestCrashClone(t *testing.T) {
	rng := testRand(t)
	const (
		appenders      = 8
		rounds         = 20
		perAppenderMax = 1500 // bounds the load, and so each reopen's replay
	)
	fs := vfs.NewCrashableMem()
	var (
		groupsMu  sync.Mutex
		groups    = map[uint64]uint64{} // first seq -> records, of each committed group
		nextGroup = uint64(1)
	)
	l := openLog(t, fs, Options{BatchRecordsMax: 16, OnCommit: func(records, _ int, _ time.Duration) {
		groupsMu.Lock()
		groups[nextGroup] = uint64(records)
		nextGroup += uint64(records)
		groupsMu.Unlock()
	}})
	acked := make([]atomic.Int64, appenders) // records acked durable, per appender
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perAppenderMax; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := newChanAck()
				if _, err := l.Append(testRecord(fmt.Sprintf("g%d-%d", g, i)), a); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if res := <-a; res.err != nil {
					t.Errorf("ack: %v", res.err)
					return
				}
				acked[g].Add(1)
			}
		}()
	}
	underLoad := 0
	var cloneChunks [][][2]uint64 // (first seq, records) of each chunk, per clone
	for round := 0; round < rounds; round++ {
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		var before [appenders]int64
		var sum int64
		for g := range acked {
			before[g] = acked[g].Load()
			sum += before[g]
		}
		if sum < appenders*perAppenderMax {
			underLoad++
		}
		durableBefore := l.Durable()
		cfg := vfs.CrashCloneCfg{}
		if round%2 == 1 {
			cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))}
		}
		clone := fs.CrashClone(cfg)
		checkClone(t, round, clone, before[:], durableBefore, cfg.UnsyncedDataPercent)
		cloneChunks = append(cloneChunks, chunkLayout(t, rawChunks(t, clone)))
	}
	close(stop)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	groupsMu.Lock()
	defer groupsMu.Unlock()
	multi := 0
	for round, chunks := range cloneChunks {
		for _, c := range chunks {
			if n, ok := groups[c[0]]; !ok || n != c[1] {
				t.Fatalf("round %d: the clone has a chunk of %d records at seq %d; the group committed there had %d", round, c[1], c[0], n)
			}
			if c[1] > 1 {
				multi++
			}
		}
	}
	if multi == 0 {
		t.Errorf("no clone held a chunk of more than one record: the test checked nothing about groups")
	}
	var total int64
	for g := range acked {
		total += acked[g].Load()
	}
	t.Logf("%d rounds (%d while appending), %d records acked", rounds, underLoad, total)
}

func checkClone(t *testing.T, round int, fs vfs.FS, ackedBefore []int64, durableBefore uint64, unsyncedPct int) {
	t.Helper()
	l, err := Open(testDir, Options{FS: fs})
	if err != nil {
		t.Fatalf("round %d (unsynced %d%%): Open on crash clone: %v", round, unsyncedPct, err)
	}
	defer l.Close()
	if l.Durable() < durableBefore {
		t.Fatalf("round %d: clone has Durable() %d < %d durable before the crash", round, l.Durable(), durableBefore)
	}
	next := make([]int64, len(ackedBefore))
	var prev uint64
	err = l.Read(1, SeqMax, func(seq uint64, rec []byte) error {
		if seq != prev+1 {
			return fmt.Errorf("seq %d after %d: hole", seq, prev)
		}
		prev = seq
		var r Record
		if err := r.Decode(rec); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		var g, i int64
		if _, err := fmt.Sscanf(strings.ReplaceAll(r.RequestID, "-", " "), "g%d %d", &g, &i); err != nil {
			return fmt.Errorf("seq %d: request id %q: %w", seq, r.RequestID, err)
		}
		if i != next[g] {
			return fmt.Errorf("seq %d: appender %d record %d, want %d", seq, g, i, next[g])
		}
		next[g]++
		return nil
	})
	if err != nil {
		t.Fatalf("round %d: Read on crash clone: %v", round, err)
	}
	if prev != l.Durable() {
		t.Fatalf("round %d: clone's last seq %d, Durable() %d", round, prev, l.Durable())
	}
	for g, n := range ackedBefore {
		if next[g] < n {
			t.Fatalf("round %d: appender %d had %d records acked before the crash, the clone has %d", round, g, n, next[g])
		}
	}
}

// syncOp reports whether op is an fsync of one of Pebble's WAL files.
func syncOp(op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return strings.HasSuffix(op.Path, ".log")
	}
	return false
}

// TestFsyncFailure makes the WAL's fsync fail while appenders run. Pebble
// reports a failed commit through Logger.Fatalf, which the log turns into a
// panic that commit recovers: the test process must survive it. After the
// failure: the failing batch's acks and every later Append carry an error
// wrapping ErrFailed, no success is acked after the first failure, Err() is
// set, Durable() stops, and Read never hands out the failed records even
// though Pebble has applied them to its memtable.
func TestFsyncFailure(t *testing.T) {
	var injected atomic.Int64
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if syncOp(op) {
			injected.Add(1)
			return errorfs.ErrInjected
		}
		return nil
	})}
	mem := vfs.NewMem()
	l := openLog(t, errorfs.Wrap(mem, toggle), Options{BatchRecordsMax: 8})

	const before = 50
	for i := 0; i < before; i++ {
		appendWait(t, l, testRecord(fmt.Sprintf("ok%d", i)))
	}

	const appenders = 8
	var (
		mu      sync.Mutex
		results = map[uint64]error{} // ack per seq after the toggle
		appErrs []error
	)
	toggle.On()
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				a := newChanAck()
				seq, err := l.Append(testRecord(fmt.Sprintf("f%d-%d", g, i)), a)
				if err != nil {
					mu.Lock()
					appErrs = append(appErrs, err)
					mu.Unlock()
					return
				}
				res := <-a
				if res.seq != seq {
					t.Errorf("ack seq %d for Append seq %d", res.seq, seq)
				}
				mu.Lock()
				results[seq] = res.err
				mu.Unlock()
			}
			t.Errorf("appender %d: 1000 Appends after the fsync failure without an error", g)
		}()
	}
	wg.Wait()
	if injected.Load() == 0 {
		t.Fatalf("no fsync error was injected")
	}
	if len(appErrs) != appenders {
		t.Fatalf("%d of %d appenders saw Append fail", len(appErrs), appenders)
	}
	for _, err := range appErrs {
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("Append after failure: %v, want ErrFailed", err)
		}
	}
	var firstFail, lastOK uint64
	for seq, err := range results {
		if err == nil {
			lastOK = max(lastOK, seq)
			continue
		}
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("ack error for seq %d: %v, want ErrFailed", seq, err)
		}
		if firstFail == 0 || seq < firstFail {
			firstFail = seq
		}
	}
	if firstFail == 0 {
		t.Fatalf("no ack reported the failure")
	}
	if lastOK >= firstFail {
		t.Fatalf("seq %d acked durable after seq %d was failed", lastOK, firstFail)
	}
	lerr := l.Err()
	if !errors.Is(lerr, ErrFailed) {
		t.Fatalf("Err() = %v, want ErrFailed", lerr)
	}
	if !strings.Contains(lerr.Error(), errorfs.ErrInjected.Error()) {
		t.Errorf("Err() = %v does not carry the injected error's message", lerr)
	}
	t.Logf("Err() = %v (errors.Is(err, errorfs.ErrInjected) = %v)", lerr, errors.Is(lerr, errorfs.ErrInjected))
	d := l.Durable()
	if d != firstFail-1 || d < before {
		t.Fatalf("Durable() = %d; first failed seq %d, %d acked before the toggle", d, firstFail, before)
	}
	if _, err := l.Append(testRecord("late"), newChanAck()); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after failure: %v", err)
	}
	if _, err := l.WaitDurable(context.Background(), d); !errors.Is(err, ErrFailed) {
		t.Fatalf("WaitDurable after failure: %v", err)
	}
	seqs, _ := readAll(t, l, 1, SeqMax)
	if uint64(len(seqs)) != d || (len(seqs) > 0 && seqs[len(seqs)-1] != d) {
		t.Fatalf("Read after failure returned %d records up to %v; Durable() = %d", len(seqs), seqs[len(seqs)-1:], d)
	}
	if d2 := l.Durable(); d2 != d {
		t.Fatalf("Durable() moved from %d to %d after the failure", d, d2)
	}
	truncated := make(chan error, 1)
	go func() { truncated <- l.Truncate(d / 2) }()
	select {
	case err := <-truncated:
		t.Logf("Truncate after failure: %v", err)
	case <-time.After(10 * time.Second):
		t.Errorf("Truncate after failure did not return within 10s")
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close after failure: %v, want ErrFailed", err)
	}
}

// TestTruncateFailureIsSticky fails the fsync of a Truncate: like a failed
// append commit, it breaks Pebble's commit pipeline, so the log must fail for
// good (Err() set, Append refused) rather than report itself healthy.
func TestTruncateFailureIsSticky(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if syncOp(op) {
			return errorfs.ErrInjected
		}
		return nil
	})}
	l := openLog(t, errorfs.Wrap(vfs.NewMem(), toggle), Options{})
	for i := 0; i < 10; i++ {
		appendWait(t, l, testRecord(fmt.Sprintf("ok%d", i)))
	}
	toggle.On()
	if err := l.Truncate(6); err == nil {
		t.Fatalf("Truncate with failing fsync succeeded")
	}
	toggle.Off()
	if l.First() != 1 {
		t.Fatalf("First() = %d after a failed Truncate, want 1", l.First())
	}
	lerr := l.Err()
	seqs, _ := readAll(t, l, 1, SeqMax)
	a := newChanAck()
	_, aerr := l.Append(testRecord("after"), a)
	if aerr == nil {
		if res := <-a; res.err == nil {
			t.Fatalf("a record was acked durable after a failed Truncate commit")
		}
	}
	if !errors.Is(lerr, ErrFailed) || !errors.Is(aerr, ErrFailed) {
		t.Fatalf("a failed Truncate commit did not make the log refuse writes: Err() = %v, next Append = %v; "+
			"Read returns %v", lerr, aerr, seqs)
	}
}

// TestAppendBatch: a batch gets consecutive seqs in its order, each ack its
// own seq, a batch may span commit groups, and a batch that breaks a rule is
// refused whole, appending nothing.
func TestAppendBatch(t *testing.T) {
	l := openLog(t, vfs.NewMem(), Options{BatchRecordsMax: 8})
	defer l.Close()
	recs := make([][]byte, 8)
	acks := make([]Ack, 8)
	chans := make([]chanAck, 8)
	for i := range recs {
		recs[i] = testRecord(fmt.Sprintf("b-%d", i))
		chans[i] = newChanAck()
		acks[i] = chans[i]
	}
	first := appendWait(t, l, testRecord("before"))
	// Three records first, so the batch of 8 straddles two groups of 8.
	for i := 0; i < 3; i++ {
		appendWait(t, l, testRecord(fmt.Sprintf("pad-%d", i)))
	}
	got, err := l.AppendBatch(recs, acks)
	if err != nil {
		t.Fatal(err)
	}
	if got != first+4 {
		t.Fatalf("batch starts at %d, want %d", got, first+4)
	}
	for i, c := range chans {
		if res := <-c; res.err != nil || res.seq != got+uint64(i) {
			t.Fatalf("ack %d = %+v, want seq %d", i, res, got+uint64(i))
		}
	}
	seqs, read := readAll(t, l, got, got+7)
	for i := range read {
		if seqs[i] != got+uint64(i) || requestID(t, read[i]) != fmt.Sprintf("b-%d", i) {
			t.Fatalf("record %d: seq %d id %s", i, seqs[i], requestID(t, read[i]))
		}
	}
	// Refused whole: too many records, a mismatch of acks, a bad record.
	next := l.Stats().Next
	bad := append(append([][]byte(nil), recs[:3]...), nil)
	for _, tc := range []struct {
		recs [][]byte
		acks []Ack
	}{
		{append(append([][]byte(nil), recs...), recs[0]), append(append([]Ack(nil), acks...), acks[0])},
		{recs[:2], acks[:3]},
		{bad, acks[:4]},
		{nil, nil},
	} {
		if _, err := l.AppendBatch(tc.recs, tc.acks); err == nil {
			t.Fatalf("AppendBatch of %d records, %d acks: no error", len(tc.recs), len(tc.acks))
		}
	}
	if l.Stats().Next != next {
		t.Fatalf("a refused batch appended: next %d, was %d", l.Stats().Next, next)
	}
}

// waitParked polls the goroutine stacks until one is blocked in a select
// inside fn (a function name such as "(*Log).WaitDurable").
func waitParked(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(time.Minute)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, fn+"(") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine blocked in %s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWaitDurableWakesOnCommitFailure: a WaitDurable already waiting when a
// commit fails (an append's or a truncation's) returns ErrFailed, as the
// package doc promises ("until Durable() > after, the log fails or closes"),
// rather than waiting for a durable seq that can never come.
func TestWaitDurableWakesOnCommitFailure(t *testing.T) {
	for _, how := range []string{"append", "truncate"} {
		t.Run(how, func(t *testing.T) {
			toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
				if syncOp(op) {
					return errorfs.ErrInjected
				}
				return nil
			})}
			l := openLog(t, errorfs.Wrap(vfs.NewMem(), toggle), Options{})
			var last uint64
			for i := 0; i < 10; i++ {
				last = appendWait(t, l, testRecord(fmt.Sprintf("ok%d", i)))
			}
			waited := make(chan error, 1)
			go func() {
				_, err := l.WaitDurable(context.Background(), last)
				waited <- err
			}()
			waitParked(t, "(*Log).WaitDurable")
			toggle.On()
			switch how {
			case "append":
				a := newChanAck()
				if _, err := l.Append(testRecord("failing"), a); err != nil {
					t.Fatal(err)
				}
				if res := <-a; !errors.Is(res.err, ErrFailed) {
					t.Fatalf("ack of the failing append = %+v, want ErrFailed", res)
				}
			case "truncate":
				if err := l.Truncate(5); err == nil {
					t.Fatal("Truncate with failing fsync succeeded")
				}
			}
			if !errors.Is(l.Err(), ErrFailed) {
				t.Fatalf("Err() = %v, want ErrFailed", l.Err())
			}
			select {
			case err := <-waited:
				if !errors.Is(err, ErrFailed) {
					t.Fatalf("WaitDurable: %v, want ErrFailed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("WaitDurable still waiting 10s after the log failed")
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Fatalf("Close: %v, want ErrFailed", err)
			}
		})
	}
}

// TestCloseWaitsForReads: Close waits for a Read in progress instead of
// closing Pebble under its iterator (which made Close fail with "leaked
// iterators"), and a Read or Truncate after Close returns ErrClosed instead of
// panicking inside Pebble ("pebble: closed"), as a syncer still tailing the
// log would.
func TestCloseWaitsForReads(t *testing.T) {
	l := openLog(t, vfs.NewMem(), Options{})
	for i := 0; i < 5; i++ {
		appendWait(t, l, testRecord(fmt.Sprintf("r%d", i)))
	}
	in, release := make(chan struct{}), make(chan struct{})
	read := make(chan error, 1)
	var seqs []uint64
	go func() {
		read <- l.Read(1, 5, func(seq uint64, rec []byte) error {
			if seq == 2 {
				close(in)
				<-release
			}
			if got, want := requestID(t, rec), fmt.Sprintf("r%d", seq-1); got != want {
				return fmt.Errorf("seq %d holds %s, want %s", seq, got, want)
			}
			seqs = append(seqs, seq)
			return nil
		})
	}()
	<-in
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	// Close must now wait for the Read: poll until it is blocked (or, wrongly,
	// has returned).
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(time.Minute)
	for parked := false; !parked; {
		select {
		case err := <-closed:
			close(release)
			t.Fatalf("Close returned (%v) while a Read was in progress", err)
		default:
		}
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "(*Log).Close(") && strings.Contains(g, "sync.(*WaitGroup).Wait(") {
				parked = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("Close neither returned nor waited for the Read")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-read; err != nil || len(seqs) != 5 {
		t.Fatalf("Read across Close = %v, seqs %v; want nil, 1..5", err, seqs)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Read(1, 5, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if err := l.Truncate(3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Truncate after Close: %v, want ErrClosed", err)
	}
}
