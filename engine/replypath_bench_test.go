package engine

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The engine answers callers outside the actor system through a channel
// carried in the message (takeOp.done), not protoactor's RequestFuture. These
// benchmarks measure both reply paths against one actor from 64 goroutines:
//
//	go test -run '^$' -bench BenchmarkReplyPath ./engine

type echoReq struct{ done chan struct{} }

func benchReplyPath(b *testing.B, future bool) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *echoReq:
			if m.done != nil {
				m.done <- struct{}{}
			} else {
				c.Respond(m)
			}
		}
	}))
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{}, 1)
			for next.Add(1) <= int64(b.N) {
				if future {
					if _, err := sys.Root.RequestFuture(pid, &echoReq{}, time.Minute).Result(); err != nil {
						b.Error(err)
						return
					}
				} else {
					sys.Root.Send(pid, &echoReq{done: done})
					<-done
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func BenchmarkReplyPathFuture(b *testing.B)  { benchReplyPath(b, true) }
func BenchmarkReplyPathChannel(b *testing.B) { benchReplyPath(b, false) }
