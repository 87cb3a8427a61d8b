package redislock_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/locktest"
	"github.com/gtx-io/gtx/lock/redislock"
)

// TestCheckerHelper is a worker process of the mutual-exclusion checkers:
// one Redis when GTX_CHECK_REDIS names one server, RedLock when it names
// several.
func TestCheckerHelper(t *testing.T) {
	locktest.Worker(t, func(t *testing.T) lock.Backend {
		var nodes []redis.UniversalClient
		for _, addr := range strings.Split(os.Getenv("GTX_CHECK_REDIS"), ",") {
			rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, ContextTimeoutEnabled: true})
			t.Cleanup(func() { _ = rdb.Close() })
			nodes = append(nodes, rdb)
		}
		if len(nodes) == 1 {
			be, err := redislock.New(nodes[0], redislock.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = be.Close() })
			return be
		}
		r, err := redislock.NewRedLock(nodes, redislock.RedLockConfig{NodeTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	})
}

// TestMutualExclusionChecker runs locktest.Check on one Redis without
// persistence: four processes, a holder stopped past its TTL, a holder
// killed, the server restarted (losing every lock and fencing counter).
func TestMutualExclusionChecker(t *testing.T) {
	s := startServer(t)
	locktest.Check{
		Helper:  "TestCheckerHelper",
		Env:     []string{"GTX_CHECK_REDIS=" + s.addr()},
		Restart: func() { s.stop(); s.start() },
	}.Run(t)
}

// TestRedLockMutualExclusionChecker runs locktest.Check on a RedLock of
// five servers without persistence, restarting one of them after keeping it
// out of service for a TTL, as RedLock requires of a node that lost its
// data (restarted at once, it lets a second quorum form beside a holder
// that has just a quorum, which the holder learns at its next renewal or
// its Unlock, and the fencing token refuses its late writes).
func TestRedLockMutualExclusionChecker(t *testing.T) {
	c := newCluster(t)
	var addrs []string
	for _, s := range c.servers {
		addrs = append(addrs, s.addr())
	}
	locktest.Check{
		Helper: "TestCheckerHelper",
		Env:    []string{"GTX_CHECK_REDIS=" + strings.Join(addrs, ",")},
		Restart: func() {
			c.servers[0].stop()
			time.Sleep(time.Second) // the checker's TTL
			c.servers[0].start()
		},
	}.Run(t)
}
