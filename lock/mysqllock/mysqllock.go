package mysqllock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/gtx-io/gtx/lock"
)

// Config configures a Backend.
type Config struct {
	// Table is the name of the lock table. Empty means "gtx_locks".
	Table string
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Backend is a lock.Backend on a MySQL or MariaDB table: one row per lock
// name with the holding token, the fencing counter and the expiry, all
// changed by single conditional statements. Expiry is judged by the
// database clock (UTC_TIMESTAMP, whatever the sessions' time zones), so
// clients need no synchronised clocks. Rows stay after release so that
// fences keep growing. It cannot notify waiters: they poll every
// lock.Config.PollInterval (or sooner, when the holder's TTL ends).
type Backend struct {
	db    *sql.DB
	table string

	acquire, insert, remaining, renew, release string
}

var _ lock.Backend = (*Backend)(nil)

// New returns a Backend that keeps locks in the table cfg.Table of db.
// Call CreateTable once to create it.
func New(db *sql.DB, cfg Config) (*Backend, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", lock.ErrInvalidConfig)
	}
	t := cfg.Table
	if t == "" {
		t = "gtx_locks"
	}
	if !tableName.MatchString(t) {
		return nil, fmt.Errorf("%w: table name %q is not a plain identifier", lock.ErrInvalidConfig, t)
	}
	q := "`" + t + "`"
	return &Backend{
		db:    db,
		table: q,
		// Each statement changes a row only when the condition holds;
		// LAST_INSERT_ID(expr) hands the new fence back in the OK packet.
		acquire: "UPDATE " + q + " SET token = ?, fence = LAST_INSERT_ID(fence + 1), expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND" +
			" WHERE name = ? AND (token IS NULL OR expires_at <= UTC_TIMESTAMP(6))",
		insert: "INSERT IGNORE INTO " + q + " (name, token, fence, expires_at) VALUES (?, ?, LAST_INSERT_ID(1), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)",
		remaining: "SELECT GREATEST(0, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at)) FROM " + q +
			" WHERE name = ? AND token IS NOT NULL",
		renew:   "UPDATE " + q + " SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND WHERE name = ? AND token = ? AND expires_at > UTC_TIMESTAMP(6)",
		release: "UPDATE " + q + " SET token = NULL, expires_at = UTC_TIMESTAMP(6) WHERE name = ? AND token = ? AND expires_at > UTC_TIMESTAMP(6)",
	}, nil
}

// CreateTable creates the lock table if it does not exist.
func (b *Backend) CreateTable(ctx context.Context) error {
	_, err := b.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+b.table+` (
	name VARCHAR(191) NOT NULL PRIMARY KEY,
	token VARCHAR(64) NULL,
	fence BIGINT NOT NULL,
	expires_at DATETIME(6) NOT NULL
) ENGINE=InnoDB`)
	if err != nil {
		return fmt.Errorf("mysqllock: create table: %w", err)
	}
	return nil
}

func micros(d time.Duration) int64 { return d.Microseconds() }

// changed runs a statement and returns the rows it changed and the
// LAST_INSERT_ID it set.
func (b *Backend) changed(ctx context.Context, query string, args ...any) (int64, int64, error) {
	res, err := b.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, 0, err
	}
	return n, id, nil
}

// Acquire implements lock.Backend.
func (b *Backend) Acquire(ctx context.Context, name, token string, ttl time.Duration) (lock.Grant, error) {
	n, fence, err := b.changed(ctx, b.acquire, token, micros(ttl), name)
	if err != nil {
		return lock.Grant{}, fmt.Errorf("mysqllock: acquire %q: %w", name, err)
	}
	if n == 1 {
		return lock.Grant{Acquired: true, Fence: fence, Validity: ttl}, nil
	}
	// No free row: the lock is held, or its row does not exist yet.
	n, fence, err = b.changed(ctx, b.insert, name, token, micros(ttl))
	if err != nil {
		return lock.Grant{}, fmt.Errorf("mysqllock: acquire %q: %w", name, err)
	}
	if n == 1 {
		return lock.Grant{Acquired: true, Fence: fence, Validity: ttl}, nil
	}
	var us int64
	err = b.db.QueryRowContext(ctx, b.remaining, name).Scan(&us)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return lock.Grant{}, fmt.Errorf("mysqllock: acquire %q: %w", name, err)
	}
	return lock.Grant{RetryAfter: time.Duration(us) * time.Microsecond}, nil
}

// Renew implements lock.Backend.
func (b *Backend) Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error) {
	n, _, err := b.changed(ctx, b.renew, micros(ttl), name, token)
	if err != nil {
		return 0, fmt.Errorf("mysqllock: renew %q: %w", name, err)
	}
	if n != 1 {
		return 0, lock.ErrNotHeld
	}
	return ttl, nil
}

// Release implements lock.Backend. It cannot see waiters, so it always
// reports contention.
func (b *Backend) Release(ctx context.Context, name, token string) (bool, error) {
	n, _, err := b.changed(ctx, b.release, name, token)
	if err != nil {
		return true, fmt.Errorf("mysqllock: release %q: %w", name, err)
	}
	if n != 1 {
		return true, lock.ErrNotHeld
	}
	return true, nil
}

// Watch implements lock.Backend: MySQL has no notifications, so waiters
// poll.
func (b *Backend) Watch(context.Context, string, string, chan<- struct{}) (func(), error) {
	return func() {}, nil
}
