package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/tc"
)

func newSession(xid string, begin time.Time) *tc.GlobalSession {
	return &tc.GlobalSession{XID: xid, Name: "cluster", Application: "raftstore", Status: tcv1.GlobalStatus_BEGIN,
		Timeout: time.Minute, BeginTime: begin, UpdateTime: begin}
}

func newBranchOf(xid string, id int64, at time.Time) *tc.BranchSession {
	return &tc.BranchSession{XID: xid, BranchID: id, Type: tcv1.BranchType_TCC, ResourceID: "inventory",
		Status: tcv1.BranchStatus_REGISTERED, CreateTime: at, ApplicationData: []byte("d")}
}

// TestForwardingFromFollower runs calls on a follower and checks that they
// act on the leader and fail there exactly as they would locally: the
// typed errors travel.
func TestForwardingFromFollower(t *testing.T) {
	c := newCluster(t, 3)
	f := c.follower(t)
	ctx := t.Context()
	now := time.Now()
	if err := f.CreateGlobal(ctx, newSession("fwd-1", now)); err != nil {
		t.Fatalf("CreateGlobal via follower: %v", err)
	}
	if err := f.CreateGlobal(ctx, newSession("fwd-1", now)); !errors.Is(err, tc.ErrDuplicateXID) {
		t.Fatalf("duplicate CreateGlobal via follower: %v, want tc.ErrDuplicateXID", err)
	}
	lock := []tc.RowLock{{ResourceID: "inventory", Table: "stock", PK: "A"}}
	if err := f.AddBranchLocked(ctx, newBranchOf("fwd-1", 1, now), lock); err != nil {
		t.Fatalf("AddBranchLocked via follower: %v", err)
	}
	if err := f.CreateGlobal(ctx, newSession("fwd-2", now)); err != nil {
		t.Fatal(err)
	}
	err := f.AddBranchLocked(ctx, newBranchOf("fwd-2", 2, now), lock)
	var lc *tc.LockConflictError
	if !errors.As(err, &lc) || lc.Lock.XID != "fwd-1" || lc.Lock.BranchID != 1 || lc.HolderStatus != tcv1.GlobalStatus_BEGIN {
		t.Fatalf("conflicting AddBranchLocked via follower: %v, want a *tc.LockConflictError naming fwd-1 branch 1 in BEGIN", err)
	}
	if err := f.Decide(ctx, "fwd-1", 0, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}); !errors.Is(err, tc.ErrBranchesChanged) {
		t.Fatalf("Decide with a stale count via follower: %v, want tc.ErrBranchesChanged", err)
	}
	if err := f.Decide(ctx, "fwd-1", 1, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}); err != nil {
		t.Fatalf("Decide via follower: %v", err)
	}
	err = f.UpdateGlobal(ctx, "fwd-1", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
	var se *tc.StatusError
	if !errors.As(err, &se) || se.Status != tcv1.GlobalStatus_COMMITTING {
		t.Fatalf("UpdateGlobal from the wrong status via follower: %v, want a *tc.StatusError in COMMITTING", err)
	}
	if _, err := f.GetGlobal(ctx, "unknown"); !errors.Is(err, tc.ErrNotFound) {
		t.Fatalf("GetGlobal(unknown) via follower: %v, want tc.ErrNotFound", err)
	}
	for _, s := range c.nodes {
		g, err := s.GetGlobal(ctx, "fwd-1")
		if err != nil || g.Status != tcv1.GlobalStatus_COMMITTING || len(g.Branches) != 1 || string(g.Branches[0].ApplicationData) != "d" {
			t.Fatalf("GetGlobal on %s = %+v, %v; want COMMITTING with its branch", s.cfg.NodeID, g, err)
		}
	}
	// Every node applied the entries: the followers' own state has them.
	poll.Until(t, "the followers to apply the decision", 5*time.Second, func() bool {
		for _, s := range c.nodes {
			res := s.st.query(&command{op: opGet, xid: "fwd-1"})
			if res.err != nil || res.sessions[0].Status != tcv1.GlobalStatus_COMMITTING {
				return false
			}
		}
		return true
	})
}

// TestConformanceViaFollower runs the conformance suites on a follower of
// a 3-node cluster. It starts a cluster per subtest, so it runs only with
// GTX_RAFT_LONG=1.
func TestConformanceViaFollower(t *testing.T) {
	long(t)
	follower := func(t *testing.T) *Store { return newCluster(t, 3).follower(t) }
	storetestRun(t, follower)
}

// TestLeaderFailover keeps writing through every node while the leader is
// stopped, and checks that every acknowledged change survives on the new
// leader and is seen by every node's next read (linearizable: an
// acknowledged change is never lost or unseen).
func TestLeaderFailover(t *testing.T) {
	c := newCluster(t, 3)
	old := c.leader(t)
	ctx := t.Context()
	var (
		mu    sync.Mutex
		acked = make(map[string]tcv1.GlobalStatus)
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for i, s := range c.nodes {
		if s == old {
			continue
		}
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				xid := fmt.Sprintf("failover-%d-%d", i, n)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := s.CreateGlobal(cctx, newSession(xid, time.Now()))
				if err == nil {
					err = s.UpdateGlobal(cctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTED})
					if err == nil {
						mu.Lock()
						acked[xid] = tcv1.GlobalStatus_COMMITTED
						mu.Unlock()
					}
				}
				cancel()
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	poll.Until(t, "writes before the failover", 10*time.Second, func() bool { return count() >= 20 })
	before := count()
	if err := old.Close(); err != nil {
		t.Fatalf("stop the leader: %v", err)
	}
	started := time.Now()
	c.leader(t)
	t.Logf("new leader after %v", time.Since(started))
	poll.Until(t, "writes after the failover", 20*time.Second, func() bool { return count() >= before+20 })
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, s := range c.nodes {
		if s == old {
			continue
		}
		for xid, want := range acked {
			g, err := s.GetGlobal(ctx, xid)
			if err != nil || g.Status != want {
				t.Fatalf("on %s, acknowledged %s reads %v, %v; want %v", s.cfg.NodeID, xid, g, err, want)
			}
		}
	}
}

// TestRestartFromDataDir stops a one-node cluster and opens its directory
// again on the same address: the state comes back from the log.
func TestRestartFromDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "n1", "")
	s := open(t, cfg)
	waitLeading(t, s)
	ctx := t.Context()
	fill(t, s, "restart", 30)
	cfg.Bind = s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	waitLeading(t, s)
	check(t, s, "restart", 30)
	if err := s.CreateGlobal(ctx, newSession("restart-new", time.Now())); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
}

// TestSnapshotRestore takes a snapshot with the log compacted behind it,
// restarts from it, and adds a node that can only catch up from the
// snapshot.
func TestSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "n1", "")
	cfg.TrailingLogs = 5
	s := open(t, cfg)
	waitLeading(t, s)
	fill(t, s, "snap", 40)
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if first, err := s.logs.FirstIndex(); err != nil || first < 40 {
		t.Fatalf("log starts at %d (%v) after the snapshot; want it compacted", first, err)
	}
	fill(t, s, "after", 3) // in the log after the snapshot
	cfg.Bind = s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	waitLeading(t, s)
	check(t, s, "snap", 40)
	check(t, s, "after", 3)

	jcfg := testConfig(t, dir, "n2", "")
	jcfg.Join = s.Addr()
	joined := open(t, jcfg)
	poll.Until(t, "the new node to install the snapshot", 10*time.Second, func() bool {
		return joined.raft.AppliedIndex() >= s.raft.AppliedIndex()
	})
	res := joined.st.query(&command{op: opGet, xid: "snap-39"})
	if res.err != nil || len(res.sessions[0].Branches) != 1 {
		t.Fatalf("the joined node's own state: %+v", res)
	}
	held := joined.st.query(&command{op: opQueryLocks, locks: []tc.RowLock{{ResourceID: "r", Table: "t", PK: "snap-39"}}})
	if len(held.locks) != 1 || held.locks[0].XID != "snap-39" {
		t.Fatalf("the joined node's locks: %+v", held.locks)
	}
}

// fill creates n sessions named prefix-0... with a locked branch each.
func fill(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		xid := fmt.Sprintf("%s-%d", prefix, i)
		if err := s.CreateGlobal(t.Context(), newSession(xid, now)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddBranchLocked(t.Context(), newBranchOf(xid, int64(i+1), now), []tc.RowLock{{ResourceID: "r", Table: "t", PK: xid}}); err != nil {
			t.Fatal(err)
		}
	}
}

// check fails t unless the sessions fill made are all there with their
// branch and lock.
func check(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		xid := fmt.Sprintf("%s-%d", prefix, i)
		g, err := s.GetGlobal(t.Context(), xid)
		if err != nil || len(g.Branches) != 1 || g.Branches[0].BranchID != int64(i+1) {
			t.Fatalf("%s after restart: %+v, %v", xid, g, err)
		}
		held, err := s.QueryLocks(t.Context(), []tc.RowLock{{ResourceID: "r", Table: "t", PK: xid}})
		if err != nil || len(held) != 1 || held[0].XID != xid {
			t.Fatalf("lock of %s after restart: %v, %v", xid, held, err)
		}
	}
}

// TestMembershipChange removes a follower, adds a new node, and keeps
// writing through the changes.
func TestMembershipChange(t *testing.T) {
	c := newCluster(t, 3)
	ctx := t.Context()
	members, err := Members(ctx, c.nodes[2].Addr())
	if err != nil || len(members) != 3 {
		t.Fatalf("Members = %v, %v; want 3", members, err)
	}
	leaders := 0
	for _, m := range members {
		if !m.Voter {
			t.Errorf("%s is not a voter", m.ID)
		}
		if m.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d members lead, want 1: %v", leaders, members)
	}
	gone := c.follower(t)
	if err := RemoveServer(ctx, gone.Addr(), gone.cfg.NodeID); err != nil {
		t.Fatalf("RemoveServer(%s): %v", gone.cfg.NodeID, err)
	}
	_ = gone.Close()
	if members, err = c.leader(t).Members(ctx); err != nil || len(members) != 2 {
		t.Fatalf("Members after the removal = %v, %v; want 2", members, err)
	}
	if err := c.leader(t).CreateGlobal(ctx, newSession("members-1", time.Now())); err != nil {
		t.Fatalf("write with two voters: %v", err)
	}
	cfg := testConfig(t, c.dir, "n4", "")
	cfg.Join = c.leader(t).Addr()
	added := open(t, cfg)
	c.nodes = append(c.nodes, added)
	if members, err = added.Members(ctx); err != nil || len(members) != 3 {
		t.Fatalf("Members after the addition = %v, %v; want 3", members, err)
	}
	if _, err := added.GetGlobal(ctx, "members-1"); err != nil {
		t.Fatalf("read via the added node: %v", err)
	}
	// Adding it again changes nothing.
	if err := AddVoter(ctx, added.Addr(), "n4", added.Addr()); err != nil {
		t.Fatalf("AddVoter again: %v", err)
	}
}

// TestNewLeaderTakesOverLeases checks that a lease granted in an earlier
// term binds no one: the new leader claims the session at once, while in
// the old term another owner had to wait.
func TestNewLeaderTakesOverLeases(t *testing.T) {
	c := newCluster(t, 3)
	old := c.leader(t)
	ctx := t.Context()
	now := time.Now()
	if err := old.CreateGlobal(ctx, newSession("lease-1", now)); err != nil {
		t.Fatal(err)
	}
	err := old.UpdateGlobal(ctx, "lease-1", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
		tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING, Owner: "old-leader", LeaseUntil: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := old.ClaimDue(ctx, "other", tcv1.Phase2Statuses(), now, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("ClaimDue by another owner in the same term = %v, %v; want nothing", got, err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	leader := c.leader(t)
	got, err := leader.ClaimDue(ctx, "new-leader", tcv1.Phase2Statuses(), now, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].XID != "lease-1" || got[0].Owner != "new-leader" {
		t.Fatalf("ClaimDue by the new leader = %v, %v; want lease-1", got, err)
	}
}

// TestRecoverAfterLostQuorum stops a whole 3-node cluster, recovers one
// node's directory as a one-node cluster, and finds every change on it.
func TestRecoverAfterLostQuorum(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader(t)
	fill(t, leader, "lost", 10)
	survivor := c.follower(t)
	poll.Until(t, "the survivor to apply everything", 5*time.Second, func() bool {
		return survivor.raft.AppliedIndex() >= leader.raft.AppliedIndex()
	})
	cfg := survivor.cfg
	cfg.Bind = survivor.Addr()
	for _, s := range c.nodes {
		_ = s.Close()
	}
	if err := Recover(cfg); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	s := open(t, cfg)
	waitLeading(t, s)
	check(t, s, "lost", 10)
	if members, err := s.Members(t.Context()); err != nil || len(members) != 1 {
		t.Fatalf("Members after Recover = %v, %v; want this node alone", members, err)
	}
}
