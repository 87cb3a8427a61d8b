package tm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no application", func(c *Config) { c.Application = "" }, false},
		{"negative timeout", func(c *Config) { c.DefaultTimeout = -time.Second }, false},
		{"zero poll interval", func(c *Config) { c.StatusPollInterval = 0 }, false},
		{"poll timeout below interval", func(c *Config) { c.StatusPollTimeout = c.StatusPollInterval / 2 }, false},
		{"explicit timeout", func(c *Config) { c.DefaultTimeout = time.Minute }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := New(nil, DefaultConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(nil client) = %v, want ErrInvalidConfig", err)
	}
}

func TestWithGlobalTxCommitsAndRollsBack(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	ctx := context.Background()
	errBusiness := errors.New("out of stock")
	tests := []struct {
		name       string
		fnErr      error
		wantStatus tcv1.GlobalStatus
	}{
		{"nil commits", nil, tcv1.GlobalStatus_COMMITTED},
		{"error rolls back", errBusiness, tcv1.GlobalStatus_ROLLBACKED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var xid string
			err := m.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
				xid, _ = gtx.XIDFromContext(ctx)
				return tt.fnErr
			})
			if tt.fnErr == nil && err != nil {
				t.Fatalf("WithGlobalTx: %v", err)
			}
			if tt.fnErr != nil && !errors.Is(err, tt.fnErr) {
				t.Fatalf("WithGlobalTx = %v, want it to wrap %v", err, tt.fnErr)
			}
			got := fake.tx(xid)
			if got.status != tt.wantStatus {
				t.Fatalf("status of %q = %v, want %v", xid, got.status, tt.wantStatus)
			}
			if got.name != "place-order" || got.app != "tm-test" {
				t.Fatalf("begun as %q by %q", got.name, got.app)
			}
			if tt.fnErr != nil && got.reason != tt.fnErr.Error() {
				t.Fatalf("rollback reason %q, want %q", got.reason, tt.fnErr.Error())
			}
		})
	}
}

func TestWithGlobalTxPanicRollsBackAndRepanics(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	var xid string
	type boom struct{ n int }
	func() {
		defer func() {
			r := recover()
			if b, ok := r.(boom); !ok || b.n != 7 {
				t.Fatalf("recovered %#v, want the original panic value", r)
			}
		}()
		_ = m.WithGlobalTx(context.Background(), "panics", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			panic(boom{7})
		})
		t.Fatal("WithGlobalTx returned after a panic")
	}()
	got := fake.tx(xid)
	if got.status != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("status after panic = %v, want ROLLBACKED", got.status)
	}
	if !strings.Contains(got.reason, "panic") {
		t.Fatalf("rollback reason %q does not mention the panic", got.reason)
	}
}

func TestPropagation(t *testing.T) {
	const (
		none  = "none"
		outer = "outer"
		fresh = "new"
	)
	tests := []struct {
		prop      Propagation
		withOuter bool
		wantXID   string // what fn sees
		wantErr   error  // fn does not run when set
	}{
		{Required, false, fresh, nil},
		{Required, true, outer, nil},
		{RequiresNew, false, fresh, nil},
		{RequiresNew, true, fresh, nil},
		{NotSupported, false, none, nil},
		{NotSupported, true, none, nil},
		{Supports, false, none, nil},
		{Supports, true, outer, nil},
		{Never, false, none, nil},
		{Never, true, "", ErrTransactionExists},
		{Mandatory, false, "", ErrNoTransaction},
		{Mandatory, true, outer, nil},
	}
	m, fake, _ := newManager(t, nil)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/outer=%v", tt.prop, tt.withOuter), func(t *testing.T) {
			for _, fail := range []bool{false, true} {
				ctx := context.Background()
				var outerTx *Tx
				if tt.withOuter {
					var err error
					if outerTx, err = m.Begin(ctx, "outer"); err != nil {
						t.Fatalf("Begin: %v", err)
					}
					ctx = outerTx.Context()
				}
				fnErr := errors.New("fn failed")
				ran := false
				var seen string
				var seenOK bool
				err := m.WithGlobalTx(ctx, "inner", func(ctx context.Context) error {
					ran = true
					seen, seenOK = gtx.XIDFromContext(ctx)
					if fail {
						return fnErr
					}
					return nil
				}, WithPropagation(tt.prop))
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) || ran {
						t.Fatalf("err = %v, ran = %v; want %v without running fn", err, ran, tt.wantErr)
					}
					return
				}
				if fail != errors.Is(err, fnErr) || (!fail && err != nil) {
					t.Fatalf("fail=%v: err = %v", fail, err)
				}
				switch tt.wantXID {
				case none:
					if seenOK {
						t.Fatalf("fn saw xid %q, want none", seen)
					}
				case outer:
					if seen != outerTx.XID() {
						t.Fatalf("fn saw %q, want the outer %q", seen, outerTx.XID())
					}
					if fail && err != fnErr {
						t.Fatalf("joiner returned %v, want fn's error as is", err)
					}
				case fresh:
					if !seenOK || (outerTx != nil && seen == outerTx.XID()) {
						t.Fatalf("fn saw %q (%v), want a new transaction", seen, seenOK)
					}
					want := tcv1.GlobalStatus_COMMITTED
					if fail {
						want = tcv1.GlobalStatus_ROLLBACKED
					}
					if got := fake.tx(seen).status; got != want {
						t.Fatalf("new transaction is %v, want %v", got, want)
					}
				}
				if outerTx != nil {
					if got := fake.tx(outerTx.XID()).status; got != tcv1.GlobalStatus_BEGIN {
						t.Fatalf("outer transaction is %v after the inner call, want BEGIN: only its starter ends it", got)
					}
					if xid, _ := gtx.XIDFromContext(ctx); xid != outerTx.XID() {
						t.Fatalf("caller's context lost the outer xid")
					}
					if _, err := outerTx.Rollback(context.Background(), "test done"); err != nil {
						t.Fatalf("Rollback outer: %v", err)
					}
				}
			}
		})
	}
}

func TestCommitResolvesLostAnswers(t *testing.T) {
	tests := []struct {
		name       string
		fault      func(f *fakeTC)
		wantStatus tcv1.GlobalStatus
		wantErr    error
		wantCommit int // commit handler runs
	}{
		{
			name:       "answer lost after commit",
			fault:      func(f *fakeTC) { f.lose["Commit"] = 1 },
			wantStatus: tcv1.GlobalStatus_COMMITTED,
			wantCommit: 1,
		},
		{
			name:       "request lost before commit",
			fault:      func(f *fakeTC) { f.drop["Commit"] = 1 },
			wantStatus: tcv1.GlobalStatus_COMMITTED,
			wantCommit: 1,
		},
		{
			name:       "answer lost and status queries fail for a while",
			fault:      func(f *fakeTC) { f.lose["Commit"] = 1; f.drop["GetStatus"] = 3 },
			wantStatus: tcv1.GlobalStatus_COMMITTED,
			wantCommit: 1,
		},
		{
			name:       "request lost twice",
			fault:      func(f *fakeTC) { f.drop["Commit"] = 2 },
			wantStatus: tcv1.GlobalStatus_COMMITTED,
			wantCommit: 1,
		},
		{
			name:       "answer lost, commit left phase 2 to the background",
			fault:      func(f *fakeTC) { f.lose["Commit"] = 1; f.commitTo = tcv1.GlobalStatus_ASYNC_COMMITTING },
			wantStatus: tcv1.GlobalStatus_ASYNC_COMMITTING,
			wantCommit: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fake, _ := newManager(t, nil)
			tx, err := m.Begin(context.Background(), "lost")
			if err != nil {
				t.Fatalf("Begin: %v", err)
			}
			fake.set(tt.fault)
			st, err := tx.Commit(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Commit = %v, want %v", err, tt.wantErr)
			}
			if st != tt.wantStatus {
				t.Fatalf("Commit status = %v, want %v", st, tt.wantStatus)
			}
			if n := fake.count("Commit"); n != tt.wantCommit {
				t.Fatalf("commit ran %d times on the coordinator, want %d", n, tt.wantCommit)
			}
			if n := fake.count("GetStatus"); n == 0 {
				t.Fatalf("the lost answer was not resolved through GetStatus")
			}
		})
	}
}

func TestCommitOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		commitTo tcv1.GlobalStatus
		timedOut bool // the coordinator rolled back before the commit arrived
		refuse   bool
		lose     bool
		wantErr  error
	}{
		{name: "committed", commitTo: tcv1.GlobalStatus_COMMITTED},
		{name: "committing", commitTo: tcv1.GlobalStatus_COMMITTING},
		{name: "commit retrying", commitTo: tcv1.GlobalStatus_COMMIT_RETRYING},
		{name: "async committing", commitTo: tcv1.GlobalStatus_ASYNC_COMMITTING},
		{name: "commit failed", commitTo: tcv1.GlobalStatus_COMMIT_FAILED, wantErr: ErrPhase2Failed},
		{name: "timed out, answered with status", timedOut: true, wantErr: ErrRolledBack},
		{name: "timed out, refused", timedOut: true, refuse: true, wantErr: ErrRolledBack},
		{name: "timed out, answer lost", timedOut: true, lose: true, wantErr: ErrRolledBack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fake, _ := newManager(t, nil)
			var xid string
			err := m.WithGlobalTx(context.Background(), "outcome", func(ctx context.Context) error {
				xid, _ = gtx.XIDFromContext(ctx)
				fake.set(func(f *fakeTC) {
					f.commitTo, f.refuse = tt.commitTo, tt.refuse
					if tt.timedOut {
						f.txs[xid].status = tcv1.GlobalStatus_TIMEOUT_ROLLBACKED
					}
					if tt.lose {
						f.lose["Commit"] = 1
					}
				})
				return nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("WithGlobalTx = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrRolledBack {
				var rb *RolledBackError
				if !errors.As(err, &rb) || rb.XID != xid || rb.Status != tcv1.GlobalStatus_TIMEOUT_ROLLBACKED {
					t.Fatalf("error %v is not a *RolledBackError for %s TIMEOUT_ROLLBACKED", err, xid)
				}
			}
		})
	}
}

func TestRollbackResolvesLostAnswer(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	errBusiness := errors.New("card declined")
	var xid string
	err := m.WithGlobalTx(context.Background(), "rollback-lost", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		fake.set(func(f *fakeTC) { f.lose["Rollback"] = 1 })
		return errBusiness
	})
	if !errors.Is(err, errBusiness) || strings.Contains(err.Error(), "rollback failed") {
		t.Fatalf("WithGlobalTx = %v, want fn's error after a clean rollback", err)
	}
	if got := fake.tx(xid).status; got != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("status = %v, want ROLLBACKED", got)
	}
	if n := fake.count("Rollback"); n != 1 {
		t.Fatalf("rollback ran %d times, want 1", n)
	}
}

func TestRollbackOfCommittedTransaction(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	tx, err := m.Begin(context.Background(), "late-rollback")
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	fake.set(func(f *fakeTC) { f.txs[tx.XID()].status = tcv1.GlobalStatus_COMMITTED; f.refuse = true })
	if _, err := tx.Rollback(context.Background(), "too late"); !errors.Is(err, ErrCommitted) {
		t.Fatalf("Rollback = %v, want ErrCommitted", err)
	}
}

func TestCoordinatorUnreachableThenBack(t *testing.T) {
	m, fake, srv := newManager(t, nil)
	tx, err := m.Begin(context.Background(), "outage")
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	srv.stop()
	type result struct {
		st  tcv1.GlobalStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := tx.Commit(context.Background())
		done <- result{st, err}
	}()
	// The coordinator stays away while the commit is tried and its status
	// polled; the outage length does not decide the test's result.
	time.Sleep(300 * time.Millisecond)
	srv.start()
	r := <-done
	if r.err != nil || r.st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("Commit = %v, %v; want COMMITTED", r.st, r.err)
	}
	if got := fake.tx(tx.XID()).status; got != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("coordinator has %v, want COMMITTED", got)
	}
	if n := fake.count("Commit"); n != 1 {
		t.Fatalf("commit ran %d times, want 1", n)
	}
}

func TestOutcomeUnknownNeverGuesses(t *testing.T) {
	m, fake, _ := newManager(t, func(c *Config) { c.StatusPollTimeout = 200 * time.Millisecond })
	tx, err := m.Begin(context.Background(), "unknown")
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	fake.set(func(f *fakeTC) { f.lose["Commit"] = 1; f.drop["GetStatus"] = -1 })
	st, err := tx.Commit(context.Background())
	if !errors.Is(err, ErrOutcomeUnknown) || st != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED {
		t.Fatalf("Commit = %v, %v; want ErrOutcomeUnknown", st, err)
	}
	fake.set(func(f *fakeTC) { f.drop["GetStatus"] = 0 })
	st, err = tx.Commit(context.Background())
	if err != nil || st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("second Commit = %v, %v; want COMMITTED", st, err)
	}
	if _, err := tx.Commit(context.Background()); !errors.Is(err, ErrTxDone) {
		t.Fatalf("third Commit = %v, want ErrTxDone", err)
	}
}

func TestCommitWithDoneContextSendsNothing(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	tx, err := m.Begin(context.Background(), "cancelled-commit")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tx.Commit(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit = %v, want context.Canceled", err)
	}
	if n, st := fake.count("Commit"), fake.tx(tx.XID()).status; n != 0 || st != tcv1.GlobalStatus_BEGIN {
		t.Fatalf("%d commits reached the coordinator, status %v; want none and BEGIN", n, st)
	}
	if st, err := tx.Commit(context.Background()); err != nil || st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("Commit after that = %v, %v; want COMMITTED", st, err)
	}
}

func TestCallerCancellationDoesNotLeaveTransactionUndecided(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var xid string
	err := m.WithGlobalTx(ctx, "cancelled", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WithGlobalTx = %v, want context.Canceled", err)
	}
	if got := fake.tx(xid).status; got != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("status = %v, want ROLLBACKED", got)
	}
}

func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, s)
	}
	m, _, _ := newManager(t, func(c *Config) {
		c.Hooks = Hooks{
			BeforeBegin:  func(_ context.Context, name string) { record("before-begin " + name) },
			AfterBegin:   func(_ context.Context, xid string) { record("after-begin") },
			BeforeCommit: func(_ context.Context, xid string) { record("before-commit") },
			AfterCommit: func(_ context.Context, xid string, st tcv1.GlobalStatus, err error) {
				record(fmt.Sprint("after-commit ", st, " ", err))
			},
			BeforeRollback: func(_ context.Context, xid string) { record("before-rollback") },
			AfterRollback: func(_ context.Context, xid string, st tcv1.GlobalStatus, err error) {
				record(fmt.Sprint("after-rollback ", st, " ", err))
			},
		}
	})
	ctx := context.Background()
	_ = m.WithGlobalTx(ctx, "a", func(ctx context.Context) error {
		return m.WithGlobalTx(ctx, "joined", func(context.Context) error { return nil })
	})
	_ = m.WithGlobalTx(ctx, "b", func(context.Context) error { return errors.New("no") })
	want := []string{
		"before-begin a", "after-begin", "before-commit", "after-commit COMMITTED <nil>",
		"before-begin b", "after-begin", "before-rollback", "after-rollback ROLLBACKED <nil>",
	}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Fatalf("hooks ran as\n%q\nwant\n%q", events, want)
	}
}

func TestTimeoutOption(t *testing.T) {
	tests := []struct {
		name    string
		def     time.Duration
		opts    []Option
		wantMS  int64
		wantErr error
	}{
		{name: "coordinator default", wantMS: 0},
		{name: "config default", def: 2 * time.Second, wantMS: 2000},
		{name: "option overrides", def: 2 * time.Second, opts: []Option{Timeout(1500 * time.Millisecond)}, wantMS: 1500},
		{name: "rounded up", opts: []Option{Timeout(time.Nanosecond)}, wantMS: 1},
		{name: "negative", opts: []Option{Timeout(-time.Second)}, wantErr: ErrInvalidArgument},
		{name: "unknown propagation", opts: []Option{WithPropagation(Propagation(42))}, wantErr: ErrInvalidArgument},
		{name: "nil option", opts: []Option{nil}, wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fake, _ := newManager(t, func(c *Config) { c.DefaultTimeout = tt.def })
			tx, err := m.Begin(context.Background(), "timeout", tt.opts...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || fake.count("Begin") != 0 {
					t.Fatalf("Begin = %v after %d begins, want %v and nothing sent", err, fake.count("Begin"), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Begin: %v", err)
			}
			if got := fake.tx(tx.XID()).timeoutMS; got != tt.wantMS {
				t.Fatalf("timeout_ms = %d, want %d", got, tt.wantMS)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	ctx := context.Background()
	if err := m.WithGlobalTx(ctx, "", func(context.Context) error { return nil }); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
	if err := m.WithGlobalTx(ctx, "x", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil fn: %v", err)
	}
	if _, err := m.Status(ctx, "bad xid!"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad xid: %v", err)
	}
	if fake.count("Begin")+fake.count("GetStatus") != 0 {
		t.Fatalf("bad input reached the coordinator")
	}
	if _, err := m.Status(ctx, "127.0.0.1:8091:999"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown xid: %v", err)
	}
}
