package gtxtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// StartTC starts a real coordinator with an SQLite store in t's temporary
// directory, served on a loopback gRPC port and stopped when t ends, and
// returns a client of it.
func StartTC(t testing.TB) tcv1.CoordinatorClient {
	t.Helper()
	c, _ := StartTCAddr(t)
	return c
}

// StartTCAddr is StartTC that also returns the coordinator's address, for
// tests that connect to it from another process.
func StartTCAddr(t testing.TB) (tcv1.CoordinatorClient, string) {
	t.Helper()
	c := NewTC(t, TCOptions{})
	return c.Client, c.Addr
}

// TCOptions adjusts NewTC.
type TCOptions struct {
	// DBPath is the SQLite file of the store; empty means a new file in t's
	// temporary directory. Two coordinators on one path, one after the
	// other, are a restart.
	DBPath string
	// Configure, when set, changes the coordinator's configuration (fast
	// retries and sweeps, node 1, logs discarded) before it is used.
	Configure func(*tc.Config)
	// MaxBatch is the store's group-commit bound (sqlstore.Config.MaxBatch);
	// 0 keeps the default, 1 turns group commit off.
	MaxBatch int
	// Store, when set, returns the Store the coordinator uses, given the
	// SQLite store (which stays its LockStore): a wrapper that watches or
	// disturbs the calls. The Store then is not the LockStore, so the
	// coordinator registers branches with AcquireLocks and AddBranch, not
	// with the store's tc.LockingAdder.
	Store func(*sqlstore.Store) tc.Store
	// ServerOptions are passed to grpc.NewServer, e.g. an interceptor that
	// watches or disturbs the calls.
	ServerOptions []grpc.ServerOption
	// Addr is the address to listen on; empty means a free loopback port.
	// A restart passes the stopped coordinator's Addr and DBPath.
	Addr string
}

// TC is a running coordinator of NewTC.
type TC struct {
	Server *tc.Server
	Store  *sqlstore.Store
	Client tcv1.CoordinatorClient
	Addr   string

	stop func()
}

// Stop stops the coordinator: it closes Client, the server and the store.
// It may be called more than once; NewTC calls it when t ends.
func (c *TC) Stop() { c.stop() }

// NewTC starts a real coordinator on a SQLite store, served on a loopback
// gRPC port (or o.Addr), and stops it when t ends.
func NewTC(t testing.TB, o TCOptions) *TC {
	t.Helper()
	ctx := context.Background()
	idCfg := idgen.DefaultConfig()
	idCfg.NodeID = 1
	ids, err := idgen.New(idCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	cfg.ServerID = "gtxtest"
	cfg.IDs = ids
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.RecoveryInterval = 50 * time.Millisecond
	cfg.TimeoutCheckInterval = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	path := o.DBPath
	if path == "" {
		path = filepath.Join(t.TempDir(), "tc.db")
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: path, Logger: cfg.Logger, MaxBatch: o.MaxBatch})
	if err != nil {
		t.Fatal(err)
	}
	// Closed by Stop once it exists; until then, by this cleanup (a second
	// Close is harmless).
	t.Cleanup(func() { _ = store.Close() })
	var sessions tc.Store = store
	if o.Store != nil {
		sessions = o.Store(store)
	}
	srv, err := tc.NewServer(cfg, sessions, store)
	if err != nil {
		t.Fatal(err)
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(o.ServerOptions...)
	tcv1.RegisterCoordinatorServer(gs, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := &TC{Server: srv, Store: store, Client: tcv1.NewCoordinatorClient(cc), Addr: lis.Addr().String()}
	c.stop = sync.OnceFunc(func() {
		_ = cc.Close()
		_ = srv.Close()
		gs.Stop()
		<-done
		_ = store.Close()
	})
	t.Cleanup(c.Stop)
	return c
}
