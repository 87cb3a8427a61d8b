package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc/store/raftstore"
	"github.com/gtx-io/gtx/tm"
)

// raftNode is one `gtx tc` process of a raft cluster.
type raftNode struct {
	id, addr, raftAddr, dir string
	cmd                     *exec.Cmd
	serving                 chan struct{}
}

// startRaftNode runs `gtx tc` for n in the cluster of peers; serving is
// closed once it serves.
func startRaftNode(t *testing.T, n *raftNode, nodeID int, peers string) {
	t.Helper()
	n.cmd = exec.Command(gtxBin, "tc", "--listen", n.addr, "--server-id", n.id, "--node-id", strconv.Itoa(nodeID),
		"--data-dir", n.dir, "--raft-addr", n.raftAddr, "--raft-peers", peers,
		"--retry-initial", "20ms", "--retry-max", "200ms", "--branch-timeout", "2s", "--lease", "30s", "--default-timeout", "20s")
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.serving = make(chan struct{})
	serving := n.serving
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "coordinator serving") {
				once.Do(func() { close(serving) })
			}
			if os.Getenv("GTX_RAFT_LOGS") == "1" {
				t.Logf("%s: %s", n.id, sc.Text())
			}
		}
	}()
	cmd := n.cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// recordingHandler records every branch it committed or rolled back, by
// XID; phase 2 may come more than once.
type recordingHandler struct {
	mu         sync.Mutex
	committed  map[string]map[int64]bool
	rolledBack map[string]map[int64]bool
}

func (h *recordingHandler) record(m map[string]map[int64]bool, b rm.Branch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m[b.XID] == nil {
		m[b.XID] = make(map[int64]bool)
	}
	m[b.XID][b.BranchID] = true
}

func (h *recordingHandler) Commit(_ context.Context, b rm.Branch) error {
	h.record(h.committed, b)
	return nil
}

func (h *recordingHandler) Rollback(_ context.Context, b rm.Branch) error {
	h.record(h.rolledBack, b)
	return nil
}

func (h *recordingHandler) branches(xid string) (committed, rolledBack int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.committed[xid]), len(h.rolledBack[xid])
}

// TestRaftClusterLeaderKilled runs three `gtx tc` processes on one raft
// cluster under a load of 2-branch TCC transactions, SIGKILLs the leader,
// and checks that every transaction the TM saw committed stays committed
// with both branches committed at the resource manager, that the new
// leader finishes every transaction that was in flight, and that no row
// lock is left. GTX_RAFT_LONG=1 runs it longer, with more callers.
func TestRaftClusterLeaderKilled(t *testing.T) {
	callers, before, after := 4, 20, 20
	if os.Getenv("GTX_RAFT_LONG") == "1" {
		callers, before, after = 32, 500, 500
	}
	dir := t.TempDir()
	nodes := make([]*raftNode, 3)
	var peers []string
	for i := range nodes {
		nodes[i] = &raftNode{id: fmt.Sprintf("tc-%d", i+1), addr: freeAddr(t), raftAddr: freeAddr(t), dir: filepath.Join(dir, fmt.Sprint(i+1))}
		peers = append(peers, nodes[i].id+"="+nodes[i].raftAddr)
	}
	for i, n := range nodes {
		startRaftNode(t, n, i+1, strings.Join(peers, ","))
	}
	for _, n := range nodes {
		select {
		case <-n.serving:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not start", n.id)
		}
	}

	var (
		clients []tcv1.CoordinatorClient
		addrs   []resolver.Address
	)
	for _, n := range nodes {
		conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		clients = append(clients, tcv1.NewCoordinatorClient(conn))
		addrs = append(addrs, resolver.Address{Addr: n.addr})
	}
	// The TM balances over every node and leaves a dead one.
	res := manual.NewBuilderWithScheme("raftcluster")
	res.InitialState(resolver.State{Addresses: addrs})
	tmConn, err := grpc.NewClient("raftcluster:///tc", grpc.WithResolvers(res), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tmConn.Close() })
	anyNode := tcv1.NewCoordinatorClient(tmConn)

	h := &recordingHandler{committed: map[string]map[int64]bool{}, rolledBack: map[string]map[int64]bool{}}
	rcfg := rm.DefaultConfig()
	rcfg.Application = "raftcluster"
	rcfg.Coordinators = clients
	rcfg.ReconnectInitial = 20 * time.Millisecond
	rcfg.ReconnectMax = 200 * time.Millisecond
	r := startLedgerRM(t, rcfg, h, 30*time.Second)
	mgr, err := tm.New(anyNode, tm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		committed []string // the TM saw these commit
		begun     []string
		wg        sync.WaitGroup
		stop      = make(chan struct{})
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(committed)
	}
	for range callers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var xid string
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := mgr.WithGlobalTx(ctx, "raftcluster", func(ctx context.Context) error {
					xid, _ = gtx.XIDFromContext(ctx)
					mu.Lock()
					begun = append(begun, xid)
					mu.Unlock()
					for i := range 2 {
						keys := fmt.Sprintf("acct:%s-%d", xid, i)
						if _, err := r.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, "ledger", keys, nil); err != nil {
							return err
						}
					}
					return nil
				})
				cancel()
				if err == nil {
					mu.Lock()
					committed = append(committed, xid)
					mu.Unlock()
				}
			}
		})
	}
	poll.Until(t, fmt.Sprintf("%d commits before the kill", before), 60*time.Second, func() bool { return count() >= before })

	ctx := t.Context()
	members, err := raftstore.Members(ctx, nodes[0].raftAddr)
	if err != nil {
		t.Fatal(err)
	}
	var leader *raftNode
	for _, m := range members {
		for _, n := range nodes {
			if m.Leader && m.ID == n.id {
				leader = n
			}
		}
	}
	if leader == nil {
		t.Fatalf("no leader among %v", members)
	}
	atKill := count()
	killed := time.Now()
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = leader.cmd.Wait()
	poll.Until(t, "the first commit after the kill", 60*time.Second, func() bool { return count() > atKill })
	t.Logf("killed leader %s: first commit %v later", leader.id, time.Since(killed))
	poll.Until(t, fmt.Sprintf("%d commits after the kill", after), 120*time.Second, func() bool { return count() >= atKill+after })
	close(stop)
	wg.Wait()

	var survivor tcv1.CoordinatorClient
	for i, n := range nodes {
		if n != leader {
			survivor = clients[i]
		}
	}
	mu.Lock()
	defer mu.Unlock()
	seen := make(map[string]bool)
	for _, xid := range committed {
		seen[xid] = true
	}
	for _, xid := range begun {
		var st tcv1.GlobalStatus
		poll.Until(t, xid+" to finish", 60*time.Second, func() bool {
			resp, err := survivor.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
			st = resp.GetStatus()
			return err == nil && st.IsFinal()
		})
		c, rb := h.branches(xid)
		switch {
		case seen[xid] && st != tcv1.GlobalStatus_COMMITTED:
			t.Errorf("%s: the TM saw it commit, the coordinator says %v", xid, st)
		case st == tcv1.GlobalStatus_COMMITTED && (c != 2 || rb != 0):
			t.Errorf("%s: COMMITTED with %d branches committed and %d rolled back at the resource manager", xid, c, rb)
		case st != tcv1.GlobalStatus_COMMITTED && c != 0:
			t.Errorf("%s: %v but %d branches committed", xid, st, c)
		}
		locks, err := survivor.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "ledger", LockKeys: fmt.Sprintf("acct:%s-0,%s-1", xid, xid)})
		if err != nil || !locks.GetLockable() {
			t.Errorf("%s: locks left after it finished: %v, %v", xid, locks.GetHolders(), err)
		}
	}
	t.Logf("%d transactions begun, %d seen committed", len(begun), len(committed))
}
