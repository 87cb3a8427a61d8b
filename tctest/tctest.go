// Package tctest starts, for a service's own tests, a real gtx coordinator
// in the test's process with a resource manager and a transaction manager
// attached, in one call:
//
//	env := tctest.Start(t)
//	db, err := at.Open(at.Config{..., Manager: env.RM, Locks: env.Client})
//	err = env.TM.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error { ... })
//
// The coordinator is tc.Server on its SQLite store in the test's temporary
// directory, served over gRPC on a loopback port, with retries and
// timeouts short enough for tests; everything stops when the test ends.
// Nothing is mocked: phase 2, lock conflicts and recovery behave as in
// production.
package tctest

import (
	"context"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tm"
)

// Env is a running coordinator with a resource manager and a transaction
// manager attached.
type Env struct {
	// Client is a gRPC client of the coordinator: pass it as the lock and
	// status querier of AT databases (at.Config.Locks), or to more
	// resource managers (NewRM).
	Client tcv1.CoordinatorClient
	// Addr is the coordinator's gRPC address, for other processes of the
	// test.
	Addr string
	// TM begins and ends global transactions.
	TM *tm.Manager
	// RM registers branches and runs their phase 2: pass it to at.Config,
	// tcc.NewParticipant or the saga and XA packages.
	RM *rm.Manager
}

// Config adjusts Start; the zero value is the defaults.
type Config struct {
	// Application names the TM and the resource manager ("tctest" when
	// empty).
	Application string
	// BranchTimeout bounds one branch's phase 2 (5s when zero).
	BranchTimeout time.Duration
}

// Start starts a coordinator, a resource manager and a TM for t, stopped
// when t ends. cfg is optional.
func Start(t testing.TB, cfg ...Config) *Env {
	t.Helper()
	var c Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Application == "" {
		c.Application = "tctest"
	}
	if c.BranchTimeout == 0 {
		c.BranchTimeout = 5 * time.Second
	}
	srv := gtxtest.NewTC(t, gtxtest.TCOptions{Configure: func(tcfg *tc.Config) {
		tcfg.ServerID = c.Application + "-tc"
		tcfg.BranchTimeout = c.BranchTimeout
		tcfg.TimeoutCheckInterval = 50 * time.Millisecond
	}})
	tcfg := tm.DefaultConfig()
	tcfg.Application = c.Application
	tmgr, err := tm.New(srv.Client, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Client: srv.Client, Addr: srv.Addr, TM: tmgr, RM: NewRM(t, srv.Client, c.Application)}
}

// NewRM starts another resource manager attached to the coordinator of
// client, as a second service instance or a restart would, and closes it
// when t ends.
func NewRM(t testing.TB, client tcv1.CoordinatorClient, application string) *rm.Manager {
	t.Helper()
	cfg := rm.DefaultConfig()
	cfg.Application = application
	cfg.Coordinators = []tcv1.CoordinatorClient{client}
	cfg.ReconnectInitial = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
