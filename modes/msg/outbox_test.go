package msg

import (
	"context"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// TestOutbox writes an event in a branch's local transaction on every
// database: it is published once when the global transaction commits,
// never when it rolls back, and never when the local transaction rolled
// back; the outbox row is gone in each case.
func TestOutbox(t *testing.T) {
	nc, js := connect(t, natsURL())
	streamName, prefix := stream(t, js)
	c := startCluster(t, nc)
	tcfg := tm.DefaultConfig()
	tcfg.Application = "outbox-test"
	tcfg.Logger = quiet
	tms, err := tm.New(c.client, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	courier, err := NewCourier(CourierConfig{NATS: nc, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = courier.Close() })
	backends(t, func(t *testing.T, b *backend) {
		ctx := testContext(t)
		rcfg := rm.DefaultConfig()
		rcfg.Application = "outbox-test"
		rcfg.Coordinators = []tcv1.CoordinatorClient{c.client}
		rcfg.Logger = quiet
		m, err := rm.New(rcfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ocfg := DefaultOutboxConfig()
		ocfg.Dialect = b.dialect
		ocfg.Resource = "outbox:" + b.name
		o, err := NewOutbox(ctx, b.db, m, courier, ocfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := m.WaitAttached(wctx); err != nil {
			t.Fatal(err)
		}
		rows := func(xid string) int {
			var n int
			if err := b.db.QueryRow(placeholders(b.dialect, "SELECT COUNT(*) FROM "+DefaultOutboxTable+" WHERE xid = ?"), xid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// branch runs a branch's local transaction that places an order and
		// writes its event, committing it or not.
		branch := func(ctx context.Context, id, subject string, commit bool) {
			t.Helper()
			tx, err := b.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := insertOrder(id, b.dialect)(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if err := o.Write(ctx, tx, Message{Target: "nats:" + subject, Payload: []byte(id)}); err != nil {
				t.Fatal(err)
			}
			if !commit {
				_ = tx.Rollback()
				return
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name          string
			localCommit   bool
			globalCommit  bool
			wantDelivered int
		}{
			{"global commit", true, true, 1},
			{"global rollback", true, false, 0},
			{"local rollback", false, true, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := randomName("e")
				subject := prefix + ".outbox." + b.name + "." + id
				g, err := tms.Begin(ctx, "place-order")
				if err != nil {
					t.Fatal(err)
				}
				branch(g.Context(), id, subject, tc.localCommit)
				final := tcv1.GlobalStatus_COMMITTED
				if tc.globalCommit {
					if _, err := g.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					final = tcv1.GlobalStatus_ROLLBACKED
					if _, err := g.Rollback(ctx, "test"); err != nil {
						t.Fatal(err)
					}
				}
				poll.Until(t, final.String(), 0, func() bool { return c.status(t, g.XID()) == final })
				if n := count(t, js, streamName, subject); n != tc.wantDelivered {
					t.Fatalf("%d events published, want %d", n, tc.wantDelivered)
				}
				if n := rows(g.XID()); n != 0 {
					t.Fatalf("%d outbox rows left", n)
				}
			})
		}
		if err := o.Write(ctx, nil, Message{Target: "nats:" + prefix + ".x"}); err != ErrNoTransaction {
			t.Fatalf("Write outside a global transaction: %v, want ErrNoTransaction", err)
		}
	})
}
