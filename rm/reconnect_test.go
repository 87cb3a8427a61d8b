package rm

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
)

// longOutagesEnv, set to 1, adds the outages of 30 s and 120 s to
// TestReattachAfterOutage; they take two and a half minutes more.
const longOutagesEnv = "GTX_TEST_LONG_OUTAGES"

// reattachBound is how long after a coordinator is back the test accepts
// the Manager to be attached again and registering branches: the policy
// aims at one second, the bound leaves room for a loaded machine, and
// gRPC's default back-off would exceed it after an outage of 30 s or more.
const reattachBound = 5 * time.Second

// TestReattachAfterOutage stops a real coordinator for a while and starts
// it again on the same port and store, and checks that a Manager with the
// default configuration (its coordinator dialed by GRPCDialer, as
// discovery does) attaches again and registers a branch soon after,
// however long the outage. It logs how long that took.
func TestReattachAfterOutage(t *testing.T) {
	outages := []time.Duration{time.Second}
	if os.Getenv(longOutagesEnv) == "1" {
		outages = append(outages, 30*time.Second, 120*time.Second)
	}
	for _, outage := range outages {
		t.Run(outage.String(), func(t *testing.T) {
			coord := startRealTC(t)
			cfg := DefaultConfig()
			cfg.Application = "rm-reattach"
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg.Discovery = &Discovery{
				Resolver: StaticResolver{coord.addr},
				Dial:     GRPCDialer(grpc.WithTransportCredentials(insecure.NewCredentials())),
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m.Handle(tcv1.BranchType_TCC, &branchLog{})
			if err := m.AddResource("stock", tcv1.BranchType_TCC); err != nil {
				t.Fatal(err)
			}
			if err := m.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			poll.Until(t, "the first attach", 0, m.Ready)

			coord.stop()
			poll.Until(t, "the Manager to see the coordinator go", 0, func() bool { return !m.Ready() })
			time.Sleep(outage) // the outage itself, not synchronization
			back := time.Now()
			coord.start()
			poll.Until(t, "the Manager to attach again", reattachBound, m.Ready)
			attached := time.Since(back)

			b, err := coord.tc.Client.Begin(t.Context(), &tcv1.BeginRequest{Name: "after-outage"}, grpc.WaitForReady(true))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), reattachBound)
			defer cancel()
			if _, err := m.RegisterBranch(ctx, b.GetXid(), tcv1.BranchType_TCC, "stock", "", nil); err != nil {
				t.Fatalf("RegisterBranch after the outage: %v", err)
			}
			t.Logf("outage %v: attached again %v after the coordinator restarted", outage, attached.Round(time.Millisecond))
		})
	}
}

// TestFastReconnectOption checks that a connection dialed by hand with
// FastReconnect (as the transaction manager's is) reaches a coordinator
// soon after it starts listening, though it has been backing off for a
// while.
func TestFastReconnectOption(t *testing.T) {
	if ReconnectMaxDelay*12/10 >= time.Second {
		t.Fatalf("ReconnectMaxDelay %v with 20%% jitter reaches a second", ReconnectMaxDelay)
	}
	coord := startRealTC(t)
	coord.stop()
	conn, err := grpc.NewClient(coord.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), FastReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := tcv1.NewCoordinatorClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err = client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid}, grpc.WaitForReady(true))
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("GetStatus with no coordinator listening = %v, want DeadlineExceeded", err)
	}
	time.Sleep(3 * time.Second) // the outage: the connection backs off as far as it goes
	back := time.Now()
	coord.start()
	ctx, cancel = context.WithTimeout(t.Context(), reattachBound)
	defer cancel()
	_, err = client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid}, grpc.WaitForReady(true))
	if c := status.Code(err); c == codes.DeadlineExceeded || c == codes.Unavailable {
		t.Fatalf("GetStatus did not reach the coordinator within %v of its restart: %v", reattachBound, err)
	}
	t.Logf("reached the coordinator %v after it restarted", time.Since(back).Round(time.Millisecond))
}
