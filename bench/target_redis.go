package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis peer limits.
const (
	// redisRewriteWaitMax bounds the wait for the AOF rewrite that Redis
	// starts when appendonly is switched on; past it Setup fails.
	redisRewriteWaitMax = time.Minute
	redisPollInterval   = 100 * time.Millisecond
)

// RedisAppendFsyncValues are the values of Redis's appendfsync setting.
var RedisAppendFsyncValues = []string{"always", "everysec", "no"}

// redisSeckill is the classic flash-sale pre-deduction in one Lua script:
// check the stock, DECRBY it, append a flow record for the asynchronous
// consumer (the MQ or database writer of the classic design). Reservations,
// cancellations and returns move the stock the same way, so every scenario
// runs; none of it is idempotent (the classic design's well-known gap).
//
// KEYS: stock, reserved, per-user holdings (hash), flow list.
// ARGV: op, qty, user id, request id, per-user limit (0: none).
// Answers 1 (done), -1 sold out, -2 insufficient stock, -3 per-user limit,
// -8 unknown op, -9 unknown SKU.
const redisSeckill = `
local op, q, lim = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
if op == 'deduct' or op == 'reserve' then
  local a = tonumber(redis.call('GET', KEYS[1]))
  if a == nil then return -9 end
  if a <= 0 then return -1 end
  if a < q then return -2 end
  if lim > 0 then
    local h = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
    if h + q > lim then return -3 end
    redis.call('HINCRBY', KEYS[3], ARGV[3], q)
  end
  redis.call('DECRBY', KEYS[1], q)
  if op == 'reserve' then redis.call('INCRBY', KEYS[2], q) end
elseif op == 'confirm' then
  redis.call('DECRBY', KEYS[2], q)
elseif op == 'cancel' then
  redis.call('DECRBY', KEYS[2], q)
  redis.call('INCRBY', KEYS[1], q)
  if lim > 0 then redis.call('HINCRBY', KEYS[3], ARGV[3], -q) end
elseif op == 'return' then
  redis.call('INCRBY', KEYS[1], q)
  if lim > 0 then redis.call('HINCRBY', KEYS[3], ARGV[3], -q) end
else
  return -8
end
redis.call('RPUSH', KEYS[4], op .. ' ' .. ARGV[4] .. ' ' .. ARGV[3] .. ' ' .. q)
return 1
`

var redisScript = redis.NewScript(redisSeckill)

// RedisTarget is the classic Redis + Lua seckill. When AppendFsync is set,
// Setup switches the server to appendonly yes with that appendfsync policy
// (and waits for the AOF rewrite that starts), and Close restores both
// settings as they were.
type RedisTarget struct {
	Addr        string // host:port
	AppendFsync string // always, everysec, no; empty: leave the server as it is
	PoolSize    int    // 0: one connection per worker

	c       *redis.Client // the load: per-request timeouts
	admin   *redis.Client // set-up, verification and clean-up: setupTimeout
	keys    [][]string    // per SKU: stock, reserved, users, flow
	limit   string
	pid     int
	restore map[string]string
	kept    string // AppendFsync empty: the server's own setting, read at Setup ("off": no AOF)
	allKeys []string
}

// Info implements Target.
func (t *RedisTarget) Info() Info {
	fsync := t.AppendFsync
	if fsync == "" {
		fsync = t.kept
	}
	return Info{Name: "redis-lua", AppendFsync: fsync, ServerPID: t.pid, Conns: t.PoolSize}
}

// Setup connects, sets the persistence policy and loads the stock.
func (t *RedisTarget) Setup(ctx context.Context, w *Workload) error {
	cfg := w.Config()
	if t.PoolSize <= 0 {
		t.PoolSize = cfg.Concurrency
	}
	t.c = redis.NewClient(&redis.Options{
		Addr: t.Addr, PoolSize: t.PoolSize, ReadTimeout: cfg.RequestTimeout, WriteTimeout: cfg.RequestTimeout,
		PoolTimeout: cfg.RequestTimeout, MaxRetries: -1, // a retried script could apply twice
	})
	// Setting persistence, loading, verifying and restoring must not fail
	// for a --timeout sized for one request (which would leave the server's
	// persistence changed): they get a client of their own.
	t.admin = redis.NewClient(&redis.Options{
		Addr: t.Addr, PoolSize: 2, ReadTimeout: setupTimeout, WriteTimeout: setupTimeout, PoolTimeout: setupTimeout,
	})
	if err := t.admin.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis target: ping %s: %w", t.Addr, err)
	}
	if host, _, err := net.SplitHostPort(t.Addr); err == nil && isLoopback(host) {
		if info, err := t.admin.Info(ctx, "server").Result(); err == nil {
			t.pid, _ = strconv.Atoi(infoField(info, "process_id"))
		}
	}
	if t.AppendFsync == "" {
		// keep: report what the server does, so the row says it.
		m, err := t.admin.ConfigGet(ctx, "append*").Result()
		if err != nil {
			return fmt.Errorf("redis target: CONFIG GET append*: %w", err)
		}
		if t.kept = m["appendfsync"]; m["appendonly"] != "yes" {
			t.kept = "off"
		}
	}
	if t.AppendFsync != "" {
		if err := t.setPersistence(ctx); err != nil {
			return err
		}
	}
	base := "{fsb:" + w.prefix + "}"
	flow := base + ":flow"
	t.keys = make([][]string, len(w.SKUs()))
	t.allKeys = append(t.allKeys[:0], flow)
	pipe := t.admin.Pipeline()
	for i, sku := range w.SKUs() {
		k := []string{base + ":s:" + sku, base + ":r:" + sku, base + ":u:" + sku, flow}
		t.keys[i] = k
		t.allKeys = append(t.allKeys, k[:3]...)
		pipe.Set(ctx, k[0], cfg.Stock, 0)
		pipe.Set(ctx, k[1], 0, 0)
		pipe.Del(ctx, k[2])
	}
	pipe.Del(ctx, flow)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis target: load stock: %w", err)
	}
	t.limit = strconv.FormatInt(cfg.LimitPerUser, 10)
	if err := redisScript.Load(ctx, t.admin).Err(); err != nil {
		return fmt.Errorf("redis target: load script: %w", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// infoField returns one field of an INFO answer.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// setPersistence remembers appendonly and appendfsync, sets appendonly yes
// and appendfsync t.AppendFsync, and waits for the AOF rewrite to finish.
func (t *RedisTarget) setPersistence(ctx context.Context) error {
	if !validAppendFsync(t.AppendFsync) {
		return fmt.Errorf("redis target: appendfsync %q: want always, everysec or no", t.AppendFsync)
	}
	t.restore = map[string]string{}
	for _, k := range []string{"appendonly", "appendfsync"} {
		m, err := t.admin.ConfigGet(ctx, k).Result()
		if err != nil {
			return fmt.Errorf("redis target: CONFIG GET %s: %w", k, err)
		}
		t.restore[k] = m[k]
	}
	if err := t.admin.ConfigSet(ctx, "appendfsync", t.AppendFsync).Err(); err != nil {
		return fmt.Errorf("redis target: CONFIG SET appendfsync %s: %w", t.AppendFsync, err)
	}
	if err := t.admin.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		return fmt.Errorf("redis target: CONFIG SET appendonly yes: %w", err)
	}
	deadline := time.Now().Add(redisRewriteWaitMax)
	for {
		info, err := t.admin.Info(ctx, "persistence").Result()
		if err != nil {
			return fmt.Errorf("redis target: INFO persistence: %w", err)
		}
		if infoField(info, "aof_rewrite_in_progress") == "0" && infoField(info, "aof_rewrite_scheduled") == "0" &&
			infoField(info, "aof_enabled") == "1" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis target: AOF rewrite still running after %v", redisRewriteWaitMax)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis target: waiting for the AOF rewrite: %w", ctx.Err())
		case <-time.After(redisPollInterval):
		}
	}
}

func validAppendFsync(v string) bool {
	for _, ok := range RedisAppendFsyncValues {
		if v == ok {
			return true
		}
	}
	return false
}

// Do implements Target.
func (t *RedisTarget) Do(ctx context.Context, s *Step) Outcome {
	n, err := redisScript.Run(ctx, t.c, t.keys[s.SKUIndex], s.Kind.String(), s.Qty, s.UserID, s.RequestID, t.limit).Int64()
	if err != nil {
		var re redis.Error
		if errors.As(err, &re) {
			return Outcome{Status: StatusFailed, Err: fmt.Errorf("redis: %w", err)} // the script did not run
		}
		return Outcome{Status: StatusUnknown, Err: fmt.Errorf("redis: %w", err)}
	}
	switch n {
	case 1:
		return Outcome{Status: StatusOK}
	case -1, -2, -3:
		return Outcome{Status: StatusRejected}
	}
	return Outcome{Status: StatusFailed, Err: fmt.Errorf("redis: script answered %d", n)}
}

// Observe implements Target: the stock and reserved keys of every SKU, and
// the flow list's length (on the first SKU: one list for all).
func (t *RedisTarget) Observe(ctx context.Context, skus []string) ([]Observed, error) {
	out := make([]Observed, len(skus))
	for i := range skus {
		k := t.keys[i]
		a, err := t.admin.Get(ctx, k[0]).Int64()
		if err != nil {
			return nil, fmt.Errorf("redis target: GET %s: %w", k[0], err)
		}
		r, err := t.admin.Get(ctx, k[1]).Int64()
		if err != nil {
			return nil, fmt.Errorf("redis target: GET %s: %w", k[1], err)
		}
		out[i] = Observed{Available: a, Reserved: r, Sold: -1, Records: -1}
	}
	if len(out) > 0 {
		n, err := t.admin.LLen(ctx, t.keys[0][3]).Result()
		if err != nil {
			return nil, fmt.Errorf("redis target: LLEN: %w", err)
		}
		out[0].Records = n
		for i := 1; i < len(out); i++ {
			out[i].Records = 0
		}
	}
	return out, nil
}

// Close deletes the run's keys, restores the persistence settings and
// disconnects.
func (t *RedisTarget) Close() error {
	if t.c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	var errs []error
	for i := 0; i < len(t.allKeys); i += 1000 {
		if err := t.admin.Unlink(ctx, t.allKeys[i:min(i+1000, len(t.allKeys))]...).Err(); err != nil {
			errs = append(errs, fmt.Errorf("redis target: UNLINK: %w", err))
			break
		}
	}
	if t.restore != nil {
		// appendfsync first: switching appendonly off ends the AOF anyway.
		for _, k := range []string{"appendfsync", "appendonly"} {
			if err := t.admin.ConfigSet(ctx, k, t.restore[k]).Err(); err != nil {
				errs = append(errs, fmt.Errorf("redis target: restore %s %s: %w", k, t.restore[k], err))
			}
		}
		t.restore = nil
	}
	errs = append(errs, t.c.Close(), t.admin.Close())
	t.c, t.admin = nil, nil
	return errors.Join(errs...)
}
