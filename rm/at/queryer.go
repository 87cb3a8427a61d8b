package at

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// Querier runs a query for a Dialect (reading table metadata) and returns
// every row, values as the driver returns them. Rows are read in full, so
// no cursor outlives the call.
type Querier interface {
	Query(ctx context.Context, query string, args []any) ([][]any, error)
}

// queryer runs the proxy's own statements: image reads, undo log writes and
// compensation.
type queryer interface {
	Querier
	exec(ctx context.Context, query string, args []any) (execResult, error)
}

type execResult struct {
	rowsAffected int64
	lastInsertID int64
	// meta and rows are the image of the first table a DML statement wrote:
	// the rows after it, or before it for DELETE. RETURNING reads them.
	meta *TableMeta
	rows []Row
}

// connQueryer runs statements on a driver connection, inside whatever
// transaction the connection is in. Statements the driver wants prepared
// (go-sql-driver/mysql with arguments) are prepared once per connection and
// kept in stmts.
type connQueryer struct {
	conn  driver.Conn
	stmts *stmtCache
	// d numbers the placeholders of every query (see bind).
	d Dialect
}

func namedValues(args []any) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

func (q connQueryer) Query(ctx context.Context, query string, args []any) ([][]any, error) {
	query, err := bind(q.d, query)
	if err != nil {
		return nil, err
	}
	nv := namedValues(args)
	if qc, ok := q.conn.(driver.QueryerContext); ok {
		rows, err := qc.QueryContext(ctx, query, nv)
		if !errors.Is(err, driver.ErrSkip) {
			if err != nil {
				return nil, err
			}
			return readRows(rows)
		}
	}
	st, err := q.stmts.get(ctx, q.conn, query)
	if err != nil {
		return nil, err
	}
	sq, ok := st.(driver.StmtQueryContext)
	if !ok {
		return nil, fmt.Errorf("at: driver statement %T cannot query with a context", st)
	}
	rows, err := sq.QueryContext(ctx, nv)
	if err != nil {
		return nil, err
	}
	return readRows(rows)
}

func (q connQueryer) exec(ctx context.Context, query string, args []any) (execResult, error) {
	query, err := bind(q.d, query)
	if err != nil {
		return execResult{}, err
	}
	nv := namedValues(args)
	if ec, ok := q.conn.(driver.ExecerContext); ok {
		res, err := ec.ExecContext(ctx, query, nv)
		if !errors.Is(err, driver.ErrSkip) {
			if err != nil {
				return execResult{}, err
			}
			return resultOf(res)
		}
	}
	st, err := q.stmts.get(ctx, q.conn, query)
	if err != nil {
		return execResult{}, err
	}
	se, ok := st.(driver.StmtExecContext)
	if !ok {
		return execResult{}, fmt.Errorf("at: driver statement %T cannot exec with a context", st)
	}
	res, err := se.ExecContext(ctx, nv)
	if err != nil {
		return execResult{}, err
	}
	return resultOf(res)
}

// maxCachedStmts bounds the statements one connection keeps prepared.
const maxCachedStmts = 64

// stmtCache keeps the proxy's own prepared statements of one connection:
// the image and undo log queries repeat for every transaction.
type stmtCache struct {
	stmts map[string]driver.Stmt
}

func (c *stmtCache) get(ctx context.Context, conn driver.Conn, query string) (driver.Stmt, error) {
	if st := c.stmts[query]; st != nil {
		return st, nil
	}
	st, err := prepare(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = make(map[string]driver.Stmt)
	}
	if len(c.stmts) >= maxCachedStmts {
		c.close()
		c.stmts = make(map[string]driver.Stmt)
	}
	c.stmts[query] = st
	return st, nil
}

// close closes every cached statement.
func (c *stmtCache) close() {
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = nil
}

func resultOf(res driver.Result) (execResult, error) {
	var r execResult
	var err error
	if r.rowsAffected, err = res.RowsAffected(); err != nil {
		return r, err
	}
	r.lastInsertID, _ = res.LastInsertId()
	return r, nil
}

// rawQuery runs a query on conn, preparing it when the driver asks to
// (driver.ErrSkip) or cannot query directly.
func rawQuery(ctx context.Context, conn driver.Conn, query string, args []driver.NamedValue) (driver.Rows, error) {
	if qc, ok := conn.(driver.QueryerContext); ok {
		rows, err := qc.QueryContext(ctx, query, args)
		if !errors.Is(err, driver.ErrSkip) {
			return rows, err
		}
	}
	st, err := prepare(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	sq, ok := st.(driver.StmtQueryContext)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("at: driver statement %T cannot query with a context", st)
	}
	rows, err := sq.QueryContext(ctx, args)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &stmtRows{Rows: rows, stmt: st}, nil
}

func prepare(ctx context.Context, conn driver.Conn, query string) (driver.Stmt, error) {
	if pc, ok := conn.(driver.ConnPrepareContext); ok {
		return pc.PrepareContext(ctx, query)
	}
	return conn.Prepare(query)
}

// stmtRows closes the statement a query was prepared for with its rows.
type stmtRows struct {
	driver.Rows
	stmt driver.Stmt
}

func (r *stmtRows) Close() error {
	err := r.Rows.Close()
	if cerr := r.stmt.Close(); err == nil {
		err = cerr
	}
	return err
}

func readRows(rows driver.Rows) (out [][]any, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	n := len(rows.Columns())
	for {
		dest := make([]driver.Value, n)
		if err := rows.Next(dest); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		row := make([]any, n)
		for i, v := range dest {
			if b, ok := v.([]byte); ok {
				v = append([]byte(nil), b...)
			}
			row[i] = v
		}
		out = append(out, row)
	}
}

// sqlQueryer runs statements in a database/sql transaction.
type sqlQueryer struct {
	tx *sql.Tx
	// d numbers the placeholders of every query (see bind).
	d Dialect
}

func (q sqlQueryer) Query(ctx context.Context, query string, args []any) ([][]any, error) {
	query, err := bind(q.d, query)
	if err != nil {
		return nil, err
	}
	rows, err := q.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func (q sqlQueryer) exec(ctx context.Context, query string, args []any) (execResult, error) {
	query, err := bind(q.d, query)
	if err != nil {
		return execResult{}, err
	}
	res, err := q.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return execResult{}, err
	}
	var r execResult
	if r.rowsAffected, err = res.RowsAffected(); err != nil {
		return r, err
	}
	r.lastInsertID, _ = res.LastInsertId()
	return r, nil
}
