package tc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/tc"
)

// env is a coordinator on a SQLite file, served over real gRPC on loopback.
type env = gtxtest.TC

// testConfig sets the timings the tests here rely on.
func testConfig(cfg *tc.Config) {
	cfg.ServerID = "test-tc"
	cfg.BranchTimeout = 5 * time.Second
	cfg.Lease = 20 * time.Second
	cfg.TimeoutCheckInterval = 50 * time.Millisecond
}

// startEnv starts a coordinator with testConfig and then configure, on the
// SQLite file at dbPath (a new one when empty).
func startEnv(t testing.TB, configure func(*tc.Config), dbPath string) *env {
	t.Helper()
	return gtxtest.NewTC(t, gtxtest.TCOptions{DBPath: dbPath, Configure: func(c *tc.Config) {
		testConfig(c)
		if configure != nil {
			configure(c)
		}
	}})
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
}

func TestBeginCommitRollbackEmpty(t *testing.T) {
	e := startEnv(t, nil, "")
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
	if err != nil || c.GetStatus() != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("commit: %v %v", c, err)
	}
	// Commit again is idempotent.
	c, err = e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
	if err != nil || c.GetStatus() != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("second commit: %v %v", c, err)
	}
	b2, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: b2.GetXid()})
	if err != nil || r.GetStatus() != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("rollback: %v %v", r, err)
	}
}

func TestBadInput(t *testing.T) {
	e := startEnv(t, nil, "")
	ctx := context.Background()
	rolled, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "rolled"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: rolled.GetXid()}); err != nil {
		t.Fatal(err)
	}
	committed, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "committed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: committed.GetXid()}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"commit malformed xid", func() error {
			_, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: "bad xid!"})
			return err
		}, codes.InvalidArgument},
		{"commit empty xid", func() error {
			_, err := e.Client.Commit(ctx, &tcv1.CommitRequest{})
			return err
		}, codes.InvalidArgument},
		{"commit unknown xid", func() error {
			_, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: "12345"})
			return err
		}, codes.NotFound},
		{"status unknown xid", func() error {
			_, err := e.Client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: "12345"})
			return err
		}, codes.NotFound},
		{"commit after rollback", func() error {
			_, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: rolled.GetXid()})
			return err
		}, codes.FailedPrecondition},
		{"rollback after commit", func() error {
			_, err := e.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: committed.GetXid()})
			return err
		}, codes.FailedPrecondition},
		{"register on finished", func() error {
			_, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: committed.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "r"})
			return err
		}, codes.FailedPrecondition},
		{"register unknown type", func() error {
			_, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: committed.GetXid(), BranchType: 99, ResourceId: "r"})
			return err
		}, codes.InvalidArgument},
		{"register bad lock keys", func() error {
			_, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: committed.GetXid(), BranchType: tcv1.BranchType_AT, ResourceId: "r", LockKeys: "no-colon"})
			return err
		}, codes.InvalidArgument},
		{"register unknown xid", func() error {
			_, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: "777", BranchType: tcv1.BranchType_AT, ResourceId: "r"})
			return err
		}, codes.NotFound},
		{"negative timeout", func() error {
			_, err := e.Client.Begin(ctx, &tcv1.BeginRequest{TimeoutMs: -1})
			return err
		}, codes.InvalidArgument},
		{"report bad status", func() error {
			_, err := e.Client.Report(ctx, &tcv1.ReportRequest{Xid: rolled.GetXid(), Status: tcv1.GlobalStatus_BEGIN})
			return err
		}, codes.InvalidArgument},
		{"retry not failed", func() error {
			_, err := e.Client.Retry(ctx, &tcv1.RetryRequest{Xid: rolled.GetXid()})
			return err
		}, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.code)
		})
	}
	// Nothing changed.
	for xid, want := range map[string]tcv1.GlobalStatus{rolled.GetXid(): tcv1.GlobalStatus_ROLLBACKED, committed.GetXid(): tcv1.GlobalStatus_COMMITTED} {
		got, err := e.Client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetTransaction().GetStatus() != want || len(got.GetTransaction().GetBranches()) != 0 {
			t.Fatalf("%s changed: %v", xid, got.GetTransaction())
		}
	}
}

func TestTimeoutRollsBackAndRefusesLateBranch(t *testing.T) {
	e := startEnv(t, nil, "")
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "slow", TimeoutMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, e.Client, b.GetXid(), tcv1.GlobalStatus_TIMEOUT_ROLLBACKED)
	if st != tcv1.GlobalStatus_TIMEOUT_ROLLBACKED {
		t.Fatalf("status %s", st)
	}
	_, err = e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_AT, ResourceId: "db", LockKeys: "t:1"})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
	wantCode(t, err, codes.FailedPrecondition)
	q, err := e.Client.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "db", LockKeys: "t:1"})
	if err != nil || !q.GetLockable() {
		t.Fatalf("lock left behind by a refused branch: %v %v", q, err)
	}
}

func TestLateRegisterBeforeSweepIsRefused(t *testing.T) {
	e := startEnv(t, func(c *tc.Config) { c.TimeoutCheckInterval = time.Hour }, "")
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "slow", TimeoutMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_, err = e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_AT, ResourceId: "db", LockKeys: "t:1"})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
	wantCode(t, err, codes.FailedPrecondition)
	st, err := e.Client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: b.GetXid()})
	if err != nil || st.GetStatus() != tcv1.GlobalStatus_TIMEOUT_ROLLBACKED {
		t.Fatalf("status %v %v", st, err)
	}
}

func TestLockConflictNamesHolder(t *testing.T) {
	e := startEnv(t, nil, "")
	ctx := context.Background()
	a, _ := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "a"})
	b, _ := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "b"})
	if _, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: a.GetXid(), BranchType: tcv1.BranchType_AT, ResourceId: "db", LockKeys: "stock:1,2"}); err != nil {
		t.Fatal(err)
	}
	// Re-entry by the same transaction is fine.
	if _, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: a.GetXid(), BranchType: tcv1.BranchType_AT, ResourceId: "db", LockKeys: "stock:2"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_AT, ResourceId: "db", LockKeys: "stock:3,2"})
	wantCode(t, err, codes.FailedPrecondition)
	info := tcv1.ErrorInfoOf(err)
	if info.GetReason() != tcv1.ReasonLockConflict || info.GetMetadata()[tcv1.MetaHolderXID] != a.GetXid() || info.GetMetadata()[tcv1.MetaHolderStatus] != "BEGIN" {
		t.Fatalf("conflict details: %v", info)
	}
	// All or none: stock:3 was not taken by b.
	q, err := e.Client.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "db", LockKeys: "stock:3"})
	if err != nil || !q.GetLockable() {
		t.Fatalf("stock:3 taken by a failed registration: %v %v", q, err)
	}
	q, err = e.Client.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "db", LockKeys: "stock:1", Xid: b.GetXid()})
	if err != nil || q.GetLockable() || q.GetHolders()[0].GetXid() != a.GetXid() {
		t.Fatalf("query: %v %v", q, err)
	}
}

// waitStatus polls until xid reaches want or 10 s pass, and returns the last
// status seen.
func waitStatus(t *testing.T, c tcv1.CoordinatorClient, xid string, want tcv1.GlobalStatus) tcv1.GlobalStatus {
	t.Helper()
	var last tcv1.GlobalStatus
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := c.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		last = st.GetStatus()
		if last == want {
			break
		}
	}
	return last
}

// Locks whose transaction finished without releasing them (its replica died
// at the wrong moment) are released by the coordinator; locks of a
// transaction still in BEGIN stay.
func TestOrphanLocksReleased(t *testing.T) {
	e := startEnv(t, func(c *tc.Config) { c.BranchTimeout = 200 * time.Millisecond; c.Lease = 400 * time.Millisecond }, "")
	ctx := context.Background()
	done, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "done"})
	if err != nil {
		t.Fatal(err)
	}
	open, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "open"})
	if err != nil {
		t.Fatal(err)
	}
	// As if a replica took the locks and died before storing the branch.
	for xid, pk := range map[string]string{done.GetXid(): "1", open.GetXid(): "2", "424242": "3"} {
		if err := e.Store.AcquireLocks(ctx, xid, 7, []tc.RowLock{{ResourceID: "db", Table: "t", PK: pk}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: done.GetXid()}); err != nil {
		t.Fatal(err)
	}
	lockable := func(pk string) bool {
		q, err := e.Client.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "db", LockKeys: "t:" + pk})
		if err != nil {
			t.Fatal(err)
		}
		return q.GetLockable()
	}
	for deadline := time.Now().Add(10 * time.Second); !(lockable("1") && lockable("3")); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("locks of a finished and of an unknown transaction were never released")
		}
	}
	if lockable("2") {
		t.Fatal("the lock of a transaction in BEGIN was released")
	}
}
