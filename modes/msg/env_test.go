package msg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/tc"
)

// backend is a fresh database on one of the machine's servers.
type backend struct {
	name    string
	dialect Dialect
	driver  string
	// dsn opens the database again, from another process.
	dsn string
	db  *sql.DB
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

// adminTimeout bounds creating and dropping a test database.
const adminTimeout = 30 * time.Second

func adminExec(t testing.TB, driver, dsn, stmt string, fatal bool) {
	t.Helper()
	a, err := sql.Open(driver, dsn)
	if err == nil {
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		_, err = a.ExecContext(ctx, stmt)
	}
	if err != nil && fatal {
		t.Fatalf("%s: %v", stmt, err)
	} else if err != nil {
		t.Errorf("%s: %v", stmt, err)
	}
}

// mariaDB creates database gtx_msg_<random> on GTX_TEST_MYSQL_DSN and drops
// it when t ends.
func mariaDB(t testing.TB) *backend {
	t.Helper()
	base := env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	name := randomName("gtx_msg_")
	adminExec(t, "mysql", base, "CREATE DATABASE "+name, true)
	t.Cleanup(func() { adminExec(t, "mysql", base, "DROP DATABASE IF EXISTS "+name, false) })
	dsn := base + name
	if i := strings.Index(base, "/?"); i >= 0 {
		dsn = base[:i] + "/" + name + base[i+1:]
	}
	return openBackend(t, "mariadb", MySQL, "mysql", dsn)
}

// postgres creates database gtx_msg_<random> on GTX_TEST_POSTGRES_DSN and
// drops it when t ends.
func postgres(t testing.TB) *backend {
	t.Helper()
	base := env("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
	name := randomName("gtx_msg_")
	adminExec(t, "pgx", base, "CREATE DATABASE "+name, true)
	t.Cleanup(func() { adminExec(t, "pgx", base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)", false) })
	var fields []string
	for _, f := range strings.Fields(base) {
		if !strings.HasPrefix(f, "dbname=") {
			fields = append(fields, f)
		}
	}
	return openBackend(t, "postgres", Postgres, "pgx", strings.Join(append(fields, "dbname="+name), " "))
}

// sqliteDB makes a SQLite file in t's temporary directory.
func sqliteDB(t testing.TB) *backend {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "msg.db") + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	return openBackend(t, "sqlite", SQLite, "sqlite", dsn)
}

func openBackend(t testing.TB, name string, d Dialect, driver, dsn string) *backend {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(20)
	t.Cleanup(func() { _ = db.Close() })
	b := &backend{name: name, dialect: d, driver: driver, dsn: dsn, db: db}
	b.exec(t, "CREATE TABLE orders (id VARCHAR(64) NOT NULL PRIMARY KEY, amount BIGINT NOT NULL)")
	return b
}

func (b *backend) exec(t testing.TB, stmt string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(placeholders(b.dialect, stmt), args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// orders counts the rows of orders with id.
func (b *backend) orders(t testing.TB, id string) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow(placeholders(b.dialect, "SELECT COUNT(*) FROM orders WHERE id = ?"), id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// backends runs f against MariaDB, PostgreSQL and SQLite.
func backends(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, open := range []func(testing.TB) *backend{mariaDB, postgres, sqliteDB} {
		b := open(t)
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// natsURL is the machine's NATS JetStream server.
func natsURL() string { return env("GTX_TEST_NATS_URL", "nats://127.0.0.1:4222") }

// stream creates a JetStream stream of its own on url, capturing
// "<prefix>.>", deleted when t ends, and returns the subject prefix.
func stream(t testing.TB, js jetstream.JetStream) (name, prefix string) {
	t.Helper()
	name = strings.ToUpper(randomName("GTXMSG_"))
	prefix = strings.ToLower(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	return name, prefix
}

// connect connects to url, closed when t ends, with JetStream.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// cluster is a coordinator with a Courier on NATS at url.
type cluster struct {
	tc     *gtxtest.TC
	client tcv1.CoordinatorClient
}

func startCluster(t testing.TB, nc *nats.Conn, tune ...func(*tc.Config)) *cluster {
	t.Helper()
	courier, err := NewCourier(CourierConfig{NATS: nc, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = courier.Close() })
	c := gtxtest.NewTC(t, gtxtest.TCOptions{Configure: func(cfg *tc.Config) {
		cfg.Messages = courier
		cfg.BranchTimeout = 2 * time.Second
		cfg.Lease = 4 * time.Second
		for _, f := range tune {
			f(cfg)
		}
	}})
	return &cluster{tc: c, client: c.Client}
}

// status asks the coordinator for the status of xid.
func (c *cluster) status(t testing.TB, xid string) tcv1.GlobalStatus {
	t.Helper()
	resp, err := c.client.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: xid})
	if err != nil {
		t.Fatalf("status of %s: %v", xid, err)
	}
	return resp.GetStatus()
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
