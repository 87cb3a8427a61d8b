package statemachine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

const restartJSON = `{
  "Name": "restart",
  "StartState": "A",
  "RecoverStrategy": "%s",
  "States": {
    "A": {"Type": "ServiceTask", "ServiceName": "svc", "ServiceMethod": "a", "CompensateState": "UndoA", "Next": "B"},
    "UndoA": {"Type": "ServiceTask", "ServiceName": "svc", "ServiceMethod": "undo-a", "IsForCompensation": true},
    "B": {"Type": "ServiceTask", "ServiceName": "svc", "ServiceMethod": "b", "CompensateState": "UndoB", "Next": "C"},
    "UndoB": {"Type": "ServiceTask", "ServiceName": "svc", "ServiceMethod": "undo-b", "IsForCompensation": true},
    "C": {"Type": "ServiceTask", "ServiceName": "svc", "ServiceMethod": "c", "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}`

// TestRestartResumes stops an engine while a task is in flight (its call
// is cut off and nothing more is stored, as in a crash) and starts a new
// engine, with a new connection pool, on the same store: the instance
// finishes by its RecoverStrategy.
func TestRestartResumes(t *testing.T) {
	tests := []struct {
		strategy   sm.RecoverStrategy
		wantCalls2 []string
		wantCode   string
	}{
		{sm.Forward, []string{"b", "c"}, ""},
		{sm.Compensate, []string{"undo-b", "undo-a"}, "Recovered"},
	}
	for kind, open := range databases(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(string(tt.strategy), func(t *testing.T) {
					def := mustParse(t, sprintf(restartJSON, tt.strategy))
					ctx := ctxTimeout(t)

					// The first engine blocks in B until it is stopped.
					j1 := &journal{}
					inB := make(chan struct{})
					e1 := newEngine(t, open(t), nil)
					mustOK(t, e1.Register(def))
					mustOK(t, e1.RegisterService("svc", sm.ServiceFunc(func(ctx context.Context, tk sm.Task) (json.RawMessage, error) {
						j1.add(tk.Method, tk.Key)
						if tk.Method == "b" {
							close(inB)
							<-ctx.Done()
							return nil, ctx.Err()
						}
						return nil, nil
					})))
					mustOK(t, e1.Start(ctx))
					id, err := e1.StartInstance(ctx, "restart", nil)
					mustOK(t, err)
					<-inB
					mustOK(t, e1.Close())
					if _, err := e1.Wait(ctx, id); !errors.Is(err, sm.ErrClosed) {
						t.Fatalf("Wait on the stopped engine: %v, want ErrClosed", err)
					}

					j2 := &journal{}
					e2 := newEngine(t, open(t), nil)
					mustOK(t, e2.Register(def))
					mustOK(t, e2.RegisterService("svc", recorder(j2, nil)))
					mustOK(t, e2.Start(ctx))
					inst, err := e2.Wait(ctx, id)
					var fe *sm.FailedError
					switch {
					case tt.wantCode == "" && err != nil:
						t.Fatalf("Wait: %v (%s)", err, describe(inst))
					case tt.wantCode != "" && (!errors.As(err, &fe) || fe.Code != tt.wantCode):
						t.Fatalf("Wait: %v (%s), want failure %s", err, describe(inst), tt.wantCode)
					}
					if got := j1.list(); !slices.Equal(got, []string{"a", "b"}) {
						t.Fatalf("first engine's calls %v, want a, b", got)
					}
					if got := j2.list(); !slices.Equal(got, tt.wantCalls2) {
						t.Fatalf("second engine's calls %v, want %v", got, tt.wantCalls2)
					}
					if tt.strategy == sm.Forward && j1.keys[1] != j2.keys[0] {
						t.Fatalf("B ran again with key %q, first with %q", j2.keys[0], j1.keys[1])
					}
					if tt.strategy == sm.Compensate && !slices.Contains(inst.Executions, sm.Execution{State: "B", Status: "Failed", Key: j1.keys[1], Attempts: 1, Compensated: true, ErrorCode: "Recovered"}) {
						t.Fatalf("executions %+v: want B failed as Recovered and compensated", inst.Executions)
					}
				})
			}
		})
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// helperEnv, when set, makes TestKilledEngineHelper run an engine on the
// SQLite file it names and block in task B: the process the kill test
// kills.
const helperEnv = "GTX_SAGA_KILL_HELPER_DSN"

// TestKilledEngineHelper is the engine process of TestKilledEngineResumes;
// it does nothing in a normal run.
func TestKilledEngineHelper(t *testing.T) {
	dsn := os.Getenv(helperEnv)
	if dsn == "" {
		t.Skip("helper process of TestKilledEngineResumes")
	}
	e := newEngine(t, openSQLite(t, dsn), nil)
	mustOK(t, e.Register(mustParse(t, sprintf(restartJSON, sm.Forward))))
	mustOK(t, e.RegisterService("svc", sm.ServiceFunc(func(ctx context.Context, tk sm.Task) (json.RawMessage, error) {
		if tk.Method == "b" {
			fmt.Printf("in-b %s %s\n", tk.InstanceID, tk.Key)
			select {} // until killed
		}
		return nil, nil
	})))
	ctx := context.Background()
	mustOK(t, e.Start(ctx))
	_, err := e.StartInstance(ctx, "restart", nil)
	mustOK(t, err)
	select {}
}

// TestKilledEngineResumes kills (SIGKILL) a process running an engine
// while a task is in flight, then starts an engine on the same SQLite file:
// the instance finishes (RecoverStrategy Forward), B running again with the
// same idempotency key.
func TestKilledEngineResumes(t *testing.T) {
	dsn := sqliteDSN(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledEngineHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	mustOK(t, err)
	mustOK(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var id, key string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "in-b" {
			id, key = f[1], f[2]
			break
		}
	}
	if id == "" {
		t.Fatalf("the helper never reached B: %v", sc.Err())
	}
	mustOK(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed = true

	j := &journal{}
	e := newEngine(t, openSQLite(t, dsn), nil)
	mustOK(t, e.Register(mustParse(t, sprintf(restartJSON, sm.Forward))))
	mustOK(t, e.RegisterService("svc", recorder(j, nil)))
	ctx := ctxTimeout(t)
	mustOK(t, e.Start(ctx))
	inst, err := e.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait: %v (%s)", err, describe(inst))
	}
	if got := j.list(); !slices.Equal(got, []string{"b", "c"}) || j.keys[0] != key {
		t.Fatalf("calls after the restart %v with keys %v, want b (key %s), c", got, j.keys, key)
	}
}

// TestStoreFailureRetried: the transaction that stores A's success and the
// move to B fails once (injected); the runner loads the instance again and
// carries on, running A again with its key, and the instance succeeds.
func TestStoreFailureRetried(t *testing.T) {
	db := openSQLite(t, sqliteDSN(t))
	var failed atomic.Bool
	mustOK(t, db.Callback().Update().Before("gorm:update").Register("inject", func(tx *gorm.DB) {
		if tx.Statement.Table == "gtx_saga_instances" && !failed.Load() {
			if v, ok := tx.Statement.Dest.(map[string]any); ok && v["current_state"] == "B" {
				failed.Store(true)
				_ = tx.AddError(errors.New("injected: the database went away"))
			}
		}
	}))
	j := &journal{}
	e := newEngine(t, db, nil)
	mustOK(t, e.Register(mustParse(t, sprintf(restartJSON, sm.Compensate))))
	mustOK(t, e.RegisterService("svc", recorder(j, nil)))
	ctx := ctxTimeout(t)
	mustOK(t, e.Start(ctx))
	inst, err := e.Run(ctx, "restart", nil)
	if err != nil {
		t.Fatalf("Run: %v (%s)", err, describe(inst))
	}
	if !failed.Load() {
		t.Fatal("the failure was never injected")
	}
	if got := j.list(); !slices.Equal(got, []string{"a", "a", "b", "c"}) || j.keys[0] != j.keys[1] {
		t.Fatalf("calls %v with keys %v, want a twice with one key, then b, c", got, j.keys)
	}
}

// TestTakeover runs two engines on one store. The instance stays with the
// engine that started it while that engine renews its lease, blocked in B
// for several lease periods; when that engine closes, the other takes the
// instance over and finishes it.
func TestTakeover(t *testing.T) {
	short := func(c *sm.Config) {
		c.LeaseTTL = 600 * time.Millisecond
		c.RecoveryInterval = 20 * time.Millisecond
	}
	for kind, open := range databases(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			def := mustParse(t, sprintf(restartJSON, sm.Forward))
			ctx := ctxTimeout(t)
			inB := make(chan struct{})
			e1 := newEngine(t, open(t), short)
			mustOK(t, e1.Register(def))
			mustOK(t, e1.RegisterService("svc", sm.ServiceFunc(func(ctx context.Context, tk sm.Task) (json.RawMessage, error) {
				if tk.Method == "b" {
					close(inB)
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return nil, nil
			})))
			j2 := &journal{}
			e2 := newEngine(t, open(t), short)
			mustOK(t, e2.Register(def))
			mustOK(t, e2.RegisterService("svc", recorder(j2, nil)))
			mustOK(t, e1.Start(ctx))
			mustOK(t, e2.Start(ctx))

			id, err := e1.StartInstance(ctx, "restart", nil)
			mustOK(t, err)
			<-inB
			// Several lease periods pass; e1 renews, so e2 must keep off.
			time.Sleep(3 * 600 * time.Millisecond)
			if got := j2.list(); len(got) != 0 {
				t.Fatalf("the second engine ran %v while the first held the lease", got)
			}
			mustOK(t, e1.Close())
			inst, err := e2.Wait(ctx, id)
			if err != nil {
				t.Fatalf("Wait: %v (%s)", err, describe(inst))
			}
			if got := j2.list(); !slices.Equal(got, []string{"b", "c"}) {
				t.Fatalf("the second engine ran %v, want b, c", got)
			}
		})
	}
}
