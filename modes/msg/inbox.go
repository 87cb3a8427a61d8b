package msg

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DefaultInboxTable is the inbox table unless InboxConfig.Table says
// otherwise.
const DefaultInboxTable = "gtx_msg_inbox"

// MaxMessageID bounds the message IDs an inbox takes.
const MaxMessageID = 255

// InboxConfig configures an Inbox. Start from DefaultInboxConfig.
type InboxConfig struct {
	// Dialect is the database's dialect.
	Dialect Dialect
	// Table is the inbox table; it is created when missing.
	Table string
}

// DefaultInboxConfig uses the table gtx_msg_inbox; set Dialect.
func DefaultInboxConfig() InboxConfig {
	return InboxConfig{Table: DefaultInboxTable}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *InboxConfig) Validate() error {
	if err := validDialect(c.Dialect); err != nil {
		return err
	}
	return validTable(c.Table)
}

// Inbox is a consumer's fence against applying a message twice: one row
// per message ID, inserted in the same local transaction as the message's
// effects, so a message delivered again (delivery is at least once) finds
// its row and changes nothing. It is safe for concurrent use; two
// deliveries of one message applied at once serialize on the row.
type Inbox struct {
	db     *sql.DB
	insert string
	clean  string
	now    func() time.Time
}

// OpenInbox opens the inbox in db, a database/sql pool of cfg.Dialect, and
// creates its table when missing.
func OpenInbox(ctx context.Context, db *sql.DB, cfg InboxConfig) (*Inbox, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.Table
	in := &Inbox{db: db, now: time.Now}
	create := []string{"CREATE TABLE IF NOT EXISTS " + t + ` (
	id VARCHAR(255) NOT NULL PRIMARY KEY,
	created_at BIGINT NOT NULL
)`, "CREATE INDEX IF NOT EXISTS " + t + "_created_at ON " + t + " (created_at)"}
	cols := " (id, created_at) VALUES (?, ?)"
	switch cfg.Dialect {
	case MySQL:
		create = []string{"CREATE TABLE IF NOT EXISTS " + t + ` (
	id VARCHAR(255) NOT NULL PRIMARY KEY,
	created_at BIGINT NOT NULL,
	KEY ` + t + `_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`}
		in.insert = "INSERT IGNORE INTO " + t + cols
		in.clean = "DELETE FROM " + t + " WHERE created_at < ? LIMIT ?"
	case Postgres:
		in.insert = "INSERT INTO " + t + cols + " ON CONFLICT DO NOTHING"
		in.clean = "DELETE FROM " + t + " WHERE id IN (SELECT id FROM " + t + " WHERE created_at < ? LIMIT ?)"
	case SQLite:
		in.insert = "INSERT OR IGNORE INTO " + t + cols
		in.clean = "DELETE FROM " + t + " WHERE id IN (SELECT id FROM " + t + " WHERE created_at < ? LIMIT ?)"
	}
	in.insert = placeholders(cfg.Dialect, in.insert)
	in.clean = placeholders(cfg.Dialect, in.clean)
	for _, stmt := range create {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("msg: create inbox table %s: %w", t, err)
		}
	}
	return in, nil
}

// DB returns the database the inbox is in.
func (in *Inbox) DB() *sql.DB { return in.db }

// Apply runs fn in a new local transaction together with the row of
// message id and commits both, reporting true; when the row exists
// already (the message was applied before) it runs nothing and reports
// false. An error from fn rolls everything back and is returned as is. An
// error from the commit leaves unknown whether the message was applied:
// deliver it again, and Apply tells.
func (in *Inbox) Apply(ctx context.Context, id string, fn func(ctx context.Context, tx *sql.Tx) error) (bool, error) {
	if id == "" || len(id) > MaxMessageID {
		return false, fmt.Errorf("%w: message ID must be 1 to %d bytes long, got %d", ErrInvalidMessage, MaxMessageID, len(id))
	}
	tx, err := in.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("msg: begin the inbox transaction of %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, in.insert, id, in.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("msg: insert inbox row of %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("msg: insert inbox row of %s: %w", id, err)
	}
	if n == 0 {
		return false, nil
	}
	if err := fn(ctx, tx); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("msg: commit the inbox transaction of %s: %w", id, err)
	}
	return true, nil
}

// Clean deletes at most limit rows created before before and returns how
// many it deleted. Keep rows longer than any redelivery can come: a message
// delivered again after its row was cleaned is applied again.
func (in *Inbox) Clean(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("%w: clean limit must be positive, got %d", ErrInvalidConfig, limit)
	}
	res, err := in.db.ExecContext(ctx, in.clean, before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("msg: clean inbox: %w", err)
	}
	return res.RowsAffected()
}
