package redislock_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/redislock"
)

// fences takes and releases name with locks n times and returns the fencing
// tokens it got.
func fences(t *testing.T, locks *lock.Client, name string, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	var out []int64
	for range n {
		lease, err := locks.Lock(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lease.Fence())
		if err := lease.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// increasing fails t unless every token is larger than the one before.
func increasing(t *testing.T, what string, tokens []int64) {
	t.Helper()
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("%s: token %d (%d) is not above token %d (%d)", what, i, tokens[i], i-1, tokens[i-1])
		}
	}
}

// TestFenceSurvivesRestartAndFlush restarts a Redis without persistence, and
// deletes the fencing counter by hand, between acquisitions: the tokens keep
// growing.
func TestFenceSurvivesRestartAndFlush(t *testing.T) {
	s := startServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: 5})
	t.Cleanup(func() { _ = rdb.Close() })
	be, err := redislock.New(rdb, redislock.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	cfg := lock.DefaultConfig()
	cfg.MaxHandoffs = 0
	locks, err := lock.New(be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locks.Close(context.Background()) })

	tokens := fences(t, locks, "f", 200)
	s.stop()
	s.start()
	tokens = append(tokens, fences(t, locks, "f", 200)...)
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, fences(t, locks, "f", 200)...)
	increasing(t, "across a restart and a flush", tokens)
}

// raiseFault is a go-redis hook that fails the script that raises a fencing
// counter (one key ending in ":fence" and one argument) while on is set.
type raiseFault struct{ on *atomic.Bool }

func (raiseFault) DialHook(next redis.DialHook) redis.DialHook { return next }
func (raiseFault) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (f raiseFault) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if n := strings.ToLower(cmd.Name()); f.on.Load() && (n == "evalsha" || n == "eval") && len(args) == 5 {
			if k, _ := args[3].(string); strings.HasSuffix(k, ":fence") {
				err := errors.New("injected: raise refused")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// TestRedLockFenceNeedsQuorumRaise checks that an acquisition counts only
// when a quorum holds the new fencing counter: with the raise failing on
// the nodes that had smaller counters, TryLock is refused and leaves no lock
// behind; once raises work, the token is above the largest counter and a
// quorum holds it.
func TestRedLockFenceNeedsQuorumRaise(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	var fault atomic.Bool
	for _, n := range c.nodes[:3] {
		n.(*redis.Client).AddHook(raiseFault{&fault})
	}
	high := time.Now().Add(24*time.Hour).UnixMicro() / 100
	for _, n := range c.nodes[3:] {
		if err := n.Set(ctx, "gtx:lock:{q}:fence", high, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := lock.DefaultConfig()
	cfg.TTL = 2 * time.Second
	locks := c.client(t, cfg)

	fault.Store(true)
	if _, err := locks.TryLock(ctx, "q"); !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("TryLock with the raise failing on 3 of 5 nodes = %v, want ErrNotAcquired", err)
	}
	for i, n := range c.nodes {
		if v, err := n.Exists(ctx, "gtx:lock:{q}").Result(); err != nil || v != 0 {
			t.Fatalf("node %d holds the lock after a refused acquisition (exists=%d, %v)", i, v, err)
		}
	}
	fault.Store(false)
	lease, err := locks.TryLock(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	f := lease.Fence() >> lock.HandoffBits
	if f <= high {
		t.Fatalf("fence counter = %d, want above the largest node counter %d", f, high)
	}
	for i, n := range c.nodes {
		got, err := n.Get(ctx, "gtx:lock:{q}:fence").Int64()
		if err != nil || got < f {
			t.Fatalf("node %d counter = %d (%v), want at least %d", i, got, err, f)
		}
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRedLockFenceSurvivesRestarts restarts nodes without persistence
// between acquisitions, fewer than a quorum at a time and then all of them:
// the tokens keep growing.
func TestRedLockFenceSurvivesRestarts(t *testing.T) {
	c := newCluster(t)
	cfg := lock.DefaultConfig()
	cfg.MaxHandoffs = 0
	locks := c.client(t, cfg)
	tokens := fences(t, locks, "r", 50)
	for _, s := range c.servers[:2] {
		s.stop()
		s.start()
	}
	tokens = append(tokens, fences(t, locks, "r", 50)...)
	for _, s := range c.servers {
		s.stop()
		s.start()
	}
	tokens = append(tokens, fences(t, locks, "r", 50)...)
	increasing(t, "across restarts", tokens)
}
