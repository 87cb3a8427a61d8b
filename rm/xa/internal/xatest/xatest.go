// Package xatest starts what the XA tests run against: a real coordinator
// on SQLite with a TM, resource managers attached to it, and fresh MariaDB
// and PostgreSQL databases.
package xatest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tm"
)

// Quiet is the logger the tests give what they start.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Coordinator is a real TC on a SQLite store, with a TM on it.
type Coordinator struct {
	*gtxtest.TC
	TM *tm.Manager
}

// StartCoordinator starts a coordinator with fast phase-2 retries; o
// adjusts it (DBPath and Addr for a restart).
func StartCoordinator(t testing.TB, o gtxtest.TCOptions) *Coordinator {
	t.Helper()
	configure := o.Configure
	o.Configure = func(cfg *tc.Config) {
		cfg.ServerID = "xa-test-tc"
		cfg.BranchTimeout = 5 * time.Second
		if configure != nil {
			configure(cfg)
		}
	}
	c := gtxtest.NewTC(t, o)
	return &Coordinator{TC: c, TM: NewTM(t, c.Client)}
}

// NewTM returns a TM on client; tune changes its configuration.
func NewTM(t testing.TB, client tcv1.CoordinatorClient, tune ...func(*tm.Config)) *tm.Manager {
	t.Helper()
	cfg := tm.DefaultConfig()
	cfg.Application = "xa-test"
	for _, f := range tune {
		f(&cfg)
	}
	m, err := tm.New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// NewRM returns a resource manager on client, started unless start is
// false, and closed when the test ends.
func NewRM(t testing.TB, client tcv1.CoordinatorClient, start bool) *rm.Manager {
	t.Helper()
	cfg := rm.DefaultConfig()
	cfg.Application = "xa-test"
	cfg.Coordinators = []tcv1.CoordinatorClient{client}
	cfg.ReconnectInitial = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	cfg.Logger = Quiet
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Backend is a fresh MariaDB or PostgreSQL database.
type Backend struct {
	Name   string
	Driver string
	DSN    string
	// Raw is a plain pool, for setting up and inspecting.
	Raw *sql.DB
}

// Backends runs f against MariaDB and PostgreSQL.
func Backends(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Run("mariadb", func(t *testing.T) { f(t, MySQL(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, Postgres(t)) })
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randomName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "gtx_xa_" + hex.EncodeToString(b[:])
}

// MySQL creates a database on the MariaDB of GTX_TEST_MYSQL_DSN (default
// root@tcp(127.0.0.1:3306)/) and drops it when the test ends.
func MySQL(t testing.TB) *Backend {
	t.Helper()
	base := envOr("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	name := createDatabase(t, "mysql", base, "")
	dsn := base + name
	if strings.Contains(base, "?") {
		dsn = strings.Replace(base, "/?", "/"+name+"?", 1)
	}
	return &Backend{Name: "mariadb", Driver: "mysql", DSN: dsn, Raw: openRaw(t, "mysql", dsn)}
}

// Postgres creates a database on the PostgreSQL of GTX_TEST_POSTGRES_DSN
// (default postgres://postgres@127.0.0.1:5432/postgres) and drops it when
// the test ends.
func Postgres(t testing.TB) *Backend {
	t.Helper()
	base := envOr("GTX_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	name := createDatabase(t, "pgx", base, " WITH (FORCE)")
	dsn := strings.Replace(base, "/postgres?", "/"+name+"?", 1)
	return &Backend{Name: "postgres", Driver: "pgx", DSN: dsn, Raw: openRaw(t, "pgx", dsn)}
}

func createDatabase(t testing.TB, driver, base, dropTail string) string {
	t.Helper()
	admin, err := sql.Open(driver, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := randomName()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("%s: %v", driver, err)
	}
	t.Cleanup(func() {
		a, err := sql.Open(driver, base)
		if err != nil {
			return
		}
		defer a.Close()
		// A test that failed may leave branches prepared, which would keep
		// the database from being dropped.
		rollbackPrepared(a, driver, name)
		a.Exec("DROP DATABASE " + name + dropTail)
	})
	return name
}

// rollbackPrepared rolls back what is left prepared in database name.
func rollbackPrepared(a *sql.DB, driver, name string) {
	if driver == "pgx" {
		rows, err := a.Query("SELECT gid FROM pg_prepared_xacts WHERE database = $1", name)
		if err != nil {
			return
		}
		var gids []string
		for rows.Next() {
			var g string
			if rows.Scan(&g) == nil {
				gids = append(gids, g)
			}
		}
		rows.Close()
		for _, g := range gids {
			a.Exec("ROLLBACK PREPARED '" + g + "'")
		}
	}
}

func openRaw(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// Open opens b through the XA driver with a fast recovery loop; tune
// changes the configuration.
func Open(t testing.TB, b *Backend, m *rm.Manager, status xa.StatusQuerier, tune ...func(*xa.Config)) *sql.DB {
	t.Helper()
	cfg := xa.DefaultConfig()
	cfg.DriverName, cfg.DSN, cfg.Manager, cfg.Status = b.Driver, b.DSN, m, status
	cfg.Recover.Interval = 50 * time.Millisecond
	cfg.Logger = Quiet
	for _, f := range tune {
		f(&cfg)
	}
	db, err := xa.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// SQL returns query with its ? placeholders numbered $1, $2, ... for
// PostgreSQL.
func (b *Backend) SQL(query string) string {
	if b.Driver != "pgx" {
		return query
	}
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			sb.WriteString("$" + strconv.Itoa(n))
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
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

// Balance returns the balance of account id in table acct.
func Balance(t testing.TB, b *Backend, id int) int64 {
	t.Helper()
	var v int64
	if err := b.Raw.QueryRow(b.SQL("SELECT balance FROM acct WHERE id = ?"), id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Prepared returns how many branches of xid b's server holds prepared, in
// any of its databases (MariaDB's XA RECOVER lists the whole server's).
func Prepared(t testing.TB, b *Backend, xid string) int {
	t.Helper()
	var n int
	switch b.Driver {
	case "pgx":
		if err := b.Raw.QueryRow("SELECT count(*) FROM pg_prepared_xacts WHERE (gid LIKE 'gtx:%:' || $1 OR gid LIKE 'gtx3:%:' || $1)", xid).Scan(&n); err != nil {
			t.Fatal(err)
		}
	default:
		rows, err := b.Raw.Query("XA RECOVER")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var f int64
			var gl, bl int
			var data []byte
			if err := rows.Scan(&f, &gl, &bl, &data); err != nil {
				t.Fatal(err)
			}
			if (f == xa.FormatID || f == xa.FormatIDThreePhase) && gl <= len(data) && string(data[:gl]) == xid {
				n++
			}
		}
	}
	return n
}

// WaitStatus waits until xid reaches a final status and returns it.
func WaitStatus(t testing.TB, client tcv1.CoordinatorClient, xid string) tcv1.GlobalStatus {
	t.Helper()
	var st tcv1.GlobalStatus
	poll.Until(t, "transaction "+xid+" to finish", 30*time.Second, func() bool {
		resp, err := client.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			return false
		}
		st = resp.GetStatus()
		return st.IsFinal()
	})
	return st
}
