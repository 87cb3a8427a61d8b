package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// replicaLease is the lease of the replicas in the tests: the bound on how
// long the sessions a killed replica was driving wait for another replica.
const replicaLease = 2 * time.Second

// mysqlTestDB creates a MariaDB database for one test, dropped when it ends,
// and returns its DSN.
func mysqlTestDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GTX_TEST_MYSQL_DSN")
	if base == "" {
		base = "root@tcp(127.0.0.1:3306)/"
	}
	admin, err := sql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "gtx_replicas_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	return cfg.FormatDSN()
}

// startReplica runs one `gtx tc` replica as a subprocess, with a node ID
// leased from its store, and waits until it serves; extra are more flags.
func startReplica(t *testing.T, id int, addr string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"tc", "--listen", addr, "--server-id", "replica-" + strconv.Itoa(id),
		"--node-id", "-1", "--retry-initial", "20ms", "--retry-max", "200ms",
		"--branch-timeout", "1s", "--lease", replicaLease.String()}, extra...)
	cmd := exec.Command(gtxBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			if strings.Contains(sc.Text(), "coordinator serving") {
				once.Do(func() { close(serving) })
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %d did not start", id)
	}
	return cmd
}

// outcomeHandler records which branches were committed and rolled back.
type outcomeHandler struct {
	mu         sync.Mutex
	committed  map[int64]int
	rolledBack map[int64]int
}

func (h *outcomeHandler) Commit(_ context.Context, b rm.Branch) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.committed[b.BranchID]++
	return nil
}

func (h *outcomeHandler) Rollback(_ context.Context, b rm.Branch) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rolledBack[b.BranchID]++
	return nil
}

// roundRobin returns a client that spreads calls over addrs.
func roundRobin(t testing.TB, addrs []string) tcv1.CoordinatorClient {
	t.Helper()
	r := manual.NewBuilderWithScheme("gtxreplicas")
	var state resolver.State
	for _, a := range addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	conn, err := grpc.NewClient(r.Scheme()+":///tc", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// redisTestPrefix returns a key prefix for one test, whose keys are deleted
// when it ends, and the Redis address.
func redisTestPrefix(t testing.TB) (addr, prefix string) {
	t.Helper()
	addr = os.Getenv("GTX_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix = "gtxtest:replicas:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return addr, prefix
}

// Three replicas share one store (MariaDB, Redis) under load, a third of
// the transactions committing asynchronously; one is SIGKILLed a third of
// the way in. Every session still finishes, within the
// lease plus the transaction timeout, each branch's phase 2 agrees with its
// session's outcome, and no global lock is left.
func TestReplicasSurviveKill(t *testing.T) {
	stores := []struct {
		name  string
		flags func(t *testing.T) []string
	}{
		{"mysql", func(t *testing.T) []string { return []string{"--store-driver", "mysql", "--store-dsn", mysqlTestDB(t)} }},
		{"redis", func(t *testing.T) []string {
			addr, prefix := redisTestPrefix(t)
			return []string{"--store-driver", "redis", "--store-dsn", addr, "--store-prefix", prefix}
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) { replicasSurviveKill(t, st.flags(t)) })
	}
}

func replicasSurviveKill(t *testing.T, storeFlags []string) {
	const replicas = 3
	addrs := make([]string, replicas)
	procs := make([]*exec.Cmd, replicas)
	for i := range replicas {
		addrs[i] = freeAddr(t)
		procs[i] = startReplica(t, i, addrs[i], storeFlags...)
	}
	client := roundRobin(t, addrs)

	h := &outcomeHandler{committed: map[int64]int{}, rolledBack: map[int64]int{}}
	rcfg := rm.DefaultConfig()
	rcfg.Application = "replicas"
	rcfg.ReconnectInitial = 20 * time.Millisecond
	rcfg.ReconnectMax = 200 * time.Millisecond
	rcfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	rcfg.Discovery = &rm.Discovery{
		Resolver: rm.StaticResolver(addrs),
		Dial:     rm.GRPCDialer(grpc.WithTransportCredentials(insecure.NewCredentials())),
		Interval: 100 * time.Millisecond,
	}
	r := startLedgerRM(t, rcfg, h, 20*time.Second)
	ctx := context.Background()

	tmCfg := tm.DefaultConfig()
	tmCfg.Application = "replicas"
	tmCfg.StatusPollTimeout = 20 * time.Second
	tmCfg.Logger = rcfg.Logger
	mgr, err := tm.New(client, tmCfg)
	if err != nil {
		t.Fatal(err)
	}
	const (
		workers = 6
		total   = 150
		killAt  = 50
		timeout = 3 * time.Second
	)
	var (
		started  atomic.Int64
		mu       sync.Mutex
		xids     []string
		lockKeys []string
		wg       sync.WaitGroup
		killOnce sync.Once
	)
	for w := range workers {
		wg.Go(func() {
			for {
				n := started.Add(1)
				if n > total {
					return
				}
				if n == killAt {
					killOnce.Do(func() { _ = procs[0].Process.Signal(syscall.SIGKILL) })
				}
				keys := fmt.Sprintf("acct:%d-%d", w, n)
				// Every third transaction commits asynchronously: its
				// deciding replica drives phase 2 after answering, so
				// the kill also cuts such commits short.
				var opts []rm.BranchOption
				if n%3 == 0 {
					opts = append(opts, rm.AsyncCommit())
				}
				_ = mgr.WithGlobalTx(ctx, "transfer", func(ctx context.Context) error {
					xid, _ := gtx.XIDFromContext(ctx)
					mu.Lock()
					xids = append(xids, xid)
					lockKeys = append(lockKeys, keys)
					mu.Unlock()
					for range 2 {
						if _, err := r.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, "ledger", keys, nil, opts...); err != nil {
							return err
						}
					}
					if n%4 == 0 {
						return errors.New("business says no")
					}
					return nil
				}, tm.Timeout(timeout))
			}
		})
	}
	wg.Wait()

	// Every session ends within the lease (a dead owner's claim runs out)
	// plus the timeout (a transaction whose TM lost its replica), with
	// slack for backoff and the 2-core CI machine.
	bound := replicaLease + timeout + 20*time.Second
	deadline := time.Now().Add(bound)
	unfinished := append([]tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tcv1.Phase2Statuses()...)
	for {
		resp, err := client.ListTransactions(ctx, &tcv1.ListTransactionsRequest{Statuses: unfinished, Limit: 1000})
		if err == nil && len(resp.GetTransactions()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v still unfinished: %v (err %v)", bound, resp.GetTransactions(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	failed, err := client.ListTransactions(ctx, &tcv1.ListTransactionsRequest{
		Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMIT_FAILED, tcv1.GlobalStatus_ROLLBACK_FAILED}, Limit: 1000})
	if err != nil || len(failed.GetTransactions()) != 0 {
		t.Fatalf("failed transactions: %v, %v", failed.GetTransactions(), err)
	}
	mu.Lock()
	defer mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	var committed, rolledBack int
	for _, xid := range xids {
		resp, err := client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
		if err != nil {
			t.Fatalf("GetTransaction(%s): %v", xid, err)
		}
		tx := resp.GetTransaction()
		for _, b := range tx.GetBranches() {
			c, rb := h.committed[b.GetBranchId()], h.rolledBack[b.GetBranchId()]
			switch tx.GetStatus() {
			case tcv1.GlobalStatus_COMMITTED:
				if c == 0 || rb != 0 {
					t.Errorf("%s COMMITTED: branch %d committed %d times, rolled back %d", xid, b.GetBranchId(), c, rb)
				}
			default:
				if c != 0 {
					t.Errorf("%s %v: branch %d committed", xid, tx.GetStatus(), b.GetBranchId())
				}
			}
		}
		if tx.GetStatus() == tcv1.GlobalStatus_COMMITTED {
			committed++
		} else {
			rolledBack++
		}
	}
	for _, keys := range lockKeys {
		resp, err := client.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "ledger", LockKeys: keys})
		if err != nil || !resp.GetLockable() {
			t.Errorf("lock %s left: %v, %v", keys, resp.GetHolders(), err)
		}
	}
	t.Logf("%d transactions: %d committed, %d rolled back", len(xids), committed, rolledBack)
	if committed == 0 {
		t.Fatal("nothing committed")
	}
}
