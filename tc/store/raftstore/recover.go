package raftstore

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Recover rewrites the stopped node's data directory (cfg.Dir) so that it
// opens as a one-node cluster of cfg.NodeID at cfg.Advertise (or cfg.Bind)
// with everything its log and snapshots hold: the way back when a quorum is
// lost for good, or to start a new cluster from a backup of a data
// directory. Changes the node never received are lost. Run it on one node
// only, then add others with Join; see docs/operations.md.
func Recover(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	addr := cfg.Advertise
	if addr == "" {
		addr = cfg.Bind
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	hlog := newRaftLogger(log)
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"), BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return fmt.Errorf("raftstore: open %s (stop the node first): %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotsRetained, hlog)
	if err != nil {
		return fmt.Errorf("raftstore: snapshot store: %w", err)
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(addr)}}}
	if err := raft.RecoverCluster(rc, &fsm{st: newState()}, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("raftstore: recover %s: %w", cfg.Dir, err)
	}
	return nil
}
