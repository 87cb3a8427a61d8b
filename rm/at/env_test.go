package at_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
	"github.com/gtx-io/gtx/tm"
)

// coordinator is a real TC on a SQLite store, served over loopback gRPC.
type coordinator struct {
	client tcv1.CoordinatorClient
	tm     *tm.Manager
}

func startCoordinator(t testing.TB) *coordinator {
	t.Helper()
	ctx := context.Background()
	icfg := idgen.DefaultConfig()
	icfg.NodeID = 1
	ids, err := idgen.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	cfg.ServerID = "at-test-tc"
	cfg.IDs = ids
	cfg.BranchTimeout = 5 * time.Second
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.TimeoutCheckInterval = 50 * time.Millisecond
	cfg.RecoveryInterval = 50 * time.Millisecond
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "tc.db")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tc.NewServer(cfg, store, store)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	tcv1.RegisterCoordinatorServer(gs, srv)
	go gs.Serve(lis)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := tcv1.NewCoordinatorClient(conn)
	tcfg := tm.DefaultConfig()
	tcfg.Application = "at-test"
	tmgr, err := tm.New(client, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Close()
		gs.Stop()
		store.Close()
	})
	return &coordinator{client: client, tm: tmgr}
}

// newRM starts a resource manager attached to c.
func newRM(t testing.TB, c *coordinator) *rm.Manager {
	t.Helper()
	cfg := rm.DefaultConfig()
	cfg.Application = "at-test"
	cfg.Coordinators = []tcv1.CoordinatorClient{c.client}
	cfg.ReconnectInitial = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	m, err := rm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// backend is a real database: a fresh MariaDB database or SQLite file.
type backend struct {
	name   string
	driver string
	dsn    string
	// raw is a plain connection pool, for setting up and inspecting.
	raw *sql.DB
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func mysqlBackend(t testing.TB) *backend {
	t.Helper()
	base := os.Getenv("GTX_TEST_MYSQL_DSN")
	if base == "" {
		base = "root@tcp(127.0.0.1:3306)/"
	}
	admin, err := sql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := randomName("gtx_at_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("mysql: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("mysql", base)
		if err == nil {
			a.Exec("DROP DATABASE " + name)
			a.Close()
		}
	})
	dsn := base + name
	if strings.Contains(base, "?") {
		dsn = strings.Replace(base, "/?", "/"+name+"?", 1)
	}
	raw, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &backend{name: "mariadb", driver: "mysql", dsn: dsn, raw: raw}
}

func sqliteBackend(t testing.TB) *backend {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "at.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	raw, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &backend{name: "sqlite", driver: "sqlite", dsn: dsn, raw: raw}
}

// backends runs f against MariaDB and SQLite.
func backends(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("mariadb", func(t *testing.T) { f(t, mysqlBackend(t)) })
	t.Run("sqlite", func(t *testing.T) { f(t, sqliteBackend(t)) })
}

// openAT opens b through the AT driver, with its undo table migrated.
func openAT(t testing.TB, b *backend, m *rm.Manager, c *coordinator, tune ...func(*at.Config)) *sql.DB {
	t.Helper()
	cfg := at.DefaultConfig()
	cfg.DriverName, cfg.DSN, cfg.Manager, cfg.Locks = b.driver, b.dsn, m, c.client
	for _, f := range tune {
		f(&cfg)
	}
	db, err := at.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := at.Migrate(context.Background(), db, dialectOf(b), cfg.UndoTable); err != nil {
		t.Fatal(err)
	}
	return db
}

func dialectOf(b *backend) at.Dialect {
	if b.driver == "mysql" {
		return at.MySQL()
	}
	return at.SQLite()
}

func mustExec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// dump returns every row of table, ordered by its first column, as the
// plain driver reads them.
func dump(t testing.TB, db *sql.DB, table string) [][]any {
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

func sameRows(a, b [][]any) bool { return reflect.DeepEqual(a, b) }

func formatRows(rows [][]any) string {
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

// waitStatus polls the coordinator until xid reaches a final status.
func waitStatus(t testing.TB, c *coordinator, xid string) tcv1.GlobalStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.client.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		switch s := resp.GetStatus(); s {
		case tcv1.GlobalStatus_COMMITTED, tcv1.GlobalStatus_ROLLBACKED, tcv1.GlobalStatus_ROLLBACK_FAILED,
			tcv1.GlobalStatus_COMMIT_FAILED, tcv1.GlobalStatus_TIMEOUT_ROLLBACKED:
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s did not finish", xid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
