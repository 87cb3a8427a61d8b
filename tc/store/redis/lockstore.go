package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

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

// LockStore is a tc.LockStore on Redis, usable on a Redis Cluster. Each row
// lock is a hash holding the XID and branch ID of its holder. The row locks
// of one table of one resource share a hash tag, so they live in one slot,
// together with one set per transaction of the keys it holds there; the
// transaction's own slot keeps the list of tables it has locks in. Taking
// the locks of one table is one Lua script, all or none; a call spanning
// tables runs one script per table and, when one of them meets a lock held
// by another transaction, gives back what the others took.
type LockStore struct {
	rdb     redis.UniversalClient
	prefix  string
	cluster bool
}

var (
	_ tc.LockStore        = (*LockStore)(nil)
	_ tc.LockHolderLister = (*LockStore)(nil)
)

// NewLockStore returns a LockStore that keeps locks in rdb.
func NewLockStore(rdb redis.UniversalClient, cfg Config) (*LockStore, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidArgument)
	}
	p, err := cfg.prefix()
	if err != nil {
		return nil, err
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &LockStore{rdb: rdb, prefix: p, cluster: cluster}, nil
}

// group names the slot of the row locks of one table of one resource:
// P{lk<len>:<resource><len>:<table>}. Lengths make it unambiguous whatever
// the names contain; a name with a '}' only shortens the hash tag, which
// stays the same for every key of the group.
func (s *LockStore) group(resource, table string) string {
	return s.prefix + "{lk" + strconv.Itoa(len(resource)) + ":" + resource + strconv.Itoa(len(table)) + ":" + table + "}"
}

// rowKey names the hash of one row lock.
func (s *LockStore) rowKey(l tc.RowLock) string { return s.group(l.ResourceID, l.Table) + "r:" + l.PK }

// heldKey names the set of the row keys xid holds in a group.
func heldKey(group, xid string) string { return group + "x:" + xid }

// groupsKey names the set of the groups xid holds locks in.
func (s *LockStore) groupsKey(xid string) string { return s.prefix + "{" + xid + "}:lockgroups" }

// holderBuckets is how many slots the index of lock holders spreads over.
const holderBuckets = 8

// holdersKey names the bucket of the index of the XIDs that hold locks,
// each bucket a sorted set of its own slot with every score 0, read in
// lexical order.
func (s *LockStore) holdersKey(xid string) string {
	return s.prefix + "{lh" + strconv.Itoa(int(crc32.ChecksumIEEE([]byte(xid))%holderBuckets)) + "}:holders"
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

// KEYS[1] the xid's held set in the group, KEYS[2..] row locks; ARGV[1]
// xid, ARGV[2] branch ID. Returns {0, indexes of the keys it took} when
// every lock is the xid's now, or {i, holder xid, holder branch} for the
// first lock, KEYS[i+1], held by another transaction, having taken none.
var acquireScript = redis.NewScript(`
local xid, branch = ARGV[1], ARGV[2]
for i = 2, #KEYS do
	local h = redis.call('hmget', KEYS[i], 'x', 'b')
	if h[1] and h[1] ~= xid then
		return {i - 1, h[1], h[2]}
	end
end
local taken = {0}
for i = 2, #KEYS do
	if redis.call('hsetnx', KEYS[i], 'x', xid) == 1 then
		redis.call('hset', KEYS[i], 'b', branch)
		redis.call('sadd', KEYS[1], KEYS[i])
		taken[#taken + 1] = i - 1
	end
end
return taken
`)

// KEYS[1] the xid's held set in the group, KEYS[2..] row locks to give
// back; ARGV[1] xid, ARGV[2] branch ID, or "" for every branch. With no row
// keys it gives back every lock of the set that matches.
var releaseScript = redis.NewScript(`
local keys = {}
if #KEYS > 1 then
	for i = 2, #KEYS do
		keys[#keys + 1] = KEYS[i]
	end
else
	keys = redis.call('smembers', KEYS[1])
end
for _, k in ipairs(keys) do
	local h = redis.call('hmget', k, 'x', 'b')
	if h[1] == ARGV[1] and (ARGV[2] == '' or h[2] == ARGV[2]) then
		redis.call('del', k)
		redis.call('srem', KEYS[1], k)
	elseif h[1] ~= ARGV[1] then
		redis.call('srem', KEYS[1], k)
	end
end
return 1
`)

// lockGroup is the locks of one call in one group, in request order.
type lockGroup struct {
	name  string
	locks []tc.RowLock
}

func (s *LockStore) groups(locks []tc.RowLock) []*lockGroup {
	byName := make(map[string]*lockGroup)
	var out []*lockGroup
	for _, l := range locks {
		n := s.group(l.ResourceID, l.Table)
		g := byName[n]
		if g == nil {
			g = &lockGroup{name: n}
			byName[n] = g
			out = append(out, g)
		}
		g.locks = append(g.locks, l)
	}
	return out
}

// AcquireLocks implements tc.LockStore. The groups the call touches are
// recorded in the transaction's slot first, so a release always finds them.
func (s *LockStore) AcquireLocks(ctx context.Context, xid string, branchID int64, locks []tc.RowLock) error {
	if err := checkLocks(xid, locks); err != nil {
		return err
	}
	if len(locks) == 0 {
		return nil
	}
	branch := strconv.FormatInt(branchID, 10)
	groups := s.groups(locks)
	cmds := make([]*redis.Cmd, len(groups))
	err := runStages(ctx, s.rdb, s.cluster, func(p redis.Pipeliner) {
		names := make([]any, len(groups))
		for i, g := range groups {
			names[i] = g.name
		}
		p.SAdd(ctx, s.groupsKey(xid), names...)
		p.ZAdd(ctx, s.holdersKey(xid), redis.Z{Member: xid})
	}, func(p redis.Pipeliner) {
		for i, g := range groups {
			keys := make([]string, 0, len(g.locks)+1)
			keys = append(keys, heldKey(g.name, xid))
			for _, l := range g.locks {
				keys = append(keys, s.rowKey(l))
			}
			cmds[i] = acquireScript.Eval(ctx, p, keys, xid, branch)
		}
	})
	if err != nil {
		return fmt.Errorf("redisstore: acquire locks of %s: %w", xid, err)
	}
	var conflict *tc.LockConflictError
	taken := make([][]int64, len(groups))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return fmt.Errorf("redisstore: acquire locks of %s: %w", xid, err)
		}
		code, _ := res[0].(int64)
		if code == 0 {
			for _, v := range res[1:] {
				n, _ := v.(int64)
				taken[i] = append(taken[i], n)
			}
			continue
		}
		if conflict != nil {
			continue
		}
		if len(res) != 3 || code < 1 || int(code) > len(groups[i].locks) {
			return fmt.Errorf("redisstore: acquire locks of %s: unexpected reply %v", xid, res)
		}
		holder := groups[i].locks[code-1]
		holder.XID, _ = res[1].(string)
		bs, _ := res[2].(string)
		holder.BranchID, _ = strconv.ParseInt(bs, 10, 64)
		conflict = &tc.LockConflictError{Lock: holder}
	}
	if conflict == nil {
		return nil
	}
	// Give back what the other groups took in this call, and only that:
	// locks the transaction held before stay held.
	p := s.rdb.Pipeline()
	for i, g := range groups {
		if len(taken[i]) == 0 {
			continue
		}
		keys := []string{heldKey(g.name, xid)}
		for _, n := range taken[i] {
			keys = append(keys, s.rowKey(g.locks[n-1]))
		}
		releaseScript.Eval(ctx, p, keys, xid, branch)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: give back the locks of %s after a conflict: %w", xid, err)
	}
	return conflict
}

// release gives back the locks of xid, of one branch or of all (branch "").
func (s *LockStore) release(ctx context.Context, xid, branch string) error {
	names, err := s.rdb.SMembers(ctx, s.groupsKey(xid)).Result()
	if err != nil || len(names) == 0 {
		return err
	}
	return runStages(ctx, s.rdb, s.cluster, func(p redis.Pipeliner) {
		for _, n := range names {
			releaseScript.Eval(ctx, p, []string{heldKey(n, xid)}, xid, branch)
		}
	}, func(p redis.Pipeliner) {
		// The list outlives the release for a while instead of going at
		// once: a late registration racing with the release adds its table
		// to the list before it takes locks, and its release must find them.
		if branch == "" {
			p.Expire(ctx, s.groupsKey(xid), groupsRetention)
			p.ZRem(ctx, s.holdersKey(xid), xid)
		}
	})
}

// groupsRetention is how long the list of a transaction's lock tables stays
// after its global release.
const groupsRetention = 24 * time.Hour

// ReleaseBranchLocks implements tc.LockStore.
func (s *LockStore) ReleaseBranchLocks(ctx context.Context, xid string, branchID int64) error {
	if err := checkLocks(xid, nil); err != nil {
		return err
	}
	if err := s.release(ctx, xid, strconv.FormatInt(branchID, 10)); err != nil {
		return fmt.Errorf("redisstore: release locks of %s branch %d: %w", xid, branchID, err)
	}
	return nil
}

// ReleaseGlobalLocks implements tc.LockStore.
func (s *LockStore) ReleaseGlobalLocks(ctx context.Context, xid string) error {
	if err := checkLocks(xid, nil); err != nil {
		return err
	}
	if err := s.release(ctx, xid, ""); err != nil {
		return fmt.Errorf("redisstore: release locks of %s: %w", xid, err)
	}
	return nil
}

// LockHolders implements tc.LockHolderLister: the XIDs that took locks and
// have not released them globally, in ascending order after after.
func (s *LockStore) LockHolders(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: limit %d is not positive", ErrInvalidArgument, limit)
	}
	min := "-"
	if after != "" {
		min = "(" + after
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, holderBuckets)
	for b := range holderBuckets {
		key := s.prefix + "{lh" + strconv.Itoa(b) + "}:holders"
		cmds[b] = p.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit)})
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: list lock holders: %w", err)
	}
	var out []string
	for _, c := range cmds {
		out = append(out, c.Val()...)
	}
	slices.Sort(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
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
