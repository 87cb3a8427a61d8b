package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/tc"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// openStores opens the session and lock stores the configuration names and
// returns them with the function that closes them.
func openStores(ctx context.Context, c tcConfig, log *slog.Logger) (tc.Store, tc.LockStore, func() error, error) {
	if c.StoreDriver != "redis" {
		store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: c.StoreDriver, DSN: c.StoreDSN, Logger: log})
		if err != nil {
			return nil, nil, nil, err
		}
		return store, store, store.Close, nil
	}
	dsn := c.StoreDSN
	if !strings.Contains(dsn, "://") {
		dsn = "redis://" + dsn
	}
	opts, err := redis.ParseURL(dsn)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("redis store DSN: want redis://[user:password@]host:port[/db] or host:port: %w", err)
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
