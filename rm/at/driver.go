package at

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	_ "github.com/glebarez/go-sqlite"  // registers "sqlite"
	_ "github.com/go-sql-driver/mysql" // registers "mysql"

	"github.com/gtx-io/gtx/internal/sqlconn"
)

// Connector opens AT connections to one resource. Pass it to sql.OpenDB,
// or use Open. Closing the *sql.DB closes it.
type Connector struct {
	cfg  Config
	raw  driver.Connector
	res  *resource
	once sync.Once
}

// NewConnector validates cfg, opens the wrapped driver's connector and
// announces the resource to cfg.Manager, setting the AT phase-2 handler on
// it the first time.
func NewConnector(cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	raw := cfg.Connector
	if raw == nil {
		var err error
		if raw, err = openConnector(cfg.DriverName, cfg.DSN); err != nil {
			return nil, err
		}
	}
	res, err := acquire(cfg, sql.OpenDB(raw))
	if err != nil {
		return nil, err
	}
	return &Connector{cfg: cfg, raw: raw, res: res}, nil
}

// openConnector returns the connector of a registered driver.
func openConnector(driverName, dsn string) (driver.Connector, error) {
	c, err := sqlconn.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("at: %w", err)
	}
	return c, nil
}

// Open returns a *sql.DB whose transactions become AT branches when their
// context carries an XID. It is the one line that changes from sql.Open.
func Open(cfg Config) (*sql.DB, error) {
	c, err := NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// Connect opens a wrapped connection.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	raw, err := c.raw.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{raw: raw, res: c.res, cfg: &c.cfg}, nil
}

// Driver returns the AT driver.
func (c *Connector) Driver() driver.Driver { return atDriver{} }

// ResourceID returns the resource ID the connector registers branches with.
func (c *Connector) ResourceID() string { return c.cfg.ResourceID }

// Close releases the resource: once the last connector of a resource ID
// closes, its pending undo log deletions are flushed and phase 2 stops
// finding it. sql.DB.Close calls it.
func (c *Connector) Close() error {
	var err error
	c.once.Do(func() { err = c.res.release() })
	return err
}

// atDriver is returned by Connector.Driver and registered under the names in
// Register; opening it by DSN uses the defaults set with SetDefaults.
type atDriver struct{ wrapped string }

func (d atDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector opens a connector for sql.Open("gtx-mysql", dsn),
// sql.Open("gtx-sqlite", dsn) and the names RegisterDialect adds,
// configured by SetDefaults.
func (d atDriver) OpenConnector(dsn string) (driver.Connector, error) {
	if d.wrapped == "" {
		return nil, errors.New("at: this driver value comes from a Connector; open databases with at.Open or sql.Open(\"gtx-mysql\", dsn)")
	}
	defaults.mu.Lock()
	cfg, ok := defaults.cfg, defaults.set
	defaults.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: call at.SetDefaults with the rm.Manager and coordinator before sql.Open(%q, ...)", ErrInvalidConfig, "gtx-"+d.wrapped)
	}
	cfg.DriverName, cfg.DSN, cfg.Dialect, cfg.ResourceID = d.wrapped, dsn, nil, ""
	return NewConnector(cfg)
}

// Driver names registered with database/sql: each wraps the driver of the
// same name without the prefix. DriverPostgres is registered by package
// atpg (RegisterDialect), which a program imports to use it.
const (
	DriverMySQL    = "gtx-mysql"
	DriverSQLite   = "gtx-sqlite"
	DriverPostgres = "gtx-pgx"
)

var defaults struct {
	mu  sync.Mutex
	cfg Config
	set bool
}

// SetDefaults sets the configuration sql.Open(DriverMySQL, dsn),
// sql.Open(DriverSQLite, dsn) and sql.Open(DriverPostgres, dsn) use: cfg's Manager, Locks and policies, with
// DriverName, DSN, Dialect and ResourceID taken from the driver name and
// the DSN. It is the explicit registry behind those names, like
// sql.Register; call it once at start-up.
func SetDefaults(cfg Config) {
	defaults.mu.Lock()
	defaults.cfg, defaults.set = cfg, true
	defaults.mu.Unlock()
}

func init() {
	sql.Register(DriverMySQL, atDriver{wrapped: "mysql"})
	sql.Register(DriverSQLite, atDriver{wrapped: "sqlite"})
}

// Migrate creates the undo log table of dialect d in db if it is missing.
// Run it once per database, with the wrapped driver or the AT one. On a
// database opened with the AT driver, d may be nil and undoTable "": the
// resource's own dialect and undo table are used.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, undoTable string) error {
	if d == nil {
		if err := fromResource(ctx, db, &d, &undoTable); err != nil {
			return err
		}
	}
	if undoTable == "" {
		undoTable = DefaultUndoTable
	}
	for _, stmt := range d.UndoTableDDL(undoTable) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("at: create undo table %s: %w", undoTable, err)
		}
	}
	return nil
}

// fromResource sets *d to the dialect of the AT database db, and
// *undoTable to its undo table when empty.
func fromResource(ctx context.Context, db *sql.DB, d *Dialect, undoTable *string) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("at: migrate: %w", err)
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		ac, ok := dc.(*conn)
		if !ok {
			return fmt.Errorf("%w: migrate with a nil Dialect needs a database opened with the AT driver; pass the dialect for %T", ErrInvalidConfig, dc)
		}
		*d = ac.cfg.Dialect
		if *undoTable == "" {
			*undoTable = ac.cfg.UndoTable
		}
		return nil
	})
}

// PurgeDefended deletes the defense rows phase 2 left in the undo table
// more than age ago, by the database's clock, and returns how many it
// deleted. A defense row stops a phase 1 still in flight from committing
// after its rollback; once the longest global transaction timeout has
// passed, none can be, so operators purge rows older than that (a day is a
// safe default).
func PurgeDefended(ctx context.Context, db *sql.DB, d Dialect, undoTable string, age time.Duration) (int64, error) {
	if undoTable == "" {
		undoTable = DefaultUndoTable
	}
	if age < 0 {
		return 0, fmt.Errorf("at: purge defense rows: negative age %v", age)
	}
	cond, arg := d.CreatedBefore(age)
	query, err := bind(d, "DELETE FROM "+d.Quote(undoTable)+" WHERE state = ? AND "+cond)
	if err != nil {
		return 0, err
	}
	res, err := db.ExecContext(ctx, query, stateDefended, arg)
	if err != nil {
		return 0, fmt.Errorf("at: purge defense rows of %s: %w", undoTable, err)
	}
	return res.RowsAffected()
}
