package orderinventory_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
)

// bin holds the binaries TestMain built (without -race: they are separate
// processes, and the race detector would only slow them down).
var bin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gtx-oi-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/gtx", "./samples/order-inventory/cmd/...")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the binaries: %v\n%s", err, out)
		return 1
	}
	bin = dir
	return m.Run()
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// proc is one running binary.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// dbServer is the database server a cluster runs on: the coordinator's
// store and the services' databases, each created for the test and dropped
// after it.
type dbServer struct {
	driver string // service.MySQL or service.Postgres; also the store's driver
	base   string // the server's DSN (MariaDB: without a database)
	admin  *sql.DB
}

// mariaDB is the machine's MariaDB (GTX_TEST_MYSQL_DSN, default
// root@tcp(127.0.0.1:3306)/).
func mariaDB(t *testing.T) dbServer {
	t.Helper()
	s := dbServer{driver: service.MySQL, base: env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")}
	s.open(t, "mysql")
	return s
}

// postgres is the machine's PostgreSQL (GTX_TEST_POSTGRES_DSN, a URL or
// key=value DSN of an existing database, default the database test on
// 127.0.0.1:5432 as postgres). t is skipped when the go command builds
// without cgo, since the binaries then have no PostgreSQL support.
func postgres(t *testing.T) dbServer {
	t.Helper()
	out, err := exec.Command("go", "env", "CGO_ENABLED").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Skipf("cgo is off (go env CGO_ENABLED: %q, %v): the binaries have no PostgreSQL support", out, err)
	}
	s := dbServer{driver: service.Postgres, base: env("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")}
	s.open(t, "pgx")
	return s
}

func (s *dbServer) open(t *testing.T, driver string) {
	t.Helper()
	var err error
	if s.admin, err = sql.Open(driver, s.base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.admin.Close() })
}

// dsn is the DSN of database name on the server.
func (s dbServer) dsn(name string) string {
	if s.driver == service.MySQL {
		return s.base + name
	}
	if u, err := url.Parse(s.base); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	if dbname := regexp.MustCompile(`(^|\s)dbname=\S+`); dbname.MatchString(s.base) {
		return dbname.ReplaceAllString(s.base, "${1}dbname="+name)
	}
	return s.base + " dbname=" + name
}

// create creates database name, dropped when t ends; t is skipped when the
// server does not answer.
func (s dbServer) create(t *testing.T, name string) {
	t.Helper()
	create, drop := "CREATE DATABASE `"+name+"`", "DROP DATABASE IF EXISTS `"+name+"`"
	if s.driver == service.Postgres {
		create, drop = `CREATE DATABASE "`+name+`"`, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`
	}
	if _, err := s.admin.Exec(create); err != nil {
		t.Skipf("%s at %s: %v", s.driver, s.base, err)
	}
	t.Cleanup(func() {
		if _, err := s.admin.Exec(drop); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
}

// cluster is the coordinator and the three services, each a process, on
// databases of their own.
type cluster struct {
	t      *testing.T
	db     dbServer
	prefix string
	nats   natsRun
	logs   string
	ports  map[string]string
	procs  map[string]*proc
	tc     tcv1.CoordinatorClient
	tcDB   *sql.DB
	client *load.Client
	mu     sync.Mutex
}

// natsRun is a JetStream stream and subject prefix of one test on the
// machine's NATS server (GTX_TEST_NATS_URL, default nats://127.0.0.1:4222).
type natsRun struct {
	url, stream, subject string
}

// newNATSRun names a stream and a subject prefix for t, and deletes the
// stream when t ends; t is skipped when the server does not answer.
func newNATSRun(t *testing.T) natsRun {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	r := natsRun{url: env("GTX_TEST_NATS_URL", "nats://127.0.0.1:4222"), stream: "GTX_OI_" + id, subject: "gtxoi." + id}
	nc, err := nats.Connect(r.url, nats.Timeout(2*time.Second))
	if err != nil {
		t.Skipf("NATS at %s: %v", r.url, err)
	}
	t.Cleanup(func() {
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = js.DeleteStream(ctx, r.stream)
		}
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete the NATS stream %s: %v", r.stream, err)
		}
	})
	return r
}

// flags are the NATS flags of a service.
func (r natsRun) flags() []string {
	return []string{"-nats", r.url, "-nats-stream", r.stream, "-nats-subject", r.subject}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newCluster creates the databases on db and starts every process; t's
// cleanup stops them and drops the databases.
func newCluster(t *testing.T, db dbServer) *cluster {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &cluster{
		t:      t,
		db:     db,
		prefix: "gtx_oi_" + hex.EncodeToString(b[:]) + "_",
		logs:   t.TempDir(),
		ports:  map[string]string{},
		procs:  map[string]*proc{},
		nats:   newNATSRun(t),
	}
	for _, name := range []string{"tc", "order", "inventory", "account"} {
		db.create(t, c.prefix+name)
	}
	for _, p := range []string{"tc", "order-http", "order-grpc", "inventory-http", "inventory-grpc", "account-http", "account-grpc"} {
		c.ports[p] = freePort(t)
	}
	t.Cleanup(c.stopAll)
	var err error
	if c.tcDB, err = sql.Open(map[string]string{service.MySQL: "mysql", service.Postgres: "pgx"}[db.driver], db.dsn(c.prefix+"tc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.tcDB.Close() })
	conn, err := grpc.NewClient(c.ports["tc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c.tc = tcv1.NewCoordinatorClient(conn)
	for _, name := range []string{"tc", "inventory", "account", "order"} {
		c.start(name)
	}
	c.client = load.NewClient("http://"+c.ports["order-http"], "http://"+c.ports["inventory-http"], "http://"+c.ports["account-http"])
	return c
}

func (c *cluster) args(name string) []string {
	if name == "tc" {
		return []string{"tc", "--listen", c.ports["tc"], "--server-id", "e2e",
			"--store-driver", c.db.driver, "--store-dsn", c.db.dsn(c.prefix + "tc"),
			"--branch-timeout", "2s", "--lease", "5s", "--retry-initial", "50ms", "--retry-max", "1s", "--log-level", "warn"}
	}
	a := []string{"-http", c.ports[name+"-http"], "-grpc", c.ports[name+"-grpc"], "-tc", c.ports["tc"],
		"-db-driver", c.db.driver, "-db-dsn-file", c.dsnFile(name), "-tx-timeout", "10s", "-log-level", "warn"}
	a = append(a, c.nats.flags()...)
	if name == "order" {
		a = append(a, "-inventory", c.ports["inventory-grpc"], "-account", c.ports["account-grpc"])
	}
	return a
}

// dsnFile is where tryStart writes the DSN of name's database, as a
// deployment keeps it out of the command line.
func (c *cluster) dsnFile(name string) string { return filepath.Join(c.logs, name+".dsn") }

// start starts name and waits until it answers; it fails the test on
// error, so call it only from the test's goroutine.
func (c *cluster) start(name string) {
	c.t.Helper()
	if err := c.tryStart(name); err != nil {
		c.t.Fatal(err)
	}
}

// tryStart starts name and waits until it answers.
func (c *cluster) tryStart(name string) error {
	exe := filepath.Join(bin, name)
	if name == "tc" {
		exe = filepath.Join(bin, "gtx")
	}
	log, err := os.OpenFile(filepath.Join(c.logs, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if name != "tc" {
		if err := os.WriteFile(c.dsnFile(name), []byte(c.db.dsn(c.prefix+name)), 0o600); err != nil {
			_ = log.Close()
			return err
		}
	}
	cmd := exec.Command(exe, c.args(name)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return c.waitReady(name, p)
}

func (c *cluster) waitReady(name string, p *proc) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited at start:\n%s", name, c.log(name))
		default:
		}
		var err error
		if name == "tc" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.tc.ListTransactions(ctx, &tcv1.ListTransactionsRequest{Limit: 1})
			cancel()
		} else {
			var resp *http.Response
			resp, err = http.Get("http://" + c.ports[name+"-http"] + map[string]string{
				"order": "/v1/orders?user=u1", "inventory": "/v1/stock/A", "account": "/v1/accounts/u1"}[name])
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		}
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not become ready:\n%s", name, c.log(name))
}

// kill9 kills name with SIGKILL and waits for it to exit.
func (c *cluster) kill9(name string) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for _, name := range []string{"order", "account", "inventory", "tc"} {
		p := procs[name]
		if p == nil {
			continue
		}
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// log returns the end of name's log.
func (c *cluster) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.logs, name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (c *cluster) dumpLogs() {
	for _, name := range []string{"tc", "inventory", "account", "order"} {
		c.t.Logf("--- %s log (end) ---\n%s", name, c.log(name))
	}
}

// unfinished are the statuses of transactions that have not reached their
// end, plus the two that need an operator.
var unfinished = slices.DeleteFunc(tcv1.GlobalStatuses(), tcv1.GlobalStatus.IsDone)

// waitFinished waits until the coordinator lists no transaction in an
// unfinished status and its store holds no global row lock, and fails the
// test if that does not happen within a minute.
func (c *cluster) waitFinished(ctx context.Context) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.tc.ListTransactions(ctx, &tcv1.ListTransactionsRequest{Statuses: unfinished, Limit: 10000})
		var locks int
		if err == nil {
			err = c.tcDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM gtx_row_locks").Scan(&locks)
		}
		if err == nil && len(resp.GetTransactions()) == 0 && locks == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			for i, tx := range resp.GetTransactions() {
				if i == 10 {
					break
				}
				fmt.Fprintf(&b, "  %s %s %s attempts %d: %s\n", tx.GetXid(), tx.GetName(), tx.GetStatus(), tx.GetAttempts(), tx.GetLastError())
			}
			c.describeLocks(ctx, &b)
			c.dumpLogs()
			c.t.Fatalf("after a minute: %d unfinished transactions, %d global row locks, err %v\n%s", len(resp.GetTransactions()), locks, err, b.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// describeLocks writes the global row locks left in the store, with what
// the coordinator says of their transactions.
func (c *cluster) describeLocks(ctx context.Context, b *bytes.Buffer) {
	rows, err := c.tcDB.QueryContext(ctx, "SELECT resource_id, table_name, pk, xid, branch_id FROM gtx_row_locks LIMIT 10")
	if err != nil {
		fmt.Fprintf(b, "  read the locks: %v\n", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var res, table, pk, xid string
		var branch int64
		if err := rows.Scan(&res, &table, &pk, &xid, &branch); err != nil {
			fmt.Fprintf(b, "  read the locks: %v\n", err)
			return
		}
		tx, err := c.tc.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
		fmt.Fprintf(b, "  lock %s %s:%s held by %s branch %d; coordinator: %v %v\n", res, table, pk, xid, branch, tx.GetTransaction(), err)
	}
}

func (c *cluster) run(ctx context.Context, cfg load.Config) *load.Result {
	c.t.Helper()
	res, err := load.Run(ctx, c.client, cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("%d orders in %v (%.1f/s): %d committed, %d rolled back (%d not as asked), %d unknown (first: %v); p50 %v p99 %v",
		res.Placed, res.Elapsed.Round(time.Millisecond), res.Throughput(), res.Committed, res.RolledBack, res.Unexpected,
		res.Unknown, res.FirstUnknown, res.Percentile(0.5), res.Percentile(0.99))
	for m, n := range res.Reasons {
		c.t.Logf("  rolled back, not asked to: %dx %s", n, m)
	}
	return res
}

func (c *cluster) check(ctx context.Context, before *load.Snapshot) {
	c.t.Helper()
	r, err := c.client.Check(ctx, before, 60*time.Second)
	if err != nil {
		c.dumpLogs()
		c.t.Fatal(err)
	}
	if !r.OK() {
		c.dumpLogs()
		c.t.Fatalf("invariants broken:\n%s", r)
	}
	c.t.Logf("%s", strings.TrimSpace(r.String()))
}
