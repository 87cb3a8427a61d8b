package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// maxAttempts bounds how often an operation the database aborted for
// contention (a deadlock, a lost race on a unique key) runs again.
const maxAttempts = 10

// retry runs op until it succeeds, fails for a reason other than contention,
// or has run maxAttempts times. Contention is a transaction the database
// aborted (deadlock, serialization failure, busy SQLite file) or a unique key
// another transaction inserted first; op must roll back its own work when it
// fails.
func retry(ctx context.Context, log *slog.Logger, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !(isDuplicateKey(err) || isTransient(err)) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("still contended after %d attempts: %w", attempt, err)
		}
		log.DebugContext(ctx, "sqlstore: retrying after contention", "attempt", attempt, "err", err)
		// Random backoff, growing with the attempt, so that racers that
		// collided do not collide again.
		wait := time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}
