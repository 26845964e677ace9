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
	mailbox   *skuMailbox  // the actor's mailbox (set when the actor is spawned)
	available atomic.Int64 // published by the actor after each change or batch of takes
	limit     atomic.Int64
	inflight  atomic.Int64
	// s is the SKU's state. Only the actor touches it once the actor runs;
	// it lives here, not in the actor, so that a restarted actor keeps it.
	s *sku
	// in holds the takes the actor received in the current mailbox run and
	// has not decided yet; out the records it decided and has not yet handed
	// to the log. Both are owned by whoever runs the mailbox.
	in  inBatch
	out outBatch
	rec wal.Record // decide's encoding scratch
	e   *Engine
}

// inBatch is a SKU actor's takes of one mailbox run, decided together
// (decide): their ids are claimed in the table in one pass, one lock per
// table shard, by the goroutine running the mailbox.
type inBatch struct {
	ops  []*takeOp
	ins  []reqInit
	outs []claimOut
}

// decide claims the ids of the queued takes, decides each in order (stock,
// then the per-user limit), applies what it accepts, and hands the records to
// the log (flush).
func (r *skuRef) decide() {
	defer r.catchBug()
	if r.e.bug.Load() != nil {
		r.failPending(r.e.Err()) // a SKU actor panicked: nothing more is decided
		return
	}
	b := &r.in
	if len(b.ops) > 0 {
		b.ins, b.outs = b.ins[:0], b.outs[:0]
		now := r.e.nowMs() // one clock read decides the whole batch
		for _, op := range b.ops {
			op.req.stamp(now)
			op.item[0] = Item{SKU: r.id, Qty: op.qty}
			b.ins = append(b.ins, reqInit{id: op.req.id, user: op.req.user, kind: op.req.kind, bodyHash: op.req.hash,
				doneMs: op.req.doneMs, expires: op.req.expires, items: op.item[:]})
			b.outs = append(b.outs, claimOut{})
		}
		r.e.requests.claimBatch(b.ins, b.outs)
		for i, op := range b.ops {
			if c := &b.outs[i]; c.res == claimed {
				op.req.h, op.claimed = c.h, true
			}
		}
		for i, op := range b.ops {
			switch c := &b.outs[i]; c.res {
			case claimDone:
				res, err := op.req.replay(c.info)
				op.answer(res, err)
			case claimBusy:
				op.answer(Result{}, errClaimBusy)
			default:
				r.take(op)
			}
			b.ops[i] = nil // answered, or in the out batch (failPending)
		}
		clear(b.ops)
		clear(b.ins)
		b.ops = b.ops[:0]
		r.publish()
	}
	r.flush()
}

// failPending answers with err, after a bug, every take the actor holds and
// has not handed to the log: those it has not decided (their claimed ids are
// released) and those decided into the out batch (applied in memory only,
// never logged: the engine refuses all changes now). It empties both batches,
// so that the restarted actor does not decide them again.
func (r *skuRef) failPending(err error) {
	b, out := &r.in, &r.out
	for _, op := range b.ops {
		if op != nil && (len(out.acks) == 0 || out.acks[len(out.acks)-1] != wal.Ack(op)) {
			op.refuse(err)
		}
	}
	for _, a := range out.acks {
		a.(*takeOp).refuse(err)
	}
	clear(b.ops)
	clear(b.ins)
	clear(out.acks)
	b.ops, b.ins = b.ops[:0], b.ins[:0]
	out.buf, out.ends, out.acks = out.buf[:0], out.ends[:0], out.acks[:0]
}

// catchBug runs deferred in decide: see Engine.noteBug.
func (r *skuRef) catchBug() {
	if p := recover(); p != nil {
		r.failPending(r.e.noteBug(p))
		panic(p)
	}
}

// take decides one claimed take and, if it is accepted, adds its record to
// the out batch and applies it.
func (r *skuRef) take(op *takeOp) {
	s := r.s
	// op belongs to its caller again as soon as it is acked, which may
	// happen once the batch is flushed: read it only before.
	kind, user, qty := op.req.kind, op.req.user, op.qty
	if err := s.checkTake(user, qty); err != nil {
		op.refuse(err)
		return
	}
	r.rec = wal.Record{Kind: kind, TimeMs: op.req.doneMs, RequestID: op.req.id, UserID: user, BodyHash: op.req.hash,
		ExpiresAtMs: op.req.expires, Items: append(r.rec.Items[:0], wal.Item{SKU: s.id, Qty: qty})}
	out := &r.out
	out.buf = r.rec.Encode(out.buf)
	out.ends = append(out.ends, len(out.buf))
	out.acks = append(out.acks, op)
	s.apply(kind, user, qty, 0)
}

// outBatchRecordsMax bounds the takes an actor queues before it decides them
// and hands their records to the log, so that a long mailbox run does not
// hold them back (and claimBatch's scratch stays small).
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
			a.(*takeOp).refuse(unavailable(err))
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
// A take is queued; the queued takes are decided together (decide) when the
// mailbox run ends (skuMailbox calls it), when outMax are queued
// (outBatchRecordsMax, or the log's BatchRecordsMax if smaller), or before
// the actor handles anything else, so the actor decides and logs in the
// order it received. Their records reach the log in one call, so a
// hot SKU logs many sales at once. Causal order holds: a take never depends
// on a change that is not yet in the log (frees are logged by this actor
// before it decides anything after them, or by the coordinator before they
// are applied).
func (a *skuActor) Receive(ctx actor.Context) {
	msg := ctx.Message()
	defer a.catchBug(msg)
	if a.e.bug.Load() != nil {
		a.refuse(msg, a.e.Err()) // a SKU actor panicked: nothing more is decided
		return
	}
	m, ok := msg.(*takeOp)
	if !ok {
		a.ref.decide()
		a.receiveOther(ctx)
		return
	}
	a.ref.in.ops = append(a.ref.in.ops, m)
	if len(a.ref.in.ops) >= a.e.outMax {
		a.ref.decide()
	}
}

// catchBug runs deferred in Receive: see Engine.noteBug. A take is in the
// actor's batch (failPending answers it); any other message msg is answered
// here, unless the log already holds its record.
func (a *skuActor) catchBug(msg any) {
	if p := recover(); p != nil {
		err := a.e.noteBug(p)
		a.ref.failPending(err)
		if _, take := msg.(*takeOp); !take {
			a.refuse(msg, err)
		}
		panic(p)
	}
}

// refuse answers msg with err instead of handling it, once the engine found
// a bug: a change not yet logged is refused; a coordinator's apply (its
// record is in the log, and recovery folds it) is acknowledged without being
// applied; a get is answered.
func (a *skuActor) refuse(msg any, err error) {
	switch m := msg.(type) {
	case *takeOp:
		m.refuse(err)
	case *prepareMsg:
		m.reply <- prepareReply{index: m.index, err: err}
	case *applyMsg:
		m.done <- struct{}{}
	case *setMsg:
		if m.c != nil {
			m.c.refuse(err)
		}
	case *restockMsg:
		if m.c != nil {
			m.c.refuse(err)
		}
	case *getMsg:
		m.reply <- a.ref.s.state()
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
		m.c = nil // the log answers it now
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
		m.c = nil // the log answers it now
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
