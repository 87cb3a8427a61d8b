package idgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Leaser claims node IDs in a store shared by every process of one ID space,
// so that no two live processes use the same node, and remembers per node
// the highest ID time its holders may have issued (the high mark, in Unix
// milliseconds), so that a node's next holder starts above it even when
// its clock is behind the previous holder's. RedisLeaser and SQLLeaser
// implement it. Acquire wraps a Leaser into a Lease that renews itself.
type Leaser interface {
	// Claim takes a node ID that no live lease holds, for owner, for ttl,
	// raises the node's high mark to at least high, and returns the node
	// and its high mark from before (0 if none). It fails with
	// ErrNoFreeNode when every node in the leaser's range is held.
	Claim(ctx context.Context, owner string, ttl time.Duration, high int64) (node, prevHigh int64, err error)
	// Renew extends owner's lease on node to ttl from now and raises the
	// node's high mark to at least high. It fails with ErrLeaseLost when
	// owner does not hold node any more.
	Renew(ctx context.Context, node int64, owner string, ttl time.Duration, high int64) error
	// Release frees node and sets its high mark to high (the last ID time
	// the owner issued, which may lower the mark) if owner holds it, and
	// does nothing otherwise.
	Release(ctx context.Context, node int64, owner string, high int64) error
}

// LeaseConfig configures Acquire. Start from DefaultLeaseConfig.
type LeaseConfig struct {
	// TTL is how long the store keeps a lease that is not renewed: the time
	// after a crash before the node can be taken again.
	TTL time.Duration
	// RenewInterval is how often the lease is renewed. It must be at most
	// TTL/2, so that one failed renewal can be retried before expiry.
	RenewInterval time.Duration
	// Logger receives the lease's events. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultLeaseConfig returns a TTL of 10s renewed every 3s.
func DefaultLeaseConfig() LeaseConfig {
	return LeaseConfig{TTL: 10 * time.Second, RenewInterval: 3 * time.Second}
}

// Validate reports whether c can be used, with ErrInvalidConfig and the
// offending field otherwise.
func (c LeaseConfig) Validate() error {
	if c.TTL < 100*time.Millisecond {
		return fmt.Errorf("%w: lease TTL %s is under 100ms", ErrInvalidConfig, c.TTL)
	}
	if c.RenewInterval <= 0 || c.RenewInterval > c.TTL/2 {
		return fmt.Errorf("%w: lease RenewInterval %s must be above 0 and at most TTL/2 (%s)", ErrInvalidConfig, c.RenewInterval, c.TTL/2)
	}
	return nil
}

// Lease is a node ID held in a shared store. A goroutine owned by the lease
// renews it every RenewInterval until Close. The lease counts as held only
// until TTL minus a tenth of it after the start of the last renewal that
// succeeded: past that point another process may hold the node, so a
// generator on this lease stops, even if the store is merely unreachable.
type Lease struct {
	leaser   Leaser
	cfg      LeaseConfig
	logger   *slog.Logger
	node     int64
	owner    string
	validFor time.Duration
	prevHigh int64 // the node's high mark before this lease, Unix ms

	base     time.Time    // monotonic origin of deadline
	deadline atomic.Int64 // ns after base until which the lease is ours; -1 once lost or closed

	gen atomic.Pointer[Generator]

	mu     sync.Mutex
	err    error // why the lease ended, nil while held
	closed bool

	done    chan struct{} // closed when the lease ends, lost or closed
	cancel  context.CancelFunc
	stopped chan struct{} // closed when the renewer has returned
}

// Acquire claims a node through leaser and starts renewing it. ctx bounds the
// claim only; the lease lives until Close or until it is lost. The owner
// token that marks the lease in the store is random and unique per call.
func Acquire(ctx context.Context, leaser Leaser, cfg LeaseConfig) (*Lease, error) {
	if leaser == nil {
		return nil, fmt.Errorf("%w: leaser is nil", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var token [16]byte
	if _, err := rand.Read(token[:]); err != nil {
		return nil, fmt.Errorf("idgen: make lease owner token: %w", err)
	}
	owner := hex.EncodeToString(token[:])
	base := time.Now()
	validFor := cfg.TTL - cfg.TTL/10
	// Until its first renewal the lease may issue IDs up to validFor (plus
	// a generator's borrowing, under TTL/10) past now.
	node, prevHigh, err := leaser.Claim(ctx, owner, cfg.TTL, base.Add(validFor+cfg.TTL/10).UnixMilli()+1)
	if err != nil {
		return nil, fmt.Errorf("idgen: acquire node lease: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	l := &Lease{
		leaser:   leaser,
		cfg:      cfg,
		logger:   logger,
		node:     node,
		owner:    owner,
		validFor: validFor,
		prevHigh: prevHigh,
		base:     base,
		done:     make(chan struct{}),
		cancel:   cancel,
		stopped:  make(chan struct{}),
	}
	l.deadline.Store(int64(l.validFor))
	logger.Info("idgen: node lease acquired", "node", node, "owner", owner, "ttl", cfg.TTL)
	go l.renew(rctx)
	return l, nil
}

// NodeID returns the leased node ID.
func (l *Lease) NodeID() int64 { return l.node }

// Owner returns the random token that marks this lease in the store.
func (l *Lease) Owner() string { return l.owner }

// Done returns a channel that is closed when the lease ends: lost, expired
// without renewal, or closed.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while the lease is held, then why it ended: an error
// wrapping ErrLeaseLost, or ErrLeaseClosed.
func (l *Lease) Err() error { return l.check() }

// Close stops the renewer, waits for it, and releases the node in the store.
// A generator on the lease fails with ErrLeaseClosed from the moment Close is
// called. Before releasing, Close waits until the clock has passed the last
// ID's millisecond (at most the generator's MaxBorrow), so that the node's
// next holder starts after every ID made here. Close is idempotent; calls
// after the first return nil.
func (l *Lease) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.endLocked(ErrLeaseClosed)
	l.mu.Unlock()

	l.cancel()
	<-l.stopped
	if g := l.gen.Load(); g != nil {
		if lead := g.lead(); lead >= 0 {
			t := time.NewTimer(lead + time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("idgen: release node %d, it frees itself after the ttl: %w", l.node, ctx.Err())
			}
		}
	}
	if err := l.leaser.Release(ctx, l.node, l.owner, l.high(0)); err != nil {
		return fmt.Errorf("idgen: release node %d, it frees itself after the ttl: %w", l.node, err)
	}
	l.logger.Info("idgen: node lease released", "node", l.node, "owner", l.owner)
	return nil
}

// check returns nil while the lease is surely held. It is on the ID hot path:
// one atomic load and one clock read.
func (l *Lease) check() error {
	if int64(time.Since(l.base)) < l.deadline.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.endLocked(fmt.Errorf("%w: node %d was not renewed within %s", ErrLeaseLost, l.node, l.validFor))
		l.logger.Error("idgen: node lease expired, generator stopped", "node", l.node, "owner", l.owner)
	}
	return l.err
}

// lose ends the lease with err, unless it already ended.
func (l *Lease) lose(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.endLocked(err)
		l.logger.Error("idgen: node lease lost, generator stopped", "node", l.node, "owner", l.owner, "err", err)
	}
}

func (l *Lease) endLocked(err error) {
	l.deadline.Store(-1)
	if l.err == nil {
		l.err = err
		close(l.done)
	}
}

// extend moves the deadline to d, unless the lease has ended.
func (l *Lease) extend(d time.Duration) {
	for {
		cur := l.deadline.Load()
		if cur < 0 || cur >= int64(d) {
			return
		}
		if l.deadline.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

func (l *Lease) bind(g *Generator) error {
	if !l.gen.CompareAndSwap(nil, g) {
		return fmt.Errorf("%w: lease on node %d already serves a generator; two generators on one node would repeat ids", ErrInvalidConfig, l.node)
	}
	return nil
}

// high returns the high mark to record: the largest ID time the lease may
// issue within ahead from now (Unix ms). With ahead 0 it is the last ID's
// time (or the start, without a generator yet).
func (l *Lease) high(ahead time.Duration) int64 {
	now := time.Now()
	h := now.Add(ahead).UnixMilli()
	if g := l.gen.Load(); g != nil {
		last := g.epoch.UnixMilli() + int64(g.state.Load()>>SeqBits)
		if ahead == 0 {
			return last
		}
		h = max(h, last+ahead.Milliseconds())
	}
	return max(h, l.prevHigh) + 1
}

// PrevHigh returns the node's high mark from before this lease: the
// highest ID time (Unix ms) its earlier holders may have issued. A
// generator on the lease starts above it.
func (l *Lease) PrevHigh() int64 { return l.prevHigh }

// renew is the lease's renewer goroutine; Close stops it.
func (l *Lease) renew(ctx context.Context) {
	defer close(l.stopped)
	t := time.NewTicker(l.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.done:
			return
		case <-t.C:
		}
		sent := time.Since(l.base)
		remaining := time.Duration(l.deadline.Load()) - sent
		if remaining <= 0 {
			_ = l.check()
			return
		}
		rctx, cancel := context.WithTimeout(ctx, remaining)
		err := l.leaser.Renew(rctx, l.node, l.owner, l.cfg.TTL, l.high(l.validFor+l.cfg.TTL/10))
		cancel()
		switch {
		case err == nil:
			l.extend(sent + l.validFor)
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeaseLost):
			l.lose(fmt.Errorf("idgen: renew node %d: %w", l.node, err))
			return
		default:
			l.logger.Warn("idgen: renewing node lease failed, retrying", "node", l.node, "err", err)
			if l.check() != nil {
				return
			}
		}
	}
}
