package at

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/pingcap/tidb/pkg/parser/format"
)

type mysqlDialect struct{ p *tidbParser }

var mysqlSingleton = &mysqlDialect{p: newTiDBParser(0,
	format.RestoreStringSingleQuotes|format.RestoreStringEscapeBackslash|format.RestoreKeyWordUppercase|
		format.RestoreNameBackQuotes|format.RestoreStringWithoutCharset)}

// MySQL returns the dialect of MySQL and MariaDB. Statements are parsed by
// TiDB's parser in the default SQL mode (backslash escapes on, "..." is a
// string); metadata comes from information_schema of the current database
// or the schema a statement names.
func MySQL() Dialect { return mysqlSingleton }

func (d *mysqlDialect) Name() string { return "mysql" }

func (d *mysqlDialect) Parse(query string) ([]Statement, error) { return d.p.parse(query) }

func (d *mysqlDialect) Quote(ident string) string { return quoteWith(ident, '`') }

func (d *mysqlDialect) SelectColumn(qualifier, col string) string {
	return d.Quote(qualifier) + "." + d.Quote(col)
}

// SelectTyped reads FLOAT columns as DOUBLE (multiplied by 1e0, which is
// exact), so that the text protocol, which prints a FLOAT with 6
// significant digits, returns every bit of it: a DOUBLE is printed in the
// shortest form that reads back the same. Every other type is read as
// SelectColumn reads it.
func (d *mysqlDialect) SelectTyped(qualifier string, c Column) string {
	if c.DataType == "float" {
		return "(" + d.SelectColumn(qualifier, c.Name) + " * 1e0)"
	}
	return d.SelectColumn(qualifier, c.Name)
}

func (d *mysqlDialect) ForUpdate() string { return " FOR UPDATE" }

func (d *mysqlDialect) FirstInsertID(lastInsertID, n int64) int64 { return lastInsertID }

func (d *mysqlDialect) LockWrites(string) string { return "" }

func (d *mysqlDialect) LoadTable(ctx context.Context, q Querier, ref TableRef) (*TableMeta, error) {
	schema, args := "DATABASE()", []any{ref.Name}
	if ref.Schema != "" {
		schema, args = "?", []any{ref.Schema, ref.Name}
	}
	rows, err := q.Query(ctx, "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA, TABLE_NAME, TABLE_SCHEMA = DATABASE() FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "+
		schema+" AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", args)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoTable, ref.QualifiedName())
	}
	// One name per table, whatever the statement wrote, so that lock keys
	// agree: qualified only when it lives outside the current database.
	m := &TableMeta{Name: asString(rows[0][4])}
	if asString(rows[0][5]) != "1" {
		m.Name = ref.Schema + "." + m.Name
	}
	for _, r := range rows {
		ctype := strings.ToLower(asString(r[2]))
		extra := strings.ToLower(asString(r[3]))
		m.Columns = append(m.Columns, Column{
			Name:          asString(r[0]),
			DataType:      strings.ToLower(asString(r[1])),
			Unsigned:      strings.Contains(ctype, "unsigned"),
			AutoIncrement: strings.Contains(extra, "auto_increment"),
			Generated:     generatedExtra(extra),
		})
	}
	idx, err := q.Query(ctx, "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = "+
		schema+" AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX", args)
	if err != nil {
		return nil, err
	}
	var names []string
	keys := map[string][]int{}
	for _, r := range idx {
		if asString(r[2]) != "0" {
			continue
		}
		name := asString(r[0])
		col := m.ColumnIndex(asString(r[1]))
		if col < 0 {
			return nil, fmt.Errorf("at: index %s of %s names unknown column %s", name, m.Name, asString(r[1]))
		}
		if _, ok := keys[name]; !ok {
			names = append(names, name)
		}
		keys[name] = append(keys[name], col)
	}
	for _, name := range names {
		if name == "PRIMARY" {
			m.PK = keys[name]
		} else {
			m.Uniques = append(m.Uniques, keys[name])
		}
	}
	return m, nil
}

// generatedExtra reports whether information_schema.COLUMNS.EXTRA marks a
// generated column: "VIRTUAL GENERATED" and "STORED GENERATED" (MySQL,
// MariaDB), "VIRTUAL" and "PERSISTENT" (older MariaDB), but not MySQL's
// "DEFAULT_GENERATED", an expression default.
func generatedExtra(extra string) bool {
	for _, w := range strings.Fields(extra) {
		switch w {
		case "virtual", "stored", "persistent":
			return true
		}
	}
	return false
}

func asString(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func (d *mysqlDialect) Normalize(c Column, v any) (Value, error) {
	if v == nil {
		return Value{Type: TypeNull}, nil
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		if c.Unsigned {
			u, err := toUint(v)
			return Value{Type: TypeUint, Uint: u}, err
		}
		i, err := toInt(v)
		return Value{Type: TypeInt, Int: i}, err
	case "float", "double", "real":
		f, err := toFloat(v)
		if c.DataType == "float" {
			f = float64(float32(f))
		}
		return Value{Type: TypeFloat, Float: f}, err
	case "date", "datetime", "timestamp", "time":
		if t, ok := v.(time.Time); ok {
			return Value{Type: TypeTime, Time: t}, nil
		}
		return Value{Type: TypeText, Bytes: toBytes(v)}, nil
	case "bit", "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return Value{Type: TypeBytes, Bytes: toBytes(v)}, nil
	}
	return Value{Type: TypeText, Bytes: toBytes(v)}, nil
}

func toBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("at: %d overflows a signed column", x)
		}
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case []byte, string:
		return strconv.ParseInt(asString(x), 10, 64)
	}
	return 0, fmt.Errorf("at: cannot read %T as an integer", v)
}

func toUint(v any) (uint64, error) {
	switch x := v.(type) {
	case int64:
		return uint64(x), nil
	case uint64:
		return x, nil
	case []byte, string:
		return strconv.ParseUint(asString(x), 10, 64)
	}
	return 0, fmt.Errorf("at: cannot read %T as an unsigned integer", v)
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case []byte, string:
		return strconv.ParseFloat(asString(x), 64)
	}
	return 0, fmt.Errorf("at: cannot read %T as a float", v)
}

func (d *mysqlDialect) CreatedBefore(age time.Duration) (string, any) {
	return "created_at < NOW(6) - INTERVAL ? MICROSECOND", age.Microseconds()
}

func (d *mysqlDialect) UndoTableDDL(table string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + d.Quote(table) + ` (
  xid VARCHAR(128) NOT NULL,
  branch_id BIGINT NOT NULL,
  state TINYINT NOT NULL,
  rollback_info LONGBLOB NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (xid, branch_id),
  KEY idx_created_at (created_at)
) ENGINE=InnoDB`}
}

func (d *mysqlDialect) IsSchemaChange(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1054, 1146, 1356: // unknown column, no such table, invalid view
			return true
		}
	}
	return false
}

func (d *mysqlDialect) IsDuplicateKey(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}
