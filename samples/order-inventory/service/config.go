package service

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Database drivers a service runs on.
const (
	// MySQL is MySQL or MariaDB, through github.com/go-sql-driver/mysql.
	MySQL = "mysql"
	// SQLite is SQLite in a file, through github.com/glebarez/sqlite.
	SQLite = "sqlite"
)

// ErrInvalidConfig is what Config.Validate's errors match.
var ErrInvalidConfig = errors.New("service: invalid config")

// Config configures one service. Start from DefaultConfig.
type Config struct {
	// Name names the service ("order", "inventory", "account"); it is the
	// application name the coordinator sees.
	Name string
	// HTTPAddr and GRPCAddr are the listen addresses; port 0 picks one.
	HTTPAddr string
	GRPCAddr string // see HTTPAddr
	// TC is the coordinator's gRPC address (host:port).
	TC string
	// Driver is MySQL or SQLite. PostgreSQL is not offered: AT mode has no
	// PostgreSQL dialect yet.
	Driver string
	// DSN names the service's own database: a go-sql-driver/mysql DSN with
	// a database name, or an SQLite file path with its query options.
	DSN string
	// TxTimeout is the timeout of the global transactions the service
	// begins; past it the coordinator rolls them back.
	TxTimeout time.Duration
	// RequestTimeout bounds one HTTP or gRPC request on the servers and one
	// call on the clients.
	RequestTimeout time.Duration
	// Logger receives the service's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig listens on loopback ports chosen by the system, expects a
// coordinator on 127.0.0.1:8091 and gives global transactions 30 s.
func DefaultConfig(name string) Config {
	return Config{
		Name:           name,
		HTTPAddr:       "127.0.0.1:0",
		GRPCAddr:       "127.0.0.1:0",
		TC:             "127.0.0.1:8091",
		Driver:         SQLite,
		TxTimeout:      30 * time.Second,
		RequestTimeout: 90 * time.Second,
	}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Name == "":
		return bad("Name is empty: name the service")
	case c.HTTPAddr == "" || c.GRPCAddr == "":
		return bad("HTTPAddr and GRPCAddr are required (use port 0 for any)")
	case c.TC == "":
		return bad("TC is empty: give the coordinator's address")
	case c.Driver != MySQL && c.Driver != SQLite:
		return bad("Driver is %q: use %q or %q (AT mode has no PostgreSQL dialect yet)", c.Driver, MySQL, SQLite)
	case c.DSN == "":
		return bad("DSN is empty: give the service's database")
	case c.TxTimeout <= 0 || c.RequestTimeout <= 0:
		return bad("TxTimeout and RequestTimeout must be positive")
	}
	return nil
}
