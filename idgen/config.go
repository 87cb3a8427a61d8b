package idgen

import (
	"fmt"
	"time"
)

// DefaultEpochUnixMilli is the epoch DefaultConfig uses, 2026-01-01T00:00:00Z,
// in Unix milliseconds. IDs made with it run out of time bits in 2095.
const DefaultEpochUnixMilli = 1767225600000

// DefaultMaxBorrow is how far ahead of the clock DefaultConfig lets a generator
// borrow time when a millisecond's 4096 sequence numbers are used up.
const DefaultMaxBorrow = 100 * time.Millisecond

// Config configures a Generator. Start from DefaultConfig and change fields.
type Config struct {
	// NodeID is this process's node, 0 to MaxNodeID. No two live processes
	// that share an epoch may use the same node ID. With NewLeased it must be
	// left 0: the node comes from the lease.
	NodeID int64

	// Epoch is the zero of the time field. Every process that makes IDs for
	// the same space must use the same epoch, and it must never change once
	// IDs exist: a later epoch makes IDs that collide with older ones.
	Epoch time.Time

	// MaxBorrow is how far the generator's logical time may run ahead of the
	// clock when a millisecond's sequence numbers are used up. Zero means
	// never borrow: wait for the next millisecond instead. It bounds how far
	// ahead of real time a generator's IDs can be, which matters when a
	// restarted process takes the same node ID (see the package doc).
	MaxBorrow time.Duration

	// MaxWait is the longest NextID waits for the clock when the
	// generator's time is more than MaxBorrow ahead of it: when the clock
	// stepped back (an injected Clock), or when a leased node's previous
	// holder issued IDs on a clock ahead of this one. Further ahead, NextID
	// returns ErrClockBehind at once instead of blocking. Zero never waits.
	MaxWait time.Duration
	// Clock returns the current time. Nil means time.Now, whose monotonic
	// reading makes the generator immune to wall-clock steps. Tests inject a
	// clock to step time backwards; an injected clock must keep moving
	// forward eventually, because a generator that has borrowed MaxBorrow
	// ahead of it waits for it.
	Clock func() time.Time
}

// DefaultMaxWait is how long DefaultConfig lets NextID wait for a clock
// that is behind the generator's time.
const DefaultMaxWait = time.Second

// DefaultConfig returns a Config with node 0, the epoch DefaultEpochUnixMilli
// in UTC, DefaultMaxBorrow, DefaultMaxWait and the system clock.
func DefaultConfig() Config {
	return Config{
		NodeID:    0,
		Epoch:     time.UnixMilli(DefaultEpochUnixMilli).UTC(),
		MaxBorrow: DefaultMaxBorrow,
		MaxWait:   DefaultMaxWait,
	}
}

// Validate reports whether c can be used, with ErrInvalidConfig and the
// offending field otherwise.
func (c Config) Validate() error {
	if c.NodeID < 0 || c.NodeID > MaxNodeID {
		return fmt.Errorf("%w: NodeID %d is outside 0..%d", ErrInvalidConfig, c.NodeID, MaxNodeID)
	}
	if c.Epoch.IsZero() {
		return fmt.Errorf("%w: Epoch is not set, start from DefaultConfig or set it", ErrInvalidConfig)
	}
	if c.MaxBorrow < 0 {
		return fmt.Errorf("%w: MaxBorrow %s is negative, use 0 to never borrow", ErrInvalidConfig, c.MaxBorrow)
	}
	if c.MaxWait < 0 {
		return fmt.Errorf("%w: MaxWait %s is negative, use 0 to never wait", ErrInvalidConfig, c.MaxWait)
	}
	if c.MaxBorrow > time.Hour {
		return fmt.Errorf("%w: MaxBorrow %s is over an hour, keep it small (default %s)", ErrInvalidConfig, c.MaxBorrow, DefaultMaxBorrow)
	}
	return nil
}
