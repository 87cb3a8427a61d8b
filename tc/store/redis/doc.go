// Package redisstore keeps the coordinator's global row locks in Redis: a
// tc.LockStore whose acquisition of many keys is one Lua script, so it is
// all-or-nothing and re-entrant for the same XID.
//
// Layout, under a configurable prefix:
//
//	<prefix>row:<len>:<resource><len>:<table><pk>  hash {x: xid, b: branch}
//	<prefix>{<xid>}:rows                            set of the xid's row keys
//	<prefix>{<xid>}:branch:<branchID>               set of the branch's row keys
//	<prefix>{<xid>}:branches                        set of the xid's branch IDs
//
// Usage:
//
//	locks, err := redisstore.NewLockStore(rdb, redisstore.Config{Prefix: "gtx:tc:"})
//	if err != nil { ... }
//	err = locks.AcquireLocks(ctx, xid, branchID, rowLocks)
//	var conflict *tc.LockConflictError
//	if errors.As(err, &conflict) { ... } // held by conflict.Lock.XID
package redisstore
