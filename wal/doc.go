// Package wal is flashsale's durable, sequential record log: every stock change
// the engine makes is appended here, and the caller is answered only after the
// record is fsynced. The log is stored in Pebble, one key per commit group (a
// "chunk" of consecutive records); the engine replays it on restart and the
// syncer tails it into MySQL.
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
// Each commit group is stored as one Pebble key/value, a chunk, under the seq
// of its first record as 8 bytes, big-endian ([Key]), so Pebble's byte order
// is seq order. Chunks follow each other without holes or overlaps: the chunk
// after the one at seq k holding n records is keyed k+n. The record with seq
// s is in the last chunk keyed at or below s. Two more keys, the meta keys,
// sort after every chunk key (a chunk key starts with byte 0x00, since seqs
// stay below 2^53; a meta key with 0xff), so no bounded walk over the chunks
// ever meets them:
//
//   - "\xffmeta:floor" holds the truncation floor (8 bytes, big-endian): the
//     lowest seq that has not been truncated. Absent until the first
//     truncation.
//   - "\xffmeta:id" holds the log's identity ([Log.ID]): 32 characters of
//     lowercase hex, the encoding of 16 bytes ([IDRandBytes]) drawn at random
//     when the log was created. It never changes, truncation included. A
//     reader that keeps a position in the log elsewhere (the syncer's
//     checkpoint in MySQL) stores the id with it, so that a new log with as
//     many records is never taken for the old one. Logs written before ids
//     existed have no such key: the first Open by a version that knows ids
//     creates one, so every open log has an id. Any value that is not 32
//     lowercase hex characters is corrupt.
//
// # Chunk format, version 2
//
// A chunk (the value under a chunk key) is, in order:
//
//  1. Version: 1 byte, [ChunkVersion] (2).
//  2. Count: unsigned varint, the number of records, at least 1; the chunk
//     holds seqs key..key+count-1, all at most [SeqMax].
//  3. Count times: the record's length as an unsigned varint
//     (1..[RecordBytesMax]), then the record's bytes (a version-1 record as
//     above, checksum included, exactly as [Record.Encode] made it).
//
// Nothing follows the last record. [Log.Append] refuses a record outside
// 1..RecordBytesMax bytes, so no chunk is written that a reader would refuse.
// The layout and the constant 2 are part of the on-disk format and must not
// change: a new layout needs a new version byte, and readers keep decoding 2.
// Like records, chunks are canonical: the varints must be minimal, so a chunk
// has exactly one encoding (FuzzChunk checks encode(decode(x)) == x).
//
// The count is there for two reasons. It lets Open and Truncate learn the
// chunk's last seq from its header, and it cross-checks the framing: a
// damaged length either runs past the value's end, or leaves the walk short
// of the end, or changes the number of records found; any of these is an
// error. There is no checksum over the chunk: Pebble already checksums every
// write-ahead-log entry and every sstable block, so damage on the disk is
// caught below this package; every record carries its own CRC-32C, which
// [Record.Decode] checks; and the few framing bytes are checked by the count
// and the exact end. A chunk checksum would cost a second pass over every
// byte written and read, to guard only what is already cross-checked.
//
// Every chunk is checked whole before any of its records is used: the key
// (8 bytes, seq 1..SeqMax), the version, the count and every length against
// the bytes that are there, and the exact end. Any failure is an error
// wrapping [ErrCorrupt]; nothing is allocated from a length read off the disk
// (records are handed out as slices of the value), so a corrupt chunk can
// neither panic a reader nor make it allocate without bound.
//
// Logs written before chunks existed store one record per key, the value
// being the record itself. Its first byte is the record's [FormatVersion],
// 1, which no chunk starts with: a value whose first byte is 1 is read as a
// single record (at most RecordBytesMax bytes) at its key. Such a log opens
// and reads as before; new groups are appended as chunks after its last
// record, and truncation deletes its keys like one-record chunks. A value
// starting with any other byte is corrupt.
//
// # Group commit
//
// [Log.Append] hands out the next seq, copies the record's length and bytes
// into the open group's chunk buffer and returns at once; it does no I/O and
// makes no Pebble call. [Log.AppendBatch] does the same for several records
// under one lock (consecutive seqs, all or none), which is how the engine's SKU
// actors hand over the records they decided in one mailbox run. One committer goroutine takes groups in seq order,
// writes each group's chunk header and commits the chunk as one Pebble Set
// with pebble.Sync (write plus fsync of Pebble's own write-ahead log). Buffers
// are reused once a group's acks have run. A group closes when it holds
// [Options.BatchRecordsMax] records or about [Options.BatchBytesMax] bytes, or
// when the committer is free to take it: while one commit's fsync runs, the
// next group fills, so the group size adapts to the load by itself and an idle
// log commits a lone record at once. After Commit returns the committer, in
// this order, advances the durable watermark, wakes [Log.WaitDurable], and
// then hands the group's acks to be called, one at a time and in seq order,
// by the log's own goroutine (see commitLoop for which one). An ack is
// therefore never called before Durable() has reached its seq. Acks must not
// block (send on a buffered channel).
//
// Records appended but not yet durable are bounded by
// [Options.QueueRecordsMax]: at that limit Append blocks (backpressure) until
// a commit frees room, the log fails, or it closes.
//
// # The sticky error
//
// If a commit fails (in practice, a failed fsync), the log stops for good:
// the failing group's acks and those of every group queued behind it are
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
// [Log.Truncate](below) drops every record with seq < below in one Pebble
// batch holding one DeleteRange and the new floor key (below), committed with
// pebble.Sync. The DeleteRange runs up to the key of the chunk that holds
// below (up to below itself when every record is below it): a chunk that
// straddles the floor stays whole, and its records under the floor stay on
// disk but are never read again, since First() is the floor and [Log.Read]
// skips what is under it. The engine calls it only below what is both in a
// snapshot and, when a syncer runs, confirmed in MySQL; the log itself only
// checks that below is at most Durable()+1. A failed truncation commit fails
// the log for good, like a failed append: Pebble's commit pipeline is
// unusable after it.
//
// # Crash safety
//
// Appending. The commit point of a group is the fsync of Pebble's write-ahead
// log inside Commit. A crash before it can leave none, or (if the OS wrote
// some pages on its own) a prefix, of the group's bytes on disk; Pebble's
// recovery drops a torn tail, and since the group is one key in one Pebble
// batch it is either wholly present or wholly absent: a chunk is never
// found cut short (TestCrashClone checks that every chunk in a crash clone is
// exactly a group that was committed). None of its records was
// acknowledged, so losing them loses nothing promised. A crash after the
// commit point keeps the whole group. Records are never acknowledged out of
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
//  2. The floor is read from its meta key (1 if absent; a value that is not
//     8 bytes holding 1..SeqMax+1 is corrupt).
//  3. The last chunk is read and checked whole (a corrupt one fails Open
//     with [ErrCorrupt]): its key k plus its count n gives the highest seq
//     k+n-1 (k for a version-1 value). Durable() starts at max(k+n-1,
//     floor-1), and the next Append gets Durable()+1, so the next chunk is
//     keyed right after the last one and seqs keep rising even when every
//     record was truncated.
//  4. The first chunk is read and checked; First() starts at the larger of
//     the floor and its key (the floor, when that chunk straddles it).
//  5. The id is read from its meta key (a malformed one is corrupt). When
//     there is none, one is drawn ([Options.Rand], crypto/rand by default)
//     and committed with pebble.Sync before Open returns, so an id that any
//     caller has seen survives a crash. A crash before that commit leaves a
//     log with no id, and the next Open draws another: nobody saw the first.
//  6. The committer starts; every record present at Open is durable.
//
// Open checks only the first and last chunks; [Log.Read] checks every chunk
// it visits, and that each starts where the previous one ended. Readers
// decode each record with [Record.Decode], which checks it again (pair
// assertions across the disk: validated before it is written, verified after
// it is read back).
//
// # Where to start reading
//
// record.go holds the record format: [Record], [Record.Encode],
// [Record.Decode] and the limits. chunk.go holds the chunk format: the writer
// that Append fills and readChunk, the checker every reader goes through.
// log.go holds the [Log]: [Open], then [Log.Append] and the committer
// (commitLoop), then [Log.Read], [Log.Truncate] and [Log.Close]. The tests
// show the contract in use: log_test.go (acks, backpressure, crash clones
// with vfs.NewCrashableMem, fsync failure with errorfs), chunk_test.go
// (chunks on disk, reads that start or end inside chunks, truncation inside
// a chunk, corrupt chunks, version-1 logs), record_test.go and fuzz_test.go
// (both formats), bench_test.go (BenchmarkAppendCeiling, the storage ceiling
// for the engine).
package wal
