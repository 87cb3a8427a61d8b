package xa

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// StatusQuerier asks the coordinator for a global transaction's status.
// tcv1.CoordinatorClient implements it.
type StatusQuerier interface {
	GetStatus(ctx context.Context, in *tcv1.GetStatusRequest, opts ...grpc.CallOption) (*tcv1.GetStatusResponse, error)
}

// Config configures an XA database. Start from DefaultConfig; set
// DriverName and DSN (or Connector, Dialect and ResourceID), Manager and
// Status.
type Config struct {
	// DriverName is the database/sql driver XA wraps: "mysql"
	// (github.com/go-sql-driver/mysql, MySQL and MariaDB) or "pgx"
	// (github.com/jackc/pgx/v5/stdlib, PostgreSQL).
	DriverName string
	// DSN is the wrapped driver's data source name.
	DSN string
	// Connector, when set, is used instead of DriverName and DSN; Dialect
	// and ResourceID must then be set too.
	Connector driver.Connector
	// Dialect defaults to the one for DriverName.
	Dialect Dialect
	// ResourceID names the database to the coordinator; every instance of
	// a service that uses the same database must use the same ID. It
	// defaults to one derived from the DSN without its password, as AT
	// derives it: "mysql:user@tcp(host:3306)/db",
	// "postgres:user@host:5432/db".
	ResourceID string
	// Manager registers branches and runs phase 2 for this resource.
	Manager *rm.Manager
	// Status answers the recovery loop's questions about global
	// transactions.
	Status StatusQuerier
	// Phase2MaxOpenConns caps the connections of the resource's own pool,
	// on which phase 2 and recovery run, and is also how many stay open
	// idle.
	Phase2MaxOpenConns int
	// Recover configures the recovery loop.
	Recover RecoverConfig
	// Clock returns the current time; nil means time.Now. The recovery
	// loop measures UnknownGrace with it.
	Clock func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// RecoverConfig configures the recovery loop of a resource, which resolves
// prepared branches by the coordinator's decision.
type RecoverConfig struct {
	// Interval is the time between two listings of the prepared branches;
	// the first runs when the resource opens.
	Interval time.Duration
	// UnknownGrace is how long a prepared branch whose global transaction
	// the coordinator does not know stays prepared before it is rolled
	// back. It must outlast the time from a branch's registration to its
	// coordinator storing it on every replica a GetStatus may reach.
	UnknownGrace time.Duration
	// PreCommitTimeout is how long a prepared branch of a three-phase
	// transaction (tm.ThreePhase) waits, from its first sighting, while no
	// coordinator answers for it, before it commits alone: three-phase
	// commit's rule for a participant past PreCommit. It is unsafe when
	// the network splits (the coordinator may have rolled the transaction
	// back on its side; see docs/consistency.md). Branches of two-phase
	// transactions never decide alone.
	PreCommitTimeout time.Duration
	// Timeout bounds one pass of the loop.
	Timeout time.Duration
}

// DefaultConfig returns a Config with at most 4 phase-2 connections and a
// recovery loop every 10s that rolls back branches unknown to the
// coordinator after a minute, commits precommitted three-phase branches
// after a minute without any coordinator, each pass bounded by 30s.
func DefaultConfig() Config {
	return Config{
		Phase2MaxOpenConns: 4,
		Recover: RecoverConfig{
			Interval:         10 * time.Second,
			UnknownGrace:     time.Minute,
			PreCommitTimeout: time.Minute,
			Timeout:          30 * time.Second,
		},
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
		return bad("no XA dialect for driver %q: use \"mysql\" or \"pgx\", or set Dialect", c.DriverName)
	case c.Manager == nil:
		return bad("Manager is nil: XA branches register through an *rm.Manager")
	case c.Status == nil:
		return bad("Status is nil: pass the coordinator client (tcv1.CoordinatorClient)")
	case c.Phase2MaxOpenConns <= 0:
		return bad("Phase2MaxOpenConns must be positive, got %d", c.Phase2MaxOpenConns)
	case c.Recover.Interval <= 0 || c.Recover.Timeout <= 0:
		return bad("Recover.Interval and Recover.Timeout must be positive, got %v and %v", c.Recover.Interval, c.Recover.Timeout)
	case c.Recover.PreCommitTimeout <= 0:
		return bad("Recover.PreCommitTimeout must be positive, got %v", c.Recover.PreCommitTimeout)
	case c.Recover.UnknownGrace <= 0:
		return bad("Recover.UnknownGrace must be positive, got %v: a branch registers before the coordinator can answer for it", c.Recover.UnknownGrace)
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
// "mysql:user@tcp(host:3306)/db" for MySQL, "postgres:user@host:5432/db"
// for pgx.
func ResourceID(driverName, dsn string) (string, error) {
	switch driverName {
	case "mysql":
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", fmt.Errorf("xa: parse mysql dsn: %w", err)
		}
		if cfg.DBName == "" {
			return "", errors.New("xa: mysql dsn names no database; XA needs one")
		}
		return fmt.Sprintf("mysql:%s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName), nil
	case "pgx":
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return "", fmt.Errorf("xa: parse postgres dsn: %w", err)
		}
		if cfg.Database == "" {
			return "", errors.New("xa: postgres dsn names no database; XA needs one")
		}
		return fmt.Sprintf("postgres:%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database), nil
	}
	return "", fmt.Errorf("xa: cannot derive a resource ID for driver %q; set ResourceID", driverName)
}

func (c *Config) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}
