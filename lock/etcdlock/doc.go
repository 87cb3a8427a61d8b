// Package etcdlock keeps gtx locks (package lock) in etcd (v3 API; servers
// from 3.4 on).
//
// A lock is one key, <prefix><name>, whose value is the holder's token,
// attached to a lease of the holder's own: Acquire grants a lease of the
// TTL (etcd counts lease TTLs in whole seconds and has a minimum, so the
// TTL is rounded up) and creates the key in a transaction only if it does
// not exist; Renew sends one keep-alive for the lease and checks that the
// key still holds the token; Release deletes the key if it holds the token
// and revokes the lease. A holder that stops renewing (its process died or
// paused, or was cut off) loses the key when its lease expires. The
// validity reported is the shorter of the TTL and the lease's TTL, counted
// from when the grant or keep-alive was sent.
//
// The fencing counter is the revision that created the key (the
// transaction's revision): etcd's revision is global to the cluster,
// durable, and grows with every change, so every later holding gets a
// larger one, across restarts of the servers.
//
// Waiters watch the key and are woken when it is deleted (a release or an
// expiry). All waiters of a name are woken at once, one per process thanks
// to lock.Client's single-flight; ZooKeeper (lock/zklock) queues them
// instead.
//
// Usage:
//
//	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
//	if err != nil { ... }
//	backend, err := etcdlock.New(cli, etcdlock.Config{})
//	if err != nil { ... }
//	defer backend.Close()
//	locks, err := lock.New(backend, lock.DefaultConfig())
package etcdlock
