package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/tc"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

func redisAddr() string {
	if a := os.Getenv("GTX_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newLockStore returns a lock store under a prefix of its own, whose keys
// are deleted when the test ends.
func newLockStore(t *testing.T) *redisstore.LockStore {
	t.Helper()
	rdb, prefix := newClient(t)
	s, err := redisstore.NewLockStore(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore returns a session store under a prefix of its own, whose keys are
// deleted when the test ends; cfg.Prefix is replaced.
func newStore(t *testing.T, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	rdb, prefix := newClient(t)
	cfg.Prefix = prefix
	s, err := redisstore.NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newClient returns a client and a key prefix no other test uses; the keys
// under the prefix are deleted and the client closed when the test ends.
func newClient(t *testing.T) (*redis.Client, string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "gtxtest:tc:" + hex.EncodeToString(b[:]) + ":"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

func TestLockStoreConformance(t *testing.T) {
	storetest.RunLockStore(t, func(t *testing.T) tc.LockStore { return newLockStore(t) })
}

func TestLockStoreBadInput(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	good := []tc.RowLock{{ResourceID: "r", Table: "t", PK: "1"}}
	tests := []struct {
		name string
		call func() error
	}{
		{"acquire with empty xid", func() error { return s.AcquireLocks(ctx, "", 1, good) }},
		{"acquire lock without pk", func() error {
			return s.AcquireLocks(ctx, "x", 1, []tc.RowLock{{ResourceID: "r", Table: "t"}})
		}},
		{"release branch with empty xid", func() error { return s.ReleaseBranchLocks(ctx, "", 1) }},
		{"release global with empty xid", func() error { return s.ReleaseGlobalLocks(ctx, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, redisstore.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
	got, err := s.QueryLocks(ctx, good)
	if err != nil || len(got) != 0 {
		t.Fatalf("bad input changed the store: %v, %v", got, err)
	}
	if _, err := redisstore.NewLockStore(nil, redisstore.Config{}); !errors.Is(err, redisstore.ErrInvalidArgument) {
		t.Fatalf("NewLockStore(nil) = %v", err)
	}
}
