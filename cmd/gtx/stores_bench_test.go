package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// postgresTestDB creates a PostgreSQL database for one benchmark, dropped
// when it ends, and returns its DSN.
func postgresTestDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GTX_TEST_POSTGRES_DSN")
	if base == "" {
		base = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "gtx_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	return regexp.MustCompile(`dbname=\S+`).ReplaceAllString(base, "dbname="+name)
}

// openBenchStores opens one store of driver per replica, all on the same
// data, closed when b ends. maxBatch is the SQL stores' group-commit bound
// (0 for the default, 1 for none).
func openBenchStores(b *testing.B, driver string, replicas, maxBatch int) ([]tc.Store, []tc.LockStore) {
	b.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var stores []tc.Store
	var locks []tc.LockStore
	switch driver {
	case "redis":
		addr, prefix := redisTestPrefix(b)
		for range replicas {
			rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
			b.Cleanup(func() { rdb.Close() })
			cfg := redisstore.Config{Prefix: prefix, Logger: quiet}
			s, err := redisstore.NewStore(rdb, cfg)
			if err != nil {
				b.Fatal(err)
			}
			l, err := redisstore.NewLockStore(rdb, cfg)
			if err != nil {
				b.Fatal(err)
			}
			stores, locks = append(stores, s), append(locks, l)
		}
		return stores, locks
	}
	var dsn string
	switch driver {
	case "sqlite":
		dsn = filepath.Join(b.TempDir(), "tc.db")
	case "postgres":
		dsn = postgresTestDB(b)
	default:
		dsn = mysqlTestDB(b)
	}
	for range replicas {
		s, err := sqlstore.Open(ctx, sqlstore.Config{Driver: driver, DSN: dsn, Logger: quiet, MaxBatch: maxBatch})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		stores, locks = append(stores, s), append(locks, s)
	}
	return stores, locks
}

// benchNodes hands every benchmark replica its own node ID.
var benchNodes atomic.Int64

// startBenchReplicas starts in-process coordinator replicas on the stores
// and a resource manager attached to all of them, and returns a client that
// spreads calls over the replicas.
func startBenchReplicas(b *testing.B, stores []tc.Store, locks []tc.LockStore) tcv1.CoordinatorClient {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var addrs []string
	var clients []tcv1.CoordinatorClient
	for i := range stores {
		icfg := idgen.DefaultConfig()
		icfg.NodeID = 500 + benchNodes.Add(1)%500
		ids, err := idgen.New(icfg)
		if err != nil {
			b.Fatal(err)
		}
		cfg := tc.DefaultConfig()
		cfg.ServerID = "bench-" + strconv.Itoa(i)
		cfg.IDs = ids
		cfg.Logger = quiet
		srv, err := tc.NewServer(cfg, stores[i], locks[i])
		if err != nil {
			b.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		gs := grpc.NewServer()
		tcv1.RegisterCoordinatorServer(gs, srv)
		go gs.Serve(lis)
		if err := srv.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			srv.Close()
			gs.Stop()
		})
		addrs = append(addrs, lis.Addr().String())
		clients = append(clients, roundRobin(b, []string{lis.Addr().String()}))
	}
	rcfg := rm.DefaultConfig()
	rcfg.Application = "bench"
	rcfg.Coordinators = clients
	rcfg.Logger = quiet
	r, err := rm.New(rcfg)
	if err != nil {
		b.Fatal(err)
	}
	r.Handle(tcv1.BranchType_TCC, nopBranches{})
	if err := r.AddResource("res", tcv1.BranchType_TCC); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.WaitAttached(ctx); err != nil {
		b.Fatal(err)
	}
	return roundRobin(b, addrs)
}

type nopBranches struct{}

func (nopBranches) Commit(context.Context, rm.Branch) error   { return nil }
func (nopBranches) Rollback(context.Context, rm.Branch) error { return nil }

// BenchmarkCoordinatorStores measures global transactions per second from
// 32 goroutines, empty and with two TCC branches (each taking one global
// lock), on every store, with one and with two replicas sharing the store.
func BenchmarkCoordinatorStores(b *testing.B) {
	var seq atomic.Int64
	ops := []struct {
		name string
		op   func(ctx context.Context, c tcv1.CoordinatorClient) error
	}{
		{"empty", func(ctx context.Context, c tcv1.CoordinatorClient) error {
			r, err := c.Begin(ctx, &tcv1.BeginRequest{Name: "bench"})
			if err != nil {
				return err
			}
			_, err = c.Commit(ctx, &tcv1.CommitRequest{Xid: r.GetXid()})
			return err
		}},
		{"2branch", func(ctx context.Context, c tcv1.CoordinatorClient) error {
			r, err := c.Begin(ctx, &tcv1.BeginRequest{Name: "bench"})
			if err != nil {
				return err
			}
			for range 2 {
				keys := "t:" + strconv.FormatInt(seq.Add(1), 10)
				if _, err := c.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: r.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res", LockKeys: keys}); err != nil {
					return err
				}
			}
			resp, err := c.Commit(ctx, &tcv1.CommitRequest{Xid: r.GetXid()})
			if err == nil && resp.GetStatus() != tcv1.GlobalStatus_COMMITTED {
				return fmt.Errorf("commit answered %s", resp.GetStatus())
			}
			return err
		}},
	}
	// The SQL stores run with group commit (the default, 64) and without
	// (1), side by side; Redis has no such setting.
	stores := []struct {
		driver string
		batch  int
	}{
		{"sqlite", 64}, {"sqlite", 1}, {"mysql", 64}, {"mysql", 1}, {"postgres", 64}, {"postgres", 1}, {"redis", 0},
	}
	for _, st := range stores {
		name := st.driver
		if st.batch > 0 {
			name = fmt.Sprintf("%s/batch=%d", st.driver, st.batch)
		}
		for _, replicas := range []int{1, 2} {
			for _, o := range ops {
				b.Run(fmt.Sprintf("store=%s/replicas=%d/%s", name, replicas, o.name), func(b *testing.B) {
					stores, locks := openBenchStores(b, st.driver, replicas, st.batch)
					client := startBenchReplicas(b, stores, locks)
					ctx := context.Background()
					b.SetParallelism(16) // 16 × GOMAXPROCS 2 = 32 goroutines
					b.ResetTimer()
					start := time.Now()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := o.op(ctx, client); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
				})
			}
		}
	}
}
