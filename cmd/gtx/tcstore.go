package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/gtx-io/gtx/idgen"

	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tc/store/raftstore"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// openStores opens the session and lock stores the configuration names and
// returns them with the function that closes them.
func openStores(ctx context.Context, c tcConfig, log *slog.Logger) (tc.Store, tc.LockStore, func() error, error) {
	if c.StoreDriver == "raft" {
		if c.LockStore != "" {
			return nil, nil, nil, errors.New("--lock-store is for a sql session store; the raft store keeps its locks already")
		}
		store, err := openRaft(ctx, c, log)
		if err != nil {
			return nil, nil, nil, err
		}
		return store, store, store.Close, nil
	}
	if c.StoreDriver != "redis" {
		store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: c.StoreDriver, DSN: c.StoreDSN, Logger: log, MaxBatch: c.StoreMaxBatch})
		if err != nil {
			return nil, nil, nil, err
		}
		if c.LockStore == "" {
			return store, store, store.Close, nil
		}
		locks, closeLocks, err := openRedisLocks(ctx, c, log)
		if err != nil {
			_ = store.Close()
			return nil, nil, nil, err
		}
		return store, locks, func() error { return errors.Join(closeLocks(), store.Close()) }, nil
	}
	if c.LockStore != "" {
		return nil, nil, nil, errors.New("--lock-store is for a sql session store; a redis store keeps its locks already")
	}
	opts, err := redisOptions(c.StoreDSN)
	if err != nil {
		return nil, nil, nil, err
	}
	rdb := redis.NewClient(opts)
	cfg := redisstore.Config{Prefix: c.StorePrefix, Logger: log}
	store, err := redisstore.NewStore(rdb, cfg)
	if err == nil {
		err = store.Ping(ctx)
	}
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, err
	}
	locks, err := redisstore.NewLockStore(rdb, cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, err
	}
	return store, locks, rdb.Close, nil
}

// openRaft starts this node of the raft store: a one-node cluster in
// --data-dir unless --raft-peers or --join say otherwise.
func openRaft(ctx context.Context, c tcConfig, log *slog.Logger) (*raftstore.Store, error) {
	peers, err := raftstore.ParsePeers(c.RaftPeers)
	if err != nil {
		return nil, fmt.Errorf("--raft-peers: %w", err)
	}
	cfg := raftstore.DefaultConfig()
	cfg.NodeID = c.RaftID
	if cfg.NodeID == "" {
		cfg.NodeID = c.ServerID
	}
	cfg.Dir = c.DataDir
	cfg.Bind = c.RaftAddr
	cfg.Advertise = c.RaftAdvertise
	cfg.Peers = peers
	cfg.Join = c.Join
	cfg.Logger = log
	return raftstore.Open(ctx, cfg)
}

// openRedisLocks opens the Redis lock store --lock-store names.
func openRedisLocks(ctx context.Context, c tcConfig, log *slog.Logger) (tc.LockStore, func() error, error) {
	opts, err := redisOptions(c.LockStore)
	if err != nil {
		return nil, nil, fmt.Errorf("--lock-store: %w", err)
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("--lock-store: reach redis at %s: %w", opts.Addr, err)
	}
	locks, err := redisstore.NewLockStore(rdb, redisstore.Config{Prefix: c.StorePrefix, Logger: log})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("--lock-store: %w", err)
	}
	return locks, rdb.Close, nil
}

// newIDs returns the replica's ID generator: on the configured node ID, or,
// for node ID -1, on a node leased from the store's database or Redis, so
// that replicas of one Deployment need no per-pod configuration. The
// returned function releases the lease.
func newIDs(ctx context.Context, c tcConfig, log *slog.Logger) (tc.IDGenerator, func(), error) {
	icfg := idgen.DefaultConfig()
	if c.NodeID != -1 {
		icfg.NodeID = c.NodeID
		g, err := idgen.New(icfg)
		return g, func() {}, err
	}
	var (
		leaser idgen.Leaser
		closer func()
	)
	switch c.StoreDriver {
	case "redis":
		opts, err := redisOptions(c.StoreDSN)
		if err != nil {
			return nil, nil, err
		}
		rdb := redis.NewClient(opts)
		l, err := idgen.NewRedisLeaser(rdb, idgen.DefaultRedisLeaserConfig())
		if err != nil {
			_ = rdb.Close()
			return nil, nil, err
		}
		leaser, closer = l, func() { _ = rdb.Close() }
	case "mysql", "postgres":
		dialector := gormmysql.Open(c.StoreDSN)
		if c.StoreDriver == "postgres" {
			dialector = gormpostgres.Open(c.StoreDSN)
		}
		db, err := gorm.Open(dialector, &gorm.Config{Logger: gormlogger.Discard})
		if err != nil {
			return nil, nil, fmt.Errorf("node lease: open %s: %w", c.StoreDriver, err)
		}
		l, err := idgen.NewSQLLeaser(ctx, db, idgen.DefaultSQLLeaserConfig())
		if err != nil {
			return nil, nil, err
		}
		leaser = l
		closer = func() {
			if sqlDB, err := db.DB(); err == nil {
				_ = sqlDB.Close()
			}
		}
	default:
		return nil, nil, fmt.Errorf("--node-id -1 leases a node from a shared store; %s is not one, give a node ID", c.StoreDriver)
	}
	lcfg := idgen.DefaultLeaseConfig()
	lcfg.Logger = log
	lease, err := idgen.Acquire(ctx, leaser, lcfg)
	if err != nil {
		closer()
		return nil, nil, fmt.Errorf("lease a node ID: %w", err)
	}
	g, err := idgen.NewLeased(icfg, lease)
	if err != nil {
		_ = lease.Close(context.WithoutCancel(ctx))
		closer()
		return nil, nil, err
	}
	log.Info("node ID leased", "node_id", lease.NodeID())
	return g, func() {
		_ = lease.Close(context.WithoutCancel(ctx))
		closer()
	}, nil
}

// redisOptions parses a redis store DSN: a redis:// URL or host:port.
func redisOptions(dsn string) (*redis.Options, error) {
	if !strings.Contains(dsn, "://") {
		dsn = "redis://" + dsn
	}
	opts, err := redis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("redis store DSN: want redis://[user:password@]host:port[/db] or host:port: %w", err)
	}
	return opts, nil
}
