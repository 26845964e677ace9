package syncer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Environment of the crash child: the test binary re-executed by
// TestSyncCrashKill9 runs an engine, a syncer and load until it is killed.
const (
	envChildDir  = "FLASHSALE_SYNC_CHILD_DIR"
	envChildDSN  = "FLASHSALE_SYNC_CHILD_DSN"
	envChildSeed = "FLASHSALE_SYNC_CHILD_SEED"
)

// childLifetimeMax bounds a crash child that nobody kills.
const childLifetimeMax = 30 * time.Second

func TestMain(m *testing.M) {
	// The driver logs every cut connection to stderr; the fault tests cut many.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	if dir := os.Getenv(envChildDir); dir != "" {
		os.Exit(crashChild(dir, os.Getenv(envChildDSN), os.Getenv(envChildSeed)))
	}
	os.Exit(m.Run())
}

// crashChild prints "READY" once the engine runs, then one ACK line per
// acknowledged change (written before anything else learns of it), until it
// is killed or childLifetimeMax passes.
func crashChild(dir, dsn, seedText string) int {
	seed, _ := strconv.ParseUint(seedText, 10, 64)
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 3 }
	eng := openEngine(childTB{}, dir)
	db, err := OpenDB(dsn)
	if err != nil {
		return fail(err)
	}
	// Small batches: the syncer is committing most of the time, so a kill
	// lands inside a transaction often.
	Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced, BatchRecordsMax: 1 + int(seed%64)})
	var mu sync.Mutex // one unbuffered write per line: a kill loses no printed ack
	emit := func(a ack) {
		mu.Lock()
		fmt.Fprintln(os.Stdout, a.String())
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), childLifetimeMax)
	defer cancel()
	acks, err := setupCatalog(ctx, eng)
	if err != nil {
		return fail(err)
	}
	for _, a := range acks {
		emit(a)
	}
	fmt.Fprintln(os.Stdout, "READY")
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := newLoader(eng, seed*7+uint64(w), fmt.Sprintf("s%d-w%d", seed, w))
			for ctx.Err() == nil {
				a, ok, err := l.step(ctx)
				if err != nil {
					return
				}
				if ok {
					emit(a)
				}
			}
		}()
	}
	wg.Wait()
	return 0
}

// childTB lets the child use the test helpers that take a testing.TB.
type childTB struct{ testing.TB }

func (childTB) Helper()                   {}
func (childTB) Fatal(args ...any)         { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }
func (childTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(3) }

// crashRounds is how many times the child is SIGKILLed.
const crashRounds = 6

func TestSyncCrashKill9(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	dsn := testDatabase(t)
	db := openTestDB(t, dsn)
	dir := t.TempDir()
	var acks []ack
	for round := range crashRounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChildDir+"="+dir, envChildDSN+"="+dsn,
			envChildSeed+"="+strconv.FormatUint(seed+uint64(round), 10))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		lines := make(chan []ack, 1)
		go func() {
			var got []ack
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == "READY" {
					close(ready)
					continue
				}
				if a, ok := parseAck(sc.Text()); ok {
					got = append(got, a)
				}
			}
			lines <- got
		}()
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child not ready", round)
		}
		wait := time.Duration(100+rng.IntN(900)) * time.Millisecond
		time.Sleep(wait)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		got := <-lines
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended by itself (%v) before the kill", round, err)
		}
		cp, _ := ReadCheckpoint(context.Background(), db, CheckpointNameDefault)
		t.Logf("round %d: killed after %v, %d acks, checkpoint %d", round, wait, len(got), cp)
		acks = append(acks, got...)
	}
	cp, err := ReadCheckpoint(context.Background(), db, CheckpointNameDefault)
	if err != nil || cp == 0 {
		t.Fatalf("the killed syncers folded nothing (checkpoint %d, %v): the test proved nothing", cp, err)
	}
	// Restart: the syncer resumes from its checkpoint and catches up.
	eng := openEngine(t, dir)
	defer eng.Close()
	s := Start(Config{DB: db, Log: eng.Log(), MarkSynced: eng.MarkSynced})
	defer s.Close()
	catchUp(t, s, eng)
	rep := reconcileClean(t, db, engineState(eng))
	checkAcked(t, db, acks)
	t.Logf("after %d kills: %d acks checked, checkpoint was %d, now %d; %d SKUs clean", crashRounds, len(acks), cp, rep.Checkpoint, rep.SKUs)
}
