// Package engine sells scarce stock during a flash sale: it never oversells,
// never acknowledges a change before it is durable, and embeds in any Go
// program (the flashsale server is one such program; a gateway can be
// another). Start with Open and the Example; then read state.go (the pure
// core), actor.go (the SKU actors) and mailbox.go (their mailbox), ops.go
// (the operations), table.go (the request ids) and snapshot.go (recovery).
//
// # Shape
//
// Every SKU is owned by one protoactor-go actor that holds its counters in
// memory (no locks on the hot path). A single-SKU deduct or reservation goes
// to that actor as a message. The actor queues the takes it receives and,
// when its mailbox runs dry (or every 256 takes, or before any other
// message), decides them in order: it claims their request ids in the table
// in one pass (idempotency), checks each (checkTake: stock, then the per-user
// limit), applies the accepted ones in memory and hands their records to the
// log (package wal) in one call. It never waits for an fsync. The log's
// committer folds the records queued during one fsync into the next Pebble
// commit (group commit) and only then answers each caller: no caller hears
// "ok" before its record is durable. The SKU actors run on a mailbox of
// their own (skuMailbox, a protoactor Mailbox): the sender that finds an
// actor idle runs it on its own goroutine, so a message costs no goroutine
// start, and a hot SKU's queue is decided in batches.
//
// Changes that span SKUs, or are decided outside the actors, take the
// coordinator path (logAndApply): a multi-SKU deduct or reservation first
// places a hold on every SKU (prepare; all or nothing: if one fails, every
// hold is released and nothing is logged), then one record carries every
// item, then every actor applies its item. Confirm, cancel, expiry and
// returns are decided against the request table and likewise logged first
// and applied after, so nothing can use what a change frees before the change
// is in the log (causal order). While a hold is placed, its units are not
// for sale: another take of that SKU is refused as if they were gone
// (ErrSoldOut or ErrInsufficientStock), though Get still counts them as
// available; if the multi-SKU request fails, they are for sale again.
//
// # Invariants
//
//   - For every SKU at every moment: available >= 0 and
//     total == available + reserved + sold. sku.apply asserts it after every
//     change; a violation is a bug and the engine then refuses all changes
//     (Err says why): callers waiting for a change not yet in the log get
//     ErrUnavailable, a change already in the log is answered when durable.
//   - A method that changes state returns success only after the change's
//     record is fsynced. A crash at any instant loses no acknowledged change;
//     an unacknowledged change may be lost ("rather undersell than oversell").
//   - A request id that succeeded is applied once; a retry gets the original
//     outcome with Replayed set; the same id with another body is
//     ErrRequestIDConflict. Only successes are remembered.
//   - Returns never exceed what the sale sold, per SKU, over all its returns.
//   - The state is a pure function of the log: State.Fold of the records, in
//     order, gives the same counters as the live actors (the tests check it).
//
// # Time
//
// The engine reads time only through Options.Now, so expiry is deterministic
// under an injected clock. Reservations are released by a background loop
// every Options.ExpiryTick (so at most one tick late), by a confirm or cancel
// that comes after the deadline, and at Open for those that expired while
// the process was down. ExpireDue runs one pass by hand.
//
// # Idempotency memory
//
// Successful request ids (and restock and return ids, each their own
// namespace) are remembered for Options.IdempotencyWindow (24 h), at most
// Options.RequestIDsMax per namespace (2,000,000). At that bound the oldest
// finished ids are forgotten first, so under a flood the effective window is
// shorter than 24 h: size RequestIDsMax for the peak (see docs/benchmarks.md
// for the bytes per id). Open reservations are never forgotten. A return
// needs its sale to be remembered: after the window it is ErrUnknownRequest.
// The window counts from when the deduct or reservation was decided, also
// for a reservation confirmed later: a sale confirmed near the end of a long
// TTL is remembered for what is left of the window.
// The table holds no Go pointer per id (fixed-size entries in slab pages,
// the ids' bytes in an arena, an open-addressing index keyed by a hash of
// the id), so millions of remembered ids cost the garbage collector nothing;
// the per-user holdings of each SKU are kept the same way.
//
// # Recovery and snapshots
//
// Open loads the newest snapshot and folds the log after it. Snapshots are
// built from the log alone, never from the actors: a background step folds
// the durable records since the last snapshot into a shadow State and writes
// it (temporary file, fsync, rename, directory fsync) every
// Options.SnapshotEveryRecords records, so a restart replays at most about
// that many records. It runs on a goroutine of its own, beside the expiry
// loop: a snapshot takes seconds on a big state, and no expiry waits for it. The log is then truncated below the newest snapshot
// that the syncer has also confirmed (MarkSynced, with
// Options.KeepUnsynced). The shadow costs a second copy of the state in
// memory, and CPU beside the sales: folding a record costs about a third of
// what selling it did, and each snapshot writes every remembered id (about
// 0.4 µs each; BenchmarkSnapshotFold, BenchmarkSnapshotWrite and
// BenchmarkDeductHotSKUSnapshots in docs/benchmarks.md). In exchange snapshots
// never pause selling.
//
// # Limits and overload
//
// Changes in flight are bounded overall (Options.InFlightMax) and, for
// single-SKU deducts and reservations (what a sale's crowd sends), per SKU
// (Options.SKUInFlightMax); past a bound a change is refused with
// ErrOverloaded before it reaches a SKU. (The HTTP server bounds every change
// naming a SKU per stripe of SKUs: docs/http.md.) The log's queue is bounded too
// (wal.Options.QueueRecordsMax): when full, the actors wait for the fsync in
// progress (backpressure), never longer.
package engine
