// Package raftstore is the coordinator's embedded, replicated store: the
// sessions, branches and global row locks live in memory, in a state
// machine that every node of a Raft cluster (github.com/hashicorp/raft)
// holds, and every change is an entry of the Raft log, kept on disk in
// BoltDB (github.com/hashicorp/raft-boltdb/v2) in the node's data
// directory, with snapshots beside it. A *Store implements tc.Store,
// tc.LockStore, every optional capability of package tc, and tc.Leader,
// with which the coordinator runs its background work on the leader only.
//
// One node needs nothing but a directory and a port:
//
//	cfg := raftstore.DefaultConfig()
//	cfg.NodeID, cfg.Dir, cfg.Bind = "tc-1", "/var/lib/gtx/tc", "127.0.0.1:8191"
//	s, err := raftstore.Open(ctx, cfg)
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	srv, err := tc.NewServer(tcCfg, s, s)
//
// A node whose directory is empty bootstraps a one-node cluster, or the
// cluster of Config.Peers, or joins the cluster of the node at Config.Join.
// AddVoter, RemoveServer and Members change and list the membership through
// any node.
//
// # Commands, reads and the leader
//
// Every change is a command in a compact versioned binary encoding (see
// command.go). Applying one reads no clock: the proposer's now travels in
// it, so every node holds the same state after the same log. Concurrent
// calls share a disk sync: Raft batches up to Config.MaxAppendEntries
// entries in one append, and the state machine applies a batch under one
// lock.
//
// Reads that decide anything are linearizable: they run on the leader,
// after its leadership barrier (every entry of earlier terms applied), and
// after raft.VerifyLeader confirmed that a quorum still follows it. A lease
// read would save that round of heartbeats, but it is only correct while
// clocks drift less than the lease allows; VerifyLeader needs no such
// assumption.
//
// A follower forwards every call to the leader over the Raft port: the first
// byte of a connection says whether it carries Raft's protocol or forwarded
// calls (see transport.go and forward.go), so a node needs one port for the
// cluster, the store works wherever it is embedded, without the
// coordinator's gRPC server, TLS or tokens, and a coordinator on any node
// answers every RPC. The Raft port must be reachable by the cluster's nodes
// only.
//
// A lease that ClaimDue granted in an earlier Raft term binds no one, so a
// new leader resumes every transaction in flight at once, instead of
// waiting for the leases of the coordinator that led before.
//
// See docs/architecture.md for the design and docs/operations.md for the
// data directory, backups, membership changes and lost quorum.
package raftstore
