package xa

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// conn wraps a driver connection. Outside global transactions it passes
// everything through; a transaction begun with an XID in its context is an
// XA branch, whose statements run on the connection untouched.
type conn struct {
	raw driver.Conn
	res *resource
	// tx is the open XA branch, plain the open transaction without an XID.
	tx    *branchTx
	plain bool
	// detached is set once raw is closed after a prepare that stays bound
	// to its session (MySQL); database/sql then drops the connection.
	detached bool
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.detached {
		return nil, driver.ErrBadConn
	}
	var raw driver.Stmt
	var err error
	if pc, ok := c.raw.(driver.ConnPrepareContext); ok {
		raw, err = pc.PrepareContext(ctx, query)
	} else {
		raw, err = c.raw.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &stmt{c: c, raw: raw, query: query}, nil
}

func (c *conn) Close() error {
	if c.detached {
		return nil
	}
	return c.raw.Close()
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a local transaction; when ctx carries an XID it registers
// an XA branch of that global transaction and starts it.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.detached {
		return nil, driver.ErrBadConn
	}
	xid, ok := gtx.XIDFromContext(ctx)
	if !ok {
		var raw driver.Tx
		var err error
		if bt, ok := c.raw.(driver.ConnBeginTx); ok {
			raw, err = bt.BeginTx(ctx, opts)
		} else {
			raw, err = c.raw.Begin() // a driver without BeginTx
		}
		if err != nil {
			return nil, err
		}
		c.plain = true
		return &plainTx{c: c, raw: raw}, nil
	}
	return c.beginBranch(ctx, xid, opts)
}

func (c *conn) beginBranch(ctx context.Context, xid string, opts driver.TxOptions) (*branchTx, error) {
	res := c.res
	d := res.cfg.Dialect
	// The name must fit before anything is registered.
	threePhase := gtx.ThreePhaseFromContext(ctx)
	probe, err := newBranchXID(xid, 1, res.cfg.ResourceID, threePhase)
	if err != nil {
		return nil, fmt.Errorf("xa: begin branch: %w", err)
	}
	if err := d.check(probe); err != nil {
		return nil, err
	}
	var data []byte
	if threePhase {
		data = threePhaseData
	}
	branchID, err := res.cfg.Manager.RegisterBranch(ctx, xid, tcv1.BranchType_XA, res.cfg.ResourceID, "", data)
	if err != nil {
		return nil, fmt.Errorf("xa: register branch of %s: %w", xid, err)
	}
	id := probe
	id.branchID = branchID
	if err := d.begin(ctx, c.raw, id, opts); err != nil {
		res.reportFailed(ctx, id)
		return nil, fmt.Errorf("xa: start branch %s: %w", id, err)
	}
	t := &branchTx{c: c, ctx: ctx, id: id}
	c.tx = t
	return t, nil
}

// global reports whether a statement run with ctx outside any transaction
// must run in a branch of its own.
func (c *conn) global(ctx context.Context) bool {
	if c.tx != nil || c.plain {
		return false
	}
	_, ok := gtx.XIDFromContext(ctx)
	return ok
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.detached {
		return nil, driver.ErrBadConn
	}
	if c.global(ctx) {
		var res driver.Result
		err := c.autocommit(ctx, func() error {
			var err error
			res, err = c.rawExec(ctx, query, args)
			return err
		})
		return res, err
	}
	return c.rawExec(ctx, query, args)
}

func (c *conn) rawExec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if ec, ok := c.raw.(driver.ExecerContext); ok {
		return ec.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.detached {
		return nil, driver.ErrBadConn
	}
	if c.global(ctx) {
		var rows driver.Rows
		err := c.autocommit(ctx, func() error {
			r, err := c.rawQuery(ctx, query, args)
			if err != nil {
				return err
			}
			// The rows must be read before the branch prepares.
			rows, err = bufferRows(r)
			return err
		})
		return rows, err
	}
	return c.rawQuery(ctx, query, args)
}

func (c *conn) rawQuery(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if qc, ok := c.raw.(driver.QueryerContext); ok {
		return qc.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

// autocommit runs f in a branch of its own, prepared when f succeeds.
func (c *conn) autocommit(ctx context.Context, f func() error) error {
	xid, _ := gtx.XIDFromContext(ctx)
	t, err := c.beginBranch(ctx, xid, driver.TxOptions{})
	if err != nil {
		return err
	}
	if err := f(); err != nil {
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

func (c *conn) Ping(ctx context.Context) error {
	if c.detached {
		return driver.ErrBadConn
	}
	if p, ok := c.raw.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if c.detached {
		return driver.ErrBadConn
	}
	if r, ok := c.raw.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if c.detached {
		return false
	}
	if v, ok := c.raw.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.raw.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// detach closes raw, ending its session: MySQL then lets another session
// finish the prepared branch, and rolls back a branch that did not prepare.
func (c *conn) detach() {
	if !c.detached {
		c.detached = true
		if err := c.raw.Close(); err != nil {
			c.res.log.Debug("closing the session of a branch", "err", err)
		}
	}
}

// plainTx is a transaction without an XID, passed through.
type plainTx struct {
	c   *conn
	raw driver.Tx
}

func (t *plainTx) Commit() error   { t.c.plain = false; return t.raw.Commit() }
func (t *plainTx) Rollback() error { t.c.plain = false; return t.raw.Rollback() }

// branchTx is an XA branch open on a connection.
type branchTx struct {
	c    *conn
	ctx  context.Context
	id   branchXID
	done bool
}

// Commit prepares the branch: phase 1 ends here, and the coordinator's
// decision commits or rolls it back.
func (t *branchTx) Commit() error {
	if t.done {
		return ErrDone
	}
	t.done = true
	c, res := t.c, t.c.res
	c.tx = nil
	d := res.cfg.Dialect
	if err := d.prepare(t.ctx, c.raw, t.id); err != nil {
		if !errors.Is(err, ErrAborted) {
			if rerr := d.rollbackActive(context.WithoutCancel(t.ctx), c.raw, t.id); rerr != nil {
				c.detach()
			}
		}
		res.reportFailed(t.ctx, t.id)
		return fmt.Errorf("%w: branch %s, rolled back: %w", ErrPrepare, t.id, err)
	}
	if !d.detachesOnPrepare() {
		c.detach()
	}
	return nil
}

// Rollback rolls the branch back and reports its phase 1 failed.
func (t *branchTx) Rollback() error {
	if t.done {
		return ErrDone
	}
	t.done = true
	c, res := t.c, t.c.res
	c.tx = nil
	ctx := context.WithoutCancel(t.ctx)
	err := res.cfg.Dialect.rollbackActive(ctx, c.raw, t.id)
	if err != nil {
		// Ending the session rolls back a branch that did not prepare.
		res.log.Warn("rolling back a branch failed; closing its session, which rolls it back", "branch", t.id.String(), "err", err)
		c.detach()
	}
	res.reportFailed(ctx, t.id)
	return nil
}

// reportFailed tells the coordinator that a branch's phase 1 failed, so a
// commit skips it; a report that is lost only costs a rollback command the
// database answers as done.
func (r *resource) reportFailed(ctx context.Context, id branchXID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.cfg.Manager.ReportBranch(ctx, id.xid, id.branchID, tcv1.BranchStatus_PHASE1_FAILED, nil); err != nil {
		r.log.Warn("reporting a failed phase 1 failed", "branch", id.String(), "err", err)
	}
}

// bufRows is a driver.Rows read in full.
type bufRows struct {
	cols []string
	rows [][]driver.Value
}

func bufferRows(r driver.Rows) (driver.Rows, error) {
	b := &bufRows{cols: r.Columns()}
	defer r.Close()
	for {
		dest := make([]driver.Value, len(b.cols))
		if err := r.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return b, nil
			}
			return nil, err
		}
		for i, v := range dest {
			if bs, ok := v.([]byte); ok {
				dest[i] = append([]byte(nil), bs...)
			}
		}
		b.rows = append(b.rows, dest)
	}
}

func (b *bufRows) Columns() []string { return b.cols }
func (b *bufRows) Close() error      { return nil }
func (b *bufRows) Next(dest []driver.Value) error {
	if len(b.rows) == 0 {
		return io.EOF
	}
	copy(dest, b.rows[0])
	b.rows = b.rows[1:]
	return nil
}

// stmt is a prepared statement. In a transaction, or outside global
// transactions, it runs the wrapped driver's statement; run outside a
// transaction with an XID, it runs in a branch of its own.
type stmt struct {
	c     *conn
	raw   driver.Stmt
	query string
}

func (s *stmt) Close() error  { return s.raw.Close() }
func (s *stmt) NumInput() int { return s.raw.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

func valuesToNamed(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if s.c.global(ctx) {
		return s.c.ExecContext(ctx, s.query, args)
	}
	if se, ok := s.raw.(driver.StmtExecContext); ok {
		return se.ExecContext(ctx, args)
	}
	return nil, fmt.Errorf("xa: driver statement %T cannot exec with a context", s.raw)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if s.c.global(ctx) {
		return s.c.QueryContext(ctx, s.query, args)
	}
	if sq, ok := s.raw.(driver.StmtQueryContext); ok {
		return sq.QueryContext(ctx, args)
	}
	return nil, fmt.Errorf("xa: driver statement %T cannot query with a context", s.raw)
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error { return s.c.CheckNamedValue(nv) }
