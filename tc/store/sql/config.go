package sqlstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Drivers Open accepts in Config.Driver.
const (
	// DriverSQLite is the embedded default: a local file, pure Go, no server.
	DriverSQLite = "sqlite"
	// DriverMySQL serves MySQL and MariaDB.
	DriverMySQL = "mysql"
	// DriverPostgres serves PostgreSQL.
	DriverPostgres = "postgres"
)

// SQLite synchronous modes for Config.SQLiteSynchronous.
const (
	// SyncNormal makes every committed change survive a crash of the
	// process; in WAL mode it may lose the last commits on a power loss or an
	// operating-system crash.
	SyncNormal = "NORMAL"
	// SyncFull also survives a power loss, at the cost of an fsync per commit.
	SyncFull = "FULL"
)

// ErrInvalidConfig is returned by Config.Validate and Open for a Config that
// cannot work; the message says which field to fix.
var ErrInvalidConfig = errors.New("sqlstore: invalid config")

// Config configures Open.
type Config struct {
	// Driver is DriverSQLite, DriverMySQL or DriverPostgres.
	Driver string
	// DSN names the database in the driver's own form: a file path (with
	// optional "?query" parameters) for SQLite, "user@tcp(host:3306)/db" for
	// MySQL, "host=... dbname=..." or a postgres:// URL for PostgreSQL.
	DSN string
	// Logger receives the store's logs and gorm's slow-query warnings.
	Logger *slog.Logger
	// SlowQuery is the duration above which a statement is logged as slow.
	SlowQuery time.Duration

	// SQLiteSynchronous is SyncNormal (the default: durable against a crash
	// of the process) or SyncFull (durable against a power loss too).
	SQLiteSynchronous string
	// SQLiteBusyTimeout is how long a SQLite connection waits for a lock
	// held by another process sharing the file before it fails.
	SQLiteBusyTimeout time.Duration

	// MaxOpenConns caps the connections to MySQL or PostgreSQL. SQLite always
	// uses exactly one, so that writers queue in the pool instead of failing
	// with SQLITE_BUSY.
	MaxOpenConns int
	// MaxIdleConns is how many idle connections to MySQL or PostgreSQL are
	// kept open.
	MaxIdleConns int
	// ConnMaxLifetime recycles connections to MySQL or PostgreSQL after this
	// long; zero keeps them.
	ConnMaxLifetime time.Duration

	// MaxBatch is the most writes one group commit takes: concurrent
	// writes (sessions created, branches added, statuses changed, locks
	// taken and released) share one transaction and one COMMIT.
	// 1 turns group commit off.
	MaxBatch int
	// WriteLanes is how many batches may be in flight at once on MySQL or
	// PostgreSQL, each on its own connection; at most MaxOpenConns. The
	// default, MaxOpenConns, lets a batch form only when every connection
	// is busy writing, so that writers share a COMMIT instead of waiting
	// for a connection. SQLite has one writer, so it always uses one lane.
	WriteLanes int
}

// DefaultConfig returns a Config for an embedded SQLite store in the file
// "gtx.db" of the working directory.
func DefaultConfig() Config {
	return Config{
		Driver:            DriverSQLite,
		DSN:               "gtx.db",
		Logger:            slog.Default(),
		SlowQuery:         200 * time.Millisecond,
		SQLiteSynchronous: SyncNormal,
		SQLiteBusyTimeout: 10 * time.Second,
		MaxOpenConns:      16,
		MaxIdleConns:      16,
		ConnMaxLifetime:   30 * time.Minute,
		MaxBatch:          64,
		WriteLanes:        16,
	}
}

// withDefaults returns c with every zero field set from DefaultConfig,
// except Driver and DSN.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.SlowQuery == 0 {
		c.SlowQuery = d.SlowQuery
	}
	if c.SQLiteSynchronous == "" {
		c.SQLiteSynchronous = d.SQLiteSynchronous
	}
	if c.SQLiteBusyTimeout == 0 {
		c.SQLiteBusyTimeout = d.SQLiteBusyTimeout
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = d.MaxOpenConns
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = min(d.MaxIdleConns, c.MaxOpenConns)
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.WriteLanes == 0 {
		c.WriteLanes = c.MaxOpenConns
	}
	return c
}

// Validate reports the first field of c that cannot work, wrapped in
// ErrInvalidConfig. Zero fields other than Driver and DSN take their
// DefaultConfig values in Open and are valid.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch c.Driver {
	case DriverSQLite, DriverMySQL, DriverPostgres:
	default:
		return fmt.Errorf("%w: Driver %q is not one of %q, %q, %q", ErrInvalidConfig, c.Driver, DriverSQLite, DriverMySQL, DriverPostgres)
	}
	if c.DSN == "" {
		return fmt.Errorf("%w: DSN is empty; name the database to use", ErrInvalidConfig)
	}
	switch strings.ToUpper(c.SQLiteSynchronous) {
	case SyncNormal, SyncFull:
	default:
		return fmt.Errorf("%w: SQLiteSynchronous %q is not %q or %q", ErrInvalidConfig, c.SQLiteSynchronous, SyncNormal, SyncFull)
	}
	if c.SlowQuery < 0 || c.SQLiteBusyTimeout < 0 || c.ConnMaxLifetime < 0 {
		return fmt.Errorf("%w: SlowQuery, SQLiteBusyTimeout and ConnMaxLifetime must not be negative", ErrInvalidConfig)
	}
	if c.MaxOpenConns < 0 || c.MaxIdleConns < 0 {
		return fmt.Errorf("%w: MaxOpenConns and MaxIdleConns must not be negative", ErrInvalidConfig)
	}
	if c.MaxBatch < 0 || c.WriteLanes < 0 {
		return fmt.Errorf("%w: MaxBatch and WriteLanes must not be negative", ErrInvalidConfig)
	}
	if c.Driver != DriverSQLite && c.WriteLanes > c.MaxOpenConns {
		return fmt.Errorf("%w: WriteLanes %d is more than MaxOpenConns %d; each lane needs a connection of its own", ErrInvalidConfig, c.WriteLanes, c.MaxOpenConns)
	}
	return nil
}
