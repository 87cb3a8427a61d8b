package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Lease is one hold of a lock, returned by Lock and TryLock. Re-entrant Lock
// calls of the same owner return further Leases on the same holding; the
// lock is released (or handed off) when the last of them is unlocked.
type Lease struct {
	h        *holding
	unlocked atomic.Bool
}

// holding is one possession of a lock by one goroutine (or owner) of this
// process: the first holding of a claim, or one handed off to after it.
type holding struct {
	cl     *claim
	owner  string
	fence  int64
	count  int // leases not yet unlocked; guarded by c.mu
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// claim is this process's possession of a lock in the backend under one
// token, from the acquisition to the release. Holdings follow one another on
// a claim (local hand-offs) without a backend call; the claim's watchdog
// keeps it renewed across them.
type claim struct {
	c     *Client
	k     *key
	token string
	base  int64 // the backend's fence counter at the acquisition

	// Guarded by c.mu.
	handoffs int      // hand-offs so far: the number of the newest holding
	holder   *holding // the current holding; nil while handed to a waiter
	lost     bool     // known lost: a renewal found another holder, or validity ran out

	rmu sync.Mutex // serialises renewals by the watchdog and by hand-offs

	// validUntil is the end of the known validity on the monotonic clock,
	// in nanoseconds since the Client's epoch: the send time of the
	// acquisition or of the last successful renewal, plus the validity the
	// backend granted, minus the drift margin. It is read without locks by
	// every check of a holding's context.
	validUntil atomic.Int64

	wmu      sync.Mutex // guards the watchdog fields below
	timer    *time.Timer
	stopped  bool
	renewing sync.WaitGroup
}

// leaseCtx is a holding's context. Besides being cancelled by the
// watchdog, every check of it (Err, Done, Value, and so context.Cause)
// first compares the clock with the end of the known validity and cancels
// it with ErrLockLost once that has passed, so a holder that resumes after
// a pause longer than the TTL finds its context cancelled at its first
// check, before any timer of the process has had a chance to run.
type leaseCtx struct {
	context.Context
	h *holding
}

func (c *leaseCtx) Done() <-chan struct{} { c.h.expire(); return c.Context.Done() }
func (c *leaseCtx) Err() error            { c.h.expire(); return c.Context.Err() }
func (c *leaseCtx) Value(key any) any     { c.h.expire(); return c.Context.Value(key) }

// expire cancels the holding with ErrLockLost when its claim's known
// validity has ended. It takes no lock of the Client, so it is safe under
// c.mu; the watchdog marks the claim lost at its next run.
func (h *holding) expire() {
	if h.cl.remaining() <= 0 {
		h.cancel(ErrLockLost)
	}
}

// Name returns the name of the lock.
func (l *Lease) Name() string { return l.h.cl.k.name }

// Fence returns the fencing token of the holding: it is larger than the
// token of every earlier holding of this lock name, in this process or any
// other, so a storage that remembers the largest token it has seen can
// refuse writes of a holder that lost the lock without knowing it. It is
// the backend's fencing counter at the acquisition shifted left by
// HandoffBits, plus the number of local hand-offs since that acquisition;
// compare tokens as whole numbers, never their parts.
func (l *Lease) Fence() int64 { return l.h.fence }

// Context returns a context that carries the values of the context given to
// Lock and is cancelled the moment the lock is known lost (cause
// ErrLockLost): when a renewal finds another holder, or at the end of the
// known validity (the send time of the acquisition or of the last
// successful renewal, plus TTL, minus the drift margin) if no renewal
// extended it. Every call of its Err, Done or Value methods (and so
// context.Cause) checks the clock first, so a holder resumed after a pause
// longer than the validity sees it cancelled at its first check. It is also
// cancelled when the lease is unlocked (cause ErrUnlocked), or when the
// Client is closed (cause ErrClosed). Use context.Cause to tell them apart.
// It is not cancelled by the context given to Lock.
//
// A context that is not cancelled says the lock was valid when it was
// checked, not when a write reaches storage: see Do and the package
// documentation on what fencing must still cover.
func (l *Lease) Context() context.Context { return l.h.ctx }

// Validity returns for how much longer the lock is known held: the end of
// the known validity minus now, or 0 once the lease's context is cancelled
// (lost, unlocked, closed). The watchdog extends it with every renewal, so
// while renewals succeed it stays between TTL − RenewInterval and TTL, less
// the drift margin.
func (l *Lease) Validity() time.Duration {
	if l.h.ctx.Err() != nil {
		return 0
	}
	return max(0, l.h.cl.remaining())
}

// Do runs fn with the lease's fencing token if the lock is known held for
// at least need more, and otherwise returns an error matching
// ErrValidityShort (or the cause of the lease's context, ErrLockLost,
// ErrUnlocked or ErrClosed) without calling fn. fn's context ends at the
// end of the validity known when Do was called (with cause ErrLockLost),
// when the lease's context is cancelled (with its cause), or when ctx
// ends, whichever is first; pass it to the write so the write is abandoned rather than sent
// late. Choose need to cover the write's round trip; it must not exceed
// TTL − RenewInterval, the least validity a healthy lease has left.
//
// Do narrows the window in which a stale holder writes to the time between
// its check and the write reaching storage; the fencing token passed to fn
// is what closes it.
func (l *Lease) Do(ctx context.Context, need time.Duration, fn func(ctx context.Context, fence int64) error) error {
	name := l.Name()
	if l.unlocked.Load() {
		return fmt.Errorf("lock: do under %q: %w", name, ErrNotHeld)
	}
	left := l.Validity()
	if cause := context.Cause(l.h.ctx); cause != nil {
		return fmt.Errorf("lock: do under %q: %w", name, cause)
	}
	if left < need {
		return fmt.Errorf("lock: do under %q: %w: %v left, %v needed", name, ErrValidityShort, left, need)
	}
	lctx, lcancel := context.WithCancelCause(ctx)
	defer lcancel(nil)
	stop := context.AfterFunc(l.h.ctx, func() { lcancel(context.Cause(l.h.ctx)) })
	defer stop()
	wctx, cancel := context.WithDeadlineCause(lctx, time.Now().Add(left), ErrLockLost)
	defer cancel()
	return fn(wctx, l.h.fence)
}

// Unlock ends the lease. When it is the last lease of its holding, the lock
// is handed to a waiter of this process, or released in the backend. A
// hand-off needs no backend call while the lock is known valid for at least
// a third of its TTL; with less left it renews the lock first, and when the
// lock is lost (or cannot be renewed) the waiter contends at the backend
// instead. ctx bounds the backend call; when ctx is already done, Unlock
// still releases, bounded by one second. Unlocking a lease twice returns
// ErrNotHeld; a lease whose lock was lost returns ErrLockLost.
func (l *Lease) Unlock(ctx context.Context) error {
	h := l.h
	cl := h.cl
	c := cl.c
	k := cl.k
	if !l.unlocked.CompareAndSwap(false, true) {
		return fmt.Errorf("lock: unlock %q: %w", k.name, ErrNotHeld)
	}
	c.mu.Lock()
	h.count--
	if h.count > 0 {
		c.mu.Unlock()
		return nil
	}
	k.held = nil
	cl.holder = nil
	var next *waiter
	if len(k.queue) > 0 && cl.handoffs < c.cfg.MaxHandoffs && !cl.lost && !c.closed {
		next = k.queue[0]
		k.queue = k.queue[1:]
		cl.handoffs++
	}
	c.mu.Unlock()

	cause := context.Cause(h.ctx)
	h.cancel(ErrUnlocked)
	if ctx.Err() != nil {
		// A lock left behind blocks everyone for a TTL: release it even
		// when the caller's context is already done (a deferred Unlock
		// with a request context), bounded by a second.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
	}

	if next != nil {
		err := cl.ready()
		if err == nil {
			next.turn <- turn{claim: cl}
			return nil
		}
		// The waiter becomes a contender at the backend. Free the lock
		// first, in case the backend still holds it for this claim, so that
		// the contender need not wait for the TTL.
		cl.stopWatchdog()
		c.mu.Lock()
		k.drop(cl)
		c.mu.Unlock()
		c.abandon(ctx, k.name, cl.token)
		next.turn <- turn{}
		if errors.Is(err, ErrLockLost) {
			return fmt.Errorf("lock: unlock %q: %w", k.name, ErrLockLost)
		}
		return fmt.Errorf("lock: hand off %q: renewal before the hand-off failed, released the lock instead: %w", k.name, err)
	}

	cl.stopWatchdog()
	contended, err := c.backend.Release(ctx, k.name, cl.token)
	c.mu.Lock()
	k.drop(cl)
	c.next(k, contended && err == nil && c.cfg.MaxHandoffs > 0 && cl.handoffs >= c.cfg.MaxHandoffs)
	c.mu.Unlock()
	switch {
	case cause == ErrClosed:
		return nil
	case cause == ErrLockLost || errors.Is(err, ErrNotHeld):
		return fmt.Errorf("lock: unlock %q: %w", k.name, ErrLockLost)
	case err != nil:
		return fmt.Errorf("lock: release %q: %w (it expires after its TTL)", k.name, err)
	}
	return nil
}

// startWatchdog records until when the claim is known valid and schedules
// the first renewal. Renewals run on timer goroutines (time.AfterFunc), one
// at a time: each schedules the next.
func (cl *claim) startWatchdog() {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	if cl.stopped {
		return
	}
	cl.timer = time.AfterFunc(min(cl.c.cfg.renewInterval(), cl.remaining()), cl.tick)
}

// stopWatchdog cancels the next renewal and waits for one in progress.
func (cl *claim) stopWatchdog() {
	cl.wmu.Lock()
	cl.stopped = true
	if cl.timer != nil {
		cl.timer.Stop()
	}
	cl.wmu.Unlock()
	cl.renewing.Wait()
}

// schedule sets the next renewal to after d, or to the end of the known
// validity if that comes first.
func (cl *claim) schedule(d time.Duration) {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	if !cl.stopped && cl.timer != nil {
		cl.timer.Reset(max(0, min(d, cl.remaining())))
	}
}

// remaining returns for how long the claim is still known valid.
func (cl *claim) remaining() time.Duration {
	return time.Duration(cl.validUntil.Load()) - cl.c.now()
}

// validFrom records that the backend granted validity counted from start.
func (cl *claim) validFrom(start, validity time.Duration) {
	cl.validUntil.Store(int64(start + validity - cl.c.cfg.driftMargin()))
}

// tick is the watchdog: it renews the claim and schedules the next renewal,
// sooner after a failure; once the claim is known lost it stops.
func (cl *claim) tick() {
	cl.wmu.Lock()
	if cl.stopped {
		cl.wmu.Unlock()
		return
	}
	cl.renewing.Add(1)
	cl.wmu.Unlock()
	defer cl.renewing.Done()

	c := cl.c
	interval := c.cfg.renewInterval()
	switch err := cl.renew(); {
	case errors.Is(err, ErrLockLost):
		return
	case err != nil:
		c.log.Warn("lock: renewal failed; retrying until the lock expires", "name", cl.k.name, "error", err)
		interval /= 4
	}
	cl.schedule(interval)
}

// ready makes sure the claim may be handed to a waiter: not known lost and
// known valid for at least a third of the TTL, renewing it first when less
// is left. It returns ErrLockLost when the claim is lost, or the backend's
// error when the renewal failed.
func (cl *claim) ready() error {
	c := cl.c
	c.mu.Lock()
	lost := cl.lost
	c.mu.Unlock()
	if lost {
		return ErrLockLost
	}
	if cl.remaining() >= c.cfg.handoffReserve() {
		return nil
	}
	if err := cl.renew(); err != nil {
		return err
	}
	cl.schedule(c.cfg.renewInterval())
	return nil
}

// renew renews the claim in the backend and records its new validity,
// counted from when the renewal was sent minus the drift margin. It returns
// ErrLockLost, and cancels the current holding, when the backend says that
// another token holds the lock or the validity ran out first; another error
// when the backend call failed.
func (cl *claim) renew() error {
	cl.rmu.Lock()
	defer cl.rmu.Unlock()
	c := cl.c
	c.mu.Lock()
	lost := cl.lost
	c.mu.Unlock()
	if lost {
		return ErrLockLost
	}
	start := c.now()
	left := cl.remaining()
	if left <= 0 {
		c.log.Warn("lock: lock expired before it could be renewed", "name", cl.k.name, "fence", cl.base)
		cl.lose()
		return ErrLockLost
	}
	ctx, cancel := context.WithTimeout(context.Background(), left)
	validity, err := c.backend.Renew(ctx, cl.k.name, cl.token, c.cfg.TTL)
	cancel()
	switch {
	case err == nil:
		cl.validFrom(start, validity)
		return nil
	case errors.Is(err, ErrNotHeld):
		c.log.Warn("lock: lock lost: renewal found it no longer held", "name", cl.k.name, "fence", cl.base)
		cl.lose()
		return ErrLockLost
	}
	return err
}

// lose marks the claim lost and cancels its current holding, if any; a
// holding handed the claim later sees the mark and is not given the lock.
func (cl *claim) lose() {
	c := cl.c
	c.mu.Lock()
	cl.lost = true
	h := cl.holder
	c.mu.Unlock()
	if h != nil {
		h.cancel(ErrLockLost)
	}
}
