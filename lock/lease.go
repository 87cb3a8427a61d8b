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

// holding is one possession of a lock by this process under one token.
type holding struct {
	c      *Client
	k      *key
	token  string
	owner  string
	fence  int64
	count  int // leases not yet unlocked; guarded by c.mu
	ctx    context.Context
	cancel context.CancelCauseFunc

	wmu        sync.Mutex // guards the watchdog fields below
	timer      *time.Timer
	validUntil time.Time
	stopped    bool
	renewing   sync.WaitGroup
}

// Name returns the name of the lock.
func (l *Lease) Name() string { return l.h.k.name }

// Fence returns the fencing token of the holding: it is larger than the
// token of every earlier holding of this lock name, so a storage that
// remembers the largest token it has seen can refuse writes of a holder that
// lost the lock without knowing it.
func (l *Lease) Fence() int64 { return l.h.fence }

// Context returns a context that carries the values of the context given to
// Lock and is cancelled the moment the lock is known lost (cause
// ErrLockLost), when the lease is unlocked (cause ErrUnlocked), or when the
// Client is closed (cause ErrClosed). Use context.Cause to tell them apart.
// It is not cancelled by the context given to Lock.
func (l *Lease) Context() context.Context { return l.h.ctx }

// Unlock ends the lease. When it is the last lease of its holding, the lock
// is handed to a waiter of this process, or released in the backend. ctx
// bounds the backend call; when ctx is already done, Unlock still releases,
// bounded by one second. Unlocking a lease twice returns ErrNotHeld; a
// lease whose lock was lost returns ErrLockLost.
func (l *Lease) Unlock(ctx context.Context) error {
	h := l.h
	c := h.c
	k := h.k
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
	var next *waiter
	if len(k.queue) > 0 && k.handoffs < c.cfg.MaxHandoffs && h.ctx.Err() == nil && !c.closed {
		next = k.queue[0]
		k.queue = k.queue[1:]
		k.handoffs++
	}
	c.mu.Unlock()

	h.stopWatchdog()
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
		token := c.newToken()
		start := time.Now()
		g, err := c.backend.Handoff(ctx, k.name, h.token, token, c.cfg.TTL)
		if err == nil {
			next.turn <- turn{grant: &g, token: token, start: start}
			return nil
		}
		if errors.Is(err, ErrNotHeld) {
			next.turn <- turn{}
			return fmt.Errorf("lock: unlock %q: %w", k.name, ErrLockLost)
		}
		// The hand-off may or may not have happened: free the lock under
		// either token so the next contender need not wait for the TTL.
		c.abandon(ctx, k.name, token)
		c.abandon(ctx, k.name, h.token)
		next.turn <- turn{}
		return fmt.Errorf("lock: hand off %q: %w", k.name, err)
	}

	contended, err := c.backend.Release(ctx, k.name, h.token)
	c.mu.Lock()
	c.next(k, contended && err == nil && c.cfg.MaxHandoffs > 0 && k.handoffs >= c.cfg.MaxHandoffs)
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

// startWatchdog schedules the first renewal. Renewals run on timer
// goroutines (time.AfterFunc), one at a time: each schedules the next.
func (h *holding) startWatchdog(validUntil time.Time) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.validUntil = validUntil
	h.timer = time.AfterFunc(min(h.c.cfg.renewInterval(), time.Until(validUntil)), h.renew)
}

// stopWatchdog cancels the next renewal and waits for one in progress.
func (h *holding) stopWatchdog() {
	h.wmu.Lock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.wmu.Unlock()
	h.renewing.Wait()
}

// renew renews the lock and schedules the next renewal, or cancels the
// holding's context once the lock is known lost: the backend says that
// another token holds it, or it expired before a renewal succeeded.
func (h *holding) renew() {
	h.wmu.Lock()
	if h.stopped {
		h.wmu.Unlock()
		return
	}
	h.renewing.Add(1)
	validUntil := h.validUntil
	h.wmu.Unlock()
	defer h.renewing.Done()

	c := h.c
	interval := c.cfg.renewInterval()
	now := time.Now()
	if !now.Before(validUntil) {
		c.log.Warn("lock: lock expired before it could be renewed", "name", h.k.name, "fence", h.fence)
		h.cancel(ErrLockLost)
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), validUntil)
	validity, err := c.backend.Renew(ctx, h.k.name, h.token, c.cfg.TTL)
	cancel()
	var next time.Duration
	switch {
	case err == nil:
		validUntil = now.Add(validity)
		next = min(interval, time.Until(validUntil))
	case errors.Is(err, ErrNotHeld):
		c.log.Warn("lock: lock lost: renewal found it no longer held", "name", h.k.name, "fence", h.fence)
		h.cancel(ErrLockLost)
		return
	default:
		c.log.Warn("lock: renewal failed; retrying until the lock expires", "name", h.k.name, "error", err)
		next = max(0, min(interval/4, time.Until(validUntil)))
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.validUntil = validUntil
	if !h.stopped {
		h.timer.Reset(next)
	}
}
