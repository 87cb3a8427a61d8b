package tcc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// backend is a fresh database on one of the machine's servers.
type backend struct {
	name    string
	dialect Dialect
	// dsn opens the database again, from another process.
	dsn  string
	db   *sql.DB
	gorm *gorm.DB
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func gormConfig() *gorm.Config {
	return &gorm.Config{Logger: logger.Discard}
}

// mariaDB creates database gtx_tcc_<random> on GTX_TEST_MYSQL_DSN and drops
// it when t ends.
func mariaDB(t testing.TB) *backend {
	t.Helper()
	base := env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	admin, err := sql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := randomName("gtx_tcc_")
	adminExec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() { dropDatabase(t, "mysql", base, "DROP DATABASE IF EXISTS "+name) })
	dsn := base + name
	if i := strings.Index(base, "/?"); i >= 0 {
		dsn = base[:i] + "/" + name + base[i+1:]
	}
	return newBackend(t, "mariadb", MySQL, dsn)
}

// postgres creates database gtx_tcc_<random> on GTX_TEST_POSTGRES_DSN and
// drops it when t ends.
func postgres(t testing.TB) *backend {
	t.Helper()
	base := env("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := randomName("gtx_tcc_")
	adminExec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() { dropDatabase(t, "pgx", base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	var fields []string
	for _, f := range strings.Fields(base) {
		if !strings.HasPrefix(f, "dbname=") {
			fields = append(fields, f)
		}
	}
	dsn := strings.Join(append(fields, "dbname="+name), " ")
	return newBackend(t, "postgres", Postgres, dsn)
}

// adminTimeout bounds creating and dropping a test database: a server busy
// with others' work must fail the test, not hang it on a metadata lock.
const adminTimeout = 30 * time.Second

func adminExec(t testing.TB, admin *sql.DB, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if _, err := admin.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func dropDatabase(t testing.TB, driver, dsn, stmt string) {
	a, err := sql.Open(driver, dsn)
	if err != nil {
		t.Errorf("%s: %v", stmt, err)
		return
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if _, err := a.ExecContext(ctx, stmt); err != nil {
		t.Errorf("%s: %v", stmt, err)
	}
}

// sqliteDB makes a SQLite file in t's temporary directory.
func sqliteDB(t testing.TB) *backend {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "tcc.db") + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	return newBackend(t, "sqlite", SQLite, dsn)
}

// newBackend opens a fresh database and creates the business table.
func newBackend(t testing.TB, name string, d Dialect, dsn string) *backend {
	t.Helper()
	b := openBackend(t, name, d, dsn)
	b.createAccounts(t)
	return b
}

// openBackend opens the database at dsn.
func openBackend(t testing.TB, name string, d Dialect, dsn string) *backend {
	t.Helper()
	var (
		driver string
		dial   gorm.Dialector
	)
	switch d {
	case MySQL:
		driver, dial = "mysql", gormmysql.Open(dsn)
	case Postgres:
		driver, dial = "pgx", gormpostgres.Open(dsn)
	default:
		driver, dial = "sqlite", sqlite.Open(dsn)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(40)
	t.Cleanup(func() { _ = db.Close() })
	gdb, err := gorm.Open(dial, gormConfig())
	if err != nil {
		t.Fatal(err)
	}
	gsql, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	gsql.SetMaxOpenConns(40)
	t.Cleanup(func() { _ = gsql.Close() })
	return &backend{name: name, dialect: d, dsn: dsn, db: db, gorm: gdb}
}

// backends runs f against MariaDB, PostgreSQL and SQLite.
func backends(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, open := range []func(testing.TB) *backend{mariaDB, postgres, sqliteDB} {
		b := open(t)
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// flavours are the two ways to open a fence.
var flavours = []string{"sql", "gorm"}

// fence opens a fence on b through database/sql or gorm, in a table of its
// own, with no cleaner.
func (b *backend) fence(t testing.TB, flavour string, tune ...func(*FenceConfig)) *Fence {
	t.Helper()
	cfg := DefaultFenceConfig()
	cfg.Dialect = b.dialect
	cfg.Table = "fence_" + flavour
	cfg.CleanInterval = 0
	cfg.Logger = quiet
	for _, f := range tune {
		f(&cfg)
	}
	var (
		f   *Fence
		err error
	)
	if flavour == "gorm" {
		cfg.Dialect = ""
		f, err = OpenGormFence(context.Background(), b.gorm, cfg)
	} else {
		f, err = OpenFence(context.Background(), b.db, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// The business of the tests: accounts whose Try freezes an amount, whose
// Confirm spends it and whose Cancel gives it back.
func (b *backend) createAccounts(t testing.TB) {
	t.Helper()
	if _, err := b.db.Exec("CREATE TABLE account (id VARCHAR(64) PRIMARY KEY, balance BIGINT NOT NULL, frozen BIGINT NOT NULL, spent BIGINT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
}

func (b *backend) addAccount(t testing.TB, id string, balance int64) {
	t.Helper()
	if _, err := b.db.Exec(b.rebind("INSERT INTO account (id, balance, frozen, spent) VALUES (?, ?, 0, 0)"), id, balance); err != nil {
		t.Fatal(err)
	}
}

type account struct{ balance, frozen, spent int64 }

func (b *backend) account(t testing.TB, id string) account {
	t.Helper()
	var a account
	if err := b.db.QueryRow(b.rebind("SELECT balance, frozen, spent FROM account WHERE id = ?"), id).Scan(&a.balance, &a.frozen, &a.spent); err != nil {
		t.Fatal(err)
	}
	return a
}

func (b *backend) rebind(q string) string {
	if b.dialect == Postgres {
		return numbered(q)
	}
	return q
}

// exec runs a business statement in tx: through gorm when the fence gives a
// gorm session, else through database/sql. It fails when no row changed.
func (b *backend) exec(ctx context.Context, tx Tx, q string, args ...any) error {
	var n int64
	if tx.Gorm != nil {
		res := tx.Gorm.Exec(q, args...)
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
	} else {
		res, err := tx.SQL.ExecContext(ctx, b.rebind(q), args...)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
	}
	if n == 0 {
		return errNoRow
	}
	return nil
}

var errNoRow = fmt.Errorf("test: no row changed")

const (
	freezeSQL  = "UPDATE account SET balance = balance - ?, frozen = frozen + ? WHERE id = ? AND balance >= ?"
	spendSQL   = "UPDATE account SET frozen = frozen - ?, spent = spent + ? WHERE id = ?"
	releaseSQL = "UPDATE account SET frozen = frozen - ?, balance = balance + ? WHERE id = ?"
)

// cluster is a real coordinator on SQLite and a TM talking to it.
type cluster struct {
	client tcv1.CoordinatorClient
	tm     *tm.Manager
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	c, _ := startClusterAddr(t)
	return c
}

// startClusterAddr is startCluster that also returns the coordinator's
// address.
func startClusterAddr(t testing.TB) (*cluster, string) {
	t.Helper()
	client, addr := gtxtest.StartTCAddr(t)
	return clusterOf(t, client), addr
}

// clusterOf returns a cluster around a coordinator client.
func clusterOf(t testing.TB, c tcv1.CoordinatorClient) *cluster {
	t.Helper()
	cfg := tm.DefaultConfig()
	cfg.Application = "tcc-test"
	cfg.Logger = quiet
	m, err := tm.New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{client: c, tm: m}
}

// newRM returns a resource manager for c, not started, closed when t ends.
func (c *cluster) newRM(t testing.TB) *rm.Manager {
	t.Helper()
	cfg := rm.DefaultConfig()
	cfg.Application = "tcc-test"
	cfg.Coordinators = []tcv1.CoordinatorClient{c.client}
	cfg.ReconnectInitial = 10 * time.Millisecond
	cfg.ReconnectMax = 100 * time.Millisecond
	cfg.Workers = 64
	cfg.Logger = quiet
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func startRM(t testing.TB, m *rm.Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitAttached(ctx); err != nil {
		t.Fatal(err)
	}
}

// testContext bounds what a test waits for: a stalled server or a lost
// wake-up fails the test with the step that waited, instead of hanging the
// package until go test's timeout.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or 20 seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
