package at_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
	"github.com/gtx-io/gtx/tm"
)

// updateInBranch runs one UPDATE in a local transaction of the global
// transaction in ctx.
func updateInBranch(ctx context.Context, db *sql.DB, query string, args ...any) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// beginWithUpdate begins the global transaction name and commits query in
// a branch of it on db, leaving the global transaction open.
func beginWithUpdate(t *testing.T, c *attest.Coordinator, db *sql.DB, name, query string) *tm.Tx {
	t.Helper()
	tx, err := c.TM.Begin(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := updateInBranch(tx.Context(), db, query); err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestDirtyWriteStopsRollback writes a row from outside the global
// transaction between phase 1 and rollback: the rollback must stop with the
// rows reported, leave that write in place, and restore nothing else.
func TestDirtyWriteStopsRollback(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		attest.MustExec(t, b.Raw, schema(b)...)
		ctx := context.Background()
		tx := beginWithUpdate(t, c, db, "dirty", "UPDATE acct SET balance = 1, txt = 'mine' WHERE id IN (1, 2)")
		// The outside write: no global transaction, no global lock check.
		attest.MustExec(t, b.Raw, "UPDATE acct SET balance = 777 WHERE id = 1")
		before := dumpAll(t, b)
		if _, err := tx.Rollback(ctx, "test"); err != nil && !strings.Contains(err.Error(), "ROLLBACK_FAILED") {
			t.Logf("rollback: %v", err)
		}
		if st := attest.WaitStatus(t, c, tx.XID()); st != tcv1.GlobalStatus_ROLLBACK_FAILED {
			t.Fatalf("status %s, want ROLLBACK_FAILED", st)
		}
		compare(t, "after stopped rollback", dumpAll(t, b), before)
		got, err := c.Client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: tx.XID()})
		if err != nil {
			t.Fatal(err)
		}
		if msg := got.GetTransaction().GetLastError(); !strings.Contains(msg, "changed outside the global transaction") || !strings.Contains(msg, "777") {
			t.Fatalf("last error does not report the dirty row: %q", msg)
		}
	})
}

// TestRollbackBeforePhaseOneCommit lets the rollback arrive after the
// branch registered and before its local commit: the defense row it leaves
// must make the late commit fail, and the data stay as it was.
func TestRollbackBeforePhaseOneCommit(t *testing.T) {
	c := attest.StartCoordinator(t)
	t.Run("mariadb", func(t *testing.T) { rollbackBeforePhaseOneCommit(t, c, attest.MySQLBackend(t)) })
	t.Run("postgres", func(t *testing.T) { rollbackBeforePhaseOneCommit(t, c, attest.PostgresBackend(t)) })
}

func rollbackBeforePhaseOneCommit(t *testing.T, c *attest.Coordinator, b *attest.Backend) {
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	attest.MustExec(t, b.Raw, schema(b)...)
	seed := dumpAll(t, b)
	ctx := context.Background()
	tx, err := c.TM.Begin(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	id, err := at.ResourceID(b.Driver, b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	at.SetAfterRegisterHook(id, func(xid string, branchID int64) {
		if _, err := c.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid, Reason: "early"}); err != nil {
			t.Errorf("rollback: %v", err)
		}
		if st := attest.WaitStatus(t, c, xid); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Errorf("status %s", st)
		}
	})
	defer at.SetAfterRegisterHook(id, nil)
	err = updateInBranch(tx.Context(), db, "UPDATE acct SET balance = 5 WHERE id = 1")
	if !errors.Is(err, at.ErrBranchRolledBack) {
		t.Fatalf("late commit: got %v, want ErrBranchRolledBack", err)
	}
	compare(t, "after refused late commit", dumpAll(t, b), seed)
	var state int
	if err := b.Raw.QueryRow(b.SQL("SELECT state FROM gtx_undo_log WHERE xid = ?"), tx.XID()).Scan(&state); err != nil || state != 1 {
		t.Fatalf("defense row: state %d, %v", state, err)
	}
}

// TestRefusedStatements checks that what cannot be undone is refused in a
// global transaction, leaving the data as it was, and runs outside one.
func TestRefusedStatements(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		attest.MustExec(t, b.Raw, schema(b)...)
		attest.MustExec(t, b.Raw, "CREATE TABLE nopk (a INT, b INT)")
		seed := dumpAll(t, b)
		cases := []struct{ name, sql string }{
			{"replace", "REPLACE INTO acct (id, code, balance) VALUES (1, 'a1', 0)"},
			{"insert select", "INSERT INTO flag SELECT id + 10, id, 0 FROM acct"},
			{"ddl", "ALTER TABLE acct ADD COLUMN extra INT"},
			{"table without primary key", "UPDATE nopk SET a = 1"},
			{"update of primary key", "UPDATE acct SET id = id + 100 WHERE id = 1"},
			{"insert key from expression", "INSERT INTO flag (id, acct_id, flag) VALUES (1 + 40, 1, 1)"},
			{"transaction control", "COMMIT"},
			{"upsert without a usable key", "INSERT IGNORE INTO flag (id, acct_id, flag) VALUES (NULL, 1, 1)"},
			{"upsert unique key from expression", "INSERT INTO acct (id, code, balance) VALUES (9, LOWER('A1'), 5) ON DUPLICATE KEY UPDATE balance = 7"},
			{"upsert leaving out a unique key", "INSERT IGNORE INTO acct (id, balance) VALUES (9, 5)"},
			{"unparsable", "DELETE FROM acct WHERE id = 1 RETURNING id, balance + 1"},
		}
		checkRefused(t, c, b, db, seed, cases)
	})
}

// checkRefused runs each statement of cases in a global transaction on db:
// it must fail with ErrRefused and leave the tables at seed. Then, outside a
// global transaction, it checks the proxy stays out of the way of an update
// of the table nopk, which has no primary key.
func checkRefused(t *testing.T, c *attest.Coordinator, b *attest.Backend, db *sql.DB, seed [][][]any, cases []struct{ name, sql string }) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkRefusal(t, c, b, seed, func(ctx context.Context) error { return updateInBranch(ctx, db, tc.sql) })
		})
	}
	if _, err := db.Exec("UPDATE nopk SET a = 1"); err != nil {
		t.Fatal(err)
	}
}

// checkRefusal runs exec in a global transaction: it must fail with
// ErrRefused, the global transaction must not commit, and the tables must
// stay at seed.
func checkRefusal(t *testing.T, c *attest.Coordinator, b *attest.Backend, seed [][][]any, exec func(ctx context.Context) error) {
	t.Helper()
	err := c.TM.WithGlobalTx(context.Background(), "refused", func(ctx context.Context) error {
		err := exec(ctx)
		if !errors.Is(err, at.ErrRefused) {
			t.Errorf("got %v, want ErrRefused", err)
		}
		return err
	})
	if err == nil {
		t.Fatal("global transaction committed")
	}
	compare(t, "after refusal", dumpAll(t, b), seed)
}

// TestConcurrentUpdatesNoLostUpdate runs 32 global transactions that each
// add 1 to the same row: every one either commits its increment or fails
// with ErrGlobalLock, and the row ends at seed + commits.
func TestConcurrentUpdatesNoLostUpdate(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c, func(cfg *at.Config) { cfg.LockRetryTimes = 500 })
		attest.MustExec(t, b.Raw, schema(b)...)
		attest.MustExec(t, b.Raw, "UPDATE acct SET big = 0 WHERE id = 1")
		const n = 32
		var ok, lost atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.TM.WithGlobalTx(context.Background(), "inc", func(ctx context.Context) error {
					return updateInBranch(ctx, db, "UPDATE acct SET big = big + 1 WHERE id = 1")
				})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, at.ErrGlobalLock):
					lost.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		var big int64
		if err := b.Raw.QueryRow("SELECT big FROM acct WHERE id = 1").Scan(&big); err != nil {
			t.Fatal(err)
		}
		if big != ok.Load() {
			t.Fatalf("row holds %d increments, %d transactions committed (%d gave up)", big, ok.Load(), lost.Load())
		}
		t.Logf("%d committed, %d gave up on the global lock", ok.Load(), lost.Load())
		if ok.Load() == 0 {
			t.Fatal("no transaction committed")
		}
	})
}

// TestGlobalLocalDeadlockFailsFast sets up the deadlock between a global
// lock and a local one: branch A holds the global lock on a row and rolls
// back, which needs the local row lock that transaction B holds while it
// waits for A's global lock. B must give up as soon as it sees A rolling
// back, so A's rollback completes; the retry policy is long enough that
// only that fail-fast can end the wait.
func TestGlobalLocalDeadlockFailsFast(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c, func(cfg *at.Config) { cfg.LockRetryTimes = 1 << 30 })
		attest.MustExec(t, b.Raw, schema(b)...)
		seed := dumpAll(t, b)
		ctx := context.Background()
		a := beginWithUpdate(t, c, db, "A", "UPDATE acct SET balance = 1 WHERE id = 1")
		bt, err := c.TM.Begin(ctx, "B")
		if err != nil {
			t.Fatal(err)
		}
		ltx, err := db.BeginTx(bt.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ltx.ExecContext(bt.Context(), "UPDATE acct SET balance = 2 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		commitErr := make(chan error, 1)
		go func() { commitErr <- ltx.Commit() }()
		if _, err := c.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: a.XID()}); err != nil {
			t.Logf("rollback A: %v", err)
		}
		err = <-commitErr
		if !errors.Is(err, at.ErrGlobalLock) || !strings.Contains(err.Error(), "rolling back") {
			t.Fatalf("B's commit: got %v, want ErrGlobalLock for a holder rolling back", err)
		}
		if st := attest.WaitStatus(t, c, a.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("A: %s", st)
		}
		compare(t, "after A's rollback", dumpAll(t, b), seed)
		bt.Rollback(ctx, "done")
	})
}

// TestRollbackAfterRMCrash commits a branch locally in a child process
// that then dies before phase 2 (os.Exit, no cleanup), rolls the global
// transaction back, and brings a new resource manager up: the coordinator's
// retries reach it and the before state comes back.
func TestRollbackAfterRMCrash(t *testing.T) {
	if os.Getenv("GTX_AT_CRASH_CHILD") != "" {
		t.Skip("runs as the crashing child only")
	}
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		attest.MustExec(t, b.Raw, schema(b)...)
		// The undo table, as the child will use it.
		if err := at.Migrate(context.Background(), b.Raw, attest.DialectOf(b), ""); err != nil {
			t.Fatal(err)
		}
		seed := dumpAll(t, b)
		ctx := context.Background()
		tx, err := c.TM.Begin(ctx, "crash")
		if err != nil {
			t.Fatal(err)
		}
		runChild(t, c, b, "TestCrashChild", "GTX_AT_CRASH_CHILD=1", "GTX_AT_XID="+tx.XID())
		if got := dumpAll(t, b); attest.SameRows(got[0], seed[0]) {
			t.Fatal("the child's local commit is not in the database")
		}
		if _, err := c.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: tx.XID(), Reason: "crash"}); err != nil {
			t.Logf("rollback with the RM dead: %v", err)
		}
		// The restart.
		attest.OpenAT(t, b, attest.NewRM(t, c), c)
		if st := attest.WaitStatus(t, c, tx.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		compare(t, "after rollback by the restarted RM", dumpAll(t, b), seed)
	})
}

const crashExitCode = 3

// runChild runs the test named test of this binary in a child process on
// the coordinator c and backend b, with env added to its environment, and
// returns its output; the child must exit with crashExitCode.
func runChild(t *testing.T, c *attest.Coordinator, b *attest.Backend, test string, env ...string) []byte {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	child.Env = append(append(os.Environ(), env...), "GTX_AT_TC="+c.Addr, "GTX_AT_DRIVER="+b.Driver, "GTX_AT_DSN="+b.DSN)
	out, err := child.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return out
}

// childAT is the child side of runChild: it connects to the parent's
// coordinator and opens the parent's backend through the AT driver.
func childAT(t *testing.T, tune ...func(*at.Config)) (*sql.DB, tcv1.CoordinatorClient) {
	t.Helper()
	client := childCoordinator(t)
	b := &attest.Backend{Driver: os.Getenv("GTX_AT_DRIVER"), DSN: os.Getenv("GTX_AT_DSN")}
	return attest.OpenATOn(t, b, attest.NewRMOn(t, client), client, tune...), client
}

// childCoordinator connects a child process to the parent's coordinator.
func childCoordinator(t *testing.T) tcv1.CoordinatorClient {
	t.Helper()
	conn, err := grpc.NewClient(os.Getenv("GTX_AT_TC"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// TestCrashChild is the child of TestRollbackAfterRMCrash: it commits one
// branch locally and exits at once, as a crash would.
func TestCrashChild(t *testing.T) {
	if os.Getenv("GTX_AT_CRASH_CHILD") == "" {
		t.Skip("run by TestRollbackAfterRMCrash")
	}
	db, _ := childAT(t)
	ctx := gtx.ContextWithXID(context.Background(), os.Getenv("GTX_AT_XID"))
	if err := updateInBranch(ctx, db, "UPDATE acct SET balance = 1 WHERE id = 1; DELETE FROM line WHERE order_id = 1"); err != nil {
		t.Fatal(err)
	}
	os.Exit(crashExitCode)
}

// TestPurgeDefended leaves a defense row (a rollback with no phase 1) and
// purges it: kept while younger than the age given, deleted after.
func TestPurgeDefended(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		ctx := context.Background()
		tx, err := c.TM.Begin(ctx, "defended")
		if err != nil {
			t.Fatal(err)
		}
		// A branch registered with no local commit behind it: its rollback
		// can only leave a defense row.
		id, err := at.ResourceID(b.Driver, b.DSN)
		if err != nil {
			t.Fatal(err)
		}
		m := attest.NewRM(t, c)
		if _, err := m.RegisterBranch(ctx, tx.XID(), tcv1.BranchType_AT, id, "", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Rollback(ctx, "test"); err != nil {
			t.Logf("rollback: %v", err)
		}
		if st := attest.WaitStatus(t, c, tx.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		d := attest.DialectOf(b)
		if n, err := at.PurgeDefended(ctx, db, d, "", time.Hour); err != nil || n != 0 {
			t.Fatalf("purge of rows older than an hour: %d, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
		if n, err := at.PurgeDefended(ctx, db, d, "", time.Millisecond); err != nil || n != 1 {
			t.Fatalf("purge of rows older than 1ms: %d, %v", n, err)
		}
	})
}

// TestCompositeKeyRollbackTouchesOnlyItsRow rolls back a change to one row
// of a table with a two-column primary key while another transaction holds
// a lock on a different row: the rollback must reach that one row by its
// key, not read (and wait to lock) the whole table, as MariaDB does for a
// row-constructor IN list of one element.
func TestCompositeKeyRollbackTouchesOnlyItsRow(t *testing.T) {
	c := attest.StartCoordinator(t)
	for name, backend := range map[string]func(testing.TB) *attest.Backend{
		"mariadb": attest.MySQLBackend, "postgres": attest.PostgresBackend,
	} {
		t.Run(name, func(t *testing.T) {
			b := backend(t)
			db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
			attest.MustExec(t, b.Raw,
				"CREATE TABLE pair (a INT NOT NULL, b INT NOT NULL, v INT NOT NULL, PRIMARY KEY (a, b))",
				"INSERT INTO pair VALUES (1, 1, 0), (1, 2, 0), (2, 1, 0)")
			seed := attest.Dump(t, b.Raw, "pair")
			ctx := context.Background()
			tx := beginWithUpdate(t, c, db, "composite", "UPDATE pair SET v = 9 WHERE a = 1 AND b = 1")
			other, err := b.Raw.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Rollback()
			if _, err := other.ExecContext(ctx, b.SQL("SELECT v FROM pair WHERE a = ? AND b = ? FOR UPDATE"), 2, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Rollback(ctx, "test"); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if st := attest.WaitStatus(t, c, tx.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
				t.Fatalf("status %s, want ROLLBACKED", st)
			}
			other.Rollback()
			if got := attest.Dump(t, b.Raw, "pair"); !attest.SameRows(got, seed) {
				t.Fatalf("after rollback:\n%s\nwant:\n%s", attest.FormatRows(got), attest.FormatRows(seed))
			}
		})
	}
}
