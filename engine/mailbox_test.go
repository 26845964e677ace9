package engine

import (
	"testing"
	"time"
)

// refillInvoker keeps the mailbox it serves busy: every message it handles
// takes 50 µs and posts another, until it has handled stopAt of them, where
// it blocks until release is closed.
type refillInvoker struct {
	m       *skuMailbox
	handled int
	stopAt  int
	release chan struct{}
}

func (v *refillInvoker) InvokeSystemMessage(any) {}

func (v *refillInvoker) InvokeUserMessage(any) {
	for t := time.Now(); time.Since(t) < 50*time.Microsecond; {
	}
	v.handled++
	if v.handled == v.stopAt {
		<-v.release
		return
	}
	if v.handled < v.stopAt {
		v.m.PostUserMessage(v.handled)
	}
}

func (v *refillInvoker) EscalateFailure(reason, _ any) { panic(reason) }

// TestMailboxLetsTheSenderGo: a sender that finds the mailbox idle runs the
// actor on its own goroutine, but not for as long as messages keep coming:
// once it has run for mailboxRunMax another goroutine takes over, and the
// sender goes back to its own call (and its deadline).
func TestMailboxLetsTheSenderGo(t *testing.T) {
	m := &skuMailbox{end: func() {}}
	v := &refillInvoker{m: m, stopAt: 3 * mailboxThroughput, release: make(chan struct{})}
	m.RegisterHandlers(v, nil)
	returned := make(chan struct{})
	go func() {
		m.PostUserMessage(0)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Error("the sender was still running the actor after 10 s, with other senders' messages")
	}
	close(v.release)
	// The mailbox drains and goes idle.
	deadline := time.Now().Add(10 * time.Second)
	for m.status.Load() != mailboxIdle || m.userN.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("mailbox not idle: status %d, %d queued", m.status.Load(), m.userN.Load())
		}
		time.Sleep(time.Millisecond)
	}
	<-returned
	if v.handled != v.stopAt {
		t.Fatalf("handled %d messages, want %d", v.handled, v.stopAt)
	}
}
