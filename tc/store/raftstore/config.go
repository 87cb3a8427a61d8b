package raftstore

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config configures one node of a cluster. Start from DefaultConfig.
type Config struct {
	// NodeID names this node in the cluster. It must be unique and stay the
	// same across restarts: the log and the membership know the node by it.
	NodeID string
	// Dir is the data directory: raft.db (the Raft log and the node's vote,
	// in BoltDB) and snapshots/. One node per directory.
	Dir string
	// Bind is the TCP address this node listens on for Raft traffic and for
	// the calls followers forward to the leader.
	Bind string
	// Advertise is the address other nodes dial to reach Bind; empty means
	// Bind, which then must not be an unspecified address such as :7000.
	Advertise string
	// Peers, when the data directory holds no state yet, bootstraps a
	// cluster of these voters, which must include this node and be the
	// same on every node bootstrapped with it. Empty, with Join empty too,
	// bootstraps a one-node cluster. Ignored once the directory has state.
	Peers []Peer
	// Join, when not empty, is the address of a member of an existing
	// cluster: a node with no state asks it (or the leader it names) to add
	// this node as a voter, instead of bootstrapping.
	Join string

	// ApplyTimeout bounds a call whose context has no deadline: waiting
	// for a leader, and the leader committing the change.
	ApplyTimeout time.Duration
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are Raft's
	// timings: a follower that hears from no leader for HeartbeatTimeout
	// starts an election; a leader that hears from no quorum for
	// LeaderLeaseTimeout steps down.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// MaxAppendEntries is how many log entries the leader writes to its log
	// in one disk sync and sends to a follower in one message: concurrent
	// calls share the sync.
	MaxAppendEntries int
	// SnapshotInterval is how often the node checks whether to take a
	// snapshot, which it does once SnapshotThreshold entries were appended
	// since the last one; TrailingLogs entries stay in the log after it,
	// so a follower that lags by fewer catches up from the log rather than
	// from the snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotsRetained is how many snapshots stay in Dir/snapshots.
	SnapshotsRetained int
	// NoSync skips the disk sync of each log write. A node that crashes
	// may then lose entries it acknowledged, which a cluster survives only
	// while a quorum did not crash at once; a one-node store loses
	// decisions. For tests and benchmarks of the rest of the system.
	NoSync bool

	// Clock is the time the node stamps on what it proposes (update times,
	// the now of a claim); nil means time.Now. Applying a command reads no
	// clock.
	Clock func() time.Time
	// Logger receives the store's and Raft's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Peer is a voter of the cluster to bootstrap.
type Peer struct {
	ID      string
	Address string
}

// DefaultConfig returns the configuration of a node on a LAN; set NodeID,
// Dir and Bind.
func DefaultConfig() Config {
	return Config{
		ApplyTimeout:       10 * time.Second,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		MaxAppendEntries:   256,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  16384,
		TrailingLogs:       10240,
		SnapshotsRetained:  2,
	}
}

// ParsePeers reads peers in the form "id1=host1:port1,id2=host2:port2".
func ParsePeers(s string) ([]Peer, error) {
	if s == "" {
		return nil, nil
	}
	var out []Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%w: peer %q is not id=host:port", ErrInvalidConfig, part)
		}
		out = append(out, Peer{ID: id, Address: addr})
	}
	return out, nil
}

// Validate checks c and says what to fix.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.NodeID == "":
		return bad("NodeID is empty; name this node, the same across restarts")
	case c.Dir == "":
		return bad("Dir is empty; give the node a data directory")
	case c.Bind == "":
		return bad("Bind is empty; give the host:port to listen on for Raft")
	case c.ApplyTimeout <= 0:
		return bad("ApplyTimeout must be positive, got %v", c.ApplyTimeout)
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond:
		return bad("HeartbeatTimeout and ElectionTimeout must be at least 5ms, got %v and %v", c.HeartbeatTimeout, c.ElectionTimeout)
	case c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout %v must be at least 5ms and at most HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024:
		return bad("MaxAppendEntries must be 1 to 1024, got %d", c.MaxAppendEntries)
	case c.SnapshotInterval <= 0 || c.SnapshotThreshold == 0:
		return bad("SnapshotInterval and SnapshotThreshold must be positive")
	case c.SnapshotsRetained < 1:
		return bad("SnapshotsRetained must be at least 1, got %d", c.SnapshotsRetained)
	case c.Join != "" && len(c.Peers) > 0:
		return bad("give Peers to bootstrap a new cluster or Join to join one, not both")
	}
	if c.Advertise == "" {
		host, _, err := net.SplitHostPort(c.Bind)
		if err != nil {
			return bad("Bind %q: %v", c.Bind, err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			return bad("Bind %q listens on every interface; set Advertise to the address other nodes reach this one at", c.Bind)
		}
	}
	if len(c.Peers) > 0 {
		self, seen := false, make(map[string]bool)
		for _, p := range c.Peers {
			if seen[p.ID] {
				return bad("peer %s listed twice", p.ID)
			}
			seen[p.ID] = true
			self = self || p.ID == c.NodeID
		}
		if !self {
			return bad("Peers do not include this node %s; list every voter, this one too", c.NodeID)
		}
	}
	return nil
}
