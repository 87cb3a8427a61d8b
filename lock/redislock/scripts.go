package redislock

import (
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// fenceUnit is the step of the fencing counter's floor: the server's clock
// since 1970 in these units (about 1.8e13 in 2026) stays below the 2^47
// lock.Grant.Fence allows until the year 2415.
const fenceUnit = 100 * time.Microsecond

var (
	fenceUnitMicros     = strconv.FormatInt(fenceUnit.Microseconds(), 10)
	fenceStepsPerSecond = strconv.FormatInt(int64(time.Second/fenceUnit), 10)
)

// The fencing counter of a lock name never goes backwards, even when its key
// is lost (a restart without persistence, a failover to a replica that had
// not received it, a flush): every acquisition sets it to the larger of its
// old value plus one and the server's clock in fenceUnit steps since 1970
// (the floor), so a counter that was lost starts again above every value it
// had, as long as it had not run ahead of the clock. It runs ahead only
// while a name is acquired from Redis more than once per fenceUnit on
// average, and falls back to the clock as soon as acquisitions slow down.
// Lua keeps numbers as doubles, exact to 2^53; counters stay below 2^47.
//
// Waiters of a lock name wait in a queue (a list of their tokens). Each
// waiter subscribes to a channel of its own, <prefix>{name}:w:<token>, and a
// release wakes the first waiter that is still subscribed, so one release
// costs one retry, not one per waiting process.

// KEYS[1] lock key, KEYS[2] fence counter key, KEYS[3] waiter queue; ARGV[1]
// token, ARGV[2] ttl ms, ARGV[3] waiter mode: "0" not waiting, "1" waiting
// (joins the back of the queue), "2" woken by a release and beaten to the
// lock (rejoins at the front). Sets the fencing counter as described above.
// Returns {1, fence} when acquired, {0, pttl of
// the holder} otherwise.
var acquireScript = redis.NewScript(`
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	if ARGV[3] ~= '0' then
		redis.call('lrem', KEYS[3], 1, ARGV[1])
	end
	local t = redis.call('time')
	local f = tonumber(t[1]) * ` + fenceStepsPerSecond + ` + math.floor(tonumber(t[2]) / ` + fenceUnitMicros + `)
	local old = tonumber(redis.call('set', KEYS[2], string.format('%d', f), 'GET') or '0')
	if old >= f then
		f = old + 1
		redis.call('set', KEYS[2], string.format('%d', f))
	end
	return {1, f}
end
if ARGV[3] ~= '0' then
	if not redis.call('lpos', KEYS[3], ARGV[1]) then
		if ARGV[3] == '2' then
			redis.call('lpush', KEYS[3], ARGV[1])
		else
			redis.call('rpush', KEYS[3], ARGV[1])
		end
	end
	redis.call('pexpire', KEYS[3], 3 * tonumber(ARGV[2]))
end
return {0, redis.call('pttl', KEYS[1])}
`)

// KEYS[1] lock key; ARGV[1] token, ARGV[2] ttl ms. Returns 1 when renewed, 0
// when ARGV[1] does not hold the lock.
var renewScript = redis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
	return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
`)

// KEYS[1] lock key, KEYS[2] waiter queue; ARGV[1] token, ARGV[2] prefix of
// the waiter channels. Frees the lock and wakes the first queued waiter
// still subscribed (dropping those that left). Returns 1 when a waiter was
// woken, 0 when none, -1 when ARGV[1] does not hold the lock.
var releaseScript = redis.NewScript(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then
	return -1
end
redis.call('del', KEYS[1])
while true do
	local w = redis.call('lpop', KEYS[2])
	if not w then
		return 0
	end
	if redis.call('publish', ARGV[2] .. w, '') > 0 then
		return 1
	end
end
`)

// KEYS[1] waiter queue; ARGV[1] prefix of the waiter channels. Wakes the
// first queued waiter still subscribed: a woken waiter that leaves without
// trying passes its turn on. Returns 1 when a waiter was woken, else 0.
var wakeNextScript = redis.NewScript(`
while true do
	local w = redis.call('lpop', KEYS[1])
	if not w then
		return 0
	end
	if redis.call('publish', ARGV[1] .. w, '') > 0 then
		return 1
	end
end
`)

// KEYS[1] waiter queue; ARGV[1] token, ARGV[2] idle expiry ms. Queues a new
// waiter at the back.
var enqueueScript = redis.NewScript(`
redis.call('rpush', KEYS[1], ARGV[1])
if redis.call('pttl', KEYS[1]) < 0 then
	redis.call('pexpire', KEYS[1], ARGV[2])
end
return 1
`)

// KEYS[1] fence counter key; ARGV[1] fence. Raises the counter to ARGV[1]
// when it is lower.
var raiseFenceScript = redis.NewScript(`
local n = tonumber(ARGV[1])
if tonumber(redis.call('get', KEYS[1]) or '0') < n then
	redis.call('set', KEYS[1], ARGV[1])
end
return 1
`)
