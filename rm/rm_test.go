package rm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const xid = "127.0.0.1:8091:42"

// funcHandler adapts functions to Handler.
type funcHandler struct {
	commit, rollback func(ctx context.Context, b Branch) error
}

func (h funcHandler) Commit(ctx context.Context, b Branch) error   { return h.commit(ctx, b) }
func (h funcHandler) Rollback(ctx context.Context, b Branch) error { return h.rollback(ctx, b) }

func TestConfigValidate(t *testing.T) {
	client := tcv1.NewCoordinatorClient(nil)
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"complete", func(*Config) {}, true},
		{"no application", func(c *Config) { c.Application = "" }, false},
		{"no client id", func(c *Config) { c.ClientID = "" }, false},
		{"no coordinators", func(c *Config) { c.Coordinators = nil }, false},
		{"nil coordinator", func(c *Config) { c.Coordinators = append(c.Coordinators, nil) }, false},
		{"zero backoff", func(c *Config) { c.ReconnectInitial = 0 }, false},
		{"max below initial", func(c *Config) { c.ReconnectMax = c.ReconnectInitial / 2 }, false},
		{"zero branch timeout", func(c *Config) { c.BranchTimeout = 0 }, false},
		{"zero workers", func(c *Config) { c.Workers = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Application = "app"
			cfg.Coordinators = []tcv1.CoordinatorClient{client}
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if _, err := New(cfg); tt.ok != (err == nil) {
				t.Fatalf("New = %v", err)
			}
		})
	}
	if a, b := DefaultConfig().ClientID, DefaultConfig().ClientID; a == b {
		t.Fatalf("two default client IDs are both %q", a)
	}
}

func TestDispatch(t *testing.T) {
	fake := newFakeTC("tc-1")
	srv := startTC(t, fake)
	errDirty := errors.New("dirty write: rows changed since phase 1")
	var mu sync.Mutex
	var calls []string
	record := func(kind string, ctx context.Context, b Branch) {
		mu.Lock()
		defer mu.Unlock()
		got, _ := gtx.XIDFromContext(ctx)
		calls = append(calls, fmt.Sprintf("%s %s %d %s %s ctx=%s", kind, b.XID, b.BranchID, b.ResourceID, b.ApplicationData, got))
	}
	at := funcHandler{
		commit: func(ctx context.Context, b Branch) error {
			record("at-commit", ctx, b)
			return nil
		},
		rollback: func(ctx context.Context, b Branch) error {
			record("at-rollback", ctx, b)
			switch string(b.ApplicationData) {
			case "dirty":
				return Unretryable(fmt.Errorf("undo: %w", errDirty))
			case "busy":
				return errors.New("database is busy")
			case "panic":
				panic("handler bug")
			}
			return nil
		},
	}
	tcc := funcHandler{
		commit: func(ctx context.Context, b Branch) error {
			record("tcc-confirm", ctx, b)
			return nil
		},
		rollback: func(ctx context.Context, b Branch) error {
			record("tcc-cancel", ctx, b)
			return nil
		},
	}
	newManager(t, []tcv1.CoordinatorClient{dial(t, srv.addr)}, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_AT, at)
		m.Handle(tcv1.BranchType_TCC, tcc)
		for _, r := range []resource{{"orders-db", tcv1.BranchType_AT}, {"stock", tcv1.BranchType_TCC}} {
			if err := m.AddResource(r.id, r.typ); err != nil {
				t.Fatalf("AddResource: %v", err)
			}
		}
	})
	commit, rollback := tcv1.BranchAction_BRANCH_COMMIT, tcv1.BranchAction_BRANCH_ROLLBACK
	tests := []struct {
		name     string
		action   tcv1.BranchAction
		typ      tcv1.BranchType
		resource string
		data     string
		xid      string
		want     tcv1.BranchStatus
		wantCall string // the handler call, or "" for none
		wantMsg  string
	}{
		{"at commit", commit, tcv1.BranchType_AT, "orders-db", "a", xid, tcv1.BranchStatus_PHASE2_COMMITTED, "at-commit", ""},
		{"at rollback", rollback, tcv1.BranchType_AT, "orders-db", "b", xid, tcv1.BranchStatus_PHASE2_ROLLBACKED, "at-rollback", ""},
		{"tcc confirm", commit, tcv1.BranchType_TCC, "stock", "c", xid, tcv1.BranchStatus_PHASE2_COMMITTED, "tcc-confirm", ""},
		{"tcc cancel", rollback, tcv1.BranchType_TCC, "stock", "d", xid, tcv1.BranchStatus_PHASE2_ROLLBACKED, "tcc-cancel", ""},
		{"retryable failure", rollback, tcv1.BranchType_AT, "orders-db", "busy", xid, tcv1.BranchStatus_PHASE2_ROLLBACK_FAILED_RETRYABLE, "at-rollback", "database is busy"},
		{"unretryable failure", rollback, tcv1.BranchType_AT, "orders-db", "dirty", xid, tcv1.BranchStatus_PHASE2_ROLLBACK_FAILED_UNRETRYABLE, "at-rollback", "dirty write"},
		{"handler panic", rollback, tcv1.BranchType_AT, "orders-db", "panic", xid, tcv1.BranchStatus_PHASE2_ROLLBACK_FAILED_RETRYABLE, "at-rollback", "panicked"},
		{"no handler for type", commit, tcv1.BranchType_SAGA, "orders-db", "e", xid, tcv1.BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, "", "no handler for branch type SAGA"},
		{"unknown resource", commit, tcv1.BranchType_AT, "billing-db", "f", xid, tcv1.BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, "", `resource "billing-db" (AT) is not registered`},
		{"resource of another type", commit, tcv1.BranchType_AT, "stock", "g", xid, tcv1.BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, "", "not registered"},
		{"malformed xid", commit, tcv1.BranchType_AT, "orders-db", "h", "bad xid", tcv1.BranchStatus_PHASE2_COMMIT_FAILED_UNRETRYABLE, "", "malformed xid"},
		{"unknown action", tcv1.BranchAction(9), tcv1.BranchType_AT, "orders-db", "i", xid, tcv1.BranchStatus_BRANCH_STATUS_UNSPECIFIED, "", "unknown branch action"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			id := int64(100 + i)
			res := fake.send(t, &tcv1.BranchCommand{
				RequestId: id, Action: tt.action, Xid: tt.xid, BranchId: id,
				BranchType: tt.typ, ResourceId: tt.resource, ApplicationData: []byte(tt.data),
			})
			if res.GetStatus() != tt.want || res.GetXid() != tt.xid || res.GetBranchId() != id {
				t.Fatalf("result %v, want status %v for %s branch %d", res, tt.want, tt.xid, id)
			}
			if !strings.Contains(res.GetMessage(), tt.wantMsg) {
				t.Fatalf("message %q does not contain %q", res.GetMessage(), tt.wantMsg)
			}
			mu.Lock()
			defer mu.Unlock()
			var want []string
			if tt.wantCall != "" {
				want = []string{fmt.Sprintf("%s %s %d %s %s ctx=%s", tt.wantCall, tt.xid, id, tt.resource, tt.data, tt.xid)}
			}
			if fmt.Sprint(calls) != fmt.Sprint(want) {
				t.Fatalf("handler calls %q, want %q", calls, want)
			}
		})
	}
}

func TestReconnectReannouncesResources(t *testing.T) {
	fake1 := newFakeTC("tc-1")
	srv := startTC(t, fake1)
	var commits atomic.Int64
	h := funcHandler{
		commit:   func(context.Context, Branch) error { commits.Add(1); return nil },
		rollback: func(context.Context, Branch) error { return nil },
	}
	m := newManager(t, []tcv1.CoordinatorClient{dial(t, srv.addr)}, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_AT, h)
		if err := m.AddResource("orders-db", tcv1.BranchType_AT); err != nil {
			t.Fatal(err)
		}
	})
	fake1.waitAnnounced(t, resource{"orders-db", tcv1.BranchType_AT})

	// The coordinator goes away; a resource is added meanwhile; a new
	// coordinator comes up on the same address.
	srv.stop()
	if err := m.AddResource("payments-db", tcv1.BranchType_AT); err != nil {
		t.Fatalf("AddResource while detached: %v", err)
	}
	fake2 := newFakeTC("tc-2")
	srv.start(fake2)
	fake2.waitAnnounced(t, resource{"orders-db", tcv1.BranchType_AT}, resource{"payments-db", tcv1.BranchType_AT})

	for i, r := range []string{"orders-db", "payments-db"} {
		res := fake2.send(t, &tcv1.BranchCommand{
			RequestId: int64(i + 1), Action: tcv1.BranchAction_BRANCH_COMMIT, Xid: xid, BranchId: int64(i + 1),
			BranchType: tcv1.BranchType_AT, ResourceId: r,
		})
		if res.GetStatus() != tcv1.BranchStatus_PHASE2_COMMITTED {
			t.Fatalf("after reconnect, commit on %s gave %v: %s", r, res.GetStatus(), res.GetMessage())
		}
	}
	if n := commits.Load(); n != 2 {
		t.Fatalf("%d commits ran, want 2", n)
	}

	// A resource added while attached is announced on the live stream.
	if err := m.AddResource("ledger", tcv1.BranchType_AT); err != nil {
		t.Fatalf("AddResource: %v", err)
	}
	fake2.waitAnnounced(t, resource{"ledger", tcv1.BranchType_AT})
}

func TestAttachesToEveryCoordinator(t *testing.T) {
	fakes := []*fakeTC{newFakeTC("tc-1"), newFakeTC("tc-2"), newFakeTC("tc-3")}
	var clients []tcv1.CoordinatorClient
	for _, f := range fakes {
		clients = append(clients, dial(t, startTC(t, f).addr))
	}
	var commits atomic.Int64
	m := newManager(t, clients, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_TCC, funcHandler{
			commit:   func(context.Context, Branch) error { commits.Add(1); return nil },
			rollback: func(context.Context, Branch) error { return nil },
		})
		if err := m.AddResource("stock", tcv1.BranchType_TCC); err != nil {
			t.Fatal(err)
		}
	})
	if !m.Ready() {
		t.Fatal("Ready is false after WaitAttached")
	}
	for i, f := range fakes {
		res := f.send(t, &tcv1.BranchCommand{
			RequestId: 1, Action: tcv1.BranchAction_BRANCH_COMMIT, Xid: xid, BranchId: int64(i + 1),
			BranchType: tcv1.BranchType_TCC, ResourceId: "stock",
		})
		if res.GetStatus() != tcv1.BranchStatus_PHASE2_COMMITTED {
			t.Fatalf("coordinator %s: %v %s", f.id, res.GetStatus(), res.GetMessage())
		}
	}
	if n := commits.Load(); n != 3 {
		t.Fatalf("%d commits, want 3", n)
	}
}

func TestConcurrentCommands(t *testing.T) {
	const workers, commands = 4, 200
	fake := newFakeTC("tc-1")
	srv := startTC(t, fake)
	var running, peak atomic.Int64
	// The first `workers` commands wait for one another: they can only all
	// finish if they run at the same time.
	barrier := make(chan struct{})
	var arrived atomic.Int64
	var seen sync.Map
	h := funcHandler{
		commit: func(ctx context.Context, b Branch) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if b.BranchID <= workers {
				if arrived.Add(1) == workers {
					close(barrier)
				}
				select {
				case <-barrier:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			seen.Store(b.BranchID, true)
			return nil
		},
		rollback: func(context.Context, Branch) error { return nil },
	}
	newManager(t, []tcv1.CoordinatorClient{dial(t, srv.addr)}, func(c *Config) {
		c.Workers = workers
		c.BranchTimeout = 30 * time.Second
	}, func(m *Manager) {
		m.Handle(tcv1.BranchType_AT, h)
		if err := m.AddResource("orders-db", tcv1.BranchType_AT); err != nil {
			t.Fatal(err)
		}
	})
	for i := int64(1); i <= commands; i++ {
		fake.start(t, &tcv1.BranchCommand{
			RequestId: i, Action: tcv1.BranchAction_BRANCH_COMMIT, Xid: xid, BranchId: i,
			BranchType: tcv1.BranchType_AT, ResourceId: "orders-db",
		})
	}
	for i := int64(1); i <= commands; i++ {
		res := fake.result(t, i)
		if res.GetBranchId() != i || res.GetStatus() != tcv1.BranchStatus_PHASE2_COMMITTED {
			t.Fatalf("result for request %d: %v", i, res)
		}
		if _, ok := seen.Load(i); !ok {
			t.Fatalf("branch %d answered but its handler never ran", i)
		}
	}
	if p := peak.Load(); p > workers {
		t.Fatalf("%d handlers ran at once, more than the %d workers", p, workers)
	}
}

func TestCloseStopsHandlersAndGoroutines(t *testing.T) {
	fake := newFakeTC("tc-1")
	srv := startTC(t, fake)
	started := make(chan struct{})
	h := funcHandler{
		commit: func(ctx context.Context, b Branch) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		},
		rollback: func(context.Context, Branch) error { return nil },
	}
	m := newManager(t, []tcv1.CoordinatorClient{dial(t, srv.addr)}, func(c *Config) { c.BranchTimeout = time.Hour }, func(m *Manager) {
		m.Handle(tcv1.BranchType_AT, h)
		if err := m.AddResource("orders-db", tcv1.BranchType_AT); err != nil {
			t.Fatal(err)
		}
	})
	fake.start(t, &tcv1.BranchCommand{RequestId: 1, Action: tcv1.BranchAction_BRANCH_COMMIT, Xid: xid, BranchId: 1, BranchType: tcv1.BranchType_AT, ResourceId: "orders-db"})
	<-started
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if m.Ready() {
		t.Fatal("Ready after Close")
	}
	if err := m.WaitAttached(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitAttached after Close = %v, want ErrClosed", err)
	}
	if err := m.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	if err := m.AddResource("x", tcv1.BranchType_AT); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddResource after Close = %v, want ErrClosed", err)
	}
	// TestMain's goleak check fails the run if any goroutine survived.
}

func TestRegistryInput(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Application = "app"
	cfg.Coordinators = []tcv1.CoordinatorClient{tcv1.NewCoordinatorClient(nil)}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tt := range []struct {
		id  string
		typ tcv1.BranchType
	}{{"", tcv1.BranchType_AT}, {"db", tcv1.BranchType_BRANCH_TYPE_UNSPECIFIED}, {"db", tcv1.BranchType(99)}} {
		if err := m.AddResource(tt.id, tt.typ); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("AddResource(%q, %v) = %v, want ErrInvalidArgument", tt.id, tt.typ, err)
		}
	}
	if err := m.AddResource("db", tcv1.BranchType_AT); err != nil {
		t.Fatal(err)
	}
	if err := m.AddResource("db", tcv1.BranchType_AT); err != nil || len(m.resources) != 1 {
		t.Fatalf("second AddResource = %v with %d resources, want a no-op", err, len(m.resources))
	}
	h := funcHandler{}
	m.Handle(tcv1.BranchType_AT, h)
	for name, f := range map[string]func(){
		"duplicate":   func() { m.Handle(tcv1.BranchType_AT, h) },
		"nil handler": func() { m.Handle(tcv1.BranchType_TCC, nil) },
		"bad type":    func() { m.Handle(tcv1.BranchType_BRANCH_TYPE_UNSPECIFIED, h) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle %s did not panic", name)
				}
			}()
			f()
		}()
	}
	ctx := context.Background()
	if _, err := m.RegisterBranch(ctx, "bad xid", tcv1.BranchType_AT, "db", "", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("RegisterBranch with a bad xid = %v", err)
	}
	if _, err := m.RegisterBranch(ctx, xid, tcv1.BranchType_AT, "", "", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("RegisterBranch without resource = %v", err)
	}
	if err := m.ReportBranch(ctx, xid, 0, tcv1.BranchStatus_PHASE1_DONE, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ReportBranch with branch 0 = %v", err)
	}
	if err := m.ReportBranch(ctx, xid, 1, tcv1.BranchStatus_BRANCH_STATUS_UNSPECIFIED, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ReportBranch without status = %v", err)
	}
}

// lockConflictStatus builds the error the coordinator answers a lock
// conflict with.
func lockConflictStatus(t *testing.T, msg string, md map[string]string) error {
	t.Helper()
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{Reason: tcv1.ReasonLockConflict, Domain: tcv1.ErrorDomain, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestRegisterBranchErrors(t *testing.T) {
	const msg = "tc: global lock on orders-db orders:7 is held by 127.0.0.1:8091:9 branch 3 (ROLLBACKING)"
	statusConflict, err := status.New(codes.FailedPrecondition, "tc: global transaction 127.0.0.1:8091:42 is TIMEOUT_ROLLBACKING").WithDetails(&errdetails.ErrorInfo{
		Reason: tcv1.ReasonStatusConflict, Domain: tcv1.ErrorDomain, Metadata: map[string]string{tcv1.MetaXID: xid, tcv1.MetaStatus: "TIMEOUT_ROLLBACKING"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		answer error
		want   error
		check  func(t *testing.T, err error)
	}{
		{
			name: "lock conflict with details",
			answer: lockConflictStatus(t, msg, map[string]string{
				tcv1.MetaHolderXID: "127.0.0.1:8091:9", tcv1.MetaHolderBranch: "3", tcv1.MetaHolderStatus: "ROLLBACKING", tcv1.MetaTable: "orders", tcv1.MetaPK: "7",
			}),
			want: ErrLockConflict,
			check: func(t *testing.T, err error) {
				var lc *LockConflictError
				if !errors.As(err, &lc) {
					t.Fatalf("%v is not a *LockConflictError", err)
				}
				if lc.XID != xid || lc.HolderXID != "127.0.0.1:8091:9" || lc.HolderBranchID != 3 || lc.HolderStatus != tcv1.GlobalStatus_ROLLBACKING ||
					lc.Table != "orders" || lc.PK != "7" || !lc.HolderRollingBack() || lc.Message != msg {
					t.Fatalf("parsed %+v", lc)
				}
			},
		},
		{
			name: "lock conflict, holder active",
			answer: lockConflictStatus(t, "tc: global lock on orders-db orders:7 is held by 127.0.0.1:8091:9 branch 3 (BEGIN)", map[string]string{
				tcv1.MetaHolderXID: "127.0.0.1:8091:9", tcv1.MetaHolderStatus: "BEGIN",
			}),
			want: ErrLockConflict,
			check: func(t *testing.T, err error) {
				var lc *LockConflictError
				if !errors.As(err, &lc) || lc.HolderRollingBack() || lc.HolderStatus != tcv1.GlobalStatus_BEGIN {
					t.Fatalf("parsed %+v", lc)
				}
			},
		},
		{
			// Only the reason says lock conflict: the message is never read.
			name:   "lock-conflict message without details",
			answer: status.Error(codes.FailedPrecondition, msg),
			want:   ErrTransactionNotActive,
		},
		{
			name:   "transaction rolling back",
			answer: statusConflict.Err(),
			want:   ErrTransactionNotActive,
			check: func(t *testing.T, err error) {
				var na *NotActiveError
				if !errors.As(err, &na) || na.Status != tcv1.GlobalStatus_TIMEOUT_ROLLBACKING || na.XID != xid {
					t.Fatalf("parsed %+v", na)
				}
			},
		},
		{name: "failed precondition without details", answer: status.Error(codes.FailedPrecondition, "finished"), want: ErrTransactionNotActive},
		{name: "not found", answer: status.Error(codes.NotFound, "tc: global transaction not found"), want: ErrTransactionNotFound},
		{name: "invalid argument", answer: status.Error(codes.InvalidArgument, "tc: invalid lock keys"), want: ErrInvalidArgument},
		{name: "unavailable everywhere", answer: status.Error(codes.Unavailable, "store down"), want: ErrCoordinatorUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeTC("tc-1")
			fake.register = func(*tcv1.RegisterBranchRequest) (*tcv1.RegisterBranchResponse, error) { return nil, tt.answer }
			m := newManager(t, []tcv1.CoordinatorClient{dial(t, startTC(t, fake).addr)}, nil, nil)
			_, err := m.RegisterBranch(context.Background(), xid, tcv1.BranchType_AT, "orders-db", "orders:7", nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("RegisterBranch = %v, want %v", err, tt.want)
			}
			if status.Code(err) != status.Code(tt.answer) {
				t.Fatalf("the gRPC code is lost: %v", status.Code(err))
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestRegisterBranchTriesNextCoordinator(t *testing.T) {
	down, up := newFakeTC("tc-down"), newFakeTC("tc-up")
	down.register = func(*tcv1.RegisterBranchRequest) (*tcv1.RegisterBranchResponse, error) {
		return nil, status.Error(codes.Unavailable, "store down")
	}
	m := newManager(t, []tcv1.CoordinatorClient{dial(t, startTC(t, down).addr), dial(t, startTC(t, up).addr)}, nil, nil)
	// Round robin starts each call at the next coordinator, so one of two
	// calls starts at the one that is down.
	for i := range 2 {
		id, err := m.RegisterBranch(context.Background(), xid, tcv1.BranchType_TCC, "stock", "", []byte("ctx"))
		if err != nil || id != int64(i+1) {
			t.Fatalf("RegisterBranch %d = %d, %v", i, id, err)
		}
	}
	down.mu.Lock()
	tried := len(down.registered)
	down.mu.Unlock()
	up.mu.Lock()
	defer up.mu.Unlock()
	if tried != 1 || len(up.registered) != 2 {
		t.Fatalf("down tried %d times, up registered %d branches; want 1 and 2", tried, len(up.registered))
	}
	if r := up.registered[0]; r.GetXid() != xid || r.GetResourceId() != "stock" || string(r.GetApplicationData()) != "ctx" || r.GetBranchType() != tcv1.BranchType_TCC {
		t.Fatalf("registered %v", r)
	}
}
