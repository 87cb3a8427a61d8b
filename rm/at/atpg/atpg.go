// Package atpg is the PostgreSQL dialect of gtx's AT mode (package at):
// statements are parsed by PostgreSQL's own parser (libpg_query, through
// github.com/pganalyze/pg_query_go, which needs cgo), and databases are
// reached through pgx's database/sql driver (github.com/jackc/pgx/v5/stdlib).
// It lives apart from package at so that MySQL and SQLite users build
// without cgo.
//
// Importing it registers the dialect for the driver name "pgx" and the AT
// driver at.DriverPostgres ("gtx-pgx") with database/sql:
//
//	cfg := at.DefaultConfig()
//	cfg.DriverName, cfg.DSN = "pgx", "postgres://app@db:5432/shop"
//	cfg.Manager, cfg.Locks = rmManager, coordinator
//	db, err := at.Open(cfg)                                  // was sql.Open("pgx", dsn)
//	err = at.Migrate(ctx, db, nil, "")                       // once: the undo table
//
// or, after at.SetDefaults(cfg), sql.Open(at.DriverPostgres, dsn); for gorm,
// atgorm.Postgres(dsn). See docs/at.md for the SQL supported and refused.
package atpg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/gtx-io/gtx/rm/at"
)

func init() {
	at.RegisterDialect("pgx", Postgres(), ResourceID)
}

type dialect struct{}

// Postgres returns the dialect of PostgreSQL. Table metadata comes from
// pg_catalog, resolved by the session's search_path like the statements'
// own names.
func Postgres() at.ExtendedDialect { return dialect{} }

// ResourceID derives a resource ID from a pgx DSN (URL or key=value),
// leaving the password out: "postgres:user@host:port/database".
func ResourceID(dsn string) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("atpg: parse postgres dsn: %w", err)
	}
	if cfg.Database == "" {
		return "", errors.New("atpg: postgres dsn names no database; AT needs one")
	}
	return fmt.Sprintf("postgres:%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database), nil
}

func (dialect) Name() string { return "postgres" }

// Parse parses query, or returns the statements of the same text parsed
// before: applications repeat their SQL, and a parse with its deparses
// costs about 0.1ms.
func (dialect) Parse(query string) ([]at.Statement, error) {
	if len(query) > maxCachedQueryLen {
		return parse(query)
	}
	parsed.mu.Lock()
	stmts, ok := parsed.m[query]
	parsed.mu.Unlock()
	if ok {
		return slices.Clone(stmts), nil
	}
	stmts, err := parse(query)
	if err != nil {
		return nil, err
	}
	parsed.mu.Lock()
	if len(parsed.m) >= maxCachedQueries {
		clear(parsed.m)
	}
	parsed.m[query] = stmts
	parsed.mu.Unlock()
	return slices.Clone(stmts), nil
}

// Bounds of the parse cache: queries longer than maxCachedQueryLen (large
// multi-row INSERTs) are parsed every time, and the cache is emptied when
// it holds maxCachedQueries.
const (
	maxCachedQueryLen = 4 << 10
	maxCachedQueries  = 1024
)

// parsed caches the statements of queries by their text. The statements'
// slices are shared: the proxy only reads them.
var parsed = struct {
	mu sync.Mutex
	m  map[string][]at.Statement
}{m: map[string][]at.Statement{}}

func (dialect) Quote(ident string) string {
	parts := strings.Split(ident, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

func (d dialect) qualified(qualifier, col string) string {
	return d.Quote(qualifier) + "." + d.Quote(col)
}

func (d dialect) SelectColumn(qualifier, col string) string { return d.qualified(qualifier, col) }

// SelectTyped reads integers, floats, bytea, date and timestamp (with or
// without time zone) in pgx's binary form, which keeps them exactly, and
// every other type as its text output, which PostgreSQL reads back into the
// same value: numeric with its scale, json byte for byte, jsonb, uuid,
// boolean, arrays, intervals, enums and domains.
func (d dialect) SelectTyped(qualifier string, c at.Column) string {
	switch c.DataType {
	case "int2", "int4", "int8", "float4", "float8", "bytea", "date", "timestamp", "timestamptz":
		return d.qualified(qualifier, c.Name)
	}
	return d.qualified(qualifier, c.Name) + "::text"
}

func (dialect) Normalize(c at.Column, v any) (at.Value, error) {
	switch x := v.(type) {
	case nil:
		return at.Value{Type: at.TypeNull}, nil
	case int64:
		return at.Value{Type: at.TypeInt, Int: x}, nil
	case float64:
		return at.Value{Type: at.TypeFloat, Float: x}, nil
	case []byte:
		return at.Value{Type: at.TypeBytes, Bytes: x}, nil
	case time.Time:
		return at.Value{Type: at.TypeTime, Time: x}, nil
	case string:
		// Text output, or "infinity" for a date or timestamp.
		return at.Value{Type: at.TypeText, Bytes: []byte(x)}, nil
	}
	return at.Value{}, fmt.Errorf("atpg: cannot keep a %T read from column %s (%s)", v, c.Name, c.DataType)
}

func (dialect) ForUpdate() string { return " FOR UPDATE" }

func (d dialect) LockOf(aliases []string) string {
	quoted := make([]string, len(aliases))
	for i, a := range aliases {
		quoted[i] = d.Quote(a)
	}
	return " FOR UPDATE OF " + strings.Join(quoted, ", ")
}

func (dialect) InsertOverride() string { return "OVERRIDING SYSTEM VALUE" }

func (dialect) Bind(query string) (string, error) {
	out, _, err := scanSQL(query, toNumbers)
	return out, err
}

// FirstInsertID is not used: inserted rows come back by RETURNING.
func (dialect) FirstInsertID(lastInsertID, n int64) int64 { return lastInsertID }

func (dialect) LockWrites(string) string { return "" }

func (dialect) CreatedBefore(age time.Duration) (string, any) {
	return "created_at < clock_timestamp() - ? * interval '1 microsecond'", age.Microseconds()
}

func (d dialect) UndoTableDDL(table string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + d.Quote(table) + ` (
  xid VARCHAR(128) NOT NULL,
  branch_id BIGINT NOT NULL,
  state SMALLINT NOT NULL,
  rollback_info BYTEA NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (xid, branch_id)
)`, "CREATE INDEX IF NOT EXISTS " + d.Quote(table+"_created_at") + " ON " + d.Quote(table) + " (created_at)"}
}

// IsSchemaChange reports undefined table (42P01) and column (42703), and a
// prepared statement whose result columns changed type (0A000, "cached plan
// must not change result type").
func (dialect) IsSchemaChange(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "42P01" || pe.Code == "42703" || (pe.Code == "0A000" && strings.Contains(pe.Message, "cached plan"))
}

func (dialect) IsDuplicateKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// LoadTable reads the columns (generated ones marked: rollback leaves them
// to the database), the primary key and the unique keys (not partial, not
// on expressions) of the table ref names, as the session's search_path finds
// it. The table's name is qualified only outside current_schema().
func (d dialect) LoadTable(ctx context.Context, q at.Querier, ref at.TableRef) (*at.TableMeta, error) {
	name := d.Quote(ref.Name)
	if ref.Schema != "" {
		name = d.Quote(ref.Schema) + "." + name
	}
	rows, err := q.Query(ctx, `SELECT a.attname::text, COALESCE(bt.typname, t.typname)::text,
  a.attidentity <> '' OR COALESCE(pg_get_expr(ad.adbin, ad.adrelid) LIKE 'nextval(%', false),
  n.nspname::text, c.relname::text, n.nspname = current_schema(), a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, []any{name})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %s", at.ErrNoTable, ref.QualifiedName())
	}
	m := &at.TableMeta{Name: str(rows[0][4])}
	if cur, _ := rows[0][5].(bool); !cur {
		m.Name = str(rows[0][3]) + "." + m.Name
	}
	for _, r := range rows {
		auto, _ := r[2].(bool)
		generated, _ := r[6].(bool)
		m.Columns = append(m.Columns, at.Column{Name: str(r[0]), DataType: str(r[1]), AutoIncrement: auto, Generated: generated})
	}
	idx, err := q.Query(ctx, `SELECT i.indexrelid::text, i.indisprimary, a.attname::text
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = to_regclass(?) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND k.ord <= i.indnkeyatts
ORDER BY i.indisprimary DESC, i.indexrelid, k.ord`, []any{name})
	if err != nil {
		return nil, err
	}
	var order []string
	keys := map[string][]int{}
	primary := map[string]bool{}
	bad := map[string]bool{}
	for _, r := range idx {
		id := str(r[0])
		if _, ok := keys[id]; !ok {
			order = append(order, id)
			keys[id] = []int{}
		}
		p, _ := r[1].(bool)
		primary[id] = p
		col := -1
		if r[2] != nil {
			col = m.ColumnIndex(str(r[2]))
		}
		if col < 0 {
			bad[id] = true // an expression
			continue
		}
		keys[id] = append(keys[id], col)
	}
	for _, id := range order {
		switch {
		case bad[id]:
		case primary[id]:
			m.PK = keys[id]
		default:
			m.Uniques = append(m.Uniques, keys[id])
		}
	}
	return m, d.loadCascades(ctx, q, name, m)
}

// loadCascades refuses the writes that foreign keys of other tables
// cascade there (ON DELETE / ON UPDATE CASCADE, SET NULL, SET DEFAULT):
// the rows they change are never imaged, so a rollback would not put them
// back.
func (d dialect) loadCascades(ctx context.Context, q at.Querier, name string, m *at.TableMeta) error {
	rows, err := q.Query(ctx, `SELECT c.conname::text, c.conrelid::regclass::text, c.confdeltype IN ('c', 'n', 'd'), c.confupdtype IN ('c', 'n', 'd')
FROM pg_constraint c
WHERE c.confrelid = to_regclass(?) AND c.contype = 'f' AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))
ORDER BY 1`, []any{name})
	if err != nil {
		return err
	}
	for _, r := range rows {
		onDelete, _ := r[2].(bool)
		onUpdate, _ := r[3].(bool)
		why := fmt.Sprintf("foreign key %s of %s cascades writes of %s to rows the AT mode cannot image; use NO ACTION or RESTRICT and write both tables in the branch", str(r[0]), str(r[1]), m.Name)
		if m.Refuse == nil {
			m.Refuse = map[at.Kind]string{}
		}
		if onDelete && m.Refuse[at.KindDelete] == "" {
			m.Refuse[at.KindDelete] = why
		}
		if onUpdate && m.Refuse[at.KindUpdate] == "" {
			m.Refuse[at.KindUpdate] = why
			m.Refuse[at.KindUpsert] = why
		}
	}
	return nil
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
