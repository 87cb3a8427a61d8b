package at_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
	"github.com/gtx-io/gtx/tm"
)

// undoState returns the state of the undo row of xid, or -1 when there is
// none.
func undoState(t *testing.T, b *attest.Backend, xid string) int {
	t.Helper()
	var st int
	err := b.Raw.QueryRow("SELECT MIN(state) FROM gtx_undo_log WHERE xid = ? HAVING COUNT(*) > 0", xid).Scan(&st)
	if err != nil {
		if strings.Contains(err.Error(), "no rows") {
			return -1
		}
		t.Fatal(err)
	}
	return st
}

// fastSweep turns the sweeper on with a short interval and age, passes of
// two rows, and UnknownAfter an hour.
func fastSweep(cfg *at.Config) {
	cfg.Sweep.Interval = 20 * time.Millisecond
	cfg.Sweep.Age = time.Millisecond
	cfg.Sweep.Batch = 2
	cfg.Sweep.UnknownAfter = time.Hour
}

// TestSweeper commits a global transaction in a child process that exits
// with the deletion of its undo row still queued, then restarts with the
// sweeper on: it must delete that row, and keep the rows of a transaction
// still running, of one whose rollback stopped (ROLLBACK_FAILED), of one
// whose rollback is pending, and of an unknown transaction younger than
// Sweep.UnknownAfter, while deleting an older unknown one.
func TestSweeper(t *testing.T) {
	if os.Getenv("GTX_AT_SWEEP_CHILD") != "" {
		t.Skip("runs as the child only")
	}
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) {
		ctx := context.Background()
		attest.MustExec(t, b.Raw, schema(b)...)
		if err := at.Migrate(ctx, b.Raw, attest.DialectOf(b), ""); err != nil {
			t.Fatal(err)
		}
		out := runChild(t, c, b, "TestSweepChild", "GTX_AT_SWEEP_CHILD=1")
		m := regexp.MustCompile(`committed-xid=(\S+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("child printed no xid:\n%s", out)
		}
		committed := string(m[1])
		if st := undoState(t, b, committed); st != 0 {
			t.Fatalf("undo row of the committed transaction: state %d, want it left behind with state 0", st)
		}

		// The restart, with the sweeper on.
		rmgr := attest.NewRM(t, c)
		db := attest.OpenAT(t, b, rmgr, c, fastSweep)
		deadline := time.Now().Add(20 * time.Second)
		for undoState(t, b, committed) != -1 {
			if time.Now().After(deadline) {
				t.Fatal("the sweeper did not delete the undo row of the committed transaction")
			}
			time.Sleep(20 * time.Millisecond)
		}

		// Still running: phase 1 committed, the global transaction not ended.
		running := beginWithUpdate(t, c, db, "sweep-running", "UPDATE flag SET flag = 9 WHERE id = 3")
		// Rollback stopped by a dirty write: ROLLBACK_FAILED keeps its row
		// for the operator's retry.
		failed := beginWithUpdate(t, c, db, "sweep-failed", "UPDATE acct SET balance = 1 WHERE id = 1")
		attest.MustExec(t, b.Raw, "UPDATE acct SET balance = 777 WHERE id = 1")
		if _, err := failed.Rollback(ctx, "test"); err != nil {
			t.Logf("rollback: %v", err)
		}
		if st := attest.WaitStatus(t, c, failed.XID()); st != tcv1.GlobalStatus_ROLLBACK_FAILED {
			t.Fatalf("status %s, want ROLLBACK_FAILED", st)
		}
		// Rollback pending: the branch's resource is closed in this process,
		// so the coordinator keeps retrying it.
		otherID := "sweep-other-" + b.Name
		other := attest.OpenAT(t, b, rmgr, c, func(cfg *at.Config) {
			cfg.ResourceID = otherID
			cfg.Sweep.Interval = 0
		})
		pending := beginWithUpdate(t, c, other, "sweep-pending", "UPDATE line SET qty = 0 WHERE order_id = 2")
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		rb, err := c.Client.Rollback(ctx, &tcv1.RollbackRequest{Xid: pending.XID(), Reason: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if rb.GetStatus() == tcv1.GlobalStatus_ROLLBACKED {
			t.Fatal("rollback succeeded with the branch's resource closed")
		}
		// Transactions the coordinator never heard of, one row old, one new.
		old := "sweep-unknown-old-" + b.Name
		young := "sweep-unknown-young-" + b.Name
		attest.MustExec(t, b.Raw, "INSERT INTO gtx_undo_log (xid, branch_id, state, rollback_info, created_at) VALUES ('"+old+"', 1, 0, '', '2000-01-01 00:00:00')",
			"INSERT INTO gtx_undo_log (xid, branch_id, state, rollback_info) VALUES ('"+young+"', 1, 0, '')")

		time.Sleep(10 * time.Millisecond)
		id, err := at.ResourceID(b.Driver, b.DSN)
		if err != nil {
			t.Fatal(err)
		}
		// Passes of two rows each: enough to look at every row twice.
		for range 6 {
			if _, err := at.SweepNow(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := c.Client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: pending.XID()})
		if err != nil {
			t.Fatal(err)
		}
		if st := resp.GetStatus(); !st.IsRollingBack() && st != tcv1.GlobalStatus_ROLLBACK_FAILED {
			t.Fatalf("pending rollback is %s", st)
		}
		for _, tc := range []struct {
			what, xid string
			want      int
		}{
			{"running transaction", running.XID(), 0},
			{"failed rollback", failed.XID(), 0},
			{"pending rollback", pending.XID(), 0},
			{"unknown transaction younger than UnknownAfter", young, 0},
			{"unknown transaction older than UnknownAfter", old, -1},
		} {
			if got := undoState(t, b, tc.xid); got != tc.want {
				t.Errorf("%s: undo row state %d, want %d (-1: deleted)", tc.what, got, tc.want)
			}
		}
		if _, err := running.Rollback(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		if st := attest.WaitStatus(t, c, running.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		if st := undoState(t, b, running.XID()); st != 1 {
			t.Fatalf("rolled back transaction: undo row state %d, want the defense row (1)", st)
		}
	})
}

// TestSweepChild is the child of TestSweeper: it commits a global
// transaction with one branch and exits as soon as the coordinator reports
// it COMMITTED, with the deletion of the undo row queued and never run.
func TestSweepChild(t *testing.T) {
	if os.Getenv("GTX_AT_SWEEP_CHILD") == "" {
		t.Skip("run by TestSweeper")
	}
	db, client := childAT(t, func(cfg *at.Config) {
		cfg.CleanupInterval = time.Hour
		cfg.CleanupBatch = 1000
		cfg.Sweep.Interval = 0
	})
	tcfg := tm.DefaultConfig()
	tcfg.Application = "at-sweep-child"
	tmgr, err := tm.New(client, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var xid string
	if err := tmgr.WithGlobalTx(ctx, "sweep-child", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		return updateInBranch(ctx, db, "UPDATE acct SET balance = 1 WHERE id = 2")
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() == tcv1.GlobalStatus_COMMITTED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s", resp.GetStatus())
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("committed-xid=%s\n", xid)
	os.Exit(crashExitCode)
}

// TestSweeperPurgesDefenseRows rolls back a global transaction, which
// leaves a defense row: the sweeper must delete it once older than
// Sweep.DefenseAge, and keep the defense row of a transaction still
// running.
func TestSweeperPurgesDefenseRows(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) {
		ctx := context.Background()
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c, func(cfg *at.Config) {
			cfg.Sweep.Interval = time.Hour // passes run by SweepNow only
			cfg.Sweep.Age = time.Millisecond
			cfg.Sweep.DefenseAge = time.Millisecond
		})
		attest.MustExec(t, b.Raw, schema(b)...)
		running := beginWithUpdate(t, c, db, "defense-running", "UPDATE flag SET flag = 9 WHERE id = 3")
		attest.MustExec(t, b.Raw, "INSERT INTO gtx_undo_log (xid, branch_id, state, rollback_info) VALUES ('"+running.XID()+"', 999, 1, '')")
		rolled := beginWithUpdate(t, c, db, "defense-rolled", "UPDATE acct SET balance = 1 WHERE id = 1")
		if _, err := rolled.Rollback(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		if st := attest.WaitStatus(t, c, rolled.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		if st := undoState(t, b, rolled.XID()); st != 1 {
			t.Fatalf("rolled back transaction: undo row state %d, want the defense row (1)", st)
		}
		id, err := at.ResourceID(b.Driver, b.DSN)
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "the sweeper deletes the defense row", 20*time.Second, func() bool {
			if _, err := at.SweepNow(ctx, id); err != nil {
				t.Fatal(err)
			}
			return undoState(t, b, rolled.XID()) == -1
		})
		var n int
		if err := b.Raw.QueryRow("SELECT COUNT(*) FROM gtx_undo_log WHERE xid = ? AND state = 1", running.XID()).Scan(&n); err != nil || n != 1 {
			t.Fatalf("defense row of the running transaction: %d rows, %v; want it kept", n, err)
		}
		if _, err := running.Rollback(ctx, "test"); err != nil {
			t.Fatal(err)
		}
	})
}
