package lock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitQueued waits until n goroutines of p are queued for a lock, seen from
// outside as: they have all called Lock, and p's single contender has sent
// its first attempts.
func waitQueued(t *testing.T, started *sync.WaitGroup) {
	t.Helper()
	started.Wait()
	time.Sleep(100 * time.Millisecond)
}

func TestSingleFlightOneContenderPerProcess(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.PollInterval = time.Minute // only release notifications wake the contender
	cfg.MaxHandoffs = 1000
	a := newProc(t, prefix, cfg)
	b := newProc(t, prefix, cfg)

	held, err := b.locks.Lock(ctx, "sf")
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	var started, done sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	for range n {
		done.Go(func() {
			started.Done()
			lease, err := a.locks.Lock(ctx, "sf")
			if err != nil {
				errs <- err
				return
			}
			errs <- lease.Unlock(ctx)
		})
	}
	waitQueued(t, &started)
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak := a.log.peak["acquire"]; peak != 1 {
		t.Errorf("concurrent acquire attempts from one process = %d, want 1", peak)
	}
	// One contender: a first attempt, one more after subscribing, one after
	// the release notification. Everyone else got the lock by hand-off.
	if got := a.log.count("acquire"); got > 3 {
		t.Errorf("acquire attempts = %d for %d goroutines, want at most 3", got, n)
	}
	if got := a.log.count("handoff"); got != n-1 {
		t.Errorf("hand-offs = %d, want %d: %v", got, n-1, a.log.sequence())
	}
	if got := a.log.count("release"); got != 1 {
		t.Errorf("releases = %d, want 1", got)
	}
}

func TestHandoffFairnessBound(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.MaxHandoffs = 3
	a := newProc(t, prefix, cfg)
	b := newProc(t, prefix, cfg)

	first, err := a.locks.Lock(ctx, "fair")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string // holders, appended inside the critical section
	)
	const n = 12
	var started, done sync.WaitGroup
	started.Add(n + 1)
	errs := make(chan error, n+1)
	hold := func(p *proc, who string) {
		started.Done()
		lease, err := p.locks.Lock(ctx, "fair")
		if err != nil {
			errs <- err
			return
		}
		mu.Lock()
		order = append(order, who)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		errs <- lease.Unlock(ctx)
	}
	for range n {
		done.Go(func() { hold(a, "a") })
	}
	done.Go(func() { hold(b, "b") })
	waitQueued(t, &started)
	if err := first.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Between two acquisitions from the backend, process a hands the lock
	// on locally at most MaxHandoffs times.
	run := 0
	for _, k := range a.log.sequence() {
		switch k {
		case "acquire":
			run = 0
		case "handoff":
			run++
			if run > cfg.MaxHandoffs {
				t.Fatalf("%d hand-offs in a row, bound is %d: %v", run, cfg.MaxHandoffs, a.log.sequence())
			}
		}
	}
	if a.log.count("handoff") == 0 {
		t.Fatal("no hand-offs happened")
	}
	// The other process was not starved: it got the lock before process a's
	// queue ran dry.
	if order[len(order)-1] == "b" {
		t.Fatalf("process b got the lock only after every local waiter of a: %v", order)
	}
}

// TestWaitersGivingUp has waiters whose deadlines expire while the lock is
// handed around, so turns reach waiters that are leaving: the lock must
// stay exclusive and usable afterwards.
func TestWaitersGivingUp(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.MaxHandoffs = 4
	procs := []*proc{newProc(t, prefix, cfg), newProc(t, prefix, cfg)}
	var (
		holders   atomic.Int32
		overlaps  atomic.Int32
		acquired  atomic.Int32
		gaveUp    atomic.Int32
		wg        sync.WaitGroup
		unexpects = make(chan error, 64)
	)
	for g := range 48 {
		wg.Go(func() {
			p := procs[g%2]
			for i := range 10 {
				wctx, cancel := context.WithTimeout(ctx, time.Duration(1+(g+i)%4)*time.Millisecond)
				lease, err := p.locks.Lock(wctx, "flaky")
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					gaveUp.Add(1)
					continue
				}
				if err != nil {
					unexpects <- err
					return
				}
				acquired.Add(1)
				if holders.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(200 * time.Microsecond)
				holders.Add(-1)
				if err := lease.Unlock(ctx); err != nil {
					unexpects <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(unexpects)
	for err := range unexpects {
		t.Fatal(err)
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d overlapping holders", n)
	}
	if acquired.Load() == 0 || gaveUp.Load() == 0 {
		t.Fatalf("acquired %d, gave up %d: the test did not exercise both", acquired.Load(), gaveUp.Load())
	}
	for _, p := range procs {
		l, err := p.locks.TryLock(ctx, "flaky")
		if err != nil {
			t.Fatalf("lock unusable after waiters gave up: %v", err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
