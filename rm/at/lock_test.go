package at_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

// TestSelectForUpdateAndGlobalLockFlag holds a global lock on a row with an
// uncommitted global transaction A, then checks that another global
// transaction's SELECT ... FOR UPDATE and a plain local transaction marked
// with gtx.WithGlobalLock both refuse to go past it, and go through once A
// has committed.
func TestSelectForUpdateAndGlobalLockFlag(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c, func(cfg *at.Config) { cfg.LockRetryTimes = 2 })
		attest.MustExec(t, b.Raw, schema(b)...)
		ctx := context.Background()
		a := beginWithUpdate(t, c, db, "A", "UPDATE acct SET txt = 'A' WHERE id = 1")
		query := "SELECT code FROM acct WHERE id = ? FOR UPDATE"
		if b.Driver == "pgx" {
			// PostgreSQL locks the rows of the tables FOR UPDATE OF names.
			query = "SELECT a.code FROM acct a JOIN line l ON l.order_id = a.id WHERE a.id = $1 AND l.line_no = 1 FOR UPDATE OF a"
		}
		selectForUpdate := func(ctx context.Context, id int) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			var code string
			return tx.QueryRowContext(ctx, query, id).Scan(&code)
		}
		err := c.TM.WithGlobalTx(ctx, "reader", func(ctx context.Context) error { return selectForUpdate(ctx, 1) })
		if !errors.Is(err, at.ErrGlobalLock) {
			t.Fatalf("SELECT FOR UPDATE of a locked row: got %v, want ErrGlobalLock", err)
		}
		if err := c.TM.WithGlobalTx(ctx, "reader", func(ctx context.Context) error { return selectForUpdate(ctx, 2) }); err != nil {
			t.Fatalf("SELECT FOR UPDATE of a free row: %v", err)
		}
		flagged := gtx.WithGlobalLock(ctx)
		err = updateInBranch(flagged, db, "UPDATE acct SET txt = 'local' WHERE id = 1")
		if !errors.Is(err, at.ErrGlobalLock) {
			t.Fatalf("global-lock flagged update of a locked row: got %v, want ErrGlobalLock", err)
		}
		var txt string
		if err := b.Raw.QueryRow("SELECT txt FROM acct WHERE id = 1").Scan(&txt); err != nil || txt != "A" {
			t.Fatalf("refused local update left txt %q (%v)", txt, err)
		}
		if _, err := a.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		attest.WaitStatus(t, c, a.XID())
		if err := c.TM.WithGlobalTx(ctx, "reader", func(ctx context.Context) error { return selectForUpdate(ctx, 1) }); err != nil {
			t.Fatalf("SELECT FOR UPDATE after A committed: %v", err)
		}
		if err := updateInBranch(flagged, db, "UPDATE acct SET txt = 'local' WHERE id = 1"); err != nil {
			t.Fatalf("global-lock flagged update after A committed: %v", err)
		}
	})
}

// TestRandomDMLRollback runs random statements on a scratch table inside
// global transactions that roll back: the table must come back identical
// every time.
func TestRandomDMLRollback(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		attest.MustExec(t, b.Raw, schema(b)...)
		rng := rand.New(rand.NewSource(1))
		for round := 0; round < 15; round++ {
			randomRollback(t, c, b, db, rng, 6, randomStatement)
			// Move the seed on, outside any global transaction.
			q, args := randomStatement(rng)
			if _, err := b.Raw.Exec(q, args...); err != nil {
				t.Fatal(err)
			}
		}
	})
}

var (
	randomText  = []any{nil, "", "x", "it's", "tab\t\x00nul", "☃", "2001-02-03 04:05:06.5"}
	randomBlobs = []any{nil, []byte{}, []byte{0}, []byte{0xff, 0xfe, '\\'}, []byte("plain")}
)

func randomStatement(rng *rand.Rand) (string, []any) {
	v := func() any { return randomText[rng.Intn(len(randomText))] }
	blob := func() any { return randomBlobs[rng.Intn(len(randomBlobs))] }
	id := int64(1 + rng.Intn(40))
	switch rng.Intn(6) {
	case 0:
		return "INSERT INTO acct (code, balance, txt, data) VALUES (?, ?, ?, ?)", []any{fmt.Sprintf("r%d", rng.Int63()), int64(rng.Intn(1000)), v(), blob()}
	case 1:
		return "INSERT INTO line (order_id, line_no, qty) VALUES (?, ?, ?)", []any{int64(100 + rng.Intn(1000)), int64(rng.Intn(1000)), int64(rng.Intn(9))}
	case 2:
		return "UPDATE acct SET txt = ?, data = ?, balance = balance + 1 WHERE id < ?", []any{v(), blob(), id}
	case 3:
		return "UPDATE line SET qty = qty * 2 WHERE order_id % 2 = ?", []any{int64(rng.Intn(2))}
	case 4:
		return "DELETE FROM acct WHERE id = ? OR txt = ?", []any{id, v()}
	}
	return "DELETE FROM line WHERE qty > ?", []any{int64(rng.Intn(30))}
}

// TestCompressedUndoAndCleanup runs with every undo log compressed: a
// rollback still restores the seed, and commits leave no undo log behind
// once phase 2 has run.
func TestCompressedUndoAndCleanup(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c, func(cfg *at.Config) {
			cfg.CompressAbove = 1
			cfg.CleanupInterval = 10 * time.Millisecond
			cfg.CleanupBatch = 3
		})
		attest.MustExec(t, b.Raw, schema(b)...)
		seed := dumpAll(t, b)
		ctx := context.Background()
		err := c.TM.WithGlobalTx(ctx, "compressed", func(ctx context.Context) error {
			if err := updateInBranch(ctx, db, "UPDATE acct SET txt = 'compressed', data = NULL"); err != nil {
				t.Error(err)
			}
			return errForceRollback
		})
		if !errors.Is(err, errForceRollback) {
			t.Fatal(err)
		}
		compare(t, "after compressed rollback", dumpAll(t, b), seed)
		for i := 0; i < 5; i++ {
			if err := c.TM.WithGlobalTx(ctx, "commit", func(ctx context.Context) error {
				return updateInBranch(ctx, db, "UPDATE acct SET big = ? WHERE id = 2", int64(i))
			}); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			var n int
			if err := b.Raw.QueryRow("SELECT COUNT(*) FROM gtx_undo_log WHERE state = 0").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d undo logs of committed branches are still there", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// FuzzRandomDMLRollback is TestRandomDMLRollback as a fuzz target on
// SQLite: each input seeds the random statements of one global transaction
// that rolls back, after which the tables must equal their seed.
func FuzzRandomDMLRollback(f *testing.F) {
	for _, s := range []int64{1, 2, 3} {
		f.Add(s)
	}
	c := attest.StartCoordinator(f)
	b := attest.SQLiteBackend(f)
	db := attest.OpenAT(f, b, attest.NewRM(f, c), c)
	f.Fuzz(func(t *testing.T, seedValue int64) {
		attest.MustExec(t, b.Raw, schema(b)...)
		randomRollback(t, c, b, db, rand.New(rand.NewSource(seedValue)), 8, randomStatement)
	})
}

// randomRollback runs 1 to most statements of next, drawn with rng, in a
// global transaction that rolls back, and checks the tables came back.
func randomRollback(t *testing.T, c *attest.Coordinator, b *attest.Backend, db *sql.DB, rng *rand.Rand, most int, next func(*rand.Rand) (string, []any)) {
	t.Helper()
	seed := dumpAll(t, b)
	var stmts []string
	err := c.TM.WithGlobalTx(context.Background(), "random", func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i := 0; i < 1+rng.Intn(most); i++ {
			q, args := next(rng)
			stmts = append(stmts, fmt.Sprint(q, args))
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				tx.Rollback()
				return fmt.Errorf("%s %v: %w", q, args, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatal(err)
	}
	compare(t, fmt.Sprintf("after %q", stmts), dumpAll(t, b), seed)
}

// TestSchemaChange adds columns behind the proxy's cached metadata: from
// another connection (the first statement naming the new column is refused
// and drops the cache, the next one works and rolls back exactly), and
// through the AT driver itself (seen at once).
func TestSchemaChange(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		attest.MustExec(t, b.Raw, schema(b)...)
		ctx := context.Background()
		inGlobal := func(query string, rollback bool) error {
			err := c.TM.WithGlobalTx(ctx, "ddl", func(ctx context.Context) error {
				if err := updateInBranch(ctx, db, query); err != nil {
					return err
				}
				if rollback {
					return errForceRollback
				}
				return nil
			})
			if rollback && errors.Is(err, errForceRollback) {
				return nil
			}
			return err
		}
		if err := inGlobal("UPDATE acct SET txt = 'warm' WHERE id = 1", false); err != nil {
			t.Fatal(err)
		}
		attest.MustExec(t, b.Raw, "ALTER TABLE acct ADD COLUMN extra INT NOT NULL DEFAULT 5")
		if err := inGlobal("UPDATE acct SET extra = 7 WHERE id = 1", true); !errors.Is(err, at.ErrRefused) {
			t.Fatalf("first statement on the new column: got %v, want ErrRefused", err)
		}
		attest.MustExec(t, b.Raw, "UPDATE acct SET extra = 9 WHERE id = 1")
		seed := attest.Dump(t, b.Raw, "acct")
		if err := inGlobal("DELETE FROM acct WHERE id = 1", true); err != nil {
			t.Fatal(err)
		}
		if got := attest.Dump(t, b.Raw, "acct"); !attest.SameRows(got, seed) {
			t.Fatalf("after rollback:\n%s want:\n%s", attest.FormatRows(got), attest.FormatRows(seed))
		}
		if _, err := db.Exec("ALTER TABLE acct ADD COLUMN extra2 INT NOT NULL DEFAULT 1"); err != nil {
			t.Fatal(err)
		}
		if err := inGlobal("UPDATE acct SET extra2 = 3 WHERE id = 1", false); err != nil {
			t.Fatalf("statement after DDL through the driver: %v", err)
		}
	})
}
