// Package sqlstore keeps the coordinator's global sessions, branch sessions
// and global row locks in a SQL database through gorm: SQLite (pure Go, the
// embedded default), MySQL/MariaDB or PostgreSQL. A *Store is both a
// tc.Store and a tc.LockStore, and passes the conformance suites of package
// storetest on all three.
//
//	s, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: "/var/lib/gtx/tc.db"})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Open creates the schema; New wraps a *gorm.DB the caller owns, and Migrate
// creates the schema on it.
//
// # Several coordinators, one database
//
// Every change that depends on the current state is decided by the database
// itself, so coordinator replicas may share one MySQL or PostgreSQL database:
//
//   - UpdateGlobal is one UPDATE ... WHERE xid = ? AND status IN (...);
//     only when it matches no row does it read the row, to tell an unknown
//     XID (tc.ErrNotFound) from a *tc.StatusError with the status found.
//   - AddBranch counts the branch in the global row with a conditional
//     UPDATE (status BEGIN, deadline not passed) and inserts it, in one
//     transaction; the UPDATE locks the global row, so a branch never slips
//     in after phase 2 read the branch list, and the one conditional
//     UPDATE of FinishEmpty (branch_count = 0) or of Decide (branch_count =
//     the branches the coordinator read) sees every branch.
//   - ClaimDue selects candidates, then takes them with one UPDATE that
//     repeats the whole claim condition, and returns the rows the owner holds
//     afterwards: a session is never handed to two owners.
//   - AcquireLocks reads the rows of the requested keys, fails with a
//     *tc.LockConflictError when another transaction holds one, and inserts
//     the missing ones in batches, all in one transaction. A racing inserter
//     surfaces as a duplicate primary key; the transaction rolls back and
//     runs again, and then reports the racer as the holder. Deadlocks and
//     serialization failures are retried the same way, a bounded number of
//     times.
//   - AddBranchLocked is AcquireLocks and AddBranch in one transaction: it
//     reads the keys and refuses a conflict, counts the branch with
//     AddBranch's conditional UPDATE (refusing a session not in BEGIN or
//     past its deadline), and only then inserts locks and branch.
//
// # Group commit
//
// The writes of the coordinator's hot path (CreateGlobal, AddBranch,
// AddBranchLocked, UpdateGlobal, Decide, FinishEmpty, UpdateBranch,
// AcquireLocks and the lock releases) are batched: a caller that finds a
// write lane free runs the oldest writes queued (up to Config.MaxBatch) in
// one transaction with one COMMIT, so that under load many writes share one
// journal flush. A write that finds its answer by reading before it writes
// (a status conflict, a lock held by another transaction) leaves its batch
// going; any other failure rolls the batch back and runs its writes again
// one by one, so a write never commits or fails because of another. With no
// other writer waiting, a write runs alone exactly as it would without
// batching. Config.MaxBatch bounds a batch (1 turns batching off),
// Config.WriteLanes the batches in flight: one on SQLite, whose file has
// one writer anyway; MaxOpenConns on MySQL and PostgreSQL, so that batches
// form only when every connection is busy writing. On MySQL a batch runs at
// READ COMMITTED, so that each of its writes reads what it would alone;
// with the binary log on, that needs binlog_format ROW or MIXED (under
// STATEMENT every batch fails and its writes run one by one). A batch's
// transaction ends early only when every caller in it has given up.
//
// # SQLite
//
// Open sets, on every connection: journal_mode=WAL; busy_timeout from
// Config.SQLiteBusyTimeout; synchronous from Config.SQLiteSynchronous, NORMAL
// by default, which in WAL mode keeps every commit through a crash of the
// process but may lose the last ones on a power loss or operating-system
// crash (choose SyncFull to survive those too, at the cost of an fsync per
// commit); and immediate transactions. The pool holds a single connection,
// so the process's concurrent callers queue for it instead of failing with
// SQLITE_BUSY; another process on the same file waits up to the busy
// timeout.
//
// A COMMIT that still fails with SQLITE_BUSY (more likely in
// rollback-journal mode, with a *gorm.DB given to New, while another
// connection reads) leaves SQLite's transaction open on its connection, so
// every transaction of the store runs on a connection of its own, which
// after a failed COMMIT is sent ROLLBACK, or closed when that fails, before
// the pool hands it out again. Nothing of the failed COMMIT is kept, and
// its writes run again like any other contention.
//
// # Schema
//
// Times are BIGINT microseconds since the Unix epoch, UTC (0 is the zero
// time): they compare and index the same in every dialect, and need no
// time-zone or parseTime setting in the DSN. Statuses and types are the
// numbers of the tc/v1 protocol enums. On MySQL the tables are InnoDB,
// utf8mb4 with binary collation, so XIDs and locked keys compare byte for
// byte.
//
//	gtx_global_sessions      one row per global transaction
//	  xid           varchar(128)  primary key
//	  name          varchar(255)
//	  application   varchar(255)
//	  status        int           tcv1.GlobalStatus
//	  timeout_ms    bigint
//	  begin_time    bigint
//	  deadline      bigint        begin_time + timeout, for ListTimedOut
//	  update_time   bigint        set by every change, for DeleteFinished
//	  attempts      bigint
//	  next_attempt  bigint
//	  last_error    text
//	  owner         varchar(255)  replica holding the phase-2 lease, or ''
//	  lease_until   bigint
//	  version       bigint        incremented by every change
//	  index (status, next_attempt), (status, deadline),
//	        (status, update_time), (begin_time)
//
//	gtx_branch_sessions      one row per branch
//	  xid               varchar(128)  primary key (xid, branch_id)
//	  branch_id         bigint
//	  branch_type       int           tcv1.BranchType
//	  resource_id       varchar(255)
//	  lock_keys         mediumtext / text
//	  application_data  mediumblob / bytea / blob, byte for byte
//	  status            int           tcv1.BranchStatus
//	  create_time       bigint        branches are listed by it, oldest first
//
//	gtx_row_locks            one row per held global row lock
//	  resource_id  varchar(255)  primary key (resource_id, table_name, pk)
//	  table_name   varchar(128)
//	  pk           varchar(255)
//	  xid          varchar(128)
//	  branch_id    bigint
//	  create_time  bigint
//	  index (xid, branch_id)
//
// Values longer than their columns are refused with ErrInvalidInput (lock
// keys with tc.ErrInvalidLockKeys) before anything is written, so every
// dialect refuses the same input.
package sqlstore
