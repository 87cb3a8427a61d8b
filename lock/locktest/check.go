package locktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/lock"
)

// Environment of worker processes.
const (
	envDir  = "GTX_LOCKTEST_DIR"
	envID   = "GTX_LOCKTEST_WORKER"
	envTTL  = "GTX_LOCKTEST_TTL"
	envName = "GTX_LOCKTEST_NAME"
)

// Check is the mutual-exclusion checker: Procs worker processes take one
// lock name in a loop, each holding with a fenced write (to a store that
// refuses a token below the largest it accepted, kept in a file under an
// exclusive flock) and logging when it asked for the lock, got it and gave
// it up. Meanwhile the checker stops the holder (SIGSTOP) for 2.5 TTLs and
// resumes it, kills the holder (SIGKILL) and starts a new worker, and
// restarts the server (Restart). Afterwards it checks that
//
//   - no two holdings overlapped unless the one with the smaller token
//     ended lost (its Unlock did not succeed);
//   - a holding that asked for the lock after another had it has a larger
//     token, and no token was given twice;
//   - no write of a holding that ended cleanly was refused by the store.
type Check struct {
	// Helper is the test of the calling package that calls Worker; the
	// workers run it from the test binary.
	Helper string
	// Env is added to the workers' environment (server addresses, key
	// prefixes) for Worker's newBackend to read.
	Env []string
	// Procs is the number of worker processes. Zero means 4.
	Procs int
	// Duration is how long the workers run. Zero means 8 s.
	Duration time.Duration
	// TTL is the lock.Config TTL of the workers. Zero means 1 s.
	TTL time.Duration
	// Restart restarts the server, once, in the last third of the run. Nil
	// skips that fault.
	Restart func()
}

// holding is one line of a worker's log.
type holding struct {
	worker         string
	asked, got     int64 // Unix ns before Lock and after it returned
	released       int64 // Unix ns before Unlock
	fence          int64
	accepted, kept bool // the store accepted the write; Unlock succeeded
}

// Run runs the checker.
func (c Check) Run(t *testing.T) {
	if c.Procs == 0 {
		c.Procs = 4
	}
	if c.Duration == 0 {
		c.Duration = 8 * time.Second
	}
	if c.TTL == 0 {
		c.TTL = time.Second
	}
	dir := t.TempDir()
	name := Name("checked")
	procs := map[string]*exec.Cmd{}
	start := func(id string) {
		cmd := exec.Command(os.Args[0], "-test.run=^"+c.Helper+"$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), c.Env...),
			envDir+"="+dir, envID+"="+id, envTTL+"="+c.TTL.String(), envName+"="+name)
		out, err := os.Create(filepath.Join(dir, "out-"+id))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[id] = cmd
	}
	t.Cleanup(func() {
		for _, cmd := range procs {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	for i := range c.Procs {
		start(strconv.Itoa(i))
	}
	// The run starts when every worker is ready (started and connected),
	// however slow the machine is to start them.
	poll.Until(t, "the workers to be ready", 2*time.Minute, func() bool {
		ready, _ := filepath.Glob(filepath.Join(dir, "ready-*"))
		return len(ready) == c.Procs
	})
	until := time.Now().Add(c.Duration)
	if err := os.WriteFile(filepath.Join(dir, "start.tmp"), []byte(strconv.FormatInt(until.UnixNano(), 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "start.tmp"), filepath.Join(dir, "start")); err != nil {
		t.Fatal(err)
	}
	phase := func(n int) {
		time.Sleep(time.Until(until.Add(-c.Duration * time.Duration(4-n) / 4)))
	}

	phase(1)
	poll.Wait(c.Duration/4, func() bool { return holderOf(dir) != "" })
	if id := holderOf(dir); procs[id] != nil {
		t.Logf("stopping the holder, worker %s, for %v", id, c.TTL*5/2)
		_ = procs[id].Process.Signal(syscall.SIGSTOP)
		time.Sleep(c.TTL * 5 / 2)
		_ = procs[id].Process.Signal(syscall.SIGCONT)
	}
	phase(2)
	if id := holderOf(dir); procs[id] != nil {
		t.Logf("killing the holder, worker %s", id)
		_ = procs[id].Process.Kill()
		_ = procs[id].Wait()
		delete(procs, id)
		start(id + "b")
	}
	if c.Restart != nil {
		phase(3)
		t.Log("restarting the server")
		c.Restart()
	}
	for id, cmd := range procs {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				out, _ := os.ReadFile(filepath.Join(dir, "out-"+id))
				t.Errorf("worker %s: %v\n%s", id, err, out)
			}
		case <-time.After(time.Until(until) + 30*time.Second):
			t.Errorf("worker %s did not end", id)
		}
		delete(procs, id)
	}
	hs := readHoldings(t, dir)
	verify(t, hs)
}

// holderOf returns the worker whose write the store accepted last.
func holderOf(dir string) string {
	f, err := os.Open(filepath.Join(dir, "store"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		return ""
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	b := make([]byte, 128)
	n, _ := f.ReadAt(b, 0)
	fields := strings.Fields(string(b[:n]))
	if len(fields) < 2 {
		return ""
	}
	return fields[1]
}

func readHoldings(t *testing.T, dir string) []holding {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "log-*"))
	if err != nil {
		t.Fatal(err)
	}
	var hs []holding
	for _, p := range logs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var h holding
			var acc, kept int
			if _, err := fmt.Sscan(sc.Text(), &h.worker, &h.asked, &h.got, &h.released, &h.fence, &acc, &kept); err != nil {
				continue // a line cut by SIGKILL
			}
			h.accepted, h.kept = acc == 1, kept == 1
			hs = append(hs, h)
		}
		_ = f.Close()
	}
	return hs
}

// verify checks the invariants of Check on the holdings.
func verify(t *testing.T, hs []holding) {
	t.Helper()
	if len(hs) < 10 {
		t.Fatalf("only %d holdings in the run: the workers made no progress", len(hs))
	}
	refused, lost, overlaps := 0, 0, 0
	seen := map[int64]bool{}
	for _, h := range hs {
		if seen[h.fence] {
			t.Errorf("token %d given twice", h.fence)
		}
		seen[h.fence] = true
		if !h.accepted {
			refused++
		}
		if !h.kept {
			lost++
		}
		if h.kept && !h.accepted {
			t.Errorf("worker %s held token %d to a clean Unlock, yet the store refused its write", h.worker, h.fence)
		}
	}
	byGot := slices.Clone(hs)
	slices.SortFunc(byGot, func(a, b holding) int { return int(a.got - b.got) })
	for i, a := range byGot {
		for _, b := range byGot[i+1:] {
			if b.got >= a.released {
				break
			}
			overlaps++
			older := a
			if b.fence < a.fence {
				older = b
			}
			if older.kept {
				t.Errorf("holdings overlap: worker %s (token %d, %d..%d) and worker %s (token %d, %d..%d), and the older ended cleanly",
					a.worker, a.fence, a.got, a.released, b.worker, b.fence, b.got, b.released)
			}
		}
	}
	// Real-time order: a holding that asked after another got the lock has
	// a larger token.
	byAsked := slices.Clone(hs)
	slices.SortFunc(byAsked, func(a, b holding) int { return int(a.asked - b.asked) })
	maxBefore, j := int64(-1), 0
	var last holding
	for _, h := range byAsked {
		for ; j < len(byGot) && byGot[j].got < h.asked; j++ {
			if byGot[j].fence > maxBefore {
				maxBefore, last = byGot[j].fence, byGot[j]
			}
		}
		if h.fence <= maxBefore {
			t.Errorf("worker %s asked at %d and got token %d, not above token %d that worker %s got at %d",
				h.worker, h.asked, h.fence, maxBefore, last.worker, last.got)
		}
	}
	t.Logf("%d holdings from %s to %s, %d ended lost, %d overlaps (each with a lost older holding), %d writes refused by the fencing token", len(hs),
		time.Unix(0, byGot[0].got).Format(time.StampMilli), time.Unix(0, byGot[len(byGot)-1].released).Format(time.StampMilli), lost, overlaps, refused)
}

// Worker is the body of a worker process of Check: call it from the Helper
// test with a function that makes the Backend from the environment. It
// returns at once (skipping) when the test was not started by Check.
func Worker(t *testing.T, newBackend func(t *testing.T) lock.Backend) {
	dir := os.Getenv(envDir)
	if dir == "" {
		t.Skip("worker process of locktest.Check")
	}
	id := os.Getenv(envID)
	ttl, err := time.ParseDuration(os.Getenv(envTTL))
	if err != nil {
		t.Fatal(err)
	}
	name := os.Getenv(envName)
	cfg := lock.DefaultConfig()
	cfg.TTL = ttl
	cfg.PollInterval = 20 * time.Millisecond
	cfg.MaxHandoffs = 0
	locks, err := lock.New(newBackend(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Close(context.Background())
	logf, err := os.OpenFile(filepath.Join(dir, "log-"+id), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if err := os.WriteFile(filepath.Join(dir, "ready-"+id), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var untilNs int64
	if !poll.Wait(5*time.Minute, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "start"))
		untilNs, _ = strconv.ParseInt(string(b), 10, 64)
		return err == nil
	}) {
		t.Fatal("the checker never started the run")
	}
	until := time.Unix(0, untilNs)
	for time.Now().Before(until) {
		ctx, cancel := context.WithDeadline(context.Background(), until)
		asked := time.Now().UnixNano()
		lease, err := locks.Lock(ctx, name)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				time.Sleep(50 * time.Millisecond) // the server is down: retry soon
			}
			continue
		}
		got := time.Now().UnixNano()
		accepted, err := fencedWrite(dir, id, lease.Fence())
		if err != nil {
			t.Fatal(err)
		}
		// Hold a while, so that the checker can stop or kill a holder.
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		released := time.Now().UnixNano()
		kept := lease.Unlock(context.Background()) == nil
		if _, err := fmt.Fprintf(logf, "%s %d %d %d %d %d %d\n", id, asked, got, released, lease.Fence(), b2i(accepted), b2i(kept)); err != nil {
			t.Fatal(err)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fencedWrite is the fenced store: under an exclusive flock of the store
// file, it accepts fence unless it is below the largest accepted, and then
// records fence and the writer.
func fencedWrite(dir, id string, fence int64) (bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, "store"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	b := make([]byte, 128)
	n, _ := f.ReadAt(b, 0)
	if fields := strings.Fields(string(b[:n])); len(fields) > 0 {
		last, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return false, fmt.Errorf("locktest: corrupt store %q: %w", b[:n], err)
		}
		if fence < last {
			return false, nil
		}
	}
	line := fmt.Sprintf("%d %s", fence, id)
	if err := f.Truncate(0); err != nil {
		return false, err
	}
	_, err = f.WriteAt([]byte(line), 0)
	return err == nil, err
}
