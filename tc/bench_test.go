package tc_test

import (
	"context"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// BenchmarkBaselineTwoEchoCalls is the baseline the coordinator is measured
// against: two plain unary gRPC calls (the health service's Check, a handler
// that does no work) on the same loopback.
func BenchmarkBaselineTwoEchoCalls(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	run(b, func() error {
		for i := 0; i < 2; i++ {
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// batches are the store's group-commit bounds the coordinator benchmarks
// compare: 1 (group commit off) and the default.
var batches = []int{1, sqlstore.DefaultConfig().MaxBatch}

// withBatches runs bench once per bound of batches, on a coordinator whose
// store uses it.
func withBatches(b *testing.B, bench func(b *testing.B, e *gtxtest.TC)) {
	for _, n := range batches {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			bench(b, gtxtest.NewTC(b, gtxtest.TCOptions{Configure: testConfig, MaxBatch: n}))
		})
	}
}

// BenchmarkEmptyGlobalTx is Begin + Commit of a transaction with no branch.
func BenchmarkEmptyGlobalTx(b *testing.B) {
	withBatches(b, benchEmpty)
}

func benchEmpty(b *testing.B, e *gtxtest.TC) {
	ctx := context.Background()
	run(b, func() error {
		r, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "bench"})
		if err != nil {
			return err
		}
		_, err = e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: r.GetXid()})
		return err
	})
}

// BenchmarkTwoBranchGlobalTx is Begin + 2 × RegisterBranch + Commit, with
// phase 2 delivered to an attached resource manager.
func BenchmarkTwoBranchGlobalTx(b *testing.B) {
	withBatches(b, benchTwoBranch)
}

func benchTwoBranch(b *testing.B, e *gtxtest.TC) {
	startRM(b, e.Addr, &recorder{})
	ctx := context.Background()
	run(b, func() error {
		r, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "bench"})
		if err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			if _, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: r.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res"}); err != nil {
				return err
			}
		}
		c, err := e.Client.Commit(ctx, &tcv1.CommitRequest{Xid: r.GetXid()})
		if err == nil && c.GetStatus() != tcv1.GlobalStatus_COMMITTED {
			b.Fatalf("commit answered %s", c.GetStatus())
		}
		return err
	})
}

// run runs op b.N times, serially and, as sub-benchmark "c32", from 32
// goroutines.
func run(b *testing.B, op func() error) {
	b.Run("c1", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("c32", func(b *testing.B) {
		b.SetParallelism(16) // 16 × GOMAXPROCS 2 = 32 goroutines
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
