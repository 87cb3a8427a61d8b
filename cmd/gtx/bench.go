package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/modes/saga/statemachine"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
	"github.com/gtx-io/gtx/tm"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure gtx's throughput and latency",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchSagaCmd())
	return cmd
}

// sagaBenchConfig is what `gtx bench saga` runs.
type sagaBenchConfig struct {
	TC          string
	Mode        string
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
	JSON        bool
}

func newBenchSagaCmd() *cobra.Command {
	c := sagaBenchConfig{Mode: "code", Concurrency: 16, Duration: 10 * time.Second, Warmup: time.Second}
	cmd := &cobra.Command{
		Use:   "saga",
		Short: "Run sagas of 2 no-op gRPC branches and report throughput and latency percentiles",
		Long: `Run sagas of two steps, each a call to a no-op gRPC service in this process,
from --concurrency workers for --duration, after --warmup, and print the
throughput and the p50/p95/p99 latency of a whole saga (begin, both steps,
end). Mode "code" runs Go sagas (package modes/saga): each step is enlisted
as a SAGA branch with the coordinator, which then commits both branches.
Mode "engine" runs the state-machine engine (modes/saga/statemachine) with
its store on SQLite: every step is persisted, and the outcome is reported
to the coordinator. Mode "plain" makes the two calls with no saga at all:
the baseline. The coordinator is an embedded one on SQLite in a temporary
directory unless --tc names a running one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := runSagaBench(cmd.Context(), c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4})))
			if err != nil {
				return err
			}
			if c.JSON {
				return res.printJSON(cmd.OutOrStdout(), c)
			}
			res.print(cmd.OutOrStdout(), c)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&c.TC, "tc", "", "address of a running coordinator; empty starts an embedded one on SQLite")
	fs.StringVar(&c.Mode, "mode", c.Mode, `"code" (Go sagas, branches enlisted with the coordinator), "engine" (state-machine engine) or "plain" (the two calls alone, a baseline)`)
	fs.IntVarP(&c.Concurrency, "concurrency", "c", c.Concurrency, "sagas in flight at once")
	fs.DurationVarP(&c.Duration, "duration", "d", c.Duration, "how long to measure")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "how long to run before measuring")
	fs.BoolVar(&c.JSON, "json", false, "print the result as one JSON object")
	return cmd
}

func (c sagaBenchConfig) validate() error {
	switch {
	case c.Mode != "code" && c.Mode != "engine" && c.Mode != "plain":
		return fmt.Errorf("bench saga: --mode is %q; use code, engine or plain", c.Mode)
	case c.Concurrency < 1:
		return fmt.Errorf("bench saga: --concurrency must be at least 1, got %d", c.Concurrency)
	case c.Duration <= 0 || c.Warmup < 0:
		return fmt.Errorf("bench saga: --duration must be positive and --warmup not negative")
	}
	return nil
}

// benchResult is what one run measured.
type benchResult struct {
	Sagas     int
	Errors    int
	FirstErr  error
	Elapsed   time.Duration
	latencies []time.Duration
}

func (r *benchResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p * float64(len(r.latencies)-1))
	return r.latencies[i]
}

func (r *benchResult) print(w io.Writer, c sagaBenchConfig) {
	fmt.Fprintf(w, "gtx bench saga: mode %s, 2 no-op gRPC branches per saga, concurrency %d, %v\n", c.Mode, c.Concurrency, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "sagas       %d (%d failed)\n", r.Sagas, r.Errors)
	fmt.Fprintf(w, "throughput  %.1f sagas/s\n", float64(r.Sagas)/r.Elapsed.Seconds())
	fmt.Fprintf(w, "latency     p50 %v  p95 %v  p99 %v  max %v\n", r.percentile(0.50).Round(time.Microsecond),
		r.percentile(0.95).Round(time.Microsecond), r.percentile(0.99).Round(time.Microsecond), r.percentile(1).Round(time.Microsecond))
	if r.FirstErr != nil {
		fmt.Fprintf(w, "first error %v\n", r.FirstErr)
	}
}

// printJSON prints the result as one JSON object, latencies in
// milliseconds, for scripts that compare runs.
func (r *benchResult) printJSON(w io.Writer, c sagaBenchConfig) error {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	out := map[string]any{
		"mode": c.Mode, "branches_per_saga": 2, "concurrency": c.Concurrency, "seconds": r.Elapsed.Seconds(),
		"sagas": r.Sagas, "failed": r.Errors, "sagas_per_second": float64(r.Sagas) / r.Elapsed.Seconds(),
		"p50_ms": ms(r.percentile(0.50)), "p95_ms": ms(r.percentile(0.95)), "p99_ms": ms(r.percentile(0.99)), "max_ms": ms(r.percentile(1)),
	}
	if r.FirstErr != nil {
		out["first_error"] = r.FirstErr.Error()
	}
	return json.NewEncoder(w).Encode(out)
}

// benchEnv is what a run needs, and what closes it.
type benchEnv struct {
	tc      tcv1.CoordinatorClient
	noop    *grpc.ClientConn
	dir     string
	closers []func()
}

func (e *benchEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

func runSagaBench(ctx context.Context, c sagaBenchConfig, log *slog.Logger) (*benchResult, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	env := &benchEnv{}
	defer env.close()
	if err := env.start(ctx, c, log); err != nil {
		return nil, err
	}
	run, err := env.sagaFunc(ctx, c, log)
	if err != nil {
		return nil, err
	}
	return measure(ctx, c, run), nil
}

// start starts the coordinator (unless c.TC), the no-op gRPC service and
// the connections to both.
func (e *benchEnv) start(ctx context.Context, c sagaBenchConfig, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "gtx-bench-")
	if err != nil {
		return err
	}
	e.dir = dir
	e.closers = append(e.closers, func() { os.RemoveAll(dir) })
	addr := c.TC
	if addr == "" {
		if addr, err = e.startTC(ctx, log); err != nil {
			return err
		}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	e.closers = append(e.closers, func() { conn.Close() })
	e.tc = tcv1.NewCoordinatorClient(conn)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	gs.RegisterService(&noopDesc, nil)
	go gs.Serve(lis)
	e.closers = append(e.closers, gs.Stop)
	if e.noop, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	e.closers = append(e.closers, func() { e.noop.Close() })
	return nil
}

func (e *benchEnv) startTC(ctx context.Context, log *slog.Logger) (string, error) {
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(e.dir, "tc.db"), Logger: log})
	if err != nil {
		return "", err
	}
	e.closers = append(e.closers, func() { store.Close() })
	ids, err := idgen.New(idgen.DefaultConfig())
	if err != nil {
		return "", err
	}
	cfg := tc.DefaultConfig()
	cfg.IDs = ids
	cfg.Logger = log
	srv, err := tc.NewServer(cfg, store, store)
	if err != nil {
		return "", err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	gs := grpc.NewServer()
	tcv1.RegisterCoordinatorServer(gs, srv)
	go gs.Serve(lis)
	e.closers = append(e.closers, gs.Stop)
	if err := srv.Start(ctx); err != nil {
		return "", err
	}
	e.closers = append(e.closers, func() { srv.Close() })
	return lis.Addr().String(), nil
}

// noopDesc is the no-op gRPC service the sagas' steps call.
var noopDesc = grpc.ServiceDesc{
	ServiceName: "gtx.bench.Noop",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Do", Handler: noopHandler},
		{MethodName: "Undo", Handler: noopHandler},
	},
}

// noopHandler answers any request (an Empty or a Value) with a null Value,
// which both decode.
func noopHandler(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	if err := dec(new(structpb.Value)); err != nil {
		return nil, err
	}
	return structpb.NewNullValue(), nil
}

// sagaFunc returns the function that runs one saga in mode c.Mode.
func (e *benchEnv) sagaFunc(ctx context.Context, c sagaBenchConfig, log *slog.Logger) (func(ctx context.Context) error, error) {
	switch c.Mode {
	case "engine":
		return e.engineSaga(ctx, log)
	case "plain":
		return e.plainCalls(), nil
	}
	return e.codeSaga(ctx, log)
}

func (e *benchEnv) codeSaga(ctx context.Context, log *slog.Logger) (func(ctx context.Context) error, error) {
	call := func(method string) func(ctx context.Context, _ saga.Call) error {
		return func(ctx context.Context, _ saga.Call) error {
			return e.noop.Invoke(ctx, "/gtx.bench.Noop/"+method, &emptypb.Empty{}, new(structpb.Value))
		}
	}
	reg := saga.NewRegistry()
	if err := reg.Register("undo", call("Undo")); err != nil {
		return nil, err
	}
	rcfg := rm.DefaultConfig()
	rcfg.Application = "gtx-bench"
	rcfg.Coordinators = []tcv1.CoordinatorClient{e.tc}
	rcfg.Logger = log
	m, err := rm.New(rcfg)
	if err != nil {
		return nil, err
	}
	m.Handle(tcv1.BranchType_SAGA, saga.NewHandler(reg))
	tcfg := tm.DefaultConfig()
	tcfg.Application = "gtx-bench"
	tcfg.Logger = log
	tmm, err := tm.New(e.tc, tcfg)
	if err != nil {
		return nil, err
	}
	o, err := saga.New(saga.Config{TM: tmm, RM: m, Registry: reg, ResourceID: "gtx-bench-noop", Logger: log})
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { m.Close() })
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.WaitAttached(wctx); err != nil {
		return nil, err
	}
	s := saga.Define("bench").
		Then(saga.Step{Name: "one", Action: call("Do"), Compensation: "undo"}).
		Then(saga.Step{Name: "two", Action: call("Do"), Compensation: "undo"})
	return func(ctx context.Context) error { return o.Run(ctx, s) }, nil
}

// plainCalls makes the two gRPC calls of a saga with no transaction at
// all: the baseline the saga modes are measured against.
func (e *benchEnv) plainCalls() func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for range 2 {
			if err := e.noop.Invoke(ctx, "/gtx.bench.Noop/Do", &emptypb.Empty{}, new(structpb.Value)); err != nil {
				return err
			}
		}
		return nil
	}
}

const benchDefinition = `{
  "Name": "bench",
  "StartState": "One",
  "States": {
    "One": {"Type": "ServiceTask", "ServiceName": "noop", "ServiceMethod": "Do", "CompensateState": "UndoOne", "Next": "Two"},
    "UndoOne": {"Type": "ServiceTask", "ServiceName": "noop", "ServiceMethod": "Undo", "IsForCompensation": true},
    "Two": {"Type": "ServiceTask", "ServiceName": "noop", "ServiceMethod": "Do", "CompensateState": "UndoTwo", "Next": "Done"},
    "UndoTwo": {"Type": "ServiceTask", "ServiceName": "noop", "ServiceMethod": "Undo", "IsForCompensation": true},
    "Done": {"Type": "Succeed"}
  }
}`

func (e *benchEnv) engineSaga(ctx context.Context, log *slog.Logger) (func(ctx context.Context) error, error) {
	dsn := filepath.Join(e.dir, "saga.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// SQLite has one writer: queueing for one connection in the pool is
	// fairer and faster than many connections retrying on SQLITE_BUSY.
	sqlDB.SetMaxOpenConns(1)
	e.closers = append(e.closers, func() { sqlDB.Close() })
	cfg := statemachine.DefaultConfig()
	cfg.DB = db
	cfg.Coordinator = e.tc
	cfg.Application = "gtx-bench"
	cfg.Logger = log
	eng, err := statemachine.New(cfg)
	if err != nil {
		return nil, err
	}
	def, err := statemachine.Parse([]byte(benchDefinition))
	if err != nil {
		return nil, err
	}
	if err := eng.Register(def); err != nil {
		return nil, err
	}
	if err := eng.RegisterService("noop", statemachine.GRPC(e.noop, "gtx.bench.Noop")); err != nil {
		return nil, err
	}
	if err := eng.Start(ctx); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { eng.Close() })
	return func(ctx context.Context) error {
		_, err := eng.Run(ctx, "bench", nil)
		return err
	}, nil
}

// measure runs run from c.Concurrency workers: for c.Warmup unmeasured,
// then for c.Duration measured.
func measure(ctx context.Context, c sagaBenchConfig, run func(ctx context.Context) error) *benchResult {
	var (
		measuring atomic.Bool
		mu        sync.Mutex
		res       = &benchResult{}
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range c.Concurrency {
		wg.Go(func() {
			var lat []time.Duration
			var errs int
			var first error
			for ctx.Err() == nil {
				start := time.Now()
				err := run(ctx)
				if !measuring.Load() || ctx.Err() != nil {
					continue
				}
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		})
	}
	wait(ctx, c.Warmup)
	measuring.Store(true)
	start := time.Now()
	wait(ctx, c.Duration)
	measuring.Store(false)
	res.Elapsed = time.Since(start)
	cancel()
	wg.Wait()
	res.Sagas = len(res.latencies)
	slices.Sort(res.latencies)
	if res.FirstErr != nil && errors.Is(res.FirstErr, context.Canceled) {
		res.FirstErr = nil
	}
	return res
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
