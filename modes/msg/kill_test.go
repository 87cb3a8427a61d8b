package msg

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
)

// Environment of the producer process TestProducerKilled starts.
const (
	helperMode    = "GTX_MSG_HELPER"
	helperTC      = "GTX_MSG_HELPER_TC"
	helperDialect = "GTX_MSG_HELPER_DIALECT"
	helperDriver  = "GTX_MSG_HELPER_DRIVER"
	helperDSN     = "GTX_MSG_HELPER_DSN"
	helperCheck   = "GTX_MSG_HELPER_CHECK"
	helperOrder   = "GTX_MSG_HELPER_ORDER"
	helperTarget  = "GTX_MSG_HELPER_TARGET"
	// Lines the helper prints when it reaches a point.
	markXID       = "gtx-msg-helper: xid "
	markPrepared  = "gtx-msg-helper: prepared"
	markCommitted = "gtx-msg-helper: committed"
)

// TestProducerKilled kills (SIGKILL) a producer process between Prepare
// and its local commit (its local transaction open), and between its local
// commit and the submit, on every database. The coordinator's check
// settles each: no message and no order for the first, the order and
// exactly one message for the second.
func TestProducerKilled(t *testing.T) {
	nc, js := connect(t, natsURL())
	streamName, prefix := stream(t, js)
	c := startCluster(t, nc)
	backends(t, func(t *testing.T, b *backend) {
		cfg := DefaultBarrierConfig()
		cfg.Dialect = b.dialect
		barrier, err := OpenBarrier(context.Background(), b.db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The producer's check, served here as by the restarted service.
		hs := httptest.NewServer(CheckHandler(barrier))
		t.Cleanup(hs.Close)
		for _, mode := range []string{"before-commit", "after-commit"} {
			t.Run(mode, func(t *testing.T) {
				ctx := testContext(t)
				order := randomName("k")
				subject := prefix + "." + b.name + "." + order
				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
				cmd.Env = append(os.Environ(), helperMode+"="+mode, helperTC+"="+c.tc.Addr, helperDialect+"="+string(b.dialect),
					helperDriver+"="+b.driver, helperDSN+"="+b.dsn, helperCheck+"="+hs.URL, helperOrder+"="+order, helperTarget+"=nats:"+subject)
				cmd.Stderr = os.Stderr
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				lines := bufio.NewScanner(out)
				var xid string
				waitFor := func(mark string) {
					t.Helper()
					for lines.Scan() {
						if x, ok := strings.CutPrefix(lines.Text(), markXID); ok {
							xid = x
						}
						if lines.Text() == mark {
							return
						}
					}
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatalf("the producer process ended before printing %q", mark)
				}
				want := markPrepared
				if mode == "after-commit" {
					want = markCommitted
				}
				waitFor(want)
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, out)
				_ = cmd.Wait()
				if xid == "" {
					t.Fatal("the producer printed no xid")
				}
				final := tcv1.GlobalStatus_TIMEOUT_ROLLBACKED
				orders, messages := 0, 0
				if mode == "after-commit" {
					final, orders, messages = tcv1.GlobalStatus_COMMITTED, 1, 1
				}
				poll.Until(t, final.String(), 0, func() bool { return c.status(t, xid) == final })
				if n := b.orders(t, order); n != orders {
					t.Fatalf("%d order rows, want %d", n, orders)
				}
				if n := count(t, js, streamName, subject); n != messages {
					t.Fatalf("%d messages delivered, want %d", n, messages)
				}
			})
		}
	})
}

// TestHelperProcess is the producer process of TestProducerKilled; it
// does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperMode)
	if mode == "" {
		t.Skip("helper process for TestProducerKilled")
	}
	if err := runHelper(mode); err != nil {
		fmt.Fprintln(os.Stderr, "gtx-msg-helper:", err)
		os.Exit(2)
	}
	// Wait to be killed.
	select {}
}

func runHelper(mode string) error {
	ctx := context.Background()
	cc, err := grpc.NewClient(os.Getenv(helperTC), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	db, err := sql.Open(os.Getenv(helperDriver), os.Getenv(helperDSN))
	if err != nil {
		return err
	}
	d := Dialect(os.Getenv(helperDialect))
	cfg := DefaultBarrierConfig()
	cfg.Dialect = d
	barrier, err := OpenBarrier(ctx, db, cfg)
	if err != nil {
		return err
	}
	pcfg := DefaultProducerConfig()
	pcfg.Check = os.Getenv(helperCheck)
	pcfg.Timeout = time.Second
	pcfg.Logger = quiet
	p, err := NewProducer(tcv1.NewCoordinatorClient(cc), barrier, pcfg)
	if err != nil {
		return err
	}
	order := os.Getenv(helperOrder)
	m, err := p.Prepare(ctx, "place-order", Message{Target: os.Getenv(helperTarget), Payload: []byte(order)})
	if err != nil {
		return err
	}
	fmt.Println(markXID + m.XID())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := m.Commit(ctx, tx); err != nil {
		return err
	}
	if err := insertOrder(order, d)(ctx, tx); err != nil {
		return err
	}
	if mode == "before-commit" {
		fmt.Println(markPrepared)
		return nil
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	fmt.Println(markCommitted)
	return nil
}

// freePort returns a loopback port free right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// natsServer is an embedded JetStream server that can be stopped and
// started again on the same port and store.
type natsServer struct {
	t    testing.TB
	opts *server.Options
	ns   *server.Server
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	s := &natsServer{t: t, opts: &server.Options{Host: "127.0.0.1", Port: freePort(t), JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

func (s *natsServer) start() {
	s.t.Helper()
	ns, err := server.NewServer(s.opts)
	if err != nil {
		s.t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("embedded NATS server did not start within 10s")
	}
	s.ns = ns
}

func (s *natsServer) stop() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

// TestNATSRestartedDuringDelivery stops the JetStream server while
// messages are submitted and starts it again: the coordinator keeps
// retrying, and every message lands exactly once.
func TestNATSRestartedDuringDelivery(t *testing.T) {
	ns := startNATS(t)
	nc, js := connect(t, ns.url())
	streamName, prefix := stream(t, js)
	c := startCluster(t, nc)
	b := sqliteDB(t)
	cfg := DefaultBarrierConfig()
	cfg.Dialect = b.dialect
	barrier, err := OpenBarrier(context.Background(), b.db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(CheckHandler(barrier))
	t.Cleanup(hs.Close)
	pcfg := DefaultProducerConfig()
	pcfg.Check = hs.URL
	pcfg.Logger = quiet
	p, err := NewProducer(c.client, barrier, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	const n = 10
	var xids []string
	send := func(i int) {
		t.Helper()
		id := fmt.Sprintf("r%d", i)
		xid, err := p.Send(ctx, "place-order", insertOrder(id, b.dialect), Message{Target: "nats:" + prefix + "." + id, Payload: []byte(id)})
		if err != nil {
			t.Fatal(err)
		}
		xids = append(xids, xid)
	}
	for i := range n / 2 {
		send(i)
	}
	ns.stop()
	for i := n / 2; i < n; i++ {
		send(i)
	}
	ns.start()
	for _, xid := range xids {
		poll.Until(t, "COMMITTED after the restart", 0, func() bool { return c.status(t, xid) == tcv1.GlobalStatus_COMMITTED })
	}
	for i := range n {
		subject := fmt.Sprintf("%s.r%d", prefix, i)
		if got := count(t, js, streamName, subject); got != 1 {
			t.Fatalf("%s holds %d messages, want 1", subject, got)
		}
	}
}
