package gettingstarted

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gtx-io/gtx/internal/poll"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCoordinator builds gtx and runs `gtx tc` on its default store, as
// the guide does in a second terminal, and waits until it serves.
func startCoordinator(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gtx")
	build := exec.Command("go", "build", "-o", bin, "github.com/gtx-io/gtx/cmd/gtx")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gtx: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "tc", "--listen", addr, "--raft-addr", freeAddr(t), "--data-dir", filepath.Join(dir, "tc"), "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gtx tc:\n%s", logs.String())
		}
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	poll.Until(t, "gtx tc serving", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	return addr
}

// The guide's program, step by step, against a real coordinator: an AT
// change commits and rolls back, AT with a TCC action in one transaction
// commits and rolls back (points frozen, then spent or given back), a saga
// commits and is compensated.
func TestGettingStarted(t *testing.T) {
	tcAddr := startCoordinator(t)
	dsn := filepath.Join(t.TempDir(), "shop.db") + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	shop, err := Start(t.Context(), Options{Coordinator: tcAddr, DSN: dsn, HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shop.Close)
	if err := shop.Seed(t.Context(), map[string]int64{"A": 100}, map[string]int64{"u1": 1000}); err != nil {
		t.Fatal(err)
	}
	u, err := shop.HTTP.Endpoint()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name             string
		path             string
		req              BuyRequest
		code             int
		stock, available int64 // after the request, once phase 2 is done
	}{
		{"AT commits", "/v1/buy", BuyRequest{SKU: "A", Quantity: 2}, http.StatusOK, 98, 1000},
		{"AT rolls back", "/v1/buy", BuyRequest{SKU: "A", Quantity: 3, Fail: true}, http.StatusConflict, 98, 1000},
		{"AT and TCC commit", "/v1/buy-with-points", BuyRequest{SKU: "A", Quantity: 1, User: "u1"}, http.StatusOK, 97, 990},
		{"AT and TCC roll back", "/v1/buy-with-points", BuyRequest{SKU: "A", Quantity: 5, User: "u1", Fail: true}, http.StatusConflict, 97, 990},
		{"a saga commits", "/v1/buy-saga", BuyRequest{SKU: "A", Quantity: 4}, http.StatusOK, 93, 990},
		{"a saga is compensated", "/v1/buy-saga", BuyRequest{SKU: "A", Quantity: 6, Fail: true}, http.StatusConflict, 93, 990},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := json.Marshal(tt.req)
			resp, err := http.Post("http://"+u.Host+tt.path, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var res map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			// The annotated operations report the XID the annotation began;
			// a saga begins its own inside Run.
			if resp.StatusCode != tt.code || res["xid"] == "" && tt.path != "/v1/buy-saga" {
				t.Fatalf("POST %s %s: %d %v, want %d with an XID", tt.path, body, resp.StatusCode, res, tt.code)
			}
			var stock, points, frozen int64
			poll.Until(t, "phase 2 to finish", 0, func() bool {
				stock, points, frozen, err = shop.Available(t.Context(), "A", "u1")
				return err == nil && stock == tt.stock && points == tt.available && frozen == 0
			})
		})
	}
}
