// Package bench is flashsale's load-test harness: it drives the flashsale
// engine (embedded or over HTTP) and the classic flash-sale designs it
// replaces (Redis with a Lua pre-deduction script, MySQL's conditional UPDATE,
// MySQL's task-table transaction) with the identical request sequence, measures
// them side by side, and verifies afterwards that each one kept its books.
//
// Where to start reading:
//   - scenario.go: the workloads (hot, zipf, reserve, returns). A workload maps
//     a flow index to a flow (one or two requests) as a pure function of the
//     seed, so every target sees exactly the same sequence.
//   - run.go: the load generator. Closed loop (Config.Concurrency workers, each
//     sends its next flow when the previous one is answered) or open loop
//     (Config.Rate flows per second on a fixed schedule; latency is measured
//     from the intended send time, so queueing is not hidden: coordinated
//     omission). Latencies go into HdrHistograms.
//   - ledger.go: what the harness saw acknowledged, and the verification that
//     compares it with the target's own store afterwards.
//   - target*.go: one file per target; report.go: the table, JSON and PNG.
//
// Invariants the harness checks after every run (a violation is a failed
// run, and Run returns an error wrapping ErrVerificationFailed):
//   - no SKU below zero, and no more acknowledged sales than stock (oversold),
//     also at any moment of the run: a take counts from its answer, a release
//     from when it is sent, so later returns do not hide an oversell;
//   - final stock == initial stock - acknowledged takes + acknowledged releases,
//     up to the quantity of requests whose outcome is unknown (timeouts);
//   - for the hot scenario without errors, exactly min(stock, attempts) sold;
//   - the per-user limit, when set, is respected by what was acknowledged;
//   - for flashsale, acknowledged requests are present: a replay of a sample
//     of them answers replayed with the original sequence number, and the
//     flow-record count matches where the target keeps one.
package bench
