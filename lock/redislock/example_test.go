package redislock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/redislock"
)

func ExampleNew() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	prefix, drop := examplePrefix(rdb) // keys of this example only
	defer drop()
	backend, err := redislock.New(rdb, redislock.Config{Prefix: prefix})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	locks, err := lock.New(backend, lock.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer locks.Close(ctx)

	lease, err := locks.TryLock(ctx, "report:daily")
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Unlock(ctx)
	fmt.Println("holding", lease.Name())
	// Output: holding report:daily
}

func ExampleNewRedLock() {
	var nodes []redis.UniversalClient
	for _, addr := range []string{"redis-a:6379", "redis-b:6379", "redis-c:6379", "redis-d:6379", "redis-e:6379"} {
		nodes = append(nodes, redis.NewClient(&redis.Options{
			Addr:                  addr,
			DialTimeout:           50 * time.Millisecond,
			DialerRetries:         1,
			ContextTimeoutEnabled: true,
		}))
	}
	backend, err := redislock.NewRedLock(nodes, redislock.RedLockConfig{NodeTimeout: 50 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	locks, err := lock.New(backend, lock.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer locks.Close(ctx)
	// Lock succeeds while 3 of the 5 servers answer.
	lease, err := locks.Lock(ctx, "billing:run")
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Unlock(ctx)
}
