package sqlstore

import (
	"errors"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrDuplicateBranch is returned by AddBranch for a branch ID its global
	// transaction already has.
	ErrDuplicateBranch = errors.New("sqlstore: branch already exists")
	// ErrInvalidInput is returned for arguments the store refuses before
	// touching the database: a malformed XID, a negative limit, a value
	// longer than its column. Nothing is changed.
	ErrInvalidInput = errors.New("sqlstore: invalid input")
)

// isDuplicateKey reports whether err is a unique-key violation, whichever
// of the three drivers raised it.
func isDuplicateKey(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062 // ER_DUP_ENTRY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" // unique_violation
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}

// isTransient reports whether err is a transaction the database aborted
// because of contention (a deadlock, a serialization failure, a lock wait
// that timed out, a row changed since the snapshot, a busy SQLite file);
// running it again may succeed.
func isTransient(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, and ER_CHECKREAD: with
		// innodb_snapshot_isolation (MariaDB 11.6's default), a row changed
		// since the transaction's snapshot cannot be updated in it.
		return me.Number == 1213 || me.Number == 1205 || me.Number == 1020
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40P01" || pe.Code == "40001" // deadlock_detected, serialization_failure
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return false
}
