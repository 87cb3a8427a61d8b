package tcc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/gtx-io/gtx"
)

// FenceStatus is the state of a branch's fence row.
type FenceStatus string

// Fence row states.
const (
	// FenceNone means there is no row.
	FenceNone FenceStatus = ""
	// FenceTried: Try committed; Confirm or Cancel is due.
	FenceTried FenceStatus = "tried"
	// FenceConfirmed: Confirm committed.
	FenceConfirmed FenceStatus = "confirmed"
	// FenceCancelled: Cancel committed after a Try.
	FenceCancelled FenceStatus = "cancelled"
	// FenceSuspended: Cancel came with no Try before it (an empty
	// rollback); a Try arriving later is refused.
	FenceSuspended FenceStatus = "suspended"
)

// Tx is the local transaction a fenced phase runs in: the fence row and the
// business work commit or roll back together. SQL is always set. Gorm is a
// gorm session on the same transaction when the fence was opened with
// OpenGormFence, and nil otherwise. Neither may be committed or rolled back
// by the phase: return an error to roll back.
type Tx struct {
	SQL  *sql.Tx
	Gorm *gorm.DB
}

// Phase is the business work of one fenced call.
type Phase func(ctx context.Context, tx Tx) error

// Fence guards the phases of TCC branches against duplicate, empty and late
// calls with one row per branch, keyed by (XID, branch ID), in the business
// database:
//
//   - Try inserts the row as tried in the local transaction of its business
//     work; if a row exists already (its Cancel came first, or the Try ran
//     before) the Try is refused and its work does not run.
//   - Confirm moves tried to confirmed and runs its work once; a repeated
//     Confirm finds confirmed and succeeds without running it.
//   - Cancel moves tried to cancelled and runs its work once; with no row it
//     inserts suspended and succeeds without running any work (an empty
//     rollback), which also refuses a late Try.
//
// A Fence owns a cleaner goroutine that deletes finished rows older than
// FenceConfig.CleanAge; Close stops it. It is safe for concurrent use.
type Fence struct {
	db   *sql.DB
	gorm *gorm.DB
	cfg  FenceConfig
	q    queries
	log  *slog.Logger
	now  func() time.Time

	closeOnce sync.Once
	stop      context.CancelFunc
	done      chan struct{}
	closed    chan struct{}
}

// OpenFence opens a fence on db, a database/sql pool of cfg.Dialect, and
// creates its table when missing. SQLite databases should be opened with
// immediate transactions (for instance "_txlock=immediate") and a busy
// timeout, so that concurrent phases wait for each other instead of failing
// with SQLITE_BUSY.
func OpenFence(ctx context.Context, db *sql.DB, cfg FenceConfig) (*Fence, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrInvalidArgument)
	}
	return open(ctx, db, nil, cfg)
}

// OpenGormFence opens a fence on the database of gdb and creates its table
// when missing. cfg.Dialect may be left empty: it is taken from gdb's
// dialector. Phases get both the *sql.Tx and a gorm session on it.
func OpenGormFence(ctx context.Context, gdb *gorm.DB, cfg FenceConfig) (*Fence, error) {
	if gdb == nil {
		return nil, fmt.Errorf("%w: nil *gorm.DB", ErrInvalidArgument)
	}
	if cfg.Dialect == "" && gdb.Dialector != nil {
		cfg.Dialect = Dialect(gdb.Dialector.Name())
	}
	db, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("%w: gorm has no *sql.DB: %w", ErrInvalidArgument, err)
	}
	return open(ctx, db, gdb, cfg)
}

func open(ctx context.Context, db *sql.DB, gdb *gorm.DB, cfg FenceConfig) (*Fence, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	f := &Fence{
		db:     db,
		gorm:   gdb,
		cfg:    cfg,
		q:      newQueries(cfg.Dialect, cfg.Table),
		log:    log.With("component", "gtx.tcc.fence", "table", cfg.Table),
		now:    time.Now,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	for _, stmt := range f.q.create {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("tcc: create fence table %s: %w", cfg.Table, err)
		}
	}
	var cctx context.Context
	cctx, f.stop = context.WithCancel(context.Background())
	if cfg.CleanInterval > 0 {
		go f.cleanLoop(cctx)
	} else {
		close(f.done)
	}
	return f, nil
}

// Close stops the cleaner and waits for it. It does not close the database.
// Closing twice is a no-op.
func (f *Fence) Close() error {
	f.closeOnce.Do(func() {
		f.stop()
		<-f.done
		close(f.closed)
	})
	return nil
}

func (f *Fence) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// Try runs work in a local transaction that first inserts the branch's fence
// row as tried. When a row exists already it returns a *FenceError matching
// ErrTryRefused and runs nothing. An error from work rolls everything back
// and is returned as is.
func (f *Fence) Try(ctx context.Context, xid string, branchID int64, action string, work Phase) error {
	if err := f.check(xid, branchID, work); err != nil {
		return err
	}
	return f.inTx(ctx, func(tx Tx) error {
		ms := f.now().UnixMilli()
		n, err := f.exec(ctx, tx.SQL, f.q.insert, xid, branchID, action, string(FenceTried), ms, ms)
		if err != nil {
			return fmt.Errorf("tcc: try of %s branch %d: insert fence row: %w", xid, branchID, err)
		}
		if n == 0 {
			st, err := f.status(ctx, tx.SQL, xid, branchID)
			if err != nil {
				return err
			}
			return &FenceError{Op: "try", XID: xid, BranchID: branchID, Status: st, kind: ErrTryRefused}
		}
		return work(ctx, tx)
	})
}

// Confirm runs work in a local transaction that moves the branch's fence row
// from tried to confirmed. A branch already confirmed succeeds without
// running work. With no row it returns a *FenceError matching ErrNotTried;
// for a cancelled or suspended branch one matching ErrFenceConflict.
func (f *Fence) Confirm(ctx context.Context, xid string, branchID int64, work Phase) error {
	if err := f.check(xid, branchID, work); err != nil {
		return err
	}
	return f.inTx(ctx, func(tx Tx) error {
		// A row seen as tried after a failed move was inserted by a Try
		// committing meanwhile: move again, at most once more.
		for range 2 {
			moved, err := f.move(ctx, tx.SQL, xid, branchID, FenceTried, FenceConfirmed)
			if err != nil {
				return err
			}
			if moved {
				return work(ctx, tx)
			}
			st, err := f.status(ctx, tx.SQL, xid, branchID)
			if err != nil {
				return err
			}
			switch st {
			case FenceConfirmed:
				return nil
			case FenceNone:
				return &FenceError{Op: "confirm", XID: xid, BranchID: branchID, kind: ErrNotTried}
			case FenceCancelled, FenceSuspended:
				return &FenceError{Op: "confirm", XID: xid, BranchID: branchID, Status: st, kind: ErrFenceConflict}
			}
		}
		return fmt.Errorf("tcc: confirm of %s branch %d: fence row keeps changing; the coordinator retries", xid, branchID)
	})
}

// Cancel runs work in a local transaction that moves the branch's fence row
// from tried to cancelled. A branch already cancelled or suspended succeeds
// without running work. With no row it inserts one as suspended and
// succeeds without running work: there is nothing to undo, and the Try, if
// it comes later, is refused. For a confirmed branch it returns a
// *FenceError matching ErrFenceConflict.
func (f *Fence) Cancel(ctx context.Context, xid string, branchID int64, action string, work Phase) error {
	if err := f.check(xid, branchID, work); err != nil {
		return err
	}
	return f.inTx(ctx, func(tx Tx) error {
		// Insert first: on MySQL a statement finding no row would take a gap
		// lock, and a racing Try's insert into that gap would deadlock with
		// ours; an insert waits for the racing Try instead. On MySQL the
		// insert also locks an existing row exclusively, so that duplicate
		// Cancels queue up rather than deadlock upgrading shared locks.
		ms := f.now().UnixMilli()
		if _, err := tx.SQL.ExecContext(ctx, f.q.suspend, xid, branchID, action, string(FenceSuspended), ms, ms); err != nil {
			return fmt.Errorf("tcc: cancel of %s branch %d: insert suspended fence row: %w", xid, branchID, err)
		}
		moved, err := f.move(ctx, tx.SQL, xid, branchID, FenceTried, FenceCancelled)
		if err != nil {
			return err
		}
		if moved {
			return work(ctx, tx)
		}
		st, err := f.status(ctx, tx.SQL, xid, branchID)
		if err != nil {
			return err
		}
		switch st {
		case FenceSuspended:
			f.log.Debug("cancel without try: empty rollback", "xid", xid, "branch_id", branchID, "action", action)
			return nil
		case FenceCancelled:
			return nil
		case FenceConfirmed:
			return &FenceError{Op: "cancel", XID: xid, BranchID: branchID, Status: st, kind: ErrFenceConflict}
		}
		return fmt.Errorf("tcc: cancel of %s branch %d: fence row vanished while cancelling; the coordinator retries", xid, branchID)
	})
}

// Status returns the state of a branch's fence row, FenceNone when there is
// none. It reads without locking, for operators and tests.
func (f *Fence) Status(ctx context.Context, xid string, branchID int64) (FenceStatus, error) {
	if f.isClosed() {
		return FenceNone, ErrClosed
	}
	var s string
	err := f.db.QueryRowContext(ctx, f.q.peek, xid, branchID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return FenceNone, nil
	}
	if err != nil {
		return FenceNone, fmt.Errorf("tcc: read fence row of %s branch %d: %w", xid, branchID, err)
	}
	return FenceStatus(s), nil
}

func (f *Fence) check(xid string, branchID int64, work Phase) error {
	if f.isClosed() {
		return ErrClosed
	}
	if err := gtx.ValidateXID(xid); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if branchID <= 0 {
		return fmt.Errorf("%w: branch ID %d of %s is not positive", ErrInvalidArgument, branchID, xid)
	}
	if work == nil {
		return fmt.Errorf("%w: nil phase for %s branch %d", ErrInvalidArgument, xid, branchID)
	}
	return nil
}

// inTx runs fn in a local transaction, committing when it returns nil and
// rolling back on an error or a panic.
func (f *Fence) inTx(ctx context.Context, fn func(tx Tx) error) (err error) {
	stx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tcc: begin local transaction: %w", err)
	}
	tx := Tx{SQL: stx}
	if f.gorm != nil {
		tx.Gorm = f.gorm.Session(&gorm.Session{Context: ctx, NewDB: true})
		tx.Gorm.Statement.ConnPool = stx
	}
	committed := false
	defer func() {
		if !committed {
			_ = stx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("tcc: commit local transaction: %w", err)
	}
	return nil
}

func (f *Fence) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (f *Fence) move(ctx context.Context, tx *sql.Tx, xid string, branchID int64, from, to FenceStatus) (bool, error) {
	n, err := f.exec(ctx, tx, f.q.move, string(to), f.now().UnixMilli(), xid, branchID, string(from))
	if err != nil {
		return false, fmt.Errorf("tcc: move fence row of %s branch %d from %s to %s: %w", xid, branchID, from, to, err)
	}
	return n == 1, nil
}

func (f *Fence) status(ctx context.Context, tx *sql.Tx, xid string, branchID int64) (FenceStatus, error) {
	var s string
	err := tx.QueryRowContext(ctx, f.q.status, xid, branchID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return FenceNone, nil
	}
	if err != nil {
		return FenceNone, fmt.Errorf("tcc: read fence row of %s branch %d: %w", xid, branchID, err)
	}
	return FenceStatus(s), nil
}
