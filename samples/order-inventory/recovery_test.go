package orderinventory_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

// tcProcess is a `gtx tc` process on SQLite that can be killed and started
// again on the same address, store and server ID.
type tcProcess struct {
	t    *testing.T
	addr string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func newTCProcess(t *testing.T, extra ...string) *tcProcess {
	t.Helper()
	dir := t.TempDir()
	p := &tcProcess{t: t, addr: freePort(t), log: filepath.Join(dir, "tc.log")}
	p.args = append([]string{"tc", "--listen", p.addr, "--server-id", "recovery", "--store-driver", "sqlite",
		"--store-dsn", filepath.Join(dir, "tc.db"), "--log-level", "info"}, extra...)
	p.start()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.kill9()
		}
	})
	return p
}

// start starts the process and waits until it answers.
func (p *tcProcess) start() {
	p.t.Helper()
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(filepath.Join(bin, "gtx"), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	go func() {
		_ = p.cmd.Wait()
		_ = log.Close()
		close(done)
	}()
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close()
	client := tcv1.NewCoordinatorClient(conn)
	poll.Until(p.t, "the coordinator to answer", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := client.ListTransactions(ctx, &tcv1.ListTransactionsRequest{Limit: 1}, grpc.WaitForReady(true))
		return err == nil
	})
}

// kill9 kills the process with SIGKILL and waits for it to exit.
func (p *tcProcess) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// blockingTCC is a TCC handler whose commits wait until release is closed
// or their context ends, and that reports each commit on started.
type blockingTCC struct {
	started chan string
	release chan struct{}
}

func (h *blockingTCC) Commit(ctx context.Context, b rm.Branch) error {
	select {
	case h.started <- b.XID:
	default:
	}
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *blockingTCC) Rollback(context.Context, rm.Branch) error { return nil }

// A coordinator killed with SIGKILL after it decided to commit and while
// phase 2 ran resumes that phase 2 as soon as it is back, instead of at the
// next attempt the decision scheduled (Lease/2, 30 s with the default
// lease, after the decision). The test logs how long the transaction took
// to finish after the restart.
func TestPhase2ResumesAtRestart(t *testing.T) {
	t.Parallel()
	coord := newTCProcess(t, "--branch-timeout", "10s", "--lease", "60s")
	conn, err := grpc.NewClient(coord.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), rm.FastReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := tcv1.NewCoordinatorClient(conn)

	h := &blockingTCC{started: make(chan string, 1), release: make(chan struct{})}
	cfg := rm.DefaultConfig()
	cfg.Application = "recovery-test"
	cfg.Coordinators = []tcv1.CoordinatorClient{client}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Handle(tcv1.BranchType_TCC, h)
	if err := m.AddResource("recovery-stock", tcv1.BranchType_TCC); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	poll.Until(t, "the resource manager to attach", 0, m.Ready)

	ctx := t.Context()
	b, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "resume-at-restart"})
	if err != nil {
		t.Fatal(err)
	}
	xid := b.GetXid()
	if _, err := m.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, "recovery-stock", "", nil); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Its answer is lost with the coordinator.
		_, _ = client.Commit(context.WithoutCancel(ctx), &tcv1.CommitRequest{Xid: xid})
	}()
	select {
	case <-h.started:
	case <-time.After(20 * time.Second):
		t.Fatal("phase 2 never reached the branch")
	}
	coord.kill9()
	close(h.release) // the branch's commit goes through when it is asked again

	restarted := time.Now()
	coord.start()
	var st tcv1.GlobalStatus
	poll.Until(t, xid+" to commit after the restart", 10*time.Second, func() bool {
		resp, err := client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		st = resp.GetStatus()
		return err == nil && st == tcv1.GlobalStatus_COMMITTED
	})
	t.Logf("phase 2 cut by SIGKILL finished %v after the coordinator was started again", time.Since(restarted).Round(time.Millisecond))
}

// recoveryTimesEnv, set to 1, runs TestRecoveryTimes, which measures the
// sample's recovery under load (about a minute on MariaDB).
const recoveryTimesEnv = "GTX_TEST_RECOVERY_TIMES"

// TestRecoveryTimes kills, with SIGKILL, the coordinator and then the order
// service of a cluster under load, starts each again at once, and logs the
// time from the kill to the first order placed after it that committed,
// and to the end of the last transaction that was in flight at the kill.
// The invariants must hold afterwards.
func TestRecoveryTimes(t *testing.T) {
	if os.Getenv(recoveryTimesEnv) != "1" {
		t.Skipf("set %s=1 to measure recovery times", recoveryTimesEnv)
	}
	c := newCluster(t, mariaDB(t))
	ctx := t.Context()
	before, err := c.client.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, victim := range []string{"tc", "order"} {
		var (
			mu       sync.Mutex
			killedAt time.Time
			first    time.Duration
			failed   int
		)
		cfg := load.Config{Concurrency: 8, Duration: 15 * time.Second, Modes: order.Modes, FailRatio: 0.1, DelayRatio: 0.2, Delay: 300 * time.Millisecond}
		cfg.OnOrder = func(o load.Outcome) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case killedAt.IsZero():
			case o.Code == http.StatusOK && first == 0 && now.Add(-o.Latency).After(killedAt):
				first = now.Sub(killedAt)
			case o.Code != http.StatusOK && o.Code != http.StatusConflict:
				failed++
			}
		}
		done := make(chan *load.Result)
		go func() {
			res, err := load.Run(ctx, c.client, cfg)
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		time.Sleep(5 * time.Second) // the load before the kill
		mu.Lock()
		killedAt = time.Now()
		mu.Unlock()
		c.kill9(victim)
		if err := c.tryStart(victim); err != nil {
			t.Fatal(err)
		}
		back := time.Since(killedAt)
		resp, err := c.tc.ListTransactions(ctx, &tcv1.ListTransactionsRequest{Statuses: unfinished, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		var inFlight []string
		for _, tx := range resp.GetTransactions() {
			if time.UnixMilli(tx.GetBeginUnixMs()).Before(killedAt) {
				inFlight = append(inFlight, tx.GetXid())
			}
		}
		poll.Until(t, "the transactions in flight at the kill to finish", time.Minute, func() bool {
			for len(inFlight) > 0 {
				st, err := c.tc.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: inFlight[0]})
				if err != nil || slices.Contains(unfinished, st.GetStatus()) && st.GetStatus() != tcv1.GlobalStatus_COMMIT_FAILED && st.GetStatus() != tcv1.GlobalStatus_ROLLBACK_FAILED {
					return false
				}
				inFlight = inFlight[1:]
			}
			return true
		})
		last := time.Since(killedAt)
		n := len(resp.GetTransactions())
		res := <-done
		mu.Lock()
		t.Logf("%s killed under load: back (answering) %v after the kill, first committed order placed after the kill %v after it, "+
			"the %d transactions unfinished when it was back all finished %v after it; %d orders answered neither 200 nor 409 after the kill; run: %d placed, %d committed, %d rolled back, %d unknown",
			victim, back.Round(10*time.Millisecond), first.Round(10*time.Millisecond), n, last.Round(10*time.Millisecond), failed,
			res.Placed, res.Committed, res.RolledBack, res.Unknown)
		mu.Unlock()
	}
	c.waitFinished(ctx)
	c.check(ctx, before)
}
