package tm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tm"
)

// crashChildEnv holds the coordinator's address in the child process of
// TestTMDeathRollsBack.
const crashChildEnv = "GTX_TM_CRASH_CHILD_TC"

// rollbacks is a TCC handler that records the branches it rolls back.
type rollbacks struct {
	mu   sync.Mutex
	xids []string
}

func (r *rollbacks) Commit(context.Context, rm.Branch) error { return nil }

func (r *rollbacks) Rollback(_ context.Context, b rm.Branch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.xids = append(r.xids, b.XID)
	return nil
}

func (r *rollbacks) has(xid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.xids {
		if x == xid {
			return true
		}
	}
	return false
}

// A process that begins a transaction (a TM whose ClientID is its resource
// manager's), enlists a branch of another service in it and is killed with
// SIGKILL gets that transaction rolled back, and the other service's
// branch compensated, once the coordinator's detach grace has passed,
// long before the transaction's timeout of ten minutes. A live process's
// open transaction is left alone.
func TestTMDeathRollsBack(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("runs as the child only")
	}
	const grace = time.Second
	coord := gtxtest.NewTC(t, gtxtest.TCOptions{Configure: func(c *tc.Config) { c.DetachGrace = grace }})
	ctx := t.Context()

	// The other service, which stays up.
	h := &rollbacks{}
	stock := newCrashRM(t, coord.Client, "stock-service", h)
	alive := tmFor(t, coord.Client, stock)
	open, err := alive.Begin(ctx, "left-open-by-a-live-process", tm.Timeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run=^TestTMCrashChild$")
	child.Env = append(os.Environ(), crashChildEnv+"="+coord.Addr)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	lines := bufio.NewScanner(out)
	var xid string
	for xid == "" && lines.Scan() {
		xid, _ = strings.CutPrefix(lines.Text(), "XID=")
	}
	if xid == "" {
		t.Fatalf("the child printed no XID: %v", lines.Err())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = child.Wait()
	status := func(xid string) tcv1.GlobalStatus {
		resp, err := coord.Client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	poll.Until(t, "the dead process's transaction to roll back", 20*time.Second, func() bool {
		return status(xid) == tcv1.GlobalStatus_ROLLBACKED && h.has(xid)
	})
	t.Logf("rolled back %v after SIGKILL of the process that began it (detach grace %v)", time.Since(killed).Round(time.Millisecond), grace)
	if st := status(open.XID()); st != tcv1.GlobalStatus_BEGIN {
		t.Fatalf("the live process's open transaction is %v, want BEGIN", st)
	}
	if _, err := open.Commit(ctx); err != nil {
		t.Fatalf("the live process's commit: %v", err)
	}
}

// TestTMCrashChild is the child of TestTMDeathRollsBack: it begins a
// transaction, enlists the stock service's branch, prints the XID and
// waits to be killed.
func TestTMCrashChild(t *testing.T) {
	addr := os.Getenv(crashChildEnv)
	if addr == "" {
		t.Skip("run by TestTMDeathRollsBack")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), rm.FastReconnect())
	if err != nil {
		t.Fatal(err)
	}
	client := tcv1.NewCoordinatorClient(conn)
	m := newCrashRM(t, client, "order-service", nil)
	mgr := tmFor(t, client, m)
	ctx := context.Background()
	tx, err := mgr.Begin(ctx, "killed-midway", tm.Timeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RegisterBranch(ctx, tx.XID(), tcv1.BranchType_TCC, "stock", "", nil); err != nil {
		t.Fatal(err)
	}
	fmt.Println("XID=" + tx.XID())
	select {}
}

// newCrashRM starts a resource manager of application app, serving the
// TCC resource "stock" through h when h is not nil, attached to client.
func newCrashRM(t *testing.T, client tcv1.CoordinatorClient, app string, h rm.Handler) *rm.Manager {
	t.Helper()
	cfg := rm.DefaultConfig()
	cfg.Application = app
	cfg.Coordinators = []tcv1.CoordinatorClient{client}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		m.Handle(tcv1.BranchType_TCC, h)
		if err := m.AddResource("stock", tcv1.BranchType_TCC); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	poll.Until(t, app+" to attach", 0, m.Ready)
	return m
}

// tmFor is a transaction manager that names its process as m does.
func tmFor(t *testing.T, client tcv1.CoordinatorClient, m *rm.Manager) *tm.Manager {
	t.Helper()
	cfg := tm.DefaultConfig()
	cfg.Application = "crash-test"
	cfg.ClientID = m.ClientID()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := tm.New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}
