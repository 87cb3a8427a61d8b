// Package lock provides distributed locks: mutual exclusion between
// processes, kept in a shared Backend (Redis, a RedLock quorum of Redis
// servers, or MySQL).
//
// A Client combines what a distributed lock needs in practice:
//
//   - a unique token per holding, so nobody releases or extends a lock it
//     does not hold;
//   - re-entrancy for one owner, carried in the context (WithOwner);
//   - a watchdog that renews the lock every TTL/3 while it is held, and a
//     lease context cancelled the moment the lock is known lost;
//   - fencing tokens that grow with every holding of a name (Lease.Fence),
//     so storage can refuse a holder that lost the lock without knowing;
//   - waiting by release notification (pub/sub on Redis) with a bounded
//     fallback poll, bounded by the caller's context;
//   - single-flight: goroutines of one Client waiting for the same name
//     queue locally and only one of them talks to the backend;
//   - local hand-off: Unlock passes the lock to a local waiter without
//     releasing it in the backend (with a new fencing token), at most
//     Config.MaxHandoffs times in a row so other processes are not starved.
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
