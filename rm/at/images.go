package at

import (
	"context"
	"fmt"
	"strings"
)

// maxKeysPerQuery bounds the rows one read by primary key asks for.
const maxKeysPerQuery = 500

// selectList returns the select-list reading every column of m through
// qualifier.
func selectList(d Dialect, m *TableMeta, qualifier string) string {
	var sb strings.Builder
	for i, c := range m.Columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(selectColumn(d, qualifier, c))
	}
	return sb.String()
}

// decodeRow normalizes the values raw[off:off+len(m.Columns)].
func decodeRow(d Dialect, m *TableMeta, raw []any, off int) (Row, error) {
	if len(raw) < off+len(m.Columns) {
		return nil, fmt.Errorf("at: image of %s has %d values, want %d", m.Name, len(raw)-off, len(m.Columns))
	}
	row := make(Row, len(m.Columns))
	for i, c := range m.Columns {
		v, err := d.Normalize(c, raw[off+i])
		if err != nil {
			return nil, fmt.Errorf("at: column %s of %s: %w", c.Name, m.Name, err)
		}
		row[i] = v
	}
	return row, nil
}

// pkCondition returns the condition matching n primary keys of m, with
// its columns qualified by qualifier when it is not "" (see keysMatch).
func pkCondition(d Dialect, m *TableMeta, qualifier string, n int) string {
	cols := make([]string, len(m.PK))
	for i, p := range m.PK {
		cols[i] = d.Quote(m.Columns[p].Name)
		if qualifier != "" {
			cols[i] = d.Quote(qualifier) + "." + cols[i]
		}
	}
	return keysMatch(cols, n)
}

// keysMatch returns the condition matching n keys over cols, with one
// placeholder per column per key, keys in order: "c IN (?, ...)" for one
// column, "(a = ? AND b = ?)" for one key of several columns, and
// "(a, b) IN ((?, ?), ...)" for more. The single composite key gets no row
// constructor because MariaDB reads the whole table (locking every row
// under FOR UPDATE or DELETE) for a row constructor IN list of one element,
// while it uses the index for two or more.
func keysMatch(cols []string, n int) string {
	var sb strings.Builder
	if len(cols) > 1 && n == 1 {
		sb.WriteByte('(')
		for i, c := range cols {
			if i > 0 {
				sb.WriteString(" AND ")
			}
			sb.WriteString(c + " = ?")
		}
		sb.WriteByte(')')
		return sb.String()
	}
	one := "?"
	if len(cols) == 1 {
		sb.WriteString(cols[0])
	} else {
		sb.WriteString("(" + strings.Join(cols, ", ") + ")")
		one = "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	}
	sb.WriteString(" IN (")
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(one)
	}
	sb.WriteByte(')')
	return sb.String()
}

// pkArgs returns the primary key values of rows as arguments.
func pkArgs(m *TableMeta, pkPositions []int, rows []Row) []any {
	args := make([]any, 0, len(rows)*len(pkPositions))
	for _, r := range rows {
		for _, p := range pkPositions {
			args = append(args, r[p].Arg())
		}
	}
	return args
}

// readByPK reads the rows of m whose primary keys are those of keys
// (full rows of the same table), locking them when lock is set.
func readByPK(ctx context.Context, d Dialect, q queryer, m *TableMeta, keys []Row, lock bool) ([]Row, error) {
	var out []Row
	name := d.Quote(m.Name)
	for start := 0; start < len(keys); start += maxKeysPerQuery {
		batch := keys[start:min(start+maxKeysPerQuery, len(keys))]
		query := "SELECT " + selectList(d, m, m.Name) + " FROM " + name + " WHERE " + pkCondition(d, m, m.Name, len(batch))
		if lock {
			query += d.ForUpdate()
		}
		raw, err := q.Query(ctx, query, pkArgs(m, m.PK, batch))
		if err != nil {
			return nil, err
		}
		for _, r := range raw {
			row, err := decodeRow(d, m, r, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// readWhere reads the rows of m a condition selects.
func readWhere(ctx context.Context, d Dialect, q queryer, m *TableMeta, cond string, args []any, lock bool) ([]Row, error) {
	query := "SELECT " + selectList(d, m, m.Name) + " FROM " + d.Quote(m.Name) + " WHERE " + cond
	if lock {
		query += d.ForUpdate()
	}
	raw, err := q.Query(ctx, query, args)
	if err != nil {
		return nil, err
	}
	out := make([]Row, 0, len(raw))
	for _, r := range raw {
		row, err := decodeRow(d, m, r, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}
