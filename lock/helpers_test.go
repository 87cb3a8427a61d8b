package lock_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/redislock"
)

func redisAddr() string {
	if a := os.Getenv("GTX_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newPrefix returns a key prefix unique to the test, whose keys are deleted
// when the test ends.
func newPrefix(t *testing.T) string {
	t.Helper()
	prefix := "gtxtest:lock:" + randomHex() + ":"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	t.Cleanup(func() {
		dropPrefix(rdb, prefix)
		_ = rdb.Close()
	})
	return prefix
}

// dropPrefix deletes every key that starts with prefix.
func dropPrefix(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// commandLog is a go-redis hook that records the commands a client sends.
type commandLog struct {
	mu       sync.Mutex
	counts   map[string]int
	inflight map[string]int
	peak     map[string]int
	seq      []string
}

func newCommandLog() *commandLog {
	return &commandLog{counts: map[string]int{}, inflight: map[string]int{}, peak: map[string]int{}}
}

// kind names a lock script call by its shape: the scripts differ in their
// number of keys and arguments.
func kind(cmd redis.Cmder) string {
	args := cmd.Args()
	name := strings.ToLower(cmd.Name())
	if name != "evalsha" && name != "eval" {
		return name
	}
	// Script calls differ in their numbers of keys and arguments; release
	// ends with the waiter channel prefix.
	last, _ := args[len(args)-1].(string)
	switch len(args) {
	case 9:
		return "acquire"
	case 7:
		if strings.HasSuffix(last, ":w:") {
			return "release"
		}
	case 6:
		if k, _ := args[3].(string); strings.HasSuffix(k, ":waiters") {
			return "enqueue"
		}
		return "renew"
	}
	return name
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		k := kind(cmd)
		l.mu.Lock()
		l.counts[k]++
		l.seq = append(l.seq, k)
		l.inflight[k]++
		l.peak[k] = max(l.peak[k], l.inflight[k])
		l.mu.Unlock()
		err := next(ctx, cmd)
		l.mu.Lock()
		l.inflight[k]--
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// Another client flushed the script cache; go-redis resends
			// the script with EVAL, which is counted instead.
			l.counts[k]--
			for i := len(l.seq) - 1; i >= 0; i-- {
				if l.seq[i] == k {
					l.seq = append(l.seq[:i], l.seq[i+1:]...)
					break
				}
			}
		}
		l.mu.Unlock()
		return err
	}
}

// ProcessPipelineHook counts the commands of a pipeline one by one (the
// Backend pipelines the calls of concurrent goroutines).
func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		l.mu.Lock()
		for _, cmd := range cmds {
			k := kind(cmd)
			l.counts[k]++
			l.seq = append(l.seq, k)
		}
		l.mu.Unlock()
		err := next(ctx, cmds)
		l.mu.Lock()
		for _, cmd := range cmds {
			if e := cmd.Err(); e != nil && strings.HasPrefix(e.Error(), "NOSCRIPT") {
				l.counts[kind(cmd)]--
			}
		}
		l.mu.Unlock()
		return err
	}
}

func (l *commandLog) count(k string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[k]
}

func (l *commandLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.counts {
		n += c
	}
	return n
}

func (l *commandLog) sequence() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seq...)
}

// proc is one simulated process: its own Redis connection pool, backend and
// lock client.
type proc struct {
	rdb     *redis.Client
	log     *commandLog
	backend *redislock.Backend
	locks   *lock.Client
}

func newProc(t testing.TB, prefix string, cfg lock.Config) *proc {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr(), PoolSize: 128}) // as the other libraries get in the benchmarks
	log := newCommandLog()
	rdb.AddHook(log)
	b, err := redislock.New(rdb, redislock.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	c, err := lock.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{rdb: rdb, log: log, backend: b, locks: c}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close client: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("close backend: %v", err)
		}
		_ = rdb.Close()
	})
	return p
}

func testConfig() lock.Config {
	cfg := lock.DefaultConfig()
	cfg.TTL = 2 * time.Second
	return cfg
}
