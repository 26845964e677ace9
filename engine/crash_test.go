package engine

// The crash test: the test binary re-executes itself as a child process that
// runs the engine under concurrent load, and the parent kills it with SIGKILL
// at random moments. After each kill the parent recovers the data directory
// and checks the engine's promises (engine/doc.go) against what the child
// acknowledged:
//
//   - every acknowledged change is present, with the seq the caller was told,
//     and a retry of it is answered as a replay with that seq;
//   - nothing is oversold: available >= 0 and total == available + reserved +
//     sold for every SKU, and no user holds more than a SKU's limit;
//   - the counters equal an independent recount from the recovered request
//     tables (every deduct, reservation, return and restock present, each of
//     them intended by the child, multi-SKU requests whole);
//   - the live engine after recovery equals the offline fold (ReadState).
//
// The child writes one line per attempt to an append-only file BEFORE the
// call (an intent: any change the engine may hold must have one) and one line
// AFTER a successful call (an acknowledgement: it must survive). A line is a
// single write(2) with O_APPEND, so a kill leaves at most a partial last line,
// which the parent ignores (it is an acknowledgement nobody was told about).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Environment of the crash test.
const (
	crashChildEnv  = "FLASHSALE_CRASH_CHILD"  // "1": this process is the child
	crashDirEnv    = "FLASHSALE_CRASH_DIR"    // the engine's data directory
	crashAckDirEnv = "FLASHSALE_CRASH_ACKDIR" // where the per-round line files live
	crashRoundEnv  = "FLASHSALE_CRASH_ROUND"  // the round number
	crashSeedEnv   = "FLASHSALE_CRASH_SEED"   // parent: the base seed to replay; child: the round's seed
	crashSoakEnv   = "FLASHSALE_SOAK"         // "1": run crashRoundsSoak rounds
	crashReadyLine = "flashsale-crash-child-ready"
)

// Limits of the crash test.
const (
	crashRoundsDefault       = 20  // kills under load; the issue demands at least 20
	crashRoundsSoak          = 200 // with FLASHSALE_SOAK=1
	crashKillAfterReadyMinMs = 200
	crashKillAfterReadyMaxMs = 1500
	// One round in crashEarlyKillOneIn is killed at a random moment up to
	// crashEarlyKillMaxMs after the child starts, ready or not: a crash
	// during recovery (or during the creation of the SKUs). These rounds
	// come on top of the kills under load.
	crashEarlyKillOneIn = 8
	crashEarlyKillMaxMs = 400
	// crashReadyTimeout bounds how long the parent waits for the child's
	// recovery; past it the test fails.
	crashReadyTimeout = 60 * time.Second
	// The child stops its load by itself after crashChildLoadTimeMax or
	// crashChildOpsPerWorkerMax operations per worker (and then exits, which
	// the parent reports as a failure: it should have been killed long before).
	crashChildLoadTimeMax     = 30 * time.Second
	crashChildOpsPerWorkerMax = 200_000
	crashWorkers              = 32
	crashSnapshotEveryRecords = 1000
	crashExpiryTick           = 50 * time.Millisecond
	// crashRequestIDsMax keeps every id of the test remembered, so that the
	// parent can recount everything from the request tables.
	crashRequestIDsMax = 1 << 24
	crashTTLMinMs      = 1000
	crashTTLMaxMs      = 2000
	crashQtyMax        = 3  // per item of a deduct or reservation
	crashMultiItemsMax = 4  // items of a multi-SKU request
	crashRestockQtyMax = 60 // per restock
	crashUsersPerGroup = 48
	// Users change every crashRoundsPerUserGroup rounds, so per-user limits
	// bind within a few rounds but do not lock the limited SKUs for good.
	crashRoundsPerUserGroup = 4
	crashRecentMax          = 256 // acknowledged lines a worker keeps for retries
	crashFailedMax          = 64  // failed intents a worker keeps for retries
	// crashReplayOldMax: acknowledged changes of earlier rounds replayed
	// against the recovered engine each round (all of them are checked in the
	// recovered tables; the current round's are all replayed too).
	crashReplayOldMax = 400
	// crashHistoryMax: acknowledgements of earlier rounds handed to a child
	// for retries and returns (a random sample).
	crashHistoryMax = 1000
	// crashChildStderrBytesMax bounds the child's stderr kept for a report.
	crashChildStderrBytesMax = 64 << 10
)

// crashSKUs is the fixed catalogue the child creates on its first start.
var crashSKUs = []struct {
	id           string
	total, limit int64
}{
	{"c0", 400, 0}, {"c1", 400, 0}, {"c2", 200, 6}, {"c3", 200, 0},
	{"c4", 100, 4}, {"c5", 300, 0}, {"c6", 60, 0}, {"c7", 1000, 10},
}

func crashSKUConfig(id string) (total, limit int64, ok bool) {
	for _, c := range crashSKUs {
		if c.id == id {
			return c.total, c.limit, true
		}
	}
	return 0, 0, false
}

// crashLine is one line of a round's file.
type crashLine struct {
	T     string `json:"t"`  // "i" intent (before the call), "a" ack (after success), "e" a bug the child saw
	Op    string `json:"op"` // deduct reserve confirm cancel return restock set
	ID    string `json:"id"` // request, return, restock id; the SKU for set
	Ref   string `json:"ref,omitempty"`
	User  string `json:"user,omitempty"`
	Items []Item `json:"items,omitempty"` // restock and set: one item (qty: restocked / the total)
	TTLMs int64  `json:"ttl,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
	Rep   bool   `json:"rep,omitempty"`
	Exp   int64  `json:"exp,omitempty"` // reservations: ExpiresAtMs
	Msg   string `json:"msg,omitempty"`
}

// ns is the idempotency namespace key of the line's id.
func (l *crashLine) ns() string {
	switch l.Op {
	case "deduct", "reserve":
		return "req:" + l.ID
	case "confirm", "cancel":
		return "settle:" + l.ID
	case "return":
		return "ret:" + l.ID
	case "restock":
		return "rst:" + l.ID
	}
	return "set:" + l.ID
}

func crashAckPath(ackDir string, round int) string {
	return filepath.Join(ackDir, fmt.Sprintf("round-%05d.jsonl", round))
}

// crashHistoryPath is the sample of earlier rounds' acknowledgements that the
// parent hands to a round's child, for retries and returns of old sales.
func crashHistoryPath(ackDir string, round int) string {
	return filepath.Join(ackDir, fmt.Sprintf("history-%05d.jsonl", round))
}

// crashReadLines parses a round's file. A last line without its newline is
// one the kill cut short: it is ignored.
func crashReadLines(path string) ([]crashLine, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var out []crashLine
	for n, b := range bytes.Split(data, []byte{'\n'}) {
		if len(b) == 0 {
			continue
		}
		var l crashLine
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n+1, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// crashOptions are the engine's options in the child (now == nil: the real
// clock and the background loop) and in the verifier (a frozen clock and no
// background loop, so that recovery in the verifier writes nothing).
func crashOptions(dir string, now func() time.Time) Options {
	o := Options{Dir: dir, SnapshotEveryRecords: crashSnapshotEveryRecords, ExpiryTick: crashExpiryTick,
		RequestIDsMax: crashRequestIDsMax}
	if now != nil {
		o.Now, o.ExpiryTick = now, -1
	}
	return o
}

// ---------------------------------------------------------------- child

// TestCrashChild is the child process of TestCrashRecovery; it does nothing
// unless FLASHSALE_CRASH_CHILD=1.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		return
	}
	err := crashChildMain()
	fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
	os.Exit(3)
}

// crashWriter writes one line per write(2) to an O_APPEND file.
type crashWriter struct{ f *os.File }

func (w *crashWriter) put(l crashLine) {
	b, err := json.Marshal(l)
	if err != nil {
		panic(err)
	}
	if _, err := w.f.Write(append(b, '\n')); err != nil {
		panic(fmt.Sprintf("crash child: write line: %v", err))
	}
}

func crashChildMain() error {
	dir, ackDir := os.Getenv(crashDirEnv), os.Getenv(crashAckDirEnv)
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		return fmt.Errorf("round: %w", err)
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	hist, err := crashReadLines(crashHistoryPath(ackDir, round))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(crashAckPath(ackDir, round), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	w := &crashWriter{f: f}
	e, err := Open(crashOptions(dir, nil))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	ctx := context.Background()
	for _, c := range crashSKUs {
		if e.ref(c.id) != nil {
			continue
		}
		limit := c.limit
		l := crashLine{T: "i", Op: "set", ID: c.id, Items: []Item{{c.id, c.total}}}
		w.put(l)
		_, res, err := e.SetSKU(ctx, SetSKURequest{SKU: c.id, Total: c.total, LimitPerUser: &limit})
		if err != nil {
			return fmt.Errorf("set %s: %w", c.id, err)
		}
		l.T, l.Seq = "a", res.Seq
		w.put(l)
	}
	if _, err := os.Stdout.WriteString(crashReadyLine + "\n"); err != nil {
		return err
	}
	deadline := time.Now().Add(crashChildLoadTimeMax)
	var wg sync.WaitGroup
	for g := 0; g < crashWorkers; g++ {
		k := &crashWorker{e: e, w: w, rng: rand.New(rand.NewPCG(seed, uint64(g))), round: round, g: g, hist: hist}
		wg.Go(func() {
			for i := 0; i < crashChildOpsPerWorkerMax && time.Now().Before(deadline); i++ {
				k.step()
			}
		})
	}
	wg.Wait()
	e.Close()
	return errors.New("the load ended before the parent killed the child")
}

// crashSale is a worker's own sale (a deduct or a confirmed reservation) and
// what of it is not yet returned.
type crashSale struct {
	id    string
	items []Item // qty: still returnable
}

// crashWorker is one load goroutine of the child. It alone settles and
// returns its own requests, so it knows exactly what must succeed.
type crashWorker struct {
	e     *Engine
	w     *crashWriter
	rng   *rand.Rand
	round int
	g, n  int
	hist  []crashLine // acknowledged changes of earlier rounds (read only)

	open   []crashLine // own reservations, acknowledged and not settled by this worker
	sales  []*crashSale
	recent []crashLine // own acknowledged lines, for retries
	failed []crashLine // own failed intents, for retries (judged afresh)
}

func (k *crashWorker) bug(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	k.w.put(crashLine{T: "e", Msg: msg})
	fmt.Fprintf(os.Stderr, "crash child bug: %s\n", msg)
}

func (k *crashWorker) newID(prefix string) string {
	k.n++
	return fmt.Sprintf("%s%d.%d.%d", prefix, k.round, k.g, k.n)
}

func (k *crashWorker) user() string {
	return fmt.Sprintf("u%d.%d", k.round/crashRoundsPerUserGroup, k.rng.IntN(crashUsersPerGroup))
}

func (k *crashWorker) items(n int) []Item {
	out := make([]Item, n)
	for i, p := range k.rng.Perm(len(crashSKUs))[:n] {
		out[i] = Item{crashSKUs[p].id, 1 + k.rng.Int64N(crashQtyMax)}
	}
	return out
}

func (k *crashWorker) ack(l crashLine, res Result) crashLine {
	l.T, l.Seq, l.Rep, l.Exp = "a", res.Seq, res.Replayed, res.ExpiresAtMs
	k.w.put(l)
	if len(k.recent) >= crashRecentMax {
		k.recent[k.rng.IntN(len(k.recent))] = l
	} else {
		k.recent = append(k.recent, l)
	}
	return l
}

func (k *crashWorker) fail(l crashLine) {
	if len(k.failed) >= crashFailedMax {
		k.failed[k.rng.IntN(len(k.failed))] = l
	} else {
		k.failed = append(k.failed, l)
	}
}

func crashIs(err error, targets ...*Error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func (k *crashWorker) step() {
	p := k.rng.IntN(100)
	switch {
	case p < 28:
		k.take(crashLine{Op: "deduct", ID: k.newID("t"), User: k.user(), Items: k.items(1)}, nil)
	case p < 38:
		k.take(crashLine{Op: "deduct", ID: k.newID("t"), User: k.user(), Items: k.items(2 + k.rng.IntN(crashMultiItemsMax-1))}, nil)
	case p < 48:
		k.take(crashLine{Op: "reserve", ID: k.newID("t"), User: k.user(), Items: k.items(1),
			TTLMs: crashTTLMinMs + k.rng.Int64N(crashTTLMaxMs-crashTTLMinMs+1)}, nil)
	case p < 54:
		k.take(crashLine{Op: "reserve", ID: k.newID("t"), User: k.user(), Items: k.items(2 + k.rng.IntN(crashMultiItemsMax-1)),
			TTLMs: crashTTLMinMs + k.rng.Int64N(crashTTLMaxMs-crashTTLMinMs+1)}, nil)
	case p < 64:
		k.settleOwn("confirm")
	case p < 69:
		k.settleOwn("cancel")
	case p < 77:
		k.returnOwn()
	case p < 80:
		sku := crashSKUs[k.rng.IntN(len(crashSKUs))].id
		k.restock(crashLine{Op: "restock", ID: k.newID("k"), Items: []Item{{sku, 1 + k.rng.Int64N(crashRestockQtyMax)}}}, nil)
	case p < 88:
		k.retryOwn()
	case p < 92:
		if len(k.hist) > 0 {
			l := k.hist[k.rng.IntN(len(k.hist))]
			k.redo(l, &l)
		}
	case p < 95:
		k.returnHistory()
	default:
		k.get()
	}
}

// redo repeats line l with the same id and body; prior, if set, is its
// acknowledgement, which the retry must replay.
func (k *crashWorker) redo(l crashLine, prior *crashLine) {
	l.T, l.Seq, l.Rep, l.Exp = "", 0, false, 0
	switch l.Op {
	case "deduct", "reserve":
		k.take(l, prior)
	case "confirm", "cancel":
		k.settle(l, prior, 0)
	case "return":
		k.ret(l, prior, nil, true)
	case "restock":
		k.restock(l, prior)
	}
}

func (k *crashWorker) retryOwn() {
	if len(k.failed) > 0 && k.rng.IntN(4) == 0 {
		i := k.rng.IntN(len(k.failed))
		l := k.failed[i]
		k.failed = slices.Delete(k.failed, i, i+1)
		k.redo(l, nil)
		return
	}
	if len(k.recent) > 0 {
		l := k.recent[k.rng.IntN(len(k.recent))]
		k.redo(l, &l)
	}
}

func (k *crashWorker) checkReplay(l crashLine, prior *crashLine, res Result) {
	if !res.Replayed || res.Seq != prior.Seq || res.ExpiresAtMs != prior.Exp {
		k.bug("retry of acknowledged %s %s: got %+v, acknowledged seq %d exp %d", l.Op, l.ID, res, prior.Seq, prior.Exp)
	}
}

func (k *crashWorker) take(l crashLine, prior *crashLine) {
	ctx := context.Background()
	l.T = "i"
	k.w.put(l)
	var res Result
	var err error
	if l.Op == "deduct" {
		res, err = k.e.Deduct(ctx, DeductRequest{RequestID: l.ID, UserID: l.User, Items: l.Items})
	} else {
		res, err = k.e.Reserve(ctx, ReserveRequest{RequestID: l.ID, UserID: l.User, Items: l.Items,
			TTL: time.Duration(l.TTLMs) * time.Millisecond})
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrOverloaded):
		case prior != nil:
			k.bug("retry of acknowledged %s %s: %v", l.Op, l.ID, err)
		case !crashIs(err, ErrSoldOut, ErrInsufficientStock, ErrUserLimitExceeded):
			k.bug("%s %s %v: %v", l.Op, l.ID, l.Items, err)
		default:
			k.fail(l)
		}
		return
	}
	a := k.ack(l, res)
	if prior != nil {
		k.checkReplay(l, prior, res)
		return
	}
	if res.Replayed {
		k.bug("%s %s: replayed, but no earlier attempt succeeded", l.Op, l.ID)
		return
	}
	if l.Op == "deduct" {
		k.sales = append(k.sales, &crashSale{id: l.ID, items: slices.Clone(l.Items)})
	} else {
		k.open = append(k.open, a)
	}
}

// settleOwn confirms or cancels one of the worker's open reservations.
func (k *crashWorker) settleOwn(op string) {
	if len(k.open) == 0 {
		return
	}
	i := k.rng.IntN(len(k.open))
	r := k.open[i]
	k.open = slices.Delete(k.open, i, i+1)
	l := crashLine{Op: op, ID: r.ID, User: r.User, Items: r.Items}
	if sale := k.settle(l, nil, r.Exp); sale && op == "confirm" {
		k.sales = append(k.sales, &crashSale{id: r.ID, items: slices.Clone(r.Items)})
	}
}

// settle confirms or cancels l.ID. With prior it must replay; else the
// reservation (expiring at exp) is open and only this worker settles it, so
// it succeeds unless it expired, and the engine's clock is the one we read.
func (k *crashWorker) settle(l crashLine, prior *crashLine, exp int64) bool {
	l.T = "i"
	k.w.put(l)
	before := time.Now().UnixMilli()
	var res Result
	var err error
	if l.Op == "confirm" {
		res, err = k.e.Confirm(context.Background(), l.ID)
	} else {
		res, err = k.e.Cancel(context.Background(), l.ID)
	}
	after := time.Now().UnixMilli()
	switch {
	case errors.Is(err, ErrOverloaded):
		return false
	case prior != nil && err != nil:
		k.bug("retry of acknowledged %s %s: %v", l.Op, l.ID, err)
		return false
	case prior != nil:
		k.ack(l, res)
		k.checkReplay(l, prior, res)
		return false
	case errors.Is(err, ErrReservationExpired):
		if after < exp {
			k.bug("%s %s: reservation_expired at %d, but it expires at %d", l.Op, l.ID, after, exp)
		}
		return false
	case err != nil:
		k.bug("%s of open reservation %s: %v", l.Op, l.ID, err)
		return false
	}
	k.ack(l, res)
	if res.Replayed {
		k.bug("%s %s: replayed, but it was open", l.Op, l.ID)
	}
	if before >= exp {
		k.bug("%s %s succeeded at %d, but it expired at %d", l.Op, l.ID, before, exp)
	}
	return true
}

// returnOwn returns part of one of the worker's sales: it must succeed.
func (k *crashWorker) returnOwn() {
	var sale *crashSale
	for tries := 0; tries < 4 && len(k.sales) > 0; tries++ {
		i := k.rng.IntN(len(k.sales))
		s := k.sales[i]
		if slices.ContainsFunc(s.items, func(it Item) bool { return it.Qty > 0 }) {
			sale = s
			break
		}
		k.sales = slices.Delete(k.sales, i, i+1)
	}
	if sale == nil {
		return
	}
	var items []Item
	for _, it := range sale.items {
		if it.Qty > 0 && (len(items) == 0 || k.rng.IntN(2) == 0) {
			items = append(items, Item{it.SKU, 1 + k.rng.Int64N(it.Qty)})
		}
	}
	k.ret(crashLine{Op: "return", ID: k.newID("x"), Ref: sale.id, Items: items}, nil, sale, false)
}

// returnHistory returns one unit of a sale of an earlier round, which may
// have been returned already (return_exceeds_sold is fine then).
func (k *crashWorker) returnHistory() {
	if len(k.hist) == 0 {
		return
	}
	h := k.hist[k.rng.IntN(len(k.hist))]
	if h.Op != "deduct" {
		return
	}
	it := h.Items[k.rng.IntN(len(h.Items))]
	k.ret(crashLine{Op: "return", ID: k.newID("x"), Ref: h.ID, Items: []Item{{it.SKU, 1}}}, nil, nil, true)
}

func (k *crashWorker) ret(l crashLine, prior *crashLine, sale *crashSale, mayExceed bool) {
	l.T = "i"
	k.w.put(l)
	res, err := k.e.Return(context.Background(), ReturnRequest{ReturnID: l.ID, RequestID: l.Ref, Items: l.Items})
	if err != nil {
		switch {
		case errors.Is(err, ErrOverloaded):
		case prior != nil:
			k.bug("retry of acknowledged return %s: %v", l.ID, err)
		case mayExceed && errors.Is(err, ErrReturnExceedsSold):
		default:
			k.bug("return %s of %s %v: %v", l.ID, l.Ref, l.Items, err)
		}
		return
	}
	k.ack(l, res)
	if prior != nil {
		k.checkReplay(l, prior, res)
		return
	}
	if res.Replayed {
		k.bug("return %s: replayed, but it is new", l.ID)
	}
	if sale != nil {
		for _, it := range l.Items {
			i := slices.IndexFunc(sale.items, func(s Item) bool { return s.SKU == it.SKU })
			sale.items[i].Qty -= it.Qty
		}
	}
}

func (k *crashWorker) restock(l crashLine, prior *crashLine) {
	l.T = "i"
	k.w.put(l)
	st, res, err := k.e.Restock(context.Background(), RestockRequest{RequestID: l.ID, SKU: l.Items[0].SKU, Qty: l.Items[0].Qty})
	if err != nil {
		if !errors.Is(err, ErrOverloaded) {
			k.bug("restock %s: %v", l.ID, err)
		}
		return
	}
	k.ack(l, res)
	if prior != nil {
		k.checkReplay(l, prior, res)
	} else if res.Replayed {
		k.bug("restock %s: replayed, but it is new", l.ID)
	}
	if st.Available < 0 || st.Total != st.Available+st.Reserved+st.Sold {
		k.bug("restock %s: invariant broken: %+v", l.ID, st)
	}
}

func (k *crashWorker) get() {
	id := crashSKUs[k.rng.IntN(len(crashSKUs))].id
	st, err := k.e.Get(context.Background(), id)
	if err != nil {
		k.bug("get %s: %v", id, err)
		return
	}
	if st.Available < 0 || st.Reserved < 0 || st.Sold < 0 || st.Total != st.Available+st.Reserved+st.Sold ||
		st.SoldOut != (st.Available == 0) {
		k.bug("get %s: invariant broken: %+v", id, st)
	}
}

// ---------------------------------------------------------------- parent

// crashBook is what the parent knows: every intent and acknowledgement of
// every round so far.
type crashBook struct {
	intents map[string]crashLine // by ns(); the first intent (retries carry the same body)
	acks    map[string]crashLine // by ns(); the first acknowledgement
	rounds  [][]string           // per round, the ns() of the acknowledgements first seen in it
}

func newCrashBook() *crashBook {
	return &crashBook{intents: map[string]crashLine{}, acks: map[string]crashLine{}}
}

func crashSameBody(a, b crashLine) bool {
	return a.Op == b.Op && a.Ref == b.Ref && a.User == b.User && a.TTLMs == b.TTLMs && slices.Equal(a.Items, b.Items)
}

// crashRun is one run of TestCrashRecovery.
type crashRun struct {
	t           *testing.T
	seed        uint64
	round       int
	rng         *rand.Rand
	dataDir     string
	ackDir      string
	book        *crashBook
	verifierNow func() time.Time
	// lastSnap is the newest snapshot after the previous verifier closed; a
	// newer one at the next recovery was written by the child under load.
	lastSnap      uint64
	childSnapshot int           // rounds in which the child wrote a snapshot
	acked         int           // acknowledgements over all rounds
	readyTook     time.Duration // the last child's start-up (recovery) time, for the log
	// openedBy: the last child recovered (its Open returned) and was started
	// at this time, so every reservation due by then must be expired.
	openedBy time.Time
}

func (c *crashRun) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("seed %d round %d (replay with %s=%d): %s", c.seed, c.round, crashSeedEnv, c.seed, fmt.Sprintf(format, args...))
}

// TestCrashRecovery kills a child process under load with SIGKILL, round
// after round on the same data directory, and checks after each kill that
// every acknowledged change survived and that nothing is oversold.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		return
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", crashSeedEnv, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, crashSeedEnv, seed)
	rounds := crashRoundsDefault
	if os.Getenv(crashSoakEnv) == "1" {
		rounds = crashRoundsSoak
	}
	root, err := os.MkdirTemp("", "flashsale-crash-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("data and line files kept in %s", root)
		} else {
			os.RemoveAll(root)
		}
	}()
	frozen := time.Now().Add(-time.Minute) // before any reservation of this test expires
	c := &crashRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x6372617368)),
		dataDir: filepath.Join(root, "data"), ackDir: filepath.Join(root, "lines"), book: newCrashBook(),
		verifierNow: func() time.Time { return frozen }}
	if err := os.MkdirAll(c.ackDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	early, underLoad := 0, 0
	// Early kills come on top: rounds kills under load, as the issue demands.
	for c.round = 0; underLoad < rounds; c.round++ {
		t0 := time.Now()
		kill := "killed under load"
		if c.runChild() {
			early++
			kill = "killed early, ready or not"
		} else {
			underLoad++
		}
		t1 := time.Now()
		n := c.load()
		c.verify()
		if testing.Verbose() {
			if c.readyTook > 0 {
				kill += fmt.Sprintf(" (recovered in %.2fs)", c.readyTook.Seconds())
			}
			t.Logf("round %d: %s; %d acknowledged, %d in all; child %.2fs, verify %.2fs", c.round,
				kill, n, c.acked, t1.Sub(t0).Seconds(), time.Since(t1).Seconds())
		}
	}
	t.Logf("%d rounds: %d kills under load, %d early kills (recovery or set-up); %.1fs; %d acknowledgements checked; the child wrote snapshots in %d rounds",
		c.round, underLoad, early, time.Since(start).Seconds(), c.acked, c.childSnapshot)
	if c.childSnapshot == 0 {
		t.Errorf("seed %d: no snapshot was written under load; the test did not cover snapshots and truncation", seed)
	}
}

// crashStdout watches the child's stdout for the ready line.
type crashStdout struct {
	mu    sync.Mutex
	buf   []byte
	ready chan struct{}
	once  sync.Once
}

func (s *crashStdout) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) < crashChildStderrBytesMax {
		s.buf = append(s.buf, p...)
	}
	if bytes.Contains(s.buf, []byte(crashReadyLine)) {
		s.once.Do(func() { close(s.ready) })
	}
	return len(p), nil
}

// crashStderr keeps the first bytes of the child's stderr.
type crashStderr struct {
	mu  sync.Mutex
	buf []byte
}

func (s *crashStderr) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := crashChildStderrBytesMax - len(s.buf); n > 0 {
		s.buf = append(s.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (s *crashStderr) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf)
}

// runChild starts the child, kills it with SIGKILL and reports whether the
// kill was an early one (not waiting for the child to be ready).
func (c *crashRun) runChild() (early bool) {
	c.t.Helper()
	c.writeHistory()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashDirEnv+"="+c.dataDir, crashAckDirEnv+"="+c.ackDir,
		crashRoundEnv+"="+strconv.Itoa(c.round), crashSeedEnv+"="+strconv.FormatUint(c.seed+uint64(c.round), 10))
	c.openedBy, c.readyTook = time.Time{}, 0
	spawned := time.Now()
	stdout := &crashStdout{ready: make(chan struct{})}
	stderr := &crashStderr{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		c.fatalf("start child: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	kill := func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	early = c.rng.IntN(crashEarlyKillOneIn) == 0
	var delay time.Duration
	if early {
		delay = time.Duration(c.rng.IntN(crashEarlyKillMaxMs+1)) * time.Millisecond
	} else {
		delay = time.Duration(crashKillAfterReadyMinMs+c.rng.IntN(crashKillAfterReadyMaxMs-crashKillAfterReadyMinMs+1)) * time.Millisecond
		started := time.Now()
		select {
		case <-stdout.ready:
			c.readyTook = time.Since(started)
			c.openedBy = spawned
		case <-exited:
		case <-time.After(crashReadyTimeout):
			kill()
			c.fatalf("child not ready after %v; stderr:\n%s", crashReadyTimeout, stderr)
		}
	}
	select {
	case <-exited:
	case <-time.After(delay):
	}
	kill()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.fatalf("child ended by itself (%v), not by the kill; stderr:\n%s", cmd.ProcessState, stderr)
	}
	if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic") || strings.Contains(s, "bug") {
		c.fatalf("child reported a problem; stderr:\n%s", s)
	}
	return early
}

// writeHistory writes a random sample of the acknowledgements so far for
// the next child.
func (c *crashRun) writeHistory() {
	c.t.Helper()
	var keys []string
	for _, r := range c.book.rounds {
		keys = append(keys, r...)
	}
	c.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var buf []byte
	n := 0
	for _, key := range keys {
		if a := c.book.acks[key]; a.Op != "set" && n < crashHistoryMax {
			b, err := json.Marshal(a)
			if err != nil {
				c.fatalf("%v", err)
			}
			buf = append(append(buf, b...), '\n')
			n++
		}
	}
	if err := os.WriteFile(crashHistoryPath(c.ackDir, c.round), buf, 0o644); err != nil {
		c.fatalf("%v", err)
	}
}

// load reads the round's file into the book and checks the acknowledgements
// against each other. It returns the round's acknowledgement count.
func (c *crashRun) load() int {
	c.t.Helper()
	lines, err := crashReadLines(crashAckPath(c.ackDir, c.round))
	if err != nil {
		c.fatalf("%v", err)
	}
	b := c.book
	var fresh []string
	n := 0
	for _, l := range lines {
		key := l.ns()
		switch l.T {
		case "e":
			c.fatalf("the child saw a bug: %s", l.Msg)
		case "i":
			if l.Op == "confirm" || l.Op == "cancel" {
				continue
			}
			if prev, ok := b.intents[key]; ok && !crashSameBody(prev, l) {
				c.fatalf("test bug: id %s intended with two bodies: %+v and %+v", key, prev, l)
			} else if !ok {
				b.intents[key] = l
			}
		case "a":
			n++
			if _, ok := b.intents[key]; !ok && l.Op != "confirm" && l.Op != "cancel" {
				c.fatalf("test bug: acknowledgement without intent: %+v", l)
			}
			prev, ok := b.acks[key]
			if !ok {
				b.acks[key] = l
				fresh = append(fresh, key)
				continue
			}
			if prev.Op != l.Op || prev.Seq != l.Seq || prev.Exp != l.Exp {
				c.fatalf("%s acknowledged twice with different outcomes: %+v, then %+v", key, prev, l)
			}
		default:
			c.fatalf("unknown line %+v", l)
		}
	}
	b.rounds = append(b.rounds, fresh)
	c.acked += n
	return n
}

// verify recovers the data directory offline and in an engine, and checks
// everything the book says against both.
func (c *crashRun) verify() {
	c.t.Helper()
	st, err := ReadState(nil, c.dataDir, math.MaxUint64)
	if err != nil {
		c.fatalf("read state: %v", err)
	}
	c.checkState(st)
	e, err := Open(crashOptions(c.dataDir, c.verifierNow))
	if err != nil {
		c.fatalf("open: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()
	if s := e.Stats().SnapshotSeq; s > c.lastSnap {
		c.childSnapshot++
	}
	c.checkLive(e, st, "after recovery")
	c.replay(e)
	c.checkLive(e, st, "after the replays")
	closed = true
	if err := e.Close(); err != nil {
		c.fatalf("close: %v", err)
	}
	seqs, err := listSnapshots(vfs.Default, c.dataDir)
	// A child killed before its first record leaves nothing to snapshot.
	if err != nil || (len(seqs) == 0 && st.Seq > 0) {
		c.fatalf("no snapshot after close (%v)", err)
	}
	if len(seqs) > 0 {
		c.lastSnap = seqs[len(seqs)-1]
	}
	st2, err := ReadState(nil, c.dataDir, math.MaxUint64)
	if err != nil {
		c.fatalf("read state after close: %v", err)
	}
	if st2.Seq != st.Seq {
		c.fatalf("the verifier wrote records: seq %d, then %d", st.Seq, st2.Seq)
	}
	for _, s := range st.SKUs() {
		if s2, ok := st2.SKU(s.SKU); !ok || s2 != s {
			c.fatalf("sku %s: %+v before the verifier, %+v after its close", s.SKU, s, s2)
		}
	}
}

// checkLive compares the recovered engine with the offline fold st.
func (c *crashRun) checkLive(e *Engine, st *State, when string) {
	c.t.Helper()
	if d := e.Log().Durable(); d != st.Seq {
		c.fatalf("%s: durable %d, offline fold at %d (the verifier wrote records)", when, d, st.Seq)
	}
	ids := e.SKUs()
	if len(ids) != len(st.skus) {
		c.fatalf("%s: %d live skus, %d folded", when, len(ids), len(st.skus))
	}
	for _, id := range ids {
		live, err := e.Get(context.Background(), id)
		if err != nil {
			c.fatalf("%s: get %s: %v", when, id, err)
		}
		if folded, ok := st.SKU(id); !ok || folded != live {
			c.fatalf("%s: sku %s live %+v, offline fold %+v", when, id, live, folded)
		}
		if a, _ := e.Available(id); a != live.Available {
			c.fatalf("%s: sku %s: Available() %d, Get %d", when, id, a, live.Available)
		}
	}
}

// checkState checks the recovered state: the invariants, every
// acknowledgement present with its seq, nothing present that was not
// intended, and the counters equal to a recount from the request tables.
func (c *crashRun) checkState(st *State) {
	c.t.Helper()
	b := c.book
	requests, restocks, returns := crashEntries(st.requests), crashEntries(st.restocks), crashEntries(st.returns)
	type tally struct {
		total, reserved, sold int64
		users                 map[string]int64
	}
	tallies := map[string]*tally{}
	for id, s := range st.skus {
		total, limit, ok := crashSKUConfig(id)
		if !ok {
			c.fatalf("unknown sku %s in the state", id)
		}
		if _, ok := b.intents["set:"+id]; !ok {
			c.fatalf("sku %s present, but its creation was never attempted", id)
		}
		if s.limit != limit {
			c.fatalf("sku %s: limit %d, want %d", id, s.limit, limit)
		}
		if s.available < 0 || s.reserved < 0 || s.sold < 0 || s.total != s.available+s.reserved+s.sold {
			c.fatalf("sku %s oversold or inconsistent: %+v", id, s.state())
		}
		tallies[id] = &tally{total: total, users: map[string]int64{}}
	}
	// What the present returns gave back, per sale and SKU.
	returned := map[string]map[string]int64{}
	for id, r := range returns {
		in, ok := b.intents["ret:"+id]
		if !ok {
			c.fatalf("return %s present, but never attempted", id)
		}
		if r.seq == 0 || r.seq > st.Seq {
			c.fatalf("return %s: seq %d, state at %d", id, r.seq, st.Seq)
		}
		if returned[in.Ref] == nil {
			returned[in.Ref] = map[string]int64{}
		}
		for _, it := range in.Items {
			returned[in.Ref][it.SKU] += it.Qty
		}
	}
	for id, r := range restocks {
		in, ok := b.intents["rst:"+id]
		if !ok {
			c.fatalf("restock %s present, but never attempted", id)
		}
		if r.seq == 0 || r.seq > st.Seq {
			c.fatalf("restock %s: seq %d, state at %d", id, r.seq, st.Seq)
		}
		tl := tallies[in.Items[0].SKU]
		if tl == nil {
			c.fatalf("restock %s of sku %s, which is not present", id, in.Items[0].SKU)
		}
		tl.total += in.Items[0].Qty
	}
	for id, r := range requests {
		in, ok := b.intents["req:"+id]
		if !ok {
			c.fatalf("request %s present, but never attempted", id)
		}
		if in.Op != r.kind.String() || in.User != r.user || !slices.Equal(in.Items, crashItems(r)) {
			c.fatalf("request %s present as %v user %q items %v, but intended as %+v", id, r.kind, r.user, r.items, in)
		}
		if r.seq == 0 || r.seq > st.Seq || r.busy {
			c.fatalf("request %s: seq %d busy %v, state at %d", id, r.seq, r.busy, st.Seq)
		}
		sold := r.kind.String() == "deduct" && r.status == statusDeducted ||
			r.kind.String() == "reserve" && r.status == statusConfirmed
		open := r.kind.String() == "reserve" && r.status == statusReserved
		if !sold && !open && !(r.kind.String() == "reserve" && (r.status == statusCancelled || r.status == statusExpired)) {
			c.fatalf("request %s: kind %v with status %d", id, r.kind, r.status)
		}
		if open && !c.openedBy.IsZero() && r.expires <= c.openedBy.UnixMilli() {
			c.fatalf("reservation %s expired at %d, before the child started at %d, is still open: recovery did not expire it",
				id, r.expires, c.openedBy.UnixMilli())
		}
		if (r.status == statusConfirmed || r.status == statusCancelled || r.status == statusExpired) &&
			(r.settleSeq <= r.seq || r.settleSeq > st.Seq) {
			c.fatalf("request %s: settled at %d, made at %d, state at %d", id, r.settleSeq, r.seq, st.Seq)
		}
		for i, it := range r.items {
			var ret int64
			if r.returned != nil {
				ret = r.returned[i]
			}
			if ret != returned[id][it.SKU] {
				c.fatalf("request %s sku %s: %d returned, but the present returns add up to %d", id, it.SKU, ret, returned[id][it.SKU])
			}
			delete(returned[id], it.SKU)
			tl := tallies[it.SKU]
			switch {
			case sold:
				if ret > it.Qty {
					c.fatalf("request %s sku %s: %d returned of %d sold", id, it.SKU, ret, it.Qty)
				}
				tl.sold += it.Qty - ret
				tl.users[r.user] += it.Qty - ret
			case open:
				tl.reserved += it.Qty
				tl.users[r.user] += it.Qty
				fallthrough
			default:
				if ret != 0 {
					c.fatalf("request %s (status %d) sku %s: %d returned of nothing sold", id, r.status, it.SKU, ret)
				}
			}
		}
		if len(returned[id]) > 0 {
			c.fatalf("request %s: returns of skus it does not hold: %v", id, returned[id])
		}
		delete(returned, id)
	}
	if len(returned) > 0 {
		c.fatalf("returns of requests that are not present: %v", returned)
	}
	for id, tl := range tallies {
		s := st.skus[id]
		if s.total != tl.total || s.sold != tl.sold || s.reserved != tl.reserved {
			c.fatalf("sku %s: total %d reserved %d sold %d, but the tables add up to total %d reserved %d sold %d",
				id, s.total, s.reserved, s.sold, tl.total, tl.reserved, tl.sold)
		}
		for u, n := range tl.users {
			if n == 0 {
				delete(tl.users, u)
			}
		}
		users := map[string]int64{}
		s.users.each(func(u string, q int64) { users[u] = q })
		if !mapsEqual(users, tl.users) {
			c.fatalf("sku %s: per-user holdings %v, but the tables add up to %v", id, users, tl.users)
		}
		for u, n := range users {
			if s.limit > 0 && n > s.limit {
				c.fatalf("sku %s: user %s holds %d, limit %d", id, u, n, s.limit)
			}
		}
	}
	// Every acknowledgement is present with the seq its caller was told.
	for key, a := range b.acks {
		switch a.Op {
		case "set":
			if _, ok := st.skus[a.ID]; !ok {
				c.fatalf("acknowledged sku %s missing", a.ID)
			}
		case "deduct", "reserve":
			r := requests[a.ID]
			if r == nil || r.seq != a.Seq || r.expires != a.Exp {
				c.fatalf("acknowledged %s lost or changed: %+v, state has %+v", key, a, r)
			}
		case "confirm", "cancel":
			want := statusConfirmed
			if a.Op == "cancel" {
				want = statusCancelled
			}
			r := requests[a.ID]
			if r == nil || r.status != want || r.settleSeq != a.Seq {
				c.fatalf("acknowledged %s %s lost: %+v, state has %+v", a.Op, a.ID, a, r)
			}
		case "return":
			if r := returns[a.ID]; r == nil || r.seq != a.Seq {
				c.fatalf("acknowledged return %s lost: %+v, state has %+v", a.ID, a, r)
			}
		case "restock":
			if r := restocks[a.ID]; r == nil || r.seq != a.Seq {
				c.fatalf("acknowledged restock %s lost: %+v, state has %+v", a.ID, a, r)
			}
		}
	}
}

// crashEntries returns a table's entries by id.
func crashEntries(t *table) map[string]*request {
	m := map[string]*request{}
	for _, r := range t.entries() {
		m[r.id] = r
	}
	return m
}

func crashItems(r *request) []Item {
	out := make([]Item, len(r.items))
	for i, it := range r.items {
		out[i] = Item{it.SKU, it.Qty}
	}
	return out
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// replay retries, against the recovered engine, every acknowledgement first
// seen in this round and a sample of earlier ones: each must be answered as a
// replay with the acknowledged seq (and, for a reservation, expiry).
func (c *crashRun) replay(e *Engine) {
	c.t.Helper()
	b := c.book
	keys := slices.Clone(b.rounds[c.round])
	var old []string
	for _, r := range b.rounds[:c.round] {
		old = append(old, r...)
	}
	if len(old) > crashReplayOldMax {
		c.rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
		old = old[:crashReplayOldMax]
	}
	ctx := context.Background()
	for _, key := range append(keys, old...) {
		a := b.acks[key]
		var res Result
		var err error
		switch a.Op {
		case "set":
			continue
		case "deduct":
			res, err = e.Deduct(ctx, DeductRequest{RequestID: a.ID, UserID: a.User, Items: a.Items})
		case "reserve":
			res, err = e.Reserve(ctx, ReserveRequest{RequestID: a.ID, UserID: a.User, Items: a.Items,
				TTL: time.Duration(a.TTLMs) * time.Millisecond})
		case "confirm":
			res, err = e.Confirm(ctx, a.ID)
		case "cancel":
			res, err = e.Cancel(ctx, a.ID)
		case "return":
			res, err = e.Return(ctx, ReturnRequest{ReturnID: a.ID, RequestID: a.Ref, Items: a.Items})
		case "restock":
			_, res, err = e.Restock(ctx, RestockRequest{RequestID: a.ID, SKU: a.Items[0].SKU, Qty: a.Items[0].Qty})
		default:
			c.fatalf("unknown op in %+v", a)
		}
		if err != nil || !res.Replayed || res.Seq != a.Seq || res.ExpiresAtMs != a.Exp {
			c.fatalf("retry of acknowledged %s %s after recovery: %+v, %v; acknowledged seq %d exp %d",
				a.Op, a.ID, res, err, a.Seq, a.Exp)
		}
	}
}

// ---------------------------------------------------------------- expiry while down

// crashClock is a clock the test moves by hand.
type crashClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *crashClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *crashClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRecoveryExpiresWhileDown: a reservation whose time passes while the
// engine is closed is expired by Open, durably, before Open returns.
func TestRecoveryExpiresWhileDown(t *testing.T) {
	dir := t.TempDir()
	clock := &crashClock{now: time.UnixMilli(1_700_000_000_000)}
	opts := Options{Dir: dir, Now: clock.Now, ExpiryTick: -1}
	ctx := context.Background()
	e, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(5)
	if _, _, err := e.SetSKU(ctx, SetSKURequest{SKU: "w", Total: 10, LimitPerUser: &limit}); err != nil {
		t.Fatal(err)
	}
	short := ReserveRequest{RequestID: "short", UserID: "u1", Items: []Item{{"w", 3}}, TTL: time.Second}
	long := ReserveRequest{RequestID: "long", UserID: "u1", Items: []Item{{"w", 2}}, TTL: time.Hour}
	rShort, err := e.Reserve(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.Now().UnixMilli() + 1000; rShort.ExpiresAtMs != want {
		t.Fatalf("expires at %d, want %d", rShort.ExpiresAtMs, want)
	}
	if _, err := e.Reserve(ctx, long); err != nil {
		t.Fatal(err)
	}
	got, err := e.Get(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SKUState{SKU: "w", Total: 10, Available: 5, Reserved: 5, LimitPerUser: 5}); got != want {
		t.Fatalf("before close: %+v, want %+v", got, want)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	durableAtClose := func() uint64 {
		st, err := ReadState(nil, dir, math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		return st.Seq
	}()

	clock.Advance(1500 * time.Millisecond) // past "short", well before "long"
	e, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Log().Durable(); d != durableAtClose+1 {
		t.Fatalf("durable %d after open, want %d (one expire record written by Open)", d, durableAtClose+1)
	}
	got, err = e.Get(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SKUState{SKU: "w", Total: 10, Available: 8, Reserved: 2, LimitPerUser: 5}); got != want {
		t.Fatalf("after open: %+v, want %+v (the short reservation released)", got, want)
	}
	if _, err := e.Confirm(ctx, "short"); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("confirm of the expired reservation: %v, want %s", err, ErrReservationExpired.Code)
	}
	if _, err := e.Cancel(ctx, "short"); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("cancel of the expired reservation: %v, want %s", err, ErrReservationExpired.Code)
	}
	if r, err := e.Reserve(ctx, short); err != nil || !r.Replayed || r.Seq != rShort.Seq || r.ExpiresAtMs != rShort.ExpiresAtMs {
		t.Fatalf("retry of the expired reservation: %+v, %v; want a replay of %+v", r, err, rShort)
	}
	// The user got the expired units back: 2 held by "long", so 3 more fit.
	if _, err := e.Deduct(ctx, DeductRequest{RequestID: "d", UserID: "u1", Items: []Item{{"w", 3}}}); err != nil {
		t.Fatalf("deduct within the limit after the expiry: %v", err)
	}
	if _, err := e.Confirm(ctx, "long"); err != nil {
		t.Fatalf("confirm of the reservation that did not expire: %v", err)
	}
	want := SKUState{SKU: "w", Total: 10, Available: 5, Reserved: 0, Sold: 5, LimitPerUser: 5}
	if got, _ := e.Get(ctx, "w"); got != want {
		t.Fatalf("after confirm: %+v, want %+v", got, want)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// The expiry is durable: offline and after another restart.
	st, err := ReadState(nil, dir, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.SKU("w"); got != want {
		t.Fatalf("offline after close: %+v, want %+v", got, want)
	}
	e, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got, _ := e.Get(ctx, "w"); got != want {
		t.Fatalf("after the second restart: %+v, want %+v", got, want)
	}
	if _, err := e.Confirm(ctx, "short"); !errors.Is(err, ErrReservationExpired) {
		t.Fatalf("confirm of the expired reservation after the second restart: %v", err)
	}
}
