package idgen

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisLeaserConfig configures a RedisLeaser.
type RedisLeaserConfig struct {
	// Prefix starts every key; node N is held under "Prefix:node:N".
	Prefix string
	// MinNode and MaxNode bound the node IDs this leaser hands out,
	// inclusive, within 0..MaxNodeID. Processes that share a Prefix should
	// share a range; separate ranges let one ID space mix leased and fixed
	// node IDs.
	MinNode, MaxNode int64
}

// DefaultRedisLeaserConfig returns prefix "gtx:idgen" and all 1024 nodes.
func DefaultRedisLeaserConfig() RedisLeaserConfig {
	return RedisLeaserConfig{Prefix: "gtx:idgen", MinNode: 0, MaxNode: MaxNodeID}
}

// Validate reports whether c can be used, with ErrInvalidConfig otherwise.
func (c RedisLeaserConfig) Validate() error {
	if c.Prefix == "" {
		return fmt.Errorf("%w: redis leaser Prefix is empty", ErrInvalidConfig)
	}
	return validateRange(c.MinNode, c.MaxNode)
}

func validateRange(lo, hi int64) error {
	if lo < 0 || hi > MaxNodeID || lo > hi {
		return fmt.Errorf("%w: node range %d..%d must lie within 0..%d with MinNode <= MaxNode", ErrInvalidConfig, lo, hi, MaxNodeID)
	}
	return nil
}

// RedisLeaser leases node IDs as Redis keys: a claim is SET NX PX of the
// owner's token on the node's key, a renewal compares the token and
// re-arms the expiry in one script, a release compares it and deletes; each
// also keeps the node's high mark.
type RedisLeaser struct {
	client redis.UniversalClient
	cfg    RedisLeaserConfig
}

// The lease of node N is the key "Prefix:node:N" holding the owner's token,
// with the TTL; its high mark is the key "Prefix:node:N:high", which never
// expires (a Redis that loses it, by a restart without persistence or a
// flush, loses the protection it gives).
var (
	// KEYS[1] lease, KEYS[2] high mark; ARGV[1] owner, ARGV[2] ttl ms,
	// ARGV[3] high. Returns {1, previous high} when claimed, {0, 0} when
	// held.
	claimScript = redis.NewScript(`
if not redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
	return {0, 0}
end
local old = tonumber(redis.call("GET", KEYS[2]) or "0")
if old < tonumber(ARGV[3]) then
	redis.call("SET", KEYS[2], ARGV[3])
end
return {1, old}`)
	// KEYS[1] lease, KEYS[2] high mark; ARGV[1] owner, ARGV[2] ttl ms,
	// ARGV[3] high. Returns 1 when renewed, 0 when not held.
	renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
	return 0
end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
if tonumber(redis.call("GET", KEYS[2]) or "0") < tonumber(ARGV[3]) then
	redis.call("SET", KEYS[2], ARGV[3])
end
return 1`)
	// KEYS[1] lease, KEYS[2] high mark; ARGV[1] owner, ARGV[2] high.
	releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("SET", KEYS[2], ARGV[2])
	return redis.call("DEL", KEYS[1])
end
return 0`)
)

// NewRedisLeaser returns a leaser over client. The client stays the caller's
// to close.
func NewRedisLeaser(client redis.UniversalClient, cfg RedisLeaserConfig) (*RedisLeaser, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: redis client is nil", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RedisLeaser{client: client, cfg: cfg}, nil
}

// Key returns the Redis key that holds node's lease.
func (r *RedisLeaser) Key(node int64) string {
	return r.cfg.Prefix + ":node:" + strconv.FormatInt(node, 10)
}

// Claim tries the nodes of the range in order and takes the first free one.
func (r *RedisLeaser) Claim(ctx context.Context, owner string, ttl time.Duration, high int64) (int64, int64, error) {
	for n := r.cfg.MinNode; n <= r.cfg.MaxNode; n++ {
		res, err := claimScript.Run(ctx, r.client, []string{r.Key(n), r.Key(n) + ":high"}, owner, ttl.Milliseconds(), high).Int64Slice()
		if err != nil {
			return 0, 0, fmt.Errorf("idgen: claim redis key %s: %w", r.Key(n), err)
		}
		if len(res) == 2 && res[0] == 1 {
			return n, res[1], nil
		}
	}
	return 0, 0, fmt.Errorf("%w: all of nodes %d..%d are held under %s:node:*", ErrNoFreeNode, r.cfg.MinNode, r.cfg.MaxNode, r.cfg.Prefix)
}

// Renew re-arms the expiry of node's key if owner still holds it.
func (r *RedisLeaser) Renew(ctx context.Context, node int64, owner string, ttl time.Duration, high int64) error {
	n, err := renewScript.Run(ctx, r.client, []string{r.Key(node), r.Key(node) + ":high"}, owner, ttl.Milliseconds(), high).Int()
	if err != nil {
		return fmt.Errorf("idgen: renew redis key %s: %w", r.Key(node), err)
	}
	if n == 0 {
		return fmt.Errorf("%w: redis key %s expired or is held by another owner", ErrLeaseLost, r.Key(node))
	}
	return nil
}

// Release deletes node's key and sets its high mark if owner still holds it.
func (r *RedisLeaser) Release(ctx context.Context, node int64, owner string, high int64) error {
	if err := releaseScript.Run(ctx, r.client, []string{r.Key(node), r.Key(node) + ":high"}, owner, high).Err(); err != nil {
		return fmt.Errorf("idgen: release redis key %s: %w", r.Key(node), err)
	}
	return nil
}
