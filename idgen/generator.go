package idgen

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Generator hands out IDs for one node. It is safe for concurrent use and
// lock-free: the last ID's time and sequence live in one atomic uint64 that
// every call advances with compare-and-swap.
type Generator struct {
	node        int64 // node ID, already shifted into place
	nodeID      int64
	epoch       time.Time
	clock       func() time.Time
	start       time.Time // clock reading at New; elapsed time is measured from it
	startMs     int64     // start in ms since the epoch
	maxBorrowMs int64
	maxWait     time.Duration
	lease       *Lease

	_     [64]byte      // keep the hot state off the read-only fields' cache line
	state atomic.Uint64 // ms<<SeqBits | seq of the last ID handed out
}

// New returns a generator for the fixed node cfg.NodeID. Its NextID fails only
// with ErrTimeExhausted, decades after the epoch.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	start := clock()
	startMs := int64(start.Sub(cfg.Epoch) / time.Millisecond)
	if startMs < 0 {
		return nil, fmt.Errorf("%w: the clock reads %s, before the epoch %s; set an earlier Epoch or fix the clock", ErrInvalidConfig, start, cfg.Epoch)
	}
	if startMs > MaxTime {
		return nil, fmt.Errorf("%w: the clock reads %s, more than %d ms after the epoch %s", ErrTimeExhausted, start, int64(MaxTime), cfg.Epoch)
	}
	g := &Generator{
		node:        cfg.NodeID << nodeShift,
		nodeID:      cfg.NodeID,
		epoch:       cfg.Epoch,
		clock:       clock,
		start:       start,
		startMs:     startMs,
		maxBorrowMs: int64(cfg.MaxBorrow / time.Millisecond),
		maxWait:     cfg.MaxWait,
	}
	g.state.Store(uint64(startMs) << SeqBits)
	return g, nil
}

// NewLeased returns a generator whose node ID is lease's. cfg.NodeID must be
// 0, and cfg.MaxBorrow under a tenth of the lease's TTL. The generator checks
// the lease on every call and stops handing out IDs, returning ErrLeaseLost
// or ErrLeaseClosed, once the lease is lost, may have expired, or was closed.
// One lease serves one generator.
func NewLeased(cfg Config, lease *Lease) (*Generator, error) {
	if lease == nil {
		return nil, fmt.Errorf("%w: lease is nil, get one from Acquire", ErrInvalidConfig)
	}
	if cfg.NodeID != 0 {
		return nil, fmt.Errorf("%w: NodeID is %d, but a leased generator takes its node from the lease; leave it 0", ErrInvalidConfig, cfg.NodeID)
	}
	if cfg.MaxBorrow >= lease.cfg.TTL/10 {
		return nil, fmt.Errorf("%w: MaxBorrow %s must be under a tenth of the lease TTL (%s), so that the node's next holder starts after this generator's last id", ErrInvalidConfig, cfg.MaxBorrow, lease.cfg.TTL/10)
	}
	cfg.NodeID = lease.NodeID()
	g, err := New(cfg)
	if err != nil {
		return nil, err
	}
	// Start above every ID the node's earlier holders may have issued, on
	// whatever clock they had: the generator borrows ahead from there, and
	// waits (at most MaxWait) when that is more than MaxBorrow ahead.
	if high := lease.PrevHigh() - cfg.Epoch.UnixMilli(); high >= g.startMs && high < MaxTime {
		g.state.Store(uint64(high+1) << SeqBits)
	}
	if err := lease.bind(g); err != nil {
		return nil, err
	}
	g.lease = lease
	return g, nil
}

// NodeID returns the generator's node ID.
func (g *Generator) NodeID() int64 { return g.nodeID }

// Epoch returns the generator's epoch, for Parse and Compose.
func (g *Generator) Epoch() time.Time { return g.epoch }

// NextID returns a new ID, larger than every ID this generator returned
// before. It fails with ErrLeaseLost or ErrLeaseClosed on a leased generator
// whose lease is gone, and with ErrTimeExhausted when the time field has run
// out. When the sequence of the current millisecond is used up and the
// generator has already borrowed MaxBorrow ahead of the clock, NextID waits
// for the clock, for at most MaxWait; further behind, it returns
// ErrClockBehind at once.
func (g *Generator) NextID() (int64, error) {
	for {
		now := g.nowMs()
		old := g.state.Load()
		next := old + 1 // a full sequence carries into the next millisecond: borrowing
		if now > int64(old>>SeqBits) {
			next = uint64(now) << SeqBits
		}
		ms := int64(next >> SeqBits)
		if next&MaxSeq == 0 && ms > now+g.maxBorrowMs {
			if err := g.checkLease(); err != nil {
				return 0, err
			}
			wait := time.Duration(ms-now-g.maxBorrowMs) * time.Millisecond
			if wait > g.maxWait {
				return 0, fmt.Errorf("%w: the next id's time is %v ahead of the clock, beyond MaxBorrow %v by %v, more than MaxWait %v: the clock stepped back, or the node's previous holder's clock ran ahead; fix the clock, or retry once it has caught up",
					ErrClockBehind, time.Duration(ms-now)*time.Millisecond, time.Duration(g.maxBorrowMs)*time.Millisecond, wait, g.maxWait)
			}
			time.Sleep(min(wait, time.Millisecond))
			continue
		}
		if ms > MaxTime {
			return 0, fmt.Errorf("%w: epoch %s", ErrTimeExhausted, g.epoch)
		}
		if !g.state.CompareAndSwap(old, next) {
			continue
		}
		// The lease is checked after the swap: an ID is handed out only if
		// the lease still held after the ID was taken, so every ID handed
		// out is in the state that Lease.Close and the lease deadline see.
		if err := g.checkLease(); err != nil {
			return 0, err
		}
		return ms<<timeShift | g.node | int64(next&MaxSeq), nil
	}
}

func (g *Generator) checkLease() error {
	if g.lease == nil {
		return nil
	}
	return g.lease.check()
}

// Next is NextID for generators that cannot fail: those from New, before
// the time field runs out. It panics where NextID returns an error, so a
// leased generator should use NextID.
func (g *Generator) Next() int64 {
	id, err := g.NextID()
	if err != nil {
		panic(err)
	}
	return id
}

// NextString returns NextID in decimal, the form XIDs use.
func (g *Generator) NextString() (string, error) {
	id, err := g.NextID()
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(id, 10), nil
}

// nowMs returns the clock in ms since the epoch, measured as the elapsed time
// since New on top of the start reading, so that with time.Now it follows the
// monotonic clock. It never returns less than 0.
func (g *Generator) nowMs() int64 {
	ms := g.startMs + int64(g.clock().Sub(g.start)/time.Millisecond)
	return max(ms, 0)
}

// lead returns how far the last ID's millisecond is ahead of the clock.
func (g *Generator) lead() time.Duration {
	return time.Duration(int64(g.state.Load()>>SeqBits)-g.nowMs()) * time.Millisecond
}
