package at

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Undo row states.
const (
	// stateNormal marks an undo log written by phase 1.
	stateNormal int64 = 0
	// stateDefended marks a branch phase 2 has finished with (rolled back,
	// or rolled back before phase 1 committed): a late phase-1 insert of
	// the same (xid, branch_id) fails on the primary key.
	stateDefended int64 = 1
)

// undoStore reads and writes one resource's undo table.
type undoStore struct {
	d     Dialect
	table string
}

func (s undoStore) insertSQL() string {
	return "INSERT INTO " + s.d.Quote(s.table) + " (xid, branch_id, state, rollback_info) VALUES (?, ?, ?, ?)"
}

// rollback undoes branch (xid, branchID) in its own local transaction on
// db. It is idempotent: a branch already rolled back, or never committed,
// is left defended.
func (s undoStore) rollback(ctx context.Context, db *sql.DB, xid string, branchID int64) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("at: rollback %s branch %d: begin: %w", xid, branchID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	q := sqlQueryer{tx: tx, d: s.d}
	if lw := s.d.LockWrites(s.table); lw != "" {
		if _, err := q.exec(ctx, lw, nil); err != nil {
			return fmt.Errorf("at: rollback %s branch %d: %w", xid, branchID, err)
		}
	}
	rows, err := q.Query(ctx, "SELECT state, rollback_info FROM "+s.d.Quote(s.table)+" WHERE xid = ? AND branch_id = ?"+s.d.ForUpdate(), []any{xid, branchID})
	if err != nil {
		return fmt.Errorf("at: rollback %s branch %d: read undo log: %w", xid, branchID, err)
	}
	if len(rows) == 0 {
		// Phase 1 has not committed (or never will): leave a defense row
		// so that its late insert fails.
		if _, err := q.exec(ctx, s.insertSQL(), []any{xid, branchID, stateDefended, []byte{}}); err != nil {
			return fmt.Errorf("at: rollback %s branch %d: insert defense row: %w", xid, branchID, err)
		}
		return tx.Commit()
	}
	if st, _ := toInt(rows[0][0]); st == stateDefended {
		return tx.Commit()
	}
	log, err := UnmarshalUndoLog(toBytes(rows[0][1]))
	if err != nil {
		return fmt.Errorf("at: rollback %s branch %d: %w", xid, branchID, err)
	}
	if err := s.compensate(ctx, q, log, xid, branchID); err != nil {
		return err
	}
	if _, err := q.exec(ctx, "UPDATE "+s.d.Quote(s.table)+" SET state = ?, rollback_info = ? WHERE xid = ? AND branch_id = ?",
		[]any{stateDefended, []byte{}, xid, branchID}); err != nil {
		return fmt.Errorf("at: rollback %s branch %d: mark undo log done: %w", xid, branchID, err)
	}
	return tx.Commit()
}

// imageMeta builds the metadata compensation needs from an image.
func imageMeta(t *TableImage, current *TableMeta) (*TableMeta, error) {
	m := &TableMeta{Name: t.Table, PK: t.PK}
	for _, name := range t.Columns {
		i := current.ColumnIndex(name)
		if i < 0 {
			return nil, fmt.Errorf("at: column %s of %s is gone since the branch ran; restore it or resolve the branch by hand", name, t.Table)
		}
		m.Columns = append(m.Columns, current.Columns[i])
	}
	return m, nil
}

// compensate checks every row against its after image, then puts back the
// before images, in reverse order. A row that differs stops everything
// before any change, with a *DirtyWriteError.
func (s undoStore) compensate(ctx context.Context, q queryer, log *UndoLog, xid string, branchID int64) error {
	metas := make([]*TableMeta, len(log.Tables))
	dirty := &DirtyWriteError{XID: xid, BranchID: branchID}
	for i, t := range log.Tables {
		if !t.touched() {
			continue
		}
		cur, err := s.d.LoadTable(ctx, q, tableRef(t.Table))
		if err != nil {
			return fmt.Errorf("at: rollback %s branch %d: %w", xid, branchID, err)
		}
		m, err := imageMeta(t, cur)
		if err != nil {
			return err
		}
		metas[i] = m
		var keys []Row
		for _, r := range t.Rows {
			if img := r.image(); img != nil {
				keys = append(keys, img)
			}
		}
		current, err := readByPK(ctx, s.d, q, m, keys, true)
		if err != nil {
			return fmt.Errorf("at: rollback %s branch %d: read current rows of %s: %w", xid, branchID, t.Table, err)
		}
		byKey := make(map[string]Row, len(current))
		for _, r := range current {
			byKey[t.pkKey(r)] = r
		}
		for _, r := range t.Rows {
			if r.image() == nil {
				continue
			}
			k := t.pkKey(r.image())
			now := byKey[k]
			if (now == nil) != (r.After == nil) || (now != nil && !now.equal(r.After)) {
				dirty.Rows = append(dirty.Rows, DirtyRow{Table: t.Table, PK: k, Columns: t.Columns, Expected: r.After, Actual: now})
			}
		}
	}
	if len(dirty.Rows) > 0 {
		return dirty
	}
	for i := len(log.Tables) - 1; i >= 0; i-- {
		t := log.Tables[i]
		for j := len(t.Rows) - 1; j >= 0; j-- {
			if err := s.restore(ctx, q, metas[i], t.Rows[j]); err != nil {
				return fmt.Errorf("at: rollback %s branch %d: restore a row of %s: %w", xid, branchID, t.Table, err)
			}
		}
	}
	return nil
}

// restore puts one row back to its before image.
func (s undoStore) restore(ctx context.Context, q queryer, m *TableMeta, r RowImage) error {
	if r.Before == nil && r.After == nil {
		return nil // inserted and deleted again by the branch
	}
	name := s.d.Quote(m.Name)
	switch {
	case r.Before == nil:
		_, err := q.exec(ctx, "DELETE FROM "+name+" WHERE "+pkCondition(s.d, m, "", 1), pkArgs(m, m.PK, []Row{r.After}))
		return err
	case r.After == nil:
		var cols []string
		var args []any
		for i, c := range m.Columns {
			if c.Generated {
				continue
			}
			cols = append(cols, s.d.Quote(c.Name))
			args = append(args, r.Before[i].Arg())
		}
		override := ""
		if x, ok := s.d.(ExtendedDialect); ok && x.InsertOverride() != "" {
			override = " " + x.InsertOverride()
		}
		_, err := q.exec(ctx, "INSERT INTO "+name+" ("+strings.Join(cols, ", ")+")"+override+" VALUES ("+
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")+")", args)
		return err
	}
	var set []string
	var args []any
	for i, c := range m.Columns {
		if m.isPK(i) || c.Generated || r.Before[i].Equal(r.After[i]) {
			continue
		}
		set = append(set, s.d.Quote(c.Name)+" = ?")
		args = append(args, r.Before[i].Arg())
	}
	if len(set) == 0 {
		return nil
	}
	args = append(args, pkArgs(m, m.PK, []Row{r.Before})...)
	_, err := q.exec(ctx, "UPDATE "+name+" SET "+strings.Join(set, ", ")+" WHERE "+pkCondition(s.d, m, "", 1), args)
	return err
}

// tableRef splits a possibly schema-qualified table name.
func tableRef(name string) TableRef {
	if schema, table, ok := strings.Cut(name, "."); ok {
		return TableRef{Schema: schema, Name: table, Alias: table}
	}
	return TableRef{Name: name, Alias: name}
}

// deleteUndo deletes the undo logs of committed branches.
func (s undoStore) deleteUndo(ctx context.Context, db *sql.DB, branches []branchKey) error {
	for start := 0; start < len(branches); start += maxKeysPerQuery {
		batch := branches[start:min(start+maxKeysPerQuery, len(branches))]
		args := make([]any, 0, 2*len(batch))
		for _, b := range batch {
			args = append(args, b.xid, b.branchID)
		}
		query, err := bind(s.d, "DELETE FROM "+s.d.Quote(s.table)+" WHERE "+keysMatch(undoKey, len(batch)))
		if err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("at: delete %d undo logs: %w", len(batch), err)
		}
	}
	return nil
}

// undoKey is the primary key of the undo table, for keysMatch.
var undoKey = []string{"xid", "branch_id"}

// branchKey names one branch's undo row.
type branchKey struct {
	xid      string
	branchID int64
}
