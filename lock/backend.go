package lock

import (
	"context"
	"time"
)

// Backend is the shared storage a Client keeps its locks in: one Redis
// server, a RedLock quorum of them, or a SQL table. Each method is one
// atomic step keyed by the lock name and a token that is unique to one
// acquisition (local hand-offs keep the token); a Backend never releases or
// extends a lock for a token that does not hold it.
type Backend interface {
	// Acquire takes name for token for ttl when nobody holds it, and then
	// returns a Grant with Acquired set and a new fencing counter. When the
	// lock is held it returns a Grant without Acquired.
	Acquire(ctx context.Context, name, token string, ttl time.Duration) (Grant, error)
	// Renew resets the time to live of name to ttl when token holds it, and
	// returns for how long, counted from the call, the lock is known valid.
	// It returns ErrNotHeld when token does not hold name.
	Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error)
	// Release frees name when token holds it and wakes a waiter; contended
	// reports whether a waiter elsewhere was woken (true when unknown). It
	// returns ErrNotHeld when token does not hold name.
	Release(ctx context.Context, name, token string) (contended bool, err error)
	// Watch makes the contender that acquires name with token a waiter:
	// when the lock is released and it is this waiter's turn, one value is
	// sent on released (without blocking; a pending value stays), until
	// stop is called. A Backend may wake one waiter per release (Redis
	// keeps a queue of waiters per name) or all of them. A Backend that
	// cannot notify returns a stop function that does nothing and a nil
	// error; waiters then poll.
	Watch(ctx context.Context, name, token string, released chan<- struct{}) (stop func(), err error)
}

// Grant is the outcome of Backend.Acquire.
type Grant struct {
	// Acquired is true when the token now holds the lock.
	Acquired bool
	// Fence is the lock name's fencing counter for this acquisition: it
	// grows strictly with every acquisition of the name from the backend,
	// and never goes backwards, also when the backend loses state (see
	// "Fencing tokens" in the package documentation). It is at least 0. The Client makes Lease.Fence from it (see HandoffBits), so it
	// must stay below 2^(63-HandoffBits).
	Fence int64
	// Validity is how long, counted from the call, the lock is known held.
	Validity time.Duration
	// RetryAfter is, when not Acquired, the holder's remaining time to live
	// if the backend knows it.
	RetryAfter time.Duration
}
