package redislock

import "github.com/redis/go-redis/v9"

// KEYS[1] lock key, KEYS[2] fence counter key; ARGV[1] token, ARGV[2] ttl ms.
// Returns {1, fence} when acquired, {0, pttl of the holder} otherwise.
var acquireScript = redis.NewScript(`
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return {1, redis.call('incr', KEYS[2])}
end
return {0, redis.call('pttl', KEYS[1])}
`)

// KEYS[1] lock key, KEYS[2] fence counter key; ARGV[1] holding token, ARGV[2]
// new token, ARGV[3] ttl ms. Returns the new fence, or 0 when ARGV[1] does
// not hold the lock.
var handoffScript = redis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
	redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
	return redis.call('incr', KEYS[2])
end
return 0
`)

// KEYS[1] lock key; ARGV[1] token, ARGV[2] ttl ms. Returns 1 when renewed, 0
// when ARGV[1] does not hold the lock.
var renewScript = redis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
	return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
`)

// KEYS[1] lock key; ARGV[1] token, ARGV[2] release channel. Returns how many
// subscribers were told of the release, or -1 when ARGV[1] does not hold the
// lock.
var releaseScript = redis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
	redis.call('del', KEYS[1])
	return redis.call('publish', ARGV[2], '')
end
return -1
`)

// KEYS[1] fence counter key; ARGV[1] fence. Raises the counter to ARGV[1]
// when it is lower.
var raiseFenceScript = redis.NewScript(`
local n = tonumber(ARGV[1])
if tonumber(redis.call('get', KEYS[1]) or '0') < n then
	redis.call('set', KEYS[1], n)
end
return 1
`)
