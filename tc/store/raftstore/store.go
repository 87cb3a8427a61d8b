package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Store is one node of a replicated coordinator store. It implements
// tc.Store, tc.LockStore and every optional capability of package tc, on
// any node: a follower forwards each call to the leader.
type Store struct {
	cfg  Config
	log  *slog.Logger
	addr string // the advertised address

	st     *state
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	logs   *raftboltdb.BoltStore
	mux    *mux
	fwd    *forwarder
	notify chan bool

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	leading bool
	changed chan struct{}
	closed  bool
}

// Open starts a node: it opens (or creates) the data directory, listens on
// Bind, and bootstraps or joins a cluster as Config says. It returns once
// the node runs; a leader may not be elected yet, and calls wait for one
// up to their deadline.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "raftstore", "node", cfg.NodeID)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: data directory: %w", err)
	}
	s := &Store{cfg: cfg, log: log, st: newState(), fwd: newForwarder(), notify: make(chan bool, 16), changed: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.start(ctx); err != nil {
		s.cancel()
		s.shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Store) start(ctx context.Context) error {
	cfg := s.cfg
	hlog := newRaftLogger(s.log)
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
		NoSync:      cfg.NoSync,
	})
	if err != nil {
		return fmt.Errorf("raftstore: open %s (is another node using the directory?): %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	s.logs = logs
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotsRetained, hlog)
	if err != nil {
		return fmt.Errorf("raftstore: snapshot store: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return fmt.Errorf("raftstore: listen on %s: %w", cfg.Bind, err)
	}
	adv := ln.Addr()
	if cfg.Advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.Advertise); err != nil {
			_ = ln.Close()
			return fmt.Errorf("raftstore: advertise address %q: %w", cfg.Advertise, err)
		}
	}
	s.addr = adv.String()
	s.mux = newMux(ln, adv)
	s.mux.handle = s.serveForward
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: raftLayer{s.mux}, MaxPool: 4, Timeout: 10 * time.Second, Logger: hlog,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = min(rc.CommitTimeout, cfg.HeartbeatTimeout/2)
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NotifyCh = s.notify
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("raftstore: read %s: %w", cfg.Dir, err)
	}
	cache, err := raft.NewLogCache(1024, logs)
	if err != nil {
		return err
	}
	r, err := raft.NewRaft(rc, &fsm{st: s.st}, cache, logs, snaps, s.trans)
	if err != nil {
		return fmt.Errorf("raftstore: start raft: %w", err)
	}
	s.raft = r
	s.mux.serve()
	s.wg.Add(1)
	go s.watchLeadership()

	switch {
	case existing:
		s.log.Info("node restarted from its data directory", "dir", cfg.Dir, "addr", s.addr)
	case cfg.Join != "":
		if err := AddVoter(ctx, cfg.Join, cfg.NodeID, s.addr); err != nil {
			return fmt.Errorf("raftstore: join the cluster at %s: %w", cfg.Join, err)
		}
		s.log.Info("node joined the cluster", "via", cfg.Join, "addr", s.addr)
	default:
		peers := cfg.Peers
		if len(peers) == 0 {
			peers = []Peer{{ID: cfg.NodeID, Address: s.addr}}
		}
		var conf raft.Configuration
		for _, p := range peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
		if err := r.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("raftstore: bootstrap: %w", err)
		}
		s.log.Info("cluster bootstrapped", "voters", len(peers), "addr", s.addr)
	}
	return nil
}

// Addr is the address other nodes reach this one at.
func (s *Store) Addr() string { return s.addr }

// Close stops the node. Its log and snapshots stay in the data directory;
// Open on it again resumes.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.leading {
		s.leading = false
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	s.cancel()
	return s.shutdown()
}

func (s *Store) shutdown() error {
	var errs []error
	if s.raft != nil {
		errs = append(errs, s.raft.Shutdown().Error())
	}
	if s.mux != nil {
		s.mux.close()
	}
	if s.trans != nil {
		errs = append(errs, s.trans.Close())
	}
	s.fwd.close()
	s.wg.Wait()
	if s.logs != nil {
		errs = append(errs, s.logs.Close())
	}
	return errors.Join(errs...)
}

// Leading implements tc.Leader: whether this node leads, with every entry
// of earlier terms applied, and a channel closed at the next change.
func (s *Store) Leading() (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading, s.changed
}

func (s *Store) setLeading(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.leading == v {
		return
	}
	s.leading = v
	close(s.changed)
	s.changed = make(chan struct{})
	s.log.Info("leadership changed", "leading", v, "term", s.raft.CurrentTerm())
}

// watchLeadership follows Raft's leadership notifications. A new leader
// first waits on a barrier, so that every entry committed in earlier terms
// is applied here, before it serves reads or says it leads.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case leader := <-s.notify:
			if !leader {
				s.setLeading(false)
				continue
			}
			for s.ctx.Err() == nil && s.raft.State() == raft.Leader {
				if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err == nil {
					s.setLeading(true)
					break
				}
			}
		}
	}
}

// isLeader reports whether this node leads and has applied its barrier.
func (s *Store) isLeader() bool {
	s.mu.Lock()
	l := s.leading
	s.mu.Unlock()
	return l && s.raft.State() == raft.Leader
}

// now is the proposer's clock.
func (s *Store) now() int64 { return unixNano(s.cfg.Clock()) }

// call runs a command or query on the leader: here when this node leads,
// else forwarded. It waits for a leader up to the context's deadline, or
// Config.ApplyTimeout when it has none.
func (s *Store) call(ctx context.Context, c *command) (*result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		defer cancel()
	}
	body := encodeCommand(c)
	kind := fwdApply
	if c.op >= opQuery {
		kind = fwdQuery
	}
	wait := time.Millisecond
	hint := ""
	for {
		if s.ctx.Err() != nil {
			return nil, ErrClosed
		}
		if s.isLeader() {
			res, retry, err := s.local(ctx, c, body)
			if !retry {
				return res, err
			}
		} else if addr := s.leaderAddr(hint); addr != "" {
			st, reply, err := s.fwd.call(ctx, addr, kind, body)
			switch {
			case errors.Is(err, errNotSent):
				hint = ""
			case err != nil:
				return nil, fmt.Errorf("raftstore: %v via %s: %w", c.op, addr, err)
			case st == replyOK:
				return decodeResult(reply)
			case st == replyNotLeader:
				hint = string(reply)
			default:
				return nil, &remoteError{msg: string(reply)}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w for %v: %w", ErrNoLeader, c.op, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// leaderAddr is the address to forward to: the hint a node answered with,
// or the leader this node knows, but never itself.
func (s *Store) leaderAddr(hint string) string {
	if hint != "" && hint != s.addr {
		return hint
	}
	addr, _ := s.raft.LeaderWithID()
	if string(addr) == s.addr {
		return ""
	}
	return string(addr)
}

// local runs c on this node, which leads. retry says it turned out not to
// lead before anything happened, so the caller may send c elsewhere.
func (s *Store) local(ctx context.Context, c *command, body []byte) (*result, bool, error) {
	if c.op >= opQuery {
		// A linearizable read: a quorum still follows this leader after
		// the read began, and the barrier applied every earlier entry, so
		// the state holds every change acknowledged before the read.
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, true, nil
		}
		return s.st.query(c), false, nil
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	f := s.raft.Apply(body, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, true, nil // not appended: safe to send again
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, false, ErrClosed
		}
		return nil, false, fmt.Errorf("raftstore: %v: outcome unknown: %w", c.op, err)
	}
	res, ok := f.Response().(*result)
	if !ok {
		return nil, false, fmt.Errorf("raftstore: %v: unexpected response %T", c.op, f.Response())
	}
	return res, false, nil
}
