package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the crash test: every loop is bounded in count and time.
const (
	crashRoundsDefault   = 5
	crashRoundsSoak      = 20
	crashWorkers         = 16
	crashRequestsMax     = 400 // per worker per round
	crashSKUsPerRound    = 4
	crashSKUTotal        = 500
	crashKillAfterMinMs  = 50
	crashKillAfterMaxMs  = 400
	crashReadyTimeout    = 60 * time.Second
	crashShutdownTimeout = 10 * time.Second
	crashHTTPTimeout     = 5 * time.Second
	crashRetriesMax      = 20 // per verification request, on connection errors
)

const crashToken = "crash-test-token"

// crashReq is one deduct the test sent, and what it knows of its outcome.
type crashReq struct {
	id    string
	body  []byte
	items map[string]int64
	state int // reqUnknown, reqApplied, reqRejected
	seq   int64
}

const (
	reqUnknown  = iota // no answer (the process died): applied or not
	reqApplied         // answered 200: must survive every crash
	reqRejected        // answered 409 (stock): never applied
)

// TestServeCrash builds the real binary, runs `flashsale serve` under
// concurrent HTTP load and kills it with SIGKILL several times. After each
// restart: every deduct that was answered 200 is still applied (a retry
// answers replayed:true with the same seq), requests without an answer are
// resolved by retrying them, and every SKU's sold equals exactly the sum of
// the applied deducts (so nothing acknowledged was lost and nothing was
// oversold), with total == available + reserved + sold. At the end SIGTERM
// must stop the server with exit code 0 within 10 s.
//
// Seeded: FLASHSALE_CRASH_SEED=<n> replays a request mix (crash timing is
// the operating system's). FLASHSALE_SOAK=1 runs more rounds.
func TestServeCrash(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL/SIGTERM semantics")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLASHSALE_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FLASHSALE_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with FLASHSALE_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rounds := crashRoundsDefault
	if os.Getenv("FLASHSALE_SOAK") != "" {
		rounds = crashRoundsSoak
	}

	bin := buildBinary(t)
	data := t.TempDir()
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p := &crashProc{t: t, bin: bin, data: data, port: port, logPath: filepath.Join(t.TempDir(), "serve.log")}
	hc := &http.Client{Timeout: crashHTTPTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: crashWorkers * 2}}

	var all []*crashReq
	totals := map[string]int64{}
	for round := range rounds {
		p.start()
		if round > 0 {
			hc.CloseIdleConnections()
			verify(t, hc, base, all, totals)
		}
		// This round's SKUs: fresh, so every round writes until they sell out.
		skus := make([]string, crashSKUsPerRound)
		for k := range skus {
			skus[k] = fmt.Sprintf("r%d-s%d", round, k)
			st, b := call(hc, "PUT", base+"/v1/skus/"+skus[k], crashToken, fmt.Sprintf(`{"total":%d}`, crashSKUTotal))
			if st != 200 {
				t.Fatalf("PUT %s: %d %s", skus[k], st, b)
			}
			totals[skus[k]] = crashSKUTotal
		}
		reqs := make([][]*crashReq, crashWorkers)
		for w := range reqs {
			for i := range crashRequestsMax {
				reqs[w] = append(reqs[w], newCrashReq(rng, fmt.Sprintf("c%d-%d-%d", round, w, i), skus))
			}
		}
		killAfter := time.Duration(crashKillAfterMinMs+rng.IntN(crashKillAfterMaxMs-crashKillAfterMinMs)) * time.Millisecond
		var wg sync.WaitGroup
		for w := range crashWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range reqs[w] {
					st, b := call(hc, "POST", base+"/v1/deduct", "", string(r.body))
					if st == 0 {
						return // the process is gone: this request and the rest stay unknown
					}
					classify(t, r, st, b, false)
				}
			}()
		}
		time.Sleep(killAfter)
		p.kill()
		wg.Wait()
		sent, applied := 0, 0
		for _, rs := range reqs {
			for _, r := range rs {
				if r.state != reqUnknown || r.seq == -1 {
					sent++
				}
				if r.state == reqApplied {
					applied++
				}
			}
			all = append(all, rs...)
		}
		t.Logf("round %d: killed after %v; %d answered, %d applied", round, killAfter, sent, applied)
	}
	p.start()
	hc.CloseIdleConnections()
	verify(t, hc, base, all, totals)
	p.terminate()
}

// newCrashReq makes a deduct of one or two of skus, qty 1..3 each.
func newCrashReq(rng *rand.Rand, id string, skus []string) *crashReq {
	r := &crashReq{id: id, items: map[string]int64{}}
	n := 1 + rng.IntN(2)
	perm := rng.Perm(len(skus))
	body := []byte(`{"request_id":"` + id + `","user_id":"u` + strconv.Itoa(rng.IntN(50)) + `","items":[`)
	for i := range n {
		sku, qty := skus[perm[i]], int64(1+rng.IntN(3))
		r.items[sku] = qty
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"sku":%q,"qty":%d}`, sku, qty)
	}
	r.body = append(body, "]}"...)
	return r
}

// classify records an answer. On a retry (retry true) a 200 for a request
// that was applied must be a replay with the original seq.
func classify(t *testing.T, r *crashReq, status int, body []byte, retry bool) {
	var a struct {
		Code     string `json:"code"`
		Seq      int64  `json:"seq"`
		Replayed *bool  `json:"replayed"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		t.Errorf("%s: answer %d is not JSON: %q", r.id, status, body)
		return
	}
	switch {
	case status == 200:
		if a.Seq <= 0 || a.Replayed == nil {
			t.Errorf("%s: bad success body %s", r.id, body)
			return
		}
		if r.state == reqApplied && (!*a.Replayed || a.Seq != r.seq) {
			t.Errorf("%s: acknowledged with seq %d, retry answered %s", r.id, r.seq, body)
		}
		if !retry && *a.Replayed {
			t.Errorf("%s: first answer is a replay: %s", r.id, body)
		}
		r.state, r.seq = reqApplied, a.Seq
	case status == 409 && (a.Code == "sold_out" || a.Code == "insufficient_stock"):
		if r.state == reqApplied {
			t.Errorf("%s: acknowledged with seq %d, retry answered %d %s", r.id, r.seq, status, body)
			return
		}
		r.state = reqRejected
	case status == 503 || status == 504:
		// Overloaded (not applied) or timed out (maybe applied): unknown.
		r.seq = -1 // marks "answered" for the round's count
	default:
		t.Errorf("%s: unexpected answer %d %s", r.id, status, body)
	}
}

// verify checks, against a freshly restarted server, that every applied
// request replays, resolves unknown ones by retrying them, and that each
// SKU's sold is exactly the sum of applied deducts.
func verify(t *testing.T, hc *http.Client, base string, all []*crashReq, totals map[string]int64) {
	t.Helper()
	work := make(chan *crashReq)
	var wg sync.WaitGroup
	for range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if r.state == reqRejected {
					continue
				}
				st, b := callRetrying(hc, "POST", base+"/v1/deduct", "", string(r.body))
				if st == 0 {
					t.Errorf("%s: no answer after restart", r.id)
					continue
				}
				classify(t, r, st, b, true)
			}
		}()
	}
	for _, r := range all {
		work <- r
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sold := map[string]int64{}
	for _, r := range all {
		if r.state == reqUnknown {
			t.Fatalf("%s: still unknown after a retry", r.id)
		}
		if r.state == reqApplied {
			for sku, q := range r.items {
				sold[sku] += q
			}
		}
	}
	for sku, total := range totals {
		st, b := callRetrying(hc, "GET", base+"/v1/skus/"+sku, "", "")
		var s struct {
			Total, Available, Reserved, Sold int64
			SoldOut                          bool `json:"sold_out"`
		}
		if st != 200 || json.Unmarshal(b, &s) != nil {
			t.Fatalf("GET %s: %d %s", sku, st, b)
		}
		if s.Total != total || s.Available < 0 || s.Total != s.Available+s.Reserved+s.Sold || s.SoldOut != (s.Available == 0) {
			t.Fatalf("%s: broken invariant (total set to %d): %s", sku, total, b)
		}
		if s.Sold != sold[sku] {
			t.Fatalf("%s: sold %d, but applied deducts sum to %d: %s", sku, s.Sold, sold[sku], b)
		}
	}
}

// call sends one request; status 0 means no answer (connection error).
func call(hc *http.Client, method, url, token, body string) (int, []byte) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, b
}

// callRetrying retries on connection errors (stale keep-alive connections
// to the killed process) and on 503, a bounded number of times.
func callRetrying(hc *http.Client, method, url, token, body string) (int, []byte) {
	for range crashRetriesMax {
		st, b := call(hc, method, url, token, body)
		if st != 0 && st != 503 {
			return st, b
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, nil
}

// crashProc is the server process under test.
type crashProc struct {
	t       *testing.T
	bin     string
	data    string
	port    int
	logPath string
	cmd     *exec.Cmd
	exited  chan error
	extra   []string // more serve flags
}

func (p *crashProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(p.port), "--data", p.data,
		"--admin-listen", "", "--log-level", "warn"}, p.extra...)
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Env = append(os.Environ(), "FLASHSALE_ADMIN_TOKEN="+crashToken)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.bin, err)
	}
	p.exited = make(chan error, 1)
	cmd := p.cmd
	go func() { p.exited <- cmd.Wait() }()
	p.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(crashReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			p.fatalWithLog("server exited before ready: %v", err)
		default:
		}
		if st, _ := call(hc, "GET", fmt.Sprintf("http://127.0.0.1:%d/readyz", p.port), "", ""); st == 200 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.fatalWithLog("server not ready within %v", crashReadyTimeout)
}

func (p *crashProc) kill() {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("SIGKILL: %v", err)
	}
	<-p.exited
}

// terminate sends SIGTERM and requires exit code 0 within the contract's
// 10 s.
func (p *crashProc) terminate() {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.fatalWithLog("exit after SIGTERM: %v", err)
		}
	case <-time.After(crashShutdownTimeout):
		_ = p.cmd.Process.Kill()
		p.fatalWithLog("no exit within %v of SIGTERM", crashShutdownTimeout)
	}
}

func (p *crashProc) fatalWithLog(format string, args ...any) {
	p.t.Helper()
	b, _ := os.ReadFile(p.logPath)
	p.t.Fatalf(format+"\nserver log:\n%s", append(args, b)...)
}

// buildBinary builds cmd/flashsale into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flashsale")
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gotool); err != nil {
		gotool = "go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, gotool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
