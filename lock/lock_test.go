package lock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
)

const helperEnv = "GTX_LOCK_HELPER"

// counterIncrements is how many times each goroutine of each process
// increments the shared counter in TestMutualExclusionAcrossProcesses.
const counterIncrements = 8

// incrementUnderLock adds one to the Redis counter key by GET then SET, which
// is exact only when the lock excludes every other writer.
func incrementUnderLock(ctx context.Context, p *proc, name, counter string) error {
	lease, err := p.locks.Lock(ctx, name)
	if err != nil {
		return err
	}
	n, err := p.rdb.Get(ctx, counter).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if err := p.rdb.Set(ctx, counter, n+1, 0).Err(); err != nil {
		return err
	}
	return lease.Unlock(ctx)
}

// run64 runs fn in 64 goroutines and returns the first error.
func run64(fn func() error) error {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if err := fn(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// fenceStore is a token-checking store: it refuses writes carrying a fencing
// token lower than the highest one it has accepted. Tokens are compared as
// decimal strings (shorter is smaller, then by digits): Lua's numbers are
// doubles, which cannot tell apart tokens above 2^53.
var fenceStore = redis.NewScript(`
local last = redis.call('get', KEYS[1]) or '0'
local t = ARGV[1]
if #t < #last or (#t == #last and t < last) then
	return 0
end
redis.call('set', KEYS[1], ARGV[1])
redis.call('set', KEYS[2], ARGV[2])
return 1
`)

func fencedWrite(ctx context.Context, rdb *redis.Client, prefix string, fence int64, value string) (bool, error) {
	ok, err := fenceStore.Run(ctx, rdb, []string{prefix + "store:fence", prefix + "store:value"}, fence, value).Int()
	return ok == 1, err
}

// TestHelperProcess is the second process of the multi-process tests. It
// does nothing unless started by one of them.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	prefix := os.Getenv("GTX_LOCK_PREFIX")
	ctx := context.Background()
	switch mode {
	case "bench":
		benchProcess(t, prefix, os.Getenv("GTX_LOCK_BENCH_LIB"))
	case "count":
		p := newProc(t, prefix, testConfig())
		fmt.Println("READY")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		err := run64(func() error {
			for range counterIncrements {
				if err := incrementUnderLock(ctx, p, "counter", prefix+"count"); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Println("ERROR", err)
			return
		}
		fmt.Println("DONE")
	case "stop":
		cfg := testConfig()
		cfg.TTL = 600 * time.Millisecond
		p := newProc(t, prefix, cfg)
		lease, err := p.locks.Lock(ctx, "stopped")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("FENCE", lease.Fence())
		// The test stops this process here, past the TTL, and resumes it
		// with the line already written: the first check after the read
		// must see the lock lost, whether or not a timer has run yet.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		lost := lease.Context().Err() != nil
		validity := lease.Validity()
		called := false
		doErr := lease.Do(ctx, 0, func(ctx context.Context, fence int64) error {
			called = true
			_, err := fencedWrite(ctx, p.rdb, prefix, fence, "stale-do")
			return err
		})
		fmt.Println("CHECK", lost, validity == 0, !called && errors.Is(doErr, lock.ErrLockLost))
		fmt.Println("LOST", context.Cause(lease.Context()) == lock.ErrLockLost)
		ok, err := fencedWrite(ctx, p.rdb, prefix, lease.Fence(), "stale")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("WRITE", ok)
		fmt.Println("UNLOCK", errors.Is(lease.Unlock(ctx), lock.ErrLockLost))
	}
}

func TestMutualExclusionAcrossProcesses(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	p := newProc(t, prefix, testConfig())

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=count", "GTX_LOCK_PREFIX="+prefix)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	waitFor(t, lines, "READY")
	// Both processes start their 64 goroutines together.
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	err = run64(func() error {
		for range counterIncrements {
			if err := incrementUnderLock(ctx, p, "counter", prefix+"count"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, lines, "DONE")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	got, err := p.rdb.Get(ctx, prefix+"count").Int()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * 64 * counterIncrements; got != want {
		t.Fatalf("counter = %d, want %d: the lock let writers overlap", got, want)
	}
}

// waitFor reads lines until one starts with prefix and returns the rest.
func waitFor(t *testing.T, lines *bufio.Scanner, prefix string) string {
	t.Helper()
	for lines.Scan() {
		line := lines.Text()
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest)
		}
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "--- FAIL") {
			t.Fatalf("helper process: %s", line)
		}
	}
	t.Fatalf("helper process ended before printing %q (%v)", prefix, lines.Err())
	return ""
}

// TestStoppedHolderLosesLockAndIsFenced stops a holder (SIGSTOP) past its
// TTL, lets another process take the lock and write, and resumes the holder:
// its very first check finds its context cancelled and its validity gone,
// Do refuses to run its write, and a write it sends anyway is refused by
// the fencing token.
func TestStoppedHolderLosesLockAndIsFenced(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	p := newProc(t, prefix, testConfig())

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=stop", "GTX_LOCK_PREFIX="+prefix)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	stale, err := strconv.ParseInt(waitFor(t, lines, "FENCE"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The stopped holder cannot renew: Lock returns once its TTL runs out.
	lease, err := p.locks.Lock(ctx, "stopped")
	if err != nil {
		t.Fatal(err)
	}
	if lease.Fence() <= stale {
		t.Fatalf("new fence %d is not above the stopped holder's %d", lease.Fence(), stale)
	}
	if ok, err := fencedWrite(ctx, p.rdb, prefix, lease.Fence(), "fresh"); err != nil || !ok {
		t.Fatalf("write of the current holder: accepted=%v err=%v", ok, err)
	}
	if _, err := fmt.Fprintln(stdin, "check"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, lines, "CHECK"); got != "true true true" {
		t.Fatalf("resumed holder's first check: context cancelled, validity 0, Do refused = %s, want true true true", got)
	}
	if got := waitFor(t, lines, "LOST"); got != "true" {
		t.Fatalf("stopped holder's context cause is ErrLockLost: %s", got)
	}
	if got := waitFor(t, lines, "WRITE"); got != "false" {
		t.Fatalf("stale holder's write accepted=%s, want false", got)
	}
	if got := waitFor(t, lines, "UNLOCK"); got != "true" {
		t.Fatalf("stale holder's Unlock returned ErrLockLost: %s", got)
	}
	if v, err := p.rdb.Get(ctx, prefix+"store:value").Result(); err != nil || v != "fresh" {
		t.Fatalf("store value = %q (%v), want the current holder's", v, err)
	}
	if err := lease.Context().Err(); err != nil {
		t.Fatalf("current holder's context: %v", err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWatchdogHoldsPastTTL(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 600 * time.Millisecond
	a := newProc(t, prefix, cfg)
	b := newProc(t, prefix, cfg)

	lease, err := a.locks.Lock(ctx, "long")
	if err != nil {
		t.Fatal(err)
	}
	// A critical section three times longer than the TTL.
	deadline := time.Now().Add(3 * cfg.TTL)
	for time.Now().Before(deadline) {
		if _, err := b.locks.TryLock(ctx, "long"); !errors.Is(err, lock.ErrNotAcquired) {
			t.Fatalf("TryLock by another process while held: %v, want ErrNotAcquired", err)
		}
		time.Sleep(cfg.TTL / 4)
	}
	if err := lease.Context().Err(); err != nil {
		t.Fatalf("lease context ended while held: %v", context.Cause(lease.Context()))
	}
	if a.log.count("renew") < 3 {
		t.Fatalf("renewals = %d, want at least 3", a.log.count("renew"))
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(lease.Context()), lock.ErrUnlocked) {
		t.Fatalf("context cause after Unlock = %v", context.Cause(lease.Context()))
	}
	renewals := a.log.count("renew")
	time.Sleep(cfg.TTL)
	if a.log.count("renew") != renewals {
		t.Fatal("watchdog kept renewing after Unlock")
	}
	l2, err := b.locks.TryLock(ctx, "long")
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if l2.Fence() <= lease.Fence() {
		t.Fatalf("fence %d not above the previous %d", l2.Fence(), lease.Fence())
	}
	if err := l2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLostLockCancelsContext(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 300 * time.Millisecond
	a := newProc(t, prefix, cfg)
	lease, err := a.locks.Lock(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	// Someone else overwrites the lock (an operator, or a split brain).
	if err := a.rdb.Set(ctx, prefix+"{taken}", "intruder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	<-lease.Context().Done()
	if cause := context.Cause(lease.Context()); !errors.Is(cause, lock.ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", cause)
	}
	if err := lease.Unlock(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Unlock of a lost lock = %v, want ErrLockLost", err)
	}
	if v, _ := a.rdb.Get(ctx, prefix+"{taken}").Result(); v != "intruder" {
		t.Fatalf("Unlock of a lost lock deleted another holder's lock (value %q)", v)
	}
}

func TestReentrancy(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	a := newProc(t, prefix, testConfig())
	b := newProc(t, prefix, testConfig())

	owned := lock.WithOwner(ctx, "job-7")
	outer, err := a.locks.Lock(owned, "r")
	if err != nil {
		t.Fatal(err)
	}
	inner, err := a.locks.Lock(owned, "r")
	if err != nil {
		t.Fatal(err)
	}
	if inner.Fence() != outer.Fence() || inner.Context() != outer.Context() {
		t.Fatal("re-entry did not join the holding")
	}
	if _, err := a.locks.TryLock(ctx, "r"); !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("TryLock without the owner = %v, want ErrNotAcquired", err)
	}
	if _, err := a.locks.TryLock(lock.WithOwner(ctx, "job-8"), "r"); !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("TryLock of another owner = %v, want ErrNotAcquired", err)
	}
	if err := inner.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.locks.TryLock(ctx, "r"); !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("lock released while the outer lease holds it: %v", err)
	}
	if err := outer.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := b.locks.TryLock(ctx, "r")
	if err != nil {
		t.Fatalf("TryLock after the last Unlock: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLockBoundedByContext(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	a := newProc(t, prefix, testConfig())
	b := newProc(t, prefix, testConfig())
	held, err := a.locks.Lock(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*lock.Client{a.locks, b.locks} {
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := c.Lock(wctx, "busy")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock on a held lock with a deadline = %v, want DeadlineExceeded", err)
		}
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := a.locks.TryLock(ctx, "busy")
	if err != nil {
		t.Fatalf("lock unusable after waiters gave up: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	p := newProc(t, prefix, testConfig())

	if _, err := p.locks.Lock(ctx, ""); !errors.Is(err, lock.ErrEmptyName) {
		t.Errorf("Lock with an empty name = %v, want ErrEmptyName", err)
	}
	if _, err := p.locks.TryLock(ctx, ""); !errors.Is(err, lock.ErrEmptyName) {
		t.Errorf("TryLock with an empty name = %v, want ErrEmptyName", err)
	}
	bad := []struct {
		name string
		edit func(*lock.Config)
	}{
		{"zero TTL", func(c *lock.Config) { c.TTL = 0 }},
		{"negative TTL", func(c *lock.Config) { c.TTL = -time.Second }},
		{"renew interval not below TTL", func(c *lock.Config) { c.RenewInterval = c.TTL }},
		{"zero poll interval", func(c *lock.Config) { c.PollInterval = 0 }},
		{"negative hand-offs", func(c *lock.Config) { c.MaxHandoffs = -1 }},
		{"hand-offs beyond the fence's bits", func(c *lock.Config) { c.MaxHandoffs = lock.MaxHandoffsLimit + 1 }},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			cfg := lock.DefaultConfig()
			tt.edit(&cfg)
			if _, err := lock.New(p.backend, cfg); !errors.Is(err, lock.ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := lock.New(nil, lock.DefaultConfig()); !errors.Is(err, lock.ErrInvalidConfig) {
		t.Errorf("New with a nil backend = %v, want ErrInvalidConfig", err)
	}

	lease, err := p.locks.Lock(ctx, "once")
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lease.Unlock(ctx); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("second Unlock = %v, want ErrNotHeld", err)
	}
	if _, err := p.backend.Release(ctx, "never-locked", "no-token"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("Release of a lock not held = %v, want ErrNotHeld", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.locks.Lock(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled context = %v, want Canceled", err)
	}
}

// TestUnlockWithDoneContext checks that a deferred Unlock with a context
// that has ended (a finished request) still frees the lock at once, both
// when handing it to a local waiter and when releasing it.
func TestUnlockWithDoneContext(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = time.Minute
	a := newProc(t, prefix, cfg)
	b := newProc(t, prefix, cfg)
	done, cancel := context.WithCancel(ctx)
	cancel()

	lease, err := a.locks.Lock(ctx, "req")
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan *lock.Lease)
	go func() {
		l, err := a.locks.Lock(ctx, "req")
		if err != nil {
			t.Error(err)
		}
		waited <- l
	}()
	time.Sleep(20 * time.Millisecond) // let the waiter queue (if it has not, Unlock releases instead)
	if err := lease.Unlock(done); err != nil {
		t.Fatalf("Unlock with a done context: %v", err)
	}
	next := <-waited
	if next == nil {
		t.FailNow()
	}
	if err := next.Unlock(done); err != nil {
		t.Fatalf("Unlock with a done context: %v", err)
	}
	// Released, not left for the TTL: another process takes it at once.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	l, err := b.locks.Lock(wctx, "req")
	if err != nil {
		t.Fatalf("lock left behind after Unlock with a done context: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	a := newProc(t, prefix, testConfig())
	b := newProc(t, prefix, testConfig())

	lease, err := a.locks.Lock(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error)
	go func() {
		_, err := a.locks.Lock(ctx, "c")
		waiting <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the waiter queue
	if err := a.locks.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("waiter after Close = %v, want ErrClosed", err)
	}
	if cause := context.Cause(lease.Context()); !errors.Is(cause, lock.ErrClosed) {
		t.Fatalf("lease context cause after Close = %v, want ErrClosed", cause)
	}
	l, err := b.locks.TryLock(ctx, "c")
	if err != nil {
		t.Fatalf("Close left the lock taken: %v", err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatalf("Unlock after Close = %v", err)
	}
	if _, err := a.locks.Lock(ctx, "d"); !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("Lock after Close = %v, want ErrClosed", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}
