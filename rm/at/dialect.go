package at

import (
	"context"
	"strings"
	"time"
)

// Dialect is what the AT mode needs to know of one database family: how to
// parse its SQL into Statements, quote names, read table metadata, bring
// values back exactly, and create the undo table. MySQL (and MariaDB) and
// SQLite are built in; a PostgreSQL dialect plugs in by implementing this
// interface with its own parser (libpg_query) producing the same Statement
// form, without touching the proxy.
type Dialect interface {
	// Name names the dialect ("mysql", "sqlite").
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

// dialectFor returns the built-in dialect for a database/sql driver name.
func dialectFor(driverName string) Dialect {
	switch strings.ToLower(driverName) {
	case "mysql", "mariadb":
		return MySQL()
	case "sqlite", "sqlite3":
		return SQLite()
	}
	return nil
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
