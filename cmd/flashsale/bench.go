package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/flashsale/flashsale/bench"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/server"
)

// Limits of the bench command's own server management.
const (
	// benchServerReadyTimeout bounds the wait for a started server's /readyz.
	benchServerReadyTimeout = 30 * time.Second
	// benchServerStopTimeout bounds the wait for a started server to exit
	// after SIGTERM; past it the server is killed.
	benchServerStopTimeout = 15 * time.Second
	benchPollInterval      = 50 * time.Millisecond
	benchTokenBytes        = 16
)

// The standard comparison (--compare): the targets, the hot
// scenario over 256 connections, 10 s per target (about 90 s in all).
const (
	compareTargets     = "engine,http,noop,redis-lua,mysql-update,mysql-task"
	compareConcurrency = 256
	compareDuration    = 10 * time.Second
	compareStock       = 100_000_000
)

const benchUsage = `Usage: flashsale bench [flags]

Load-tests flashsale and the classic flash-sale designs with the identical
request sequence (derived from --seed), then verifies each target's own store:
final stock == initial - acknowledged sales, nothing below zero, and for
flashsale every acknowledged request present. A target that oversells or fails
verification prints FAIL and the command exits non-zero.

Targets (--targets, comma-separated):
  engine        the engine embedded in this process (its own temporary data dir)
  http          a flashsale server at --url; without --url one is started
                (see --http-server) with a temporary data dir
  noop          the same HTTP client against GET /healthz of that server:
                the HTTP ceiling of this machine
  redis-lua     Redis at --redis with the classic seckill Lua script (check,
                DECRBY, RPUSH a flow record); one run per --redis-appendfsync
                value, set with CONFIG SET (appendonly yes) and restored after
  mysql-update  MySQL at --mysql-dsn: UPDATE ... SET available=available-?
                WHERE sku=? AND available>=? (table bench_update_stock)
  mysql-task    MySQL: one transaction of that UPDATE plus an INSERT of a flow
                row (tables bench_task_stock, bench_task_flow)

Scenarios (--scenario): hot (one SKU), zipf (--skus SKUs, Zipf popularity),
reserve (reserve, then confirm / cancel / let expire), returns (sales, some
partly returned).

Load: closed loop with --concurrency workers (default), or open loop with
--rate flows per second (latency from the scheduled send time, so queueing
shows). Each target runs for --duration, or --requests flows if that comes
first.

--compare runs the standard comparison: targets ` + compareTargets + `,
hot scenario, 256 connections, 10 s each, stock 100,000,000 (flags given
explicitly still win), and prints the ratios the project aims for.

Examples:
  flashsale bench --targets engine --duration 5s
  flashsale bench --compare --json docs/bench-compare.json --png docs/bench-compare.png
  flashsale bench --targets http --url http://127.0.0.1:8080 --scenario zipf --skus 1000 --rate 20000

Flags:
`

type benchFlags struct {
	cfg                        bench.Config
	targets, url, adminToken   string
	redisAddr, redisFsync, dsn string
	httpServer, jsonPath       string
	pngPath, cpuProfile        string
	redisFsyncs                []string // one redis-lua run each; "" for keep
	serverPID                  int
	compare, quiet             bool
}

func parseBenchFlags(args []string, out io.Writer) (f benchFlags, help bool, err error) {
	f.cfg = bench.DefaultConfig()
	c := &f.cfg
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.targets, "targets", "engine", "comma-separated targets: engine, http, noop, redis-lua, mysql-update, mysql-task")
	fs.BoolVar(&f.compare, "compare", false, "run the standard comparison (see above)")
	fs.StringVar(&c.Scenario, "scenario", c.Scenario, "hot, zipf, reserve or returns")
	fs.IntVar(&c.SKUs, "skus", 0, "SKUs in the catalog (default 1 for hot, reserve and returns; 1000 for zipf)")
	fs.Int64Var(&c.Stock, "stock", c.Stock, "initial stock of every SKU")
	fs.Int64Var(&c.Qty, "qty", c.Qty, "units per sale or reservation")
	fs.IntVar(&c.Buyers, "buyers", c.Buyers, "distinct buyers (user ids)")
	fs.Int64Var(&c.LimitPerUser, "limit-per-user", 0, "per-user limit of every SKU (0: none; the MySQL peers skip)")
	fs.Float64Var(&c.ZipfExponent, "zipf-s", c.ZipfExponent, "zipf: exponent s (rank r has weight 1/r^s), above 1")
	fs.Float64Var(&c.ConfirmRatio, "confirm-ratio", c.ConfirmRatio, "reserve: share of reservations confirmed")
	fs.Float64Var(&c.CancelRatio, "cancel-ratio", c.CancelRatio, "reserve: share cancelled (the rest expire)")
	fs.DurationVar(&c.ReserveTTL, "reserve-ttl", c.ReserveTTL, "reserve: reservation TTL (1s..1m)")
	fs.Float64Var(&c.ReturnRatio, "return-ratio", c.ReturnRatio, "returns: share of sales partly returned")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "workers (closed loop: flows in flight; open loop: the bound on them); also connections")
	fs.Float64Var(&c.Rate, "rate", 0, fmt.Sprintf("open loop: flows per second, %g..%d (0: closed loop)", bench.RateMin, bench.RateMax))
	fs.DurationVar(&c.Duration, "duration", c.Duration, "run time per target")
	fs.Int64Var(&c.Requests, "requests", 0, "flows per target (0: as many as --duration allows)")
	fs.DurationVar(&c.RequestTimeout, "timeout", c.RequestTimeout, "per-request timeout")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the request sequence")
	fs.StringVar(&f.url, "url", "", "http, noop: base URL of a running server (empty: start one)")
	fs.StringVar(&f.adminToken, "admin-token", "", "http: admin token of the server at --url (env FLASHSALE_ADMIN_TOKEN)")
	fs.IntVar(&f.serverPID, "server-pid", 0, "http, noop: pid of the server at --url, for its CPU figure (same machine)")
	fs.StringVar(&f.httpServer, "http-server", "process", "without --url: start the server as a child process (process) or inside this one (inprocess)")
	fs.StringVar(&f.redisAddr, "redis", "127.0.0.1:6379", "redis-lua: Redis address")
	fs.StringVar(&f.redisFsync, "redis-appendfsync", "always,everysec", "redis-lua: one run per value (always, everysec, no); 'keep' leaves the server's setting")
	fs.StringVar(&f.dsn, "mysql-dsn", "root@tcp(127.0.0.1:3306)/test", "mysql-*: DSN (go-sql-driver form)")
	fs.StringVar(&f.jsonPath, "json", "", "write the results as JSON to this file")
	fs.StringVar(&f.pngPath, "png", "", "draw throughput and latency per target to this PNG file")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the client, and the engine target) to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, true, nil
		}
		return f, false, usageError(err)
	}
	if fs.NArg() > 0 {
		return f, false, usageError(fmt.Errorf("bench: unexpected arguments %q", fs.Args()))
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if f.compare {
		if !given["targets"] {
			f.targets = compareTargets
		}
		if !given["concurrency"] {
			c.Concurrency = compareConcurrency
		}
		if !given["duration"] {
			c.Duration = compareDuration
		}
		if !given["stock"] {
			c.Stock = compareStock
		}
	}
	if c.SKUs == 0 {
		c.SKUs = 1
		if c.Scenario == bench.ScenarioZipf {
			c.SKUs = 1000
		}
	}
	if f.adminToken == "" {
		f.adminToken = os.Getenv("FLASHSALE_ADMIN_TOKEN")
	}
	if err := c.Validate(); err != nil {
		return f, false, usageError(err)
	}
	if f.httpServer != "process" && f.httpServer != "inprocess" {
		return f, false, usageError(fmt.Errorf("bench: --http-server %q: want process or inprocess", f.httpServer))
	}
	// What a target would refuse only at its Setup is refused here, before
	// the targets ahead of it have run.
	if f.url != "" {
		if _, err := bench.ParseURL(f.url); err != nil {
			return f, false, usageError(fmt.Errorf("bench: --url: %w", err))
		}
	}
	if f.serverPID < 0 {
		return f, false, usageError(fmt.Errorf("bench: --server-pid %d: want a pid, or 0 for none", f.serverPID))
	}
	for _, v := range strings.Split(f.redisFsync, ",") {
		switch v = strings.TrimSpace(v); {
		case v == "keep":
			f.redisFsyncs = append(f.redisFsyncs, "")
		case slices.Contains(bench.RedisAppendFsyncValues, v):
			f.redisFsyncs = append(f.redisFsyncs, v)
		default:
			return f, false, usageError(fmt.Errorf("bench: --redis-appendfsync %q: %q is not always, everysec, no or keep", f.redisFsync, v))
		}
	}
	return f, false, nil
}

// benchMain runs `flashsale bench`.
func benchMain(args []string) error {
	f, help, err := parseBenchFlags(args, os.Stderr)
	if help {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	quietDriver(log) // the MySQL driver would print every timed-out request; the table counts them
	if !f.quiet && term.IsTerminal(int(os.Stderr.Fd())) {
		f.cfg.Progress = os.Stderr
	}

	var targets []bench.Target
	var srv *benchServer
	defer func() {
		if srv != nil {
			if err := srv.stop(); err != nil {
				log.Warn("stopping the benchmark's server", "err", err)
			}
		}
	}()
	for _, name := range strings.Split(f.targets, ",") {
		switch name = strings.TrimSpace(name); name {
		case "engine":
			targets = append(targets, &bench.EngineTarget{})
		case "http", "noop":
			url, token, pid, inproc := f.url, f.adminToken, f.serverPID, false
			if url == "" {
				if srv == nil {
					if srv, err = startBenchServer(ctx, f.httpServer, log); err != nil {
						return err
					}
				}
				url, token, pid, inproc = srv.url, srv.token, srv.pid, f.httpServer == "inprocess"
			}
			targets = append(targets, &bench.HTTPTarget{URL: url, AdminToken: token, ServerPID: pid, InProcess: inproc,
				Noop: name == "noop"})
		case "redis-lua":
			for _, v := range f.redisFsyncs {
				targets = append(targets, &bench.RedisTarget{Addr: f.redisAddr, AppendFsync: v})
			}
		case "mysql-update", "mysql-task":
			targets = append(targets, &bench.MySQLTarget{DSN: f.dsn, Task: name == "mysql-task"})
		default:
			return usageError(fmt.Errorf("bench: unknown target %q", name))
		}
	}
	// Output paths are checked before any load, not after the whole run.
	for _, p := range []string{f.jsonPath, f.pngPath} {
		if p != "" {
			if err := bench.CreateParentDir(p); err != nil {
				return err
			}
		}
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
	}
	started := time.Now()
	results, runErr := bench.Run(ctx, f.cfg, targets)
	if f.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Printf("flashsale bench, %s, %s\n", started.Format(time.RFC3339), strings.Join(os.Args[1:], " "))
	if err := bench.WriteTable(os.Stdout, results); err != nil {
		return err
	}
	if f.compare {
		for _, line := range bench.CompareSummary(results) {
			fmt.Println(line)
		}
	}
	if f.jsonPath != "" && len(results) > 0 {
		if err := bench.WriteJSON(f.jsonPath, results); err != nil {
			return err
		}
	}
	if f.pngPath != "" && len(results) > 0 {
		if err := bench.WritePNG(f.pngPath, results); err != nil {
			return err
		}
	}
	if runErr != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", runErr)
		return fmt.Errorf("bench: %w", runErr)
	}
	return nil
}

// benchServer is the flashsale server the bench command started for the
// http and noop targets: a child process running `flashsale serve`, or an
// engine and server inside this process.
type benchServer struct {
	url, token string
	pid        int // child's pid; 0 in-process
	cmd        *exec.Cmd
	exited     chan error
	dir        string
	srv        *server.Server
	eng        *engine.Engine
	serveErr   chan error
}

func newToken() (string, error) {
	b := make([]byte, benchTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bench: token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// freeLoopbackAddr asks the kernel for a free port on 127.0.0.1.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func startBenchServer(ctx context.Context, mode string, log *slog.Logger) (*benchServer, error) {
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "flashsale-bench-server-")
	if err != nil {
		return nil, fmt.Errorf("bench: server data dir: %w", err)
	}
	s := &benchServer{token: token, dir: dir}
	if mode == "inprocess" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: listen: %w", err)
		}
		s.eng, err = engine.Open(engine.Options{Dir: dir, Logger: log, RequestIDsMax: bench.RequestIDsMax})
		if err != nil {
			ln.Close()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: engine: %w", err)
		}
		s.srv = server.New(s.eng, server.Config{AdminToken: token, Logger: log})
		s.serveErr = make(chan error, 1)
		go func() { s.serveErr <- s.srv.Serve(ln) }()
		s.url = "http://" + ln.Addr().String()
	} else {
		exe, err := os.Executable()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: own executable: %w", err)
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.cmd = exec.Command(exe, "serve", "--listen", addr, "--admin-listen=", "--mysql-dsn=",
			"--data", dir, "--log-level", "warn", "--request-ids-max", strconv.Itoa(bench.RequestIDsMax))
		s.cmd.Env = append(os.Environ(), "FLASHSALE_ADMIN_TOKEN="+token)
		s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
		if err := s.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: start %s serve: %w", exe, err)
		}
		s.exited = make(chan error, 1)
		go func() { s.exited <- s.cmd.Wait() }()
		s.pid = s.cmd.Process.Pid
		s.url = "http://" + addr
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	return s, nil
}

// waitReady polls /readyz until it answers 200.
func (s *benchServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(benchServerReadyTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if s.exited != nil {
			select {
			case err := <-s.exited:
				s.exited <- err
				return fmt.Errorf("bench: server exited before it was ready: %v", err)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: server at %s not ready after %v (last: %v)", s.url, benchServerReadyTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(benchPollInterval):
		}
	}
}

// stop ends the server (SIGTERM, then kill after benchServerStopTimeout)
// and removes its data directory.
func (s *benchServer) stop() error {
	var errs []error
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.exited:
			if err != nil {
				errs = append(errs, fmt.Errorf("bench: server pid %d: %w", s.pid, err))
			}
		case <-time.After(benchServerStopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			errs = append(errs, fmt.Errorf("bench: server pid %d killed after %v", s.pid, benchServerStopTimeout))
		}
	}
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), benchServerStopTimeout)
		errs = append(errs, s.srv.Shutdown(ctx))
		cancel()
		if err := <-s.serveErr; err != nil {
			errs = append(errs, err)
		}
	}
	if s.eng != nil {
		errs = append(errs, s.eng.Close())
	}
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}
