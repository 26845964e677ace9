package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// mailboxThroughput is how many messages a runner handles before it yields
// the processor (runtime.Gosched). A sender that has run the actor for
// mailboxRunMax by then hands the mailbox to a goroutine of its own and goes
// back to its call, so that a queue that keeps filling cannot keep a caller
// (past its deadline). Handing over at every yield instead cost the hot SKU
// 5-10 % (docs/benchmarks.md).
const (
	mailboxThroughput = 300
	mailboxRunMax     = 5 * time.Millisecond
)

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

// skuMailbox is the SKU actors' mailbox: protoactor's Mailbox interface,
// given to each SKU actor with actor.WithMailbox. It keeps the contract of
// protoactor's default mailbox (system messages first, suspension, one runner
// at a time, a panic escalated to the supervisor) and differs in three ways,
// each for the hot path (docs/benchmarks.md has the figures):
//
//   - The actor runs on the goroutine of the sender that finds the mailbox
//     idle (as with protoactor's synchronized dispatcher), so a message costs
//     no goroutine start; only a run longer than mailboxRunMax goes on in a
//     new goroutine.
//   - When nothing is queued, that sender hands its message to the actor
//     directly instead of queueing it and taking it out again.
//   - When the queue runs dry, while it still holds the mailbox, it calls end
//     (the SKU actor decides the takes it queued and appends their records
//     to the log in one call).
type skuMailbox struct {
	status    atomic.Int32
	userN     atomic.Int32
	sysN      atomic.Int32
	suspended atomic.Bool

	mu   sync.Mutex
	user msgQueue
	sys  msgQueue

	invoker actor.MessageInvoker
	end     func()
}

var _ actor.Mailbox = (*skuMailbox)(nil)

// newSKUMailbox returns the producer of r's mailbox; the mailbox is also
// kept in r, so that takes are posted to it without resolving the PID.
func newSKUMailbox(r *skuRef) actor.MailboxProducer {
	return func() actor.Mailbox {
		m := &skuMailbox{end: r.decide}
		r.mailbox = m
		return m
	}
}

// PostUserMessage implements actor.Mailbox.
func (m *skuMailbox) PostUserMessage(msg any) {
	if m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		if m.userN.Load() == 0 && m.sysN.Load() == 0 && !m.suspended.Load() {
			m.runAndRelease(msg) // nothing queued before it: straight to the actor
			return
		}
		m.push(&m.user, &m.userN, msg)
		m.runAndRelease(nil)
		return
	}
	m.push(&m.user, &m.userN, msg)
	m.schedule()
}

// PostSystemMessage implements actor.Mailbox.
func (m *skuMailbox) PostSystemMessage(msg any) {
	m.push(&m.sys, &m.sysN, msg)
	m.schedule()
}

// RegisterHandlers implements actor.Mailbox. The dispatcher is not used: the
// mailbox always runs on the sender's goroutine.
func (m *skuMailbox) RegisterHandlers(invoker actor.MessageInvoker, _ actor.Dispatcher) {
	m.invoker = invoker
}

// Start implements actor.Mailbox.
func (m *skuMailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *skuMailbox) UserMessageCount() int { return int(m.userN.Load()) }

func (m *skuMailbox) push(q *msgQueue, n *atomic.Int32, msg any) {
	m.mu.Lock()
	q.push(msg)
	m.mu.Unlock()
	n.Add(1)
}

func (m *skuMailbox) pop(q *msgQueue) any {
	m.mu.Lock()
	msg := q.pop()
	m.mu.Unlock()
	return msg
}

func (m *skuMailbox) schedule() {
	if m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		m.runAndRelease(nil)
	}
}

// runAndRelease runs the mailbox (first, if not nil, is a user message to
// hand over before anything queued), calls end, and lets go of it, running
// again if a message came in meanwhile and nobody else took over.
func (m *skuMailbox) runAndRelease(first any) {
	for {
		if m.run(first) {
			return // another goroutine runs it now
		}
		first = nil
		m.status.Store(mailboxIdle)
		more := m.sysN.Load() > 0 || (!m.suspended.Load() && m.userN.Load() > 0)
		if !more || !m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
			return
		}
	}
}

// run handles messages until none is left (or the mailbox is suspended), or
// until it has run for mailboxRunMax and handed the mailbox, still running,
// to a new goroutine (handedOver). A panic in the actor ends the run and goes
// to the supervisor, as in protoactor's default mailbox.
func (m *skuMailbox) run(first any) (handedOver bool) {
	var msg any
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	if first != nil {
		msg = first
		m.invoker.InvokeUserMessage(msg)
	}
	for i := 0; ; i++ {
		if i == mailboxThroughput {
			if time.Since(start) >= mailboxRunMax {
				go m.runAndRelease(nil)
				return true
			}
			i = 0
			runtime.Gosched()
		}
		if m.sysN.Load() > 0 {
			msg = m.pop(&m.sys)
			m.sysN.Add(-1)
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() || m.userN.Load() == 0 {
			msg = nil
			m.end() // inside the run: a panic in it is escalated like one in Receive
			if m.sysN.Load() == 0 && (m.suspended.Load() || m.userN.Load() == 0) {
				return false
			}
			continue
		}
		msg = m.pop(&m.user)
		m.userN.Add(-1)
		m.invoker.InvokeUserMessage(msg)
	}
}

// msgQueue is a FIFO of messages (guarded by the mailbox's mu).
type msgQueue struct {
	items []any
	head  int
}

func (q *msgQueue) push(msg any) {
	if q.head > 0 && q.head >= len(q.items)/2 {
		// Reuse the consumed front once it is half the slice.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, msg)
}

func (q *msgQueue) pop() any {
	msg := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return msg
}
