package saga_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// journal records calls in order.
type journal struct {
	mu    sync.Mutex
	calls []string
	keys  map[string][]string
}

func (j *journal) add(what, key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls = append(j.calls, what)
	if j.keys == nil {
		j.keys = map[string][]string{}
	}
	j.keys[what] = append(j.keys[what], key)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.calls)
}

// instance is one process of the service: an RM with the saga handler over
// its own registry.
func startInstance(t *testing.T, tc tcv1.CoordinatorClient, reg *saga.Registry) *rm.Manager {
	t.Helper()
	cfg := rm.DefaultConfig()
	cfg.Application = "saga-test"
	cfg.Coordinators = []tcv1.CoordinatorClient{tc}
	cfg.Logger = quiet
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Handle(tcv1.BranchType_SAGA, saga.NewHandler(reg))
	if err := m.AddResource("orders", tcv1.BranchType_SAGA); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

func newOrchestrator(t *testing.T, tc tcv1.CoordinatorClient, m *rm.Manager, reg *saga.Registry, timeout time.Duration) (*saga.Orchestrator, *tm.Manager) {
	t.Helper()
	tcfg := tm.DefaultConfig()
	tcfg.Application = "saga-test"
	tcfg.Logger = quiet
	tmm, err := tm.New(tc, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	o, err := saga.New(saga.Config{TM: tmm, RM: m, Registry: reg, ResourceID: "orders", Timeout: timeout, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return o, tmm
}

// registry registers a compensation per name that records itself; fails
// tells how many times a compensation fails before it succeeds.
func registry(t *testing.T, j *journal, names []string, fails map[string]int) *saga.Registry {
	t.Helper()
	reg := saga.NewRegistry()
	var mu sync.Mutex
	for _, n := range names {
		err := reg.Register("undo-"+n, func(ctx context.Context, c saga.Call) error {
			j.add("undo-"+c.Step, c.Key)
			mu.Lock()
			defer mu.Unlock()
			if fails[c.Step] > 0 {
				fails[c.Step]--
				return fmt.Errorf("undo %s: injected failure", c.Step)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func step(j *journal, name string, err error) saga.Step {
	return saga.Step{
		Name:         name,
		Compensation: "undo-" + name,
		Action: func(ctx context.Context, c saga.Call) error {
			j.add("do-"+c.Step, c.Key)
			return err
		},
	}
}

// waitStatus polls the coordinator until xid reaches want.
func waitStatus(t *testing.T, m *tm.Manager, xid string, want tcv1.GlobalStatus) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := m.Status(context.Background(), xid)
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %s (err %v), want %s", xid, st, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSaga(t *testing.T) {
	tc := gtxtest.StartTC(t)
	boom := errors.New("boom")
	tests := []struct {
		name       string
		build      func(j *journal) *saga.Saga
		fails      map[string]int
		wantErr    error
		wantCalls  []string
		wantStatus tcv1.GlobalStatus
	}{
		{
			name: "all steps succeed",
			build: func(j *journal) *saga.Saga {
				return saga.Define("ok").Then(step(j, "a", nil)).Then(step(j, "b", nil))
			},
			wantCalls:  []string{"do-a", "do-b"},
			wantStatus: tcv1.GlobalStatus_COMMITTED,
		},
		{
			name: "compensation runs in reverse order, the failed step included",
			build: func(j *journal) *saga.Saga {
				return saga.Define("reverse").Then(step(j, "a", nil)).Then(step(j, "b", nil)).Then(step(j, "c", boom))
			},
			wantErr:    boom,
			wantCalls:  []string{"do-a", "do-b", "do-c", "undo-c", "undo-b", "undo-a"},
			wantStatus: tcv1.GlobalStatus_ROLLBACKED,
		},
		{
			name: "a failing compensation is retried until it succeeds, and blocks the older ones",
			build: func(j *journal) *saga.Saga {
				return saga.Define("retry-undo").Then(step(j, "a", nil)).Then(step(j, "b", nil)).Then(step(j, "c", saga.Permanent(boom)))
			},
			fails:      map[string]int{"b": 3},
			wantErr:    boom,
			wantCalls:  []string{"do-a", "do-b", "do-c", "undo-c", "undo-b", "undo-b", "undo-b", "undo-b", "undo-a"},
			wantStatus: tcv1.GlobalStatus_ROLLBACKED,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			if tt.fails == nil {
				tt.fails = map[string]int{}
			}
			reg := registry(t, j, []string{"a", "b", "c"}, tt.fails)
			m := startInstance(t, tc, reg)
			o, tmm := newOrchestrator(t, tc, m, reg, 0)
			err := o.Run(context.Background(), tt.build(j))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !errors.Is(err, saga.ErrStepFailed)) {
				t.Fatalf("Run: %v, want %v and ErrStepFailed", err, tt.wantErr)
			}
			xid := ""
			for _, keys := range j.keys {
				xid, _, _ = cut(keys[0])
			}
			waitStatus(t, tmm, xid, tt.wantStatus)
			if got := j.list(); !slices.Equal(got, tt.wantCalls) {
				t.Fatalf("calls %v, want %v", got, tt.wantCalls)
			}
			for what, keys := range j.keys {
				for _, k := range keys {
					if _, st, _ := cut(k); "do-"+st != what && "undo-"+st != what {
						t.Fatalf("%s got key %q", what, k)
					}
				}
			}
		})
	}
}

func cut(key string) (xid, step string, ok bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", "", false
}

func TestForwardRetryKeepsTheKey(t *testing.T) {
	tc := gtxtest.StartTC(t)
	j := &journal{}
	reg := registry(t, j, []string{"a"}, nil)
	m := startInstance(t, tc, reg)
	o, _ := newOrchestrator(t, tc, m, reg, 0)
	var attempts []int
	s := saga.Define("retry").Then(saga.Step{
		Name: "a", Compensation: "undo-a",
		Retry: saga.RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Multiplier: 2},
		Action: func(ctx context.Context, c saga.Call) error {
			j.add("do-a", c.Key)
			attempts = append(attempts, c.Attempt)
			if c.Attempt < 3 {
				return errors.New("transient")
			}
			return nil
		},
	})
	if err := o.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	keys := j.keys["do-a"]
	if !slices.Equal(attempts, []int{1, 2, 3}) || len(keys) != 3 || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("attempts %v keys %v: want 3 attempts with one key", attempts, keys)
	}
	if slices.Contains(j.list(), "undo-a") {
		t.Fatal("a committed saga was compensated")
	}
}

func TestParallelGroupFailureCompensatesAll(t *testing.T) {
	tc := gtxtest.StartTC(t)
	j := &journal{}
	reg := registry(t, j, []string{"a", "b", "c", "d"}, nil)
	m := startInstance(t, tc, reg)
	o, tmm := newOrchestrator(t, tc, m, reg, 0)
	boom := errors.New("boom")
	s := saga.Define("parallel").Then(step(j, "a", nil)).Parallel(step(j, "b", nil), step(j, "c", boom), step(j, "d", nil))
	err := o.Run(context.Background(), s)
	var se *saga.StepError
	if !errors.As(err, &se) || se.Step != "c" {
		t.Fatalf("Run: %v, want a StepError for c", err)
	}
	xid, _, _ := cut(j.keys["do-a"][0])
	waitStatus(t, tmm, xid, tcv1.GlobalStatus_ROLLBACKED)
	calls := j.list()
	undo := calls[len(calls)-4:]
	if undo[3] != "undo-a" || !sameSet(undo[:3], []string{"undo-b", "undo-c", "undo-d"}) {
		t.Fatalf("compensations %v: want b, c, d in any order, then a", undo)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestOrchestratorDies: the orchestrating instance vanishes mid-saga; the
// coordinator times the saga out and another instance, which registered the
// same compensations, runs them newest first.
func TestOrchestratorDies(t *testing.T) {
	tc := gtxtest.StartTC(t)
	j := &journal{}
	startInstance(t, tc, registry(t, j, []string{"a", "b"}, nil)) // the survivor

	dyingReg := saga.NewRegistry()
	for _, n := range []string{"undo-a", "undo-b"} {
		if err := dyingReg.Register(n, func(context.Context, saga.Call) error {
			return errors.New("this instance is dead")
		}); err != nil {
			t.Fatal(err)
		}
	}
	dying := startInstance(t, tc, dyingReg)
	o, tmm := newOrchestrator(t, tc, dying, dyingReg, time.Second)

	inB := make(chan string, 1)
	release := make(chan struct{})
	done := make(chan error, 1)
	s := saga.Define("dies").Then(step(j, "a", nil)).Then(saga.Step{
		Name: "b", Compensation: "undo-b",
		Action: func(ctx context.Context, c saga.Call) error {
			inB <- c.XID
			<-release
			return nil
		},
	})
	go func() { done <- o.Run(context.Background(), s) }()
	xid := <-inB
	// The process dies: its resource manager is gone with it.
	if err := dying.Close(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, tmm, xid, tcv1.GlobalStatus_TIMEOUT_ROLLBACKED)
	close(release)
	if err := <-done; err == nil {
		t.Fatal("Run of a timed-out saga returned nil")
	}
	if got := j.list(); !slices.Equal(got, []string{"do-a", "undo-b", "undo-a"}) {
		t.Fatalf("calls %v, want do-a, undo-b, undo-a", got)
	}
}

func TestValidate(t *testing.T) {
	reg := saga.NewRegistry()
	if err := reg.Register("undo", func(context.Context, saga.Call) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("undo", func(context.Context, saga.Call) error { return nil }); !errors.Is(err, saga.ErrDuplicateCompensation) {
		t.Fatalf("duplicate Register: %v", err)
	}
	act := func(context.Context, saga.Call) error { return nil }
	tests := []struct {
		name string
		s    *saga.Saga
		want string
	}{
		{"no name", saga.Define("").Then(saga.Step{Name: "a", Action: act}), "empty name"},
		{"no step", saga.Define("x"), "has no step"},
		{"empty parallel", saga.Define("x").Parallel(), "empty Parallel"},
		{"unnamed step", saga.Define("x").Then(saga.Step{Action: act}), "has no name"},
		{"duplicate step", saga.Define("x").Then(saga.Step{Name: "a", Action: act}).Then(saga.Step{Name: "a", Action: act}), `"a" is used twice`},
		{"no action", saga.Define("x").Then(saga.Step{Name: "a"}), `step "a" has no action`},
		{"unknown compensation", saga.Define("x").Then(saga.Step{Name: "a", Action: act, Compensation: "nope"}), `compensation "nope", which is not registered`},
		{"negative retry", saga.Define("x").Then(saga.Step{Name: "a", Action: act, Retry: saga.RetryPolicy{MaxAttempts: -1}}), "negative value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate(reg)
			if !errors.Is(err, saga.ErrInvalidSaga) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want ErrInvalidSaga saying %q", err, tt.want)
			}
		})
	}
}
