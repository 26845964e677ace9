// Package syncer folds the engine's log into MySQL: it tails the log from its
// checkpoint up to the durable watermark (never beyond) and writes one
// stock_flow row per SKU per record and the per-SKU sums in stock_summary.
// The engine never waits for it: a sale is acknowledged once it is fsynced in
// the log, and the syncer catches up behind.
//
// Each record is folded exactly once. Every batch is one transaction that
// locks the checkpoint row, skips the records at or below it, inserts the
// rest and moves the checkpoint in the same commit, so a crash before the
// commit leaves nothing and a batch delivered again after it changes nothing.
// The checkpoint is also pinned to the log's id (ErrForeignLog), because a
// seq means something only in the log that numbered it.
//
// The folder is sync/ but the package is syncer, so that it does not shadow
// the standard sync. Start reading at Start and step in syncer.go, then
// applyBatch in apply.go; Reconcile checks the tables against the engine and
// RebuildFromMySQL is the disaster recovery. docs/sync.md has the schema, the
// argument in full, the faults and the operator's view.
package syncer
