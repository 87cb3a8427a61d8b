package orderinventory_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/samples/order-inventory/api/samplev1"
	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tm"
)

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A service given two coordinator replicas attaches to both: a transaction
// begun and ended on either replica, committed or rolled back, has its
// phase 2 reach the service at the first attempt. (A replica the service
// were not attached to would fail that attempt, "no resource manager
// attached", and leave the transaction to a later one, maybe on another
// replica.) The replicas require tokens, and the service's token never
// reaches its logs.
func TestAttachToReplicas(t *testing.T) {
	t.Parallel()
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	dsn := env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	prefix := "gtx_oi_" + id + "_"
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	for _, db := range []string{"tc", "inventory"} {
		if _, err := admin.Exec("CREATE DATABASE `" + prefix + db + "`"); err != nil {
			t.Skipf("MariaDB at %s: %v", dsn, err)
		}
		t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS `" + prefix + db + "`") })
	}
	nr := newNATSRun(t)

	invToken, driverToken := "inv-secret-"+id, "driver-secret-"+id
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(tokens, fmt.Appendf(nil, "inventory: %s\ndriver: %s\n", invToken, driverToken), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := []string{freePort(t), freePort(t)}
	for i, addr := range addrs {
		startReplica(t, i, addr, driverToken, "--store-driver", "mysql", "--store-dsn", dsn+prefix+"tc", "--auth-tokens-file", tokens)
	}

	logs := &lockedBuffer{}
	cfg := service.DefaultConfig("inventory")
	cfg.TC = strings.Join(addrs, ",")
	cfg.TCToken = invToken
	cfg.Driver, cfg.DSN = service.MySQL, dsn+prefix+"inventory"
	cfg.NATSURL, cfg.NATSStream, cfg.NATSSubject = nr.url, nr.stream, nr.subject
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := t.Context()
	inv, err := inventory.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inv.Close)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = inv.RM.WaitAttached(wctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := kgrpc.DialInsecure(ctx, kgrpc.WithEndpoint(inv.GRPCAddr()), kgrpc.WithMiddleware(kratosgtx.Client()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	stock := samplev1.NewInventoryClient(conn)
	available := func() int64 {
		var n int64
		if err := inv.Plain.QueryRowContext(ctx, "SELECT available FROM stock WHERE sku = 'A'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := available()
	errAsked := errors.New("roll back, as the test asks")
	var committed int64
	for i, addr := range addrs {
		client := tcClient(t, addr, driverToken)
		tcfg := tm.DefaultConfig()
		tcfg.Application = "driver"
		mgr, err := tm.New(client, tcfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, rollback := range []bool{false, true} {
			t.Run(fmt.Sprintf("replica%d/rollback=%v", i, rollback), func(t *testing.T) {
				var xid string
				err := mgr.WithGlobalTx(ctx, "attach-"+strconv.Itoa(i), func(ctx context.Context) error {
					xid, _ = gtx.XIDFromContext(ctx)
					if _, err := stock.Deduct(ctx, &samplev1.DeductRequest{Sku: "A", Quantity: 1, Mode: "at"}); err != nil {
						return err
					}
					if rollback {
						return errAsked
					}
					return nil
				})
				if rollback != errors.Is(err, errAsked) || !rollback && err != nil {
					t.Fatalf("transaction on replica %d: %v", i, err)
				}
				want := tcv1.GlobalStatus_COMMITTED
				if rollback {
					want = tcv1.GlobalStatus_ROLLBACKED
				} else {
					committed++
				}
				tx := waitStatus(t, client, xid, want)
				if tx.GetAttempts() != 1 {
					t.Errorf("phase 2 of %s took %d attempts, last error %q; want the first to reach the service", xid, tx.GetAttempts(), tx.GetLastError())
				}
				if got := start - available(); got != committed {
					t.Fatalf("stock taken %d, want %d", got, committed)
				}
			})
		}
	}
	if out := logs.String(); strings.Contains(out, invToken) {
		t.Fatalf("the service logged its coordinator token:\n%s", out)
	}
}

// startReplica runs a `gtx tc` replica on addr, stopped when t ends, and
// waits until it answers a client with token.
func startReplica(t *testing.T, i int, addr, token string, extra ...string) {
	t.Helper()
	args := append([]string{"tc", "--listen", addr, "--server-id", "replica-" + strconv.Itoa(i), "--node-id", "-1",
		"--branch-timeout", "2s", "--lease", "5s", "--retry-initial", "50ms", "--retry-max", "1s", "--log-level", "warn"}, extra...)
	logPath := filepath.Join(t.TempDir(), "tc.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "gtx"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	client := tcClient(t, addr, token)
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := client.ListTransactions(ctx, &tcv1.ListTransactionsRequest{Limit: 1})
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("replica %d exited at start:\n%s", i, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d does not answer: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tcClient is a client of the replica at addr sending token.
func tcClient(t *testing.T, addr, token string) tcv1.CoordinatorClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tc.TokenCredentials{Token: token, AllowInsecure: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// waitStatus waits until the coordinator reports xid in status want, and
// returns what it reports.
func waitStatus(t *testing.T, client tcv1.CoordinatorClient, xid string, want tcv1.GlobalStatus) *tcv1.Transaction {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.GetTransaction(t.Context(), &tcv1.GetTransactionRequest{Xid: xid})
		if err == nil && resp.GetTransaction().GetStatus() == want {
			return resp.GetTransaction()
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s: %v (%v) after 30s, want %v", xid, resp.GetTransaction(), err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
