package redislock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
)

// RedLockConfig configures a RedLock.
type RedLockConfig struct {
	// Prefix starts every key and channel name. Empty means "gtx:lock:".
	Prefix string
	// NodeTimeout bounds each call to one node, so that a dead node costs
	// little of the lock's validity. Zero means 50 ms.
	NodeTimeout time.Duration
	// DriftFactor is the share of the TTL allowed for clock drift between
	// nodes; 2 ms are added to it. Zero means 0.01.
	DriftFactor float64
}

// RedLock is a lock.Backend on N independent Redis servers (the RedLock
// algorithm): a lock is held when a quorum of N/2+1 nodes granted it within
// its TTL; it is valid for TTL minus the time the acquisition took minus
// the clock drift allowance. An acquisition without quorum is released on
// every node at once.
//
// The fencing counter of an acquisition is the largest of the quorum's
// counters, and the counters of the quorum are raised to it; the
// acquisition only counts when a quorum of nodes is known to hold a counter
// that large (a node whose raise fails does not count, and without a
// quorum the lock is released and the contender retries), so every later
// quorum, which shares a node with it, returns a larger counter (and
// lock.Client a larger fencing token). A node that lost its counter (a
// restart without persistence) starts again from its clock (see Backend),
// above every counter issued before. Mutual exclusion across a restart
// still needs what the RedLock description asks: persistence (appendonly
// with fsync), or a restarted node kept out of service for a TTL.
type RedLock struct {
	nodes   []redis.UniversalClient
	notes   []*notifier
	prefix  string
	timeout time.Duration
	drift   float64
	quorum  int
	waiters waiters
	calls   sync.WaitGroup // node calls, waited for by Close
}

var errNodeTimeout = errors.New("redislock: node did not answer within the node timeout")

var _ lock.Backend = (*RedLock)(nil)

// NewRedLock returns a RedLock over nodes, which must be independent
// servers (not replicas of each other). Give their clients
// ContextTimeoutEnabled, a short DialTimeout and few DialerRetries, so that
// a dead node is given up on within NodeTimeout rather than the client's
// default seconds. Close the RedLock to close its pub/sub connections; the
// clients stay open.
func NewRedLock(nodes []redis.UniversalClient, cfg RedLockConfig) (*RedLock, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: redlock needs at least one node", lock.ErrInvalidConfig)
	}
	if cfg.NodeTimeout < 0 || cfg.DriftFactor < 0 || cfg.DriftFactor >= 1 {
		return nil, fmt.Errorf("%w: redlock NodeTimeout must not be negative and DriftFactor must be in [0, 1)", lock.ErrInvalidConfig)
	}
	r := &RedLock{
		prefix:  Config{Prefix: cfg.Prefix}.prefix(),
		timeout: cfg.NodeTimeout,
		drift:   cfg.DriftFactor,
		quorum:  len(nodes)/2 + 1,
	}
	if r.timeout == 0 {
		r.timeout = 50 * time.Millisecond
	}
	if r.drift == 0 {
		r.drift = 0.01
	}
	for i, n := range nodes {
		if n == nil {
			return nil, fmt.Errorf("%w: redlock node %d is nil", lock.ErrInvalidConfig, i)
		}
		r.nodes = append(r.nodes, n)
		r.notes = append(r.notes, newNotifier(n))
	}
	return r, nil
}

// Close waits for node calls still running after their timeout and closes
// the pub/sub connections used to wait for releases.
func (r *RedLock) Close() error {
	r.calls.Wait()
	var errs []error
	for _, n := range r.notes {
		errs = append(errs, n.close())
	}
	return errors.Join(errs...)
}

// Quorum returns how many nodes must agree: N/2+1.
func (r *RedLock) Quorum() int { return r.quorum }

// result is the answer of one node.
type result struct {
	grant lock.Grant
	n     int64
	err   error
}

// each runs fn on every node in parallel and returns their answers in node
// order once all have answered or the node timeout has passed; a node that
// has not answered by then counts as failed. Calls still running then are
// cancelled, and Close waits for them.
func (r *RedLock) each(ctx context.Context, fn func(ctx context.Context, rdb redis.UniversalClient) result) []result {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	type answer struct {
		i   int
		res result
	}
	answers := make(chan answer, len(r.nodes))
	for i, rdb := range r.nodes {
		r.calls.Go(func() { answers <- answer{i, fn(ctx, rdb)} })
	}
	out := make([]result, len(r.nodes))
	for i := range out {
		out[i].err = errNodeTimeout
	}
	for range r.nodes {
		select {
		case a := <-answers:
			out[a.i] = a.res
		case <-ctx.Done():
			for {
				select {
				case a := <-answers:
					out[a.i] = a.res
				default:
					return out
				}
			}
		}
	}
	return out
}

func (r *RedLock) validity(ttl time.Duration, start time.Time) time.Duration {
	drift := time.Duration(float64(ttl)*r.drift) + 2*time.Millisecond
	return ttl - time.Since(start) - drift
}

// granted sums up acquire answers: how many nodes granted, the largest
// fence and the smallest wait.
func granted(rs []result) (ok int, fence int64, retry time.Duration) {
	for _, res := range rs {
		switch {
		case res.err == nil && res.grant.Acquired:
			ok++
			fence = max(fence, res.grant.Fence)
		case res.err == nil && res.grant.RetryAfter > 0:
			if retry == 0 || res.grant.RetryAfter < retry {
				retry = res.grant.RetryAfter
			}
		}
	}
	return ok, fence, retry
}

// raise lifts the fence counters of the nodes that granted with a smaller
// counter to fence, and returns how many nodes are known to hold a counter
// of at least fence: those that granted with it and those raised. A node
// whose raise failed or timed out does not count.
func (r *RedLock) raise(ctx context.Context, n names, rs []result, fence int64) int {
	at, below := 0, false
	for _, res := range rs {
		if res.err == nil && res.grant.Acquired {
			if res.grant.Fence == fence {
				at++
			} else {
				below = true
			}
		}
	}
	if !below {
		return at
	}
	raised := r.each(ctx, func(ctx context.Context, rdb redis.UniversalClient) result {
		return result{err: raiseFenceScript.Run(ctx, rdb, []string{n.fence}, fence).Err()}
	})
	for i, res := range rs {
		if res.err == nil && res.grant.Acquired && res.grant.Fence != fence && raised[i].err == nil {
			at++
		}
	}
	return at
}

// releaseAll releases every token on every node, ignoring answers: it
// cleans up after an acquisition without quorum.
func (r *RedLock) releaseAll(ctx context.Context, n names, tokens ...string) {
	r.each(context.WithoutCancel(ctx), func(ctx context.Context, rdb redis.UniversalClient) result {
		for _, t := range tokens {
			_, _ = release(ctx, rdb, n, t)
		}
		return result{}
	})
}

// Acquire implements lock.Backend.
func (r *RedLock) Acquire(ctx context.Context, name, token string, ttl time.Duration) (lock.Grant, error) {
	n := keyNames(r.prefix, name)
	mode := r.waiters.mode(token)
	start := time.Now()
	rs := r.each(ctx, func(ctx context.Context, rdb redis.UniversalClient) result {
		g, err := acquire(ctx, rdb, n, token, ttl, mode)
		return result{grant: g, err: err}
	})
	ok, fence, retry := granted(rs)
	// A quorum must hold a counter of at least fence, so that every later
	// quorum, which shares a node with it, returns a larger one.
	if ok >= r.quorum && r.raise(ctx, n, rs, fence) >= r.quorum {
		if v := r.validity(ttl, start); v > 0 {
			return lock.Grant{Acquired: true, Fence: fence, Validity: v}, nil
		}
	}
	r.releaseAll(ctx, n, token)
	if err := ctx.Err(); err != nil {
		return lock.Grant{}, err
	}
	return lock.Grant{RetryAfter: retry}, nil
}

// Renew implements lock.Backend.
func (r *RedLock) Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error) {
	n := keyNames(r.prefix, name)
	start := time.Now()
	rs := r.each(ctx, func(ctx context.Context, rdb redis.UniversalClient) result {
		return result{err: renew(ctx, rdb, n, token, ttl)}
	})
	ok, notHeld := 0, 0
	for _, res := range rs {
		switch {
		case res.err == nil:
			ok++
		case errors.Is(res.err, lock.ErrNotHeld):
			notHeld++
		}
	}
	if ok >= r.quorum {
		if v := r.validity(ttl, start); v > 0 {
			return v, nil
		}
	}
	if notHeld > len(r.nodes)-r.quorum {
		return 0, lock.ErrNotHeld
	}
	return 0, fmt.Errorf("redislock: renewal reached %d of %d nodes, quorum is %d", ok, len(r.nodes), r.quorum)
}

// Release implements lock.Backend: it releases on every node. It returns
// lock.ErrNotHeld when more than N − quorum nodes did not hold the token,
// because then no quorum held it: the lock had been lost.
func (r *RedLock) Release(ctx context.Context, name, token string) (bool, error) {
	n := keyNames(r.prefix, name)
	rs := r.each(ctx, func(ctx context.Context, rdb redis.UniversalClient) result {
		c, err := release(ctx, rdb, n, token)
		return result{n: c, err: err}
	})
	released, notHeld := 0, 0
	contended := false
	var errs []error
	for _, res := range rs {
		switch {
		case res.err == nil:
			released++
			contended = contended || res.n > 0
		case errors.Is(res.err, lock.ErrNotHeld):
			notHeld++
		default:
			errs = append(errs, res.err)
		}
	}
	switch {
	case notHeld > len(r.nodes)-r.quorum:
		// Too few nodes held the token for a quorum: the lock was lost
		// before the release (expired, or a node restarted empty and
		// another quorum formed), whatever the other nodes freed.
		return false, lock.ErrNotHeld
	case released > 0:
		return contended, nil
	}
	return false, fmt.Errorf("redislock: release reached no node: %w", errors.Join(errs...))
}

// Watch implements lock.Backend: the waiter is queued on every node, and a
// release on any node that makes it the waiter's turn wakes it.
func (r *RedLock) Watch(ctx context.Context, name, token string, released chan<- struct{}) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.waiters.watch(ctx, r.notes, keyNames(r.prefix, name), token, released)
}
