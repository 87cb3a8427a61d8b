package xa

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// Postgres returns the dialect of PostgreSQL through pgx's database/sql
// driver (github.com/jackc/pgx/v5/stdlib, driver name "pgx"). The server
// must run with max_prepared_transactions above 0 (its default is 0), at
// least as high as the branches it holds prepared at once.
func Postgres() Dialect { return pgDialect{} }

type pgDialect struct{}

// errUndefinedObject is SQLSTATE 42704, which COMMIT PREPARED answers for
// an unknown GID.
const errUndefinedObject = "42704"

func (pgDialect) Name() string { return "postgres" }

func (pgDialect) check(branchXID) error { return nil }

func (pgDialect) begin(ctx context.Context, c driver.Conn, _ branchXID, opts driver.TxOptions) error {
	level, err := isolation(opts)
	if err != nil {
		return err
	}
	q := "BEGIN"
	if level != "" {
		q += " ISOLATION LEVEL " + level
	}
	if opts.ReadOnly {
		q += " READ ONLY"
	}
	return exec(ctx, c, q)
}

// pgxConn is what pgx's database/sql connections provide.
type pgxConn interface{ Conn() *pgx.Conn }

func (pgDialect) prepare(ctx context.Context, c driver.Conn, b branchXID) error {
	// PREPARE TRANSACTION in a transaction a failed statement aborted
	// rolls it back without an error; refuse it here instead.
	pc, ok := c.(pgxConn)
	if !ok {
		return fmt.Errorf("xa: postgres connection %T is not pgx's; open it with driver \"pgx\"", c)
	}
	if pc.Conn().PgConn().TxStatus() == 'E' {
		if err := exec(ctx, c, "ROLLBACK"); err != nil {
			return err
		}
		return fmt.Errorf("%w: a statement of branch %s failed, so the transaction was aborted and is rolled back", ErrAborted, b)
	}
	return exec(ctx, c, "PREPARE TRANSACTION '"+b.gid()+"'")
}

func (pgDialect) rollbackActive(ctx context.Context, c driver.Conn, _ branchXID) error {
	return exec(ctx, c, "ROLLBACK")
}

func (pgDialect) detachesOnPrepare() bool { return true }

func (d pgDialect) commitPrepared(ctx context.Context, db *sql.DB, b branchXID) error {
	return d.finish(ctx, db, "COMMIT PREPARED ", b)
}

func (d pgDialect) rollbackPrepared(ctx context.Context, db *sql.DB, b branchXID) error {
	return d.finish(ctx, db, "ROLLBACK PREPARED ", b)
}

func (pgDialect) finish(ctx context.Context, db *sql.DB, stmt string, b branchXID) error {
	_, err := db.ExecContext(ctx, stmt+"'"+b.gid()+"'")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == errUndefinedObject {
		return errNotPrepared
	}
	return err
}

func (pgDialect) listPrepared(ctx context.Context, db *sql.DB, tag string) ([]branchXID, error) {
	rows, err := db.QueryContext(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND (starts_with(gid, $1) OR starts_with(gid, $2))", "gtx:"+tag+":", "gtx3:"+tag+":")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []branchXID
	for rows.Next() {
		var gid string
		if err := rows.Scan(&gid); err != nil {
			return nil, err
		}
		if b, ok := parseGID(gid); ok && b.tag == tag {
			out = append(out, b)
		}
	}
	return out, rows.Err()
}
