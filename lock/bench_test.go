package lock_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	bsmlock "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
)

// The benchmarks compare gtx's lock with github.com/bsm/redislock and
// github.com/go-redsync/redsync on the same Redis in the same run. The other
// two libraries wait by polling; they are given a 1 ms retry delay (their
// best throughput under contention) and enough tries to never give up.

const benchTTL = 10 * time.Second

// locker is one library under benchmark: lock returns an unlock function.
type locker struct {
	lock func(ctx context.Context, g int, name string) (func(context.Context) error, error)
	log  *commandLog
}

func benchRedis(b *testing.B) (*redis.Client, *commandLog) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr(), PoolSize: 128})
	log := newCommandLog()
	rdb.AddHook(log)
	b.Cleanup(func() { _ = rdb.Close() })
	return rdb, log
}

func lockers(b *testing.B, prefix string) map[string]locker {
	out := map[string]locker{}

	cfg := lock.DefaultConfig()
	cfg.TTL = benchTTL
	p := newProc(b, prefix+"gtx:", cfg)
	out["gtx"] = locker{log: p.log, lock: func(ctx context.Context, _ int, name string) (func(context.Context) error, error) {
		l, err := p.locks.Lock(ctx, name)
		if err != nil {
			return nil, err
		}
		return l.Unlock, nil
	}}

	// One Client per goroutine, as if each were its own process: no
	// single-flight and no hand-off, to show what they save.
	u := newProc(b, prefix+"gtx:", cfg)
	unshared := make([]*lock.Client, 64)
	for i := range unshared {
		c, err := lock.New(u.backend, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close(context.Background()) })
		unshared[i] = c
	}
	out["gtx-unshared"] = locker{log: u.log, lock: func(ctx context.Context, g int, name string) (func(context.Context) error, error) {
		l, err := unshared[g].Lock(ctx, name)
		if err != nil {
			return nil, err
		}
		return l.Unlock, nil
	}}

	brdb, blog := benchRedis(b)
	bsm := bsmlock.New(brdb)
	bopts := &bsmlock.Options{RetryStrategy: bsmlock.LinearBackoff(time.Millisecond)}
	out["bsm"] = locker{log: blog, lock: func(ctx context.Context, _ int, name string) (func(context.Context) error, error) {
		l, err := bsm.Obtain(ctx, prefix+"bsm:"+name, benchTTL, bopts)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}}

	rrdb, rlog := benchRedis(b)
	rs := redsync.New(goredis.NewPool(rrdb))
	out["redsync"] = locker{log: rlog, lock: func(ctx context.Context, _ int, name string) (func(context.Context) error, error) {
		m := rs.NewMutex(prefix+"redsync:"+name, redsync.WithExpiry(benchTTL), redsync.WithTries(1<<30), redsync.WithRetryDelay(time.Millisecond))
		if err := m.LockContext(ctx); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { _, err := m.UnlockContext(ctx); return err }, nil
	}}
	return out
}

var libraries = []string{"gtx", "gtx-unshared", "bsm", "redsync"}

func benchLock(b *testing.B, goroutines int, key func(g int) string) {
	prefix := "gtxbench:" + randomHex() + ":"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	b.Cleanup(func() {
		dropPrefix(rdb, prefix)
		_ = rdb.Close()
	})
	ls := lockers(b, prefix)
	for _, lib := range libraries {
		b.Run(lib, func(b *testing.B) {
			l := ls[lib]
			ctx := context.Background()
			before := l.log.total()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range goroutines {
				n := b.N / goroutines
				if g < b.N%goroutines {
					n++
				}
				name := key(g)
				wg.Go(func() {
					for range n {
						unlock, err := l.lock(ctx, g, name)
						if err != nil {
							b.Error(err)
							return
						}
						if err := unlock(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(l.log.total()-before)/float64(b.N), "redis-cmds/op")
		})
	}
}

// BenchmarkUncontended acquires and releases one lock from one goroutine.
func BenchmarkUncontended(b *testing.B) {
	benchLock(b, 1, func(int) string { return "solo" })
}

// BenchmarkContended64On1 has 64 goroutines contend for one lock.
func BenchmarkContended64On1(b *testing.B) {
	benchLock(b, 64, func(int) string { return "hot" })
}

// BenchmarkContended64On64 has 64 goroutines lock 64 different names.
func BenchmarkContended64On64(b *testing.B) {
	benchLock(b, 64, func(g int) string { return "k" + strconv.Itoa(g) })
}
