package at

import (
	"context"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// LockQuerier asks the coordinator whether global row locks are free.
// tcv1.CoordinatorClient implements it.
type LockQuerier interface {
	QueryLocks(ctx context.Context, in *tcv1.QueryLocksRequest, opts ...grpc.CallOption) (*tcv1.QueryLocksResponse, error)
}

// Config configures an AT database. Start from DefaultConfig; set
// DriverName and DSN (or Connector and Dialect), Manager and Locks.
type Config struct {
	// DriverName is the database/sql driver AT wraps: "mysql"
	// (github.com/go-sql-driver/mysql), "sqlite"
	// (github.com/glebarez/go-sqlite), or one a dialect package registered
	// with RegisterDialect ("pgx", github.com/jackc/pgx/v5/stdlib, with
	// package atpg imported).
	DriverName string
	// DSN is the wrapped driver's data source name.
	DSN string
	// Connector, when set, is used instead of DriverName and DSN; Dialect
	// and ResourceID must then be set too.
	Connector driver.Connector
	// Dialect defaults to the built-in one for DriverName.
	Dialect Dialect
	// ResourceID names the database to the coordinator; every instance of
	// a service that uses the same database must use the same ID. It
	// defaults to one derived from the DSN without its password:
	// "mysql:user@tcp(host:3306)/db" or "sqlite:/absolute/path.db".
	ResourceID string
	// Manager registers branches and runs phase 2 for this resource.
	Manager *rm.Manager
	// Locks answers global lock queries for SELECT ... FOR UPDATE and for
	// transactions marked with gtx.WithGlobalLock.
	Locks LockQuerier
	// UndoTable names the undo log table (see Migrate).
	UndoTable string
	// LockRetryInterval and LockRetryTimes are the policy for a global row
	// lock held by another global transaction: wait the interval, try
	// again, at most LockRetryTimes more times. A holder that is rolling
	// back fails the attempt at once.
	LockRetryInterval time.Duration
	LockRetryTimes    int
	// MetadataTTL is how long table metadata is cached. DDL run through
	// this driver, and statements failing on a missing table or column,
	// drop the cache at once; DDL run elsewhere is seen after at most
	// MetadataTTL.
	MetadataTTL time.Duration
	// CompressAbove deflates undo logs longer than this many bytes; 0
	// never compresses.
	CompressAbove int
	// CleanupInterval and CleanupBatch drive the deletion of committed
	// branches' undo logs: at most CleanupBatch at once, at least every
	// CleanupInterval.
	CleanupInterval time.Duration
	CleanupBatch    int
	// Phase2MaxOpenConns caps the connections of the resource's own pool,
	// on which phase 2 (undo log deletion and rollback) and the sweeper
	// run, and is also how many of them stay open idle. It must be
	// positive: phase 2 runs up to rm.Config.Workers branches at once, and
	// without a cap each could open a connection of its own beside the
	// service's pool. A phase 2 finding the pool busy waits for a
	// connection, within the branch's timeout.
	Phase2MaxOpenConns int
	// Sweep configures the sweeper that deletes undo rows of committed
	// branches whose deletion was lost (see SweepConfig).
	Sweep SweepConfig
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultUndoTable is the undo log table's default name.
const DefaultUndoTable = "gtx_undo_log"

// DefaultConfig returns a Config with the undo table gtx_undo_log, lock
// retries every 10ms up to 100 times (1s), metadata cached for a minute,
// compression above 64 KiB, undo cleanup in batches of 500 at least
// every 200ms, at most 4 phase-2 connections, and DefaultSweepConfig.
func DefaultConfig() Config {
	return Config{
		UndoTable:          DefaultUndoTable,
		LockRetryInterval:  10 * time.Millisecond,
		LockRetryTimes:     100,
		MetadataTTL:        time.Minute,
		CompressAbove:      64 << 10,
		CleanupInterval:    200 * time.Millisecond,
		CleanupBatch:       500,
		Phase2MaxOpenConns: 4,
		Sweep:              DefaultSweepConfig(),
	}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig. It fills the Dialect and ResourceID defaults.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Dialect == nil {
		c.Dialect = dialectFor(c.DriverName)
	}
	switch {
	case c.Connector == nil && (c.DriverName == "" || c.DSN == ""):
		return bad("set DriverName and DSN, or Connector")
	case c.Dialect == nil:
		return bad("no built-in dialect for driver %q: set Dialect", c.DriverName)
	case c.Manager == nil:
		return bad("Manager is nil: AT branches register through an *rm.Manager")
	case c.Locks == nil:
		return bad("Locks is nil: pass the coordinator client (tcv1.CoordinatorClient)")
	case c.UndoTable == "":
		return bad("UndoTable is empty")
	case c.LockRetryInterval <= 0 || c.LockRetryTimes < 0:
		return bad("need LockRetryInterval > 0 and LockRetryTimes >= 0, got %v and %d", c.LockRetryInterval, c.LockRetryTimes)
	case c.MetadataTTL <= 0:
		return bad("MetadataTTL must be positive, got %v", c.MetadataTTL)
	case c.CompressAbove < 0:
		return bad("CompressAbove is negative")
	case c.CleanupInterval <= 0 || c.CleanupBatch <= 0:
		return bad("need CleanupInterval > 0 and CleanupBatch > 0")
	case c.Phase2MaxOpenConns <= 0:
		return bad("Phase2MaxOpenConns must be positive, got %d", c.Phase2MaxOpenConns)
	}
	if err := c.Sweep.validate(c.Locks); err != nil {
		return bad("%v", err)
	}
	if c.ResourceID == "" {
		if c.Connector != nil {
			return bad("ResourceID is empty: a Connector has no DSN to derive it from")
		}
		id, err := ResourceID(c.DriverName, c.DSN)
		if err != nil {
			return bad("%v", err)
		}
		c.ResourceID = id
	}
	return nil
}

// ResourceID derives a resource ID from a DSN, leaving the password out:
// "mysql:user@tcp(host:3306)/db" for MySQL, "sqlite:/absolute/path" for
// SQLite (query parameters dropped), and what RegisterDialect's function
// returns for the other drivers.
func ResourceID(driverName, dsn string) (string, error) {
	switch dialectFor(driverName) {
	case MySQL():
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", fmt.Errorf("at: parse mysql dsn: %w", err)
		}
		if cfg.DBName == "" {
			return "", fmt.Errorf("at: mysql dsn names no database; AT needs one")
		}
		return fmt.Sprintf("mysql:%s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName), nil
	case SQLite():
		path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
		if path == "" || path == ":memory:" {
			return "", fmt.Errorf("at: sqlite dsn %q is not a file; AT needs a database file phase 2 can open", dsn)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("at: sqlite path: %w", err)
		}
		return "sqlite:" + abs, nil
	}
	if id, ok, err := registeredResourceID(driverName, dsn); ok {
		return id, err
	}
	return "", fmt.Errorf("at: cannot derive a resource ID for driver %q; set ResourceID", driverName)
}
