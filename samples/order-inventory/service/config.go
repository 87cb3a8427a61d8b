package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Database drivers a service runs on.
const (
	// MySQL is MySQL or MariaDB, through github.com/go-sql-driver/mysql.
	MySQL = "mysql"
	// SQLite is SQLite in a file, through github.com/glebarez/sqlite.
	SQLite = "sqlite"
	// Postgres is PostgreSQL, through pgx (github.com/jackc/pgx/v5/stdlib)
	// and AT mode's PostgreSQL dialect (rm/at/atpg). That dialect needs
	// cgo: a binary built with CGO_ENABLED=0 fails to open it with
	// ErrNoPostgres.
	Postgres = "postgres"
)

// ErrInvalidConfig is what Config.Validate's errors match.
var ErrInvalidConfig = errors.New("service: invalid config")

// ErrNoPostgres is what Open answers for Driver Postgres in a binary built
// without cgo.
var ErrNoPostgres = errors.New("service: this binary was built without cgo (CGO_ENABLED=0), and PostgreSQL needs it: " +
	"AT mode's PostgreSQL dialect (rm/at/atpg) parses SQL with libpg_query, in C; " +
	"rebuild with CGO_ENABLED=1 and a C compiler, or use -db-driver mysql or sqlite")

// Config configures one service. Start from DefaultConfig.
type Config struct {
	// Name names the service ("order", "inventory", "account"); it is the
	// application name the coordinator sees.
	Name string
	// HTTPAddr and GRPCAddr are the listen addresses; port 0 picks one.
	HTTPAddr string
	GRPCAddr string // see HTTPAddr
	// TC names the coordinator's replicas (see ParseCoordinators):
	// "host:port", a list "host1:port,host2:port", or "dns:///name:port".
	// The resource manager attaches to every replica, since any of them may
	// drive phase 2; the transaction manager's calls go round robin.
	TC string
	// TCToken is this application's token for a coordinator that requires
	// tokens (gtx tc --auth-tokens-file); empty sends none. It is sent with
	// every call and never logged.
	TCToken string
	// TCCA is a PEM file of the CA that signed the coordinator's
	// certificate: the connections use TLS. Empty means plaintext, with a
	// warning when a token is sent.
	TCCA string
	// NATSURL is the NATS server with JetStream that carries the saga
	// steps (nats://host:4222).
	NATSURL string
	// NATSStream is the JetStream stream of the saga steps, and
	// NATSSubject the subject prefix it holds (NATSSubject + ".>"). Every
	// service of one sample must use the same two; two samples on one
	// server need different ones.
	NATSStream  string
	NATSSubject string // see NATSStream
	// Driver is MySQL, Postgres or SQLite.
	Driver string
	// DSN names the service's own database: a go-sql-driver/mysql DSN with
	// a database name, a pgx DSN naming a database (a URL
	// "postgres://user@host:5432/db" or "host=... dbname=..."), or an
	// SQLite file path with its query options.
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

// Defaults of the NATS stream and subject prefix.
const (
	DefaultNATSStream  = "GTX_SAMPLE"
	DefaultNATSSubject = "gtx.sample"
)

// DefaultConfig listens on loopback ports chosen by the system, expects a
// coordinator on 127.0.0.1:8091 and NATS on 127.0.0.1:4222, and gives
// global transactions 30 s.
func DefaultConfig(name string) Config {
	return Config{
		Name:           name,
		HTTPAddr:       "127.0.0.1:0",
		GRPCAddr:       "127.0.0.1:0",
		TC:             "127.0.0.1:8091",
		NATSURL:        "nats://127.0.0.1:4222",
		NATSStream:     DefaultNATSStream,
		NATSSubject:    DefaultNATSSubject,
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
	case c.NATSURL == "":
		return bad("NATSURL is empty: saga steps travel over NATS JetStream; give its URL")
	case !validStreamName(c.NATSStream):
		return bad("NATSStream %q: give a stream name without spaces, dots, '*', '>', '/' or '\\'", c.NATSStream)
	case !validSubjectPrefix(c.NATSSubject):
		return bad("NATSSubject %q: give subject tokens joined by dots, without spaces or wildcards", c.NATSSubject)
	case c.Driver != MySQL && c.Driver != Postgres && c.Driver != SQLite:
		return bad("Driver is %q: use %q, %q or %q", c.Driver, MySQL, Postgres, SQLite)
	case c.DSN == "":
		return bad("DSN is empty: give the service's database")
	case c.Driver != Postgres && postgresDSN(c.DSN):
		return bad("DSN %q is PostgreSQL's but Driver is %q: use Driver %q (-db-driver postgres)", redactDSN(c.DSN), c.Driver, Postgres)
	case c.TxTimeout <= 0 || c.RequestTimeout <= 0:
		return bad("TxTimeout and RequestTimeout must be positive")
	}
	_, err := ParseCoordinators(c.TC)
	return err
}

// postgresDSN reports whether dsn is written as a PostgreSQL DSN: a
// postgres:// or postgresql:// URL, or key=value pairs naming a host or a
// database.
func postgresDSN(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return true
	}
	for f := range strings.FieldsSeq(dsn) {
		if strings.HasPrefix(f, "host=") || strings.HasPrefix(f, "dbname=") {
			return true
		}
	}
	return false
}

// redactDSN hides the password of a PostgreSQL DSN, for error messages.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

// sqlDriver is the database/sql driver name of Driver.
func (c *Config) sqlDriver() string {
	if c.Driver == Postgres {
		return "pgx"
	}
	return c.Driver
}

// validStreamName reports whether s may name a JetStream stream.
func validStreamName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n.*>/\\")
}

// validSubjectPrefix reports whether s is a NATS subject without
// wildcards, under which ".>" may be appended.
func validSubjectPrefix(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}
