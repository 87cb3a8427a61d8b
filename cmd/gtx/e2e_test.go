package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// gtxBin is the gtx binary built once for the tests that run it as a
// separate process.
var gtxBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gtx-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gtxBin = filepath.Join(dir, "gtx")
	if out, err := exec.Command("go", "build", "-o", gtxBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gtx: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startTC runs `gtx tc` as a subprocess on its default store, a one-node
// raft cluster in dataDir listening on raftAddr, and waits until it serves.
func startTC(t *testing.T, addr, raftAddr, dataDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(gtxBin, "tc", "--listen", addr, "--data-dir", dataDir, "--raft-addr", raftAddr, "--server-id", "e2e",
		"--retry-initial", "20ms", "--retry-max", "200ms", "--branch-timeout", "2s", "--lease", "10s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "coordinator serving") {
				once.Do(func() { close(serving) })
			}
		}
	}()
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("gtx tc did not start")
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// blockingHandler blocks the first commit until released, then commits.
type blockingHandler struct {
	first   chan struct{}
	release chan struct{}
	once    sync.Once

	mu        sync.Mutex
	committed map[int64]bool
}

func (h *blockingHandler) Commit(ctx context.Context, b rm.Branch) error {
	blocked := false
	h.once.Do(func() { blocked = true })
	if blocked {
		close(h.first)
		<-h.release
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.committed[b.BranchID] = true
	return nil
}

func (h *blockingHandler) Rollback(context.Context, rm.Branch) error { return nil }

func (h *blockingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.committed)
}

// The coordinator is SIGKILLed after the commit decision is durable and
// before phase 2 finished; restarted on the same store, it commits every
// branch, and the TM, whose commit answer was lost, learns the outcome from
// the coordinator instead of guessing.
func TestCoordinatorKilledBetweenDecisionAndPhase2(t *testing.T) {
	addr, raftAddr := freeAddr(t), freeAddr(t)
	db := filepath.Join(t.TempDir(), "tc")
	tcProc := startTC(t, addr, raftAddr, db)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := tcv1.NewCoordinatorClient(conn)

	h := &blockingHandler{first: make(chan struct{}), release: make(chan struct{}), committed: map[int64]bool{}}
	rcfg := rm.DefaultConfig()
	rcfg.Application = "e2e"
	rcfg.Coordinators = []tcv1.CoordinatorClient{client}
	rcfg.ReconnectInitial = 20 * time.Millisecond
	rcfg.ReconnectMax = 200 * time.Millisecond
	r := startLedgerRM(t, rcfg, h, 10*time.Second)
	ctx := context.Background()

	tcfg := tm.DefaultConfig()
	tcfg.StatusPollTimeout = 60 * time.Second
	mgr, err := tm.New(client, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	var xid string
	done := make(chan error, 1)
	go func() {
		done <- mgr.WithGlobalTx(ctx, "killed", func(ctx context.Context) error {
			tx, _ := gtx.XIDFromContext(ctx)
			xid = tx
			for i := 0; i < 2; i++ {
				if _, err := r.RegisterBranch(ctx, tx, tcv1.BranchType_TCC, "ledger", "", nil); err != nil {
					return err
				}
			}
			return nil
		})
	}()

	select {
	case <-h.first:
	case err := <-done:
		t.Fatalf("transaction ended before phase 2 reached the resource manager: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("phase 2 never reached the resource manager")
	}
	if err := tcProc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tcProc.Wait()
	close(h.release)

	startTC(t, addr, raftAddr, db)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WithGlobalTx after the coordinator restarted: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the TM never learned the outcome")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		if err == nil && st.GetStatus() == tcv1.GlobalStatus_COMMITTED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after restart: %v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := h.count(); n != 2 {
		t.Fatalf("%d branches committed, want 2", n)
	}
}

// startLedgerRM starts a resource manager with cfg whose handler h runs
// phase 2 for the TCC resource "ledger", waits up to wait until it is
// attached, and closes it when t ends.
func startLedgerRM(t *testing.T, cfg rm.Config, h rm.Handler, wait time.Duration) *rm.Manager {
	t.Helper()
	r, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Handle(tcv1.BranchType_TCC, h)
	if err := r.AddResource("ledger", tcv1.BranchType_TCC); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}
