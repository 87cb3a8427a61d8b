package at

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// executor runs one statement of a global (or global-lock) transaction
// with its images, on the connection the transaction runs on.
type executor struct {
	d     Dialect
	cache *metaCache
	q     queryer
}

// pick returns the arguments at positions idx.
func pick(args []any, idx ...[]int) []any {
	var out []any
	for _, ix := range idx {
		for _, i := range ix {
			out = append(out, args[i])
		}
	}
	return out
}

// meta returns the metadata of a table a statement writes, refusing a table
// without a primary key.
func (e *executor) meta(ctx context.Context, st *Statement, ref TableRef) (*TableMeta, error) {
	m, err := e.cache.get(ctx, e.d, e.q, ref)
	if err != nil {
		return nil, err
	}
	if len(m.PK) == 0 {
		return nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("table %s has no primary key, so its rows cannot be identified for undo or locking; add one", m.Name)}
	}
	if why := m.Refuse[st.Kind]; why != "" {
		return nil, &RefusedError{SQL: st.SQL, Reason: why}
	}
	return m, nil
}

// schemaChanged drops cached metadata when err says the schema moved.
func (e *executor) schemaChanged(err error) error {
	if err != nil && e.d.IsSchemaChange(err) {
		e.cache.invalidate()
	}
	return err
}

// run executes st, adding its images to undo. It returns the statement's
// result and, for statements whose outcome the images contradict, an error
// wrapping ErrTxAborted after the statement ran.
func (e *executor) run(ctx context.Context, st *Statement, args []any, undo *UndoLog) (execResult, error) {
	var res execResult
	var err error
	switch st.Kind {
	case KindRefused:
		return res, &RefusedError{SQL: st.SQL, Reason: st.Refusal}
	case KindUpdate, KindDelete:
		res, err = e.updateOrDelete(ctx, st, args, undo)
	case KindInsert:
		res, err = e.insert(ctx, st, args, undo)
	case KindUpsert:
		res, err = e.upsert(ctx, st, args, undo)
	default:
		res, err = e.q.exec(ctx, st.SQL, pick(args, st.Args))
	}
	return res, e.schemaChanged(err)
}

// check refuses st for what can be told before it runs: its kind, and
// what its tables' metadata rule out. The statements of a string of
// several are all checked before the first runs.
func (e *executor) check(ctx context.Context, st *Statement, args []any) error {
	var err error
	switch st.Kind {
	case KindRefused:
		err = &RefusedError{SQL: st.SQL, Reason: st.Refusal}
	case KindUpdate, KindDelete:
		_, err = e.targets(ctx, st)
	case KindSelectForUpdate:
		for _, ref := range st.Targets {
			if _, err = e.meta(ctx, st, ref); err != nil {
				break
			}
		}
	case KindInsert:
		_, err = e.planInsert(ctx, st)
	case KindUpsert:
		_, _, _, err = e.planUpsert(ctx, st, args)
	}
	return err
}

// target pairs a written table with its metadata.
type target struct {
	ref  TableRef
	meta *TableMeta
}

func (e *executor) targets(ctx context.Context, st *Statement) ([]target, error) {
	var ts []target
	for _, ref := range st.Targets {
		m, err := e.meta(ctx, st, ref)
		if err != nil {
			return nil, err
		}
		ts = append(ts, target{ref: ref, meta: m})
	}
	if st.Kind != KindUpdate {
		return ts, nil
	}
	// Keep the tables SET assigns; refuse assigning a primary key, since the
	// after image is read by the key the row had.
	used := make([]bool, len(ts))
	for _, c := range st.Set {
		found := false
		for i, t := range ts {
			if c.Qualifier != "" && !strings.EqualFold(c.Qualifier, t.ref.Alias) {
				continue
			}
			col := t.meta.ColumnIndex(c.Name)
			if col < 0 {
				continue
			}
			if t.meta.isPK(col) {
				return nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("UPDATE assigns primary key column %s of %s; delete and insert the row instead", c.Name, t.meta.Name)}
			}
			used[i], found = true, true
			break
		}
		if !found {
			// The column may have been added since the metadata was read.
			e.cache.invalidate()
			return nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("SET column %s matches no table of the statement (metadata reloads on the next statement)", c.Name)}
		}
	}
	var out []target
	for i, t := range ts {
		if used[i] {
			out = append(out, t)
		}
	}
	return out, nil
}

// orderWithKey appends the primary keys of ts to ORDER BY, so that LIMIT
// picks the same rows in the image and the statement.
func (e *executor) orderWithKey(st *Statement, ts []target) Fragment {
	f := Fragment{SQL: st.OrderBy.SQL, Args: st.OrderBy.Args}
	for _, t := range ts {
		for _, p := range t.meta.PK {
			if f.SQL != "" {
				f.SQL += ", "
			}
			f.SQL += e.d.Quote(t.ref.Alias) + "." + e.d.Quote(t.meta.Columns[p].Name)
		}
	}
	return f
}

func (e *executor) updateOrDelete(ctx context.Context, st *Statement, args []any, undo *UndoLog) (execResult, error) {
	ts, err := e.targets(ctx, st)
	if err != nil {
		return execResult{}, err
	}
	// Before image: the statement's own FROM, WHERE, ORDER BY and LIMIT,
	// reading every column of every target, locking the rows.
	var sel strings.Builder
	sel.WriteString("SELECT ")
	for i, t := range ts {
		if i > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString(selectList(e.d, t.meta, t.ref.Alias))
	}
	sel.WriteString(" FROM " + st.From.SQL)
	if !st.Where.Empty() {
		sel.WriteString(" WHERE " + st.Where.SQL)
	}
	order := st.OrderBy
	if !st.Limit.Empty() {
		order = e.orderWithKey(st, ts)
	}
	if !order.Empty() {
		sel.WriteString(" ORDER BY " + order.SQL)
	}
	if !st.Limit.Empty() {
		sel.WriteString(" " + st.Limit.SQL)
	}
	sel.WriteString(lockRows(e.d, ts))
	raw, err := e.q.Query(ctx, sel.String(), pick(args, st.From.Args, st.Where.Args, order.Args, st.Limit.Args))
	if err != nil {
		return execResult{}, err
	}
	before := make([][]Row, len(ts))
	for i, t := range ts {
		off := 0
		for _, u := range ts[:i] {
			off += len(u.meta.Columns)
		}
		seen := map[string]bool{}
		img := undo.table(t.meta)
		for _, r := range raw {
			row, err := decodeRow(e.d, t.meta, r, off)
			if err != nil {
				return execResult{}, err
			}
			if nullKey(t.meta, row) {
				continue // the outer side of a join with no match
			}
			if k := img.pkKey(row); !seen[k] {
				seen[k] = true
				before[i] = append(before[i], row)
			}
		}
	}
	matched := 0
	for _, b := range before {
		matched += len(b)
	}
	if _, ok := e.d.(ExtendedDialect); ok {
		return e.runReturning(ctx, st, ts, before, args, undo)
	}
	// The statement runs on exactly the rows of the before image: its
	// WHERE is replaced (one table) or completed (a join) by their keys,
	// so a WHERE that matches other rows the second time (RAND(), a
	// subquery over rows committed in between) cannot change rows the
	// image lacks.
	var res execResult
	if st.MultiTable {
		query, qargs, err := e.constrainJoin(st, ts, before, args)
		if err != nil {
			return res, err
		}
		if res, err = e.q.exec(ctx, query, qargs); err != nil {
			return res, err
		}
	} else {
		for start := 0; start == 0 || start < len(before[0]); start += maxKeysPerQuery {
			keys := before[0][start:min(start+maxKeysPerQuery, len(before[0]))]
			query, qargs := e.constrainOne(st, ts[0], keys, args)
			r, err := e.q.exec(ctx, query, qargs)
			if err != nil && start > 0 {
				// The chunks before this one changed rows that have no undo
				// image yet: the branch could not be rolled back exactly.
				return res, fmt.Errorf("%w: %q failed after changing the rows of its first %d keys, which have no undo image; roll back the local transaction: %w",
					ErrTxAborted, abbreviate(st.SQL, 200), start, err)
			}
			if err != nil {
				return res, err
			}
			res.rowsAffected += r.rowsAffected
		}
	}
	// An UPDATE may change fewer rows than it matched (MySQL counts the
	// rows whose values changed), never more; a DELETE must delete every
	// row of its image, or the rollback would insert rows that exist.
	if res.rowsAffected > int64(matched) || st.Kind == KindDelete && res.rowsAffected != int64(matched) {
		return res, fmt.Errorf("%w: %q changed %d rows but its before image holds %d, which it was limited to (its WHERE matched them differently the second time: not deterministic, or reading rows changed in between); make the WHERE deterministic, or select the rows first and write them by primary key",
			ErrTxAborted, abbreviate(st.SQL, 200), res.rowsAffected, matched)
	}
	for i, t := range ts {
		var after []Row
		var err error
		if st.Kind == KindUpdate && len(before[i]) > 0 {
			if after, err = readByPK(ctx, e.d, e.q, t.meta, before[i], false); err != nil {
				// The rows are changed and their undo image is incomplete.
				return res, fmt.Errorf("%w: read the after image of %q: %w; roll back the local transaction", ErrTxAborted, abbreviate(st.SQL, 200), err)
			}
		}
		undo.add(t.meta, before[i], after)
		if i == 0 {
			res.meta, res.rows = t.meta, after
			if st.Kind == KindDelete {
				res.rows = before[i]
			}
		}
	}
	return res, nil
}

// keysOf returns the condition matching the primary keys of rows of t,
// qualified by its alias, with its arguments; "1 = 0" for no rows.
func (e *executor) keysOf(t target, rows []Row) (string, []any) {
	if len(rows) == 0 {
		return "1 = 0", nil
	}
	return pkCondition(e.d, t.meta, t.ref.Alias, len(rows)), pkArgs(t.meta, t.meta.PK, rows)
}

// constrainOne writes a one-table UPDATE or DELETE again to change the
// rows of keys and no others.
func (e *executor) constrainOne(st *Statement, t target, keys []Row, args []any) (string, []any) {
	ignore := ""
	if st.Ignore {
		ignore = "IGNORE "
	}
	cond, kargs := e.keysOf(t, keys)
	if st.Kind == KindUpdate {
		return "UPDATE " + ignore + st.From.SQL + " SET " + st.SetClause.SQL + " WHERE " + cond,
			append(pick(args, st.From.Args, st.SetClause.Args), kargs...)
	}
	return "DELETE " + ignore + "FROM " + st.From.SQL + " WHERE " + cond, append(pick(args, st.From.Args), kargs...)
}

// maxJoinKeys bounds the keys an UPDATE or DELETE over a join may be
// limited to, in one statement (MySQL takes at most 65,535 placeholders).
const maxJoinKeys = 20000

// constrainJoin writes a MySQL UPDATE or DELETE over a join again, its
// WHERE completed by the keys of the before image of every target.
func (e *executor) constrainJoin(st *Statement, ts []target, before [][]Row, args []any) (string, []any, error) {
	var sb strings.Builder
	var qargs []any
	ignore := ""
	if st.Ignore {
		ignore = "IGNORE "
	}
	if st.Kind == KindUpdate {
		sb.WriteString("UPDATE " + ignore + st.From.SQL + " SET " + st.SetClause.SQL)
		qargs = pick(args, st.From.Args, st.SetClause.Args)
	} else {
		aliases := make([]string, len(ts))
		for i, t := range ts {
			aliases[i] = e.d.Quote(t.ref.Alias)
		}
		sb.WriteString("DELETE " + ignore + strings.Join(aliases, ", ") + " FROM " + st.From.SQL)
		qargs = pick(args, st.From.Args)
	}
	sb.WriteString(" WHERE ")
	if !st.Where.Empty() {
		sb.WriteString("(" + st.Where.SQL + ") AND ")
		qargs = append(qargs, pick(args, st.Where.Args)...)
	}
	n := 0
	for i, t := range ts {
		n += len(before[i]) * len(t.meta.PK)
		if n > maxJoinKeys {
			return "", nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("a write over a join is limited to the rows of its before image, and this one matched more than %d key values; split it, or write the rows of each table by primary key", maxJoinKeys)}
		}
		if i > 0 {
			sb.WriteString(" AND ")
		}
		cond, kargs := e.keysOf(t, before[i])
		sb.WriteString(cond)
		qargs = append(qargs, kargs...)
	}
	return sb.String(), qargs, nil
}

// runReturning runs an UPDATE or DELETE on a database that answers
// RETURNING (ExtendedDialect): the rows it changed come back with it, in
// the same round trip. Each must be one the before image holds, or its
// undo would be wrong; a row the image holds that the statement left alone
// is unchanged (its lock was held throughout).
func (e *executor) runReturning(ctx context.Context, st *Statement, ts []target, before [][]Row, args []any, undo *UndoLog) (execResult, error) {
	t := ts[0]
	cols := selectList(e.d, t.meta, t.ref.Alias)
	if st.Kind == KindDelete {
		cols = pkList(e.d, t.meta, t.ref.Alias)
	}
	returned, err := e.queryRows(ctx, st.SQL+" RETURNING "+cols, pick(args, st.Args), t.meta, st.Kind == KindDelete)
	if err != nil {
		return execResult{}, err
	}
	img := undo.table(t.meta)
	imaged := make(map[string]Row, len(before[0]))
	for _, r := range before[0] {
		imaged[img.pkKey(r)] = r
	}
	changed := make(map[string]Row, len(returned))
	for _, r := range returned {
		k := img.pkKey(r)
		if imaged[k] == nil {
			return execResult{rowsAffected: int64(len(returned))}, fmt.Errorf("%w: %q changed a row its before image does not hold (its WHERE matched other rows the second time: not deterministic, or reading rows changed in between); make the WHERE deterministic, or select the rows first and write them by primary key",
				ErrTxAborted, abbreviate(st.SQL, 200))
		}
		changed[k] = r
	}
	res := execResult{rowsAffected: int64(len(returned)), meta: t.meta}
	var b, after []Row
	for _, r := range before[0] {
		k := img.pkKey(r)
		switch c := changed[k]; {
		case c == nil:
			// Left alone: it stays out of the undo log.
		case st.Kind == KindDelete:
			b = append(b, r)
		default:
			b, after = append(b, r), append(after, c)
		}
	}
	undo.add(t.meta, b, after)
	res.rows = after
	if st.Kind == KindDelete {
		res.rows = b
	}
	return res, nil
}

// pkList returns the select-list reading the primary key columns of m
// through qualifier.
func pkList(d Dialect, m *TableMeta, qualifier string) string {
	cols := make([]string, len(m.PK))
	for i, p := range m.PK {
		cols[i] = selectColumn(d, qualifier, m.Columns[p])
	}
	return strings.Join(cols, ", ")
}

// queryRows runs query and decodes its rows: every column of m, or with
// keysOnly the primary key columns only (the other values of each Row
// left zero).
func (e *executor) queryRows(ctx context.Context, query string, args []any, m *TableMeta, keysOnly bool) ([]Row, error) {
	raw, err := e.q.Query(ctx, query, args)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(raw))
	for _, r := range raw {
		if !keysOnly {
			row, err := decodeRow(e.d, m, r, 0)
			if err != nil {
				return nil, err
			}
			rows = append(rows, row)
			continue
		}
		if len(r) != len(m.PK) {
			return nil, fmt.Errorf("at: key of %s has %d values, want %d", m.Name, len(r), len(m.PK))
		}
		row := make(Row, len(m.Columns))
		for j, p := range m.PK {
			if row[p], err = e.d.Normalize(m.Columns[p], r[j]); err != nil {
				return nil, fmt.Errorf("at: column %s of %s: %w", m.Columns[p].Name, m.Name, err)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// insertColumns maps the INSERT's columns to positions in m.
func (e *executor) insertColumns(st *Statement, m *TableMeta) ([]int, error) {
	if st.Insert.Columns == nil {
		cols := make([]int, len(m.Columns))
		for i := range cols {
			cols[i] = i
		}
		return cols, nil
	}
	cols := make([]int, len(st.Insert.Columns))
	for i, name := range st.Insert.Columns {
		if cols[i] = m.ColumnIndex(name); cols[i] < 0 {
			e.cache.invalidate()
			return nil, fmt.Errorf("at: INSERT names column %s that %s does not have (metadata reloads on the next statement)", name, m.Name)
		}
	}
	return cols, nil
}

// insertPlan is what an INSERT needs known before it runs.
type insertPlan struct {
	m    *TableMeta
	cols []int
	// generated counts the rows whose key the database numbers.
	generated int
}

// planInsert checks an INSERT against its table's metadata, refusing what
// cannot be imaged, before it runs.
func (e *executor) planInsert(ctx context.Context, st *Statement) (insertPlan, error) {
	m, err := e.meta(ctx, st, st.Targets[0])
	if err != nil {
		return insertPlan{}, err
	}
	cols, err := e.insertColumns(st, m)
	if err != nil {
		return insertPlan{}, err
	}
	for _, row := range st.Insert.Rows {
		if len(row) != len(cols) {
			return insertPlan{}, fmt.Errorf("at: INSERT row has %d values for %d columns", len(row), len(cols))
		}
	}
	p := insertPlan{m: m, cols: cols}
	if _, ok := e.d.(ExtendedDialect); ok {
		return p, nil // RETURNING reads the rows back, whatever their keys
	}
	// Each row's key is given (literals or placeholders) or numbered by the
	// database; a mix in one statement cannot be read back.
	auto := m.AutoIncrement()
	explicit := 0
	for _, row := range st.Insert.Rows {
		given := true
		for _, p := range m.PK {
			pos := slices.Index(cols, p)
			switch {
			case pos >= 0 && row[pos].Kind == ValueConst:
			case (pos < 0 || row[pos].Kind == ValueDefault) && p == auto && len(m.PK) == 1:
				given = false
			default:
				return insertPlan{}, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("primary key column %s of %s must be a literal, a placeholder or auto-increment", m.Columns[p].Name, m.Name)}
			}
		}
		if given {
			explicit++
		} else {
			p.generated++
		}
	}
	if explicit > 0 && p.generated > 0 {
		return insertPlan{}, &RefusedError{SQL: st.SQL, Reason: "rows mix given and auto-increment keys; insert them in separate statements"}
	}
	return p, nil
}

func (e *executor) insert(ctx context.Context, st *Statement, args []any, undo *UndoLog) (execResult, error) {
	p, err := e.planInsert(ctx, st)
	if err != nil {
		return execResult{}, err
	}
	m, cols, generated := p.m, p.cols, p.generated
	if _, ok := e.d.(ExtendedDialect); ok {
		return e.insertReturning(ctx, st, args, undo, m)
	}
	res, err := e.q.exec(ctx, st.SQL, pick(args, st.Args))
	if err != nil {
		return res, err
	}
	var after []Row
	if generated > 0 {
		first := e.d.FirstInsertID(res.lastInsertID, res.rowsAffected)
		keys := make([]Row, res.rowsAffected)
		for i := range keys {
			k := make(Row, len(m.Columns))
			k[m.PK[0]] = Value{Type: TypeInt, Int: first + int64(i)}
			if m.Columns[m.PK[0]].Unsigned {
				k[m.PK[0]] = Value{Type: TypeUint, Uint: uint64(first + int64(i))}
			}
			keys[i] = k
		}
		after, err = readByPK(ctx, e.d, e.q, m, keys, false)
	} else {
		cond, cargs := e.keyCondition(m, [][]int{m.PK}, cols, st.Insert.Rows, args)
		after, err = readWhere(ctx, e.d, e.q, m, cond, cargs, false)
	}
	if err != nil {
		return res, err
	}
	if int64(len(after)) != res.rowsAffected {
		return res, fmt.Errorf("%w: %q inserted %d rows but %d were read back (is auto_increment_increment 1?)",
			ErrTxAborted, abbreviate(st.SQL, 200), res.rowsAffected, len(after))
	}
	undo.add(m, nil, after)
	res.meta, res.rows = m, after
	return res, nil
}

// insertReturning runs an INSERT with RETURNING of every column: its rows
// are the after image, whatever its keys are made of.
func (e *executor) insertReturning(ctx context.Context, st *Statement, args []any, undo *UndoLog, m *TableMeta) (execResult, error) {
	after, err := e.queryRows(ctx, st.SQL+" RETURNING "+selectList(e.d, m, st.Targets[0].Alias), pick(args, st.Args), m, false)
	if err != nil {
		return execResult{}, err
	}
	undo.add(m, nil, after)
	return execResult{rowsAffected: int64(len(after)), meta: m, rows: after}, nil
}

// keyCondition returns a condition matching, for every row, each of keys
// whose columns the row gives as constants, with its arguments. A row that
// gives no key whole gets no condition.
func (e *executor) keyCondition(m *TableMeta, keys [][]int, cols []int, rows [][]InsertValue, args []any) (string, []any) {
	var parts []string
	var out []any
	for _, row := range rows {
		for _, key := range keys {
			var conj []string
			var kargs []any
			for _, p := range key {
				pos := -1
				for i, c := range cols {
					if c == p {
						pos = i
					}
				}
				if pos < 0 || row[pos].Kind != ValueConst || hasNil(pick(args, row[pos].Args)) {
					// A NULL never equals anything: the key cannot find the row.
					conj = nil
					break
				}
				conj = append(conj, e.d.Quote(m.Columns[p].Name)+" = "+row[pos].SQL)
				kargs = append(kargs, pick(args, row[pos].Args)...)
			}
			if conj != nil {
				parts = append(parts, "("+strings.Join(conj, " AND ")+")")
				out = append(out, kargs...)
			}
		}
	}
	return strings.Join(parts, " OR "), out
}

// planUpsert checks an upsert against its table's metadata, refusing what
// cannot be imaged, before it runs. It returns the table, the positions of
// the columns given and the keys rows are found by.
func (e *executor) planUpsert(ctx context.Context, st *Statement, args []any) (*TableMeta, []int, [][]int, error) {
	m, err := e.meta(ctx, st, st.Targets[0])
	if err != nil {
		return nil, nil, nil, err
	}
	cols, err := e.insertColumns(st, m)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, c := range st.Insert.Update {
		col := m.ColumnIndex(c.Name)
		if col >= 0 && m.inUnique(col) {
			return nil, nil, nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("the upsert's update assigns key column %s; rows could not be found again", c.Name)}
		}
	}
	keys := append([][]int{m.PK}, m.Uniques...)
	for _, row := range st.Insert.Rows {
		if len(row) != len(cols) {
			return nil, nil, nil, fmt.Errorf("at: INSERT row has %d values for %d columns", len(row), len(cols))
		}
		if c, _ := e.keyCondition(m, keys, cols, [][]InsertValue{row}, args); c == "" {
			return nil, nil, nil, &RefusedError{SQL: st.SQL, Reason: "every row of an upsert must give all columns of a primary or unique key as literals or placeholders"}
		}
		if key := unseenKey(m, keys, cols, row); key != nil {
			return nil, nil, nil, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("an upsert row gives key (%s) neither as literals or placeholders nor as a number the database generates: the row it may conflict with could not be imaged", keyNames(m, key))}
		}
	}
	return m, cols, keys, nil
}

func (e *executor) upsert(ctx context.Context, st *Statement, args []any, undo *UndoLog) (execResult, error) {
	m, cols, keys, err := e.planUpsert(ctx, st, args)
	if err != nil {
		return execResult{}, err
	}
	cond, cargs := e.keyCondition(m, keys, cols, st.Insert.Rows, args)
	before, err := readWhere(ctx, e.d, e.q, m, cond, cargs, true)
	if err != nil {
		return execResult{}, err
	}
	res, err := e.q.exec(ctx, st.SQL, pick(args, st.Args))
	if err != nil {
		return res, err
	}
	after, err := readWhere(ctx, e.d, e.q, m, cond, cargs, false)
	if err != nil {
		return res, err
	}
	undo.add(m, before, after)
	res.meta, res.rows = m, after
	return res, nil
}

// unseenKey returns a key of keys that row could conflict on without the
// images finding the row it conflicts with: one with a column the row gives
// as an expression, or leaves out (its default could conflict), unless it
// is the auto-increment column left to the database. It returns nil when
// every key is given as constants, or cannot conflict.
func unseenKey(m *TableMeta, keys [][]int, cols []int, row []InsertValue) []int {
	for _, key := range keys {
		for _, p := range key {
			pos := slices.Index(cols, p)
			generated := len(key) == 1 && m.Columns[p].AutoIncrement && (pos < 0 || row[pos].Kind == ValueDefault)
			if !generated && (pos < 0 || row[pos].Kind == ValueExpr) {
				return key
			}
		}
	}
	return nil
}

// keyNames lists the names of key's columns.
func keyNames(m *TableMeta, key []int) string {
	names := make([]string, len(key))
	for i, p := range key {
		names[i] = m.Columns[p].Name
	}
	return strings.Join(names, ", ")
}

// selectKeys runs the key-reading form of a SELECT ... FOR UPDATE: the
// primary keys of every locked table, locking the rows. It returns lock keys.
func (e *executor) selectKeys(ctx context.Context, st *Statement, args []any) (string, error) {
	var ts []target
	for _, ref := range st.Targets {
		m, err := e.meta(ctx, st, ref)
		if err != nil {
			return "", err
		}
		ts = append(ts, target{ref: ref, meta: m})
	}
	var sel strings.Builder
	sel.WriteString("SELECT ")
	for i, t := range ts {
		for j, p := range t.meta.PK {
			if i > 0 || j > 0 {
				sel.WriteString(", ")
			}
			sel.WriteString(selectColumn(e.d, t.ref.Alias, t.meta.Columns[p]))
		}
	}
	sel.WriteString(" FROM " + st.From.SQL)
	if !st.Where.Empty() {
		sel.WriteString(" WHERE " + st.Where.SQL)
	}
	if !st.OrderBy.Empty() {
		sel.WriteString(" ORDER BY " + st.OrderBy.SQL)
	}
	if !st.Limit.Empty() {
		sel.WriteString(" " + st.Limit.SQL)
	}
	sel.WriteString(lockRows(e.d, ts))
	raw, err := e.q.Query(ctx, sel.String(), pick(args, st.From.Args, st.Where.Args, st.OrderBy.Args, st.Limit.Args))
	if err != nil {
		return "", e.schemaChanged(err)
	}
	var u UndoLog
	off := 0
	for _, t := range ts {
		var rows []Row
		for _, r := range raw {
			row := make(Row, len(t.meta.Columns))
			for j, p := range t.meta.PK {
				v, err := e.d.Normalize(t.meta.Columns[p], r[off+j])
				if err != nil {
					return "", err
				}
				row[p] = v
			}
			rows = append(rows, row)
		}
		u.add(t.meta, rows, rows)
		off += len(t.meta.PK)
	}
	return u.LockKeys(), nil
}

func hasNil(vals []any) bool {
	for _, v := range vals {
		if v == nil {
			return true
		}
	}
	return false
}

func nullKey(m *TableMeta, r Row) bool {
	for _, p := range m.PK {
		if r[p].Type == TypeNull {
			return true
		}
	}
	return false
}
