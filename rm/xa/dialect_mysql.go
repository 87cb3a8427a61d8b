package xa

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
)

// MySQL returns the dialect of MySQL 5.7+ and MariaDB 10.5+ (whose
// prepared XA transactions survive the session that prepared them), through
// github.com/go-sql-driver/mysql.
func MySQL() Dialect { return mysqlDialect{} }

type mysqlDialect struct{}

// MySQL error numbers.
const (
	errXAERNota = 1397 // XAER_NOTA: unknown XID
)

func (mysqlDialect) Name() string { return "mysql" }

func (mysqlDialect) check(b branchXID) error {
	if len(b.xid) > mysqlMaxGtrid {
		return fmt.Errorf("%w: %s is %d bytes long, MySQL's gtrid holds %d", ErrXIDTooLong, b.xid, len(b.xid), mysqlMaxGtrid)
	}
	return nil
}

func (mysqlDialect) begin(ctx context.Context, c driver.Conn, b branchXID, opts driver.TxOptions) error {
	level, err := isolation(opts)
	if err != nil {
		return err
	}
	var set string
	switch {
	case level != "" && opts.ReadOnly:
		set = "SET TRANSACTION ISOLATION LEVEL " + level + ", READ ONLY"
	case level != "":
		set = "SET TRANSACTION ISOLATION LEVEL " + level
	case opts.ReadOnly:
		set = "SET TRANSACTION READ ONLY"
	}
	if set != "" {
		if err := exec(ctx, c, set); err != nil {
			return err
		}
	}
	return exec(ctx, c, "XA START "+b.mysql())
}

func (mysqlDialect) prepare(ctx context.Context, c driver.Conn, b branchXID) error {
	if err := exec(ctx, c, "XA END "+b.mysql()); err != nil {
		return err
	}
	return exec(ctx, c, "XA PREPARE "+b.mysql())
}

func (mysqlDialect) rollbackActive(ctx context.Context, c driver.Conn, b branchXID) error {
	// XA END fails on a branch the server rolled back already (a deadlock
	// victim); XA ROLLBACK then still ends it.
	endErr := exec(ctx, c, "XA END "+b.mysql())
	if err := exec(ctx, c, "XA ROLLBACK "+b.mysql()); err != nil {
		return errors.Join(endErr, err)
	}
	return nil
}

func (mysqlDialect) detachesOnPrepare() bool { return false }

func (d mysqlDialect) commitPrepared(ctx context.Context, db *sql.DB, b branchXID) error {
	return d.finish(ctx, db, "XA COMMIT ", b)
}

func (d mysqlDialect) rollbackPrepared(ctx context.Context, db *sql.DB, b branchXID) error {
	return d.finish(ctx, db, "XA ROLLBACK ", b)
}

func (d mysqlDialect) finish(ctx context.Context, db *sql.DB, stmt string, b branchXID) error {
	_, err := db.ExecContext(ctx, stmt+b.mysql())
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != errXAERNota {
		return err
	}
	// Unknown to XA COMMIT, but a branch still bound to the session that
	// prepared it is listed by XA RECOVER: that session is closing.
	listed, lerr := d.listPrepared(ctx, db, b.tag)
	if lerr != nil {
		return fmt.Errorf("xa: %s answered XAER_NOTA and listing prepared branches failed: %w", b, lerr)
	}
	for _, p := range listed {
		if p == b {
			return fmt.Errorf("xa: branch %s is prepared but still bound to the session that prepared it; retry", b)
		}
	}
	return errNotPrepared
}

func (mysqlDialect) listPrepared(ctx context.Context, db *sql.DB, tag string) ([]branchXID, error) {
	rows, err := db.QueryContext(ctx, "XA RECOVER")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []branchXID
	for rows.Next() {
		var formatID int64
		var gl, bl int
		var data []byte
		if err := rows.Scan(&formatID, &gl, &bl, &data); err != nil {
			return nil, err
		}
		if b, ok := parseMySQLXID(formatID, gl, bl, data); ok && b.tag == tag {
			out = append(out, b)
		}
	}
	return out, rows.Err()
}
