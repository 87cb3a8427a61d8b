package tcc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm"
)

// freeze is the request of the test action: freeze Amount on Account.
type freeze struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
	// FailTry makes Try fail after its business work.
	FailTry bool `json:"fail_try,omitempty"`
}

var errTry = errors.New("test: try failed as asked")

// service is one participant service with one action, "<name>.freeze".
type service struct {
	b      *backend
	rm     *rm.Manager
	p      *Participant
	fence  *Fence
	action *Action[freeze]

	tries, confirms, cancels atomic.Int64
	// confirmHook, when set, runs in Confirm after its business work.
	confirmHook atomic.Pointer[func(ctx context.Context) error]
}

// newService registers the action on a new resource manager of c, started
// unless start is false.
func newService(t testing.TB, c *cluster, b *backend, name, flavour string, start bool, opts ...ActionOption) *service {
	t.Helper()
	m := c.newRM(t)
	return newServiceOn(t, m, NewParticipant(m, quiet), b, name, flavour, start, opts...)
}

// newServiceOn is newService on a given resource manager and participant.
func newServiceOn(t testing.TB, m *rm.Manager, p *Participant, b *backend, name, flavour string, start bool, opts ...ActionOption) *service {
	t.Helper()
	s := &service{b: b, rm: m, p: p, fence: b.fence(t, flavour)}
	a, err := Register(s.p, name+".freeze", s.fence, Phases[freeze]{
		Try: func(ctx context.Context, tx Tx, bc *BranchContext[freeze]) error {
			s.tries.Add(1)
			r := bc.Request
			if err := b.exec(ctx, tx, freezeSQL, r.Amount, r.Amount, r.Account, r.Amount); err != nil {
				return fmt.Errorf("freeze %d on %s: %w", r.Amount, r.Account, err)
			}
			if r.FailTry {
				return errTry
			}
			return bc.Set("held", r.Amount)
		},
		Confirm: func(ctx context.Context, tx Tx, bc *BranchContext[freeze]) error {
			s.confirms.Add(1)
			held, err := heldOf(bc)
			if err != nil {
				return err
			}
			if err := b.exec(ctx, tx, spendSQL, held, held, bc.Request.Account); err != nil {
				return err
			}
			if h := s.confirmHook.Load(); h != nil {
				return (*h)(ctx)
			}
			return nil
		},
		Cancel: func(ctx context.Context, tx Tx, bc *BranchContext[freeze]) error {
			s.cancels.Add(1)
			held, err := heldOf(bc)
			if err != nil {
				return err
			}
			return b.exec(ctx, tx, releaseSQL, held, held, bc.Request.Account)
		},
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.action = a
	if start {
		startRM(t, s.rm)
	}
	return s
}

// heldOf reads the value Try stored: Confirm and Cancel use it, not the
// request, so a lost value fails the test.
func heldOf(bc *BranchContext[freeze]) (int64, error) {
	var held int64
	ok, err := bc.Get("held", &held)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("test: %s branch %d has no held value", bc.XID, bc.BranchID)
	}
	return held, nil
}

func wantAccount(t testing.TB, b *backend, id string, want account) {
	t.Helper()
	eventually(t, fmt.Sprintf("account %s to be %+v", id, want), func() bool { return b.account(t, id) == want })
}

// backendFlavour gives each backend one way to open its fences in the
// global tests, so that both ways meet the coordinator.
func backendFlavour(b *backend) string {
	if b.dialect == Postgres {
		return "sql"
	}
	return "gorm"
}

func TestCommitConfirmsOnce(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		c := startCluster(t)
		sa := newService(t, c, b, "a", backendFlavour(b), true)
		sb := newService(t, c, b, "b", backendFlavour(b), true)
		b.addAccount(t, "c1", 100)
		b.addAccount(t, "c2", 100)
		ctx := testContext(t)
		var xid string
		var ida, idb int64
		err := c.tm.WithGlobalTx(ctx, "commit", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			var err error
			if ida, err = sa.action.Try(ctx, freeze{Account: "c1", Amount: 30}); err != nil {
				return err
			}
			idb, err = sb.action.Try(ctx, freeze{Account: "c2", Amount: 20})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wantAccount(t, b, "c1", account{balance: 70, spent: 30})
		wantAccount(t, b, "c2", account{balance: 80, spent: 20})

		// The coordinator delivers at least once: the same Confirm again,
		// many times at once, runs the business work no more.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 8 {
			for _, s := range []struct {
				svc *service
				id  int64
				req freeze
			}{{sa, ida, freeze{Account: "c1", Amount: 30}}, {sb, idb, freeze{Account: "c2", Amount: 20}}} {
				wg.Go(func() {
					errs <- s.svc.p.Commit(ctx, branchOf(t, xid, s.id, s.svc.action.Name(), s.req, s.req.Amount))
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("redelivered confirm: %v", err)
			}
		}
		if sa.confirms.Load() != 1 || sb.confirms.Load() != 1 {
			t.Fatalf("confirm work ran %d and %d times, want once each", sa.confirms.Load(), sb.confirms.Load())
		}
		wantAccount(t, b, "c1", account{balance: 70, spent: 30})
		wantAccount(t, b, "c2", account{balance: 80, spent: 20})
	})
}

// branchOf builds the phase-2 branch the coordinator would send.
func branchOf(t testing.TB, xid string, id int64, action string, req freeze, held int64) rm.Branch {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := json.Marshal(held)
	data, err := encodeContext(raw, map[string]json.RawMessage{"held": h})
	if err != nil {
		t.Fatal(err)
	}
	return rm.Branch{XID: xid, BranchID: id, Type: tcv1.BranchType_TCC, ResourceID: action, ApplicationData: data}
}

func TestFailingTryCancels(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		c := startCluster(t)
		sa := newService(t, c, b, "a", backendFlavour(b), true)
		sb := newService(t, c, b, "b", backendFlavour(b), true)
		b.addAccount(t, "f1", 100)
		b.addAccount(t, "f2", 100)
		b.addAccount(t, "poor", 5)
		ctx := testContext(t)
		tests := []struct {
			name    string
			second  freeze
			wantErr error
		}{
			{"try returns an error", freeze{Account: "f2", Amount: 20, FailTry: true}, errTry},
			{"business check fails", freeze{Account: "poor", Amount: 20}, errNoRow},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var xid string
				var idb int64
				err := c.tm.WithGlobalTx(ctx, "rollback", func(ctx context.Context) error {
					xid, _ = gtx.XIDFromContext(ctx)
					if _, err := sa.action.Try(ctx, freeze{Account: "f1", Amount: 30}); err != nil {
						return err
					}
					var err error
					idb, err = sb.action.Try(ctx, tt.second)
					return err
				})
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("global transaction: %v, want %v", err, tt.wantErr)
				}
				wantAccount(t, b, "f1", account{balance: 100})
				eventually(t, "the empty cancel of the failed try", func() bool {
					st, err := sb.fence.Status(ctx, xid, idb)
					return err == nil && st == FenceSuspended
				})
				if got := sa.cancels.Load(); got != int64(i+1) {
					t.Fatalf("cancel of the tried branch ran %d times in all, want %d", got, i+1)
				}
				if got := sb.cancels.Load(); got != 0 {
					t.Fatalf("cancel work of the failed try ran %d times, want 0 (empty rollback)", got)
				}
				wantAccount(t, b, "f2", account{balance: 100})
				wantAccount(t, b, "poor", account{balance: 5})
			})
		}
	})
}

func TestCancelBeforeTryRefusesLateTry(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		c := startCluster(t)
		s := newService(t, c, b, "a", backendFlavour(b), true)
		b.addAccount(t, "l1", 100)
		ctx := testContext(t)
		tx, err := c.tm.Begin(ctx, "late-try")
		if err != nil {
			t.Fatal(err)
		}
		// Try's first step, the registration, happens; its local
		// transaction is delayed past the global rollback.
		req := freeze{Account: "l1", Amount: 10}
		raw, _ := json.Marshal(req)
		data, _ := encodeContext(raw, nil)
		id, err := s.rm.RegisterBranch(ctx, tx.XID(), tcv1.BranchType_TCC, s.action.Name(), "", data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Rollback(ctx, "timed out"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the cancel to arrive first", func() bool {
			st, err := s.fence.Status(ctx, tx.XID(), id)
			return err == nil && st == FenceSuspended
		})
		err = s.action.try(gtx.ContextWithXID(ctx, tx.XID()), tx.XID(), id, raw, req)
		if !errors.Is(err, ErrTryRefused) {
			t.Fatalf("late try: %v, want ErrTryRefused", err)
		}
		if s.tries.Load() != 0 || s.cancels.Load() != 0 {
			t.Fatalf("try ran %d times, cancel %d times; want neither", s.tries.Load(), s.cancels.Load())
		}
		wantAccount(t, b, "l1", account{balance: 100})
	})
}

func TestRMRestartConfirms(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		tests := []struct {
			name string
			// midConfirm kills the participant while its Confirm runs,
			// after the business work, before the local commit.
			midConfirm bool
		}{
			{"between try and confirm", false},
			{"during confirm", true},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := startCluster(t)
				s1 := newService(t, c, b, "a", backendFlavour(b), true)
				acct := fmt.Sprintf("r%d", i)
				b.addAccount(t, acct, 100)
				ctx := testContext(t)
				tx, err := c.tm.Begin(ctx, "restart")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s1.action.Try(tx.Context(), freeze{Account: acct, Amount: 40}); err != nil {
					t.Fatal(err)
				}
				type result struct {
					st  tcv1.GlobalStatus
					err error
				}
				committed := make(chan result, 1)
				if tt.midConfirm {
					entered := make(chan struct{})
					var once sync.Once
					hook := func(ctx context.Context) error {
						once.Do(func() { close(entered) })
						<-ctx.Done()
						return ctx.Err()
					}
					s1.confirmHook.Store(&hook)
					go func() {
						st, err := tx.Commit(ctx)
						committed <- result{st, err}
					}()
					select {
					case <-entered:
					case <-ctx.Done():
						t.Fatal("the confirm never reached the participant")
					}
					must(t, s1.rm.Close())
				} else {
					must(t, s1.rm.Close())
					st, err := tx.Commit(ctx)
					committed <- result{st, err}
				}
				var r result
				select {
				case r = <-committed:
				case <-ctx.Done():
					t.Fatal("the commit never returned")
				}
				if r.err != nil {
					t.Fatalf("commit: %v", r.err)
				}
				if r.st == tcv1.GlobalStatus_COMMITTED {
					t.Fatal("committed with the only participant down")
				}
				wantAccount(t, b, acct, account{balance: 60, frozen: 40})
				// It comes back: a new resource manager serving the same
				// action.
				s2 := newService(t, c, b, "a", backendFlavour(b), true)
				wantAccount(t, b, acct, account{balance: 60, spent: 40})
				eventually(t, "the global transaction to be committed", func() bool {
					st, err := c.tm.Status(ctx, tx.XID())
					return err == nil && st == tcv1.GlobalStatus_COMMITTED
				})
				if s2.confirms.Load() != 1 {
					t.Fatalf("confirm ran %d times after the restart, want once", s2.confirms.Load())
				}
			})
		}
	})
}

// TestAsyncConfirm needs a coordinator store that keeps the branches'
// async_commit flag.
func TestAsyncConfirm(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		c := startCluster(t)
		sa := newService(t, c, b, "a", backendFlavour(b), true, AsyncConfirm())
		sb := newService(t, c, b, "b", backendFlavour(b), true, AsyncConfirm())
		b.addAccount(t, "a1", 100)
		b.addAccount(t, "a2", 100)
		ctx := testContext(t)
		tx, err := c.tm.Begin(ctx, "async")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sa.action.Try(tx.Context(), freeze{Account: "a1", Amount: 10}); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.action.Try(tx.Context(), freeze{Account: "a2", Amount: 10}); err != nil {
			t.Fatal(err)
		}
		st, err := tx.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st != tcv1.GlobalStatus_ASYNC_COMMITTING {
			t.Fatalf("commit answered %s, want ASYNC_COMMITTING", st)
		}
		wantAccount(t, b, "a1", account{balance: 90, spent: 10})
		wantAccount(t, b, "a2", account{balance: 90, spent: 10})
	})
}

// TestConcurrentGlobalTransactions runs 32 global transactions at once on
// the same two hot accounts, every other one rolling back.
func TestConcurrentGlobalTransactions(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		c := startCluster(t)
		sa := newService(t, c, b, "a", backendFlavour(b), true)
		sb := newService(t, c, b, "b", backendFlavour(b), true)
		b.addAccount(t, "h1", 1000)
		b.addAccount(t, "h2", 1000)
		ctx := testContext(t)
		const n = 32
		var wg sync.WaitGroup
		var committed atomic.Int64
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				err := c.tm.WithGlobalTx(ctx, "hot", func(ctx context.Context) error {
					if _, err := sa.action.Try(ctx, freeze{Account: "h1", Amount: 1}); err != nil {
						return err
					}
					_, err := sb.action.Try(ctx, freeze{Account: "h2", Amount: 2, FailTry: i%2 == 1})
					return err
				})
				switch {
				case err == nil:
					committed.Add(1)
				case !errors.Is(err, errTry):
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("global transaction: %v", err)
		}
		k := committed.Load()
		if k != n/2 {
			t.Fatalf("%d committed, want %d", k, n/2)
		}
		wantAccount(t, b, "h1", account{balance: 1000 - k, spent: k})
		wantAccount(t, b, "h2", account{balance: 1000 - 2*k, spent: 2 * k})
		if sa.confirms.Load() != k || sb.confirms.Load() != k || sa.cancels.Load() != n-k || sb.cancels.Load() != 0 {
			t.Fatalf("confirms %d/%d, cancels %d/%d; want %d/%d and %d/0",
				sa.confirms.Load(), sb.confirms.Load(), sa.cancels.Load(), sb.cancels.Load(), k, k, n-k)
		}
	})
}

// TestRemoteTry runs the Try of a participant behind gRPC and behind a
// kratos gRPC server: the XID travels through the gtx interceptors and the
// branch joins the caller's transaction.
func TestRemoteTry(t *testing.T) {
	transports := []struct {
		name  string
		serve func(t *testing.T, echo *gtxtest.Echo) grpc.ClientConnInterface
	}{
		{"grpc", serveGRPC},
		{"kratos", serveKratos},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			b := sqliteDB(t)
			c := startCluster(t)
			s := newService(t, c, b, "remote", "gorm", true)
			b.addAccount(t, "g1", 100)
			cc := tr.serve(t, &gtxtest.Echo{Next: func(ctx context.Context, cmd string) error {
				_, err := s.action.Try(ctx, freeze{Account: "g1", Amount: 7, FailTry: cmd == "fail-try"})
				return err
			}})
			ctx := testContext(t)
			tests := []struct {
				cmd     string
				ok      bool
				account account
			}{
				{"ok", true, account{balance: 93, spent: 7}},
				{"fail-try", false, account{balance: 93, spent: 7}},
				{"ok", true, account{balance: 86, spent: 14}},
			}
			for _, tt := range tests {
				err := c.tm.WithGlobalTx(ctx, "remote", func(ctx context.Context) error {
					_, err := gtxtest.Call(ctx, cc, gtxtest.MethodUnary, tt.cmd)
					return err
				})
				if (err == nil) != tt.ok {
					t.Fatalf("%s: global transaction: %v", tt.cmd, err)
				}
				wantAccount(t, b, "g1", tt.account)
			}
			// Without a global transaction the remote Try refuses to run.
			if _, err := gtxtest.Call(ctx, cc, gtxtest.MethodUnary, "ok"); err == nil {
				t.Fatal("remote try without an XID succeeded")
			}
			if got := s.tries.Load(); got != 3 {
				t.Fatalf("try ran %d times, want 3", got)
			}
		})
	}
}

// serveGRPC serves echo on a plain gRPC server with the gtx interceptor and
// returns a client with the gtx interceptor.
func serveGRPC(t *testing.T, echo *gtxtest.Echo) grpc.ClientConnInterface {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(grpcgtx.UnaryServerInterceptor()))
	gs.RegisterService(&gtxtest.ServiceDesc, echo)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	cc, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(grpcgtx.UnaryClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// serveKratos serves echo on a kratos gRPC server with the gtx middleware
// and returns a kratos client with the gtx middleware.
func serveKratos(t *testing.T, echo *gtxtest.Echo) grpc.ClientConnInterface {
	srv := kgrpc.NewServer(kgrpc.Address("127.0.0.1:0"), kgrpc.Middleware(kratosgtx.Server()))
	srv.RegisterService(&gtxtest.ServiceDesc, echo)
	u, err := srv.Endpoint()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(context.Background()) }()
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	cc, err := kgrpc.DialInsecure(context.Background(), kgrpc.WithEndpoint(u.Host), kgrpc.WithMiddleware(kratosgtx.Client()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestActionErrors(t *testing.T) {
	b := sqliteDB(t)
	c := startCluster(t)
	m := c.newRM(t)
	p := NewParticipant(m, quiet)
	f := b.fence(t, "sql")
	nop := func(context.Context, Tx, *BranchContext[freeze]) error { return nil }
	phases := Phases[freeze]{Try: nop, Confirm: nop, Cancel: nop}
	a, err := Register(p, "x.freeze", f, phases)
	if err != nil {
		t.Fatal(err)
	}
	registers := []struct {
		name   string
		p      *Participant
		action string
		fence  *Fence
		phases Phases[freeze]
		want   error
	}{
		{"nil participant", nil, "y", f, phases, ErrInvalidArgument},
		{"empty name", p, "", f, phases, ErrInvalidArgument},
		{"nil fence", p, "y", nil, phases, ErrInvalidArgument},
		{"no cancel", p, "y", f, Phases[freeze]{Try: nop, Confirm: nop}, ErrInvalidArgument},
		{"taken name", p, "x.freeze", f, phases, ErrActionExists},
	}
	for _, tt := range registers {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Register(tt.p, tt.action, tt.fence, tt.phases); !errors.Is(err, tt.want) {
				t.Fatalf("Register: %v, want %v", err, tt.want)
			}
		})
	}
	ctx := testContext(t)
	if _, err := a.Try(ctx, freeze{}); !errors.Is(err, ErrNoTransaction) {
		t.Fatalf("Try without XID: %v, want ErrNoTransaction", err)
	}
	if _, err := a.Try(gtx.ContextWithXID(ctx, "unknown:1"), freeze{}); !errors.Is(err, rm.ErrTransactionNotFound) {
		t.Fatalf("Try in an unknown transaction: %v, want rm.ErrTransactionNotFound", err)
	}
	phase2 := []struct {
		name   string
		branch rm.Branch
		want   []error
	}{
		{"garbage context", rm.Branch{XID: "x:1", BranchID: 1, ResourceID: "x.freeze", ApplicationData: []byte("{")}, []error{ErrBadActionContext, rm.ErrUnretryable}},
		{"no request", rm.Branch{XID: "x:1", BranchID: 1, ResourceID: "x.freeze", ApplicationData: []byte(`{}`)}, []error{ErrBadActionContext, rm.ErrUnretryable}},
		{"wrong request type", rm.Branch{XID: "x:1", BranchID: 1, ResourceID: "x.freeze", ApplicationData: []byte(`{"request":[1]}`)}, []error{ErrBadActionContext, rm.ErrUnretryable}},
		{"unknown action", rm.Branch{XID: "x:1", BranchID: 1, ResourceID: "nope", ApplicationData: []byte(`{"request":{}}`)}, []error{ErrUnknownAction}},
	}
	for _, tt := range phase2 {
		t.Run(tt.name, func(t *testing.T) {
			for op, err := range map[string]error{"commit": p.Commit(ctx, tt.branch), "rollback": p.Rollback(ctx, tt.branch)} {
				for _, want := range tt.want {
					if !errors.Is(err, want) {
						t.Errorf("%s: %v, want %v", op, err, want)
					}
				}
			}
		})
	}
	// Confirm after Cancel is a conflict no retry can fix.
	br := rm.Branch{XID: "x:2", BranchID: 2, ResourceID: "x.freeze", ApplicationData: []byte(`{"request":{}}`)}
	must(t, p.Rollback(ctx, br))
	if err := p.Commit(ctx, br); !errors.Is(err, ErrFenceConflict) || !errors.Is(err, rm.ErrUnretryable) {
		t.Fatalf("confirm after cancel: %v, want an unretryable ErrFenceConflict", err)
	}
}
