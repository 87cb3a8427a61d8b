package lock

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Client.
type Config struct {
	// TTL is how long a lock lives in the backend without renewal. The
	// watchdog renews it while the lease is held, so TTL bounds how long a
	// crashed holder blocks others. Must be positive.
	TTL time.Duration
	// RenewInterval is how often the watchdog renews a held lock. Zero means
	// TTL/3. Must be shorter than TTL.
	RenewInterval time.Duration
	// PollInterval bounds how long a waiting contender sleeps between
	// attempts when no release notification arrives. Must be positive.
	PollInterval time.Duration
	// MaxHandoffs bounds how many times in a row Unlock passes the lock to a
	// waiter in this process without releasing it in the backend, so waiters
	// in other processes are not starved. Zero disables hand-off. At most
	// MaxHandoffsLimit, because the hand-off number is part of the fencing
	// token (see HandoffBits).
	MaxHandoffs int
	// Logger receives watchdog warnings. Nil means slog.Default().
	Logger *slog.Logger
}

// HandoffBits is how many low bits of a fencing token (Lease.Fence) count
// the local hand-offs since the backend acquisition: a token is the
// backend's fencing counter F, which grows with every acquisition from the
// backend, shifted left by HandoffBits, plus the hand-off number h (0 for
// the acquiring holding, 1 to MaxHandoffs for the holdings handed off
// after it). Every later acquisition has a larger F, so tokens grow with
// every holding of a lock name in every process. It is fixed, so that
// Clients of any Config agree on the format.
const HandoffBits = 16

// MaxHandoffsLimit is the largest valid Config.MaxHandoffs: the hand-off
// number must fit in HandoffBits.
const MaxHandoffsLimit = 1<<HandoffBits - 1

// maxFenceBase is the largest backend fencing counter that still makes a
// positive int64 token.
const maxFenceBase = 1<<(63-HandoffBits) - 1

// DefaultConfig returns a Config with a 10 s TTL, renewal every TTL/3, a
// 500 ms fallback poll and at most 8 consecutive local hand-offs.
func DefaultConfig() Config {
	return Config{
		TTL:          10 * time.Second,
		PollInterval: 500 * time.Millisecond,
		MaxHandoffs:  8,
	}
}

// Validate reports whether the Config can be used. Its errors match
// ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.TTL <= 0:
		return fmt.Errorf("%w: TTL must be positive, got %v", ErrInvalidConfig, c.TTL)
	case c.RenewInterval < 0 || c.RenewInterval >= c.TTL:
		return fmt.Errorf("%w: RenewInterval must be between 0 and TTL (%v), got %v", ErrInvalidConfig, c.TTL, c.RenewInterval)
	case c.PollInterval <= 0:
		return fmt.Errorf("%w: PollInterval must be positive, got %v", ErrInvalidConfig, c.PollInterval)
	case c.MaxHandoffs < 0 || c.MaxHandoffs > MaxHandoffsLimit:
		return fmt.Errorf("%w: MaxHandoffs must be between 0 and %d, got %d", ErrInvalidConfig, MaxHandoffsLimit, c.MaxHandoffs)
	}
	return nil
}

func (c Config) renewInterval() time.Duration {
	if c.RenewInterval > 0 {
		return c.RenewInterval
	}
	return c.TTL / 3
}

// handoffReserve is the validity a claim must have left to be handed to a
// local waiter without renewing it first.
func (c Config) handoffReserve() time.Duration { return c.TTL / 3 }

// driftMargin is subtracted from every validity the backend reports: the
// client's clock may run faster than the backend's by up to 1%, plus 2 ms
// for timer granularity.
func (c Config) driftMargin() time.Duration { return c.TTL/100 + 2*time.Millisecond }
