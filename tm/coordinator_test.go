package tm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tm"
)

// coordinator is the real coordinator of gtxtest.NewTC, with an
// interceptor that can lose the answer of the next Commit after running it.
type coordinator struct {
	*gtxtest.TC
	loseCommit atomic.Int32
	commits    atomic.Int32
}

func startCoordinator(t *testing.T) *coordinator {
	t.Helper()
	c := &coordinator{}
	c.TC = gtxtest.NewTC(t, gtxtest.TCOptions{
		// NewTC's fast retries and recovery, and short phase-2 bounds.
		Configure: func(cfg *tc.Config) {
			cfg.ServerID = "tm-test-tc"
			cfg.BranchTimeout = 5 * time.Second
			cfg.Lease = 10 * time.Second
			cfg.TimeoutCheckInterval = 20 * time.Millisecond
		},
		ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(c.intercept)},
	})
	return c
}

// intercept counts Commits and, when loseCommit is set, runs the next one
// and loses its answer.
func (c *coordinator) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if path.Base(info.FullMethod) == "Commit" {
		c.commits.Add(1)
		if c.loseCommit.CompareAndSwap(1, 0) {
			return nil, status.Error(codes.Unavailable, "injected: answer lost")
		}
	}
	return resp, err
}

// tccLog is a TCC-style handler that records confirms and cancels.
type tccLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *tccLog) record(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, s)
}

func (l *tccLog) Commit(_ context.Context, b rm.Branch) error {
	l.record("confirm " + b.XID)
	return nil
}

func (l *tccLog) Rollback(_ context.Context, b rm.Branch) error {
	l.record("cancel " + b.XID)
	return nil
}

func (l *tccLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// stack is a real coordinator with a TM and an attached RM.
type stack struct {
	coord *coordinator
	tm    *tm.Manager
	rm    *rm.Manager
	log   *tccLog
}

func startStack(t *testing.T) *stack {
	t.Helper()
	coord := startCoordinator(t)
	client := coord.Client
	cfg := tm.DefaultConfig()
	cfg.Application = "tm-e2e"
	cfg.StatusPollInterval = 10 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := tm.New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := rm.DefaultConfig()
	rcfg.Application = "tm-e2e"
	rcfg.Coordinators = []tcv1.CoordinatorClient{client}
	rcfg.Logger = cfg.Logger
	r, err := rm.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	log := &tccLog{}
	r.Handle(tcv1.BranchType_TCC, log)
	if err := r.AddResource("stock", tcv1.BranchType_TCC); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
	return &stack{coord: coord, tm: m, rm: r, log: log}
}

// enlist registers a TCC branch in the transaction ctx carries.
func (s *stack) enlist(ctx context.Context) error {
	xid, ok := gtx.XIDFromContext(ctx)
	if !ok {
		return errors.New("no xid in context")
	}
	_, err := s.rm.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, "stock", "", nil)
	return err
}

// waitStatus polls until the transaction's status is want.
func (s *stack) waitStatus(t *testing.T, xid string, want tcv1.GlobalStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last tcv1.GlobalStatus
	for ctx.Err() == nil {
		if st, err := s.tm.Status(ctx, xid); err == nil {
			if last = st; st == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s stayed %v, want %v", xid, last, want)
}

func TestCoordinatorEndToEnd(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	errBusiness := errors.New("card declined")
	for _, fail := range []bool{false, true} {
		var xid string
		err := s.tm.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			// A joined call enlists the branch, as a downstream service would.
			if err := s.tm.WithGlobalTx(ctx, "reserve", s.enlist, tm.WithPropagation(tm.Mandatory)); err != nil {
				return err
			}
			if fail {
				return errBusiness
			}
			return nil
		}, tm.Timeout(30*time.Second))
		want, final := "confirm "+xid, tcv1.GlobalStatus_COMMITTED
		if fail {
			want, final = "cancel "+xid, tcv1.GlobalStatus_ROLLBACKED
			if !errors.Is(err, errBusiness) {
				t.Fatalf("WithGlobalTx = %v, want it to wrap %v", err, errBusiness)
			}
		} else if err != nil {
			t.Fatalf("WithGlobalTx: %v", err)
		}
		s.waitStatus(t, xid, final)
		if calls := s.log.list(); len(calls) == 0 || calls[len(calls)-1] != want {
			t.Fatalf("branch calls %q, want the last to be %q", calls, want)
		}
	}
}

func TestCoordinatorLostCommitAnswer(t *testing.T) {
	s := startStack(t)
	tx, err := s.tm.Begin(context.Background(), "lost-answer")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.enlist(tx.Context()); err != nil {
		t.Fatal(err)
	}
	s.coord.loseCommit.Store(1)
	st, err := tx.Commit(context.Background())
	if err != nil || !(st.IsCommitting() || st == tcv1.GlobalStatus_COMMITTED) {
		t.Fatalf("Commit = %v, %v; want a commit status", st, err)
	}
	if n := s.coord.commits.Load(); n != 1 {
		t.Fatalf("Commit reached the coordinator %d times, want 1: the status query must settle it", n)
	}
	s.waitStatus(t, tx.XID(), tcv1.GlobalStatus_COMMITTED)
	if calls := s.log.list(); len(calls) != 1 || calls[0] != "confirm "+tx.XID() {
		t.Fatalf("branch calls %q, want one confirm", calls)
	}
}

func TestCoordinatorOutcomes(t *testing.T) {
	s := startStack(t)
	tx, err := s.tm.Begin(context.Background(), "too-slow", tm.Timeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// On a loaded machine the transaction may time out before its branch
	// registers; the commit's outcome is checked either way.
	enlisted := true
	if err := s.enlist(tx.Context()); errors.Is(err, rm.ErrTransactionNotActive) {
		enlisted = false
	} else if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(t, tx.XID(), tcv1.GlobalStatus_TIMEOUT_ROLLBACKED)
	_, err = tx.Commit(context.Background())
	var rb *tm.RolledBackError
	if !errors.As(err, &rb) || rb.XID != tx.XID() || rb.Status != tcv1.GlobalStatus_TIMEOUT_ROLLBACKED {
		t.Fatalf("Commit after timeout = %v, want a *RolledBackError with TIMEOUT_ROLLBACKED", err)
	}
	if calls := s.log.list(); enlisted && (len(calls) != 1 || calls[0] != "cancel "+tx.XID()) {
		t.Fatalf("branch calls %q, want one cancel", calls)
	}

	// Another party committed the transaction: a rollback is refused.
	other, err := s.tm.Begin(context.Background(), "committed-elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.coord.Client.Commit(context.Background(), &tcv1.CommitRequest{Xid: other.XID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Rollback(context.Background(), "late"); !errors.Is(err, tm.ErrCommitted) {
		t.Fatalf("Rollback of a committed transaction = %v, want ErrCommitted", err)
	}
	if _, err := s.tm.Status(context.Background(), "999"); !errors.Is(err, tm.ErrNotFound) {
		t.Fatalf("Status of an unknown xid = %v, want ErrNotFound", err)
	}
}
