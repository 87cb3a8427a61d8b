package lock_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bsmlock "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"

	"github.com/gtx-io/gtx/lock"
)

// The benchmarks compare gtx's lock with github.com/bsm/redislock,
// github.com/go-redsync/redsync and github.com/redis/rueidis/rueidislock on
// the same Redis in the same run. bsm and redsync wait by polling; they are
// given a 1 ms retry delay (their best throughput under contention) and
// enough tries to never give up. rueidislock waits with client-side caching
// invalidations and runs with its defaults (3 keys per lock, 2 needed),
// its own rueidis client (which pipelines the commands of concurrent
// goroutines on one connection) and a KeyValidity of benchTTL.
//
// Besides time, each benchmark reports the commands the Redis server ran
// per acquisition (server-cmds/op, from INFO commandstats, counting the
// commands run inside scripts), so run them on a Redis nothing else uses
// (GTX_TEST_REDIS_ADDR); go-redis clients also report the commands they
// sent (redis-cmds/op).

const benchTTL = 10 * time.Second

// locker is one library under benchmark: lock returns an unlock function.
type locker struct {
	lock func(ctx context.Context, g int, name string) (func(context.Context) error, error)
	log  *commandLog
}

func benchRedis(b testing.TB) (*redis.Client, *commandLog) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr(), PoolSize: 128})
	log := newCommandLog()
	rdb.AddHook(log)
	b.Cleanup(func() { _ = rdb.Close() })
	return rdb, log
}

func lockers(b testing.TB, prefix string) map[string]locker {
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
	rl, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption: rueidis.ClientOption{InitAddress: []string{redisAddr()}},
		KeyPrefix:    prefix + "rueidis",
		KeyValidity:  benchTTL,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rl.Close)
	out["rueidislock"] = locker{lock: func(ctx context.Context, _ int, name string) (func(context.Context) error, error) {
		_, cancel, err := rl.WithContext(ctx, name)
		if err != nil {
			return nil, err
		}
		return func(context.Context) error { cancel(); return nil }, nil
	}}
	return out
}

var libraries = []string{"gtx", "gtx-unshared", "bsm", "redsync", "rueidislock"}

// serverCommands returns how many commands the Redis server has run, from
// INFO commandstats.
func serverCommands(b testing.TB, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		c, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			b.Fatalf("commandstats line %q: %v", line, err)
		}
		n += c
	}
	return n
}

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
			var before int
			if l.log != nil {
				before = l.log.total()
			}
			serverBefore := serverCommands(b, rdb)
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
			// The INFO call that reads the counters counts itself.
			b.ReportMetric(float64(serverCommands(b, rdb)-serverBefore-1)/float64(b.N), "server-cmds/op")
			if l.log != nil {
				b.ReportMetric(float64(l.log.total()-before)/float64(b.N), "redis-cmds/op")
			}
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

// BenchmarkUncontended32On32 has 32 goroutines lock 32 different names, one
// each: no lock is ever contended, but the calls run concurrently.
func BenchmarkUncontended32On32(b *testing.B) {
	benchLock(b, 32, func(g int) string { return "u" + strconv.Itoa(g) })
}

// BenchmarkContended64On64 has 64 goroutines lock 64 different names.
func BenchmarkContended64On64(b *testing.B) {
	benchLock(b, 64, func(g int) string { return "k" + strconv.Itoa(g) })
}

// benchProcs and benchProcGoroutines shape BenchmarkContended4Procs.
const (
	benchProcs          = 4
	benchProcGoroutines = 16
)

// benchProcess is the body of one process of BenchmarkContended4Procs (run
// by TestHelperProcess): it reads "go N" lines from stdin, runs N
// acquisitions of the hot lock with lib across its goroutines, and answers
// "DONE" (or "ERROR ...").
func benchProcess(t *testing.T, prefix, lib string) {
	l := lockers(t, prefix)[lib]
	fmt.Println("READY")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(in.Text(), "go "))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		errs := make(chan error, benchProcGoroutines)
		var wg sync.WaitGroup
		for g := range benchProcGoroutines {
			k := n / benchProcGoroutines
			if g < n%benchProcGoroutines {
				k++
			}
			wg.Go(func() {
				for range k {
					unlock, err := l.lock(ctx, g, "hot")
					if err == nil {
						err = unlock(ctx)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			fmt.Println("ERROR", err)
			continue
		}
		fmt.Println("DONE")
	}
}

// BenchmarkContended4Procs has four processes of 16 goroutines each contend
// for one lock, each library in its own set of processes.
func BenchmarkContended4Procs(b *testing.B) {
	prefix := "gtxbench:" + randomHex() + ":"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	b.Cleanup(func() {
		dropPrefix(rdb, prefix)
		_ = rdb.Close()
	})
	for _, lib := range []string{"gtx", "bsm", "redsync", "rueidislock"} {
		b.Run(lib, func(b *testing.B) {
			type proc struct {
				in    io.Writer
				lines *bufio.Scanner
			}
			var procs []proc
			for range benchProcs {
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
				cmd.Env = append(os.Environ(), helperEnv+"=bench", "GTX_LOCK_PREFIX="+prefix, "GTX_LOCK_BENCH_LIB="+lib)
				cmd.Stderr = os.Stderr
				stdin, err := cmd.StdinPipe()
				if err != nil {
					b.Fatal(err)
				}
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					b.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() {
					_ = stdin.Close()
					_ = cmd.Wait()
				})
				p := proc{in: stdin, lines: bufio.NewScanner(stdout)}
				benchWaitFor(b, p.lines, "READY")
				procs = append(procs, p)
			}
			serverBefore := serverCommands(b, rdb)
			b.ResetTimer()
			for i, p := range procs {
				n := b.N / benchProcs
				if i < b.N%benchProcs {
					n++
				}
				if _, err := fmt.Fprintln(p.in, "go", n); err != nil {
					b.Fatal(err)
				}
			}
			for _, p := range procs {
				benchWaitFor(b, p.lines, "DONE")
			}
			b.StopTimer()
			b.ReportMetric(float64(serverCommands(b, rdb)-serverBefore-1)/float64(b.N), "server-cmds/op")
		})
	}
}

// benchWaitFor reads lines until one starts with prefix.
func benchWaitFor(b *testing.B, lines *bufio.Scanner, prefix string) {
	b.Helper()
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, prefix) {
			return
		}
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "--- FAIL") {
			b.Fatalf("benchmark process: %s", line)
		}
	}
	b.Fatalf("benchmark process ended before printing %q (%v)", prefix, lines.Err())
}
