package redislock_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
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

// examplePrefix returns a key prefix of its own and a function that deletes
// its keys.
func examplePrefix(rdb *redis.Client) (string, func()) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "gtxtest:redislock:" + hex.EncodeToString(b[:]) + ":"
	return prefix, func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	}
}

func newBackend(t *testing.T) (*redislock.Backend, *redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	prefix, drop := examplePrefix(rdb)
	be, err := redislock.New(rdb, redislock.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = be.Close()
		drop()
		_ = rdb.Close()
	})
	return be, rdb, prefix
}

// TestBackendTokens checks that only the holding token can renew or
// release, and that fences grow across holdings.
func TestBackendTokens(t *testing.T) {
	be, rdb, prefix := newBackend(t)
	ctx := context.Background()
	ttl := 5 * time.Second

	before := time.Now().Add(-time.Minute).UnixMicro() / 100
	g, err := be.Acquire(ctx, "k", "t1", ttl)
	if err != nil || !g.Acquired || g.Fence < before {
		t.Fatalf("first Acquire = %+v, %v; want a fence from the clock, at least %d", g, err, before)
	}
	first := g.Fence
	g2, err := be.Acquire(ctx, "k", "t2", ttl)
	if err != nil || g2.Acquired || g2.RetryAfter <= 0 || g2.RetryAfter > ttl {
		t.Fatalf("Acquire of a held lock = %+v, %v; want not acquired with the holder's TTL", g2, err)
	}
	wrong := []struct {
		name string
		call func() error
	}{
		{"renew", func() error { _, err := be.Renew(ctx, "k", "t2", ttl); return err }},
		{"release", func() error { _, err := be.Release(ctx, "k", "t2"); return err }},
	}
	for _, w := range wrong {
		if err := w.call(); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("%s by a token that does not hold the lock = %v, want ErrNotHeld", w.name, err)
		}
	}
	if v, _ := rdb.Get(ctx, prefix+"{k}").Result(); v != "t1" {
		t.Fatalf("lock value = %q after refused calls, want t1", v)
	}
	if _, err := be.Renew(ctx, "k", "t1", ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Release(ctx, "k", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Release(ctx, "k", "t1"); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("second Release = %v, want ErrNotHeld", err)
	}
	g, err = be.Acquire(ctx, "k", "t4", ttl)
	if err != nil || g.Fence <= first {
		t.Fatalf("Acquire after release = %+v, %v; want a fence above %d", g, err, first)
	}
}

// TestBackendWakesOneWaiterInTurn checks the waiter queue: a release wakes
// the first queued waiter only, and a woken waiter beaten to the lock gets
// its place at the front back.
func TestBackendWakesOneWaiterInTurn(t *testing.T) {
	be, rdb, prefix := newBackend(t)
	ctx := context.Background()
	queue := prefix + "{w}:waiters"
	acquire := func(token string) bool {
		t.Helper()
		g, err := be.Acquire(ctx, "w", token, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return g.Acquired
	}
	queued := func() []string {
		t.Helper()
		q, err := rdb.LRange(ctx, queue, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	if !acquire("t1") {
		t.Fatal("first Acquire failed")
	}
	stops := map[string]func(){}
	watch := func(token string) chan struct{} {
		t.Helper()
		ch := make(chan struct{}, 1)
		stop, err := be.Watch(ctx, "w", token, ch)
		if err != nil {
			t.Fatal(err)
		}
		stops[token] = stop
		t.Cleanup(stop)
		return ch
	}
	w2, w3 := watch("t2"), watch("t3")
	if q := queued(); len(q) != 2 || q[0] != "t2" || q[1] != "t3" {
		t.Fatalf("queue after Watch = %v, want [t2 t3]", q)
	}
	// Their subscriptions are confirmed once a release reaches t2: until
	// then a release finds no subscriber and drops the waiter, and its next
	// attempt queues it again.
	for {
		if acquire("t2") || acquire("t3") {
			t.Fatal("a waiter took a held lock")
		}
		woke, err := be.Release(ctx, "w", "t1")
		if err != nil {
			t.Fatal(err)
		}
		if woke {
			break
		}
		if !acquire("t1") {
			t.Fatal("re-Acquire failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-w2
	if q := queued(); len(q) != 1 || q[0] != "t3" {
		t.Fatalf("queue after waking t2 = %v, want [t3]", q)
	}
	select {
	case <-w3:
		t.Fatal("a release woke the second waiter too")
	default:
	}
	// A newcomer takes the lock before t2 retries: t2 rejoins at the front.
	if !acquire("t4") {
		t.Fatal("newcomer could not take a free lock")
	}
	if acquire("t2") {
		t.Fatal("t2 took a held lock")
	}
	if q := queued(); len(q) != 2 || q[0] != "t2" || q[1] != "t3" {
		t.Fatalf("queue = %v, want [t2 t3]", q)
	}
	if _, err := be.Release(ctx, "w", "t4"); err != nil {
		t.Fatal(err)
	}
	<-w2
	if !acquire("t2") {
		t.Fatal("woken waiter could not take the released lock")
	}
	if q := queued(); len(q) != 1 || q[0] != "t3" {
		t.Fatalf("queue after t2 acquired = %v, want [t3]", q)
	}
	// A woken waiter that leaves without trying passes its turn on.
	w5 := watch("t5")
	stops["t2"]()
	if _, err := be.Release(ctx, "w", "t2"); err != nil {
		t.Fatal(err)
	}
	<-w3
	stops["t3"]()
	<-w5
	if !acquire("t5") {
		t.Fatal("waiter woken in place of one that left could not take the lock")
	}
}

func TestNewBadInput(t *testing.T) {
	if _, err := redislock.New(nil, redislock.Config{}); !errors.Is(err, lock.ErrInvalidConfig) {
		t.Fatalf("New(nil) = %v, want ErrInvalidConfig", err)
	}
}
