package saga

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy is a step's forward-retry policy: how often its action runs
// before the step counts as failed, with exponential backoff between
// attempts.
type RetryPolicy struct {
	// MaxAttempts is the number of runs, the first included; 0 or 1 means
	// no retry.
	MaxAttempts int
	// Initial is the wait before the second attempt.
	Initial time.Duration
	// Max caps the wait; 0 means no cap.
	Max time.Duration
	// Multiplier grows the wait after each attempt; values below 1 mean 1.
	Multiplier float64
}

// Validate reports a policy with negative values.
func (p RetryPolicy) Validate() error {
	if p.MaxAttempts < 0 || p.Initial < 0 || p.Max < 0 || p.Multiplier < 0 {
		return fmt.Errorf("%w: retry policy has a negative value: %+v", ErrInvalidSaga, p)
	}
	return nil
}

func (p RetryPolicy) attempts() int { return max(p.MaxAttempts, 1) }

// wait returns the pause after attempt n (from 1), with up to 20% jitter.
func (p RetryPolicy) wait(n int) time.Duration {
	d := float64(p.Initial)
	m := max(p.Multiplier, 1)
	for i := 1; i < n; i++ {
		d *= m
		if p.Max > 0 && d >= float64(p.Max) {
			d = float64(p.Max)
			break
		}
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(d * (0.8 + 0.2*rand.Float64()))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
