package at

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// localTx is a local transaction on a wrapped connection. With an XID it is
// a branch of that global transaction; with the global-lock flag it only
// checks global locks before it commits.
type localTx struct {
	c          *conn
	raw        driver.Tx
	ctx        context.Context
	xid        string
	globalLock bool
	undo       UndoLog
	aborted    error
	done       bool
}

func (t *localTx) guarded() bool { return !t.done && (t.xid != "" || t.globalLock) }

func (t *localTx) executor() *executor {
	return &executor{d: t.c.cfg.Dialect, cache: t.c.res.cache, q: connQueryer{conn: t.c.raw, stmts: &t.c.stmts, d: t.c.cfg.Dialect}}
}

// parse parses query and checks its placeholders against args.
func (t *localTx) parse(query string, args []driver.NamedValue) ([]Statement, []any, error) {
	if t.aborted != nil {
		return nil, nil, t.aborted
	}
	vals, err := argValues(args)
	if err != nil {
		return nil, nil, err
	}
	stmts, err := t.c.cfg.Dialect.Parse(query)
	if err != nil {
		return nil, nil, &RefusedError{SQL: query, Reason: err.Error()}
	}
	if t.xid != "" && t.c.setting != "" {
		return nil, nil, &RefusedError{SQL: query, Reason: fmt.Sprintf("this connection changed its session's %s earlier, so its images would not read back the same on the sessions phase 2 runs on; set it in the DSN (or the Connector) instead, for every connection", t.c.setting)}
	}
	if len(stmts) > 1 && len(vals) > 0 {
		return nil, nil, &RefusedError{SQL: query, Reason: "a string of several statements with arguments: drivers number such placeholders differently, or refuse them; run each statement with its own arguments"}
	}
	for _, st := range stmts {
		switch {
		case st.Setting == "":
		case t.xid != "":
			return nil, nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("it changes the session's %s, so the images would not read back the same on the sessions phase 2 runs on; set it in the DSN (or the Connector) instead, for every connection", st.Setting)}
		default:
			// A global-lock transaction is never undone from images, but
			// later global transactions on this connection would be.
			t.c.setting = st.Setting
		}
	}
	// Every argument is taken, by one placeholder or (numbered
	// placeholders) several.
	used := make([]bool, len(vals))
	n := 0
	for _, st := range stmts {
		for _, a := range st.Args {
			if a >= len(vals) {
				return nil, nil, fmt.Errorf("at: query has placeholder %d but %d arguments", a+1, len(vals))
			}
			if !used[a] {
				used[a] = true
				n++
			}
		}
	}
	if n != len(vals) {
		return nil, nil, fmt.Errorf("at: query takes %d of its %d arguments; pass exactly the arguments it uses", n, len(vals))
	}
	return stmts, vals, nil
}

// exec runs every statement of query with its images.
func (t *localTx) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	stmts, vals, err := t.parse(query, args)
	if err != nil {
		return nil, err
	}
	e := t.executor()
	if len(stmts) > 1 {
		// Every statement is checked before any runs, so that a refusal
		// leaves the transaction as it was.
		for i := range stmts {
			if err := e.check(ctx, &stmts[i], vals); err != nil {
				return nil, e.schemaChanged(err)
			}
		}
	}
	var total execResult
	for i := range stmts {
		st := &stmts[i]
		if st.Kind == KindSelectForUpdate {
			if err := t.checkSelectLocks(ctx, e, st, vals); err != nil {
				return nil, err
			}
		}
		res, err := e.run(ctx, st, vals, &t.undo)
		if errors.Is(err, ErrTxAborted) {
			t.aborted = err
		}
		if err != nil {
			return nil, err
		}
		total.rowsAffected += res.rowsAffected
		total.lastInsertID = res.lastInsertID
	}
	return result(total), nil
}

type result execResult

func (r result) LastInsertId() (int64, error) { return r.lastInsertID, nil }
func (r result) RowsAffected() (int64, error) { return r.rowsAffected, nil }

// query runs a query: SELECT ... FOR UPDATE checks global locks first,
// other reads pass through, writes are refused (use Exec).
func (t *localTx) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	stmts, vals, err := t.parse(query, args)
	if err != nil {
		return nil, err
	}
	if len(stmts) != 1 {
		return nil, &RefusedError{SQL: query, Reason: "a query returning rows must be a single statement"}
	}
	st := &stmts[0]
	switch st.Kind {
	case KindPassThrough:
	case KindSelectForUpdate:
		if err := t.checkSelectLocks(ctx, t.executor(), st, vals); err != nil {
			return nil, err
		}
	case KindRefused:
		return nil, &RefusedError{SQL: st.SQL, Reason: st.Refusal}
	default:
		if st.Returning == nil {
			return nil, &RefusedError{SQL: st.SQL, Reason: "a write that returns rows needs RETURNING; otherwise use Exec"}
		}
		res, err := t.executor().run(ctx, st, vals, &t.undo)
		if errors.Is(err, ErrTxAborted) {
			t.aborted = err
		}
		if err != nil {
			return nil, err
		}
		return returningRows(st.Returning, res.meta, res.rows)
	}
	q, err := bind(t.c.cfg.Dialect, st.SQL)
	if err != nil {
		return nil, err
	}
	return rawQuery(ctx, t.c.raw, q, namedValues(pick(vals, st.Args)))
}

// returningRows answers a RETURNING clause from a statement's image.
func returningRows(cols []string, m *TableMeta, rows []Row) (driver.Rows, error) {
	var idx []int
	var names []string
	for _, c := range cols {
		if c == "*" {
			for i, col := range m.Columns {
				idx, names = append(idx, i), append(names, col.Name)
			}
			continue
		}
		i := m.ColumnIndex(c)
		if i < 0 {
			return nil, fmt.Errorf("at: RETURNING names column %s that %s does not have", c, m.Name)
		}
		idx, names = append(idx, i), append(names, m.Columns[i].Name)
	}
	out := &bufRows{cols: names}
	for _, r := range rows {
		vals := make([]driver.Value, len(idx))
		for j, i := range idx {
			vals[j] = r[i].Arg()
		}
		out.rows = append(out.rows, vals)
	}
	return out, nil
}

// checkSelectLocks locks the rows a SELECT ... FOR UPDATE reads and waits,
// by the retry policy, until no other global transaction holds their global
// locks: the read sees only committed global state.
func (t *localTx) checkSelectLocks(ctx context.Context, e *executor, st *Statement, vals []any) error {
	return t.c.res.retryLocks(ctx, t.xid, func() error {
		keys, err := e.selectKeys(ctx, st, vals)
		if err != nil {
			return err
		}
		return t.c.res.queryLocks(ctx, t.xid, keys)
	})
}

func (t *localTx) Commit() error {
	if t.done {
		return driver.ErrBadConn
	}
	t.done = true
	t.c.tx = nil
	ctx := t.ctx
	switch {
	case t.aborted != nil:
		_ = t.raw.Rollback()
		return fmt.Errorf("at: commit refused, rolled back: %w", t.aborted)
	case t.undo.empty():
		return t.raw.Commit()
	case t.xid == "":
		// Global-lock flag: commit only when no global transaction holds
		// the rows.
		keys := t.undo.LockKeys()
		if err := t.c.res.retryLocks(ctx, "", func() error { return t.c.res.queryLocks(ctx, "", keys) }); err != nil {
			_ = t.raw.Rollback()
			return err
		}
		return t.raw.Commit()
	}
	return t.commitBranch(ctx)
}

// commitBranch registers the branch with its lock keys, writes the undo
// log and commits, all while the local transaction holds its row locks.
func (t *localTx) commitBranch(ctx context.Context) error {
	res := t.c.res
	keys := t.undo.LockKeys()
	var branchID int64
	err := res.retryLocks(ctx, t.xid, func() error {
		var err error
		branchID, err = res.cfg.Manager.RegisterBranch(ctx, t.xid, tcv1.BranchType_AT, res.cfg.ResourceID, keys, nil)
		return err
	})
	if err != nil {
		_ = t.raw.Rollback()
		return fmt.Errorf("at: register branch of %s, local transaction rolled back: %w", t.xid, err)
	}
	fail := func(err error) error {
		_ = t.raw.Rollback()
		if rerr := res.cfg.Manager.ReportBranch(ctx, t.xid, branchID, tcv1.BranchStatus_PHASE1_FAILED, nil); rerr != nil {
			res.log.Warn("reporting a failed phase 1 failed", "xid", t.xid, "branch_id", branchID, "err", rerr)
		}
		return err
	}
	if res.afterRegister != nil {
		res.afterRegister(t.xid, branchID)
	}
	blob, err := t.undo.Marshal(res.cfg.CompressAbove)
	if err != nil {
		return fail(fmt.Errorf("at: encode undo log of %s branch %d: %w", t.xid, branchID, err))
	}
	q := connQueryer{conn: t.c.raw, stmts: &t.c.stmts, d: res.cfg.Dialect}
	if _, err := q.exec(ctx, res.undo.insertSQL(), []any{t.xid, branchID, stateNormal, blob}); err != nil {
		if res.cfg.Dialect.IsDuplicateKey(err) {
			return fail(fmt.Errorf("%w: %s branch %d; the local transaction is rolled back", ErrBranchRolledBack, t.xid, branchID))
		}
		return fail(fmt.Errorf("at: write undo log of %s branch %d: %w", t.xid, branchID, err))
	}
	if err := t.raw.Commit(); err != nil {
		return fail(fmt.Errorf("at: local commit of %s branch %d: %w", t.xid, branchID, err))
	}
	return nil
}

func (t *localTx) Rollback() error {
	if t.done {
		return driver.ErrBadConn
	}
	t.done = true
	t.c.tx = nil
	return t.raw.Rollback()
}

// errLocked is returned by queryLocks for keys another transaction holds.
type errLocked struct {
	holder *tcv1.LockHolder
}

func (e *errLocked) Error() string {
	return fmt.Sprintf("global lock on %s:%s is held by %s (%s)", e.holder.GetTable(), e.holder.GetPk(), e.holder.GetXid(), e.holder.GetHolderStatus())
}

// queryLocks asks the coordinator whether keys are free for xid.
func (r *resource) queryLocks(ctx context.Context, xid, keys string) error {
	if keys == "" {
		return nil
	}
	resp, err := r.cfg.Locks.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: r.cfg.ResourceID, LockKeys: keys, Xid: xid})
	if err != nil {
		return fmt.Errorf("at: query global locks: %w", err)
	}
	if resp.GetLockable() {
		return nil
	}
	h := &tcv1.LockHolder{}
	for _, x := range resp.GetHolders() {
		h = x
		if rollingBack(x.GetHolderStatus()) {
			break
		}
	}
	return &errLocked{holder: h}
}

// rollingBack reports whether a lock holder in s is rolled back or will be
// (rm.LockConflictError.HolderRollingBack's class).
func rollingBack(s tcv1.GlobalStatus) bool { return s.IsRollbackDecided() }

// retryLocks runs f until it stops failing on a held global lock, by the
// retry policy. A holder that is rolling back ends the wait at once: its
// rollback may need the local row locks this transaction holds.
func (r *resource) retryLocks(ctx context.Context, xid string, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		var conflict *rm.LockConflictError
		var locked *errLocked
		var holder string
		var back bool
		switch {
		case errors.As(err, &conflict):
			holder, back = conflict.HolderXID, conflict.HolderRollingBack()
		case errors.As(err, &locked):
			holder, back = locked.holder.GetXid(), rollingBack(locked.holder.GetHolderStatus())
		default:
			return err
		}
		if back {
			return fmt.Errorf("%w: holder %s is rolling back and may need this transaction's row locks; giving up at once: %w", ErrGlobalLock, holder, err)
		}
		if attempt >= r.cfg.LockRetryTimes {
			return fmt.Errorf("%w: still held by %s after %d attempts %v apart: %w", ErrGlobalLock, holder, attempt+1, r.cfg.LockRetryInterval, err)
		}
		timer := time.NewTimer(r.cfg.LockRetryInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w: waiting for %s: %w", ErrGlobalLock, holder, ctx.Err())
		case <-timer.C:
		}
	}
}
