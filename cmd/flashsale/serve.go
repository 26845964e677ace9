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
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/server"
	"github.com/flashsale/flashsale/sync/syncer"
	"github.com/flashsale/flashsale/wal"
)

// Shutdown budget: the contract allows 10 s from SIGTERM to exit.
const (
	// shutdownHTTPTimeout bounds waiting for requests in flight to finish.
	shutdownHTTPTimeout = 6 * time.Second
	// shutdownTotalTimeout bounds the whole shutdown; past it serve exits
	// non-zero without waiting further (the log keeps every acknowledged
	// change either way: acknowledgements happen only after fsync).
	shutdownTotalTimeout = 9500 * time.Millisecond
	// adminHeaderTimeout bounds reading the admin listener's request headers.
	adminHeaderTimeout = 10 * time.Second
	// demoTokenBytes is the entropy of a generated demo admin token.
	demoTokenBytes = 16
)

const serveUsage = `Usage: flashsale serve [flags]

Serves the flash-sale HTTP API (docs/http.md) on --listen, with the engine's
data in --data. Every flag can also be set by an environment variable named
FLASHSALE_ plus the flag's name in capitals with '-' as '_' (for example
FLASHSALE_ADMIN_TOKEN); a flag on the command line wins.

Admin endpoints (PUT /v1/skus/{sku}, POST /v1/skus/{sku}/restock, GET /v1/sync,
POST /v1/reconcile) need "Authorization: Bearer TOKEN"; with no token they
answer 401 to everyone. --demo creates a few SKUs (demo-phone, demo-hoodie,
demo-sticker) if absent, generates an admin token if none is given, and prints
a curl line to try.

The listener is bound before the engine recovers: until recovery is done,
/healthz answers 200, /readyz 503 (code recovering) and everything else 503.

SIGTERM or SIGINT: stop accepting, finish requests in flight, make the log
durable, exit 0 (within 10 s); during recovery, exit 0 at once (during
--rebuild-from-mysql, exit 1: the rebuild is not done, see docs/sync.md).

Flags:
`

// serveFlags are the parsed flags of serve.
// requestIDsMaxMax bounds --request-ids-max (about 250 GB of ids at most in
// each namespace: a typo, not a plan).
const requestIDsMaxMax = 1 << 30

type serveFlags struct {
	listen, data, adminToken, adminListen, mysqlDSN string
	logFormat, logLevel, hotSKUs                    string
	bodyBytesMax, connsMax                          int
	inFlightMax, requestIDsMax                      int64
	requestTimeout, readTimeout, writeTimeout       time.Duration
	idleTimeout                                     time.Duration
	demo, rebuild                                   bool
	sync                                            syncConfig
}

// parseServeFlags parses args, then fills every flag not given on the
// command line from its environment variable. help is true for --help.
func parseServeFlags(args []string, out io.Writer) (f serveFlags, help bool, err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the HTTP API (host:port)")
	fs.StringVar(&f.data, "data", "./data", "data directory: the engine's log and snapshots")
	fs.StringVar(&f.adminToken, "admin-token", "", "bearer token for the admin endpoints (empty: they answer 401); prefer the environment variable")
	fs.StringVar(&f.adminListen, "admin-listen", "127.0.0.1:8081", "address of the operator listener (pprof under /debug/pprof/); empty: none")
	fs.StringVar(&f.mysqlDSN, "mysql-dsn", "", "MySQL DSN (go-sql-driver form) of the syncer's database; empty: no syncer")
	fs.IntVar(&f.bodyBytesMax, "max-body-bytes", server.BodyBytesMaxDefault, "request body limit in bytes; larger bodies are answered 413")
	fs.DurationVar(&f.requestTimeout, "request-timeout", server.RequestTimeoutDefault, "per-request deadline; a change still waiting is answered 504 (retry with the same id)")
	fs.DurationVar(&f.readTimeout, "read-timeout", server.ReadTimeoutDefault, "limit on reading one request")
	fs.DurationVar(&f.writeTimeout, "write-timeout", server.WriteTimeoutDefault, "limit on writing one response")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", server.IdleTimeoutDefault, "keep-alive connections idle this long are closed")
	fs.IntVar(&f.connsMax, "max-conns", server.ConnsMaxDefault, "open connections at most")
	fs.Int64Var(&f.inFlightMax, "max-in-flight", server.InFlightMaxDefault, "requests in the handler at most; past it 503 overloaded")
	fs.Int64Var(&f.requestIDsMax, "request-ids-max", engine.RequestIDsMaxDefault, "request ids remembered for idempotency, per namespace, at most (about 250 bytes each); past it the oldest are forgotten, so size it for the peak: a retry of a forgotten id is applied again")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.rebuild, "rebuild-from-mysql", false, "disaster recovery: the data directory was lost; restore every SKU from MySQL's stock_summary, conservatively (needs --mysql-dsn and an empty --data; see docs/sync.md)")
	addSyncFlags(fs, &f.sync)
	fs.BoolVar(&f.demo, "demo", false, "create a small demo catalog, generate an admin token if none, print a curl line")
	fs.StringVar(&f.hotSKUs, "hot-skus", "", fmt.Sprintf("comma-separated SKU ids, each at most once, that get a stock gauge in /metrics (at most %d)", server.HotSKUsMax))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, true, nil
		}
		return f, false, usageError(err)
	}
	if fs.NArg() > 0 {
		return f, false, usageError(fmt.Errorf("serve: unexpected arguments %q", fs.Args()))
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var envErr error
	fs.VisitAll(func(fl *flag.Flag) {
		name := "FLASHSALE_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && !given[fl.Name] && envErr == nil {
			if err := fs.Set(fl.Name, v); err != nil {
				// Only numbers, durations and booleans fail to parse, so
				// the value quoted is never a token or a DSN.
				envErr = usageError(fmt.Errorf("serve: %s=%q (--%s): want %s: %w", name, v, fl.Name, envWant(fl), err))
			}
		}
	})
	if envErr == nil {
		if err := checkServeFlags(f); err != nil {
			envErr = usageError(err)
		}
	}
	return f, false, envErr
}

// envWant says what the environment variable of fl takes, for its error.
func envWant(fl *flag.Flag) string {
	switch kind, _ := flag.UnquoteUsage(fl); kind {
	case "":
		return "true or false"
	case "duration":
		return "a duration such as 3s or 500ms"
	case "int":
		return "an integer"
	default:
		return "a " + kind
	}
}

// checkServeFlags refuses values that make no sense. A limit or timeout of 0
// or below would otherwise be replaced by the server's default without a
// word.
func checkServeFlags(f serveFlags) error {
	for _, c := range []struct {
		name string
		n    int64
	}{{"max-body-bytes", int64(f.bodyBytesMax)}, {"max-conns", int64(f.connsMax)}, {"max-in-flight", f.inFlightMax}} {
		if c.n < 1 {
			return fmt.Errorf("serve: --%s %d, want at least 1", c.name, c.n)
		}
	}
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"request-timeout", f.requestTimeout}, {"read-timeout", f.readTimeout}, {"write-timeout", f.writeTimeout},
		{"idle-timeout", f.idleTimeout}} {
		if c.d <= 0 {
			return fmt.Errorf("serve: --%s %v, want a duration above 0", c.name, c.d)
		}
	}
	if f.requestIDsMax < 1 || f.requestIDsMax > requestIDsMaxMax {
		return fmt.Errorf("serve: --request-ids-max %d, want 1..%d", f.requestIDsMax, requestIDsMaxMax)
	}
	if n := len(splitList(f.hotSKUs)); n > server.HotSKUsMax {
		return fmt.Errorf("serve: --hot-skus names %d SKUs, want at most %d", n, server.HotSKUsMax)
	}
	if dup, ok := firstDuplicate(splitList(f.hotSKUs)); ok {
		return fmt.Errorf("serve: --hot-skus names %q twice", dup)
	}
	if !syncer.ValidName(f.sync.Name) {
		return fmt.Errorf("serve: --sync-name %q: want 1..64 of A-Z a-z 0-9 . _ : -", f.sync.Name)
	}
	for _, c := range []struct{ name, addr string }{{"listen", f.listen}, {"admin-listen", f.adminListen}} {
		if c.name == "admin-listen" && c.addr == "" {
			continue // no operator listener
		}
		if err := checkListenAddr(c.addr); err != nil {
			return fmt.Errorf("serve: --%s %q: %w", c.name, c.addr, err)
		}
	}
	if f.data == "" {
		return errors.New("serve: --data is empty, want the data directory")
	}
	if f.mysqlDSN != "" {
		// The DSN is not repeated: it may hold a password.
		cfg, err := mysql.ParseDSN(f.mysqlDSN)
		if err != nil {
			return fmt.Errorf("serve: --mysql-dsn: %w", err)
		}
		if cfg.DBName == "" {
			return errors.New("serve: --mysql-dsn names no database (want user:pw@tcp(host:3306)/DATABASE)")
		}
	}
	if !headerSafe(f.adminToken) {
		// The token itself is not repeated: it may be most of a secret.
		return errors.New("serve: --admin-token (or FLASHSALE_ADMIN_TOKEN) starts or ends with white space or holds " +
			"a control character: no Authorization header can carry it, so every admin call would answer 401")
	}
	return nil
}

// checkListenAddr refuses an address net.Listen would refuse, and an empty
// one, which it would take for a random port on every interface.
func checkListenAddr(addr string) error {
	if addr == "" {
		return errors.New("empty, want host:port")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	return nil
}

// headerSafe reports whether s can arrive intact as the end of an HTTP
// header value: HTTP trims white space around a value (a token read from
// a file often ends with a newline) and a value cannot hold control
// characters other than tab.
func headerSafe(s string) bool {
	if s != "" && (strings.IndexByte(" \t", s[0]) >= 0 || strings.IndexByte(" \t", s[len(s)-1]) >= 0) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// firstDuplicate returns the first string of list that an earlier one
// equals.
func firstDuplicate(list []string) (string, bool) {
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		if seen[s] {
			return s, true
		}
		seen[s] = true
	}
	return "", false
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("serve: --log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("serve: --log-format %q: want text or json", format)
}

// openEngine opens the engine; a test replaces it to hold recovery.
var openEngine = engine.Open

// serveMain runs `flashsale serve`.
func serveMain(args []string) error {
	f, help, err := parseServeFlags(args, os.Stderr)
	if help || err != nil {
		return err
	}
	log, err := newLogger(f.logFormat, f.logLevel, os.Stderr)
	if err != nil {
		return usageError(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, stop, f, log, os.Stdout)
}

// openResult is the outcome of opening the engine.
type openResult struct {
	eng *engine.Engine
	err error
}

// serve runs the server until ctx ends (the signal), then shuts down; stop
// ends ctx's signal handling, so a second signal kills at once. The API
// listener is bound before the engine recovers: until it is open, /healthz
// answers 200 and /readyz 503 recovering (server.NewRecovering). The demo
// text goes to stdout.
func serve(ctx context.Context, stop context.CancelFunc, f serveFlags, log *slog.Logger, stdout io.Writer) error {
	generatedToken := false
	if f.demo && f.adminToken == "" {
		var b [demoTokenBytes]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("serve: generating the demo admin token: %w", err)
		}
		f.adminToken, generatedToken = hex.EncodeToString(b[:]), true
	}
	hot := splitList(f.hotSKUs)
	if f.demo && len(hot) == 0 {
		hot = demoSKUNames()
	}
	srv := server.NewRecovering(server.Config{
		AdminToken:     f.adminToken,
		BodyBytesMax:   f.bodyBytesMax,
		RequestTimeout: f.requestTimeout,
		ReadTimeout:    f.readTimeout,
		WriteTimeout:   f.writeTimeout,
		IdleTimeout:    f.idleTimeout,
		ConnsMax:       f.connsMax,
		InFlightMax:    f.inFlightMax,
		HotSKUs:        hot,
		Logger:         log.With("component", "server"),
	})
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("serve: --listen: %w", err)
	}
	var admin *http.Server
	if f.adminListen != "" {
		aln, err := net.Listen("tcp", f.adminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("serve: --admin-listen: %w", err)
		}
		admin = &http.Server{Handler: adminMux(), ReadHeaderTimeout: adminHeaderTimeout}
		go func() {
			if err := admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener", "err", err)
			}
		}()
		log.Info("operator listener (pprof)", "addr", aln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("listening; the engine recovers", "addr", addr, "dir", f.data)
	// stopHTTP stops the listeners before the server has its engine (no
	// request reached it); it returns err.
	stopHTTP := func(err error) error {
		hctx, cancel := context.WithTimeout(context.Background(), shutdownHTTPTimeout)
		defer cancel()
		if err := srv.Shutdown(hctx); err != nil {
			log.Warn("stopping the HTTP server", "err", err)
		}
		if admin != nil {
			_ = admin.Close()
		}
		return err
	}

	started := time.Now()
	opened := make(chan openResult, 1)
	go func() {
		eng, err := openEngine(engine.Options{
			Dir:           f.data,
			Logger:        log.With("component", "engine"),
			KeepUnsynced:  f.mysqlDSN != "",
			RequestIDsMax: int(f.requestIDsMax),
			WAL:           wal.Options{OnCommit: server.ObserveWALCommit},
		})
		opened <- openResult{eng, err}
	}()
	var eng *engine.Engine
	select {
	case <-ctx.Done():
		// Recovery has no way to stop early, and waiting for it could
		// take longer than the shutdown budget. Nothing was accepted yet,
		// so leaving it mid-way is safe (recovery is crash-safe, like any
		// instant of the engine's life): the next start recovers again.
		log.Info("signal received during recovery: exiting without waiting for it")
		stop()
		go func() {
			if r := <-opened; r.err == nil {
				_ = r.eng.Close()
			}
		}()
		err := stopHTTP(nil)
		log.Info("stopped during recovery")
		return err
	case r := <-opened:
		if r.err != nil {
			return stopHTTP(fmt.Errorf("serve: opening the engine in %s: %w", f.data, r.err))
		}
		eng = r.eng
	}
	st := eng.Stats()
	log.Info("engine recovered", "dir", f.data, "skus", st.SKUs, "durable_seq", st.Log.Durable,
		"took", time.Since(started).Round(time.Millisecond))
	closeEngine := func() error {
		if err := eng.Close(); err != nil {
			log.Error("closing the engine", "err", err)
			return fmt.Errorf("serve: closing the engine: %w", err)
		}
		return nil
	}

	if f.rebuild {
		if f.mysqlDSN == "" {
			return stopHTTP(errors.Join(usageError(errors.New("serve: --rebuild-from-mysql needs --mysql-dsn")), closeEngine()))
		}
		cfg := f.sync
		cfg.DSN, cfg.Logger = f.mysqlDSN, log.With("component", "rebuild")
		if _, err := rebuildFromMySQL(ctx, eng, cfg); err != nil {
			return stopHTTP(errors.Join(fmt.Errorf("serve: --rebuild-from-mysql: %w", err), closeEngine()))
		}
	}
	var syncer syncHandle
	if f.mysqlDSN != "" {
		cfg := f.sync
		cfg.DSN, cfg.Logger = f.mysqlDSN, log.With("component", "syncer")
		syncer, err = startSync(ctx, eng, cfg)
		if err != nil {
			log.Error("starting the MySQL syncer", "err", err)
			return stopHTTP(errors.Join(fmt.Errorf("serve: starting the MySQL syncer: %w", err), closeEngine()))
		}
	}
	closeAll := func() error {
		var errs []error
		if syncer != nil {
			if err := syncer.Close(); err != nil {
				errs = append(errs, fmt.Errorf("serve: closing the syncer: %w", err))
			}
		}
		return errors.Join(append(errs, closeEngine())...)
	}
	if f.demo {
		if err := createDemoCatalog(ctx, eng); err != nil {
			if ctx.Err() != nil {
				// A signal, not a failure: stop cleanly, as at any other
				// moment (the next start creates what is missing).
				log.Info("signal received: shutting down")
				stop()
				return stopHTTP(closeAll())
			}
			return stopHTTP(errors.Join(err, closeAll()))
		}
	}

	var sy server.Syncer
	if syncer != nil {
		sy = syncer
	}
	srv.Attach(eng, sy)
	log.Info("serving", "addr", addr, "admin_token_set", f.adminToken != "", "mysql_sync", syncer != nil)
	if f.demo {
		printDemo(stdout, addr, f.adminToken, generatedToken, demoStates(ctx, eng))
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("signal received: shutting down")
	case serveErr = <-served:
		log.Error("HTTP server stopped", "err", serveErr)
	}
	stop()
	return shutdown(log, srv, admin, served, serveErr, closeAll)
}

// shutdown stops accepting, lets requests in flight finish (bounded), then
// closes the syncer and the engine (which makes the log durable).
func shutdown(log *slog.Logger, srv *server.Server, admin *http.Server, served chan error, serveErr error, closeAll func() error) error {
	deadline := time.Now().Add(shutdownTotalTimeout)
	hctx, cancel := context.WithTimeout(context.Background(), shutdownHTTPTimeout)
	defer cancel()
	if err := srv.Shutdown(hctx); err != nil {
		log.Warn("requests still in flight at the shutdown deadline", "err", err)
	}
	if serveErr == nil {
		select {
		case serveErr = <-served:
		case <-hctx.Done():
		}
	}
	if admin != nil {
		_ = admin.Close()
	}
	done := make(chan error, 1)
	go func() { done <- closeAll() }()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-time.After(time.Until(deadline)):
		return errors.New("serve: closing the engine did not finish within the shutdown budget")
	}
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	log.Info("stopped cleanly")
	return nil
}

func adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// demoSKU is one SKU of the demo catalog.
type demoSKU struct {
	id    string
	total int64
	limit int64
}

var demoCatalog = []demoSKU{
	{"demo-phone", 100, 2},
	{"demo-hoodie", 500, 0},
	{"demo-sticker", 10_000, 0},
}

func demoSKUNames() []string {
	out := make([]string, len(demoCatalog))
	for i, d := range demoCatalog {
		out[i] = d.id
	}
	return out
}

// createDemoCatalog creates the demo SKUs that do not exist yet (existing
// ones keep their stock across restarts).
func createDemoCatalog(ctx context.Context, eng *engine.Engine) error {
	for _, d := range demoCatalog {
		if _, ok := eng.Available(d.id); ok {
			continue
		}
		limit := d.limit
		if _, _, err := eng.SetSKU(ctx, engine.SetSKURequest{SKU: d.id, Total: d.total, LimitPerUser: &limit}); err != nil {
			return fmt.Errorf("serve: creating demo SKU %s: %w", d.id, err)
		}
	}
	return nil
}

// demoStates returns the demo SKUs as the engine holds them now: on a restart
// they keep the stock of the previous run, not the catalog's. A SKU whose
// state cannot be read (the engine is closing) is left out.
func demoStates(ctx context.Context, eng *engine.Engine) []engine.SKUState {
	out := make([]engine.SKUState, 0, len(demoCatalog))
	for _, d := range demoCatalog {
		if st, err := eng.Get(ctx, d.id); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// describeDemo is the banner's list of the demo SKUs and their stock.
func describeDemo(states []engine.SKUState) string {
	parts := make([]string, len(states))
	for i, st := range states {
		parts[i] = fmt.Sprintf("%s (%d of %d available", st.SKU, st.Available, st.Total)
		if st.LimitPerUser > 0 {
			parts[i] += fmt.Sprintf(", at most %d per user", st.LimitPerUser)
		}
		parts[i] += ")"
	}
	return strings.Join(parts, ", ")
}

// printDemo prints how to try the server, with the demo SKUs' current stock.
// The admin token is printed here (stdout, once) and never logged.
func printDemo(w io.Writer, addr, token string, generated bool, states []engine.SKUState) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	base := "http://" + addr
	fmt.Fprintf(w, "\nflashsale is serving on %s with a demo catalog: %s.\n\n", base, describeDemo(states))
	fmt.Fprintf(w, "Sell your first item:\n  curl -s -X POST %s/v1/deduct -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"request_id\":\"my-first-order\",\"user_id\":\"alice\",\"items\":[{\"sku\":\"demo-phone\",\"qty\":1}]}'\n", base)
	fmt.Fprintf(w, "See the stock:\n  curl -s %s/v1/skus/demo-phone\n", base)
	if generated {
		fmt.Fprintf(w, "Admin token (generated for this run, shown only here): %s\n", token)
	} else {
		fmt.Fprintf(w, "Admin token: the one you gave (--admin-token or FLASHSALE_ADMIN_TOKEN).\n")
	}
	fmt.Fprintf(w, "Restock (admin):\n  curl -s -X POST %s/v1/skus/demo-phone/restock -H \"Authorization: Bearer $TOKEN\" \\\n"+
		"    -H 'Content-Type: application/json' -d '{\"request_id\":\"restock-demo-phone-1\",\"qty\":50}'\n\n", base)
}
