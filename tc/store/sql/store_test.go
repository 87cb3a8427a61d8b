package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"

	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

// dialect is a database the tests run against.
type dialect struct {
	name string
	// open returns a Config for a database that exists only for this test.
	open func(t testing.TB) sqlstore.Config
}

var dialects = []dialect{
	{sqlstore.DriverSQLite, sqliteConfig},
	{sqlstore.DriverMySQL, mysqlConfig},
	{sqlstore.DriverPostgres, postgresConfig},
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// unreachable fails t, or skips it when GTX_TEST_SKIP_EXTERNAL=1.
func unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("GTX_TEST_SKIP_EXTERNAL") == "1" {
		t.Skipf("%s unreachable (GTX_TEST_SKIP_EXTERNAL=1): %v", what, err)
	}
	t.Fatalf("%s unreachable: %v (set GTX_TEST_SKIP_EXTERNAL=1 to skip)", what, err)
}

// testDBName returns a database name no other test run uses.
func testDBName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "gtx_test_" + hex.EncodeToString(b)
}

func quietGorm() *gorm.Config {
	return &gorm.Config{Logger: logger.Discard}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter sends logs to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func sqliteConfig(t testing.TB) sqlstore.Config {
	return sqlstore.Config{
		Driver: sqlstore.DriverSQLite,
		DSN:    filepath.Join(t.TempDir(), "gtx.db"),
		Logger: testLogger(t),
	}
}

func mysqlConfig(t testing.TB) sqlstore.Config {
	base := env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	admin, err := gorm.Open(gormmysql.Open(base), quietGorm())
	if err == nil {
		err = admin.Exec("SELECT 1").Error
	}
	if err != nil {
		unreachable(t, "MariaDB", err)
	}
	name := testDBName()
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := admin.Exec("DROP DATABASE " + name).Error; err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		if sqlDB, err := admin.DB(); err == nil {
			sqlDB.Close()
		}
	})
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("GTX_TEST_MYSQL_DSN: %v", err)
	}
	cfg.DBName = name
	return sqlstore.Config{Driver: sqlstore.DriverMySQL, DSN: cfg.FormatDSN(), Logger: testLogger(t)}
}

var pgDBName = regexp.MustCompile(`dbname=\S+`)

func postgresConfig(t testing.TB) sqlstore.Config {
	base := env("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
	admin, err := gorm.Open(gormpostgres.Open(base), quietGorm())
	if err == nil {
		err = admin.Exec("SELECT 1").Error
	}
	if err != nil {
		unreachable(t, "PostgreSQL", err)
	}
	name := testDBName()
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)").Error; err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		if sqlDB, err := admin.DB(); err == nil {
			sqlDB.Close()
		}
	})
	dsn := base
	if pgDBName.MatchString(dsn) {
		dsn = pgDBName.ReplaceAllString(dsn, "dbname="+name)
	} else {
		dsn += " dbname=" + name
	}
	return sqlstore.Config{Driver: sqlstore.DriverPostgres, DSN: dsn, Logger: testLogger(t)}
}

// openStore opens a store on a fresh database of d, closed when t ends.
func openStore(t testing.TB, d dialect) *sqlstore.Store {
	t.Helper()
	return openConfig(t, d.open(t))
}

// openConfig opens a store with cfg, closed when t ends.
func openConfig(t testing.TB, cfg sqlstore.Config) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// emptied returns a constructor for the conformance suites: SQLite gets a
// fresh file each time; MySQL and PostgreSQL share one database per suite,
// emptied before each subtest.
func emptied(t *testing.T, d dialect) func(t *testing.T) *sqlstore.Store {
	if d.name == sqlstore.DriverSQLite {
		return func(t *testing.T) *sqlstore.Store { return openStore(t, d) }
	}
	s := openStore(t, d)
	return func(t *testing.T) *sqlstore.Store {
		if err := s.Truncate(t.Context()); err != nil {
			t.Fatalf("Truncate: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Run("Store", func(t *testing.T) {
				newStore := emptied(t, d)
				storetest.RunStore(t, func(t *testing.T) tc.Store { return newStore(t) })
			})
			t.Run("LockStore", func(t *testing.T) {
				newStore := emptied(t, d)
				storetest.RunLockStore(t, func(t *testing.T) tc.LockStore { return newStore(t) })
			})
			t.Run("CoordinatorInput", func(t *testing.T) {
				storetest.RunCoordinatorInput(t, func(t *testing.T) (tc.Store, tc.LockStore) {
					s := openStore(t, d)
					return s, s
				})
			})
		})
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			cfg := d.open(t)
			for i := range 2 {
				s, err := sqlstore.Open(t.Context(), cfg)
				if err != nil {
					t.Fatalf("Open #%d: %v", i+1, err)
				}
				// The schema is there: a session can be stored in it.
				if err := s.CreateGlobal(t.Context(), &tc.GlobalSession{XID: fmt.Sprint("migrate-", i), Timeout: time.Second}); err != nil {
					t.Fatalf("CreateGlobal after Open #%d: %v", i+1, err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
		})
	}
}
