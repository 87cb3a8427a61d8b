package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/glebarez/sqlite" // the "sqlite" driver
	"github.com/go-kratos/kratos/v2/middleware"
	"github.com/go-kratos/kratos/v2/middleware/metadata"
	"github.com/go-kratos/kratos/v2/middleware/recovery"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	_ "github.com/go-sql-driver/mysql" // the "mysql" driver
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/tm"
)

// Base is a service's shared machinery. Its fields are set by Open.
type Base struct {
	Cfg Config       // what Open was given
	Log *slog.Logger // the service's logger
	// TC is the coordinator client; RM and TM are this service's resource
	// and transaction managers on it.
	TC tcv1.CoordinatorClient
	RM *rm.Manager // see TC
	TM *tm.Manager // see TC
	// AT is the service's database through the AT driver: a local
	// transaction whose context carries an XID is an AT branch. Plain is
	// the same database without AT, for the TCC fence and phases, DDL and reads.
	AT    *sql.DB
	Plain *sql.DB // see AT
	// XA is the service's database through the XA driver (rm/xa): a local
	// transaction whose context carries an XID is an XA branch. It is nil
	// on SQLite, which has no two-phase commit.
	XA *sql.DB
	// ATResource is the AT resource ID of the database, under which the
	// coordinator keeps its global row locks.
	ATResource string
	// HTTP and GRPC are the service's kratos servers; register routes and
	// services on them before Start.
	HTTP *khttp.Server
	GRPC *kgrpc.Server // see HTTP
	// JS is JetStream on Cfg.NATSURL, which carries the saga steps (see
	// ServeSteps and StepClient).
	JS jetstream.JetStream

	dialect at.Dialect
	conn    *grpc.ClientConn
	closers []func() error
	once    sync.Once
}

// Open dials the coordinator replicas, creates the resource manager (which
// attaches to every replica Cfg.TC names) and the transaction manager,
// opens the database both ways, creates the AT undo table, connects to
// NATS and creates the saga steps' stream, and builds the servers with
// recovery, kratosgtx.Server() and metadata.Server() followed by extra.
// Nothing is served until Start. Driver Postgres fails with ErrNoPostgres
// in a binary built without cgo.
func Open(ctx context.Context, cfg Config, extra ...func(*Base) (middleware.Middleware, error)) (b *Base, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	b = &Base{Cfg: cfg, Log: log.With("service", cfg.Name)}
	defer func() {
		if err != nil {
			b.Close()
			b = nil
		}
	}()
	switch cfg.Driver {
	case MySQL:
		b.dialect = at.MySQL()
	case Postgres:
		if b.dialect, err = postgresDialect(); err != nil {
			return b, fmt.Errorf("service %s: %w", cfg.Name, err)
		}
	default:
		b.dialect = at.SQLite()
	}
	coords, err := ParseCoordinators(cfg.TC)
	if err != nil {
		return b, err
	}
	opts, insecureToken, err := cfg.dialOptions()
	if err != nil {
		return b, err
	}
	if insecureToken {
		b.Log.Warn("sending the coordinator token without TLS: give a CA (-tc-ca) outside loopback")
	}
	if b.conn, err = coords.dial(opts); err != nil {
		return b, fmt.Errorf("service %s: dial the coordinator at %s: %w", cfg.Name, cfg.TC, err)
	}
	b.TC = tcv1.NewCoordinatorClient(b.conn)
	rcfg := rm.DefaultConfig()
	rcfg.Application = cfg.Name
	rcfg.Discovery = &rm.Discovery{Resolver: coords.resolver(), Dial: rm.GRPCDialer(opts...)}
	rcfg.Logger = b.Log
	if b.RM, err = rm.New(rcfg); err != nil {
		return b, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	b.closers = append(b.closers, b.RM.Close)
	tcfg := tm.DefaultConfig()
	tcfg.Application = cfg.Name
	tcfg.DefaultTimeout = cfg.TxTimeout
	tcfg.Hooks.AfterBegin = recordBegun
	// The same process as the resource manager: should it die, the
	// coordinator rolls back its open transactions once the manager's
	// streams are gone, not at their timeout.
	tcfg.ClientID = rcfg.ClientID
	tcfg.Logger = b.Log
	if b.TM, err = tm.New(b.TC, tcfg); err != nil {
		return b, fmt.Errorf("service %s: %w", cfg.Name, err)
	}

	if b.Plain, err = sql.Open(cfg.sqlDriver(), cfg.DSN); err != nil {
		return b, fmt.Errorf("service %s: open the database: %w", cfg.Name, err)
	}
	b.closers = append(b.closers, b.Plain.Close)
	if err := b.Plain.PingContext(ctx); err != nil {
		return b, fmt.Errorf("service %s: reach the database: %w", cfg.Name, err)
	}
	acfg := at.DefaultConfig()
	acfg.DriverName, acfg.DSN, acfg.Dialect = cfg.sqlDriver(), cfg.DSN, b.dialect
	acfg.Manager = b.RM
	acfg.Locks = b.TC
	acfg.Logger = b.Log
	if b.ATResource, err = at.ResourceID(acfg.DriverName, cfg.DSN); err != nil {
		return b, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	acfg.ResourceID = b.ATResource
	if b.AT, err = at.Open(acfg); err != nil {
		return b, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	b.closers = append(b.closers, b.AT.Close)
	if cfg.Driver == MySQL || cfg.Driver == Postgres {
		xcfg := xa.DefaultConfig()
		xcfg.DriverName, xcfg.DSN = cfg.sqlDriver(), cfg.DSN
		xcfg.Manager, xcfg.Status, xcfg.Logger = b.RM, b.TC, b.Log
		// Phase 2 and recovery only: one XA statement each.
		xcfg.Phase2MaxOpenConns = 1
		if b.XA, err = xa.Open(xcfg); err != nil {
			return b, fmt.Errorf("service %s: %w", cfg.Name, err)
		}
		b.closers = append(b.closers, b.XA.Close)
		// Connections are opened on demand; on MariaDB each XA branch
		// closes its own once prepared (see rm/xa), so only busy ones count
		// against max_connections. Three more per service keep the sample
		// within PostgreSQL's default of 100 beside the other pools.
		b.XA.SetMaxOpenConns(3)
		b.XA.SetMaxIdleConns(3)
	}
	switch cfg.Driver {
	case MySQL, Postgres:
		// A server thread (MariaDB, MySQL) or process (PostgreSQL) per
		// connection, and max_connections is 151 and 100 by default: three
		// services (each also with AT's phase-2 pool of
		// at.Config.Phase2MaxOpenConns) and a coordinator must fit, and on
		// MariaDB the sample's tests run two such clusters at once. Idle
		// connections are kept up to the cap: with database/sql's default
		// of 2, a busy service closes and reopens connections all the time,
		// and on PostgreSQL each reopen is a new server process that
		// prepares every statement again.
		b.Plain.SetMaxOpenConns(6)
		b.Plain.SetMaxIdleConns(6)
		b.AT.SetMaxOpenConns(10)
		b.AT.SetMaxIdleConns(10)
	}
	if err := at.Migrate(ctx, b.Plain, b.dialect, acfg.UndoTable); err != nil {
		return b, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	if err := b.openNATS(ctx); err != nil {
		return b, err
	}

	mw := []middleware.Middleware{recovery.Recovery(), kratosgtx.Server(kratosgtx.WithLogger(b.Log)), metadata.Server()}
	for _, f := range extra {
		m, err := f(b)
		if err != nil {
			return b, fmt.Errorf("service %s: %w", cfg.Name, err)
		}
		mw = append(mw, m)
	}
	b.HTTP = khttp.NewServer(khttp.Address(cfg.HTTPAddr), khttp.Timeout(cfg.RequestTimeout), khttp.Middleware(mw...))
	b.GRPC = kgrpc.NewServer(kgrpc.Address(cfg.GRPCAddr), kgrpc.Timeout(cfg.RequestTimeout), kgrpc.Middleware(mw...))
	return b, nil
}

// MySQL reports whether the service runs on MySQL or MariaDB.
func (b *Base) MySQL() bool { return b.Cfg.Driver == MySQL }

// ErrNoXA is what a request in mode "xa" gets from a service on SQLite.
var ErrNoXA = errors.New("mode xa needs MySQL, MariaDB or PostgreSQL; this service runs on SQLite")

// XATx begins a local transaction on the XA database: with the XID in ctx
// it is an XA branch of the caller's global transaction. It fails with
// ErrNoXA on SQLite.
func (b *Base) XATx(ctx context.Context) (*sql.Tx, error) {
	if b.XA == nil {
		return nil, fmt.Errorf("service %s: %w", b.Cfg.Name, ErrNoXA)
	}
	return b.XA.BeginTx(ctx, nil)
}

// Postgres reports whether the service runs on PostgreSQL.
func (b *Base) Postgres() bool { return b.Cfg.Driver == Postgres }

// Rebind returns q with its "?" placeholders as the database takes them:
// $1, $2, ... on PostgreSQL (both plainly and through the AT driver), q
// itself elsewhere. q must hold no other question mark.
func (b *Base) Rebind(q string) string {
	if !b.Postgres() {
		return q
	}
	var sb strings.Builder
	n := 0
	for _, r := range q {
		if r != '?' {
			sb.WriteRune(r)
			continue
		}
		n++
		sb.WriteString("$" + strconv.Itoa(n))
	}
	return sb.String()
}

// Start attaches the resource manager to every coordinator replica
// (waiting up to 10 s for them; the manager keeps trying in the background
// after that) and serves HTTP and gRPC until Close.
func (b *Base) Start(ctx context.Context) error {
	if err := b.RM.Start(ctx); err != nil {
		return fmt.Errorf("service %s: %w", b.Cfg.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := b.RM.WaitAttached(wctx); err != nil {
		b.Log.Warn("not attached to every coordinator yet; retrying in the background", "tc", b.Cfg.TC, "err", err)
	}
	cancel()
	if _, err := b.HTTP.Endpoint(); err != nil {
		return fmt.Errorf("service %s: listen for HTTP on %s: %w", b.Cfg.Name, b.Cfg.HTTPAddr, err)
	}
	if _, err := b.GRPC.Endpoint(); err != nil {
		return fmt.Errorf("service %s: listen for gRPC on %s: %w", b.Cfg.Name, b.Cfg.GRPCAddr, err)
	}
	var wg sync.WaitGroup
	b.closers = append(b.closers, func() error { wg.Wait(); return nil })
	for _, s := range []interface {
		Start(context.Context) error
		Stop(context.Context) error
	}{b.HTTP, b.GRPC} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Start(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, http.ErrServerClosed) {
				b.Log.Error("server stopped", "err", err)
			}
		}()
		b.closers = append(b.closers, func() error { return s.Stop(context.Background()) })
	}
	b.Log.Info("serving", "http", b.HTTPAddr(), "grpc", b.GRPCAddr())
	return nil
}

// HTTPAddr is the address HTTP is served on (host:port), once Start ran.
func (b *Base) HTTPAddr() string {
	u, err := b.HTTP.Endpoint()
	if err != nil {
		return ""
	}
	return u.Host
}

// GRPCAddr is the address gRPC is served on (host:port), once Start ran.
func (b *Base) GRPCAddr() string {
	u, err := b.GRPC.Endpoint()
	if err != nil {
		return ""
	}
	return u.Host
}

// OnClose adds f to what Close runs, before what Open and Start set up.
func (b *Base) OnClose(f func() error) { b.closers = append(b.closers, f) }

// Close stops serving and closes the managers, the databases and the
// coordinator connection, newest first. It runs once.
func (b *Base) Close() {
	b.once.Do(func() {
		for i := len(b.closers) - 1; i >= 0; i-- {
			if err := b.closers[i](); err != nil {
				b.Log.Debug("close", "err", err)
			}
		}
		if b.conn != nil {
			_ = b.conn.Close()
		}
	})
}

// Dial connects to another service's gRPC address with the gtx client
// middleware, so calls carry the XID of their context.
func (b *Base) Dial(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	conn, err := kgrpc.DialInsecure(ctx,
		kgrpc.WithEndpoint(addr),
		kgrpc.WithTimeout(b.Cfg.RequestTimeout),
		kgrpc.WithMiddleware(kratosgtx.Client(), metadata.Client()),
		// Reconnect within seconds of a restarted peer, not gRPC's default
		// of up to two minutes.
		kgrpc.WithOptions(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})))
	if err != nil {
		return nil, fmt.Errorf("service %s: dial %s: %w", b.Cfg.Name, addr, err)
	}
	b.closers = append(b.closers, conn.Close)
	return conn, nil
}
