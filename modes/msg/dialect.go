package msg

import (
	"fmt"
	"regexp"
	"strings"
)

// Dialect names the SQL dialect of a database that holds a barrier or an
// outbox.
type Dialect string

// Supported dialects. Their names are those of gorm's dialectors.
const (
	MySQL    Dialect = "mysql" // MySQL and MariaDB
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func validDialect(d Dialect) error {
	if d != MySQL && d != Postgres && d != SQLite {
		return fmt.Errorf("%w: dialect %q is not one of mysql, postgres, sqlite", ErrInvalidConfig, d)
	}
	return nil
}

func validTable(table string) error {
	if !identifier.MatchString(table) {
		return fmt.Errorf("%w: table %q is not a plain SQL identifier (letters, digits, underscore; at most 63)", ErrInvalidConfig, table)
	}
	return nil
}

// placeholders turns ? into PostgreSQL's $1, $2, ... for d; the queries
// hold no other question marks.
func placeholders(d Dialect, s string) string {
	if d != Postgres {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
