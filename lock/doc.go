// Package lock provides distributed locks: mutual exclusion between
// processes, kept in a shared Backend (Redis, a RedLock quorum of Redis
// servers, or MySQL).
//
// A Client combines what a distributed lock needs in practice:
//
//   - a unique token per acquisition from the backend, so nobody releases
//     or extends a lock it does not hold;
//   - re-entrancy for one owner, carried in the context (WithOwner);
//   - a watchdog that renews the lock every TTL/3 while this process holds
//     it (across local hand-offs), and a lease context cancelled the moment
//     the lock is known lost;
//   - fencing tokens that grow with every holding of a name (Lease.Fence),
//     so storage can refuse a holder that lost the lock without knowing;
//   - waiting by release notification (pub/sub on Redis) with a bounded
//     fallback poll, bounded by the caller's context;
//   - single-flight: goroutines of one Client waiting for the same name
//     queue locally and only one of them talks to the backend;
//   - local hand-off: Unlock passes the lock to a local waiter without
//     releasing it in the backend, and normally without any backend call,
//     at most Config.MaxHandoffs times in a row so other processes are not
//     starved.
//
// # Local hand-off
//
// A process that acquired a lock from the backend keeps it there under one
// token (a claim) until it releases it; the claim's watchdog renews it every
// RenewInterval. Unlock with a local waiter queued moves the holding to that
// waiter inside the process: the backend still holds the lock for the same
// token, so nothing needs to be sent while the claim is known valid. Known
// validity is counted on the monotonic clock from when the acquisition or
// the last renewal was sent, plus the validity the backend granted, minus a
// clock-drift margin of 1% of the TTL plus 2 ms. A hand-off then
//
//   - sends nothing when at least a third of the TTL is left;
//   - renews the claim first (one compare-and-expire call) when less is
//     left, which happens only when the watchdog's renewals are failing or
//     RenewInterval is above about two thirds of the TTL;
//   - does not give the lock to the waiter when the claim is known lost (a
//     renewal found another holder, or the validity ran out) or the renewal
//     fails: the waiter contends at the backend like any other.
//
// This trusts the claim between renewals exactly as a single holder does:
// if the lock is taken away behind the process's back (its key deleted by
// hand, a failover that lost it), a holding handed off before the next
// renewal runs on a stale claim, and its context is cancelled with
// ErrLockLost when that renewal finds out, at most RenewInterval later. The
// fencing token is what protects storage in that window, as it does for a
// holder whose process pauses.
//
// # Fencing tokens
//
// Lease.Fence is F<<HandoffBits | h: F is the lock name's fencing counter
// in the backend, which grows with every acquisition from the backend (INCR
// on Redis, raised to the largest of the quorum on RedLock, an UPDATE on
// MySQL), and h is the hand-off number, 0 for the holding that acquired the
// claim and 1 to MaxHandoffs for the holdings handed off after it
// (MaxHandoffs is at most MaxHandoffsLimit, so h never reaches the next F).
// Every later acquisition, in any process, gets a larger F, so tokens grow
// strictly with every holding of a name, across hand-offs and processes.
// Storage only needs to compare tokens as int64 (or uint64) numbers and
// refuse one below the largest it has accepted. Stores that compare in
// double precision (Lua, JavaScript) are exact while F < 2^37. Tokens of
// versions that gave every hand-off its own INCR are smaller than the new
// ones, so an upgrade keeps them growing; do not run both versions against
// one lock name at once.
//
// Layout: this package holds what every backend shares (Client, Lease,
// Config, the Backend interface, owner helpers, errors); each backend is a
// sub-package, so a service imports only the drivers it uses:
// lock/redislock (one Redis, and RedLock over several independent Redis
// servers, which share Lua scripts) and lock/mysqllock (database/sql). Two
// alternatives to a lock live beside them: lock/optimistic (a version
// column through gorm) and lock/affinity (a gRPC balancer that routes every
// request for one key to one backend, so a local mutex suffices).
//
// Re-entrancy and single-flight are per Client: give each process one
// Client per backend. Owners are compared within that Client only; the
// backend never sees them.
//
// Usage:
//
//	backend, _ := redislock.New(rdb, redislock.Config{})
//	locks, err := lock.New(backend, lock.DefaultConfig())
//	if err != nil { ... }
//	defer locks.Close(ctx)
//
//	lease, err := locks.Lock(ctx, "account:42")
//	if err != nil { ... }
//	defer lease.Unlock(ctx)
//	ctx := lease.Context() // cancelled if the lock is lost
//	err = store.Write(ctx, lease.Fence(), value)
package lock
