// Package redislock keeps gtx locks (package lock) in Redis.
//
// Backend uses one Redis server or cluster; RedLock uses a quorum of
// independent servers. Both store a lock as a key holding a token unique to
// one holding (SET NX PX), change it only through Lua scripts that compare
// the token first, and count acquisitions in a per-name fencing counter,
// from which lock.Client makes its fencing tokens (lock.HandoffBits). The
// counter is set at every acquisition to the larger of its old value plus
// one and the server's clock (TIME) in 100 µs steps since 1970, so it never
// goes backwards when Redis loses it: a restart without persistence, a
// failover to a replica that had not received the last increments, a flush
// or a deleted key all restart it from the clock, above every value it had.
// That holds while a name is acquired from Redis at most 10,000 times a
// second on average (hand-offs inside a process do not count): faster, the
// counter runs ahead of the clock by the excess, and falls back once the
// rate drops. It also needs the server's clock not to step back across a
// restart or failover by more than the time the loss took.
// Waiting contenders (one per process and name, thanks to lock.Client's
// single-flight) queue in a per-name list and each subscribes to a channel of
// its own; a release wakes the first queued waiter that is still subscribed
// (a woken waiter that leaves passes its turn on), so one release costs one
// retry rather than one per waiting process, and waiters take turns. A bounded poll (lock.Config.PollInterval, or the
// holder's remaining TTL) covers lost messages and crashed holders. Keys of
// one lock name share a hash tag:
//
//	<prefix>{<name>}            the lock, value = token, with a TTL
//	<prefix>{<name>}:fence      the fencing counter (never expires; may be lost)
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
