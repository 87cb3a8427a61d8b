package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// BenchmarkTwoBranchTCC is Begin, two RegisterBranch with one row lock
// each, and Commit (phase 2 delivered to an attached resource manager),
// through the coordinator's gRPC server, at 32 callers, on each store side
// by side: the SQLite store (the embedded default before), a one-node raft
// store, and a 3-node raft cluster with the coordinator on the leader.
func BenchmarkTwoBranchTCC(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) (tc.Store, tc.LockStore)
	}{
		{"sqlite", func(b *testing.B) (tc.Store, tc.LockStore) {
			s, err := sqlstore.Open(context.Background(), sqlstore.Config{Driver: sqlstore.DriverSQLite,
				DSN: filepath.Join(b.TempDir(), "tc.db"), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s, s
		}},
		{"raft-1", func(b *testing.B) (tc.Store, tc.LockStore) {
			s := open(b, benchConfig(b, b.TempDir(), "n1"))
			waitLeading(b, s)
			return s, s
		}},
		{"raft-3", func(b *testing.B) (tc.Store, tc.LockStore) {
			c := newCluster(b, 3)
			s := c.leader(b)
			return s, s
		}},
	}
	for _, st := range stores {
		b.Run("store="+st.name, func(b *testing.B) {
			store, locks := st.open(b)
			client, addr := serveCoordinator(b, store, locks)
			attachRM(b, addr)
			var n atomic.Int64
			ctx := context.Background()
			b.SetParallelism(16) // 16 × GOMAXPROCS 2 = 32 callers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "bench"})
					if err != nil {
						b.Error(err)
						return
					}
					for range 2 {
						key := fmt.Sprintf("stock:%d", n.Add(1))
						if _, err := client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: r.GetXid(), BranchType: tcv1.BranchType_TCC,
							ResourceId: "res", LockKeys: key}); err != nil {
							b.Error(err)
							return
						}
					}
					c, err := client.Commit(ctx, &tcv1.CommitRequest{Xid: r.GetXid()})
					if err != nil || c.GetStatus() != tcv1.GlobalStatus_COMMITTED {
						b.Errorf("commit: %v %v", c.GetStatus(), err)
						return
					}
				}
			})
		})
	}
}

// benchConfig is a node as gtx tc runs it (default timings,
// disk syncs), in dir.
func benchConfig(b *testing.B, dir, id string) Config {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Dir, cfg.Bind = id, filepath.Join(dir, id), "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// serveCoordinator runs a tc.Server on store and locks on a loopback gRPC
// port and returns a client of it and its address.
func serveCoordinator(b *testing.B, store tc.Store, locks tc.LockStore) (tcv1.CoordinatorClient, string) {
	ids, err := idgen.New(idgen.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	cfg.ServerID, cfg.IDs, cfg.Logger = "bench", ids, slog.New(slog.DiscardHandler)
	srv, err := tc.NewServer(cfg, store, locks)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	tcv1.RegisterCoordinatorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(func() { _ = srv.Close(); gs.Stop() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return tcv1.NewCoordinatorClient(conn), lis.Addr().String()
}

type nopHandler struct{}

func (nopHandler) Commit(context.Context, rm.Branch) error   { return nil }
func (nopHandler) Rollback(context.Context, rm.Branch) error { return nil }

// attachRM attaches a resource manager of resource "res" whose TCC branches
// do nothing.
func attachRM(b *testing.B, addr string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	cfg := rm.DefaultConfig()
	cfg.Application = "bench"
	cfg.Coordinators = []tcv1.CoordinatorClient{tcv1.NewCoordinatorClient(conn)}
	cfg.Logger = slog.New(slog.DiscardHandler)
	m, err := rm.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m.Handle(tcv1.BranchType_TCC, nopHandler{})
	if err := m.AddResource("res", tcv1.BranchType_TCC); err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.WaitAttached(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(); _ = conn.Close() })
}

// BenchmarkInFlightMemory measures the state machine's heap per in-flight
// 2-branch transaction holding 2 row locks (decided, phase 2 not done),
// as bytes/txn over 100,000 of them.
func BenchmarkInFlightMemory(b *testing.B) {
	const n = 100_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := newState()
		now := time.Now().UnixNano()
		for i := range n {
			xid := fmt.Sprint(1796690301806673518 + int64(i))
			st.apply(&command{op: opCreate, xid: xid, now: now, name: "place-order", application: "order", timeout: 60e9, begin: now}, 1)
			for j := range 2 {
				resource := []string{"inventory", "account"}[j]
				key := fmt.Sprintf("%s:%d", []string{"stock", "balance"}[j], i)
				st.apply(&command{op: opAddBranch, xid: xid, now: now, branchID: int64(i*2 + j + 1), branchType: tcv1.BranchType_TCC,
					branchStatus: tcv1.BranchStatus_REGISTERED, resource: resource, lockKeys: key, created: now,
					locks: []tc.RowLock{{ResourceID: resource, Table: []string{"stock", "balance"}[j], PK: fmt.Sprint(i)}}}, 1)
			}
			st.apply(&command{op: opUpdateGlobal, xid: xid, now: now, from: []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, branches: 2,
				status: tcv1.GlobalStatus_COMMITTING, owner: "tc-1", leaseTill: now + 60e9}, 1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/txn")
		runtime.KeepAlive(st)
	}
}
