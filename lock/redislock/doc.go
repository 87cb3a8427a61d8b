// Package redislock keeps gtx locks (package lock) in Redis.
//
// Backend uses one Redis server or cluster; RedLock uses a quorum of
// independent servers. Both store a lock as a key holding a token unique to
// one holding (SET NX PX), change it only through Lua scripts that compare
// the token first, and count acquisitions with INCR on a per-name fencing
// counter, from which lock.Client makes its fencing tokens (lock.HandoffBits).
// Waiting contenders (one per process and name, thanks to lock.Client's
// single-flight) queue in a per-name list and each subscribes to a channel of
// its own; a release wakes the first queued waiter that is still subscribed
// (a woken waiter that leaves passes its turn on), so one release costs one
// retry rather than one per waiting process, and waiters take turns. A bounded poll (lock.Config.PollInterval, or the
// holder's remaining TTL) covers lost messages and crashed holders. Keys of
// one lock name share a hash tag:
//
//	<prefix>{<name>}            the lock, value = token, with a TTL
//	<prefix>{<name>}:fence      the fencing counter (never expires)
//	<prefix>{<name>}:waiters    the queue of waiting tokens (expires when idle)
//	<prefix>{<name>}:w:<token>  the channel that wakes one waiter
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
