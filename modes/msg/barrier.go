package msg

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DefaultBarrierTable is the barrier table unless BarrierConfig.Table says
// otherwise.
const DefaultBarrierTable = "gtx_msg_barrier"

// Outcomes a barrier row records.
const (
	outcomeCommitted  = "committed"
	outcomeRolledBack = "rolledback"
)

// BarrierConfig configures a Barrier. Start from DefaultBarrierConfig.
type BarrierConfig struct {
	// Dialect is the database's dialect.
	Dialect Dialect
	// Table is the barrier table; it is created when missing.
	Table string
}

// DefaultBarrierConfig uses the table gtx_msg_barrier; set Dialect.
func DefaultBarrierConfig() BarrierConfig {
	return BarrierConfig{Table: DefaultBarrierTable}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *BarrierConfig) Validate() error {
	if err := validDialect(c.Dialect); err != nil {
		return err
	}
	return validTable(c.Table)
}

// Barrier is the table in a producer's database that records, per XID,
// whether the local transaction of a two-phase message committed: the
// producer's local transaction inserts "committed" in the same database
// transaction as its business work, and the coordinator's back-check
// (Barrier.Check) inserts "rolledback" when no row is there. Whichever
// insert comes first wins, so the answer to a check is final: a local
// transaction still running when the check comes is refused its commit
// (ErrRolledBack). It is safe for concurrent use.
type Barrier struct {
	db *sql.DB
	d  Dialect
	// insert adds (xid, outcome, created_at) unless a row for xid exists,
	// in which case it affects no row and waits for a concurrent insert of
	// the same xid to end.
	insert string
	// outcome reads the outcome of xid.
	outcome string
	// clean deletes at most a batch of rows created before a time.
	clean string
	now   func() time.Time
}

// OpenBarrier opens the barrier in db, a database/sql pool of cfg.Dialect,
// and creates its table when missing. SQLite databases should be opened
// with immediate transactions ("_txlock=immediate") and a busy timeout.
func OpenBarrier(ctx context.Context, db *sql.DB, cfg BarrierConfig) (*Barrier, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.Table
	b := &Barrier{db: db, d: cfg.Dialect, now: time.Now}
	create := "CREATE TABLE IF NOT EXISTS " + t + ` (
	xid VARCHAR(128) NOT NULL PRIMARY KEY,
	outcome VARCHAR(16) NOT NULL,
	created_at BIGINT NOT NULL
)`
	index := "CREATE INDEX IF NOT EXISTS " + t + "_created_at ON " + t + " (created_at)"
	cols := " (xid, outcome, created_at) VALUES (?, ?, ?)"
	switch cfg.Dialect {
	case MySQL:
		create = "CREATE TABLE IF NOT EXISTS " + t + ` (
	xid VARCHAR(128) NOT NULL PRIMARY KEY,
	outcome VARCHAR(16) NOT NULL,
	created_at BIGINT NOT NULL,
	KEY ` + t + `_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
		index = ""
		b.insert = "INSERT IGNORE INTO " + t + cols
		b.clean = "DELETE FROM " + t + " WHERE created_at < ? LIMIT ?"
	case Postgres:
		b.insert = "INSERT INTO " + t + cols + " ON CONFLICT DO NOTHING"
		b.clean = "DELETE FROM " + t + " WHERE xid IN (SELECT xid FROM " + t + " WHERE created_at < ? LIMIT ?)"
	case SQLite:
		b.insert = "INSERT OR IGNORE INTO " + t + cols
		b.clean = "DELETE FROM " + t + " WHERE xid IN (SELECT xid FROM " + t + " WHERE created_at < ? LIMIT ?)"
	}
	b.outcome = "SELECT outcome FROM " + t + " WHERE xid = ?"
	for _, p := range []*string{&b.insert, &b.outcome, &b.clean} {
		*p = placeholders(cfg.Dialect, *p)
	}
	for _, stmt := range []string{create, index} {
		if stmt == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("msg: create barrier table %s: %w", t, err)
		}
	}
	return b, nil
}

// DB returns the database the barrier is in.
func (b *Barrier) DB() *sql.DB { return b.db }

// Commit records in tx, the local transaction of the two-phase message
// xid, that it commits. It fails with ErrRolledBack when the coordinator's
// check came first: roll tx back then.
func (b *Barrier) Commit(ctx context.Context, tx *sql.Tx, xid string) error {
	res, err := tx.ExecContext(ctx, b.insert, xid, outcomeCommitted, b.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("msg: insert barrier row of %s: %w", xid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("msg: insert barrier row of %s: %w", xid, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrRolledBack, xid)
	}
	return nil
}

// Check answers the coordinator's question about xid: true when its local
// transaction committed. With no row yet it inserts "rolledback", so the
// answer stays true: a local transaction of xid still running is refused
// its commit. A local transaction holding the row uncommitted makes Check
// wait for it.
func (b *Barrier) Check(ctx context.Context, xid string) (bool, error) {
	if _, err := b.db.ExecContext(ctx, b.insert, xid, outcomeRolledBack, b.now().UnixMilli()); err != nil {
		return false, fmt.Errorf("msg: insert barrier row of %s: %w", xid, err)
	}
	var outcome string
	if err := b.db.QueryRowContext(ctx, b.outcome, xid).Scan(&outcome); err != nil {
		return false, fmt.Errorf("msg: read barrier row of %s: %w", xid, err)
	}
	return outcome == outcomeCommitted, nil
}

// Clean deletes at most limit rows created before before and returns how
// many it deleted. A row must outlive every check the coordinator may still
// make for its XID: keep rows for longer than the coordinator's MaxTimeout
// plus the longest the coordinator may be down. A message whose row was
// cleaned too early is answered "not committed" and never delivered.
func (b *Barrier) Clean(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%w: clean limit must be positive, got %d", ErrInvalidConfig, limit)
	}
	res, err := b.db.ExecContext(ctx, b.clean, before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("msg: clean barrier: %w", err)
	}
	return res.RowsAffected()
}
