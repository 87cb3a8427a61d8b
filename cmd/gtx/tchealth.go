package main

import (
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveHealth serves hs, and nothing else, in plaintext gRPC on addr, for
// probes that cannot speak TLS (a kubelet's gRPC probe) while the
// coordinator's own port requires it. The answer carries no data beyond
// SERVING or NOT_SERVING. stop ends the listener and waits for it.
func serveHealth(addr string, hs *health.Server, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--health-listen: listen on %s: %w", addr, err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := gs.Serve(lis); err != nil {
			log.Error("health listener failed", "err", err)
		}
	}()
	log.Info("health serving", "listen", lis.Addr().String())
	return func() { gs.Stop(); <-done }, nil
}
