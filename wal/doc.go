// Package wal is flashsale's durable, sequential record log: every stock change
// the engine makes is appended here, and the caller is answered only after the
// record is fsynced. The log is stored in Pebble (one key per record); the
// engine replays it on restart and the syncer tails it into MySQL.
//
// # What the log guarantees
//
//   - Each appended record gets the next sequence number (seq). Seqs start at 1,
//     have no holes, stay below 2^53 ([SeqMax]) and keep rising across
//     restarts, even after every record has been truncated.
//   - A record's [Ack] is told success only after the Pebble commit holding it
//     has returned from fsync. Records become durable in seq order: if seq n is
//     durable, so is every seq below n.
//   - [Log.Durable] is the durable watermark: the highest fsynced seq.
//     [Log.Read] never hands out a record above it, so a reader (the syncer)
//     never sees a change that a crash could still take back.
//   - The first failed commit makes the log fail for good (a sticky error, see
//     below). No acknowledgement of success follows a failure.
//
// # Record format, version 1
//
// A record is a byte string produced by [Record.Encode] and checked by
// [Record.Decode]. The layout is part of the on-disk format: change it only
// by bumping [FormatVersion] and keeping a decoder for version 1. In order:
//
//  1. Version: 1 byte, [FormatVersion] (1). Any other value is refused.
//  2. Kind: 1 byte, a [Kind] from 1 ([KindSetTotal]) to 8 ([KindReturn]).
//  3. Time: unsigned varint (encoding/binary's Uvarint, 1..10 bytes), the
//     engine's clock in Unix milliseconds when the change was decided.
//  4. Request id: 1 length byte (1..[IDBytesMax]), then the id's bytes, each of
//     [A-Za-z0-9._:-] (see [ValidID]). For confirm, cancel and expire it is the
//     reservation's id; for return, the return's own id.
//  5. Ref id: 1 length byte (0..64), then its bytes. Present (non-empty) on a
//     return only, where it names the sale being returned from.
//  6. User id: 1 length byte (0..64), then its bytes; empty when there is no
//     user. On confirm, cancel, expire and return it is the original buyer.
//  7. Body hash: 8 bytes, big-endian: the hash of the request body, so that
//     an idempotency conflict is still recognised after recovery.
//  8. Expiry: unsigned varint, the reservation deadline in Unix milliseconds.
//     Non-zero on a reserve, zero on every other kind.
//  9. Limit per user: unsigned varint, the SKU's per-user limit after the
//     change (0..[LimitMax]). Only a set_total may carry a non-zero value.
//  10. Item count: 1 byte, 1..[ItemsMax] (exactly 1 for set_total).
//  11. Items, each: the SKU id as 1 length byte (1..64) and its bytes, then the
//     quantity as a signed zigzag varint (encoding/binary's Varint). Quantities
//     are 1..[QtyMax], except on set_total where the one item's quantity is the
//     signed change of the total (-[TotalMax]..[TotalMax], 0 when only the
//     limit changes). A SKU appears at most once in a record.
//  12. Checksum: 4 bytes, big-endian CRC-32C (Castagnoli) of every byte above,
//     from the version byte through the last item.
//
// Decode checks the length (at most [RecordBytesMax]) and the checksum first,
// then parses every field with bounds checks, refuses trailing bytes, and
// finally runs [Record.Validate], the same rules Encode enforces before it
// writes. Every decoding error wraps [ErrCorrupt]. A corrupt length therefore
// never makes a reader allocate without bound, and a record that passes
// Decode is one that Encode could have written. The encoding is canonical:
// Decode refuses varints padded with redundant continuation bytes, so a
// record has exactly one encoding (FuzzDecode checks encode(decode(x)) == x).
//
// # Keys
//
// A record is stored under its seq as 8 bytes, big-endian ([Key]), so Pebble's
// byte order is seq order and a range of seqs is a key range. One more key,
// "\xffmeta:floor", sorts after every record key and holds the truncation
// floor (8 bytes, big-endian): the lowest seq that has not been truncated.
//
// # Group commit
//
// [Log.Append] hands out the next seq, adds the record to the open batch and
// returns at once; it does no I/O. One committer goroutine takes batches in
// seq order and commits each with pebble.Sync (write plus fsync of Pebble's
// own write-ahead log). A batch closes when it holds
// [Options.BatchRecordsMax] records or [Options.BatchBytesMax] bytes, or when
// the committer is free to take it: while one commit's fsync runs, the next
// batch fills, so the batch size adapts to the load by itself and an idle log
// commits a lone record at once. After Commit returns the committer, in this
// order, advances the durable watermark, wakes [Log.WaitDurable], and then
// hands the batch's acks to be called, one at a time and in seq order, by the
// log's own goroutine (see commitLoop for which one). An ack is therefore
// never called before Durable() has reached its seq. Acks must not block
// (send on a buffered channel).
//
// Records appended but not yet durable are bounded by
// [Options.QueueRecordsMax]: at that limit Append blocks (backpressure) until
// a commit frees room, the log fails, or it closes.
//
// # The sticky error
//
// If a commit fails (in practice, a failed fsync), the log stops for good:
// the failing batch's acks and those of every batch queued behind it are
// called with an error wrapping [ErrFailed], every later Append returns it,
// [Log.Err] reports it and Durable never moves again. A failed fsync is never
// retried: after one, the kernel may have dropped the dirty pages, and a retry
// that "succeeds" would acknowledge data that is not on disk. The process has
// to restart and recover from what the disk holds.
//
// Pebble reports a failed commit by calling its Logger's Fatalf. This
// package's logger turns that call into a panic which the commit recovers and
// returns as the error above (TestFsyncFailure injects the failure and checks
// it). A Fatalf on another Pebble goroutine (a failed MANIFEST sync, say) is
// not recovered: it crashes the process, which loses nothing acknowledged.
//
// # Truncation
//
// [Log.Truncate](below) deletes every record with seq < below in one Pebble
// batch holding one DeleteRange and the new floor key, committed with
// pebble.Sync. The engine calls it only below what is both in a snapshot and,
// when a syncer runs, confirmed in MySQL; the log itself only checks that
// below is at most Durable()+1. A failed truncation commit fails the log for
// good, like a failed append: Pebble's commit pipeline is unusable after it.
//
// # Crash safety
//
// Appending. The commit point of a batch is the fsync of Pebble's write-ahead
// log inside Commit. A crash before it can leave none, or (if the OS wrote
// some pages on its own) a prefix, of the batch's bytes on disk; Pebble's
// recovery drops a torn tail, and since each Pebble batch is atomic the
// batch is either wholly present or wholly absent. None of its records was
// acknowledged, so losing them loses nothing promised. A crash after the
// commit point keeps the whole batch. Records are never acknowledged out of
// order, so what survives a crash is always seqs 1..n (above the floor) with
// no hole, and n is at least the highest seq that was acknowledged.
// A record whose caller was told of a failure (or never heard back) may still
// be on disk after a restart: "not acknowledged" means "not promised", not
// "absent". The engine treats whatever the log holds after recovery as done.
//
// Truncating. The commit point is the fsync of the batch with the
// DeleteRange and the floor key. A crash before it leaves the old records in
// place (truncation simply did not happen and is redone later); after it,
// both the deletion and the new floor are durable together.
//
// Recovery ([Open]):
//
//  1. Pebble opens the directory and replays its own write-ahead log,
//     stopping at the first torn or corrupt entry at its tail.
//  2. The floor is read from the meta key (1 if absent).
//  3. The last record key gives the highest seq n; Durable() starts at
//     max(n, floor-1), and the next Append gets Durable()+1, so seqs keep
//     rising even when every record was truncated.
//  4. First() starts at the larger of the floor and the lowest record key.
//  5. The committer starts; every record present at Open is durable.
//
// Readers decode each record with [Record.Decode], which checks it again
// (pair assertions across the disk: validated before it is written, verified
// after it is read back).
//
// # Where to start reading
//
// record.go holds the format: [Record], [Record.Encode], [Record.Decode] and
// the limits. log.go holds the [Log]: [Open], then [Log.Append] and the
// committer (commitLoop), then [Log.Read], [Log.Truncate] and [Log.Close]. The
// tests show the contract in use: log_test.go (acks, backpressure, crash
// clones with vfs.NewCrashableMem, fsync failure with errorfs), record_test.go
// and fuzz_test.go (format), bench_test.go (BenchmarkAppendCeiling, the
// storage ceiling for the engine).
package wal
