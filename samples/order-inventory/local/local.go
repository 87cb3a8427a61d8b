// Package local runs the whole sample in one process: a coordinator on its
// default store (a one-node raft cluster, see tc/store/raftstore), an embedded NATS server with JetStream for the saga steps, and
// the order, inventory and account services, each on its own SQLite file,
// all in one directory and on loopback ports. `gtx demo` and the sample's
// tests use it; nothing needs to be installed.
//
//	st, err := local.Start(ctx, local.Config{Dir: dir})
//	...
//	defer st.Close()
//	resp, err := http.Post(st.OrderURL+"/v1/orders", "application/json", body)
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/samples/order-inventory/account"
	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tc/store/raftstore"
)

// Config configures a local run.
type Config struct {
	// Dir holds the coordinator's data directory (tc/), the services'
	// SQLite files (order.db, inventory.db, account.db) and the NATS
	// server's JetStream store (nats/). Required.
	Dir string
	// TxTimeout is the global transactions' timeout; 0 means 30 s.
	TxTimeout time.Duration
	// Logger receives every component's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Stack is the running sample.
type Stack struct {
	// TCAddr is the coordinator's gRPC address; TC a client of it.
	TCAddr string
	TC     tcv1.CoordinatorClient // see TCAddr
	// NATSURL is the embedded NATS server's URL (nats://127.0.0.1:port).
	NATSURL string
	// OrderURL, InventoryURL and AccountURL are the services' HTTP base
	// URLs (http://127.0.0.1:port).
	OrderURL     string
	InventoryURL string // see OrderURL
	AccountURL   string // see OrderURL

	closers []func()
}

// SQLiteDSN is the DSN the services use for an SQLite file: immediate
// transactions, WAL and a busy timeout, as concurrent writers need.
func SQLiteDSN(path string) string {
	return path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
}

// Start starts the coordinator, the NATS server and the three services. On
// error, what was started is stopped again.
func Start(ctx context.Context, cfg Config) (st *Stack, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("local: Config.Dir is empty: give a directory for the SQLite files")
	}
	if cfg.TxTimeout == 0 {
		cfg.TxTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	st = &Stack{}
	defer func() {
		if err != nil {
			st.Close()
			st = nil
		}
	}()
	if err := st.startTC(ctx, cfg.Dir, log); err != nil {
		return st, err
	}
	if err := st.startNATS(filepath.Join(cfg.Dir, "nats")); err != nil {
		return st, err
	}
	base := func(name string) service.Config {
		c := service.DefaultConfig(name)
		c.TC = st.TCAddr
		c.NATSURL = st.NATSURL
		c.Driver = service.SQLite
		c.DSN = SQLiteDSN(filepath.Join(cfg.Dir, name+".db"))
		c.TxTimeout = cfg.TxTimeout
		c.Logger = log
		return c
	}
	inv, err := inventory.New(ctx, base("inventory"))
	if err != nil {
		return st, err
	}
	st.closers = append(st.closers, inv.Close)
	acc, err := account.New(ctx, base("account"))
	if err != nil {
		return st, err
	}
	st.closers = append(st.closers, acc.Close)
	ord, err := order.New(ctx, order.Config{Config: base("order"), Inventory: inv.GRPCAddr(), Account: acc.GRPCAddr()})
	if err != nil {
		return st, err
	}
	st.closers = append(st.closers, ord.Close)
	st.OrderURL = "http://" + ord.HTTPAddr()
	st.InventoryURL = "http://" + inv.HTTPAddr()
	st.AccountURL = "http://" + acc.HTTPAddr()
	return st, nil
}

func (st *Stack) startTC(ctx context.Context, dir string, log *slog.Logger) error {
	rcfg := raftstore.DefaultConfig()
	rcfg.NodeID, rcfg.Dir, rcfg.Bind, rcfg.Logger = "local", filepath.Join(dir, "tc"), "127.0.0.1:0", log
	store, err := raftstore.Open(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("local: open the coordinator's store: %w", err)
	}
	st.closers = append(st.closers, func() { _ = store.Close() })
	ids, err := idgen.New(idgen.DefaultConfig())
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	cfg := tc.DefaultConfig()
	cfg.ServerID = "local"
	cfg.IDs = ids
	cfg.Logger = log
	cfg.RetryInitial = 50 * time.Millisecond
	cfg.RetryMax = 2 * time.Second
	srv, err := tc.NewServer(cfg, store, store)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("local: listen for the coordinator: %w", err)
	}
	gs := grpc.NewServer()
	tcv1.RegisterCoordinatorServer(gs, srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	st.closers = append(st.closers, func() { gs.Stop(); <-served })
	if err := srv.Start(ctx); err != nil {
		return fmt.Errorf("local: start the coordinator: %w", err)
	}
	st.closers = append(st.closers, func() { _ = srv.Close() })
	st.TCAddr = lis.Addr().String()
	conn, err := grpc.NewClient(st.TCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("local: dial the coordinator: %w", err)
	}
	st.closers = append(st.closers, func() { _ = conn.Close() })
	st.TC = tcv1.NewCoordinatorClient(conn)
	return nil
}

// startNATS starts an embedded NATS server with JetStream, its store in
// dir, on a free loopback port.
func (st *Stack) startNATS(dir string) error {
	ns, err := server.NewServer(&server.Options{
		ServerName: "gtx-local",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return fmt.Errorf("local: NATS server: %w", err)
	}
	ns.Start()
	st.closers = append(st.closers, func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("local: the embedded NATS server did not start within 10s")
	}
	st.NATSURL = ns.ClientURL()
	return nil
}

// Close stops the services, the NATS server and the coordinator, newest
// first.
func (st *Stack) Close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.closers = nil
}
