// Package redisstore keeps the coordinator's state in Redis: Store is a
// tc.Store (and tc.EmptyFinisher, tc.Decider) for global and branch
// sessions, LockStore a tc.LockStore for global row locks. Every change
// that depends on the current state is one Lua script, so replicas sharing
// the server never race.
//
// Usage:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	store, err := redisstore.NewStore(rdb, redisstore.Config{Prefix: "gtx:tc:"})
//	if err != nil { ... }
//	locks, err := redisstore.NewLockStore(rdb, redisstore.Config{Prefix: "gtx:tc:"})
//	if err != nil { ... }
//	srv, err := tc.NewServer(cfg, store, locks)
//
// # Session layout
//
// Under the prefix P, a transaction's keys share its XID as hash tag, so on
// a Redis Cluster they live in one slot and each session script runs there:
//
//	P{<xid>}:g   hash: the global session
//	P{<xid>}:b   hash: its branches (per branch ID: fixed part, status, data)
//
// Four cross-session indexes are sorted sets of XIDs, each split into
// Config.Buckets buckets by a hash of the XID; bucket n is P{ix<n>}:<index>,
// one slot of its own, so the indexes spread over a cluster too:
//
//	list      every session, by begin time         (ListGlobals)
//	deadline  sessions in BEGIN, by deadline       (ListTimedOut)
//	due       sessions in phase 2, by next attempt (ClaimDue)
//	done      finished sessions, by update time    (DeleteFinished)
//
// A session and its index entries live in different slots, so no script
// can change both. The indexes are therefore hints that the session hash
// overrules: a change of status adds the session to its new index before
// the script and again after it, then removes it from the old one; readers
// check every entry against the session in the session's own slot (a claim
// is one script there, so no session goes to two owners) and repair entries
// that are stale, removing before they re-read, so a concurrent change is
// never undone. On a single server the index writes and the script go out
// as one pipeline. A crash between two steps leaves at worst a stale entry,
// which the next scan repairs; the window in which a crash and a concurrent
// repair together could drop a phase-2 session from the due index is the
// few microseconds between a status script and the write after it.
//
// ClaimDue finds only sessions in tcv1.Phase2Statuses(), the ones the due index
// holds.
//
// # Lock layout
//
// The row locks of one table of one resource share a hash tag, and with it
// a slot, together with each transaction's set of the keys it holds there;
// the transaction's slot lists the tables it holds locks in:
//
//	P{lk<len>:<resource><len>:<table>}r:<pk>     hash {x: xid, b: branch}
//	P{lk<len>:<resource><len>:<table>}x:<xid>    set of the xid's row keys there
//	P{<xid>}:lockgroups                          set of the xid's lock groups
//	P{lh<n>}:holders                             XIDs holding locks, 8 buckets
//
// Taking the locks of one table is one script: all of them or none. A call
// spanning tables runs one script per table (on one server in one
// pipeline) and, when one meets a lock held by another transaction, gives
// back what the others took in that call, so the call takes all or none;
// in between, a concurrent caller may meet one of those locks and be told
// it is held. The list of tables is written before the locks, so a release
// always finds them, and kept for a day after the global release, for a
// late registration racing with it. The holders index, written with the
// list and cleared by the global release, lets the coordinator find locks
// that outlived their transaction (tc.LockHolderLister). Every script touches one slot (a test checks this
// with the cluster's hash function), so both stores run on a Redis Cluster.
package redisstore
