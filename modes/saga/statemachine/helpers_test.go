package statemachine_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	mysqldrv "github.com/go-sql-driver/mysql"
	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func gormConfig() *gorm.Config { return &gorm.Config{Logger: logger.Discard} }

// unreachable fails t, or skips it when GTX_TEST_SKIP_EXTERNAL=1.
func unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("GTX_TEST_SKIP_EXTERNAL") == "1" {
		t.Skipf("%s unreachable (GTX_TEST_SKIP_EXTERNAL=1): %v", what, err)
	}
	t.Fatalf("%s unreachable: %v (set GTX_TEST_SKIP_EXTERNAL=1 to skip)", what, err)
}

func closeDB(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		_ = s.Close()
	}
}

// sqliteDSN returns the DSN of a fresh SQLite file in t's directory.
func sqliteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "saga.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
}

func openSQLite(t testing.TB, dsn string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(dsn), gormConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(db) })
	return db
}

// opener opens a new connection pool on one test database each call, so a
// test can "restart" an engine on the same store.
type opener func(t testing.TB) *gorm.DB

// databases returns an opener per store kind, each on its own database,
// dropped when t ends.
func databases(t testing.TB) map[string]opener {
	t.Helper()
	dsn := sqliteDSN(t)
	return map[string]opener{
		"sqlite":   func(t testing.TB) *gorm.DB { return openSQLite(t, dsn) },
		"mariadb":  mysqlDB(t),
		"postgres": postgresDB(t),
	}
}

func mysqlDB(t testing.TB) opener {
	base := env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	name := uniqueName("gtx_saga_")
	var once sync.Once
	return func(tb testing.TB) *gorm.DB {
		tb.Helper()
		once.Do(func() {
			admin, err := gorm.Open(gormmysql.Open(base), gormConfig())
			if err == nil {
				err = admin.Exec("CREATE DATABASE " + name).Error
			}
			if err != nil {
				unreachable(tb, "MariaDB", err)
			}
			t.Cleanup(func() {
				if err := admin.Exec("DROP DATABASE " + name).Error; err != nil {
					t.Errorf("drop database %s: %v", name, err)
				}
				closeDB(admin)
			})
		})
		cfg, err := mysqldrv.ParseDSN(base)
		if err != nil {
			tb.Fatalf("GTX_TEST_MYSQL_DSN: %v", err)
		}
		cfg.DBName = name
		db, err := gorm.Open(gormmysql.Open(cfg.FormatDSN()), gormConfig())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { closeDB(db) })
		return db
	}
}

func postgresDB(t testing.TB) opener {
	base := env("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
	name := uniqueName("gtx_saga_")
	var once sync.Once
	return func(tb testing.TB) *gorm.DB {
		tb.Helper()
		once.Do(func() {
			admin, err := gorm.Open(gormpostgres.Open(base), gormConfig())
			if err == nil {
				err = admin.Exec("CREATE DATABASE " + name).Error
			}
			if err != nil {
				unreachable(tb, "PostgreSQL", err)
			}
			t.Cleanup(func() {
				if err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)").Error; err != nil {
					t.Errorf("drop database %s: %v", name, err)
				}
				closeDB(admin)
			})
		})
		dsn := withDBName(base, name)
		db, err := gorm.Open(gormpostgres.Open(dsn), gormConfig())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { closeDB(db) })
		return db
	}
}

// withDBName replaces dbname in a key=value PostgreSQL DSN.
func withDBName(dsn, name string) string {
	var parts []string
	for f := range strings.FieldsSeq(dsn) {
		if !strings.HasPrefix(f, "dbname=") {
			parts = append(parts, f)
		}
	}
	return strings.Join(append(parts, "dbname="+name), " ")
}

// journal records service calls in order.
type journal struct {
	mu    sync.Mutex
	calls []string
	keys  []string
}

func (j *journal) add(what, key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls = append(j.calls, what)
	j.keys = append(j.keys, key)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.calls)
}

// recorder is a Go service that records "method" or "method!" (for a
// compensation) and runs behave, if set, for a result.
func recorder(j *journal, behave func(t sm.Task) (json.RawMessage, error)) sm.Service {
	return sm.ServiceFunc(func(ctx context.Context, t sm.Task) (json.RawMessage, error) {
		j.add(t.Method, t.Key)
		if behave != nil {
			return behave(t)
		}
		return json.RawMessage(`{"ok":true}`), nil
	})
}

func newEngine(t testing.TB, db *gorm.DB, mutate func(*sm.Config)) *sm.Engine {
	t.Helper()
	cfg := sm.DefaultConfig()
	cfg.DB = db
	cfg.Logger = quiet
	cfg.CompensationRetryInitial = 5 * time.Millisecond
	cfg.CompensationRetryMax = 20 * time.Millisecond
	cfg.LeaseTTL = 2 * time.Second
	cfg.RecoveryInterval = 50 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := sm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func mustParse(t testing.TB, def string) *sm.Definition {
	t.Helper()
	d, err := sm.Parse([]byte(def))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func describe(inst *sm.Instance) string {
	if inst == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s %s %s: %s", inst.ID, inst.Status, inst.ErrorCode, inst.ErrorMessage)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

type gormDB = gorm.DB
