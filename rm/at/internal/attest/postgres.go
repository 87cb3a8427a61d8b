package attest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gtx-io/gtx/rm/at/atpg" // registers the "pgx" dialect
)

// PostgresBackend creates a database with a unique name on the PostgreSQL
// of GTX_TEST_POSTGRES_DSN (default host=127.0.0.1 port=5432 user=postgres
// dbname=test, key=value or URL form) and drops it when the test ends. Its
// driver is "pgx", whose AT dialect package atpg registers.
func PostgresBackend(t testing.TB) *Backend {
	t.Helper()
	base := envOr("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
	name := createDatabase(t, "pgx", base, " WITH (FORCE)")
	dsn := base + " dbname=" + name
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		dsn = u.String()
	}
	return &Backend{Name: "postgres", Driver: "pgx", DSN: dsn, Raw: openRaw(t, "pgx", dsn)}
}

// postgresDialect is the AT dialect of PostgreSQL backends.
var postgresDialect = atpg.Postgres()
