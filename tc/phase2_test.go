package tc_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// recorder is a phase-2 handler that records every command, in order, and
// fails while told to.
type recorder struct {
	mu       sync.Mutex
	commits  []int64
	rollback []int64
	fail     error
}

func (r *recorder) Commit(_ context.Context, b rm.Branch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.commits = append(r.commits, b.BranchID)
	return nil
}

func (r *recorder) Rollback(_ context.Context, b rm.Branch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.rollback = append(r.rollback, b.BranchID)
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) seen() (commits, rollbacks []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.commits...), append([]int64(nil), r.rollback...)
}

// startRM attaches a resource manager for resource "res" of type TCC to the
// coordinator at addr, with h as its handler.
func startRM(t testing.TB, addr string, h rm.Handler) *rm.Manager {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := rm.DefaultConfig()
	cfg.Application = "test"
	cfg.Coordinators = []tcv1.CoordinatorClient{tcv1.NewCoordinatorClient(conn)}
	cfg.ReconnectInitial = 10 * time.Millisecond
	cfg.ReconnectMax = 100 * time.Millisecond
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Handle(tcv1.BranchType_TCC, h)
	if err := m.AddResource("res", tcv1.BranchType_TCC); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		conn.Close()
	})
	return m
}

// beginWithBranches begins a transaction and registers n TCC branches.
func beginWithBranches(t *testing.T, e *env, n int) (string, []int64) {
	t.Helper()
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := 0; i < n; i++ {
		r, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{
			Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res", ApplicationData: []byte{byte(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetBranchId())
	}
	return b.GetXid(), ids
}

func TestCommitAndRollbackDriveBranches(t *testing.T) {
	e := startEnv(t, nil, "")
	h := &recorder{}
	startRM(t, e.Addr, h)
	ctx := context.Background()

	xid, ids := beginWithBranches(t, e, 3)
	c, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: xid})
	if err != nil || c.GetStatus() != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("commit: %v %v", c, err)
	}
	commits, _ := h.seen()
	if len(commits) != 3 {
		t.Fatalf("committed branches %v, want %v", commits, ids)
	}

	xid, ids = beginWithBranches(t, e, 3)
	r, err := e.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid})
	if err != nil || r.GetStatus() != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("rollback: %v %v", r, err)
	}
	_, rollbacks := h.seen()
	want := []int64{ids[2], ids[1], ids[0]}
	if fmt.Sprint(rollbacks) != fmt.Sprint(want) {
		t.Fatalf("rollback order %v, want newest first %v", rollbacks, want)
	}
	got, err := e.Client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range got.GetTransaction().GetBranches() {
		if b.GetStatus() != tcv1.BranchStatus_PHASE2_ROLLBACKED {
			t.Fatalf("branch %d is %s", b.GetBranchId(), b.GetStatus())
		}
	}
}

func TestResourceManagerDownDuringPhase2GetsCommandOnReconnect(t *testing.T) {
	e := startEnv(t, nil, "")
	ctx := context.Background()
	// No resource manager is attached when the commit is decided.
	xid, ids := beginWithBranches(t, e, 2)
	c, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: xid})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetStatus() != tcv1.GlobalStatus_COMMIT_RETRYING {
		t.Fatalf("commit with no resource manager answered %s, want COMMIT_RETRYING", c.GetStatus())
	}
	h := &recorder{}
	startRM(t, e.Addr, h)
	if st := waitStatus(t, e.Client, xid, tcv1.GlobalStatus_COMMITTED); st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("status %s after the resource manager came back", st)
	}
	if commits, _ := h.seen(); len(commits) != len(ids) {
		t.Fatalf("commits %v, want %v", commits, ids)
	}
}

func TestRetryBudgetThenOperatorRetry(t *testing.T) {
	e := startEnv(t, func(c *tc.Config) { c.MaxAttempts = 3 }, "")
	h := &recorder{fail: errors.New("stock service down")}
	startRM(t, e.Addr, h)
	ctx := context.Background()

	xid, _ := beginWithBranches(t, e, 1)
	if _, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: xid}); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, e.Client, xid, tcv1.GlobalStatus_COMMIT_FAILED); st != tcv1.GlobalStatus_COMMIT_FAILED {
		t.Fatalf("status %s, want COMMIT_FAILED after the budget", st)
	}
	got, err := e.Client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTransaction().GetAttempts() != 3 || got.GetTransaction().GetLastError() == "" {
		t.Fatalf("attempts %d, last error %q", got.GetTransaction().GetAttempts(), got.GetTransaction().GetLastError())
	}
	h.setFail(nil)
	if _, err := e.Client.Retry(ctx, &tcv1.RetryRequest{Xid: xid}); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, e.Client, xid, tcv1.GlobalStatus_COMMITTED); st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("status %s after retry", st)
	}
}

func TestUnretryableRollbackStops(t *testing.T) {
	e := startEnv(t, nil, "")
	h := &recorder{fail: rm.Unretryable(errors.New("row changed outside the transaction"))}
	startRM(t, e.Addr, h)
	ctx := context.Background()
	xid, _ := beginWithBranches(t, e, 2)
	r, err := e.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetStatus() != tcv1.GlobalStatus_ROLLBACK_FAILED {
		t.Fatalf("rollback answered %s, want ROLLBACK_FAILED", r.GetStatus())
	}
	got, _ := e.Client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
	br := got.GetTransaction().GetBranches()
	// Newest first, and it stopped at the first: the older one was not touched.
	if br[1].GetStatus() != tcv1.BranchStatus_PHASE2_ROLLBACK_FAILED_UNRETRYABLE || br[0].GetStatus() != tcv1.BranchStatus_REGISTERED {
		t.Fatalf("branch statuses %s %s", br[0].GetStatus(), br[1].GetStatus())
	}
}

func TestTimeoutRollsBackBranches(t *testing.T) {
	e := startEnv(t, nil, "")
	h := &recorder{}
	startRM(t, e.Addr, h)
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "t", TimeoutMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res"})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, e.Client, b.GetXid(), tcv1.GlobalStatus_TIMEOUT_ROLLBACKED); st != tcv1.GlobalStatus_TIMEOUT_ROLLBACKED {
		t.Fatalf("status %s", st)
	}
	if _, rb := h.seen(); len(rb) != 1 || rb[0] != r.GetBranchId() {
		t.Fatalf("rollbacks %v", rb)
	}
}

// A coordinator stopped after the commit decision and before phase 2 (its
// store holds COMMITTING), restarted on the same store, finishes the commit.
func TestRestartResumesPhase2(t *testing.T) {
	dir := t.TempDir() + "/tc.db"
	e := startEnv(t, nil, dir)
	ctx := context.Background()
	xid, ids := beginWithBranches(t, e, 2)
	// No RM: the first attempt fails and the session waits in COMMIT_RETRYING.
	if _, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: xid}); err != nil {
		t.Fatal(err)
	}
	e.Server.Close()
	e.Store.Close()

	e2 := startEnv(t, nil, dir)
	h := &recorder{}
	startRM(t, e2.Addr, h)
	if st := waitStatus(t, e2.Client, xid, tcv1.GlobalStatus_COMMITTED); st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("status %s after restart", st)
	}
	if commits, _ := h.seen(); len(commits) != len(ids) {
		t.Fatalf("commits %v, want %v", commits, ids)
	}
}

func TestManyTransactionsAllFinish(t *testing.T) {
	e := startEnv(t, nil, "")
	h := &recorder{}
	startRM(t, e.Addr, h)
	ctx := context.Background()
	const total, workers = 1000, 32
	var (
		next  atomic.Int64
		mu    sync.Mutex
		xids  []string
		g     errgroup.Group
		rolls atomic.Int64
	)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			for {
				i := next.Add(1)
				if i > total {
					return nil
				}
				b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "load"})
				if err != nil {
					return err
				}
				for k := 0; k < 2; k++ {
					if _, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{
						Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res",
						LockKeys: fmt.Sprintf("t:%d", i*2+int64(k)),
					}); err != nil {
						return err
					}
				}
				if i%5 == 0 {
					rolls.Add(1)
					_, err = e.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: b.GetXid()})
				} else {
					_, err = e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
				}
				if err != nil {
					return err
				}
				mu.Lock()
				xids = append(xids, b.GetXid())
				mu.Unlock()
			}
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	final := 0
	for _, xid := range xids {
		st, err := e.Client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetStatus() == tcv1.GlobalStatus_COMMITTED || st.GetStatus() == tcv1.GlobalStatus_ROLLBACKED {
			final++
		}
	}
	if final != total {
		t.Fatalf("%d of %d transactions final", final, total)
	}
	// Delivery is at least once: count distinct branches.
	commits, rollbacks := h.seen()
	if n, want := distinct(commits), 2*(total-int(rolls.Load())); n != want {
		t.Fatalf("%d branches committed, want %d", n, want)
	}
	if n, want := distinct(rollbacks), 2*int(rolls.Load()); n != want {
		t.Fatalf("%d branches rolled back, want %d", n, want)
	}
	q, err := e.Client.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "res", LockKeys: "t:10,t:11,t:2000"})
	if err != nil || !q.GetLockable() {
		t.Fatalf("locks outlived their transactions: %v %v", q, err)
	}
}

func distinct(ids []int64) int {
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return len(set)
}

// claimRecorder is the SQLite store, recording the XIDs ClaimDue hands out.
type claimRecorder struct {
	*sqlstore.Store
	mu      sync.Mutex
	claimed map[string]bool
}

func (c *claimRecorder) ClaimDue(ctx context.Context, owner string, statuses []tcv1.GlobalStatus, now time.Time, lease time.Duration, limit int) ([]*tc.GlobalSession, error) {
	due, err := c.Store.ClaimDue(ctx, owner, statuses, now, lease, limit)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range due {
		c.claimed[g.XID] = true
	}
	return due, err
}

func (c *claimRecorder) wasClaimed(xid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claimed[xid]
}

// beginAsync begins a transaction with one TCC branch that allows an
// asynchronous commit, and commits it, which answers ASYNC_COMMITTING.
func beginAsync(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "async"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{
		Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res", AsyncCommit: true,
	}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
	if err != nil || c.GetStatus() != tcv1.GlobalStatus_ASYNC_COMMITTING {
		t.Fatalf("commit: %v %v, want ASYNC_COMMITTING", c, err)
	}
	return b.GetXid()
}

// blocker is a phase-2 handler whose commits wait until released or
// cancelled.
type blocker struct {
	recorder
	release chan struct{}
	entered chan struct{}
}

func (b *blocker) Commit(ctx context.Context, br rm.Branch) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return b.recorder.Commit(ctx, br)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestAsyncCommitDrivenByDecidingReplica checks that the replica that
// decides an asynchronous commit drives it right away, without the recovery
// loop claiming it, and that when all its Workers are busy the recovery
// loop takes the commit instead.
func TestAsyncCommitDrivenByDecidingReplica(t *testing.T) {
	rec := &claimRecorder{claimed: map[string]bool{}}
	e := gtxtest.NewTC(t, gtxtest.TCOptions{
		Configure: func(c *tc.Config) {
			testConfig(c)
			c.Workers = 1
		},
		Store: func(s *sqlstore.Store) tc.Store { rec.Store = s; return rec },
	})
	h := &blocker{release: make(chan struct{}), entered: make(chan struct{}, 2)}
	startRM(t, e.Addr, h)

	first := beginAsync(t, e)
	<-h.entered // the one committer is busy with first
	second := beginAsync(t, e)
	<-h.entered // the recovery loop drives second
	close(h.release)
	for _, xid := range []string{first, second} {
		if st := waitStatus(t, e.Client, xid, tcv1.GlobalStatus_COMMITTED); st != tcv1.GlobalStatus_COMMITTED {
			t.Fatalf("%s: status %s", xid, st)
		}
	}
	if rec.wasClaimed(first) {
		t.Errorf("the recovery loop claimed %s, which its deciding replica drives", first)
	}
	if !rec.wasClaimed(second) {
		t.Errorf("the recovery loop did not claim %s, decided while every committer was busy", second)
	}
}

// TestCloseStopsAsyncCommitter closes the coordinator while its background
// committer waits on a branch: Close returns, and a coordinator started on
// the same store finishes the commit.
func TestCloseStopsAsyncCommitter(t *testing.T) {
	path := t.TempDir() + "/tc.db"
	e := startEnv(t, nil, path)
	h := &blocker{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	startRM(t, e.Addr, h)
	xid := beginAsync(t, e)
	<-h.entered
	e.Server.Close()
	e.Store.Close()

	e2 := startEnv(t, nil, path)
	startRM(t, e2.Addr, &recorder{})
	if st := waitStatus(t, e2.Client, xid, tcv1.GlobalStatus_COMMITTED); st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("status %s after restart", st)
	}
}

// TestCommitWhenBranchCountDrifted commits a transaction whose stored
// branch count disagrees with its branches (a repaired or restored row):
// the decision must fall back to deciding without the count, not refuse
// for ever.
func TestCommitWhenBranchCountDrifted(t *testing.T) {
	path := t.TempDir() + "/tc.db"
	e := startEnv(t, nil, path)
	h := &recorder{}
	startRM(t, e.Addr, h)
	xid, ids := beginWithBranches(t, e, 1)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE gtx_global_sessions SET branch_count = branch_count + 3 WHERE xid = ?", xid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: xid})
	if err != nil || c.GetStatus() != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("commit: %v %v, want COMMITTED", c, err)
	}
	if commits, _ := h.seen(); fmt.Sprint(commits) != fmt.Sprint(ids) {
		t.Fatalf("committed branches %v, want %v", commits, ids)
	}
}
