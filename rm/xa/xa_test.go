package xa_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/rm/xa/internal/xatest"
)

var errForce = errors.New("force rollback")

const acctDDL = "CREATE TABLE acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)"

// transfer moves amount from account 1 of from to account 1 of to, each in
// an XA branch of the transaction in ctx.
func transfer(ctx context.Context, from, to *xatest.Backend, fromDB, toDB *sql.DB, amount int) error {
	for _, s := range []struct {
		b     *xatest.Backend
		db    *sql.DB
		delta int
	}{{from, fromDB, -amount}, {to, toDB, amount}} {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.b.SQL("UPDATE acct SET balance = balance + ? WHERE id = 1"), s.delta); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// TestTwoBranchesCommitAndRollback moves money between two databases in
// one global transaction of two XA branches: committed, both changes are
// in; rolled back, neither is; nothing stays prepared.
func TestTwoBranchesCommitAndRollback(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	m := xatest.NewRM(t, c.Client, true)
	xatest.Backends(t, func(t *testing.T, from *xatest.Backend) {
		to := from
		if from.Driver == "pgx" {
			to = xatest.Postgres(t)
		} else {
			to = xatest.MySQL(t)
		}
		for _, b := range []*xatest.Backend{from, to} {
			xatest.MustExec(t, b.Raw, acctDDL, "INSERT INTO acct VALUES (1, 100)")
		}
		fromDB, toDB := xatest.Open(t, from, m, c.Client), xatest.Open(t, to, m, c.Client)
		ctx := context.Background()

		var xid string
		err := c.TM.WithGlobalTx(ctx, "transfer", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			if err := transfer(ctx, from, to, fromDB, toDB, 30); err != nil {
				return err
			}
			// Prepared, not committed: a plain reader still sees the old
			// balances, and both branches are held by the databases.
			if got := xatest.Balance(t, from, 1); got != 100 {
				t.Errorf("balance before phase 2: %d, want 100", got)
			}
			if n := xatest.Prepared(t, from, xid); n != 2 {
				t.Errorf("prepared branches before phase 2: %d, want 2", n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := xatest.Balance(t, from, 1), int64(70); got != want {
			t.Fatalf("from after commit: %d, want %d", got, want)
		}
		if got, want := xatest.Balance(t, to, 1), int64(130); got != want {
			t.Fatalf("to after commit: %d, want %d", got, want)
		}
		if n := xatest.Prepared(t, from, xid); n != 0 {
			t.Fatalf("%d branches still prepared after commit", n)
		}

		err = c.TM.WithGlobalTx(ctx, "transfer", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			if err := transfer(ctx, from, to, fromDB, toDB, 50); err != nil {
				return err
			}
			return errForce
		})
		if !errors.Is(err, errForce) {
			t.Fatalf("rollback: %v", err)
		}
		if st := xatest.WaitStatus(t, c.Client, xid); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		if got, want := xatest.Balance(t, from, 1)+xatest.Balance(t, to, 1), int64(200); got != want {
			t.Fatalf("sum after rollback: %d, want %d", got, want)
		}
		if got := xatest.Balance(t, from, 1); got != 70 {
			t.Fatalf("from after rollback: %d, want 70", got)
		}
		if n := xatest.Prepared(t, from, xid); n != 0 {
			t.Fatalf("%d branches still prepared after rollback", n)
		}
	})
}

// TestFailedStatementRollsBackBranch runs a branch whose statement fails
// and commits it anyway: PostgreSQL has aborted the transaction and
// MariaDB keeps it, but neither may prepare a branch the application saw
// fail... the commit of a branch whose statement failed on PostgreSQL
// answers ErrAborted; on both, the global rollback leaves the data as it
// was.
func TestFailedStatementRollsBackBranch(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	m := xatest.NewRM(t, c.Client, true)
	xatest.Backends(t, func(t *testing.T, b *xatest.Backend) {
		xatest.MustExec(t, b.Raw, acctDDL, "INSERT INTO acct VALUES (1, 100)")
		db := xatest.Open(t, b, m, c.Client)
		ctx := context.Background()
		tx, err := c.TM.Begin(ctx, "failing")
		if err != nil {
			t.Fatal(err)
		}
		bt, err := db.BeginTx(tx.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bt.Exec(b.SQL("UPDATE acct SET balance = 1 WHERE id = ?"), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := bt.Exec("INSERT INTO acct VALUES (1, 0)"); err == nil {
			t.Fatal("a duplicate key did not fail")
		}
		err = bt.Commit()
		if b.Driver == "pgx" && !errors.Is(err, xa.ErrAborted) {
			t.Fatalf("commit after a failed statement on postgres: %v, want ErrAborted", err)
		}
		if _, err := tx.Rollback(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		if st := xatest.WaitStatus(t, c.Client, tx.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		if got := xatest.Balance(t, b, 1); got != 100 {
			t.Fatalf("balance %d, want 100", got)
		}
		if n := xatest.Prepared(t, b, tx.XID()); n != 0 {
			t.Fatalf("%d branches prepared", n)
		}
	})
}
