package xa_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/rm/xa/internal/xatest"
	"github.com/gtx-io/gtx/tm"
)

// statusRouter asks other about one XID and known about the rest: a
// coordinator that lost one transaction.
type statusRouter struct {
	lost         string
	known, other xa.StatusQuerier
}

func (r statusRouter) GetStatus(ctx context.Context, in *tcv1.GetStatusRequest, opts ...grpc.CallOption) (*tcv1.GetStatusResponse, error) {
	if in.GetXid() == r.lost {
		return r.other.GetStatus(ctx, in, opts...)
	}
	return r.known.GetStatus(ctx, in, opts...)
}

// TestUnknownTransactionRolledBackAfterGrace prepares two branches and
// lets the recovery loop ask about them a coordinator that knows one (in
// BEGIN) and not the other: the unknown one is rolled back once the grace
// period has passed, the other stays prepared until its TM commits.
func TestUnknownTransactionRolledBackAfterGrace(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	stranger := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	m := xatest.NewRM(t, c.Client, true)
	xatest.Backends(t, func(t *testing.T, b *xatest.Backend) {
		xatest.MustExec(t, b.Raw, acctDDL, "INSERT INTO acct VALUES (1, 100), (2, 100)")
		ctx := context.Background()
		lost, err := c.TM.Begin(ctx, "lost")
		if err != nil {
			t.Fatal(err)
		}
		kept, err := c.TM.Begin(ctx, "kept")
		if err != nil {
			t.Fatal(err)
		}
		const grace = 300 * time.Millisecond
		db := xatest.Open(t, b, m, statusRouter{lost: lost.XID(), known: c.Client, other: stranger.Client}, func(c *xa.Config) {
			c.Recover.UnknownGrace = grace
		})
		start := time.Now()
		for i, tx := range []*tm.Tx{lost, kept} {
			bt, err := db.BeginTx(tx.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bt.Exec(b.SQL("UPDATE acct SET balance = balance - 10 WHERE id = ?"), i+1); err != nil {
				t.Fatal(err)
			}
			if err := bt.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		poll.Until(t, "the unknown branch to be rolled back", 0, func() bool { return xatest.Prepared(t, b, lost.XID()) == 0 })
		if waited := time.Since(start); waited < grace {
			t.Fatalf("rolled back after %v, within the grace period %v", waited, grace)
		}
		if n := xatest.Prepared(t, b, kept.XID()); n != 1 {
			t.Fatalf("%d branches of the transaction in BEGIN prepared, want 1", n)
		}
		if _, err := kept.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if st := xatest.WaitStatus(t, c.Client, kept.XID()); st != tcv1.GlobalStatus_COMMITTED {
			t.Fatalf("status %s", st)
		}
		if a, k := xatest.Balance(t, b, 1), xatest.Balance(t, b, 2); a != 100 || k != 90 {
			t.Fatalf("balances %d and %d, want 100 (rolled back) and 90 (committed)", a, k)
		}
	})
}
