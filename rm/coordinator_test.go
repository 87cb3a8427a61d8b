package rm

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/tc"
)

// realTC is the real coordinator of gtxtest.NewTC. It can be stopped and
// started again on the same address and file, as a restarted coordinator.
type realTC struct {
	t    *testing.T
	opts gtxtest.TCOptions
	tc   *gtxtest.TC
	addr string
}

func startRealTC(t *testing.T) *realTC {
	t.Helper()
	r := &realTC{t: t, opts: gtxtest.TCOptions{
		DBPath: filepath.Join(t.TempDir(), "tc.db"),
		// NewTC's fast retries and recovery, and short phase-2 bounds.
		Configure: func(cfg *tc.Config) {
			cfg.ServerID = "rm-test-tc"
			cfg.BranchTimeout = 5 * time.Second
			cfg.Lease = 10 * time.Second
			cfg.TimeoutCheckInterval = 50 * time.Millisecond
		},
	}}
	r.start()
	return r
}

// start starts the coordinator, on the address it had before if it ran.
func (r *realTC) start() {
	r.t.Helper()
	r.opts.Addr = r.addr
	r.tc = gtxtest.NewTC(r.t, r.opts)
	r.addr = r.tc.Addr
}

func (r *realTC) stop() { r.tc.Stop() }

// waitStatus polls the coordinator until the transaction reaches want.
func waitStatus(t *testing.T, c tcv1.CoordinatorClient, xid string, want tcv1.GlobalStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last tcv1.GlobalStatus
	for ctx.Err() == nil {
		resp, err := c.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		if err == nil {
			if last = resp.GetStatus(); last == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s stayed %v, want %v", xid, last, want)
}

// branchLog records the phase-2 calls a handler gets.
type branchLog struct {
	mu    sync.Mutex
	calls []string
	// failRollback makes rollbacks fail (retryably) while set.
	failRollback bool
}

func (l *branchLog) Commit(_ context.Context, b Branch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "commit "+string(b.ApplicationData))
	return nil
}

func (l *branchLog) Rollback(_ context.Context, b Branch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failRollback {
		return errors.New("database is busy")
	}
	l.calls = append(l.calls, "rollback "+string(b.ApplicationData))
	return nil
}

func (l *branchLog) set(fail bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failRollback = fail
}

func (l *branchLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

func TestCoordinatorPhaseTwo(t *testing.T) {
	coord := startRealTC(t)
	client := dial(t, coord.addr)
	h := &branchLog{}
	m := newManager(t, []tcv1.CoordinatorClient{client}, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_TCC, h)
		if err := m.AddResource("stock", tcv1.BranchType_TCC); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	for _, commit := range []bool{true, false} {
		b, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "phase-two"})
		if err != nil {
			t.Fatal(err)
		}
		id, err := m.RegisterBranch(ctx, b.GetXid(), tcv1.BranchType_TCC, "stock", "", []byte(b.GetXid()))
		if err != nil || id == 0 {
			t.Fatalf("RegisterBranch = %d, %v", id, err)
		}
		if err := m.ReportBranch(ctx, b.GetXid(), id, tcv1.BranchStatus_PHASE1_DONE, nil); err != nil {
			t.Fatalf("ReportBranch: %v", err)
		}
		want := "commit " + b.GetXid()
		if commit {
			if _, err := client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()}); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, client, b.GetXid(), tcv1.GlobalStatus_COMMITTED)
		} else {
			want = "rollback " + b.GetXid()
			if _, err := client.Rollback(ctx, &tcv1.RollbackRequest{Xid: b.GetXid()}); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, client, b.GetXid(), tcv1.GlobalStatus_ROLLBACKED)
		}
		if calls := h.list(); len(calls) == 0 || calls[len(calls)-1] != want {
			t.Fatalf("handler calls %q, want the last to be %q", calls, want)
		}
	}
}

func TestCoordinatorErrors(t *testing.T) {
	coord := startRealTC(t)
	client := dial(t, coord.addr)
	h := &branchLog{}
	m := newManager(t, []tcv1.CoordinatorClient{client}, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_AT, h)
		if err := m.AddResource("orders-db", tcv1.BranchType_AT); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	begin := func() string {
		b, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "locks"})
		if err != nil {
			t.Fatal(err)
		}
		return b.GetXid()
	}
	holder, waiter := begin(), begin()
	if _, err := m.RegisterBranch(ctx, holder, tcv1.BranchType_AT, "orders-db", "orders:1,2", nil); err != nil {
		t.Fatalf("RegisterBranch holder: %v", err)
	}

	_, err := m.RegisterBranch(ctx, waiter, tcv1.BranchType_AT, "orders-db", "orders:2,3", nil)
	var lc *LockConflictError
	if !errors.As(err, &lc) || !errors.Is(err, ErrLockConflict) {
		t.Fatalf("RegisterBranch on a held row = %v, want a *LockConflictError", err)
	}
	if lc.XID != waiter || lc.HolderXID != holder || lc.HolderBranchID == 0 || lc.HolderStatus != tcv1.GlobalStatus_BEGIN ||
		lc.Table != "orders" || lc.PK != "2" || lc.HolderRollingBack() {
		t.Fatalf("conflict %+v", lc)
	}

	// The holder rolls back, but its branch's rollback keeps failing: the
	// lock stays, held by a transaction that is rolling back.
	h.set(true)
	if _, err := client.Rollback(ctx, &tcv1.RollbackRequest{Xid: holder}); err != nil {
		t.Fatal(err)
	}
	_, err = m.RegisterBranch(ctx, waiter, tcv1.BranchType_AT, "orders-db", "orders:2", nil)
	if !errors.As(err, &lc) || !lc.HolderRollingBack() {
		t.Fatalf("RegisterBranch while the holder rolls back = %v (%+v), want a conflict with a rolling-back holder", err, lc)
	}

	// Once the rollback goes through, the lock is free.
	h.set(false)
	waitStatus(t, client, holder, tcv1.GlobalStatus_ROLLBACKED)
	if _, err := m.RegisterBranch(ctx, waiter, tcv1.BranchType_AT, "orders-db", "orders:2,3", nil); err != nil {
		t.Fatalf("RegisterBranch after the holder rolled back: %v", err)
	}

	var na *NotActiveError
	_, err = m.RegisterBranch(ctx, holder, tcv1.BranchType_AT, "orders-db", "orders:9", nil)
	if !errors.As(err, &na) || na.Status != tcv1.GlobalStatus_ROLLBACKED || !errors.Is(err, ErrTransactionNotActive) {
		t.Fatalf("RegisterBranch on a rolled-back transaction = %v, want a *NotActiveError with ROLLBACKED", err)
	}
	if _, err := m.RegisterBranch(ctx, "424242", tcv1.BranchType_AT, "orders-db", "", nil); !errors.Is(err, ErrTransactionNotFound) {
		t.Fatalf("RegisterBranch on an unknown xid = %v, want ErrTransactionNotFound", err)
	}
	if _, err := m.RegisterBranch(ctx, waiter, tcv1.BranchType_AT, "orders-db", "no-colon", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("RegisterBranch with bad lock keys = %v, want ErrInvalidArgument", err)
	}
}

func TestCoordinatorRestart(t *testing.T) {
	coord := startRealTC(t)
	client := dial(t, coord.addr)
	h := &branchLog{}
	m := newManager(t, []tcv1.CoordinatorClient{client}, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_TCC, h)
		if err := m.AddResource("stock", tcv1.BranchType_TCC); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	b, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RegisterBranch(ctx, b.GetXid(), tcv1.BranchType_TCC, "stock", "", []byte("r")); err != nil {
		t.Fatal(err)
	}

	// The coordinator restarts on the same address and store; the RM must
	// attach again to receive phase 2.
	coord.stop()
	coord.start()
	if _, err := client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("Commit after restart: %v", err)
	}
	waitStatus(t, client, b.GetXid(), tcv1.GlobalStatus_COMMITTED)
	if calls := h.list(); len(calls) != 1 || calls[0] != "commit r" {
		t.Fatalf("handler calls %q, want one commit", calls)
	}
	if err := m.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
}
