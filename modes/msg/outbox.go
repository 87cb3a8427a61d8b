package msg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// DefaultOutboxTable is the outbox table unless OutboxConfig.Table says
// otherwise.
const DefaultOutboxTable = "gtx_msg_outbox"

// ErrNoTransaction means Outbox.Write was called with a context that
// carries no XID: an outbox event belongs to a branch of a global
// transaction.
var ErrNoTransaction = errors.New("msg: outbox write outside a global transaction")

// OutboxConfig configures an Outbox. Start from DefaultOutboxConfig.
type OutboxConfig struct {
	// Dialect is the database's dialect.
	Dialect Dialect
	// Table is the outbox table; it is created when missing.
	Table string
	// Resource is the resource ID of the outbox's MSG branches, announced
	// by the resource manager; name the database ("outbox:orders").
	Resource string
}

// DefaultOutboxConfig uses the table gtx_msg_outbox; set Dialect and
// Resource.
func DefaultOutboxConfig() OutboxConfig {
	return OutboxConfig{Table: DefaultOutboxTable}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *OutboxConfig) Validate() error {
	if err := validDialect(c.Dialect); err != nil {
		return err
	}
	if err := validTable(c.Table); err != nil {
		return err
	}
	if c.Resource == "" || c.Resource == tcv1.MessageResource || len(c.Resource) > 255 {
		return fmt.Errorf("%w: Resource %q must be 1 to 255 bytes and not %q; name the outbox's database", ErrInvalidConfig, c.Resource, tcv1.MessageResource)
	}
	return nil
}

// Outbox publishes events written in a branch's local transaction (an AT
// branch's, a TCC Try's) when the global transaction commits, and never
// when it rolls back. Write registers the event as a MSG branch of the
// global transaction, with the message as its data, and inserts the
// branch's row in the local transaction. In phase 2 the resource manager
// runs the outbox: a commit delivers the message (through the Courier,
// under the message ID tcv1.MessageID) if the row is there, that is if
// the local transaction committed, and deletes the row; a rollback deletes
// the row. The local transaction of a Write must end before the global
// transaction is committed, as any branch's does.
//
// An Outbox is the handler of the MSG branch type of its rm.Manager: one
// per Manager. It is safe for concurrent use.
type Outbox struct {
	db      *sql.DB
	rm      *rm.Manager
	courier *Courier
	cfg     OutboxConfig
	insert  string
	exists  string
	remove  string
	now     func() time.Time
}

// NewOutbox opens the outbox in db, creates its table when missing, and
// makes it m's handler of MSG branches on cfg.Resource; call it before
// m.Start. courier delivers the events.
func NewOutbox(ctx context.Context, db *sql.DB, m *rm.Manager, courier *Courier, cfg OutboxConfig) (*Outbox, error) {
	if db == nil || m == nil || courier == nil {
		return nil, fmt.Errorf("%w: a database, a resource manager and a courier are required", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.Table
	create := "CREATE TABLE IF NOT EXISTS " + t + ` (
	xid VARCHAR(128) NOT NULL,
	branch_id BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (xid, branch_id)
)`
	if cfg.Dialect == MySQL {
		create += " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
	}
	if _, err := db.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("msg: create outbox table %s: %w", t, err)
	}
	o := &Outbox{
		db: db, rm: m, courier: courier, cfg: cfg, now: time.Now,
		insert: placeholders(cfg.Dialect, "INSERT INTO "+t+" (xid, branch_id, created_at) VALUES (?, ?, ?)"),
		exists: placeholders(cfg.Dialect, "SELECT COUNT(*) FROM "+t+" WHERE xid = ? AND branch_id = ?"),
		remove: placeholders(cfg.Dialect, "DELETE FROM "+t+" WHERE xid = ? AND branch_id = ?"),
	}
	if err := m.AddResource(cfg.Resource, tcv1.BranchType_MSG); err != nil {
		return nil, fmt.Errorf("msg: announce outbox resource %s: %w", cfg.Resource, err)
	}
	m.Handle(tcv1.BranchType_MSG, o)
	return o, nil
}

// Write records m in tx, the local transaction of a branch of the global
// transaction ctx carries, to be published when that transaction commits.
// It fails with ErrNoTransaction outside a global transaction and with
// ErrInvalidMessage for a bad message, registering nothing.
func (o *Outbox) Write(ctx context.Context, tx *sql.Tx, m Message) error {
	xid, ok := gtx.XIDFromContext(ctx)
	if !ok {
		return ErrNoTransaction
	}
	if err := m.validate(); err != nil {
		return err
	}
	data, err := m.encode("")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	branchID, err := o.rm.RegisterBranch(ctx, xid, tcv1.BranchType_MSG, o.cfg.Resource, "", data, rm.AsyncCommit())
	if err != nil {
		return fmt.Errorf("msg: register outbox event of %s: %w", xid, err)
	}
	if _, err := tx.ExecContext(ctx, o.insert, xid, branchID, o.now().UnixMilli()); err != nil {
		return fmt.Errorf("msg: insert outbox row of %s: %w", xid, err)
	}
	return nil
}

// Commit implements rm.Handler: it delivers the event if its local
// transaction committed, then deletes its row.
func (o *Outbox) Commit(ctx context.Context, b rm.Branch) error {
	var n int
	if err := o.db.QueryRowContext(ctx, o.exists, b.XID, b.BranchID).Scan(&n); err != nil {
		return fmt.Errorf("msg: read outbox row of %s: %w", b.XID, err)
	}
	if n == 0 {
		// Its local transaction rolled back, or the event went out and
		// its row was deleted by an earlier delivery of this command.
		return nil
	}
	if err := o.courier.Deliver(ctx, b.XID, b.BranchID, b.ApplicationData); err != nil {
		if errors.Is(err, ErrInvalidMessage) {
			return rm.Unretryable(err)
		}
		return err
	}
	if _, err := o.db.ExecContext(ctx, o.remove, b.XID, b.BranchID); err != nil {
		return fmt.Errorf("msg: delete outbox row of %s: %w", b.XID, err)
	}
	return nil
}

// Rollback implements rm.Handler: the event is never published.
func (o *Outbox) Rollback(ctx context.Context, b rm.Branch) error {
	if _, err := o.db.ExecContext(ctx, o.remove, b.XID, b.BranchID); err != nil {
		return fmt.Errorf("msg: delete outbox row of %s: %w", b.XID, err)
	}
	return nil
}
