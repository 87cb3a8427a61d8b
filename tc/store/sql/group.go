package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// Group commit.
//
// Every write of the coordinator's hot path (a session created, a branch
// added, a status changed, locks taken or released) is a write entry handed
// to a groupWriter. A caller that finds a lane free becomes the leader of a
// batch: it takes the queued entries, oldest first, runs them one after
// another in one database transaction, and one COMMIT makes the whole batch
// durable. Callers that arrive while every lane is busy queue, and the next
// leader takes them together. Under light load a batch holds one entry and
// runs exactly as it would without batching (no explicit transaction for a
// single statement); under load the number of commits, and with them the
// journal flushes and round trips, falls by the batch size.
//
// An entry may fail in two ways. A refusal (see refuse) is an answer the
// entry found by reading, before it wrote anything: a status that does not
// allow the change, a lock another transaction holds. The batch goes on, and
// the entry reports it. Any other error may have left part of the entry
// written, or (on PostgreSQL) the transaction unusable: the batch is rolled
// back and every entry of it runs again alone, with the usual retry on
// contention. Nothing of a rolled-back batch was committed, so running an
// entry again is always safe. Savepoints would confine such a failure to
// its entry, but they cost two statements per entry, more than the rare
// re-run. A COMMIT that fails for contention is handled the same way; one
// that fails otherwise (the connection dropped) leaves the outcome unknown,
// and every entry of the batch gets that error, as a lone transaction's
// caller would. On SQLite a COMMIT that fails with SQLITE_BUSY leaves the
// transaction open; transaction rolls it back on its connection before the
// connection is reused, so the batch counts as rolled back.

// refusal is an entry's error that it returned before writing anything.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// refuse marks err, returned by a write entry, as found before the entry
// wrote anything, so that its batch can go on without it. It returns nil
// for nil.
func refuse(err error) error {
	if err == nil {
		return nil
	}
	return refusal{err}
}

// unrefused returns the error a refusal carries, or err itself.
func unrefused(err error) error {
	var r refusal
	if errors.As(err, &r) {
		return r.err
	}
	return err
}

// write is one entry of a batch.
type write struct {
	ctx context.Context
	// fn does the write through tx, which is a transaction when inTx is
	// set or the entry shares a batch, and the plain connection pool
	// otherwise.
	fn func(tx *gorm.DB) error
	// inTx says fn needs a transaction even when it runs alone: it writes
	// more than once, or fails after writing.
	inTx bool

	// taken is closed when a leader takes the entry into a batch; from
	// then on its caller only waits for done.
	taken chan struct{}
	// err is set by the leader before it closes done.
	err  error
	done chan struct{}
}

// groupWriter batches concurrent writes into shared transactions.
type groupWriter struct {
	db       *gorm.DB
	log      *slog.Logger
	maxBatch int
	// lanes holds a token per batch in flight.
	lanes chan struct{}
	// txOptions begin a batch's transaction.
	txOptions *sql.TxOptions

	mu    sync.Mutex
	queue []*write
}

func newGroupWriter(db *gorm.DB, log *slog.Logger, lanes, maxBatch int) *groupWriter {
	g := &groupWriter{db: db, log: log, maxBatch: maxBatch, lanes: make(chan struct{}, lanes)}
	if db.Dialector.Name() == DriverMySQL {
		// Each statement of a batch reads the latest committed rows, as it
		// would alone, rather than a snapshot from the batch's first read
		// (MySQL's default, repeatable read): a lock row committed since
		// is seen as a conflict, not met as a duplicate key that rolls the
		// batch back. It also spares the gap locks.
		g.txOptions = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return g
}

// do runs fn as one entry of a batch and returns its error. When ctx ends
// while the entry still waits in the queue, do returns ctx's error and fn
// never runs; once a leader has taken the entry, do waits for its outcome.
func (g *groupWriter) do(ctx context.Context, inTx bool, fn func(tx *gorm.DB) error) error {
	w := &write{ctx: ctx, fn: fn, inTx: inTx, taken: make(chan struct{}), done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	g.mu.Unlock()
	// Lead batches until one takes this entry. A caller whose entry another
	// leader took stops competing for lanes: it would only find the queue
	// empty again and again.
	for {
		select {
		case <-w.taken:
			<-w.done
			return w.err
		default:
		}
		select {
		case <-w.taken:
			<-w.done
			return w.err
		case g.lanes <- struct{}{}:
			g.lead()
		case <-ctx.Done():
			if g.withdraw(w) {
				return fmt.Errorf("wait for a write slot: %w", ctx.Err())
			}
			<-w.done
			return w.err
		}
	}
}

// lead runs one batch from the head of the queue, if any, on the lane its
// caller took, and gives the lane back.
func (g *groupWriter) lead() {
	defer func() { <-g.lanes }()
	if batch := g.take(); len(batch) > 0 {
		g.run(batch)
	}
}

// take removes up to maxBatch entries from the head of the queue.
func (g *groupWriter) take() []*write {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := min(len(g.queue), g.maxBatch)
	batch := make([]*write, n)
	copy(batch, g.queue)
	for _, w := range batch {
		close(w.taken)
	}
	clear(g.queue[:n])
	g.queue = g.queue[n:]
	return batch
}

// withdraw removes w from the queue unless a leader has taken it, and
// reports whether it did.
func (g *groupWriter) withdraw(w *write) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-w.taken:
		return false
	default:
	}
	for i, q := range g.queue {
		if q == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			break
		}
	}
	return true
}

// errBatchPanicked is what the other entries of a batch get when one
// entry's write panicked; the panic goes on.
var errBatchPanicked = errors.New("sqlstore: a write of the same batch panicked; nothing of the batch is known to be committed")

// run executes batch and completes every entry of it.
func (g *groupWriter) run(batch []*write) {
	defer func() {
		p := recover()
		for _, w := range batch {
			if p != nil {
				w.err = errBatchPanicked
			}
			close(w.done)
		}
		if p != nil {
			panic(p)
		}
	}()
	if len(batch) > 1 {
		err := g.shared(batch)
		if err == nil {
			return
		}
		g.log.Debug("sqlstore: batch rolled back, running its writes one by one", "writes", len(batch), "err", err)
	}
	for _, w := range batch {
		g.alone(w)
	}
}

// alone runs w by itself, again while the database aborts it for
// contention.
func (g *groupWriter) alone(w *write) {
	err := retry(w.ctx, g.log, func() error {
		db := g.db.WithContext(w.ctx)
		if w.inTx {
			return transaction(db, g.log, nil, w.fn)
		}
		return w.fn(db)
	})
	w.err = unrefused(err)
}

// shared runs batch in one transaction. It returns nil when the transaction
// committed, or when its COMMIT failed with an unknown outcome, which every
// entry then reports; each entry's err is set. It returns an error when the
// batch was rolled back, so that every entry must run again.
func (g *groupWriter) shared(batch []*write) error {
	ctx, cancel := batchContext(batch)
	defer cancel()
	ran := make([]bool, len(batch))
	err := transaction(g.db.WithContext(ctx), g.log, g.txOptions, func(tx *gorm.DB) error {
		for i, w := range batch {
			if err := w.ctx.Err(); err != nil {
				w.err = err
				continue
			}
			ran[i] = true
			err := w.fn(tx)
			var r refusal
			switch {
			case err == nil:
			case errors.As(err, &r):
				w.err = r.err
			default:
				return err
			}
		}
		return nil
	})
	var ce commitError
	if err == nil || !errors.As(err, &ce) || isTransient(err) {
		return err
	}
	// The outcome is unknown, also for a refusal that may rest on an
	// earlier entry's write.
	for i, w := range batch {
		if ran[i] {
			w.err = fmt.Errorf("commit a batch of %d writes: %w", len(batch), ce.err)
		}
	}
	return nil
}

// commitError is the error of a COMMIT that failed.
type commitError struct{ err error }

func (e commitError) Error() string { return "commit: " + e.err.Error() }
func (e commitError) Unwrap() error { return e.err }

// transaction runs body in a transaction on db and commits it. It returns
// nil once committed, body's error after rolling back, or the COMMIT's error
// as a commitError. On MySQL and PostgreSQL the transaction takes its
// connection from the pool, as gorm's Transaction does.
//
// On SQLite a COMMIT can fail with SQLITE_BUSY (in rollback-journal mode,
// while another connection reads), and SQLite then keeps the transaction
// open, while database/sql counts the *sql.Tx as ended and would hand the
// connection, still in the transaction, to the next caller: its writes
// would never commit. So on SQLite the transaction runs on a connection
// taken from the pool for it alone, and after a failed COMMIT that
// connection is sent a ROLLBACK, or, when that fails too, closed (which
// rolls back) instead of going back to the pool. Either way nothing of the
// transaction was committed, and a caller that retries on contention may
// run it again.
func transaction(db *gorm.DB, log *slog.Logger, opts *sql.TxOptions, body func(tx *gorm.DB) error) error {
	if db.Dialector.Name() != DriverSQLite {
		return runTx(db, opts, body)
	}
	return db.Connection(func(conn *gorm.DB) error {
		c, ok := conn.Statement.ConnPool.(*sql.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: gorm gave a %T, not a *sql.Conn, as a connection of its own", conn.Statement.ConnPool)
		}
		err := runTx(conn.Session(&gorm.Session{NewDB: true}), opts, body)
		var ce commitError
		if errors.As(err, &ce) {
			endSQLiteTx(conn.Statement.Context, log, c)
		}
		return err
	})
}

// runTx runs body in a transaction on db and commits it, as transaction
// does, on the connection db holds or one from its pool.
func runTx(db *gorm.DB, opts *sql.TxOptions, body func(tx *gorm.DB) error) error {
	tx := db.Begin(opts)
	if tx.Error != nil {
		return fmt.Errorf("begin: %w", tx.Error)
	}
	defer tx.Rollback() // after Commit, a no-op
	if err := body(tx); err != nil {
		return err
	}
	if err := tx.Commit().Error; err != nil {
		return commitError{err}
	}
	return nil
}

// endSQLiteTx rolls back the transaction a failed COMMIT may have left open
// on c. When SQLite has already ended it, the ROLLBACK fails with "no
// transaction is active", and c is fine; when database/sql already
// discarded c (a COMMIT cut short by the caller's context), there is
// nothing left to end; when it fails otherwise, c is closed rather than
// returned to the pool.
func endSQLiteTx(ctx context.Context, log *slog.Logger, c *sql.Conn) {
	// Even when the caller has given up, the connection must not stay in
	// the transaction.
	_, err := c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if err == nil || errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "no transaction is active") {
		return
	}
	log.WarnContext(ctx, "sqlstore: closing a SQLite connection that a failed COMMIT left in a transaction, since ROLLBACK failed", "err", err)
	c.Raw(func(any) error { return driver.ErrBadConn })
}

// batchContext returns the context of batch's transaction: it carries no
// one caller's cancellation, since one caller giving up must not roll back
// the others' writes, but it ends once every caller has given up, so that a
// statement stuck behind a lock cannot hold them past all their deadlines.
func batchContext(batch []*write) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var mu sync.Mutex
	live := len(batch)
	stops := make([]func() bool, len(batch))
	for i, w := range batch {
		stops[i] = context.AfterFunc(w.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if live--; live == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
