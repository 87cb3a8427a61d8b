// Package idgen makes Snowflake-style 64-bit IDs, the XIDs and branch IDs of
// gtx: positive int64 values, unique across processes, ordered by time, made
// without a lock and never repeated inside a process, whatever the wall clock
// does.
//
// # Layout
//
// From the most significant bit: 1 sign bit (always 0), 41 bits of
// milliseconds since an epoch (by default 2026-01-01 UTC, good until
// 2095), 10 bits of node ID (0 to 1023), 12 bits of sequence within the
// millisecond (0 to 4095). Parse splits an ID into Parts; Compose builds one.
//
// # Usage
//
// With a node ID from configuration:
//
//	cfg := idgen.DefaultConfig()
//	cfg.NodeID = 7 // unique among the live processes of the ID space
//	g, err := idgen.New(cfg)
//	if err != nil {
//		return err
//	}
//	id := g.Next()
//
// With a node ID leased from Redis (or a database, see SQLLeaser):
//
//	leaser, err := idgen.NewRedisLeaser(rdb, idgen.DefaultRedisLeaserConfig())
//	...
//	lease, err := idgen.Acquire(ctx, leaser, idgen.DefaultLeaseConfig())
//	...
//	defer lease.Close(ctx)
//	g, err := idgen.NewLeased(idgen.DefaultConfig(), lease)
//	...
//	id, err := g.NextID() // fails with ErrLeaseLost once the lease is gone
//
// # Generation
//
// The generator keeps the last ID's millisecond and sequence packed in one
// uint64 and advances it with compare-and-swap: the next state is the
// current millisecond with sequence 0 if the clock has moved past the state,
// and the state plus one otherwise. There is no mutex; goroutines that lose a
// race retry with the fresh state. Every ID a generator returns is larger
// than every ID it returned before.
//
// # Time: a monotonic-clock epoch, with bounded borrowing
//
// The generator reads the clock once in New, taking the wall-clock time as
// its start, and from then on measures time as the start plus the elapsed
// time on Go's monotonic clock (time.Since). Wall-clock steps while the
// process runs (an NTP step, an operator, a VM that resumes) do not move it
// at all, so the classic Snowflake failure, a clock stepping backwards into
// milliseconds already used, cannot happen. Because the state only ever
// advances, even a clock that does step back (an injected Config.Clock) only
// makes the generator stand still on its last millisecond.
//
// When the 4096 sequence numbers of a millisecond are used up, the sequence
// carries into the next millisecond before the clock gets there: it borrows
// future time, as Seata's IdWorker does. IdWorker (since Seata 1.4) reads
// the clock only at start and from then on advances its timestamp only on
// overflow, so its IDs' times lag real time while it is idle and can run
// ahead of it, with no bound, under sustained load. Here the clock is read on
// every call, so an ID's time is when it was made, and borrowing is bounded:
// the state may run at most Config.MaxBorrow (default 100ms) ahead of the
// clock; past that, NextID sleeps until the clock catches up, for at most
// Config.MaxWait (default 1 s): further behind (a clock stepped back, or a
// node's previous holder ahead, below) it returns ErrClockBehind at once
// rather than block for as long as the clock is behind. So bursts of up
// to about MaxBorrow × 4096 IDs (409,600 by default) never wait, a node's
// sustained rate is at most 4,096,000 IDs per second, and an ID's time is
// never more than MaxBorrow ahead of when it was made. MaxBorrow = 0 waits for
// the next millisecond instead of borrowing.
//
// # Restarts and clock jumps
//
// The monotonic clock does not survive a restart: a new process takes its
// start from the wall clock again. Its IDs cannot repeat those of an earlier
// process with the same node ID as long as its wall clock at start is later
// than that process's last ID, that is, unless the wall clock stepped back
// across the restart by more than the downtime minus MaxBorrow. Between
// hosts that take over each other's node IDs the same holds for their clock
// skew, so keep hosts synchronised (NTP skew is milliseconds; a node lease
// frees a crashed holder's node only after its TTL, 10s by default, and
// Lease.Close waits out the borrowed time before it releases the node). A
// wall clock that jumps forward before a restart only makes the new IDs'
// times run ahead; nothing repeats.
//
// # Leased node IDs
//
// Two processes with the same node ID would repeat IDs. With fixed node IDs
// the operator guarantees they differ; a Leaser does it through a shared
// store instead: RedisLeaser (SET NX PX on "prefix:node:N", renewal by a
// compare-and-pexpire script, release by compare-and-delete) or SQLLeaser
// (table gtx_idgen_nodes on SQLite, MySQL/MariaDB or PostgreSQL, expiry by
// the database's clock). Acquire claims a free node, or fails with
// ErrNoFreeNode when the whole range is held, and starts a goroutine owned by
// the Lease that renews it every RenewInterval; Close stops that goroutine,
// waits for it and releases the node.
//
// A lease counts as held only until 90% of the TTL after the start of the
// last renewal that succeeded. The store starts its TTL later than that
// start, so the local deadline always ends first. A generator on the lease
// checks this deadline on every call, after taking the ID and before handing
// it out, so it hands out no ID from the moment the node may belong to
// someone else: when the store says the lease is
// taken (ErrLeaseLost), when renewals keep failing until the deadline passes
// (ErrLeaseLost, "not renewed"), or after Close (ErrLeaseClosed). A lease that
// ended never comes back: acquire a new lease and build a new generator.
// NewLeased requires MaxBorrow under a tenth of the TTL.
//
// A node's store also keeps its high mark: the highest ID time (Unix ms) its
// holders may have issued. Each claim and renewal raises it to the ID time
// the lease may reach before its next renewal (the later of the clock and
// the generator's last ID, plus 90% of the TTL, plus a tenth of it for
// borrowing), and Close sets it to the last ID's time. A new holder's
// generator starts above the mark, whatever its own clock says, so a node
// whose previous holder's clock ran ahead of this one's does not repeat its
// IDs: the new generator borrows ahead of its clock from the mark and, when
// the mark is more than MaxBorrow + MaxWait ahead, NextID returns
// ErrClockBehind until the clock has caught up. The mark lives as long as
// the store keeps it (a Redis without persistence loses it on a restart).
// Lease.Done and Lease.Err tell the owner when that happens.
//
// # Errors
//
// ErrInvalidConfig, ErrInvalidID, ErrTimeExhausted, ErrNoFreeNode,
// ErrLeaseLost, ErrLeaseClosed and ErrClockBehind are sentinels; the errors returned wrap
// them with details, so test with errors.Is.
package idgen
