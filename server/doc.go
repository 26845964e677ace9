// Package server is flashsale's HTTP endpoint: a fasthttp handler that
// speaks the v1 contract of docs/http.md in front of an *engine.Engine.
//
// Start with New, Handler, Serve and Shutdown (server.go); NewRecovering and
// Attach serve probes while the engine still recovers. A request flows
// through route (the path and method), the in-flight bounds (overall and per
// SKU stripe: past them 503 overloaded with Retry-After, never a queue), the
// strict parser (parse.go: fastjson, no reflection), one engine call under a
// per-request deadline, and an answer appended to a pooled buffer
// (respond.go). The engine decides everything about stock: unknown SKUs,
// the user_id rule, idempotent replays, sold-out (without an actor hop) and
// stock, in the contract's order; this package only maps its errors.
//
// Invariants:
//   - every /v1 answer is application/json; every non-2xx body is
//     {"code","message"} plus sku/available/limit when they help;
//   - nothing taken from a fasthttp.RequestCtx outlives the handler: ids
//     handed to the engine are copied (SKU ids interned);
//   - the admin token is compared in constant time and never logged;
//   - a 503 overloaded request was not applied; a 504 timeout may have
//     been, and a retry with the same id answers replayed:true if so.
//
// Metrics (metrics.go) use the VictoriaMetrics default set; the engine's
// log feeds ObserveWALCommit through Options.WAL.OnCommit.
package server
