package raftstore

import (
	"log/slog"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/tc"
)

// startCoordinator runs a tc.Server on s, named after its node, and stops
// it when the test ends.
func startCoordinator(t *testing.T, s *Store, nodeID int64) *tc.Server {
	t.Helper()
	icfg := idgen.DefaultConfig()
	icfg.NodeID = nodeID
	ids, err := idgen.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	cfg.ServerID = s.cfg.NodeID
	cfg.IDs = ids
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	cfg.RecoveryInterval = 20 * time.Millisecond
	cfg.TimeoutCheckInterval = 20 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := tc.NewServer(cfg, s, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// TestCoordinatorBackgroundOnLeader runs a coordinator on every node of a
// cluster: only the leader's drives phase 2 and timeouts, and when it
// stops, the new leader's takes every transaction in flight over at once,
// long before the old leader's one-minute leases run out.
func TestCoordinatorBackgroundOnLeader(t *testing.T) {
	c := newCluster(t, 3)
	servers := make(map[*Store]*tc.Server)
	for i, s := range c.nodes {
		servers[s] = startCoordinator(t, s, int64(i+1))
	}
	leader := c.leader(t)
	ctx := t.Context()
	now := time.Now()

	// Decided, with a branch whose resource manager never attached: phase
	// 2 retries, owned by the leader's coordinator only.
	if err := leader.CreateGlobal(ctx, newSession("inflight", now)); err != nil {
		t.Fatal(err)
	}
	if err := leader.AddBranch(ctx, newBranchOf("inflight", 1, now)); err != nil {
		t.Fatal(err)
	}
	if err := leader.UpdateGlobal(ctx, "inflight", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
		tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}); err != nil {
		t.Fatal(err)
	}
	owner := func() string {
		g, err := c.leader(t).GetGlobal(ctx, "inflight")
		if err != nil {
			return ""
		}
		return g.Owner
	}
	poll.Until(t, "the leader's coordinator to drive phase 2", 10*time.Second, func() bool { return owner() == leader.cfg.NodeID })
	// Between two attempts the session may be unowned for a moment; it
	// must never be owned by a follower's coordinator.
	for range 20 {
		if o := owner(); o != "" && o != leader.cfg.NodeID {
			t.Fatalf("phase 2 owned by %q, want the leader %q only", o, leader.cfg.NodeID)
		}
	}
	// Still in BEGIN past its timeout: rolled back by the leader.
	short := newSession("short", time.Now())
	short.Timeout = 50 * time.Millisecond
	if err := leader.CreateGlobal(ctx, short); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the timed-out transaction rolled back", 10*time.Second, func() bool {
		g, err := leader.GetGlobal(ctx, "short")
		return err == nil && g.Status == tcv1.GlobalStatus_TIMEOUT_ROLLBACKED
	})

	_ = servers[leader].Close()
	_ = leader.Close()
	started := time.Now()
	next := c.leader(t)
	poll.Until(t, "the new leader's coordinator to resume phase 2", 10*time.Second, func() bool { return owner() == next.cfg.NodeID })
	t.Logf("phase 2 resumed %v after the leader stopped", time.Since(started))
	short2 := newSession("short-2", time.Now())
	short2.Timeout = 50 * time.Millisecond
	if err := next.CreateGlobal(ctx, short2); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the new leader to roll back a timed-out transaction", 10*time.Second, func() bool {
		g, err := next.GetGlobal(ctx, "short-2")
		return err == nil && g.Status == tcv1.GlobalStatus_TIMEOUT_ROLLBACKED
	})
}
