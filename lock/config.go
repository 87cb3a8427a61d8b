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
	// in other processes are not starved. Zero disables hand-off.
	MaxHandoffs int
	// Logger receives watchdog warnings. Nil means slog.Default().
	Logger *slog.Logger
}

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
	case c.MaxHandoffs < 0:
		return fmt.Errorf("%w: MaxHandoffs must not be negative, got %d", ErrInvalidConfig, c.MaxHandoffs)
	}
	return nil
}

func (c Config) renewInterval() time.Duration {
	if c.RenewInterval > 0 {
		return c.RenewInterval
	}
	return c.TTL / 3
}
