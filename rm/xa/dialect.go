package xa

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
)

// Dialect is one database's two-phase commit statements. MySQL() (also
// MariaDB) and Postgres() are the ones gtx has; Config.Dialect defaults to
// the one for Config.DriverName.
type Dialect interface {
	// Name names the dialect in logs and errors.
	Name() string

	// check refuses a branch the database cannot name.
	check(b branchXID) error
	// begin starts the branch's local transaction on c.
	begin(ctx context.Context, c driver.Conn, b branchXID, opts driver.TxOptions) error
	// prepare ends the branch's work on c and prepares it.
	prepare(ctx context.Context, c driver.Conn, b branchXID) error
	// rollbackActive rolls back the branch's work on c before it
	// prepared.
	rollbackActive(ctx context.Context, c driver.Conn, b branchXID) error
	// detachesOnPrepare reports whether a prepared branch leaves its
	// session free; when false the session must be closed so that another
	// can finish the branch.
	detachesOnPrepare() bool
	// commitPrepared and rollbackPrepared finish a prepared branch from any
	// session; a branch the database does not hold prepared answers
	// errNotPrepared.
	commitPrepared(ctx context.Context, db *sql.DB, b branchXID) error
	rollbackPrepared(ctx context.Context, db *sql.DB, b branchXID) error
	// listPrepared returns the prepared branches of the resource with tag.
	listPrepared(ctx context.Context, db *sql.DB, tag string) ([]branchXID, error)
}

// errNotPrepared is returned by commitPrepared and rollbackPrepared for a
// branch the database does not hold prepared.
var errNotPrepared = errors.New("xa: the database holds no such prepared branch")

// dialectFor returns the built-in dialect of a driver name, or nil.
func dialectFor(driverName string) Dialect {
	switch driverName {
	case "mysql":
		return MySQL()
	case "pgx":
		return Postgres()
	}
	return nil
}

// exec runs a statement without arguments on a driver connection.
func exec(ctx context.Context, c driver.Conn, query string) error {
	if ec, ok := c.(driver.ExecerContext); ok {
		_, err := ec.ExecContext(ctx, query, nil)
		if !errors.Is(err, driver.ErrSkip) {
			return err
		}
	}
	st, err := c.Prepare(query)
	if err != nil {
		return err
	}
	defer st.Close()
	if se, ok := st.(driver.StmtExecContext); ok {
		_, err = se.ExecContext(ctx, nil)
		return err
	}
	return fmt.Errorf("xa: driver statement %T cannot exec with a context", st)
}

// isolation returns the SQL name of a transaction isolation level, or ""
// for the database's default.
func isolation(opts driver.TxOptions) (string, error) {
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
		return "", nil
	case sql.LevelReadUncommitted:
		return "READ UNCOMMITTED", nil
	case sql.LevelReadCommitted:
		return "READ COMMITTED", nil
	case sql.LevelRepeatableRead:
		return "REPEATABLE READ", nil
	case sql.LevelSerializable:
		return "SERIALIZABLE", nil
	}
	return "", fmt.Errorf("xa: isolation level %v is not supported in an XA branch; use read uncommitted, read committed, repeatable read or serializable", sql.IsolationLevel(opts.Isolation))
}
