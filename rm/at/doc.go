// Package at is gtx's AT mode: a database/sql driver that wraps a real one
// (github.com/go-sql-driver/mysql for MySQL and MariaDB,
// github.com/glebarez/go-sqlite for SQLite) and turns local transactions run
// with a context carrying an XID into branches of that global transaction.
//
// Opening the database is the one line that changes:
//
//	cfg := at.DefaultConfig()
//	cfg.DriverName, cfg.DSN = "mysql", dsn
//	cfg.Manager = rmManager     // *rm.Manager: registers branches, runs phase 2
//	cfg.Locks = coordinator     // tcv1.CoordinatorClient: global lock queries
//	db, err := at.Open(cfg)     // was sql.Open("mysql", dsn)
//	err = at.Migrate(ctx, db, nil, "")  // once: the undo table, dialect and name from db
//
// or, after at.SetDefaults(cfg), sql.Open(at.DriverMySQL, dsn) and
// sql.Open(at.DriverSQLite, path); package atgorm does the same for gorm.
//
// Inside tm.WithGlobalTx (or any context with gtx.ContextWithXID), each
// INSERT, UPDATE and DELETE is parsed (TiDB's parser), its rows are read
// before (SELECT ... FOR UPDATE by the statement's own WHERE) and after (by
// primary key), and at local commit the branch is registered with the
// coordinator together with the global row locks of those rows, the undo
// log is written in the same local transaction, and the local transaction
// commits. Phase 2 commit deletes the undo log in the background; phase 2
// rollback puts the rows back, unless a row was changed from outside the
// global transaction since: then it stops, changes nothing and reports the
// rows (ErrDirtyWrite).
//
// Statements that cannot be undone safely (REPLACE, INSERT ... SELECT, DDL,
// writes to a table without a primary key) are refused in a global
// transaction with ErrRefused; outside one, the driver passes everything
// through untouched. See docs/at.md for the supported SQL, the lock policy
// and how dirty writes are detected.
//
// Dialects: MySQL() and SQLite() are built in; PostgreSQL, through pgx's
// driver, is in package atpg (libpg_query, cgo), which plugs in with
// RegisterDialect and ExtendedDialect, its own parser producing the same
// Statement form.
package at
