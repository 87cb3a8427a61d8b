package at

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gtx-io/gtx"
)

// conn wraps a driver connection. Outside global transactions it passes
// everything through untouched; inside one it parses each statement, takes
// images and, at commit, registers the branch and writes the undo log.
type conn struct {
	raw driver.Conn
	res *resource
	cfg *Config
	tx  *localTx
	// stmts holds the proxy's prepared statements on raw.
	stmts stmtCache
	// setting is the session setting (Statement.Setting) a statement run
	// on this connection outside a global transaction changed, or "":
	// once set, global transactions are refused on the connection.
	setting string
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
	c.noteSetting(query)
	raw, err := prepare(ctx, c.raw, query)
	if err != nil {
		return nil, err
	}
	return &stmt{c: c, raw: raw, query: query}, nil
}

func (c *conn) Close() error {
	c.stmts.close()
	return c.raw.Close()
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a local transaction; when ctx carries an XID it becomes a
// branch of that global transaction, when ctx is marked with
// gtx.WithGlobalLock it checks global locks before it commits.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var rawTx driver.Tx
	var err error
	if bt, ok := c.raw.(driver.ConnBeginTx); ok {
		rawTx, err = bt.BeginTx(ctx, opts)
	} else {
		rawTx, err = c.raw.Begin() // a driver without BeginTx
	}
	if err != nil {
		return nil, err
	}
	xid, _ := gtx.XIDFromContext(ctx)
	t := &localTx{c: c, raw: rawTx, ctx: ctx, xid: xid, globalLock: gtx.GlobalLockFromContext(ctx)}
	c.tx = t
	return t, nil
}

// guarded reports whether statements run with ctx need the proxy, and the
// local transaction they run in (nil for autocommit).
func (c *conn) guarded(ctx context.Context) (*localTx, bool) {
	if c.tx != nil && c.tx.guarded() {
		return c.tx, true
	}
	if c.tx != nil {
		return nil, false
	}
	_, hasXID := gtx.XIDFromContext(ctx)
	return nil, hasXID || gtx.GlobalLockFromContext(ctx)
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	t, ok := c.guarded(ctx)
	if !ok {
		if isDDL(query) {
			c.res.cache.invalidate()
		}
		c.noteSetting(query)
		if ec, ok := c.raw.(driver.ExecerContext); ok {
			return ec.ExecContext(ctx, query, args)
		}
		return nil, driver.ErrSkip
	}
	if t != nil {
		return t.exec(ctx, query, args)
	}
	// Autocommit inside a global transaction: a local transaction of its
	// own, committed as a branch.
	var res driver.Result
	err := c.autocommit(ctx, func(t *localTx) error {
		var err error
		res, err = t.exec(ctx, query, args)
		return err
	})
	return res, err
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	t, ok := c.guarded(ctx)
	if !ok {
		c.noteSetting(query)
		if qc, ok := c.raw.(driver.QueryerContext); ok {
			return qc.QueryContext(ctx, query, args)
		}
		return nil, driver.ErrSkip
	}
	if t != nil {
		return t.query(ctx, query, args)
	}
	var rows driver.Rows
	err := c.autocommit(ctx, func(t *localTx) error {
		r, err := t.query(ctx, query, args)
		if err != nil {
			return err
		}
		// The rows must be read before the transaction ends.
		rows, err = bufferRows(r)
		return err
	})
	return rows, err
}

func (c *conn) autocommit(ctx context.Context, f func(t *localTx) error) error {
	dt, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		return err
	}
	t := dt.(*localTx)
	if err := f(t); err != nil {
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.raw.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	c.tx = nil
	if r, ok := c.raw.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
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

// noteSetting remembers, for a query run outside a global transaction,
// the session setting it changes (see Statement.Setting). Only queries
// that may hold a SET or RESET are parsed: those starting with either
// word, and strings of several statements.
func (c *conn) noteSetting(query string) {
	if c.setting != "" || !maySet(query) {
		return
	}
	stmts, err := c.cfg.Dialect.Parse(query)
	if err != nil {
		return
	}
	for _, st := range stmts {
		if st.Setting != "" {
			c.setting = st.Setting
			return
		}
	}
}

// maySet reports whether query starts with SET or RESET (case-insensitive,
// after blanks) or holds a semicolon.
func maySet(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	for _, w := range []string{"SET", "RESET"} {
		if len(q) > len(w) && strings.EqualFold(q[:len(w)], w) {
			return true
		}
	}
	return strings.Contains(query, ";")
}

// isDDL reports whether query starts like a schema change, so that cached
// metadata is dropped.
func isDDL(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	if len(q) > 9 {
		q = q[:9]
	}
	q = strings.ToUpper(q)
	for _, p := range []string{"ALTER", "DROP", "CREATE", "RENAME", "TRUNCATE"} {
		if strings.HasPrefix(q, p) {
			return true
		}
	}
	return false
}

// argValues turns driver arguments into positional values.
func argValues(args []driver.NamedValue) ([]any, error) {
	out := make([]any, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, fmt.Errorf("at: named argument %q: only positional arguments are supported in a global transaction", a.Name)
		}
		out[i] = a.Value
	}
	return out, nil
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

// stmt is a prepared statement. Outside global transactions it runs the
// wrapped driver's statement; inside one it goes through the proxy.
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
	if _, ok := s.c.guarded(ctx); ok {
		return s.c.ExecContext(ctx, s.query, args)
	}
	if se, ok := s.raw.(driver.StmtExecContext); ok {
		return se.ExecContext(ctx, args)
	}
	return nil, fmt.Errorf("at: driver statement %T cannot exec with a context", s.raw)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if _, ok := s.c.guarded(ctx); ok {
		return s.c.QueryContext(ctx, s.query, args)
	}
	if sq, ok := s.raw.(driver.StmtQueryContext); ok {
		return sq.QueryContext(ctx, args)
	}
	return nil, fmt.Errorf("at: driver statement %T cannot query with a context", s.raw)
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error { return s.c.CheckNamedValue(nv) }
