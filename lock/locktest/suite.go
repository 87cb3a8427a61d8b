package locktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/lock"
)

// Suite says how to run the conformance suite on one backend.
type Suite struct {
	// New returns a new Backend on the store under test, as another process
	// would make it: Backends of one Run share the lock names. It is called
	// several times per test; close what it opens with t.Cleanup.
	New func(t *testing.T) lock.Backend
	// TTL is the time to live the suite asks for. The backend may round it
	// up (to its granularity or minimum), never down. Zero means 2 s.
	TTL time.Duration
	// Crash, when set, ends be as the death of its process would (closing
	// its connections without releasing anything). Nil means the holder
	// just stops renewing.
	Crash func(t *testing.T, be lock.Backend)
}

// Run runs the conformance suite.
func Run(t *testing.T, s Suite) {
	if s.TTL == 0 {
		s.TTL = 2 * time.Second
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"Tokens", testTokens},
		{"FencesGrow", testFencesGrow},
		{"WatchWakesWaiter", testWatchWakesWaiter},
		{"StoppedWatchLeavesNothing", testStoppedWatch},
		{"AbandonedLockFreed", testAbandoned},
		{"MutualExclusion", testMutualExclusion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, s) })
	}
}

// Name returns a lock name unique to this call.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func acquire(t *testing.T, be lock.Backend, name, token string, ttl time.Duration) lock.Grant {
	t.Helper()
	g, err := be.Acquire(context.Background(), name, token, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q, %q): %v", name, token, err)
	}
	return g
}

func testTokens(t *testing.T, s Suite) {
	ctx := context.Background()
	be := s.New(t)
	name := Name("tokens")
	g := acquire(t, be, name, "t1", s.TTL)
	if !g.Acquired || g.Fence < 0 || g.Validity <= 0 || g.Validity > s.TTL {
		t.Fatalf("first Acquire = %+v; want acquired, a fence ≥ 0 and a validity in (0, %v]", g, s.TTL)
	}
	if g2 := acquire(t, be, name, "t2", s.TTL); g2.Acquired {
		t.Fatalf("Acquire of a held lock = %+v, want not acquired", g2)
	}
	other := s.New(t)
	if g3 := acquire(t, other, name, "t3", s.TTL); g3.Acquired {
		t.Fatalf("Acquire of a held lock from another backend = %+v, want not acquired", g3)
	}
	wrong := []struct {
		name string
		call func() error
	}{
		{"renew by another token", func() error { _, err := be.Renew(ctx, name, "t2", s.TTL); return err }},
		{"release by another token", func() error { _, err := be.Release(ctx, name, "t2"); return err }},
		{"renew from another backend", func() error { _, err := other.Renew(ctx, name, "t3", s.TTL); return err }},
		{"release of a name never locked", func() error { _, err := be.Release(ctx, Name("never"), "t1"); return err }},
		{"renew of a name never locked", func() error { _, err := be.Renew(ctx, Name("never"), "t1", s.TTL); return err }},
	}
	for _, w := range wrong {
		if err := w.call(); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("%s = %v, want ErrNotHeld", w.name, err)
		}
	}
	v, err := be.Renew(ctx, name, "t1", s.TTL)
	if err != nil || v <= 0 || v > s.TTL {
		t.Fatalf("Renew by the holder = %v, %v; want a validity in (0, %v]", v, err, s.TTL)
	}
	if _, err := be.Release(ctx, name, "t1"); err != nil {
		t.Fatalf("Release by the holder: %v", err)
	}
	if _, err := be.Release(ctx, name, "t1"); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("second Release = %v, want ErrNotHeld", err)
	}
	if _, err := be.Renew(ctx, name, "t1", s.TTL); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("Renew after Release = %v, want ErrNotHeld", err)
	}
	g4 := acquire(t, other, name, "t4", s.TTL)
	if !g4.Acquired || g4.Fence <= g.Fence {
		t.Fatalf("Acquire after Release = %+v; want acquired with a fence above %d", g4, g.Fence)
	}
	if _, err := other.Release(ctx, name, "t4"); err != nil {
		t.Fatal(err)
	}
}

func testFencesGrow(t *testing.T, s Suite) {
	ctx := context.Background()
	bes := []lock.Backend{s.New(t), s.New(t)}
	name := Name("fences")
	last := int64(-1)
	for i := range 20 {
		be := bes[i%2]
		token := "f" + string(rune('a'+i))
		g := acquire(t, be, name, token, s.TTL)
		if !g.Acquired {
			t.Fatalf("Acquire %d of a free lock = %+v", i, g)
		}
		if g.Fence <= last {
			t.Fatalf("Acquire %d: fence %d is not above the previous %d", i, g.Fence, last)
		}
		last = g.Fence
		if _, err := be.Release(ctx, name, token); err != nil {
			t.Fatal(err)
		}
	}
}

func testWatchWakesWaiter(t *testing.T, s Suite) {
	ctx := context.Background()
	holder, waiter := s.New(t), s.New(t)
	name := Name("watch")
	if g := acquire(t, holder, name, "h", s.TTL); !g.Acquired {
		t.Fatalf("Acquire = %+v", g)
	}
	released := make(chan struct{}, 1)
	stop, err := waiter.Watch(ctx, name, "w", released)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer stop()
	if g := acquire(t, waiter, name, "w", s.TTL); g.Acquired {
		t.Fatalf("waiter's Acquire of a held lock = %+v", g)
	}
	if _, err := holder.Release(ctx, name, "h"); err != nil {
		t.Fatal(err)
	}
	// A Backend that cannot notify returns a no-op stop; its waiters poll.
	woken := false
	poll.Until(t, "the waiter to take the released lock", 0, func() bool {
		select {
		case <-released:
			woken = true
		default:
		}
		return acquire(t, waiter, name, "w", s.TTL).Acquired
	})
	t.Logf("notified: %v", woken)
	if _, err := waiter.Release(ctx, name, "w"); err != nil {
		t.Fatal(err)
	}
}

// testStoppedWatch checks that a waiter that gives up (stops its watch
// without acquiring) does not block the lock for others.
func testStoppedWatch(t *testing.T, s Suite) {
	ctx := context.Background()
	holder, quitter, next := s.New(t), s.New(t), s.New(t)
	name := Name("quit")
	if g := acquire(t, holder, name, "h", s.TTL); !g.Acquired {
		t.Fatalf("Acquire = %+v", g)
	}
	stop, err := quitter.Watch(ctx, name, "q", make(chan struct{}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if g := acquire(t, quitter, name, "q", s.TTL); g.Acquired {
		t.Fatalf("Acquire of a held lock = %+v", g)
	}
	stop()
	if _, err := holder.Release(ctx, name, "h"); err != nil {
		t.Fatal(err)
	}
	if g := acquire(t, next, name, "n", s.TTL); !g.Acquired {
		t.Fatalf("Acquire after the holder released and the waiter left = %+v, want acquired", g)
	}
	if _, err := next.Release(ctx, name, "n"); err != nil {
		t.Fatal(err)
	}
}

// testAbandoned checks that a holder that stops renewing (or dies, with
// Crash) stops blocking others, and that its late renewal is refused.
func testAbandoned(t *testing.T, s Suite) {
	ctx := context.Background()
	holder, next := s.New(t), s.New(t)
	name := Name("abandoned")
	g := acquire(t, holder, name, "h", s.TTL)
	if !g.Acquired {
		t.Fatalf("Acquire = %+v", g)
	}
	if s.Crash != nil {
		s.Crash(t, holder)
	}
	var g2 lock.Grant
	poll.Until(t, "the abandoned lock to be free", 5*s.TTL+10*time.Second, func() bool {
		g2 = acquire(t, next, name, "n", s.TTL)
		return g2.Acquired
	})
	if g2.Fence <= g.Fence {
		t.Fatalf("fence after the abandoned holding = %d, want above %d", g2.Fence, g.Fence)
	}
	if s.Crash == nil {
		if _, err := holder.Renew(ctx, name, "h", s.TTL); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("late Renew of the abandoned holder = %v, want ErrNotHeld", err)
		}
		if _, err := holder.Release(ctx, name, "h"); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("late Release of the abandoned holder = %v, want ErrNotHeld", err)
		}
	}
	if _, err := next.Release(ctx, name, "n"); err != nil {
		t.Fatal(err)
	}
}

// testMutualExclusion runs lock.Clients on three Backends, eight goroutines
// each, and checks that no two hold the lock at once and that fencing
// tokens grow.
func testMutualExclusion(t *testing.T, s Suite) {
	ctx := context.Background()
	cfg := lock.DefaultConfig()
	cfg.TTL = s.TTL
	cfg.PollInterval = 20 * time.Millisecond
	cfg.MaxHandoffs = 2
	var clients []*lock.Client
	for range 3 {
		c, err := lock.New(s.New(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		clients = append(clients, c)
	}
	name := Name("mx")
	var (
		holders atomic.Int32
		mu      sync.Mutex
		last    int64 = -1
		wg      sync.WaitGroup
	)
	for i := range 24 {
		wg.Go(func() {
			for range 4 {
				lease, err := clients[i%3].Lock(ctx, name)
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				mu.Lock()
				if lease.Fence() <= last {
					t.Errorf("fence %d is not above the previous holder's %d", lease.Fence(), last)
				}
				last = lease.Fence()
				mu.Unlock()
				holders.Add(-1)
				if err := lease.Unlock(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
