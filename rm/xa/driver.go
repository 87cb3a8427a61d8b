package xa

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	"github.com/gtx-io/gtx/internal/sqlconn"
)

// Connector opens XA connections to one resource. Pass it to sql.OpenDB,
// or use Open. Closing the *sql.DB closes it.
type Connector struct {
	cfg  Config
	raw  driver.Connector
	res  *resource
	once sync.Once
}

// NewConnector validates cfg, opens the wrapped driver's connector and
// announces the resource to cfg.Manager, setting the XA phase-2 handler on
// it the first time, and starts the resource's recovery loop.
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
		return nil, fmt.Errorf("xa: %w", err)
	}
	return c, nil
}

// Open returns a *sql.DB whose transactions become XA branches when their
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
	return &conn{raw: raw, res: c.res}, nil
}

// Driver returns the XA driver.
func (c *Connector) Driver() driver.Driver { return xaDriver{} }

// ResourceID returns the resource ID the connector registers branches with.
func (c *Connector) ResourceID() string { return c.cfg.ResourceID }

// Close releases the resource: once the last connector of a resource ID
// closes, its recovery loop stops and phase 2 stops finding it. sql.DB.Close
// calls it.
func (c *Connector) Close() error {
	var err error
	c.once.Do(func() { err = c.res.release() })
	return err
}

// Driver names registered with database/sql: each wraps the driver of the
// same name without the prefix "gtx-xa-".
const (
	DriverMySQL    = "gtx-xa-mysql"
	DriverPostgres = "gtx-xa-pgx"
)

// xaDriver is returned by Connector.Driver and registered under the names
// above; opening it by DSN uses the defaults set with SetDefaults.
type xaDriver struct{ wrapped string }

func (d xaDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector opens a connector for sql.Open(DriverMySQL, dsn) and
// sql.Open(DriverPostgres, dsn), configured by SetDefaults.
func (d xaDriver) OpenConnector(dsn string) (driver.Connector, error) {
	if d.wrapped == "" {
		return nil, errors.New("xa: this driver value comes from a Connector; open databases with xa.Open or sql.Open(\"gtx-xa-mysql\", dsn)")
	}
	defaults.mu.Lock()
	cfg, ok := defaults.cfg, defaults.set
	defaults.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: call xa.SetDefaults with the rm.Manager and coordinator before sql.Open(%q, ...)", ErrInvalidConfig, "gtx-xa-"+d.wrapped)
	}
	cfg.DriverName, cfg.DSN, cfg.Dialect, cfg.ResourceID = d.wrapped, dsn, nil, ""
	return NewConnector(cfg)
}

var defaults struct {
	mu  sync.Mutex
	cfg Config
	set bool
}

// SetDefaults sets the configuration sql.Open(DriverMySQL, dsn) and
// sql.Open(DriverPostgres, dsn) use: cfg's Manager, Status and policies,
// with DriverName, DSN, Dialect and ResourceID taken from the driver name
// and the DSN. It is the explicit registry behind those names, like
// sql.Register and at.SetDefaults; call it once at start-up.
func SetDefaults(cfg Config) {
	defaults.mu.Lock()
	defaults.cfg, defaults.set = cfg, true
	defaults.mu.Unlock()
}

func init() {
	sql.Register(DriverMySQL, xaDriver{wrapped: "mysql"})
	sql.Register(DriverPostgres, xaDriver{wrapped: "pgx"})
}
