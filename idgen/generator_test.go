package idgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testEpoch is the epoch of DefaultConfig.
var testEpoch = DefaultConfig().Epoch

// fakeClock is a clock the test sets; it is safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"max node", func(c *Config) { c.NodeID = MaxNodeID }, true},
		{"no borrowing", func(c *Config) { c.MaxBorrow = 0 }, true},
		{"negative node", func(c *Config) { c.NodeID = -1 }, false},
		{"node too large", func(c *Config) { c.NodeID = MaxNodeID + 1 }, false},
		{"zero epoch", func(c *Config) { c.Epoch = time.Time{} }, false},
		{"negative borrow", func(c *Config) { c.MaxBorrow = -time.Millisecond }, false},
		{"huge borrow", func(c *Config) { c.MaxBorrow = 2 * time.Hour }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			if !tt.ok {
				if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("New() error = %v, want ErrInvalidConfig", err)
				}
			}
		})
	}
}

func TestNewRejectsClockBeforeEpoch(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clock = newFakeClock(testEpoch.Add(-time.Second)).now
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New() error = %v, want ErrInvalidConfig", err)
	}
	cfg.Clock = newFakeClock(testEpoch.Add(time.Duration(MaxTime+1) * time.Millisecond)).now
	if _, err := New(cfg); !errors.Is(err, ErrTimeExhausted) {
		t.Fatalf("New() error = %v, want ErrTimeExhausted", err)
	}
}

func TestTimeExhausted(t *testing.T) {
	clock := newFakeClock(testEpoch.Add(time.Duration(MaxTime) * time.Millisecond))
	cfg := DefaultConfig()
	cfg.Clock = clock.now
	cfg.MaxBorrow = time.Millisecond
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxSeq; i++ {
		if _, err := g.NextID(); err != nil {
			t.Fatalf("NextID() #%d = %v", i, err)
		}
	}
	if _, err := g.NextID(); !errors.Is(err, ErrTimeExhausted) {
		t.Fatalf("NextID() after the last millisecond = %v, want ErrTimeExhausted", err)
	}
}

func TestNextFields(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID = 777
	before := time.Now().Truncate(time.Millisecond)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prev := int64(-1)
	for i := 0; i < 10000; i++ {
		id := g.Next()
		if id <= prev {
			t.Fatalf("id %d after %d: not increasing", id, prev)
		}
		prev = id
		p, err := Parse(id, g.Epoch())
		if err != nil {
			t.Fatal(err)
		}
		if p.Node != 777 {
			t.Fatalf("Parse(%d).Node = %d, want 777", id, p.Node)
		}
		if p.Time.Before(before) || p.Time.After(time.Now().Add(cfg.MaxBorrow)) {
			t.Fatalf("Parse(%d).Time = %s, want between %s and now+MaxBorrow", id, p.Time, before)
		}
	}
	s, err := g.NextString()
	if err != nil {
		t.Fatal(err)
	}
	if id, err := strconv.ParseInt(s, 10, 64); err != nil || id <= prev {
		t.Fatalf("NextString() = %q, want a decimal id above %d", s, prev)
	}
}

// TestConcurrentUnique draws 8 × 1M IDs from one generator on 8 goroutines
// and checks that no ID repeats. Each goroutine's IDs increase, so a merge of
// the 8 sorted lists finds a repeat without sorting or a set.
func TestConcurrentUnique(t *testing.T) {
	g, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	lists := drawConcurrently(t, g, 8, 1_000_000)
	assertUnique(t, lists...)
}

// drawConcurrently draws n IDs on each of k goroutines and returns each
// goroutine's IDs, after checking that each goroutine saw increasing IDs.
func drawConcurrently(t *testing.T, g *Generator, k, n int) [][]int64 {
	t.Helper()
	out := make([][]int64, k)
	errs := make(chan error, k)
	var wg sync.WaitGroup
	for w := range k {
		wg.Go(func() {
			mine := make([]int64, n)
			for i := range mine {
				id, err := g.NextID()
				if err != nil {
					errs <- err
					return
				}
				if i > 0 && id <= mine[i-1] {
					errs <- fmt.Errorf("goroutine %d: id %d after %d", w, id, mine[i-1])
					return
				}
				mine[i] = id
			}
			out[w] = mine
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// assertUnique fails if an ID occurs twice across lists, each of which must
// be sorted ascending.
func assertUnique(t *testing.T, lists ...[]int64) {
	t.Helper()
	heads := make([]int, len(lists))
	last, seen := int64(0), 0
	for {
		minList := -1
		for i, l := range lists {
			if heads[i] < len(l) && (minList < 0 || l[heads[i]] < lists[minList][heads[minList]]) {
				minList = i
			}
		}
		if minList < 0 {
			return
		}
		id := lists[minList][heads[minList]]
		heads[minList]++
		if seen > 0 && id == last {
			t.Fatalf("id %d handed out twice", id)
		}
		last = id
		seen++
	}
}

// TestClockStepsBackwards steps an injected clock back an hour: the generator
// keeps to its logical time, uses the rest of the current millisecond, then
// waits for the clock instead of borrowing further. Every ID is checked to be
// above the one before, so none repeats.
func TestClockStepsBackwards(t *testing.T) {
	t0 := testEpoch.Add(24 * time.Hour)
	clock := newFakeClock(t0)
	cfg := DefaultConfig()
	cfg.Clock = clock.now
	cfg.MaxWait = 2 * time.Hour
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	next := func() int64 {
		t.Helper()
		id, err := g.NextID()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Fatalf("id %d after %d: not increasing", id, ids[len(ids)-1])
		}
		ids = append(ids, id)
		return id
	}
	msOf := func(id int64) time.Time {
		p, err := Parse(id, testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		return p.Time
	}

	// The first millisecond holds sequences 1..4095; 905 more borrow t0+1ms.
	for range 5000 {
		next()
	}
	if got, want := msOf(ids[len(ids)-1]), t0.Add(time.Millisecond); !got.Equal(want) {
		t.Fatalf("after 5000 ids the time is %s, want the borrowed %s", got, want)
	}

	clock.set(t0.Add(-time.Hour))
	for range MaxSeq + 1 - 905 {
		if got, want := msOf(next()), t0.Add(time.Millisecond); !got.Equal(want) {
			t.Fatalf("after the clock stepped back the time is %s, want it to stay at %s", got, want)
		}
	}

	// The millisecond is used up and the clock is an hour behind: the
	// generator waits until the clock returns.
	done := make(chan int64)
	go func() {
		id, err := g.NextID()
		if err != nil {
			t.Error(err)
		}
		done <- id
	}()
	clock.set(t0.Add(5 * time.Millisecond))
	id := <-done
	if id <= ids[len(ids)-1] {
		t.Fatalf("id %d after %d: not increasing", id, ids[len(ids)-1])
	}
	ids = append(ids, id)
	if got, want := msOf(id), t0.Add(5*time.Millisecond); !got.Equal(want) {
		t.Fatalf("after the clock came back the time is %s, want %s", got, want)
	}

	// A clock that jitters back and forth by less than MaxBorrow.
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 2000 {
		clock.set(t0.Add(time.Duration(step)*time.Millisecond - time.Duration(rng.IntN(50))*time.Millisecond))
		for range rng.IntN(300) {
			next()
		}
	}
}

// TestConcurrentClockJitter has goroutines draw IDs while another one moves
// the clock forward and back, sometimes by more than MaxBorrow.
func TestConcurrentClockJitter(t *testing.T) {
	t0 := testEpoch.Add(24 * time.Hour)
	clock := newFakeClock(t0)
	cfg := DefaultConfig()
	cfg.Clock = clock.now
	cfg.MaxBorrow = 2 * time.Millisecond
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var jitter sync.WaitGroup
	jitter.Go(func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for step := 0; ; step++ {
			select {
			case <-stop:
				return
			default:
			}
			back := time.Duration(rng.IntN(20)) * time.Millisecond
			clock.set(t0.Add(time.Duration(step)*time.Millisecond - back))
			time.Sleep(50 * time.Microsecond)
		}
	})
	lists := drawConcurrently(t, g, 4, 20_000)
	close(stop)
	jitter.Wait()
	assertUnique(t, lists...)
}

func TestNoBorrowingWaitsForTheClock(t *testing.T) {
	t0 := testEpoch.Add(time.Hour)
	clock := newFakeClock(t0)
	cfg := DefaultConfig()
	cfg.Clock = clock.now
	cfg.MaxBorrow = 0
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for range MaxSeq {
		last = g.Next()
	}
	done := make(chan int64)
	go func() { done <- g.Next() }()
	clock.add(time.Millisecond)
	id := <-done
	p, err := Parse(id, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if id <= last || !p.Time.Equal(t0.Add(time.Millisecond)) || p.Seq != 0 {
		t.Fatalf("after the clock moved: id %d %+v, want above %d at %s with seq 0", id, p, last, t0.Add(time.Millisecond))
	}
}

// TestClockBehindBeyondMaxWait steps the clock back further than MaxWait:
// once the current millisecond is used up, NextID returns ErrClockBehind at
// once instead of blocking, and works again when the clock is back.
func TestClockBehindBeyondMaxWait(t *testing.T) {
	t0 := testEpoch.Add(24 * time.Hour)
	clock := newFakeClock(t0)
	cfg := DefaultConfig()
	cfg.Clock = clock.now
	cfg.MaxBorrow = 0
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := g.Next()
	clock.set(t0.Add(-time.Minute))
	var got error
	for range MaxSeq + 1 {
		id, err := g.NextID()
		if err != nil {
			got = err
			break
		}
		if id <= last {
			t.Fatalf("id %d after %d: not increasing", id, last)
		}
		last = id
	}
	if !errors.Is(got, ErrClockBehind) {
		t.Fatalf("NextID a minute behind with MaxWait %v = %v, want ErrClockBehind", cfg.MaxWait, got)
	}
	clock.set(t0.Add(time.Millisecond))
	id, err := g.NextID()
	if err != nil || id <= last {
		t.Fatalf("NextID once the clock is back = %d, %v; want an id above %d", id, err, last)
	}
}
