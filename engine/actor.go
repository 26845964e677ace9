package engine

import (
	"fmt"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flashsale/flashsale/wal"
)

// skuRef is how the engine reaches a SKU: its actor's PID and a few values
// the actor publishes for reads without a hop.
type skuRef struct {
	id        string
	pid       *actor.PID
	available atomic.Int64 // published by the actor after each change
	limit     atomic.Int64
	inflight  atomic.Int64
	// s is the SKU's state. Only the actor touches it once the actor runs;
	// it lives here, not in the actor, so that a restarted actor keeps it.
	s *sku
	// out holds the records the actor decided in the current mailbox run,
	// not yet handed to the log (owned by whoever runs the mailbox).
	out outBatch
	e   *Engine
}

// outBatchRecordsMax: the actor hands its records to the log at least this
// often within one mailbox run, so a long run does not hold them back.
const outBatchRecordsMax = 256

// outBatch is a SKU actor's records of one mailbox run, appended to the log
// in one call (wal.Log.AppendBatch) when the run ends, when it is full, or
// before the actor handles anything but a take.
type outBatch struct {
	buf  []byte // the records, encoded back to back
	ends []int  // where each record ends in buf
	acks []wal.Ack
	recs [][]byte // scratch for AppendBatch
}

// flush appends the batch to the log. A record the log refuses (it failed or
// is closed) is answered with the error; the engine is unavailable then, and
// the change, already applied in memory, is lost with it (Err tells).
func (r *skuRef) flush() {
	b := &r.out
	if len(b.acks) == 0 {
		return
	}
	start := 0
	b.recs = b.recs[:0]
	for _, end := range b.ends {
		b.recs = append(b.recs, b.buf[start:end])
		start = end
	}
	if _, err := r.e.log.AppendBatch(b.recs, b.acks); err != nil {
		for _, a := range b.acks {
			a.Durable(0, unavailable(err))
		}
	}
	clear(b.acks)
	clear(b.recs)
	b.buf, b.ends, b.acks, b.recs = b.buf[:0], b.ends[:0], b.acks[:0], b.recs[:0]
}

func (r *skuRef) publish() {
	r.available.Store(r.s.available)
	r.limit.Store(r.s.limit)
}

// skuActor is the thin shell around a SKU's state: it runs the pure checks,
// hands records to the log, applies them in memory and never waits for an
// fsync (the caller is answered by the log's Ack once the record is durable).
type skuActor struct {
	e   *Engine
	ref *skuRef
	rec wal.Record
	buf []byte // append's encoding scratch
}

// call is a caller waiting for one change: answered once (done) with the
// record's seq, or with the error that refused it. It is the wal.Ack of its
// record.
type call struct {
	done chan struct{}
	seq  uint64
	err  error
	// finish, if set, runs when the outcome is known (before done is
	// signalled), whether or not the caller still waits.
	finish func(seq uint64, err error)
}

func newCall(finish func(uint64, error)) *call {
	return &call{done: make(chan struct{}, 1), finish: finish}
}

// Durable implements wal.Ack.
func (c *call) Durable(seq uint64, err error) {
	err = fromLog(err)
	c.seq, c.err = seq, err
	if c.finish != nil {
		c.finish(seq, err)
	}
	c.done <- struct{}{}
}

// refuse answers the call with err before any record was written.
func (c *call) refuse(err error) { c.Durable(0, err) }

// Messages a SKU actor takes.
type (
	// prepareMsg: hold qty for a multi-SKU request; answered on reply.
	prepareMsg struct {
		index    int
		id, user string
		qty      int64
		reply    chan<- prepareReply
	}
	prepareReply struct {
		index int
		err   error
	}
	// abortMsg releases a hold.
	abortMsg struct{ id string }
	// applyMsg applies one item of a record the coordinator logged (dropping
	// the hold it had, if any) and answers on done.
	applyMsg struct {
		kind       wal.Kind
		id, user   string
		qty, limit int64
		dropHold   bool // the record is a multi-SKU take that held stock under id
		done       chan<- struct{}
	}
	// setMsg sets the total (and maybe the limit), logged by the actor.
	setMsg struct {
		c     *call
		total int64
		limit *int64
		nowMs int64
	}
	// restockMsg adds to the total, logged by the actor.
	restockMsg struct {
		c     *call
		id    string
		qty   int64
		hash  uint64
		nowMs int64
	}
	getMsg struct{ reply chan SKUState }
)

// Receive handles one message. It never blocks: the log's Append only waits
// while its queue is full (bounded backpressure).
//
// A take is decided, its record added to the actor's batch, and applied; the
// batch goes to the log when the mailbox run ends (skuMailbox calls flush),
// so a hot SKU logs many sales in one call. Everything else first flushes the
// batch, so the actor's records reach the log in the order it decided them.
// Causal order holds: a take never depends on a change that is not yet in
// the log (frees are logged by their actor before it decides anything after
// them, or by the coordinator before they are applied).
func (a *skuActor) Receive(ctx actor.Context) {
	defer a.e.catchBug()
	s := a.ref.s
	m, ok := ctx.Message().(*takeOp)
	if !ok {
		a.ref.flush()
		a.receiveOther(ctx)
		return
	}
	// m belongs to its caller again as soon as it is acked, which may happen
	// once the batch is flushed: read it only before.
	kind, user, qty := m.req.kind, m.req.user, m.qty
	if err := s.checkTake(user, qty); err != nil {
		m.Durable(0, err)
		return
	}
	a.rec = wal.Record{Kind: kind, TimeMs: m.req.doneMs, RequestID: m.req.id, UserID: user, BodyHash: m.req.hash,
		ExpiresAtMs: m.req.expires, Items: append(a.rec.Items[:0], wal.Item{SKU: s.id, Qty: qty})}
	out := &a.ref.out
	out.buf = a.rec.Encode(out.buf)
	out.ends = append(out.ends, len(out.buf))
	out.acks = append(out.acks, m)
	s.apply(kind, user, qty, 0)
	a.ref.publish()
	if len(out.acks) >= outBatchRecordsMax {
		a.ref.flush()
	}
}

// receiveOther handles every message but a take.
func (a *skuActor) receiveOther(ctx actor.Context) {
	s := a.ref.s
	switch m := ctx.Message().(type) {
	case *prepareMsg:
		err := s.checkTake(m.user, m.qty)
		if err == nil {
			s.addHold(m.id, m.user, m.qty)
		}
		m.reply <- prepareReply{index: m.index, err: err}
	case *abortMsg:
		s.dropHold(m.id)
	case *applyMsg:
		if m.dropHold && !s.dropHold(m.id) {
			panic(fmt.Sprintf("engine: sku %s: no hold for %s", s.id, m.id))
		}
		s.apply(m.kind, m.user, m.qty, m.limit)
		a.ref.publish()
		m.done <- struct{}{}
	case *setMsg:
		limit := s.limit
		if m.limit != nil {
			limit = *m.limit
		}
		if err := s.checkSetTotal(m.total); err != nil {
			m.c.refuse(err)
			return
		}
		delta := m.total - s.total
		a.rec = wal.Record{Kind: wal.KindSetTotal, TimeMs: m.nowMs, RequestID: setTotalRequestID, LimitPerUser: limit,
			Items: append(a.rec.Items[:0], wal.Item{SKU: s.id, Qty: delta})}
		if !a.append(m.c) {
			return
		}
		s.apply(wal.KindSetTotal, "", delta, limit)
		a.ref.publish()
	case *restockMsg:
		if s.total+m.qty > TotalMax {
			m.c.refuse(badRequest("restock of %d would take the total of %s past %d", m.qty, s.id, TotalMax))
			return
		}
		a.rec = wal.Record{Kind: wal.KindRestock, TimeMs: m.nowMs, RequestID: m.id, BodyHash: m.hash,
			Items: append(a.rec.Items[:0], wal.Item{SKU: s.id, Qty: m.qty})}
		if !a.append(m.c) {
			return
		}
		s.apply(wal.KindRestock, "", m.qty, 0)
		a.ref.publish()
	case *getMsg:
		m.reply <- s.state()
	}
}

// append logs a.rec with c as its Ack; on failure it answers c and reports
// false, and the change must not be applied.
func (a *skuActor) append(c *call) bool {
	a.buf = a.rec.Encode(a.buf[:0])
	if _, err := a.e.log.Append(a.buf, c); err != nil {
		c.refuse(unavailable(err))
		return false
	}
	return true
}

// setTotalRequestID is the request id of set_total records (PUT has no id).
const setTotalRequestID = "admin-set-total"
