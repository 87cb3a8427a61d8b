package at

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"time"
)

// Dialect is what the AT mode needs to know of one database family: how to
// parse its SQL into Statements, quote names, read table metadata, bring
// values back exactly, and create the undo table. MySQL (and MariaDB) and
// SQLite are built in; PostgreSQL (package atpg) implements it, and
// ExtendedDialect, with its own parser (libpg_query) producing the same
// Statement form, and plugs in with RegisterDialect.
type Dialect interface {
	// Name names the dialect ("mysql", "sqlite", "postgres").
	Name() string
	// Parse splits query into statements and describes each.
	Parse(query string) ([]Statement, error)
	// Quote quotes an identifier; a dotted name is quoted part by part.
	Quote(ident string) string
	// LoadTable reads a table's columns, primary key and unique keys.
	LoadTable(ctx context.Context, q Querier, ref TableRef) (*TableMeta, error)
	// SelectColumn returns a select-list expression reading column col of
	// the table known as qualifier, such that Normalize gets the exact
	// stored value.
	SelectColumn(qualifier, col string) string
	// Normalize turns a value read for column c into a typed Value.
	Normalize(c Column, v any) (Value, error)
	// ForUpdate is the suffix that locks rows a SELECT reads, or "" when
	// the database locks whole transactions (SQLite).
	ForUpdate() string
	// FirstInsertID returns the auto-increment value of the first of n
	// rows one INSERT inserted, given the LastInsertId it reported.
	FirstInsertID(lastInsertID, n int64) int64
	// CreatedBefore returns a condition, with its one argument, true for
	// undo rows created more than age ago by the database's clock.
	CreatedBefore(age time.Duration) (string, any)
	// UndoTableDDL returns the statements that create the undo table.
	UndoTableDDL(table string) []string
	// LockWrites returns a statement that makes the current transaction
	// the database's writer before it reads, or "" when row locks do that.
	LockWrites(undoTable string) string
	// IsSchemaChange reports whether err says a table or column the cached
	// metadata knows is gone.
	IsSchemaChange(err error) bool
	// IsDuplicateKey reports whether err is a unique key violation.
	IsDuplicateKey(err error) bool
}

// ExtendedDialect is implemented by a Dialect of a database that numbers
// its placeholders ($1, $2, ...), answers RETURNING itself, locks the rows
// of chosen tables with FOR UPDATE OF and reads some types best as text:
// PostgreSQL. The proxy then learns inserted rows from RETURNING instead of
// LastInsertId, reads the after image of a one-table UPDATE from its
// RETURNING instead of a second query, locks only the tables a statement
// writes, and numbers the placeholders of every query it runs.
//
// Such a dialect's Parse writes every placeholder of a Statement's SQL and
// Fragments as "?", in text order, like the other dialects, so that the
// proxy can cut and join fragments; "?" must appear nowhere else in that
// text (PostgreSQL operators containing it are written OPERATOR(schema.?)).
type ExtendedDialect interface {
	Dialect
	// Bind numbers the "?" placeholders of query, a query the proxy built
	// or a Statement's SQL, in the dialect's form.
	Bind(query string) (string, error)
	ColumnSelector
	// LockOf is the suffix that locks the rows a SELECT reads from the
	// tables known as aliases, and no others.
	LockOf(aliases []string) string
	// InsertOverride is written between an INSERT's column list and VALUES
	// when rollback puts a deleted row back with its own generated key
	// ("OVERRIDING SYSTEM VALUE"), or "".
	InsertOverride() string
}

// ColumnSelector is implemented by a Dialect that reads some types through
// an expression, so that images keep them exactly whatever the protocol
// (MySQL's FLOAT, PostgreSQL's text-only types).
type ColumnSelector interface {
	// SelectTyped is SelectColumn knowing the column's type.
	SelectTyped(qualifier string, c Column) string
}

// bind numbers the placeholders of query for d.
func bind(d Dialect, query string) (string, error) {
	if x, ok := d.(ExtendedDialect); ok {
		return x.Bind(query)
	}
	return query, nil
}

// selectColumn returns the select-list expression reading column c.
func selectColumn(d Dialect, qualifier string, c Column) string {
	if x, ok := d.(ColumnSelector); ok {
		return x.SelectTyped(qualifier, c)
	}
	return d.SelectColumn(qualifier, c.Name)
}

// lockRows is the suffix that locks the rows a SELECT reads from ts.
func lockRows(d Dialect, ts []target) string {
	x, ok := d.(ExtendedDialect)
	if !ok {
		return d.ForUpdate()
	}
	aliases := make([]string, len(ts))
	for i, t := range ts {
		aliases[i] = t.ref.Alias
	}
	return x.LockOf(aliases)
}

// registeredDialect is a dialect added with RegisterDialect.
type registeredDialect struct {
	d          Dialect
	resourceID func(dsn string) (string, error)
}

var dialects = struct {
	mu sync.Mutex
	m  map[string]registeredDialect
}{m: map[string]registeredDialect{}}

// RegisterDialect makes d the dialect of the database/sql driver
// driverName, with resourceID deriving a resource ID from its DSNs (leaving
// passwords out), and registers the AT driver "gtx-"+driverName with
// database/sql, configured by SetDefaults. A dialect package calls it from
// init; like sql.Register it panics when a name is registered twice.
func RegisterDialect(driverName string, d Dialect, resourceID func(dsn string) (string, error)) {
	if d == nil || resourceID == nil {
		panic("at: RegisterDialect with a nil dialect or resource ID function")
	}
	key := strings.ToLower(driverName)
	dialects.mu.Lock()
	defer dialects.mu.Unlock()
	if _, dup := dialects.m[key]; dup || builtinDialect(key) != nil {
		panic("at: RegisterDialect called twice for driver " + driverName)
	}
	dialects.m[key] = registeredDialect{d: d, resourceID: resourceID}
	sql.Register("gtx-"+driverName, atDriver{wrapped: driverName})
}

// builtinDialect returns the built-in dialect of a driver name, or nil.
func builtinDialect(driverName string) Dialect {
	switch strings.ToLower(driverName) {
	case "mysql", "mariadb":
		return MySQL()
	case "sqlite", "sqlite3":
		return SQLite()
	}
	return nil
}

// dialectFor returns the dialect for a database/sql driver name: built in,
// or added with RegisterDialect.
func dialectFor(driverName string) Dialect {
	if d := builtinDialect(driverName); d != nil {
		return d
	}
	dialects.mu.Lock()
	defer dialects.mu.Unlock()
	return dialects.m[strings.ToLower(driverName)].d
}

// registeredResourceID derives a resource ID with the function registered
// for driverName.
func registeredResourceID(driverName, dsn string) (string, bool, error) {
	dialects.mu.Lock()
	r, ok := dialects.m[strings.ToLower(driverName)]
	dialects.mu.Unlock()
	if !ok {
		return "", false, nil
	}
	id, err := r.resourceID(dsn)
	return id, true, err
}

// quoteWith quotes each dot-separated part of ident with q, doubling q
// inside it.
func quoteWith(ident string, q byte) string {
	parts := strings.Split(ident, ".")
	var sb strings.Builder
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteByte(q)
		sb.WriteString(strings.ReplaceAll(p, string(q), string([]byte{q, q})))
		sb.WriteByte(q)
	}
	return sb.String()
}
