package xa_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/modes/tcc"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/xa/internal/xatest"
	"github.com/gtx-io/gtx/tm"
)

type freeze struct{ Amount int64 }

// TestMixedModes runs XA branches on MariaDB and PostgreSQL, an AT branch
// on MariaDB and a TCC branch on PostgreSQL in one global transaction, all
// on one resource manager: committed, every change is in; rolled back,
// none is, the TCC reservation is released, and nothing stays prepared;
// also with three-phase commit (tm.ThreePhase).
func TestMixedModes(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	m := xatest.NewRM(t, c.Client, true)
	xaMy, xaPg, atMy, tccPg := xatest.MySQL(t), xatest.Postgres(t), xatest.MySQL(t), xatest.Postgres(t)
	for _, b := range []*xatest.Backend{xaMy, xaPg, atMy} {
		xatest.MustExec(t, b.Raw, acctDDL, "INSERT INTO acct VALUES (1, 100)")
	}
	xatest.MustExec(t, tccPg.Raw, "CREATE TABLE acct (id INT PRIMARY KEY, balance BIGINT NOT NULL, frozen BIGINT NOT NULL)", "INSERT INTO acct VALUES (1, 100, 0)")
	ctx := context.Background()

	xaMyDB, xaPgDB := xatest.Open(t, xaMy, m, c.Client), xatest.Open(t, xaPg, m, c.Client)
	acfg := at.DefaultConfig()
	acfg.DriverName, acfg.DSN, acfg.Manager, acfg.Locks, acfg.Logger = atMy.Driver, atMy.DSN, m, c.Client, xatest.Quiet
	atDB, err := at.Open(acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { atDB.Close() })
	if err := at.Migrate(ctx, atDB, at.MySQL(), acfg.UndoTable); err != nil {
		t.Fatal(err)
	}
	fcfg := tcc.DefaultFenceConfig()
	fcfg.Dialect, fcfg.CleanInterval, fcfg.Logger = tcc.Postgres, 0, xatest.Quiet
	fence, err := tcc.OpenFence(ctx, tccPg.Raw, fcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fence.Close() })
	exec := func(q string) tcc.PhaseFunc[freeze] {
		return func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[freeze]) error {
			_, err := tx.SQL.ExecContext(ctx, q, bc.Request.Amount)
			return err
		}
	}
	action, err := tcc.Register(tcc.NewParticipant(m, xatest.Quiet), "acct.freeze", fence, tcc.Phases[freeze]{
		Try:     exec("UPDATE acct SET balance = balance - $1, frozen = frozen + $1 WHERE id = 1"),
		Confirm: exec("UPDATE acct SET frozen = frozen - $1 WHERE id = 1"),
		Cancel:  exec("UPDATE acct SET balance = balance + $1, frozen = frozen - $1 WHERE id = 1"),
	})
	if err != nil {
		t.Fatal(err)
	}

	work := func(ctx context.Context, amount int64) error {
		for _, s := range []struct {
			b  *xatest.Backend
			db *sql.DB
		}{{xaMy, xaMyDB}, {xaPg, xaPgDB}, {atMy, atDB}} {
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.b.SQL("UPDATE acct SET balance = balance - ? WHERE id = 1"), amount); err != nil {
				tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		_, err := action.Try(ctx, freeze{Amount: amount})
		return err
	}
	check := func(t *testing.T, what string, want int64) {
		t.Helper()
		for _, b := range []*xatest.Backend{xaMy, xaPg, atMy, tccPg} {
			if got := xatest.Balance(t, b, 1); got != want {
				t.Errorf("%s: balance on %s is %d, want %d", what, b.DSN, got, want)
			}
		}
		var frozen int64
		if err := tccPg.Raw.QueryRow("SELECT frozen FROM acct WHERE id = 1").Scan(&frozen); err != nil || frozen != 0 {
			t.Errorf("%s: frozen %d (%v), want 0", what, frozen, err)
		}
	}

	for _, tc := range []struct {
		name string
		fail error
		want tcv1.GlobalStatus
		// balance is every account's balance afterwards.
		balance int64
		opts    []tm.Option
	}{
		{"commit", nil, tcv1.GlobalStatus_COMMITTED, 90, nil},
		{"rollback", errForce, tcv1.GlobalStatus_ROLLBACKED, 90, nil},
		{"three-phase commit", nil, tcv1.GlobalStatus_COMMITTED, 80, []tm.Option{tm.ThreePhase(&votes{})}},
		{"three-phase rollback", errForce, tcv1.GlobalStatus_ROLLBACKED, 80, []tm.Option{tm.ThreePhase(&votes{})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var xid string
			err := c.TM.WithGlobalTx(ctx, "mixed", func(ctx context.Context) error {
				xid, _ = gtx.XIDFromContext(ctx)
				if err := work(ctx, 10); err != nil {
					return err
				}
				return tc.fail
			}, tc.opts...)
			if !errors.Is(err, tc.fail) {
				t.Fatalf("global transaction: %v, want %v", err, tc.fail)
			}
			if st := xatest.WaitStatus(t, c.Client, xid); st != tc.want {
				t.Fatalf("status %s, want %s", st, tc.want)
			}
			resp, err := c.Client.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
			if err != nil {
				t.Fatal(err)
			}
			types := map[tcv1.BranchType]int{}
			for _, b := range resp.GetTransaction().GetBranches() {
				types[b.GetBranchType()]++
			}
			if types[tcv1.BranchType_XA] != 2 || types[tcv1.BranchType_AT] != 1 || types[tcv1.BranchType_TCC] != 1 {
				t.Fatalf("branches by type %v, want 2 XA, 1 AT, 1 TCC", types)
			}
			check(t, tc.name, tc.balance)
			if n := xatest.Prepared(t, xaMy, xid) + xatest.Prepared(t, xaPg, xid); n != 0 {
				t.Fatalf("%d XA branches still prepared", n)
			}
		})
	}
}
