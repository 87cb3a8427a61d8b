package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/tc"
)

// ErrInvalidArgument is returned for calls with an empty XID or a lock
// without resource, table or primary key; nothing is changed.
var ErrInvalidArgument = errors.New("redisstore: invalid argument")

// Config configures a Store or a LockStore.
type Config struct {
	// Prefix starts every key the store uses. Empty means "gtx:tc:". It
	// must not contain '{' or '}', which would change the hash tags.
	Prefix string
	// Buckets is how many Redis Cluster slots each cross-session index of a
	// Store is spread over; 0 means 8. Every replica sharing a store must
	// use the same value.
	Buckets int
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
}

// prefix returns the key prefix to use, or an error for a bad one.
func (c Config) prefix() (string, error) {
	if strings.ContainsAny(c.Prefix, "{}") {
		return "", fmt.Errorf("%w: prefix %q contains a brace", ErrInvalidArgument, c.Prefix)
	}
	if c.Prefix == "" {
		return "gtx:tc:", nil
	}
	return c.Prefix, nil
}

// LockStore is a tc.LockStore on Redis. Each row lock is a hash holding the
// XID and branch ID of its holder; each transaction has index sets of its
// row keys, overall and per branch, under a {xid} hash tag. Acquisition and
// release are single Lua scripts, so they are atomic: all keys of a call
// are taken or none.
//
// The scripts touch row keys of any slot, so the store needs a Redis server
// that is not in cluster mode (a primary with replicas, or Sentinel, is
// fine).
type LockStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ tc.LockStore = (*LockStore)(nil)

// NewLockStore returns a LockStore that keeps locks in rdb.
func NewLockStore(rdb redis.UniversalClient, cfg Config) (*LockStore, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidArgument)
	}
	p, err := cfg.prefix()
	if err != nil {
		return nil, err
	}
	return &LockStore{rdb: rdb, prefix: p}, nil
}

// rowKey names the hash of one row lock. Lengths make it unambiguous
// whatever the names contain.
func (s *LockStore) rowKey(l tc.RowLock) string {
	return s.prefix + "row:" + strconv.Itoa(len(l.ResourceID)) + ":" + l.ResourceID +
		strconv.Itoa(len(l.Table)) + ":" + l.Table + l.PK
}

func (s *LockStore) xidRows(xid string) string     { return s.prefix + "{" + xid + "}:rows" }
func (s *LockStore) xidBranches(xid string) string { return s.prefix + "{" + xid + "}:branches" }
func (s *LockStore) branchRowsPrefix(xid string) string {
	return s.prefix + "{" + xid + "}:branch:"
}

func checkLocks(xid string, locks []tc.RowLock) error {
	if xid == "" {
		return fmt.Errorf("%w: empty xid", ErrInvalidArgument)
	}
	for _, l := range locks {
		if l.ResourceID == "" || l.Table == "" || l.PK == "" {
			return fmt.Errorf("%w: lock %+v needs a resource, a table and a primary key", ErrInvalidArgument, l)
		}
	}
	return nil
}

// KEYS[1] xid rows, KEYS[2] branch rows, KEYS[3] xid branches, KEYS[4..]
// row locks; ARGV[1] xid, ARGV[2] branch ID. Returns {0} when every lock is
// taken, or {i, holder xid, holder branch} for the first lock, KEYS[i+3],
// held by another transaction, having taken none.
var acquireScript = redis.NewScript(`
local xid, branch = ARGV[1], ARGV[2]
for i = 4, #KEYS do
	local h = redis.call('hmget', KEYS[i], 'x', 'b')
	if h[1] and h[1] ~= xid then
		return {i - 3, h[1], h[2]}
	end
end
local added = false
for i = 4, #KEYS do
	if redis.call('hsetnx', KEYS[i], 'x', xid) == 1 then
		redis.call('hset', KEYS[i], 'b', branch)
		redis.call('sadd', KEYS[1], KEYS[i])
		redis.call('sadd', KEYS[2], KEYS[i])
		added = true
	end
end
if added then
	redis.call('sadd', KEYS[3], branch)
end
return {0}
`)

// KEYS[1] xid rows, KEYS[2] branch rows, KEYS[3] xid branches; ARGV[1] xid,
// ARGV[2] branch ID.
var releaseBranchScript = redis.NewScript(`
for _, k in ipairs(redis.call('smembers', KEYS[2])) do
	local h = redis.call('hmget', k, 'x', 'b')
	if h[1] == ARGV[1] and h[2] == ARGV[2] then
		redis.call('del', k)
	end
	redis.call('srem', KEYS[1], k)
end
redis.call('del', KEYS[2])
redis.call('srem', KEYS[3], ARGV[2])
return 1
`)

// KEYS[1] xid rows, KEYS[2] xid branches; ARGV[1] xid, ARGV[2] prefix of
// the branch rows keys.
var releaseGlobalScript = redis.NewScript(`
for _, k in ipairs(redis.call('smembers', KEYS[1])) do
	if redis.call('hget', k, 'x') == ARGV[1] then
		redis.call('del', k)
	end
end
for _, b in ipairs(redis.call('smembers', KEYS[2])) do
	redis.call('del', ARGV[2] .. b)
end
redis.call('del', KEYS[1], KEYS[2])
return 1
`)

// AcquireLocks implements tc.LockStore.
func (s *LockStore) AcquireLocks(ctx context.Context, xid string, branchID int64, locks []tc.RowLock) error {
	if err := checkLocks(xid, locks); err != nil {
		return err
	}
	if len(locks) == 0 {
		return nil
	}
	branch := strconv.FormatInt(branchID, 10)
	keys := make([]string, 0, len(locks)+3)
	keys = append(keys, s.xidRows(xid), s.branchRowsPrefix(xid)+branch, s.xidBranches(xid))
	for _, l := range locks {
		keys = append(keys, s.rowKey(l))
	}
	res, err := acquireScript.Run(ctx, s.rdb, keys, xid, branch).Slice()
	if err != nil {
		return fmt.Errorf("redisstore: acquire locks of %s: %w", xid, err)
	}
	i, _ := res[0].(int64)
	if i == 0 {
		return nil
	}
	if len(res) != 3 || i < 1 || int(i) > len(locks) {
		return fmt.Errorf("redisstore: acquire locks of %s: unexpected reply %v", xid, res)
	}
	holder := locks[i-1]
	holder.XID, _ = res[1].(string)
	bs, _ := res[2].(string)
	holder.BranchID, _ = strconv.ParseInt(bs, 10, 64)
	return &tc.LockConflictError{Lock: holder}
}

// ReleaseBranchLocks implements tc.LockStore.
func (s *LockStore) ReleaseBranchLocks(ctx context.Context, xid string, branchID int64) error {
	if err := checkLocks(xid, nil); err != nil {
		return err
	}
	branch := strconv.FormatInt(branchID, 10)
	keys := []string{s.xidRows(xid), s.branchRowsPrefix(xid) + branch, s.xidBranches(xid)}
	if err := releaseBranchScript.Run(ctx, s.rdb, keys, xid, branch).Err(); err != nil {
		return fmt.Errorf("redisstore: release locks of %s branch %d: %w", xid, branchID, err)
	}
	return nil
}

// ReleaseGlobalLocks implements tc.LockStore.
func (s *LockStore) ReleaseGlobalLocks(ctx context.Context, xid string) error {
	if err := checkLocks(xid, nil); err != nil {
		return err
	}
	keys := []string{s.xidRows(xid), s.xidBranches(xid)}
	if err := releaseGlobalScript.Run(ctx, s.rdb, keys, xid, s.branchRowsPrefix(xid)).Err(); err != nil {
		return fmt.Errorf("redisstore: release locks of %s: %w", xid, err)
	}
	return nil
}

// QueryLocks implements tc.LockStore.
func (s *LockStore) QueryLocks(ctx context.Context, locks []tc.RowLock) ([]tc.RowLock, error) {
	if len(locks) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(locks))
	var (
		asked []tc.RowLock
		cmds  []*redis.SliceCmd
	)
	pipe := s.rdb.Pipeline()
	for _, l := range locks {
		k := s.rowKey(l)
		if seen[k] {
			continue
		}
		seen[k] = true
		asked = append(asked, l)
		cmds = append(cmds, pipe.HMGet(ctx, k, "x", "b"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: query locks: %w", err)
	}
	var out []tc.RowLock
	for i, c := range cmds {
		v := c.Val()
		x, ok := v[0].(string)
		if !ok {
			continue
		}
		l := asked[i]
		l.XID = x
		bs, _ := v[1].(string)
		l.BranchID, _ = strconv.ParseInt(bs, 10, 64)
		out = append(out, l)
	}
	return out, nil
}
