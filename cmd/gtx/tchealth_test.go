package main

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gtx-io/gtx/internal/poll"
)

// With TLS on the coordinator's port, --health-listen answers a plaintext
// health check (what a kubelet's gRPC probe sends) while the coordinator's
// port still refuses plaintext.
func TestHealthListenPlaintextBesideTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "gtx health CA")
	srvCert, srvKey := ca.issue(t, "tc", x509.ExtKeyUsageServerAuth)
	c := defaultTCConfig()
	c.Listen = freeAddr(t)
	c.HealthListen = freeAddr(t)
	c.DataDir, c.RaftAddr = filepath.Join(dir, "tc"), freeAddr(t)
	c.NodeID = 9
	c.LogLevel = "error"
	c.HealthInterval = 50 * time.Millisecond
	c.TLSCert = writeFile(t, dir, "tc.crt", srvCert)
	c.TLSKey = writeFile(t, dir, "tc.key", srvKey)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runTC(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runTC: %v", err)
		}
	})

	check := func(addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		r, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		return r.GetStatus(), err
	}
	poll.Until(t, "a SERVING answer on the plaintext health listener", 0, func() bool {
		st, err := check(c.HealthListen)
		return err == nil && st == healthpb.HealthCheckResponse_SERVING
	})
	if _, err := check(c.Listen); err == nil {
		t.Fatal("the coordinator's TLS port answered a plaintext health check")
	}
}
