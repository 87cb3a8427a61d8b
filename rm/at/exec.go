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
	// The statement; with LIMIT it is rebuilt with the same key order.
	query, qargs := st.SQL, pick(args, st.Args)
	if !st.Limit.Empty() && !st.MultiTable {
		query, qargs = e.rebuild(st, order, args)
	}
	var (
		res       execResult
		returned  []Row
		returning = e.updateReturns(st, ts)
	)
	if returning {
		returned, err = e.queryRows(ctx, query+" RETURNING "+selectList(e.d, ts[0].meta, ts[0].ref.Alias), qargs, ts[0].meta)
		res.rowsAffected = int64(len(returned))
	} else {
		res, err = e.q.exec(ctx, query, qargs)
	}
	if err != nil {
		return res, err
	}
	matched := 0
	for _, b := range before {
		matched += len(b)
	}
	if res.rowsAffected > int64(matched) {
		return res, fmt.Errorf("%w: %q changed %d rows but its before image holds %d (rows appeared between the image and the statement; use REPEATABLE READ)",
			ErrTxAborted, abbreviate(st.SQL, 200), res.rowsAffected, matched)
	}
	if returning {
		// The rows changed are known: each must be one the before image
		// holds, or their undo would be wrong (a WHERE that is not
		// deterministic, or reads rows committed between the two).
		img := undo.table(ts[0].meta)
		imaged := make(map[string]bool, len(before[0]))
		for _, r := range before[0] {
			imaged[img.pkKey(r)] = true
		}
		for _, r := range returned {
			if !imaged[img.pkKey(r)] {
				return res, fmt.Errorf("%w: %q changed a row its before image does not hold (its WHERE matched other rows the second time: not deterministic, or rows changed between the image and the statement; use REPEATABLE READ)",
					ErrTxAborted, abbreviate(st.SQL, 200))
			}
		}
	}
	for i, t := range ts {
		var after []Row
		switch {
		case returning:
			after = returned
		case st.Kind == KindUpdate && len(before[i]) > 0:
			if after, err = readByPK(ctx, e.d, e.q, t.meta, before[i], false); err != nil {
				return res, err
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

// updateReturns reports whether st, an UPDATE or DELETE of targets ts,
// is an UPDATE of one table on a database that answers RETURNING
// (ExtendedDialect): its after image then comes back with the statement,
// in the same round trip, instead of from a read by primary key.
func (e *executor) updateReturns(st *Statement, ts []target) bool {
	_, ok := e.d.(ExtendedDialect)
	return ok && st.Kind == KindUpdate && len(ts) == 1 && !st.MultiTable
}

// queryRows runs query and decodes its rows, every column of m.
func (e *executor) queryRows(ctx context.Context, query string, args []any, m *TableMeta) ([]Row, error) {
	raw, err := e.q.Query(ctx, query, args)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(raw))
	for _, r := range raw {
		row, err := decodeRow(e.d, m, r, 0)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// rebuild writes a single-table UPDATE or DELETE with LIMIT again, its
// ORDER BY completed by the primary key.
func (e *executor) rebuild(st *Statement, order Fragment, args []any) (string, []any) {
	var sb strings.Builder
	var idx [][]int
	ignore := ""
	if st.Ignore {
		ignore = "IGNORE "
	}
	if st.Kind == KindUpdate {
		sb.WriteString("UPDATE " + ignore + st.From.SQL + " SET " + st.SetClause.SQL)
		idx = append(idx, st.From.Args, st.SetClause.Args)
	} else {
		sb.WriteString("DELETE " + ignore + "FROM " + st.From.SQL)
		idx = append(idx, st.From.Args)
	}
	if !st.Where.Empty() {
		sb.WriteString(" WHERE " + st.Where.SQL)
	}
	sb.WriteString(" ORDER BY " + order.SQL + " " + st.Limit.SQL)
	idx = append(idx, st.Where.Args, order.Args, st.Limit.Args)
	return sb.String(), pick(args, idx...)
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

func (e *executor) insert(ctx context.Context, st *Statement, args []any, undo *UndoLog) (execResult, error) {
	m, err := e.meta(ctx, st, st.Targets[0])
	if err != nil {
		return execResult{}, err
	}
	cols, err := e.insertColumns(st, m)
	if err != nil {
		return execResult{}, err
	}
	for _, row := range st.Insert.Rows {
		if len(row) != len(cols) {
			return execResult{}, fmt.Errorf("at: INSERT row has %d values for %d columns", len(row), len(cols))
		}
	}
	if _, ok := e.d.(ExtendedDialect); ok {
		return e.insertReturning(ctx, st, args, undo, m)
	}
	// Each row's key is given (literals or placeholders) or numbered by the
	// database; a mix in one statement cannot be read back.
	auto := m.AutoIncrement()
	explicit, generated := 0, 0
	keyExprs := make([][]Fragment, len(st.Insert.Rows))
	for r, row := range st.Insert.Rows {
		for _, p := range m.PK {
			pos := -1
			for i, c := range cols {
				if c == p {
					pos = i
				}
			}
			switch {
			case pos >= 0 && row[pos].Kind == ValueConst:
				keyExprs[r] = append(keyExprs[r], row[pos].Fragment)
			case (pos < 0 || row[pos].Kind == ValueDefault) && p == auto && len(m.PK) == 1:
				keyExprs[r] = nil
			default:
				return execResult{}, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("primary key column %s of %s must be a literal, a placeholder or auto-increment", m.Columns[p].Name, m.Name)}
			}
		}
		if keyExprs[r] == nil {
			generated++
		} else {
			explicit++
		}
	}
	if explicit > 0 && generated > 0 {
		return execResult{}, &RefusedError{SQL: st.SQL, Reason: "rows mix given and auto-increment keys; insert them in separate statements"}
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
	after, err := e.queryRows(ctx, st.SQL+" RETURNING "+selectList(e.d, m, st.Targets[0].Alias), pick(args, st.Args), m)
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

func (e *executor) upsert(ctx context.Context, st *Statement, args []any, undo *UndoLog) (execResult, error) {
	m, err := e.meta(ctx, st, st.Targets[0])
	if err != nil {
		return execResult{}, err
	}
	cols, err := e.insertColumns(st, m)
	if err != nil {
		return execResult{}, err
	}
	for _, c := range st.Insert.Update {
		col := m.ColumnIndex(c.Name)
		if col >= 0 && m.inUnique(col) {
			return execResult{}, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("the upsert's update assigns key column %s; rows could not be found again", c.Name)}
		}
	}
	keys := append([][]int{m.PK}, m.Uniques...)
	for _, row := range st.Insert.Rows {
		if len(row) != len(cols) {
			return execResult{}, fmt.Errorf("at: INSERT row has %d values for %d columns", len(row), len(cols))
		}
		if c, _ := e.keyCondition(m, keys, cols, [][]InsertValue{row}, args); c == "" {
			return execResult{}, &RefusedError{SQL: st.SQL, Reason: "every row of an upsert (INSERT ... ON DUPLICATE KEY UPDATE, INSERT IGNORE, ON CONFLICT) must give all columns of a primary or unique key as literals or placeholders"}
		}
		if key := unseenKey(m, keys, cols, row); key != nil {
			return execResult{}, &RefusedError{SQL: st.SQL, Reason: fmt.Sprintf("an upsert row gives key (%s) neither as literals or placeholders nor as a number the database generates: the row it may conflict with could not be imaged", keyNames(m, key))}
		}
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
