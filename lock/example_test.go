package lock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/redislock"
)

func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	prefix := "gtx:example:" + randomHex() + ":"
	defer dropPrefix(rdb, prefix)
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

	lease, err := locks.Lock(ctx, "account:42")
	if err != nil {
		log.Fatal(err)
	}
	// Work under lease.Context(): it is cancelled if the lock is lost. Do
	// runs a write only while the lock is known held for long enough, and
	// passes lease.Fence() to storage that can refuse stale holders.
	err = lease.Do(ctx, time.Second, func(ctx context.Context, fence int64) error {
		fmt.Println("alive", ctx.Err() == nil, "fenced", fence > 0)
		return nil // store.Write(ctx, fence, value)
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := lease.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: alive true fenced true
}

func ExampleWithOwner() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	prefix := "gtx:example:" + randomHex() + ":"
	defer dropPrefix(rdb, prefix)
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

	// The same owner re-enters a lock it holds; the lock is released when
	// the last lease is unlocked.
	ctx = lock.WithOwner(ctx, "order-service/job-7")
	outer, err := locks.Lock(ctx, "inventory:sku-1")
	if err != nil {
		log.Fatal(err)
	}
	inner, err := locks.Lock(ctx, "inventory:sku-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same holding:", inner.Fence() == outer.Fence())
	_ = inner.Unlock(ctx)
	_ = outer.Unlock(ctx)
	// Output: same holding: true
}
