// Package zklock keeps gtx locks (package lock) in ZooKeeper.
//
// A contender creates an ephemeral sequential node under the lock name's
// node, holding its token:
//
//	<root>/<escaped name>/lock-<sequence>
//
// and holds the lock when its node has the lowest sequence. A waiter keeps
// its node and watches only the node just before it (no herd: a release
// wakes one waiter); a contender that does not wait (TryLock) deletes its
// node at once. The nodes are ephemeral, so the session is the lease: a
// holder whose session expires (its process died, paused or was cut off
// for longer than the session timeout) loses its node, and with it the
// lock. Renew checks that the node still exists and belongs to the current
// session (a session that expired and was replaced by a new one reports
// lock.ErrNotHeld), and the validity it returns is the session timeout,
// counted from when the check was sent: the server cannot expire the
// session sooner than that after hearing from it.
//
// The fencing counter is the zxid that created the holder's node (czxid):
// it is global to the ensemble, durable, and strictly increasing, and nodes
// of one lock name get the lock in the order they were created, so holders
// get growing counters, across restarts of the servers and re-creations of
// the name's node. A zxid is the leader epoch shifted left by 32 plus a
// counter; lock.Grant allows counters below 2^47, so it holds for the first
// 32,767 leader epochs of an ensemble (Acquire returns an error beyond).
//
// Usage:
//
//	conn, _, err := zk.Connect([]string{"127.0.0.1:2181"}, 10*time.Second)
//	if err != nil { ... }
//	backend, err := zklock.New(conn, zklock.Config{SessionTimeout: 10 * time.Second})
//	if err != nil { ... }
//	defer backend.Close()
//	locks, err := lock.New(backend, lock.DefaultConfig())
//
// Give lock.Config a TTL of at most the session timeout; the lock lives as
// long as the session, whatever the TTL.
package zklock
