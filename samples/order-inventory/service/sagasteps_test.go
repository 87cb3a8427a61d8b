package service

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx", for the test's admin connection

	"github.com/gtx-io/gtx/internal/gtxtest"
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// testDSN creates a database of its own for t on driver's server (SQLite:
// a file) and returns its DSN; the database is dropped when t ends, and t
// is skipped when the server does not answer. The servers are
// GTX_TEST_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/) and
// GTX_TEST_POSTGRES_DSN (a DSN of an existing database, default the
// database test on 127.0.0.1:5432 as postgres).
func testDSN(t *testing.T, driver string) string {
	t.Helper()
	if driver == SQLite {
		return filepath.Join(t.TempDir(), "steps.db") + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "gtx_oi_steps_" + hex.EncodeToString(b[:])
	base := envOr("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	sqlDriver, create, drop, dsn := "mysql", "CREATE DATABASE `"+name+"`", "DROP DATABASE IF EXISTS `"+name+"`", base+name
	if driver == Postgres {
		base = envOr("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
		sqlDriver, create, drop = "pgx", `CREATE DATABASE "`+name+`"`, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`
		if u, err := url.Parse(base); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
			u.Path = "/" + name
			dsn = u.String()
		} else {
			dsn = regexp.MustCompile(`(^|\s)dbname=\S+`).ReplaceAllString(base, "${1}") + " dbname=" + name
		}
	}
	admin, err := sql.Open(sqlDriver, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	if _, err := admin.Exec(create); err != nil {
		t.Skipf("%s at %s: %v", driver, base, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(drop); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return dsn
}

// A saga step's work happens once for its key, also when the key comes
// several times at once (each retried while it lost a race for a row, as
// the order service does); its compensation undoes it once; a compensation
// that comes first makes the late step refused. On every database the
// services run on.
func TestSagaStepsOnce(t *testing.T) {
	t.Parallel()
	tc := gtxtest.NewTC(t, gtxtest.TCOptions{})
	natsURL := gtxtest.StartNATS(t)
	for _, driver := range []string{SQLite, MySQL, Postgres} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig("steps")
			cfg.TC, cfg.NATSURL, cfg.Driver, cfg.DSN = tc.Addr, natsURL, driver, testDSN(t, driver)
			var b [4]byte
			_, _ = rand.Read(b[:])
			cfg.NATSStream, cfg.NATSSubject = "GTXTEST_STEPS_"+hex.EncodeToString(b[:]), "gtxtest.steps."+hex.EncodeToString(b[:])
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx := t.Context()
			base, err := Open(ctx, cfg)
			if errors.Is(err, ErrNoPostgres) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(base.Close)
			err = base.Exec(ctx, SagaStepsDDL, "CREATE TABLE counter (k VARCHAR(8) NOT NULL PRIMARY KEY, n BIGINT NOT NULL)",
				"INSERT INTO counter (k, n) VALUES ('c', 0)")
			if err != nil {
				t.Fatal(err)
			}
			add := func(ctx context.Context, n int64) func(*sql.Tx) error {
				return func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, base.Rebind("UPDATE counter SET n = n + ? WHERE k = 'c'"), n)
					return err
				}
			}
			undo := func(tx *sql.Tx, item string, amount int64) error {
				if item != "c" {
					return errors.New("compensation got item " + item + ", want c")
				}
				return add(ctx, -amount)(tx)
			}
			counter := func() int64 {
				t.Helper()
				var n int64
				if err := base.Plain.QueryRowContext(ctx, "SELECT n FROM counter WHERE k = 'c'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for _, step := range []struct {
				name string
				run  func() error
				want error
				n    int64
			}{
				{"do", func() error { return base.SagaDo(ctx, "k1", "c", 5, add(ctx, 5)) }, nil, 5},
				{"do again", func() error { return base.SagaDo(ctx, "k1", "c", 5, add(ctx, 5)) }, nil, 5},
				{"undo", func() error { return base.SagaUndo(ctx, "k1", undo) }, nil, 0},
				{"undo again", func() error { return base.SagaUndo(ctx, "k1", undo) }, nil, 0},
				{"do after undo", func() error { return base.SagaDo(ctx, "k1", "c", 5, add(ctx, 5)) }, ErrStepCompensated, 0},
				{"undo first", func() error { return base.SagaUndo(ctx, "k2", undo) }, nil, 0},
				{"late do", func() error { return base.SagaDo(ctx, "k2", "c", 3, add(ctx, 3)) }, ErrStepCompensated, 0},
				{"eight at once", func() error {
					var wg sync.WaitGroup
					errs := make([]error, 8)
					for i := range errs {
						wg.Go(func() {
							// As the order service does, retry what lost a
							// race for a row and changed nothing (on MariaDB
							// the duplicates' lock upgrades deadlock).
							for range 20 {
								errs[i] = base.SagaDo(ctx, "k3", "c", 7, add(ctx, 7))
								if kerrors.Reason(RetryableStep(errs[i])) != ReasonRowLocked {
									return
								}
							}
						})
					}
					wg.Wait()
					return errors.Join(errs...)
				}, nil, 7},
			} {
				err := step.run()
				if step.want == nil && err != nil || step.want != nil && !errors.Is(err, step.want) {
					t.Fatalf("%s: %v, want %v", step.name, err, step.want)
				}
				if n := counter(); n != step.n {
					t.Fatalf("%s: counter %d, want %d", step.name, n, step.n)
				}
			}
		})
	}
}
