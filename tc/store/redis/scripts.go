package redisstore

import "github.com/redis/go-redis/v9"

// The session scripts each touch only the two keys of one transaction,
// KEYS[1] (the session hash) and KEYS[2] (the branches hash), which share the
// transaction's {xid} hash tag, so each runs on one Redis Cluster slot.
//
// Session hash fields: n name, a application, s status, t timeout (ms),
// bt begin time, dl deadline, ut update time, at attempts, na next attempt,
// le last error, o owner, lu lease until (times in Unix microseconds), bc
// branch count. Branches hash fields, per branch ID <id>: <id> its
// immutable part (JSON), <id>:s its status, <id>:d its application data.

// createScript: ARGV are the session fields in hash order. Returns 1, or 0
// when the XID exists.
var createScript = redis.NewScript(`
if redis.call('exists', KEYS[1]) == 1 then
	return 0
end
redis.call('del', KEYS[2])
redis.call('hset', KEYS[1], 'n', ARGV[1], 'a', ARGV[2], 's', ARGV[3], 't', ARGV[4], 'bt', ARGV[5],
	'dl', ARGV[6], 'ut', ARGV[7], 'at', ARGV[8], 'na', ARGV[9], 'le', ARGV[10], 'o', ARGV[11],
	'lu', ARGV[12], 'bc', '0')
return 1
`)

// getScript returns {session fields, branch fields}, both flat field-value
// lists; the first is empty for an unknown XID.
var getScript = redis.NewScript(`
return {redis.call('hgetall', KEYS[1]), redis.call('hgetall', KEYS[2])}
`)

// updateScript: ARGV[1..7] status, attempts, next attempt, last error,
// owner, lease until, update time; ARGV[8] the branch count required, or -1
// for any; ARGV[9..] the statuses allowed now. Returns {1, old status,
// deadline}, {0, current status}, {2, current status} when the status is
// allowed but the branch count is not the one required, or {-1} for an
// unknown XID.
var updateScript = redis.NewScript(`
local cur = redis.call('hmget', KEYS[1], 's', 'dl', 'bc')
if not cur[1] then
	return {-1}
end
for i = 9, #ARGV do
	if cur[1] == ARGV[i] then
		if ARGV[8] ~= '-1' and cur[3] ~= ARGV[8] then
			return {2, cur[1]}
		end
		redis.call('hset', KEYS[1], 's', ARGV[1], 'at', ARGV[2], 'na', ARGV[3], 'le', ARGV[4],
			'o', ARGV[5], 'lu', ARGV[6], 'ut', ARGV[7])
		return {1, cur[1], cur[2]}
	end
end
return {0, cur[1]}
`)

// finishEmptyScript: ARGV status, now, update time, BEGIN. Returns 1 when it
// moved a branchless BEGIN session within its deadline to status, else 0.
var finishEmptyScript = redis.NewScript(`
local c = redis.call('hmget', KEYS[1], 's', 'bc', 'dl')
if c[1] ~= ARGV[4] or c[2] ~= '0' or tonumber(c[3]) < tonumber(ARGV[2]) then
	return 0
end
redis.call('hset', KEYS[1], 's', ARGV[1], 'ut', ARGV[3])
return 1
`)

// addBranchScript: ARGV branch ID, immutable part, status, data, BEGIN,
// creation time. Returns {1}, {0, status} when the session is not in BEGIN,
// {-1} for an unknown XID, {-2} for a branch ID in use, {-3} when the
// creation time is past the session's deadline.
var addBranchScript = redis.NewScript(`
local c = redis.call('hmget', KEYS[1], 's', 'dl')
if not c[1] then
	return {-1}
end
if c[1] ~= ARGV[5] then
	return {0, c[1]}
end
if tonumber(c[2]) < tonumber(ARGV[6]) then
	return {-3}
end
if redis.call('hsetnx', KEYS[2], ARGV[1], ARGV[2]) == 0 then
	return {-2}
end
redis.call('hset', KEYS[2], ARGV[1] .. ':s', ARGV[3], ARGV[1] .. ':d', ARGV[4])
redis.call('hincrby', KEYS[1], 'bc', 1)
return {1}
`)

// updateBranchScript: ARGV branch ID, status, "1" when data is given, data.
// Returns 1, or 0 for an unknown branch.
var updateBranchScript = redis.NewScript(`
if redis.call('hexists', KEYS[2], ARGV[1]) == 0 then
	return 0
end
redis.call('hset', KEYS[2], ARGV[1] .. ':s', ARGV[2])
if ARGV[3] == '1' then
	redis.call('hset', KEYS[2], ARGV[1] .. ':d', ARGV[4])
end
return 1
`)

// claimScript: ARGV owner, now, lease until, statuses... Returns {1,
// session fields, branch fields} when it leased the session to owner; {0,
// status, next attempt} when the session is not due in one of statuses; {2}
// while another owner's lease runs; {-1} for an unknown XID.
var claimScript = redis.NewScript(`
local c = redis.call('hmget', KEYS[1], 's', 'na', 'o', 'lu')
if not c[1] then
	return {-1}
end
local wanted = false
for i = 4, #ARGV do
	if c[1] == ARGV[i] then
		wanted = true
		break
	end
end
if not wanted or tonumber(c[2]) > tonumber(ARGV[2]) then
	return {0, c[1], c[2]}
end
if c[3] ~= '' and c[3] ~= ARGV[1] and tonumber(c[4]) > tonumber(ARGV[2]) then
	return {2}
end
redis.call('hset', KEYS[1], 'o', ARGV[1], 'lu', ARGV[3])
return {1, redis.call('hgetall', KEYS[1]), redis.call('hgetall', KEYS[2])}
`)

// deleteScript: ARGV before, then the final statuses. Returns {1} when it
// deleted a final session last updated before before, {0, status, update
// time} otherwise, {-1} for an unknown XID.
var deleteScript = redis.NewScript(`
local c = redis.call('hmget', KEYS[1], 's', 'ut')
if not c[1] then
	return {-1}
end
for i = 2, #ARGV do
	if c[1] == ARGV[i] and tonumber(c[2]) < tonumber(ARGV[1]) then
		redis.call('del', KEYS[1], KEYS[2])
		return {1}
	end
end
return {0, c[1], c[2]}
`)
