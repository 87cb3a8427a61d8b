package grpcgtx_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/tm"
)

// The XID of the caller's context arrives in the handler's context.
func Example() {
	// A handler-side interceptor stands in for a service's handler.
	printXID := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		xid, ok := gtx.XIDFromContext(ctx)
		fmt.Println(info.FullMethod, "runs in", xid, ok)
		return handler(ctx, req)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(grpcgtx.UnaryServerInterceptor(), printXID))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(grpcgtx.UnaryClientInterceptor()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	ctx := gtx.ContextWithXID(context.Background(), "tc-1:4711")
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		panic(err)
	}
	// Output: /grpc.health.v1.Health/Check runs in tc-1:4711 true
}

// Run one method in a global transaction and let another check global
// locks: the @GlobalTransactional and @GlobalLock of gRPC.
func ExampleUnaryGlobalTx() {
	var mgr *tm.Manager // from tm.New
	g, err := interceptors.NewGlobalTx(mgr,
		interceptors.Operations("/order.v1.Order/Place"),
		interceptors.Timeout(30*time.Second),
		interceptors.Propagation(tm.Required))
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			grpcgtx.UnaryServerInterceptor(),
			grpcgtx.UnaryGlobalTx(g),
			grpcgtx.UnaryGlobalLock("/order.v1.Order/Get"),
		),
		grpc.ChainStreamInterceptor(grpcgtx.StreamServerInterceptor(), grpcgtx.StreamGlobalTx(g)),
	)
	_ = srv
}
