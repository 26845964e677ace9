package wal

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults for Options. Each limit says what happens when it is reached.
const (
	// BatchRecordsMaxDefault caps the records in one Pebble commit; the rest
	// wait for the next commit.
	BatchRecordsMaxDefault = 16384
	// BatchBytesMaxDefault caps the bytes in one Pebble commit likewise.
	BatchBytesMaxDefault = 8 << 20
	// QueueRecordsMaxDefault caps the records appended but not yet durable.
	// Append blocks (backpressure) while the queue is full; it never grows
	// without bound, and a failed log wakes every blocked Append with the error.
	QueueRecordsMaxDefault = 1 << 17
)

// SeqMax is the largest sequence number the log hands out: seqs stay below
// 2^53 so that any JSON parser keeps them exactly.
const SeqMax = 1<<53 - 1

// ErrClosed is returned by Append, WaitDurable, Read and Truncate after Close.
var ErrClosed = errors.New("wal: log closed")

// ErrFailed wraps the first commit (fsync) error. Once a commit fails the log
// is failed for good: every later Append returns it, no later record is
// acknowledged, and the process must restart to recover from what is on disk.
var ErrFailed = errors.New("wal: log failed")

// Ack is told when its record, seq, is durable (err == nil) or will never be
// (err != nil). Durable is called from the log's ack goroutine, in seq order,
// while the next commit runs: it must not block (send on a buffered channel,
// set a flag).
type Ack interface {
	Durable(seq uint64, err error)
}

// Options configure a Log. The zero value is usable.
type Options struct {
	FS              vfs.FS // nil: the operating system's file system
	BatchRecordsMax int
	BatchBytesMax   int
	QueueRecordsMax int
	Logger          *slog.Logger // nil: discard
	// Rand is read for the log's id (IDRandBytes bytes) when Open finds none:
	// nil means crypto/rand. Tests inject a seeded reader to replay a run.
	Rand io.Reader
	// OnCommit, if set, is called after each commit with its record count,
	// byte size and duration (for metrics). It runs on the committer goroutine.
	OnCommit func(records, bytes int, took time.Duration)
}

func (o *Options) setDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.BatchRecordsMax <= 0 {
		o.BatchRecordsMax = BatchRecordsMaxDefault
	}
	if o.BatchBytesMax <= 0 {
		o.BatchBytesMax = BatchBytesMaxDefault
	}
	if o.QueueRecordsMax <= 0 {
		o.QueueRecordsMax = QueueRecordsMaxDefault
	}
	if o.QueueRecordsMax < o.BatchRecordsMax {
		o.QueueRecordsMax = o.BatchRecordsMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
}

// group is a run of consecutive records committed together, as one chunk
// stored under the key of its first seq.
type group struct {
	chunk       chunkWriter
	acks        []Ack
	first, last uint64
}

// groupRetainMax caps the chunk buffer a recycled group keeps, so that one
// unusually large group does not pin its memory for good.
const groupRetainMax = 2 << 20

// Log is the sequential, durable record log. Append, Durable, Read,
// WaitDurable and Err are safe for concurrent use, also with Close.
type Log struct {
	db   *pebble.DB
	opts Options
	id   string // set by Open, never changed

	mu      sync.Mutex
	work    sync.Cond // signalled when a group is ready or on close
	room    sync.Cond // signalled when queued records drop
	next    uint64    // next seq to hand out
	queue   []*group  // sealed groups first, the open one last
	queued  int       // records in queue
	err     error     // sticky
	closing bool
	notify  chan struct{} // closed and replaced whenever durable advances
	// dbClosed is set by Close before it closes Pebble; from then on Read
	// and Truncate return ErrClosed. users counts those still using db.
	dbClosed bool
	users    sync.WaitGroup

	durable atomic.Uint64
	first   atomic.Uint64 // lowest seq not truncated
	done    chan struct{}
	free    chan *group // acked groups for reuse (buffers and ack slices)
}

// Meta keys sort after every chunk key (a chunk key's first byte is 0x00, as
// seqs stay below 2^53), so the bounded iterators of scan, Read and Truncate
// never see them. Part of the on-disk format.
var (
	metaFloorKey = []byte("\xffmeta:floor")
	metaIDKey    = []byte("\xffmeta:id")
)

// IDRandBytes is the number of random bytes in a log's id; the id is their
// lowercase hex (2*IDRandBytes characters). Part of the on-disk format.
const IDRandBytes = 16

// Key returns the Pebble key of the chunk whose first record is seq: 8 bytes,
// big-endian, so keys sort in seq order. Part of the on-disk format.
func Key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Open opens (or creates) the log in dir and starts its committer. Every
// record present on open is durable: its seq is at or below Durable(). A log
// without an id (a new one, or one written before ids existed) gets one,
// stored with fsync before Open returns; see ID.
func Open(dir string, opts Options) (*Log, error) {
	opts.setDefaults()
	// Pebble reports storage trouble it meets outside a commit (a flush or
	// a compaction that cannot write, for a full disk) only to its event
	// listener; commits then stall once the memtables are full. The log
	// fails for good on the first such error, so that it says so (Err, and
	// the engine's readiness) and refuses new records at once, instead of
	// letting them queue behind a stall.
	var opened atomic.Pointer[Log]
	listener := pebble.EventListener{
		BackgroundError: func(err error) {
			if l := opened.Load(); l != nil {
				l.failBackground(err)
			} else {
				opts.Logger.Error("wal: storage error while opening", "err", err)
			}
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			opts.Logger.Warn("wal: writes stalled", "reason", info.Reason)
		},
		WriteStallEnd: func() { opts.Logger.Info("wal: writes resumed") },
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 opts.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{opts.Logger},
		MemTableSize:       64 << 20,
		EventListener:      &listener,
	})
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	l := &Log{db: db, opts: opts, notify: make(chan struct{}), done: make(chan struct{}),
		free: make(chan *group, 4)}
	opened.Store(l)
	l.work.L, l.room.L = &l.mu, &l.mu
	floor, last, err := scan(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	if l.id, err = l.loadID(opts.Rand); err != nil {
		if l.err == nil {
			db.Close()
		}
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	l.next = last + 1
	l.durable.Store(last)
	l.first.Store(floor)
	go l.commitLoop()
	return l, nil
}

// ID returns the log's identity: 2*IDRandBytes lowercase hex characters,
// drawn at random when the log was created and kept for its whole life
// (truncation does not touch it). Two logs never share an id, so a reader
// that remembers how far it read (the syncer's checkpoint) can tell its log
// from another one that merely has as many records. Logs written before ids
// existed get one at their first Open by this version.
func (l *Log) ID() string { return l.id }

// loadID reads the log's id from its meta key, or, when there is none (a
// new log, or one written before ids existed), draws one from rnd and stores
// it with fsync before Open returns: an id handed out is never lost. A value
// that is not a well-formed id is corrupt. Called by Open before the
// committer starts.
func (l *Log) loadID(rnd io.Reader) (string, error) {
	v, closer, err := l.db.Get(metaIDKey)
	if err == nil {
		id := string(v)
		closer.Close()
		if !ValidLogID(id) {
			return "", fmt.Errorf("%w: id key holds %q", ErrCorrupt, id)
		}
		return id, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return "", fmt.Errorf("read id: %w", err)
	}
	var raw [IDRandBytes]byte
	if _, err := io.ReadFull(rnd, raw[:]); err != nil {
		return "", fmt.Errorf("draw id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if !ValidLogID(id) {
		panic(fmt.Sprintf("wal: drew an invalid id %q", id))
	}
	b := l.db.NewBatch()
	if err := b.Set(metaIDKey, []byte(id), nil); err != nil {
		b.Close()
		return "", fmt.Errorf("store id: %w", err)
	}
	if err := l.commit(b); err != nil {
		// Pebble's commit pipeline is broken after a failed commit: the
		// log is failed, and Open leaves the files as they are (as Close
		// does).
		l.err = fmt.Errorf("%w: store id: %w", ErrFailed, err)
		return "", l.err
	}
	b.Close()
	return id, nil
}

// ValidLogID reports whether id has the form of a log id: exactly
// 2*IDRandBytes characters of lowercase hex.
func ValidLogID(id string) bool {
	if len(id) != 2*IDRandBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// scan reads the floor and the first and last chunks: it returns First() and
// Durable() for a log opened on db. It checks the first and last chunks whole.
func scan(db *pebble.DB) (floor, last uint64, err error) {
	floor = 1
	if v, closer, err := db.Get(metaFloorKey); err == nil {
		ok := len(v) == 8
		if ok {
			floor = binary.BigEndian.Uint64(v)
		}
		closer.Close()
		if !ok || floor == 0 || floor > SeqMax+1 {
			return 0, 0, fmt.Errorf("%w: floor key holds %x", ErrCorrupt, v)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, fmt.Errorf("read floor: %w", err)
	}
	last = floor - 1
	it, err := db.NewIter(&pebble.IterOptions{UpperBound: Key(SeqMax + 1)})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("scan: %w", cerr)
		}
	}()
	if it.Last() {
		c, err := itChunk(it)
		if err != nil {
			return 0, 0, err
		}
		last = max(last, c.first+c.n-1)
	}
	if it.First() {
		c, err := itChunk(it)
		if err != nil {
			return 0, 0, err
		}
		floor = max(floor, c.first)
	}
	if err := it.Error(); err != nil {
		return 0, 0, fmt.Errorf("scan: %w", err)
	}
	return floor, last, nil
}

// itChunk reads and checks the chunk it is positioned at.
func itChunk(it *pebble.Iterator) (chunk, error) {
	v, err := it.ValueAndErr()
	if err != nil {
		return chunk{}, err
	}
	return readChunk(it.Key(), v)
}

// Append queues rec and returns the seq it will have. ack.Durable is called
// once the record is fsynced (or the log has failed); the caller must not
// report the change as done before that. Records are durable in seq order, so
// a change logged after another is never durable without it. Append copies rec.
// It blocks while QueueRecordsMax records wait for their fsync. A rec outside
// 1..RecordBytesMax bytes is refused with an error wrapping ErrCorrupt (the
// chunk format cannot hold it; Record.Encode never makes one).
func (l *Log) Append(rec []byte, ack Ack) (uint64, error) {
	one := [1][]byte{rec}
	acks := [1]Ack{ack}
	return l.AppendBatch(one[:], acks[:])
}

// AppendBatch appends recs[i] with acks[i] for each i, in order, under one
// lock: the records get consecutive seqs (the first is returned) and the same
// guarantees as Append's, which it is equivalent to. All or nothing: on an
// error no record was appended. At most BatchRecordsMax records at once.
func (l *Log) AppendBatch(recs [][]byte, acks []Ack) (uint64, error) {
	if len(recs) != len(acks) || len(recs) == 0 || len(recs) > l.opts.BatchRecordsMax {
		return 0, fmt.Errorf("wal: append of %d records with %d acks, want 1..%d", len(recs), len(acks), l.opts.BatchRecordsMax)
	}
	for _, rec := range recs {
		if len(rec) == 0 || len(rec) > RecordBytesMax {
			return 0, fmt.Errorf("wal: append: %w: %d bytes, want 1..%d", ErrCorrupt, len(rec), RecordBytesMax)
		}
	}
	n := len(recs)
	l.mu.Lock()
	for l.queued+n > l.opts.QueueRecordsMax && l.err == nil && !l.closing {
		l.room.Wait()
	}
	if l.err != nil {
		l.mu.Unlock()
		return 0, l.err
	}
	if l.closing {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	if l.next+uint64(n)-1 > SeqMax {
		l.mu.Unlock()
		panic("wal: sequence numbers exhausted")
	}
	first := l.next
	wake := len(l.queue) == 0 // the committer waits only on an empty queue
	for i, rec := range recs {
		seq := l.next
		l.next++
		g := l.openGroup(len(rec))
		g.chunk.add(rec)
		g.acks = append(g.acks, acks[i])
		if g.first == 0 {
			g.first = seq
		}
		g.last = seq
	}
	l.queued += n
	if wake {
		l.work.Signal()
	}
	l.mu.Unlock()
	return first, nil
}

// openGroup returns the group that takes the next record, sealing the current
// one when it is full. Called with l.mu held.
func (l *Log) openGroup(n int) *group {
	if k := len(l.queue); k > 0 {
		g := l.queue[k-1]
		if len(g.acks) < l.opts.BatchRecordsMax && g.chunk.size()+binary.MaxVarintLen32+n < l.opts.BatchBytesMax {
			return g
		}
	}
	var g *group
	select {
	case g = <-l.free:
	default:
		g = &group{acks: make([]Ack, 0, 256)}
	}
	g.chunk.reset()
	l.queue = append(l.queue, g)
	return g
}

// recycle hands an acked group back for reuse. Called by the ack goroutine.
func (l *Log) recycle(g *group) {
	clear(g.acks) // drop the references to the callers' acks
	g.acks, g.first, g.last = g.acks[:0], 0, 0
	if cap(g.chunk.buf) > groupRetainMax {
		g.chunk.buf = nil
	}
	select {
	case l.free <- g:
	default:
	}
}

func (l *Log) commitLoop() {
	// Acks run on their own goroutine so that the next commit starts while
	// the callers of the last one are being answered. The channel holds one
	// group: at most two groups are between commit and ack at any moment.
	acks := make(chan ackWork, 1)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for w := range acks {
			for _, g := range w.groups {
				for i, a := range g.acks {
					a.Durable(g.first+uint64(i), w.err)
				}
				if w.err == nil {
					l.recycle(g)
				}
			}
		}
	}()
	defer func() {
		close(acks)
		<-acked
		close(l.done)
	}()
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closing {
			l.work.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		g := l.queue[0]
		l.queue = l.queue[1:]
		l.mu.Unlock()

		start := time.Now()
		v := g.chunk.value()
		size := len(v)
		b := l.db.NewBatch()
		err := b.Set(Key(g.first), v, nil)
		if err == nil {
			err = l.commit(b)
		}
		if err == nil {
			b.Close()
		}
		if l.opts.OnCommit != nil && err == nil {
			l.opts.OnCommit(len(g.acks), size, time.Since(start))
		}

		l.mu.Lock()
		l.queued -= len(g.acks)
		if err != nil && l.err == nil {
			l.err = fmt.Errorf("%w: %w", ErrFailed, err)
			l.opts.Logger.Error("wal: commit failed; refusing all further writes", "err", err)
		}
		// g is answered by its own commit: durable if that returned nil,
		// even when the log failed meanwhile (a background error). Once the
		// log has failed, what is still queued is answered with its error.
		done := ackWork{groups: []*group{g}, err: err}
		if err != nil {
			done.err = l.err
		} else {
			l.durable.Store(g.last)
		}
		close(l.notify) // WaitDurable: durable moved, or the log failed
		l.notify = make(chan struct{})
		var rest ackWork
		if l.err != nil && len(l.queue) > 0 {
			rest = ackWork{groups: l.queue, err: l.err}
			l.queue, l.queued = nil, 0
		}
		l.room.Broadcast()
		l.mu.Unlock()
		acks <- done
		if rest.groups != nil {
			acks <- rest
		}
	}
}

// failBackground fails the log for good after a storage error outside a
// commit (Pebble's event listener), unless it is closing.
func (l *Log) failBackground(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.closing {
		return
	}
	l.err = fmt.Errorf("%w: storage: %w", ErrFailed, err)
	l.opts.Logger.Error("wal: storage failed in the background; refusing all further writes", "err", err)
	l.room.Broadcast() // appenders waiting for room get the error
	close(l.notify)    // and WaitDurable's callers
	l.notify = make(chan struct{})
}

// ackWork is a committed (or failed) run of groups whose acks are due.
type ackWork struct {
	groups []*group
	err    error
}

// fatalError carries Pebble's Logger.Fatalf out of a commit as a panic.
type fatalError struct{ msg string }

// commit commits b with fsync, turning Pebble's fatal commit error into an
// error. After such an error Pebble's commit pipeline is unusable; the log is
// failed from then on.
func (l *Log) commit(b *pebble.Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = errors.New(fe.msg)
		}
	}()
	return b.Commit(pebble.Sync)
}

// Durable returns the highest seq that is fsynced. Every seq at or below it
// is durable (or truncated).
func (l *Log) Durable() uint64 { return l.durable.Load() }

// First returns the lowest seq that has not been truncated.
func (l *Log) First() uint64 { return l.first.Load() }

// Err returns the sticky error, or nil while the log is healthy.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// WaitDurable blocks until Durable() > after, the log fails or closes, or ctx
// ends. It returns the new durable seq.
func (l *Log) WaitDurable(ctx context.Context, after uint64) (uint64, error) {
	for {
		l.mu.Lock()
		ch, err, closing := l.notify, l.err, l.closing
		l.mu.Unlock()
		if d := l.durable.Load(); d > after {
			return d, nil
		}
		if err != nil {
			return 0, err
		}
		if closing {
			return 0, ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Read calls fn for each record with from <= seq <= to, in seq order, never
// beyond Durable() (data that Pebble has applied but not yet synced is never
// handed out) and never below First(). rec is valid only during the call.
// Read stops at fn's first error and returns it. Read checks each chunk it
// visits whole before handing out any of its records, and that each chunk
// starts where the one before it ended; a corrupt chunk, or a hole or overlap
// between chunks, is an error wrapping ErrCorrupt. Close waits for a Read in
// progress (fn must not call Close); after Close, Read returns ErrClosed.
func (l *Log) Read(from, to uint64, fn func(seq uint64, rec []byte) error) error {
	if err := l.use(); err != nil {
		return err
	}
	defer l.users.Done()
	to = min(to, l.durable.Load())
	from = max(from, l.first.Load())
	if from > to {
		return nil
	}
	it, err := l.db.NewIter(&pebble.IterOptions{UpperBound: Key(to + 1)})
	if err != nil {
		return err
	}
	err = readChunks(it, from, to, fn)
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

// readChunks is Read's walk over the chunks that it sees.
func readChunks(it *pebble.Iterator, from, to uint64, fn func(seq uint64, rec []byte) error) error {
	// The chunk holding from is the last one keyed at or below it. There is
	// none only if a Truncate ran since from was clamped; start at the first.
	ok := it.SeekLT(Key(from + 1))
	if !ok && it.Error() == nil {
		ok = it.SeekGE(Key(from))
	}
	var next uint64 // where the next chunk must start; 0 before the first
	for ; ok; ok = it.Next() {
		c, err := itChunk(it)
		if err != nil {
			return fmt.Errorf("wal: read: %w", err)
		}
		if next != 0 && c.first != next {
			return fmt.Errorf("wal: read: %w: chunk at seq %d follows one that ends before seq %d", ErrCorrupt, c.first, next)
		}
		next = c.first + c.n
		if err := c.each(from, to, fn); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if next != 0 && next <= to {
		return fmt.Errorf("wal: read: %w: records %d..%d are missing", ErrCorrupt, next, to)
	}
	return nil
}

// Truncate drops every record with seq < below: one DeleteRange removes every
// chunk that ends below it, and below is recorded as the floor, so that
// First() is below and seqs keep rising across restarts even when the log is
// emptied. The chunk that holds below stays whole; Read skips its records
// under the floor. Callers must only truncate what is both snapshotted and
// synced; Truncate only checks that below is durable.
func (l *Log) Truncate(below uint64) error {
	if below <= l.first.Load() {
		return nil
	}
	if below > l.durable.Load()+1 {
		return fmt.Errorf("wal: truncate below %d beyond durable %d", below, l.durable.Load())
	}
	if err := l.use(); err != nil {
		return err
	}
	defer l.users.Done()
	end, err := l.chunkStart(below)
	if err != nil {
		return fmt.Errorf("wal: truncate: %w", err)
	}
	b := l.db.NewBatch()
	if err := b.DeleteRange(Key(0), Key(end), nil); err != nil {
		return err
	}
	if err := b.Set(metaFloorKey, Key(below), nil); err != nil {
		return err
	}
	if err := l.commit(b); err != nil {
		// Pebble's commit pipeline is broken after a failed commit, whatever
		// the batch: the log is failed for good, as for an append.
		l.mu.Lock()
		if l.err == nil {
			l.err = fmt.Errorf("%w: truncate: %w", ErrFailed, err)
			l.room.Broadcast() // appenders waiting for room get the error
			close(l.notify)    // and WaitDurable's callers
			l.notify = make(chan struct{})
		}
		l.mu.Unlock()
		return fmt.Errorf("wal: truncate: %w", err)
	}
	b.Close()
	l.first.Store(below)
	return nil
}

// use registers a Read or Truncate that is about to use Pebble, which Close
// then waits for; once Close has begun to close Pebble it returns ErrClosed.
// The caller calls l.users.Done when it no longer uses db.
func (l *Log) use() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dbClosed {
		return ErrClosed
	}
	l.users.Add(1)
	return nil
}

// chunkStart returns the key (first seq) of the chunk that holds seq, or seq
// itself when no chunk holds it (seq is above every record).
func (l *Log) chunkStart(seq uint64) (start uint64, err error) {
	it, err := l.db.NewIter(&pebble.IterOptions{UpperBound: Key(seq + 1)})
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	if !it.Last() {
		return seq, it.Error()
	}
	c, err := itChunk(it)
	if err != nil {
		return 0, err
	}
	if c.first+c.n > seq {
		return c.first, nil
	}
	return seq, nil
}

// Close stops accepting records, waits until every queued record is durable
// (or failed) and every Read and Truncate in progress has returned, and
// closes Pebble. Records appended before Close are acked.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closing = true
	l.work.Broadcast()
	l.room.Broadcast()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	l.dbClosed = true
	l.mu.Unlock()
	l.users.Wait()
	if l.Err() != nil {
		// Pebble's commit pipeline is broken; Close would report the same
		// error again (or panic through Fatalf). Leave the files as they are.
		return l.Err()
	}
	return l.db.Close()
}

// Stats reports the log's counters for metrics.
type Stats struct {
	First, Durable, Next uint64
	Queued               int
}

// Stats returns a consistent snapshot of the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{First: l.first.Load(), Durable: l.durable.Load(), Next: l.next, Queued: l.queued}
}

// pebbleLogger sends Pebble's messages to slog and turns Fatalf into a panic
// that commit recovers; a Fatalf on any other Pebble goroutine (a MANIFEST
// sync failure, say) crashes the process, which loses nothing acknowledged.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic(fatalError{msg})
}
