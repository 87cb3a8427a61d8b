package redislock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
)

var errClosed = errors.New("redislock: backend closed")

// Config configures a Backend or a RedLock.
type Config struct {
	// Prefix starts every key and channel name the backend uses. Empty
	// means "gtx:lock:".
	Prefix string
}

func (c Config) prefix() string {
	if c.Prefix == "" {
		return "gtx:lock:"
	}
	return c.Prefix
}

// names are the Redis names of one lock: they share a hash tag so that the
// scripts touch one cluster slot.
type names struct {
	lock, fence, queue, waiter string
}

func keyNames(prefix, name string) names {
	base := prefix + "{" + name + "}"
	return names{lock: base, fence: base + ":fence", queue: base + ":waiters", waiter: base + ":w:"}
}

// waiter is a contender that watches for its turn.
type waiter struct {
	// woken is set when a release woke the waiter: if its next attempt
	// fails it rejoins the queue at the front.
	woken atomic.Bool
}

// waiters are the contenders of a backend that watch for their turn, by
// token.
type waiters struct{ m sync.Map }

// queueExpiry is how long a waiter queue lives without a waiter's attempt;
// attempts extend it to three lock TTLs.
const queueExpiry = time.Minute

// watch subscribes token to its waiter channel on each notifier and queues
// it on each notifier's server, where the subscription succeeded.
func (ws *waiters) watch(ctx context.Context, notes []*notifier, n names, token string, released chan<- struct{}) (func(), error) {
	w := &waiter{}
	wake := func() {
		w.woken.Store(true)
		select {
		case released <- struct{}{}:
		default:
		}
	}
	stops := make([]func(), len(notes))
	errs := make([]error, len(notes))
	var wg sync.WaitGroup
	for i, note := range notes {
		wg.Go(func() {
			stops[i], errs[i] = note.watch(ctx, n.waiter+token, wake)
			if errs[i] == nil {
				errs[i] = enqueueScript.Run(ctx, note.rdb, []string{n.queue}, token, queueExpiry.Milliseconds()).Err()
			}
		})
	}
	wg.Wait()
	stop := sync.OnceFunc(func() {
		ws.m.Delete(token)
		for _, s := range stops {
			s()
		}
		if w.woken.Load() {
			// Woken but leaving without an attempt: pass the turn on.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			for _, note := range notes {
				_ = wakeNextScript.Run(ctx, note.rdb, []string{n.queue}, n.waiter).Err()
			}
		}
	})
	for _, err := range errs {
		if err == nil {
			ws.m.Store(token, w)
			return stop, nil
		}
	}
	return stop, fmt.Errorf("redislock: watch: %w", errors.Join(errs...))
}

// mode returns the waiter mode of token for the acquire script.
func (ws *waiters) mode(token string) string {
	v, ok := ws.m.Load(token)
	switch {
	case !ok:
		return "0"
	case v.(*waiter).woken.Swap(false):
		return "2"
	}
	return "1"
}

// Backend is a lock.Backend on one Redis server (or cluster): SET NX PX with
// a unique token, Lua compare-and-delete release and compare-and-pexpire
// renewal, a fencing counter per lock name (kept after release, and floored
// by the server's clock so that it keeps growing even when it is lost; see
// the package documentation), and a queue of waiters per lock name of which a
// release wakes the first over pub/sub. The calls of concurrent goroutines
// are sent together, one pipeline per round trip (a few in flight at once),
// which is what makes many goroutines locking different names fast.
type Backend struct {
	rdb     redis.UniversalClient
	batch   *batcher
	prefix  string
	notes   *notifier
	waiters waiters
}

var _ lock.Backend = (*Backend)(nil)

// New returns a Backend that keeps locks in rdb. Close it to close its
// pub/sub connection; rdb stays open.
func New(rdb redis.UniversalClient, cfg Config) (*Backend, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", lock.ErrInvalidConfig)
	}
	return &Backend{rdb: rdb, batch: newBatcher(rdb), prefix: cfg.prefix(), notes: newNotifier(rdb)}, nil
}

// Close stops the goroutines that pipeline the Backend's calls and closes
// the pub/sub connection used to wait for releases.
func (b *Backend) Close() error {
	b.batch.close()
	return b.notes.close()
}

// Acquire implements lock.Backend.
func (b *Backend) Acquire(ctx context.Context, name, token string, ttl time.Duration) (lock.Grant, error) {
	return acquire(ctx, b.batch, keyNames(b.prefix, name), token, ttl, b.waiters.mode(token))
}

// Renew implements lock.Backend.
func (b *Backend) Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error) {
	if err := renew(ctx, b.batch, keyNames(b.prefix, name), token, ttl); err != nil {
		return 0, err
	}
	return ttl, nil
}

// Release implements lock.Backend. It reports contention when it woke a
// waiter.
func (b *Backend) Release(ctx context.Context, name, token string) (bool, error) {
	n, err := release(ctx, b.batch, keyNames(b.prefix, name), token)
	return n > 0, err
}

// Watch implements lock.Backend: it queues token as a waiter and subscribes
// it to a channel of its own, on a pub/sub connection shared by the Backend,
// which tells it when its turn comes.
func (b *Backend) Watch(ctx context.Context, name, token string, released chan<- struct{}) (func(), error) {
	return b.waiters.watch(ctx, []*notifier{b.notes}, keyNames(b.prefix, name), token, released)
}

func acquire(ctx context.Context, rdb redis.Scripter, n names, token string, ttl time.Duration, mode string) (lock.Grant, error) {
	res, err := acquireScript.Run(ctx, rdb, []string{n.lock, n.fence, n.queue}, token, ttl.Milliseconds(), mode).Int64Slice()
	if err != nil {
		return lock.Grant{}, fmt.Errorf("redislock: acquire: %w", err)
	}
	if len(res) != 2 {
		return lock.Grant{}, fmt.Errorf("redislock: acquire: unexpected reply %v", res)
	}
	if res[0] == 1 {
		return lock.Grant{Acquired: true, Fence: res[1], Validity: ttl}, nil
	}
	return lock.Grant{RetryAfter: max(0, time.Duration(res[1])*time.Millisecond)}, nil
}

func renew(ctx context.Context, rdb redis.Scripter, n names, token string, ttl time.Duration) error {
	ok, err := renewScript.Run(ctx, rdb, []string{n.lock}, token, ttl.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("redislock: renew: %w", err)
	}
	if ok != 1 {
		return lock.ErrNotHeld
	}
	return nil
}

func release(ctx context.Context, rdb redis.Scripter, n names, token string) (int64, error) {
	res, err := releaseScript.Run(ctx, rdb, []string{n.lock, n.queue}, token, n.waiter).Int64()
	if err != nil {
		return 0, fmt.Errorf("redislock: release: %w", err)
	}
	if res < 0 {
		return 0, lock.ErrNotHeld
	}
	return res, nil
}
