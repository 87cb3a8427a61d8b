package lock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gtx-io/gtx/lock"
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
	var (
		started, done sync.WaitGroup
		mu            sync.Mutex
		fences        []int64 // in the order of the holdings
	)
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
			mu.Lock()
			fences = append(fences, lease.Fence())
			mu.Unlock()
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
	// the release notification. Everyone else got the lock by hand-off,
	// which sends nothing to Redis while the lock is valid for long.
	if got := a.log.count("acquire"); got > 3 {
		t.Errorf("acquire attempts = %d for %d goroutines, want at most 3", got, n)
	}
	if got := a.log.count("release"); got != 1 {
		t.Errorf("releases = %d, want 1: %v", got, a.log.sequence())
	}
	// One acquisition (hand-off number 0), then hand-offs 1 to n-1, in
	// order: the fences grow by one per holding.
	base := fences[0] >> lock.HandoffBits
	for i, f := range fences {
		if want := base<<lock.HandoffBits | int64(i); f != want {
			t.Fatalf("fence of holding %d = %#x, want %#x: %#x", i, f, want, fences)
		}
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
		mu     sync.Mutex
		order  []string // holders, appended inside the critical section
		fences []int64  // their fences
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
		fences = append(fences, lease.Fence())
		mu.Unlock()
		if ok, err := fencedWrite(ctx, p.rdb, prefix, lease.Fence(), who); err != nil || !ok {
			errs <- fmt.Errorf("write of the holder with fence %#x: accepted=%v err=%v", lease.Fence(), ok, err)
			_ = lease.Unlock(ctx)
			return
		}
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

	// Fences grow with every holding, across processes and hand-offs, and
	// the store accepted every holder's write. Between two acquisitions
	// from the backend, process a hands the lock on locally at most
	// MaxHandoffs times: the hand-off number (the low bits) stays within
	// the bound and starts again at 0 with a larger counter.
	handoffs := 0
	for i, f := range fences {
		h := f & (1<<lock.HandoffBits - 1)
		if h > int64(cfg.MaxHandoffs) {
			t.Fatalf("holding %d has hand-off number %d, bound is %d: %v %#x", i, h, cfg.MaxHandoffs, order, fences)
		}
		if i == 0 {
			continue
		}
		if f <= fences[i-1] {
			t.Fatalf("fence %#x of holding %d is not above %#x: %v %#x", f, i, fences[i-1], order, fences)
		}
		if h > 0 {
			handoffs++
			if f != fences[i-1]+1 {
				t.Fatalf("hand-off %d has fence %#x, want the previous holding's plus one (%#x)", i, f, fences[i-1]+1)
			}
		}
	}
	if handoffs == 0 {
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

// errRenewalsPaused is what pausedRenewals answers while paused.
var errRenewalsPaused = errors.New("renewals paused by the test")

// pausedRenewals is a real backend whose renewals the test can make fail,
// as if the backend were unreachable for them.
type pausedRenewals struct {
	lock.Backend
	paused atomic.Bool
}

func (p *pausedRenewals) Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error) {
	if p.paused.Load() {
		return 0, errRenewalsPaused
	}
	return p.Backend.Renew(ctx, name, token, ttl)
}

// pausableClient returns a Client of p's backend whose renewals can be
// paused.
func pausableClient(t *testing.T, p *proc, cfg lock.Config) (*lock.Client, *pausedRenewals) {
	t.Helper()
	pb := &pausedRenewals{Backend: p.backend}
	c, err := lock.New(pb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, pb
}

// lockAsync starts a Lock of name by c and returns where its lease arrives.
func lockAsync(t *testing.T, c *lock.Client, name string) <-chan *lock.Lease {
	t.Helper()
	got := make(chan *lock.Lease, 1)
	go func() {
		l, err := c.Lock(context.Background(), name)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	return got
}

// TestHandoffOfLostLockIsFenced takes the lock away from a process behind
// its back (the key is deleted, as by an operator or a failover, and
// another process acquires it) while a local waiter is queued. The hand-off
// trusts the lease's known validity, so the waiter gets the lock without a
// Redis command, as a holder keeps using it until its next renewal: its
// fence must be refused by a token-checking store, and its context must be
// cancelled with ErrLockLost as soon as a renewal finds the lock lost.
func TestHandoffOfLostLockIsFenced(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 6 * time.Second
	a := newProc(t, prefix, cfg)
	b := newProc(t, prefix, cfg)
	locks, pb := pausableClient(t, a, cfg)
	pb.paused.Store(true) // no renewal finds the loss before the hand-off

	first, err := locks.Lock(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	got := lockAsync(t, locks, "lost")
	time.Sleep(100 * time.Millisecond) // let the waiter queue
	if err := a.rdb.Del(ctx, prefix+"{lost}").Err(); err != nil {
		t.Fatal(err)
	}
	other, err := b.locks.TryLock(ctx, "lost")
	if err != nil {
		t.Fatalf("TryLock after the key was deleted: %v", err)
	}
	if ok, err := fencedWrite(ctx, b.rdb, prefix, other.Fence(), "current"); err != nil || !ok {
		t.Fatalf("write of the current holder: accepted=%v err=%v", ok, err)
	}

	before := a.log.total()
	if err := first.Unlock(ctx); err != nil {
		t.Fatalf("Unlock with a local waiter: %v", err)
	}
	stale := <-got
	if stale == nil {
		t.FailNow()
	}
	if n := a.log.total() - before; n != 0 {
		t.Fatalf("hand-off of a lock valid for long sent %d Redis commands, want 0", n)
	}
	if stale.Fence() != first.Fence()+1 {
		t.Fatalf("handed-off fence %#x, want %#x", stale.Fence(), first.Fence()+1)
	}
	if stale.Fence() >= other.Fence() {
		t.Fatalf("stale fence %#x not below the current holder's %#x", stale.Fence(), other.Fence())
	}
	if ok, err := fencedWrite(ctx, a.rdb, prefix, stale.Fence(), "stale"); err != nil || ok {
		t.Fatalf("write with the stale hand-off's fence: accepted=%v err=%v, want refused", ok, err)
	}

	pb.paused.Store(false)
	select {
	case <-stale.Context().Done():
	case <-time.After(2 * cfg.TTL):
		t.Fatal("context of the stale holding not cancelled after its renewal time")
	}
	if cause := context.Cause(stale.Context()); !errors.Is(cause, lock.ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", cause)
	}
	if err := stale.Unlock(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Unlock of the stale holding = %v, want ErrLockLost", err)
	}
	if err := other.Context().Err(); err != nil {
		t.Fatalf("current holder's context: %v", context.Cause(other.Context()))
	}
	if v, err := b.rdb.Get(ctx, prefix+"store:value").Result(); err != nil || v != "current" {
		t.Fatalf("store value = %q (%v), want the current holder's", v, err)
	}
	if err := other.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffNearExpiryRenews hands the lock off when less than a third of
// its TTL is left and the watchdog has not renewed it yet (its interval is
// set just below the TTL): the hand-off renews it first, with one
// compare-and-pexpire, and the waiter holds it past the first validity.
func TestHandoffNearExpiryRenews(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 3 * time.Second
	cfg.RenewInterval = cfg.TTL - 100*time.Millisecond
	a := newProc(t, prefix, cfg)
	b := newProc(t, prefix, cfg)

	acquired := time.Now()
	first, err := a.locks.Lock(ctx, "near")
	if err != nil {
		t.Fatal(err)
	}
	got := lockAsync(t, a.locks, "near")
	// Past two thirds of the TTL, before the watchdog's renewal.
	time.Sleep(time.Until(acquired.Add(cfg.TTL * 3 / 4)))
	if n := a.log.count("renew"); n != 0 {
		t.Fatalf("the watchdog renewed %d times before the hand-off; the machine was too slow for this test", n)
	}
	if err := first.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	next := <-got
	if next == nil {
		t.FailNow()
	}
	if n := a.log.count("renew"); n != 1 {
		t.Fatalf("renewals by the hand-off = %d, want 1", n)
	}
	if next.Fence() != first.Fence()+1 {
		t.Fatalf("handed-off fence %#x, want %#x", next.Fence(), first.Fence()+1)
	}
	// Past the validity the lock had before the hand-off.
	time.Sleep(time.Until(acquired.Add(cfg.TTL + 200*time.Millisecond)))
	if err := next.Context().Err(); err != nil {
		t.Fatalf("handed-off lease ended: %v", context.Cause(next.Context()))
	}
	if _, err := b.locks.TryLock(ctx, "near"); !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("TryLock by another process after the first validity = %v, want ErrNotAcquired", err)
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffRefusedWhenRenewalFails hands the lock off near its expiry
// while renewals fail: the waiter must not get a lock about to expire; it
// contends at the backend instead and acquires the released lock afresh,
// with a larger fencing counter.
func TestHandoffRefusedWhenRenewalFails(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 3 * time.Second
	a := newProc(t, prefix, cfg)
	locks, pb := pausableClient(t, a, cfg)
	pb.paused.Store(true)

	acquired := time.Now()
	first, err := locks.Lock(ctx, "refused")
	if err != nil {
		t.Fatal(err)
	}
	got := lockAsync(t, locks, "refused")
	time.Sleep(time.Until(acquired.Add(cfg.TTL * 3 / 4)))
	if err := first.Context().Err(); err != nil {
		t.Fatalf("lease ended before the hand-off; the machine was too slow for this test: %v", context.Cause(first.Context()))
	}
	if err := first.Unlock(ctx); !errors.Is(err, errRenewalsPaused) {
		t.Fatalf("Unlock with a failing renewal = %v, want the renewal's error", err)
	}
	pb.paused.Store(false)
	next := <-got
	if next == nil {
		t.FailNow()
	}
	if next.Fence()>>lock.HandoffBits <= first.Fence()>>lock.HandoffBits {
		t.Fatalf("waiter's fence %#x is not from a new acquisition after %#x", next.Fence(), first.Fence())
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffOfExpiredLock lets the lease expire (renewals fail for a whole
// TTL) while a waiter is queued: the holder's context is cancelled with
// ErrLockLost, Unlock reports the loss, and the waiter gets the lock only
// from the backend, with a larger fencing counter.
func TestHandoffOfExpiredLock(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 500 * time.Millisecond
	a := newProc(t, prefix, cfg)
	locks, pb := pausableClient(t, a, cfg)
	pb.paused.Store(true)

	first, err := locks.Lock(ctx, "expired")
	if err != nil {
		t.Fatal(err)
	}
	got := lockAsync(t, locks, "expired")
	<-first.Context().Done()
	if cause := context.Cause(first.Context()); !errors.Is(cause, lock.ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", cause)
	}
	pb.paused.Store(false)
	if err := first.Unlock(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Unlock of an expired lease = %v, want ErrLockLost", err)
	}
	next := <-got
	if next == nil {
		t.FailNow()
	}
	if next.Fence()>>lock.HandoffBits <= first.Fence()>>lock.HandoffBits {
		t.Fatalf("waiter's fence %#x is not from a new acquisition after %#x", next.Fence(), first.Fence())
	}
	if err := next.Context().Err(); err != nil {
		t.Fatalf("waiter's lease: %v", context.Cause(next.Context()))
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}
