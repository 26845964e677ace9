package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flashsale/flashsale/wal"
)

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// fromLog maps an error that the log handed an Ack (a failed fsync) to
// ErrUnavailable; the contract's own errors pass through.
func fromLog(err error) error {
	if err != nil && CodeOf(err) == nil {
		return unavailable(err)
	}
	return err
}

// Deduct sells every item at once (all or nothing). It returns after the
// sale is durable.
func (e *Engine) Deduct(ctx context.Context, r DeductRequest) (Result, error) {
	return e.take(ctx, wal.KindDeduct, r.RequestID, r.UserID, r.Items, 0)
}

// Reserve holds every item (all or nothing) until Confirm, Cancel or expiry.
func (e *Engine) Reserve(ctx context.Context, r ReserveRequest) (Result, error) {
	ttl := r.TTL
	if ttl == 0 {
		ttl = e.opts.ReservationTTLDefault
	} else if ttl < ReservationTTLMin || ttl > ReservationTTLMax {
		return Result{}, badRequest("ttl: %v, want %v..%v", ttl, ReservationTTLMin, ReservationTTLMax)
	}
	return e.take(ctx, wal.KindReserve, r.RequestID, r.UserID, r.Items, ttl)
}

// take runs a deduct or a reservation: checks in the contract's order, the
// idempotency claim, then the single-SKU fast path (one actor decides and
// logs) or the multi-SKU path (holds on every SKU, one record, apply).
func (e *Engine) take(ctx context.Context, kind wal.Kind, id, user string, items []Item, ttl time.Duration) (Result, error) {
	if err := validID("request_id", id); err != nil {
		return Result{}, err
	}
	if user != "" {
		if err := validID("user_id", user); err != nil {
			return Result{}, err
		}
	}
	var refsBuf [1]*skuRef // a single-SKU request needs no allocation here
	refs, err := e.validateItems(items, refsBuf[:0])
	if err != nil {
		return Result{}, err
	}
	hash := bodyHash(kind, user, items, int64(ttl/time.Millisecond))
	if user == "" {
		for _, r := range refs {
			if r.limit.Load() > 0 {
				// A retry of a success replays, even if a limit was set
				// since: a retry gets the original outcome (waited for
				// while it is in flight, as takeOne and claim do).
				prior, found, busy := e.requests.peek(id)
				for busy {
					if err := e.requests.waitIdle(ctx, id); err != nil {
						return Result{}, err
					}
					prior, found, busy = e.requests.peek(id)
				}
				if found {
					t := takeReq{kind: kind, id: id, hash: hash}
					if res, err := t.replay(prior); err == nil {
						return res, nil
					}
				}
				return Result{}, badRequest("user_id: required, sku %s has a per-user limit", r.id)
			}
		}
	}
	if err := e.enter(); err != nil {
		return Result{}, err
	}
	defer e.leave()
	t := takeReq{kind: kind, id: id, user: user, hash: hash}
	if kind == wal.KindReserve {
		t.ttlMs = ttl.Milliseconds()
	}
	if len(refs) == 1 {
		return e.takeOne(ctx, refs[0], t, items[0].Qty) // the actor sets the time
	}
	t.stamp(e.nowMs())
	in := reqInit{id: id, user: user, kind: kind, bodyHash: hash, doneMs: t.doneMs, expires: t.expires, items: items}
	h, found, prior, err := e.requests.claim(ctx, &in)
	if err != nil {
		return Result{}, err
	}
	if found == claimDone {
		return t.replay(prior)
	}
	t.h = h
	return e.takeMany(ctx, refs, t, items)
}

// replay answers a retry of a deduct or reservation that succeeded before
// (prior), or refuses a reuse of its id with another body.
func (t *takeReq) replay(prior reqInfo) (Result, error) {
	if prior.kind != t.kind || prior.bodyHash != t.hash {
		return Result{}, fmt.Errorf("%w: request_id %s was used with another body", ErrRequestIDConflict, t.id)
	}
	return Result{Seq: prior.seq, Replayed: true, ExpiresAtMs: prior.expires}, nil
}

// takeReq is a deduct or reservation, checked, on its way to the table
// (which holds h pending once it claimed the id).
type takeReq struct {
	h        handle
	kind     wal.Kind
	id, user string
	hash     uint64
	ttlMs    int64 // reservations
	doneMs   int64 // when it is decided (stamp)
	expires  int64
}

// stamp sets the decision time, and a reservation's deadline from it.
func (t *takeReq) stamp(nowMs int64) {
	t.doneMs = nowMs
	if t.kind == wal.KindReserve {
		t.expires = nowMs + t.ttlMs
	}
}

// finishTake records the outcome of a deduct or reservation in the table.
func (e *Engine) finishTake(t *takeReq, seq uint64, err error) {
	status := statusDeducted
	if t.kind == wal.KindReserve {
		status = statusReserved
	}
	// Queued before the id is finished: a confirm or cancel, which can
	// only start once it is, then always finds it in the queue to remove.
	if err == nil && t.kind == wal.KindReserve {
		e.expiries.push(t.id, t.expires)
	}
	e.requests.finish(t.h, err == nil, seq, status)
}

// errClaimBusy tells a caller that its request id is in flight in another
// request: it waits for that one to end and tries again.
var errClaimBusy = errors.New("engine: request id in flight")

// takeOp is the hot path's single allocation (pooled): the message to the
// SKU actor, the log's Ack for its record, and the caller's reply. The actor
// claims the id in the table (claimed: the table holds req.h pending), decides,
// and hands the record to the log; the op is answered once: by the actor when
// the request is refused or replayed, by the log when its record is durable.
type takeOp struct {
	e       *Engine
	ref     *skuRef
	req     takeReq
	qty     int64
	item    [1]Item // the claim's items (the SKU's own id: nothing of the caller's)
	claimed bool
	done    chan struct{}
	res     Result
	err     error
}

var takeOps = sync.Pool{New: func() any { return &takeOp{done: make(chan struct{}, 1)} }}

// Durable implements wal.Ack. It runs the bookkeeping whether or not the
// caller still waits.
func (op *takeOp) Durable(seq uint64, err error) {
	err = fromLog(err)
	op.e.finishTake(&op.req, seq, err)
	op.answer(Result{Seq: seq, ExpiresAtMs: op.req.expires}, err)
}

// refuse answers the op without a record; a claimed id is released.
func (op *takeOp) refuse(err error) {
	if op.claimed {
		op.e.requests.finish(op.req.h, false, 0, 0)
	}
	op.answer(Result{}, err)
}

func (op *takeOp) answer(res Result, err error) {
	if err != nil {
		res = Result{}
	}
	op.res, op.err = res, err
	op.ref.inflight.Add(-1)
	op.done <- struct{}{}
}

// takeOne runs a single-SKU deduct or reservation: the SKU's actor claims the
// id, decides and logs (see skuRef.decide).
func (e *Engine) takeOne(ctx context.Context, ref *skuRef, t takeReq, qty int64) (Result, error) {
	for {
		// Sold out: answered here, without a hop to the actor, unless the
		// id succeeded before (then it replays), or a take is on its way
		// through the actor (it could be this id's original, not claimed
		// yet, which stock freed ahead of it can still let through).
		if ref.available.Load() == 0 && ref.inflight.Load() == 0 {
			prior, found, busy := e.requests.peek(t.id)
			switch {
			case found:
				return t.replay(prior)
			case !busy:
				return Result{}, &ItemError{Err: ErrSoldOut, SKU: ref.id}
			}
		}
		if ref.inflight.Add(1) > e.opts.SKUInFlightMax {
			ref.inflight.Add(-1)
			return Result{}, ErrOverloaded
		}
		op := takeOps.Get().(*takeOp)
		op.e, op.ref, op.req, op.qty = e, ref, t, qty
		// Straight into the actor's mailbox: what e.root.Send(ref.pid, op)
		// comes down to, without resolving the PID on the hot path.
		ref.mailbox.PostUserMessage(op)
		if ctxDone := ctx.Done(); ctxDone == nil {
			<-op.done
		} else {
			select {
			case <-op.done:
			case <-ctxDone:
				return Result{}, ctx.Err() // op is not reused: the actor or the log still holds it
			}
		}
		res, err := op.res, op.err
		*op = takeOp{done: op.done}
		takeOps.Put(op)
		if err != errClaimBusy {
			return res, err
		}
		if err := e.requests.waitIdle(ctx, t.id); err != nil {
			return Result{}, err
		}
	}
}

func (e *Engine) takeMany(ctx context.Context, refs []*skuRef, t takeReq, items []Item) (Result, error) {
	reply := make(chan prepareReply, len(refs))
	for i, r := range refs {
		e.root.Send(r.pid, &prepareMsg{index: i, id: t.id, user: t.user, qty: items[i].Qty, reply: reply})
	}
	errs := make([]error, len(refs))
	failed := false
	for range refs {
		p := <-reply
		errs[p.index] = p.err
		failed = failed || p.err != nil
	}
	if failed {
		for i, r := range refs {
			if errs[i] == nil {
				e.root.Send(r.pid, &abortMsg{id: t.id})
			}
		}
		e.finishTake(&t, 0, ErrInsufficientStock)
		for _, err := range errs {
			if err != nil {
				return Result{}, err // the first failing item in request order
			}
		}
	}
	rec := &wal.Record{Kind: t.kind, TimeMs: t.doneMs, RequestID: t.id, UserID: t.user, BodyHash: t.hash,
		ExpiresAtMs: t.expires, Items: toWALItems(items)}
	seq, err := e.logAndApply(ctx, rec, refs, true, func(seq uint64, err error) { e.finishTake(&t, seq, err) })
	if err != nil {
		return Result{}, err
	}
	return Result{Seq: seq, ExpiresAtMs: t.expires}, nil
}

// logAndApply is the coordinator path for a record that spans SKUs (or whose
// decision was made outside the actors): log it first, then apply it in every
// SKU's actor, then wait for durability. Logging before applying keeps causal
// order: nothing can use what the change frees before the change is logged.
// finish runs once the record is both durable and applied everywhere (or has
// failed), even when ctx ends first.
func (e *Engine) logAndApply(ctx context.Context, rec *wal.Record, refs []*skuRef, held bool, finish func(uint64, error)) (uint64, error) {
	c := newCall(nil)
	if _, err := e.log.Append(rec.Encode(nil), c); err != nil {
		if held {
			for _, r := range refs {
				e.root.Send(r.pid, &abortMsg{id: rec.RequestID})
			}
		}
		err = unavailable(err)
		finish(0, err)
		return 0, err
	}
	applied := make(chan struct{}, len(refs))
	for i, r := range refs {
		e.root.Send(r.pid, &applyMsg{kind: rec.Kind, id: rec.RequestID, user: rec.UserID, qty: rec.Items[i].Qty,
			limit: rec.LimitPerUser, dropHold: held, done: applied})
	}
	for range refs {
		<-applied // actors never block, so this wait is short and bounded
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		go func() {
			<-c.done
			finish(c.seq, c.err)
		}()
		return 0, ctx.Err()
	}
	finish(c.seq, c.err)
	if c.err != nil {
		return 0, c.err
	}
	return c.seq, nil
}

// refsOf returns the refs of items' SKUs, which must exist (SKUs are never
// removed, and items come from a remembered request).
func (e *Engine) refsOf(items []wal.Item) []*skuRef {
	refs := make([]*skuRef, len(items))
	for i, it := range items {
		if refs[i] = e.ref(it.SKU); refs[i] == nil {
			panic(fmt.Sprintf("engine: remembered request names unknown sku %q", it.SKU))
		}
	}
	return refs
}

// settle logs and applies a confirm, cancel or expiry of reservation r,
// which the caller holds busy (h); it is released when done.
func (e *Engine) settle(ctx context.Context, h handle, r *request, kind wal.Kind, now int64) (uint64, error) {
	rec := &wal.Record{Kind: kind, TimeMs: now, RequestID: r.id, UserID: r.user, Items: r.items}
	status := map[wal.Kind]uint8{wal.KindConfirm: statusConfirmed, wal.KindCancel: statusCancelled, wal.KindExpire: statusExpired}[kind]
	return e.logAndApply(ctx, rec, e.refsOf(r.items), false, func(seq uint64, err error) {
		if err == nil {
			e.expiries.remove(r.id, r.expires)
			e.requests.releaseSettled(h, status, seq)
		} else {
			e.requests.release(h)
		}
	})
}

// Confirm turns a reservation into a sale.
func (e *Engine) Confirm(ctx context.Context, requestID string) (Result, error) {
	return e.settleByClient(ctx, requestID, wal.KindConfirm)
}

// Cancel releases a reservation.
func (e *Engine) Cancel(ctx context.Context, requestID string) (Result, error) {
	return e.settleByClient(ctx, requestID, wal.KindCancel)
}

func (e *Engine) settleByClient(ctx context.Context, id string, kind wal.Kind) (Result, error) {
	if err := validID("request_id", id); err != nil {
		return Result{}, err
	}
	if err := e.enter(); err != nil {
		return Result{}, err
	}
	defer e.leave()
	h, r, ok, err := e.requests.acquire(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("%w: %s", ErrUnknownRequest, id)
	}
	done := statusConfirmed
	if kind == wal.KindCancel {
		done = statusCancelled
	}
	var refusal error
	switch {
	case r.kind != wal.KindReserve:
		refusal = ErrNotAReservation
	case r.status == done:
		e.requests.release(h)
		return Result{Seq: r.settleSeq, Replayed: true}, nil
	case r.status == statusConfirmed:
		refusal = ErrAlreadyConfirmed
	case r.status == statusCancelled:
		refusal = ErrReservationCanceled
	case r.status == statusExpired:
		refusal = ErrReservationExpired
	}
	if refusal != nil {
		e.requests.release(h)
		return Result{}, fmt.Errorf("%w: %s", refusal, id)
	}
	now := e.nowMs()
	if now >= r.expires {
		if _, err := e.settle(ctx, h, &r, wal.KindExpire, now); err != nil {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("%w: %s", ErrReservationExpired, id)
	}
	seq, err := e.settle(ctx, h, &r, kind, now)
	if err != nil {
		return Result{}, err
	}
	return Result{Seq: seq}, nil
}

// Return gives back some of what a sale sold. ReturnID makes it idempotent;
// a sale may be returned in several parts, never beyond what it sold.
func (e *Engine) Return(ctx context.Context, rr ReturnRequest) (Result, error) {
	if err := validID("return_id", rr.ReturnID); err != nil {
		return Result{}, err
	}
	if err := validID("request_id", rr.RequestID); err != nil {
		return Result{}, err
	}
	refs, err := e.validateItems(rr.Items, nil)
	if err != nil {
		return Result{}, err
	}
	hash := bodyHash(wal.KindReturn, rr.RequestID, rr.Items, 0)
	if err := e.enter(); err != nil {
		return Result{}, err
	}
	defer e.leave()
	now := e.nowMs()
	retH, found, prior, err := e.returns.claim(ctx, &reqInit{id: rr.ReturnID, kind: wal.KindReturn, bodyHash: hash, doneMs: now})
	if err != nil {
		return Result{}, err
	}
	if found == claimDone {
		if prior.bodyHash != hash {
			return Result{}, fmt.Errorf("%w: return_id %s was used with another body", ErrRequestIDConflict, rr.ReturnID)
		}
		return Result{Seq: prior.seq, Replayed: true}, nil
	}
	h, r, ok, err := e.requests.acquire(ctx, rr.RequestID)
	if err != nil || !ok {
		e.returns.finish(retH, false, 0, 0)
		if err != nil {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("%w: %s", ErrUnknownRequest, rr.RequestID)
	}
	for _, it := range rr.Items {
		if i := r.itemIndex(it.SKU); i < 0 || r.soldQty(i) < it.Qty {
			e.requests.release(h)
			e.returns.finish(retH, false, 0, 0)
			return Result{}, &ItemError{Err: ErrReturnExceedsSold, SKU: it.SKU}
		}
	}
	items := toWALItems(rr.Items)
	rec := &wal.Record{Kind: wal.KindReturn, TimeMs: now, RequestID: rr.ReturnID, RefID: r.id, UserID: r.user,
		BodyHash: hash, Items: items}
	seq, err := e.logAndApply(ctx, rec, refs, false, func(seq uint64, err error) {
		if err == nil {
			e.requests.releaseReturned(h, items)
		} else {
			e.requests.release(h)
		}
		e.returns.finish(retH, err == nil, seq, statusDone)
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Seq: seq}, nil
}

// Restock adds to a SKU's total. A retry with the same id adds nothing and
// answers with the SKU as it is now.
func (e *Engine) Restock(ctx context.Context, rr RestockRequest) (SKUState, Result, error) {
	if err := validID("request_id", rr.RequestID); err != nil {
		return SKUState{}, Result{}, err
	}
	if err := validID("sku", rr.SKU); err != nil {
		return SKUState{}, Result{}, err
	}
	if rr.Qty < 1 || rr.Qty > QtyMax {
		return SKUState{}, Result{}, badRequest("qty: %d, want 1..%d", rr.Qty, QtyMax)
	}
	ref := e.ref(rr.SKU)
	if ref == nil {
		return SKUState{}, Result{}, &ItemError{Err: ErrUnknownSKU, SKU: rr.SKU}
	}
	hash := bodyHash(wal.KindRestock, "", []Item{{rr.SKU, rr.Qty}}, 0)
	if err := e.enter(); err != nil {
		return SKUState{}, Result{}, err
	}
	defer e.leave()
	now := e.nowMs()
	h, found, prior, err := e.restocks.claim(ctx, &reqInit{id: rr.RequestID, kind: wal.KindRestock, bodyHash: hash, doneMs: now})
	if err != nil {
		return SKUState{}, Result{}, err
	}
	res := Result{Seq: prior.seq, Replayed: true}
	if found == claimDone {
		if prior.bodyHash != hash {
			return SKUState{}, Result{}, fmt.Errorf("%w: request_id %s was used with another body", ErrRequestIDConflict, rr.RequestID)
		}
	} else {
		c := newCall(func(seq uint64, err error) { e.restocks.finish(h, err == nil, seq, statusDone) })
		e.root.Send(ref.pid, &restockMsg{c: c, id: rr.RequestID, qty: rr.Qty, hash: hash, nowMs: now})
		if err := waitCall(ctx, c); err != nil {
			return SKUState{}, Result{}, err
		}
		res = Result{Seq: c.seq}
	}
	st, err := e.get(ctx, rr.SKU, nil) // durable: Close waits for this call
	return st, res, err
}

// SetSKU creates a SKU or sets its total (and, if given, its per-user
// limit). The total may not go below what is reserved and sold.
func (e *Engine) SetSKU(ctx context.Context, sr SetSKURequest) (SKUState, Result, error) {
	if err := validID("sku", sr.SKU); err != nil {
		return SKUState{}, Result{}, err
	}
	if sr.Total < 0 || sr.Total > TotalMax {
		return SKUState{}, Result{}, badRequest("total: %d, want 0..%d", sr.Total, TotalMax)
	}
	if sr.LimitPerUser != nil && (*sr.LimitPerUser < 0 || *sr.LimitPerUser > LimitMax) {
		return SKUState{}, Result{}, badRequest("limit_per_user: %d, want 0..%d", *sr.LimitPerUser, LimitMax)
	}
	if err := e.enter(); err != nil {
		return SKUState{}, Result{}, err
	}
	defer e.leave()
	c := newCall(nil)
	e.sendSet(sr.SKU, &setMsg{c: c, total: sr.Total, limit: sr.LimitPerUser, nowMs: e.nowMs()})
	if err := waitCall(ctx, c); err != nil {
		return SKUState{}, Result{}, err
	}
	st, err := e.get(ctx, sr.SKU, nil) // durable: Close waits for this call
	return st, Result{Seq: c.seq}, err
}

func waitCall(ctx context.Context, c *call) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendSet sends m to SKU id's actor, creating the SKU (empty) and its actor
// when it does not exist. A new SKU is published (found by other calls) only
// after m is in its actor's mailbox, so that its set_total record is logged
// before any other record naming it: a restock racing the creation would
// otherwise be logged first, and no fold could read that log.
func (e *Engine) sendSet(id string, m *setMsg) {
	if r := e.ref(id); r != nil {
		e.root.Send(r.pid, m)
		return
	}
	e.skuMu.Lock()
	defer e.skuMu.Unlock()
	if r := e.ref(id); r != nil {
		e.root.Send(r.pid, m)
		return
	}
	r := e.spawn(newSKU(id))
	e.root.Send(r.pid, m)
	e.skus.add(r)
}

// spawn starts the actor of SKU s; the caller publishes the ref (skus.add).
func (e *Engine) spawn(s *sku) *skuRef {
	r := &skuRef{id: s.id, s: s, e: e}
	r.publish()
	r.pid = e.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &skuActor{e: e, ref: r} },
		actor.WithMailbox(newSKUMailbox(r))))
	return r
}

// expireParallel bounds the expiries ExpireDue has in flight at once. They
// run side by side so that one tick's expiries share commits (group commit),
// instead of paying one fsync each.
const expireParallel = 1024

// ExpireDue releases every reservation whose time has come (by the engine's
// clock) and forgets ids older than the idempotency window. The background
// loop calls it every ExpiryTick; with an injected clock, tests call it. It
// returns how many reservations it expired; after a failure it stops
// starting new expiries (the rest stay queued for the next call) and returns
// the first error.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	// Counted as a change in flight, so that Close waits for it (the
	// settles need the SKU actors alive). Not bounded by InFlightMax.
	e.inflight.Add(1)
	defer e.leave()
	if e.closed.Load() || e.bug.Load() != nil {
		return 0, e.Err()
	}
	now := e.nowMs()
	var (
		wg       sync.WaitGroup
		slots    = make(chan struct{}, expireParallel)
		n        atomic.Int64
		failed   atomic.Bool
		firstErr error
		errOnce  sync.Once
	)
	for _, due := range e.expiries.popDue(now) {
		if failed.Load() {
			e.expiries.requeue(due)
			continue
		}
		h, r, ok, again := e.requests.tryAcquire(due.id)
		if again {
			e.expiries.requeue(due) // a confirm or cancel is in flight; look again next time
			continue
		}
		if !ok {
			continue // forgotten
		}
		if r.status != statusReserved || r.expires != due.at {
			e.requests.release(h)
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if _, err := e.settle(ctx, h, &r, wal.KindExpire, now); err != nil {
				failed.Store(true)
				errOnce.Do(func() { firstErr = err })
				return
			}
			n.Add(1)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return int(n.Load()), firstErr
	}
	cutoff := now - e.opts.IdempotencyWindow.Milliseconds()
	e.requests.forget(cutoff)
	e.restocks.forget(cutoff)
	e.returns.forget(cutoff)
	return int(n.Load()), nil
}

// background runs fn every ExpiryTick until Close. Open starts two: one
// expires reservations, the other writes snapshots. They are apart because a
// snapshot can take seconds (every remembered id is written; the first one
// after a restart loads the whole state again), and no expiry may wait for it.
func (e *Engine) background(fn func()) {
	defer e.bg.Done()
	t := time.NewTicker(e.opts.ExpiryTick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		fn()
	}
}

func (e *Engine) expireTick() {
	if _, err := e.ExpireDue(context.Background()); err != nil && !e.closed.Load() {
		e.opts.Logger.Error("engine: expiring reservations", "err", err)
	}
}

func (e *Engine) snapshotTick() {
	if e.log.Durable()-e.snapSeq.Load() >= e.opts.SnapshotEveryRecords {
		if err := e.snapshot(); err != nil {
			e.snapFail.Add(1)
			e.opts.Logger.Error("engine: snapshot", "err", err)
		}
	}
}

// expiryQueue orders open reservations by deadline. A reservation leaves
// it when it is due (popDue) or settled (remove), so the queue holds no more
// than the open reservations.
type expiryQueue struct {
	mu sync.Mutex
	h  expiryHeap
}

type due struct {
	at int64
	id string
}

// expiryHeap is a heap of deadlines with an index of where each id is.
type expiryHeap struct {
	d   []due
	pos map[string]int
}

func (h *expiryHeap) Len() int           { return len(h.d) }
func (h *expiryHeap) Less(i, j int) bool { return h.d[i].at < h.d[j].at }
func (h *expiryHeap) Swap(i, j int) {
	h.d[i], h.d[j] = h.d[j], h.d[i]
	h.pos[h.d[i].id], h.pos[h.d[j].id] = i, j
}
func (h *expiryHeap) Push(x any) {
	d := x.(due)
	if h.pos == nil {
		h.pos = map[string]int{}
	}
	h.pos[d.id] = len(h.d)
	h.d = append(h.d, d)
}
func (h *expiryHeap) Pop() any {
	x := h.d[len(h.d)-1]
	h.d[len(h.d)-1] = due{}
	h.d = h.d[:len(h.d)-1]
	delete(h.pos, x.id)
	return x
}

// push queues reservation id for expiry at at. An id queued already is
// moved to at: only its newest reservation can be open (an older one was
// settled and forgotten before the id could be used again).
func (q *expiryQueue) push(id string, at int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i, ok := q.h.pos[id]; ok {
		q.h.d[i].at = at
		heap.Fix(&q.h, i)
		return
	}
	heap.Push(&q.h, due{at, id})
}

// requeue puts back d, taken by popDue and not expired yet, unless its id is
// queued again meanwhile: that entry is a newer reservation of the id (d's
// was settled and forgotten since; another ExpireDue can run beside this
// one), whose deadline d must not replace.
func (q *expiryQueue) requeue(d due) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.h.pos[d.id]; !ok {
		heap.Push(&q.h, d)
	}
}

// remove drops reservation id, due at at, once it is settled.
func (q *expiryQueue) remove(id string, at int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i, ok := q.h.pos[id]; ok && q.h.d[i].at == at {
		heap.Remove(&q.h, i)
	}
}

func (q *expiryQueue) popDue(now int64) []due {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []due
	for len(q.h.d) > 0 && q.h.d[0].at <= now {
		out = append(out, heap.Pop(&q.h).(due))
	}
	return out
}
