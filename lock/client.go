package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Client takes distributed locks from a Backend. One Client per process and
// backend is the intended use: calls on the same lock name from goroutines of
// one Client are coalesced, so only one of them talks to the backend at a
// time (single-flight), and Unlock hands the lock straight to a local waiter
// when there is one (bounded by Config.MaxHandoffs).
//
// A Client is safe for concurrent use. Close it to stop its watchdogs.
type Client struct {
	backend Backend
	cfg     Config
	log     *slog.Logger
	id      string
	seq     atomic.Uint64
	epoch   time.Time // the origin of now: its monotonic reading counts

	mu      sync.Mutex
	keys    map[string]*key
	closed  bool
	closing chan struct{}
}

// key is the process-local state of one lock name. busy means that a holder,
// a contender or a hand-off in this process owns the right to the lock; new
// callers then queue locally instead of going to the backend.
type key struct {
	name  string
	busy  bool
	held  *holding
	claim *claim // this process's possession in the backend, if any
	queue []*waiter
}

// drop forgets cl as k's claim. c.mu must be held.
func (k *key) drop(cl *claim) {
	if k.claim == cl {
		k.claim = nil
	}
}

// waiter is a goroutine queued locally for a lock name.
type waiter struct {
	turn chan turn
}

// turn is what a queued waiter is given: either the lock itself, handed off
// within this process on claim, or the duty to contend for it at the
// backend.
type turn struct {
	claim *claim
	// yield asks the new contender to wait for a release notification (or
	// the poll interval) first, because waiters elsewhere were just woken.
	yield bool
}

// New returns a Client that keeps locks in backend.
func New(backend Backend, cfg Config) (*Client, error) {
	if backend == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lock: generate client id: %w", err)
	}
	return &Client{
		backend: backend,
		cfg:     cfg,
		log:     log,
		id:      hex.EncodeToString(b[:]),
		epoch:   time.Now(),
		keys:    make(map[string]*key),
		closing: make(chan struct{}),
	}, nil
}

// Lock takes the lock name, waiting until it is free or ctx is done. The
// returned Lease holds the lock until Unlock; its Context is cancelled the
// moment the lock is known lost. When ctx carries an owner (WithOwner) that
// already holds name in this Client, Lock re-enters it at once.
func (c *Client) Lock(ctx context.Context, name string) (*Lease, error) {
	return c.lock(ctx, name, true)
}

// TryLock takes the lock name if it is free, and otherwise returns
// ErrNotAcquired at once. It re-enters like Lock.
func (c *Client) TryLock(ctx context.Context, name string) (*Lease, error) {
	return c.lock(ctx, name, false)
}

func (c *Client) lock(ctx context.Context, name string, wait bool) (*Lease, error) {
	if name == "" {
		return nil, ErrEmptyName
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock: lock %q: %w", name, err)
	}
	owner := OwnerFromContext(ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	k := c.keys[name]
	if k == nil {
		k = &key{name: name}
		c.keys[name] = k
	}
	if h := k.held; h != nil && owner != "" && h.owner == owner {
		if cause := context.Cause(h.ctx); cause != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("lock: re-enter %q: %w", name, cause)
		}
		h.count++
		c.mu.Unlock()
		return &Lease{h: h}, nil
	}
	if !k.busy {
		k.busy = true
		c.mu.Unlock()
		return c.contend(ctx, k, owner, wait, false)
	}
	if !wait {
		c.mu.Unlock()
		return nil, fmt.Errorf("lock: try %q: %w", name, ErrNotAcquired)
	}
	w := &waiter{turn: make(chan turn, 1)}
	k.queue = append(k.queue, w)
	c.mu.Unlock()

	select {
	case t := <-w.turn:
		return c.take(ctx, k, owner, t)
	case <-ctx.Done():
	case <-c.closing:
	}
	c.mu.Lock()
	queued := k.dequeue(w)
	c.mu.Unlock()
	if !queued {
		// A turn was given to w as it gave up: pass it on.
		c.pass(k, <-w.turn)
	}
	if ctx.Err() == nil {
		return nil, ErrClosed
	}
	return nil, fmt.Errorf("lock: lock %q: %w", name, ctx.Err())
}

// take acts on a turn given to a queued waiter. A claim that was lost on
// its way is not taken: the waiter contends at the backend instead.
func (c *Client) take(ctx context.Context, k *key, owner string, t turn) (*Lease, error) {
	if t.claim != nil {
		if l := c.receive(ctx, k, owner, t.claim); l != nil {
			return l, nil
		}
	}
	return c.contend(ctx, k, owner, true, t.yield)
}

// pass gives a turn that its waiter cannot use to the next waiter.
func (c *Client) pass(k *key, t turn) {
	if t.claim != nil {
		if l := c.receive(context.Background(), k, "", t.claim); l != nil {
			if err := l.Unlock(context.Background()); err != nil {
				c.log.Warn("lock: release of a lock handed to a waiter that gave up failed; it expires after its TTL", "name", k.name, "error", err)
			}
			return
		}
	}
	c.mu.Lock()
	c.next(k, t.yield)
	c.mu.Unlock()
}

// next makes the first queued waiter the contender, or marks k idle. c.mu
// must be held.
func (c *Client) next(k *key, yield bool) {
	if len(k.queue) == 0 {
		k.busy = false
		if k.held == nil && k.claim == nil {
			delete(c.keys, k.name)
		}
		return
	}
	w := k.queue[0]
	k.queue = k.queue[1:]
	w.turn <- turn{yield: yield}
}

func (k *key) dequeue(w *waiter) bool {
	for i, q := range k.queue {
		if q == w {
			k.queue = append(k.queue[:i], k.queue[i+1:]...)
			return true
		}
	}
	return false
}

// now is the monotonic time since the Client was made; validities are
// counted on it, so wall-clock steps do not move them.
func (c *Client) now() time.Duration { return time.Since(c.epoch) }

func (c *Client) newToken() string {
	return c.id + ":" + strconv.FormatUint(c.seq.Add(1), 36)
}

// contend acquires k at the backend for this process, waiting for release
// notifications (with a bounded poll) when wait is set.
func (c *Client) contend(ctx context.Context, k *key, owner string, wait, yield bool) (*Lease, error) {
	token := c.newToken()
	var (
		released chan struct{}
		stop     func()
		timer    *time.Timer
		delay    = c.cfg.PollInterval
	)
	defer func() {
		if stop != nil {
			stop()
		}
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if !yield {
			start := c.now()
			g, err := c.backend.Acquire(ctx, k.name, token, c.cfg.TTL)
			if err == nil && g.Acquired {
				return c.acquired(ctx, k, owner, token, g, start)
			}
			if err != nil {
				c.abandon(ctx, k.name, token)
				c.pass(k, turn{})
				if ctx.Err() != nil {
					return nil, fmt.Errorf("lock: lock %q: %w", k.name, ctx.Err())
				}
				return nil, fmt.Errorf("lock: acquire %q: %w", k.name, err)
			}
			if !wait {
				c.pass(k, turn{})
				return nil, fmt.Errorf("lock: try %q: %w", k.name, ErrNotAcquired)
			}
			delay = c.cfg.PollInterval
			if g.RetryAfter > 0 && g.RetryAfter < delay {
				delay = g.RetryAfter
			}
		}
		if released == nil {
			released = make(chan struct{}, 1)
			s, err := c.backend.Watch(ctx, k.name, token, released)
			if err != nil {
				c.log.Debug("lock: watch for releases failed; polling", "name", k.name, "error", err)
			}
			if s != nil {
				stop = s
			}
			if !yield {
				// A release may have happened before the watch started.
				continue
			}
		}
		yield = false
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-released:
		case <-timer.C:
		case <-ctx.Done():
			c.pass(k, turn{})
			return nil, fmt.Errorf("lock: lock %q: %w", k.name, ctx.Err())
		case <-c.closing:
			c.pass(k, turn{})
			return nil, ErrClosed
		}
	}
}

// abandon releases token after a failed acquisition, in case the backend
// granted the lock but its answer was lost; otherwise the lock would stay
// taken until its TTL ran out.
func (c *Client) abandon(ctx context.Context, name, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(c.cfg.TTL, time.Second))
	defer cancel()
	if _, err := c.backend.Release(ctx, name, token); err != nil && !errors.Is(err, ErrNotHeld) {
		c.log.Debug("lock: release after a failed acquisition failed; the lock expires after its TTL", "name", name, "error", err)
	}
}

// acquired records the acquisition of k from the backend as a new claim
// with its first holding, and starts the claim's watchdog.
func (c *Client) acquired(ctx context.Context, k *key, owner, token string, g Grant, start time.Duration) (*Lease, error) {
	if g.Fence < 0 || g.Fence > maxFenceBase {
		c.abandon(ctx, k.name, token)
		c.pass(k, turn{})
		return nil, fmt.Errorf("lock: acquire %q: the backend's fence %d is outside [0, %d]; reset its fencing counter", k.name, g.Fence, maxFenceBase)
	}
	cl := &claim{c: c, k: k, token: token, base: g.Fence}
	cl.validFrom(start, g.Validity)
	h := newHolding(ctx, cl, owner, g.Fence<<HandoffBits)
	c.mu.Lock()
	cl.holder = h
	k.held = h
	k.claim = cl
	closed := c.closed
	c.mu.Unlock()
	if closed {
		h.cancel(ErrClosed)
		return &Lease{h: h}, nil
	}
	cl.startWatchdog()
	return &Lease{h: h}, nil
}

// receive makes a holding of the claim cl, handed off by Unlock, for owner.
// It returns nil when cl was lost on its way, after freeing the lock in
// case the backend still holds it for cl.
func (c *Client) receive(ctx context.Context, k *key, owner string, cl *claim) *Lease {
	c.mu.Lock()
	if cl.lost {
		k.drop(cl)
		c.mu.Unlock()
		cl.stopWatchdog()
		c.abandon(ctx, k.name, cl.token)
		return nil
	}
	h := newHolding(ctx, cl, owner, cl.base<<HandoffBits|int64(cl.handoffs))
	cl.holder = h
	k.held = h
	closed := c.closed
	c.mu.Unlock()
	if closed {
		h.cancel(ErrClosed)
	}
	return &Lease{h: h}
}

// newHolding returns a holding of cl for owner with the given fencing token,
// whose context carries the values of ctx but not its cancellation.
func newHolding(ctx context.Context, cl *claim, owner string, fence int64) *holding {
	hctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	h := &holding{cl: cl, owner: owner, fence: fence, count: 1, cancel: cancel}
	h.ctx = &leaseCtx{Context: hctx, h: h}
	return h
}

// Close ends every lease of the Client (their contexts are cancelled with
// ErrClosed and their locks released), stops their watchdogs, and makes
// waiting and later calls return ErrClosed. It does not close the Backend.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.closing)
	type owned struct {
		cl *claim
		h  *holding
	}
	var claims []owned
	for _, k := range c.keys {
		if k.claim != nil {
			claims = append(claims, owned{k.claim, k.claim.holder})
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, o := range claims {
		o.cl.stopWatchdog()
		if o.h != nil {
			o.h.cancel(ErrClosed)
		}
		if _, err := c.backend.Release(ctx, o.cl.k.name, o.cl.token); err != nil && !errors.Is(err, ErrNotHeld) {
			errs = append(errs, fmt.Errorf("lock: release %q on close: %w", o.cl.k.name, err))
		}
	}
	return errors.Join(errs...)
}
