// Package mysqllock keeps gtx locks (package lock) in a MySQL or MariaDB
// table, for services that have a database but no Redis.
//
// The semantics are those of every lock.Backend: a unique token per
// acquisition, a TTL renewed by the lock.Client's watchdog, and a fencing
// counter per lock name that grows with every acquisition (lock.Client adds
// the local hand-off number to make Lease.Fence). Expiry is judged by the
// database clock. Waiters poll (there are no notifications); single-flight
// and local hand-off in lock.Client keep that to one poller per process and
// lock name.
//
// Usage:
//
//	db, _ := sql.Open("mysql", "user:pass@tcp(db:3306)/app")
//	backend, err := mysqllock.New(db, mysqllock.Config{})
//	if err != nil { ... }
//	if err := backend.CreateTable(ctx); err != nil { ... }
//	locks, err := lock.New(backend, lock.DefaultConfig())
//	if err != nil { ... }
//	lease, err := locks.Lock(ctx, "invoice:2026-11")
package mysqllock
