package redislock_test

import (
	"time"

	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/locktest"
	"github.com/gtx-io/gtx/lock/redislock"
)

func TestConformance(t *testing.T) {
	_, _, prefix := newBackend(t)
	locktest.Run(t, locktest.Suite{
		New: func(t *testing.T) lock.Backend {
			rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
			be, err := redislock.New(rdb, redislock.Config{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = be.Close()
				_ = rdb.Close()
			})
			return be
		},
	})
}

func TestRedLockConformance(t *testing.T) {
	c := newCluster(t)
	locktest.Run(t, locktest.Suite{
		New: func(t *testing.T) lock.Backend {
			r, err := redislock.NewRedLock(c.nodes, redislock.RedLockConfig{NodeTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		},
	})
}
