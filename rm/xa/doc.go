// Package xa is gtx's XA mode: a database/sql driver that wraps a real one
// (github.com/go-sql-driver/mysql for MySQL and MariaDB,
// github.com/jackc/pgx/v5/stdlib for PostgreSQL) and runs each local
// transaction begun with a context carrying an XID as a branch of that
// global transaction, held by the database itself with its two-phase
// commit: XA START/END/PREPARE/COMMIT/ROLLBACK on MySQL and MariaDB,
// PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED on PostgreSQL.
//
// Opening the database is the one line that changes, as with AT:
//
//	cfg := xa.DefaultConfig()
//	cfg.DriverName, cfg.DSN = "mysql", dsn // or "pgx"
//	cfg.Manager = rmManager                // *rm.Manager: registers branches, runs phase 2
//	cfg.Status = coordinator               // tcv1.CoordinatorClient: decisions for recovery
//	db, err := xa.Open(cfg)                // was sql.Open("mysql", dsn)
//
// or, after xa.SetDefaults(cfg), sql.Open(xa.DriverMySQL, dsn) and
// sql.Open(xa.DriverPostgres, dsn); package xagorm does the same for gorm.
//
// A transaction begun with an XID in its context registers an XA branch
// with the coordinator, then starts the database's XA transaction under an
// XA identifier made of the global XID, the branch ID and a tag of the
// resource (see below). Its statements run untouched: XA needs no parsing,
// no images and no undo log, and takes no global row locks; the database
// keeps its own row locks until phase 2. Commit prepares the branch (XA END
// and XA PREPARE, or PREPARE TRANSACTION), Rollback rolls it back and
// reports the failed phase 1. Phase 2 comes from the coordinator over the
// rm.Manager's Attach stream and runs XA COMMIT / XA ROLLBACK (COMMIT
// PREPARED / ROLLBACK PREPARED) on the resource's own connection pool, not
// on the connection that prepared: MariaDB keeps a prepared branch bound to
// its session until that session ends, so the driver closes a MySQL
// connection once it has prepared; PostgreSQL detaches it at once.
// Statements run outside a transaction with an XID in their context run in
// a branch of their own, prepared when they return.
//
// # Identifiers
//
// MySQL and MariaDB: gtrid is the global XID (at most 64 bytes, which the
// coordinator's numeric XIDs are far within; a longer XID is refused with
// ErrXIDTooLong), bqual is "<tag>:<branch ID>", formatID is FormatID.
// PostgreSQL: the GID is "gtx:<tag>:<branch ID>:<XID>", at most 161 of the
// 199 bytes PostgreSQL takes. The tag is 8 hex digits of a hash of the
// resource ID, so that resources sharing one MySQL server (whose prepared
// list is server-wide) recover only their own branches.
//
// # Phase 2 and recovery
//
// A commit or rollback command for a branch the database does not hold
// prepared answers success: the branch was finished by an earlier delivery,
// or (rollback) never prepared. A MySQL branch still bound to the session
// that prepared it (listed by XA RECOVER but refused by XA COMMIT) answers
// a retryable failure.
//
// Every resource runs a recovery loop (Config.Recover): at start and then
// every Interval it lists its prepared branches (XA RECOVER,
// pg_prepared_xacts) and asks the coordinator for each one's global status:
// a decided commit is committed, a decided rollback rolled back, a
// transaction still in BEGIN left to its TM, and a branch whose global
// transaction the coordinator does not know is rolled back once it has been
// seen unknown for UnknownGrace. So a resource manager that restarts
// resolves what it prepared before it died, also for transactions the
// coordinator finished (a rollback that found the branch not yet prepared).
// # Three-phase commit
//
// A branch begun with a context marked by gtx.WithThreePhase (tm.ThreePhase
// does it) is precommitted once prepared: its identifier carries the mark
// (FormatIDThreePhase, GID prefix "gtx3:"), and the recovery loop commits
// it alone once no coordinator has answered for it for
// Recover.PreCommitTimeout, as three-phase commit prescribes. That is unsafe
// when the network splits: a later rollback command for such a branch
// answers ErrHeuristicCommit, unretryable, so the transaction ends
// ROLLBACK_FAILED for an operator.
//
// See docs/consistency.md for what XA blocks and locks, and what a crash in
// each phase does.
package xa
