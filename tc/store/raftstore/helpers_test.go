package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

// testConfig is a node with timings fast enough for tests on loopback,
// listening on a free port unless bind says otherwise.
func testConfig(t testing.TB, dir, id, bind string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.Dir = filepath.Join(dir, id)
	cfg.Bind = bind
	if bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.ApplyTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// open opens a node and closes it when the test ends.
func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitLeading waits until s leads with its barrier applied.
func waitLeading(t testing.TB, s *Store) {
	t.Helper()
	poll.Until(t, s.cfg.NodeID+" to lead", 10*time.Second, func() bool {
		l, _ := s.Leading()
		return l
	})
}

// newSingle returns a one-node cluster that leads.
func newSingle(t testing.TB) *Store {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), "n1", "")
	// Alone, a node never waits for others: it may elect itself sooner.
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	s := open(t, cfg)
	waitLeading(t, s)
	return s
}

// cluster is n nodes of one cluster on loopback ports.
type cluster struct {
	dir   string
	nodes []*Store
}

// newCluster starts n nodes: the first bootstraps alone, the others join
// it, so that every node listens on a port the system chose.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir()}
	first := open(t, testConfig(t, c.dir, "n1", ""))
	waitLeading(t, first)
	c.nodes = append(c.nodes, first)
	for i := 2; i <= n; i++ {
		cfg := testConfig(t, c.dir, fmt.Sprintf("n%d", i), "")
		cfg.Join = first.Addr()
		c.nodes = append(c.nodes, open(t, cfg))
	}
	c.waitAgreed(t)
	return c
}

// leader waits for the one node of c that leads and returns it.
func (c *cluster) leader(t testing.TB) *Store {
	t.Helper()
	var leader *Store
	poll.Until(t, "a leader", 10*time.Second, func() bool {
		leader = nil
		for _, s := range c.nodes {
			if l, _ := s.Leading(); l && s.ctx.Err() == nil {
				leader = s
			}
		}
		return leader != nil
	})
	return leader
}

// follower returns a node of c that does not lead.
func (c *cluster) follower(t testing.TB) *Store {
	t.Helper()
	leader := c.leader(t)
	for _, s := range c.nodes {
		if s != leader && s.ctx.Err() == nil {
			return s
		}
	}
	t.Fatal("no follower")
	return nil
}

// waitAgreed waits until every running node knows the same leader.
func (c *cluster) waitAgreed(t testing.TB) {
	t.Helper()
	leader := c.leader(t)
	poll.Until(t, "every node to know the leader", 10*time.Second, func() bool {
		for _, s := range c.nodes {
			if s.ctx.Err() != nil {
				continue
			}
			if addr, _ := s.raft.LeaderWithID(); string(addr) != leader.Addr() {
				return false
			}
		}
		return true
	})
}

// long skips t unless GTX_RAFT_LONG=1: tests that start many clusters or
// run long.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("GTX_RAFT_LONG") != "1" {
		t.Skip("set GTX_RAFT_LONG=1 to run")
	}
}

// storetestRun runs every conformance suite on the store open returns.
func storetestRun(t *testing.T, open func(t *testing.T) *Store) {
	storetest.RunStore(t, func(t *testing.T) tc.Store { return open(t) })
	storetest.RunLockStore(t, func(t *testing.T) tc.LockStore { return open(t) })
	storetest.RunCoordinatorInput(t, func(t *testing.T) (tc.Store, tc.LockStore) {
		s := open(t)
		return s, s
	})
}
