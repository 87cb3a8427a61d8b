// Package attest starts what the AT tests run against: a real Coordinator
// on SQLite, resource managers attached to it, and fresh MariaDB and
// PostgreSQL databases and SQLite files.
package attest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/tctest"
	"github.com/gtx-io/gtx/tm"
)

// Coordinator is a real TC on a SQLite store, served over loopback gRPC,
// with a TM: a tctest.Env whose resource managers each test starts.
type Coordinator struct {
	// Client is a gRPC client of the coordinator.
	Client tcv1.CoordinatorClient
	// Addr is the coordinator's gRPC address, for other processes.
	Addr string
	// TM begins and ends global transactions through Client.
	TM *tm.Manager
}

// StartCoordinator starts a coordinator with tctest.Start, which the
// project's users start theirs with too.
func StartCoordinator(t testing.TB) *Coordinator {
	t.Helper()
	env := tctest.Start(t, tctest.Config{Application: "at-test"})
	return &Coordinator{Client: env.Client, TM: env.TM, Addr: env.Addr}
}

// NewRM starts a resource manager attached to c.
func NewRM(t testing.TB, c *Coordinator) *rm.Manager {
	t.Helper()
	return NewRMOn(t, c.Client)
}

// NewRMOn starts a resource manager attached to the coordinator client.
func NewRMOn(t testing.TB, client tcv1.CoordinatorClient) *rm.Manager {
	t.Helper()
	return tctest.NewRM(t, client, "at-test")
}

// Backend is a real database: a fresh MariaDB or PostgreSQL database, or a
// SQLite file.
type Backend struct {
	Name   string
	Driver string
	DSN    string
	// Raw is a plain connection pool, for setting up and inspecting.
	Raw *sql.DB
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// MySQLBackend creates a database with a unique name on the MariaDB of
// GTX_TEST_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/) and drops it when
// the test ends.
func MySQLBackend(t testing.TB) *Backend {
	t.Helper()
	base := envOr("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	name := createDatabase(t, "mysql", base, "")
	dsn := base + name
	if strings.Contains(base, "?") {
		dsn = strings.Replace(base, "/?", "/"+name+"?", 1)
	}
	return &Backend{Name: "mariadb", Driver: "mysql", DSN: dsn, Raw: openRaw(t, "mysql", dsn)}
}

// envOr returns the environment variable key, or def when it is empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// createDatabase creates a database with a unique name through driver on
// the server of base, drops it (DROP DATABASE name dropTail) when the test
// ends, and returns its name.
func createDatabase(t testing.TB, driver, base, dropTail string) string {
	t.Helper()
	admin, err := sql.Open(driver, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := randomName("gtx_at_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("%s: %v", driver, err)
	}
	t.Cleanup(func() {
		a, err := sql.Open(driver, base)
		if err == nil {
			a.Exec("DROP DATABASE " + name + dropTail)
			a.Close()
		}
	})
	return name
}

// openRaw opens a plain pool on dsn, closed when the test ends.
func openRaw(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// SQLiteBackend makes a SQLite file in the test's temporary directory, in
// WAL mode with immediate transactions and a long busy timeout.
func SQLiteBackend(t testing.TB) *Backend {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "at.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	return &Backend{Name: "sqlite", Driver: "sqlite", DSN: dsn, Raw: openRaw(t, "sqlite", dsn)}
}

// Backends runs f against MariaDB and SQLite.
func Backends(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Run("mariadb", func(t *testing.T) { f(t, MySQLBackend(t)) })
	t.Run("sqlite", func(t *testing.T) { f(t, SQLiteBackend(t)) })
}

// AllBackends runs f against MariaDB, SQLite and PostgreSQL, for the tests
// whose SQL all three take (with placeholders written through SQL).
func AllBackends(t *testing.T, f func(t *testing.T, b *Backend)) {
	Backends(t, f)
	t.Run("postgres", func(t *testing.T) { f(t, PostgresBackend(t)) })
}

// SQL returns query with its ? placeholders numbered $1, $2, ... for
// PostgreSQL, and as it is for the other backends. It numbers every ?, so
// query must have no ? in literals or operators.
func (b *Backend) SQL(query string) string {
	if b.Driver != "pgx" {
		return query
	}
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&sb, "$%d", n)
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// OpenAT opens b through the AT driver, with its undo table migrated.
func OpenAT(t testing.TB, b *Backend, m *rm.Manager, c *Coordinator, tune ...func(*at.Config)) *sql.DB {
	t.Helper()
	return OpenATOn(t, b, m, c.Client, tune...)
}

// OpenATOn is OpenAT with a coordinator client.
func OpenATOn(t testing.TB, b *Backend, m *rm.Manager, client tcv1.CoordinatorClient, tune ...func(*at.Config)) *sql.DB {
	t.Helper()
	cfg := at.DefaultConfig()
	cfg.DriverName, cfg.DSN, cfg.Manager, cfg.Locks = b.Driver, b.DSN, m, client
	for _, f := range tune {
		f(&cfg)
	}
	db, err := at.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := at.Migrate(context.Background(), db, nil, ""); err != nil {
		t.Fatal(err)
	}
	return db
}

// DialectOf returns the AT dialect of b.
func DialectOf(b *Backend) at.Dialect {
	switch b.Driver {
	case "mysql":
		return at.MySQL()
	case "pgx":
		return postgresDialect
	}
	return at.SQLite()
}

// MustExec runs stmts on db, failing the test on the first error.
func MustExec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Dump returns every row of table, ordered by its first column, as the
// plain driver reads them.
func Dump(t testing.TB, db *sql.DB, table string) [][]any {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// SameRows reports whether two dumps are equal, value for value.
func SameRows(a, b [][]any) bool { return reflect.DeepEqual(a, b) }

// FormatRows prints a dump for a failure message.
func FormatRows(rows [][]any) string {
	var sb strings.Builder
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				sb.WriteString(" | ")
			}
			if b, ok := v.([]byte); ok {
				fmt.Fprintf(&sb, "%q", b)
			} else {
				fmt.Fprintf(&sb, "%#v", v)
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// WaitStatus polls the Coordinator until xid reaches a final status.
func WaitStatus(t testing.TB, c *Coordinator, xid string) tcv1.GlobalStatus {
	t.Helper()
	var s tcv1.GlobalStatus
	poll.Until(t, "transaction "+xid+" to finish", 30*time.Second, func() bool {
		resp, err := c.Client.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		s = resp.GetStatus()
		return s.IsFinal()
	})
	return s
}
