// Package redislock keeps gtx locks (package lock) in Redis.
//
// Backend uses one Redis server or cluster; RedLock uses a quorum of
// independent servers. Both store a lock as a key holding a token unique to
// one holding (SET NX PX), change it only through Lua scripts that compare
// the token first, count fencing tokens with INCR on a per-name counter, and
// announce releases on a per-name pub/sub channel so that waiters wake up
// instead of polling. Keys of one lock name share a hash tag:
//
//	<prefix>{<name>}           the lock, value = token, with a TTL
//	<prefix>{<name>}:fence     the fencing counter (never expires)
//	<prefix>{<name>}:released  the release channel
//
// Usage:
//
//	backend, err := redislock.New(rdb, redislock.Config{})
//	if err != nil { ... }
//	defer backend.Close()
//	locks, err := lock.New(backend, lock.DefaultConfig())
//	if err != nil { ... }
//	defer locks.Close(ctx)
//	lease, err := locks.Lock(ctx, "order:42")
//	if err != nil { ... }
//	defer lease.Unlock(ctx)
//	// work with lease.Context(); pass lease.Fence() to storage
package redislock
