package server

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics. Every series has a bounded label set: endpoints and status codes
// are fixed lists, error codes are the contract's, and per-SKU stock gauges
// exist only for Config.HotSKUs (at most HotSKUsMax). The server's series
// live in a per-Server metrics.Set registered with the default set (so
// metrics.WritePrometheus shows them) and unregistered by Shutdown; the WAL
// series are process-wide (ObserveWALCommit).

// endpoint numbers the endpoints for metric labels.
type endpoint uint8

const (
	epDeduct endpoint = iota
	epReserve
	epConfirm
	epCancel
	epReturn
	epGetSKU
	epPutSKU
	epRestock
	epSync
	epReconcile
	epHealthz
	epReadyz
	epMetrics
	epOther
	epCount
)

var endpointNames = [epCount]string{"deduct", "reserve", "confirm", "cancel", "return", "get_sku", "put_sku",
	"restock", "sync", "reconcile", "healthz", "readyz", "metrics", "other"}

// statusLabels are the HTTP statuses counted by their own label; any other
// status is counted as "other".
var statusLabels = [...]int{200, 400, 401, 404, 405, 408, 409, 413, 431, 500, 503, 504}

const statusOther = len(statusLabels)

func statusIndex(status int) int {
	for i, s := range statusLabels {
		if s == status {
			return i
		}
	}
	return statusOther
}

// errorCodes are the error codes counted by their own label.
var errorCodes = [...]string{codeBadRequest, codeUnauthorized, "unknown_sku", "unknown_request",
	"insufficient_stock", "sold_out", "user_limit_exceeded", "request_id_conflict", "not_a_reservation",
	"reservation_expired", "reservation_cancelled", "already_confirmed", "return_exceeds_sold",
	"total_below_committed", codeBodyTooLarge, codeOverloaded, "unavailable", codeTimeout, codeRequestTimeout, codeInternal,
	codeNotFound, codeMethod, codeSyncDisabled, codeDrift, codeHeaderTooLarge, "other"}

var errorCodeIndex = func() map[string]int {
	m := make(map[string]int, len(errorCodes))
	for i, c := range errorCodes {
		m[c] = i
	}
	return m
}()

// serverMetrics are one Server's series. Counters are created on first use
// and then found by index, so counting allocates nothing.
type serverMetrics struct {
	set      *metrics.Set
	requests [epCount][statusOther + 1]atomic.Pointer[metrics.Counter]
	errors   [epCount][len(errorCodes)]atomic.Pointer[metrics.Counter]
	latency  [epCount]*metrics.PrometheusHistogram
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{set: metrics.NewSet()}
	for ep := range epCount {
		m.latency[ep] = m.set.NewPrometheusHistogram(
			fmt.Sprintf(`flashsale_http_request_duration_seconds{endpoint=%q}`, endpointNames[ep]))
	}
	return m
}

// observe counts one answered request and its latency.
func (m *serverMetrics) observe(ep endpoint, status int, started time.Time) {
	si := statusIndex(status)
	c := m.requests[ep][si].Load()
	if c == nil {
		label := "other"
		if si < statusOther {
			label = fmt.Sprint(statusLabels[si])
		}
		c = m.set.GetOrCreateCounter(fmt.Sprintf(`flashsale_http_requests_total{endpoint=%q,code=%q}`,
			endpointNames[ep], label))
		m.requests[ep][si].Store(c)
	}
	c.Inc()
	m.latency[ep].UpdateDuration(started)
}

// observeError counts one error answer by its contract code.
func (m *serverMetrics) observeError(ep endpoint, code string) {
	i, ok := errorCodeIndex[code]
	if !ok {
		i = len(errorCodes) - 1
	}
	c := m.errors[ep][i].Load()
	if c == nil {
		c = m.set.GetOrCreateCounter(fmt.Sprintf(`flashsale_http_errors_total{endpoint=%q,error=%q}`,
			endpointNames[ep], errorCodes[i]))
		m.errors[ep][i].Store(c)
	}
	c.Inc()
}

// The process-wide log metrics, fed by ObserveWALCommit.
var (
	walBatchRecords = metrics.GetDefaultSet().GetOrCreatePrometheusHistogramExt(
		"flashsale_wal_batch_records", metrics.ExponentialBuckets(1, 2, 14))
	walBatchBytes = metrics.GetDefaultSet().GetOrCreatePrometheusHistogramExt(
		"flashsale_wal_batch_bytes", metrics.ExponentialBuckets(64, 4, 10))
	walCommitSeconds = metrics.GetDefaultSet().GetOrCreatePrometheusHistogramExt(
		"flashsale_wal_commit_duration_seconds", metrics.ExponentialBuckets(50e-6, 2, 16))
)

// ObserveWALCommit records one group commit of the log: its record count,
// byte size and duration (write plus fsync). Pass it as the engine's
// Options.WAL.OnCommit. Safe for concurrent use; allocates nothing.
func ObserveWALCommit(records, bytes int, took time.Duration) {
	walBatchRecords.Update(float64(records))
	walBatchBytes.Update(float64(bytes))
	walCommitSeconds.Update(took.Seconds())
}
