// Package lock provides distributed locks: mutual exclusion between
// processes, kept in a shared Backend (Redis, a RedLock quorum of Redis
// servers, MySQL, ZooKeeper or etcd).
//
// A Client combines what a distributed lock needs in practice:
//
//   - a unique token per acquisition from the backend, so nobody releases
//     or extends a lock it does not hold;
//   - re-entrancy for one owner, carried in the context (WithOwner);
//   - a watchdog that renews the lock every TTL/3 while this process holds
//     it (across local hand-offs), and a lease context cancelled the moment
//     the lock is known lost or its known validity ends (Lease.Validity,
//     Lease.Do);
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
// # Validity, and what fencing must still cover
//
// A holder knows its lock is held until the end of its known validity:
// the send time of the acquisition or of the last successful renewal, plus
// the TTL the backend granted, minus the drift margin. Lease.Validity
// returns what is left of it; the lease's context is cancelled with
// ErrLockLost when it ends (and every check of the context compares the
// clock first, so a holder resumed after a pause longer than the TTL sees
// the loss at its first check, before any timer runs); Lease.Do runs a
// write only while at least a given validity is left, under a context that
// ends with the validity.
//
// None of that can make a write safe on its own. Between the check and the
// moment a write takes effect in storage, the holder can pause (garbage
// collection, a stopped or swapped-out process, a VM migration), the write
// can sit in the network or a connection pool, and the lock can be lost in
// the backend behind the holder's back (a Redis restart without
// persistence, a failover to a replica that had not received the lock, a
// key deleted by hand). The fencing token covers all of these: storage
// that refuses tokens below the largest it has accepted refuses every
// write of an earlier holding that arrives after a later holding's write.
// What it cannot cover is a stale write that lands before the new holder
// writes anything; that write is then the last one of the old holding, as
// if it had arrived in time. Validity checks make that window short; they
// do not close it.
//
// # Fencing tokens
//
// Lease.Fence is F<<HandoffBits | h: F is the lock name's fencing counter
// in the backend, which grows with every acquisition from the backend, and
// h is the hand-off number, 0 for the holding that acquired the claim and
// 1 to MaxHandoffs for the holdings handed off after it (MaxHandoffs is at
// most MaxHandoffsLimit, so h never reaches the next F). Every later
// acquisition, in any process, gets a larger F, so tokens grow strictly
// with every holding of a name, across hand-offs and processes. Storage
// needs to compare tokens as int64 (or uint64) numbers and refuse one
// below the largest it has accepted. Stores that compare in double
// precision (Lua, JavaScript) cannot tell close tokens apart: compare them
// as decimal strings there (the shorter is smaller, then by digits).
//
// The counter never goes backwards, even where the backend can lose it:
//
//   - Redis keeps F as the larger of the old F plus one and the server's
//     clock in 100 µs steps since 1970, set at every acquisition, so a
//     counter lost to a restart without persistence, a failover to a
//     replica that lagged, or a flush starts again above every value it had
//     (unless one name was acquired from Redis more than 10,000 times a
//     second on average until just before the loss, which lets F run ahead
//     of the clock by the excess, and a loss shorter than that lead repeats
//     it; see lock/redislock);
//   - RedLock takes the largest F of its quorum and counts an acquisition
//     only when a quorum of nodes is known to hold that F (raising the
//     others), so every later quorum shares a node with it;
//   - MySQL keeps F in a durable row (an UPDATE of it);
//   - ZooKeeper uses the zxid that created the holder's node (lock/zklock),
//     etcd the revision that created its key (lock/etcdlock): both are
//     global, durable and strictly increasing in the ensemble or cluster.
//
// Tokens of versions before the clock floor (counters starting at 1) are
// smaller than the new Redis ones, so an upgrade keeps them growing; do not
// run both versions against one lock name at once.
//
// # Backends
//
// A Backend is a small interface (Acquire, Renew, Release, Watch by name
// and token); lock/locktest is the conformance suite and the
// mutual-exclusion checker every backend passes. Backends that are not here, and why: Nacos has no server that can be run
// in gtx's tests (no Debian package, no Go server), so no backend is
// shipped untested. A Nacos backend would need: a configuration item or
// an ephemeral instance per lock name created only if absent (Nacos's
// config API has CAS by MD5), a heartbeat or TTL to renew it, a
// listener for its deletion to wake waiters, and a strictly increasing
// durable counter for fencing (Nacos has none built in; a config item
// updated by CAS at every acquisition would do, or a fencing counter kept
// in another backend).
//
// Layout: this package holds what every backend shares (Client, Lease,
// Config, the Backend interface, owner helpers, errors); each backend is a
// sub-package, so a service imports only the drivers it uses:
// lock/redislock (one Redis, and RedLock over several independent Redis
// servers, which share Lua scripts), lock/mysqllock (database/sql),
// lock/zklock (ZooKeeper, github.com/go-zookeeper/zk) and lock/etcdlock
// (etcd, go.etcd.io/etcd/client/v3). Two
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
//	err = lease.Do(ctx, time.Second, func(ctx context.Context, fence int64) error {
//		return store.Write(ctx, fence, value) // refuses fences below the largest seen
//	})
package lock
