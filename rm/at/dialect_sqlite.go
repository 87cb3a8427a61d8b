package at

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pingcap/tidb/pkg/parser/format"
	"github.com/pingcap/tidb/pkg/parser/mysql"
)

type sqliteDialect struct{ p *tidbParser }

var sqliteSingleton = &sqliteDialect{p: newSQLiteParser()}

func newSQLiteParser() *tidbParser {
	p := newTiDBParser(
		mysql.ModeANSIQuotes|mysql.ModeNoBackslashEscapes|mysql.ModePipesAsConcat,
		format.RestoreStringSingleQuotes|format.RestoreKeyWordUppercase|
			format.RestoreNameDoubleQuotes|format.RestoreStringWithoutCharset)
	p.sqlite = true
	return p
}

// SQLite returns the dialect of SQLite. Its DML is parsed by TiDB's parser
// with ANSI quotes ("name" is an identifier), no backslash escapes and || as
// concatenation, which covers the SQL SQLite and MySQL share: INSERT with
// VALUES, UPDATE, DELETE and SELECT with the usual expressions. SQLite's
// upserts, INSERT OR IGNORE and INSERT ... ON CONFLICT (target) DO UPDATE
// SET ... / DO NOTHING, are read by a SQLite lexer that cuts the conflict
// clause off and lets TiDB read the INSERT before it; they are upserts,
// imaged through the table's keys. INSERT OR REPLACE, OR FAIL and OR
// ROLLBACK are refused. Metadata comes from PRAGMA table_info and
// index_list.
func SQLite() Dialect { return sqliteSingleton }

func (d *sqliteDialect) Name() string { return "sqlite" }

// lockClause matches the row-locking clause ending a SELECT.
var lockClause = regexp.MustCompile(`(?is)\s+FOR\s+UPDATE(\s+NOWAIT|\s+SKIP\s+LOCKED|\s+WAIT\s+\d+)?\s*$`)

// Parse parses query. SELECT ... FOR UPDATE is accepted and run without its
// lock clause, which SQLite lacks: its transactions lock the whole database.
func (d *sqliteDialect) Parse(query string) ([]Statement, error) {
	stmts, err := d.p.parse(query)
	if err != nil {
		return nil, err
	}
	for i := range stmts {
		if stmts[i].Kind == KindSelectForUpdate {
			stmts[i].SQL = lockClause.ReplaceAllString(stmts[i].SQL, "")
		}
	}
	return stmts, nil
}

func (d *sqliteDialect) Quote(ident string) string { return quoteWith(ident, '"') }

// SelectColumn reads the column through unary +, which SQLite defines as a
// no-op on every storage class: the result has no declared type, so the
// driver returns the stored value as is instead of converting it.
func (d *sqliteDialect) SelectColumn(qualifier, col string) string {
	return "+" + d.Quote(qualifier) + "." + d.Quote(col)
}

func (d *sqliteDialect) ForUpdate() string { return "" }

func (d *sqliteDialect) FirstInsertID(lastInsertID, n int64) int64 { return lastInsertID - n + 1 }

func (d *sqliteDialect) LockWrites(undoTable string) string {
	return "UPDATE " + d.Quote(undoTable) + " SET state = state WHERE 0"
}

func (d *sqliteDialect) LoadTable(ctx context.Context, q Querier, ref TableRef) (*TableMeta, error) {
	prefix := ""
	if ref.Schema != "" {
		prefix = d.Quote(ref.Schema) + "."
	}
	rows, err := q.Query(ctx, "PRAGMA "+prefix+"table_info("+d.Quote(ref.Name)+")", nil)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoTable, ref.QualifiedName())
	}
	// SQLite names are case-insensitive: one spelling per table, so that
	// lock keys agree.
	m := &TableMeta{Name: strings.ToLower(ref.Name)}
	if ref.Schema != "" && !strings.EqualFold(ref.Schema, "main") {
		m.Name = strings.ToLower(ref.Schema) + "." + m.Name
	}
	pkPos := map[int64]int{}
	for i, r := range rows {
		m.Columns = append(m.Columns, Column{Name: asString(r[1]), DataType: strings.ToLower(asString(r[2]))})
		if n, _ := toInt(r[5]); n > 0 {
			pkPos[n] = i
		}
	}
	for k := int64(1); k <= int64(len(pkPos)); k++ {
		m.PK = append(m.PK, pkPos[k])
	}
	// An INTEGER PRIMARY KEY is the rowid: SQLite numbers it.
	if len(m.PK) == 1 && m.Columns[m.PK[0]].DataType == "integer" {
		m.Columns[m.PK[0]].AutoIncrement = true
	}
	idx, err := q.Query(ctx, "PRAGMA "+prefix+"index_list("+d.Quote(ref.Name)+")", nil)
	if err != nil {
		return nil, err
	}
	for _, r := range idx {
		unique, _ := toInt(r[2])
		origin := asString(r[3])
		partial, _ := toInt(r[4])
		if unique != 1 || partial != 0 {
			continue
		}
		info, err := q.Query(ctx, "PRAGMA "+prefix+"index_info("+d.Quote(asString(r[1]))+")", nil)
		if err != nil {
			return nil, err
		}
		var cols []int
		for _, c := range info {
			ci := m.ColumnIndex(asString(c[2]))
			if ci < 0 {
				cols = nil
				break
			}
			cols = append(cols, ci)
		}
		switch {
		case len(cols) == 0:
		case origin == "pk" && len(m.PK) == 0:
			m.PK = cols
		case origin != "pk":
			m.Uniques = append(m.Uniques, cols)
		}
	}
	return m, nil
}

func (d *sqliteDialect) Normalize(c Column, v any) (Value, error) {
	switch x := v.(type) {
	case nil:
		return Value{Type: TypeNull}, nil
	case int64:
		return Value{Type: TypeInt, Int: x}, nil
	case bool:
		if x {
			return Value{Type: TypeInt, Int: 1}, nil
		}
		return Value{Type: TypeInt}, nil
	case float64:
		return Value{Type: TypeFloat, Float: x}, nil
	case string:
		return Value{Type: TypeText, Bytes: []byte(x)}, nil
	case []byte:
		return Value{Type: TypeBytes, Bytes: x}, nil
	case time.Time:
		return Value{Type: TypeTime, Time: x}, nil
	}
	return Value{}, fmt.Errorf("at: cannot keep a %T read from column %s", v, c.Name)
}

func (d *sqliteDialect) CreatedBefore(age time.Duration) (string, any) {
	return "created_at < strftime('%Y-%m-%d %H:%M:%f', 'now', ?)", fmt.Sprintf("-%.3f seconds", age.Seconds())
}

func (d *sqliteDialect) UndoTableDDL(table string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + d.Quote(table) + ` (
  xid TEXT NOT NULL,
  branch_id INTEGER NOT NULL,
  state INTEGER NOT NULL,
  rollback_info BLOB NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  PRIMARY KEY (xid, branch_id)
)`, "CREATE INDEX IF NOT EXISTS " + d.Quote(table+"_created_at") + " ON " + d.Quote(table) + " (created_at)"}
}

func (d *sqliteDialect) IsSchemaChange(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "no such table") || strings.Contains(msg, "no such column") || strings.Contains(msg, "has no column named")
}

func (d *sqliteDialect) IsDuplicateKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
