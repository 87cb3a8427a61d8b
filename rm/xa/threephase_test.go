package xa_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/rm/xa/internal/xatest"
	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tm"
)

// votes is a tm.Voter that counts its calls and answers err.
type votes struct {
	mu  sync.Mutex
	n   int
	err error
}

func (v *votes) CanCommit(ctx context.Context, xid string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n++
	return v.err
}

// fastThreePhase makes precommitted branches commit alone quickly.
func fastThreePhase(c *xa.Config) { c.Recover.PreCommitTimeout = 300 * time.Millisecond }

func dial(t *testing.T, addr string) tcv1.CoordinatorClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// TestThreePhaseVoteNo: a no in CanCommit rolls the transaction back
// before its function runs; nothing is registered or prepared.
func TestThreePhaseVoteNo(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	no := &votes{err: errors.New("out of prepared-transaction slots")}
	yes := &votes{}
	ran := false
	var xid string
	err := c.TM.WithGlobalTx(context.Background(), "3pc-no", func(ctx context.Context) error {
		ran = true
		return nil
	}, tm.ThreePhase(yes, no), tm.WithPropagation(tm.Required))
	if !errors.Is(err, tm.ErrVotedNo) || ran {
		t.Fatalf("got %v (function ran: %v), want ErrVotedNo before the function", err, ran)
	}
	if yes.n != 1 || no.n != 1 {
		t.Fatalf("votes asked %d and %d times, want once each", yes.n, no.n)
	}
	resp, err := c.Client.ListTransactions(context.Background(), &tcv1.ListTransactionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range resp.GetTransactions() {
		xid = tx.GetXid()
		if st := tx.GetStatus(); st != tcv1.GlobalStatus_ROLLBACKED || len(tx.GetBranches()) != 0 {
			t.Fatalf("transaction %s: %s with %d branches, want ROLLBACKED with none", xid, st, len(tx.GetBranches()))
		}
	}
	if xid == "" {
		t.Fatal("no transaction was begun")
	}
}

// TestThreePhaseCoordinatorDiesAfterPreCommit SIGKILLs the coordinator
// process once the branches of a three-phase transaction have prepared
// (PreCommit) and of a two-phase one too. With no coordinator answering,
// the three-phase branches commit alone after Recover.PreCommitTimeout (the
// protocol's rule: non-blocking), while the two-phase branch stays prepared,
// blocking its row, until a coordinator runs again and resolves it (here:
// its timeout rolls it back).
func TestThreePhaseCoordinatorDiesAfterPreCommit(t *testing.T) {
	if os.Getenv("GTX_XA_TC_CHILD") != "" || os.Getenv("GTX_XA_CHILD") != "" {
		t.Skip("runs as the parent only")
	}
	xatest.Backends(t, func(t *testing.T, b1 *xatest.Backend) {
		b2 := xatest.MySQL(t)
		if b1.Driver == "pgx" {
			b2 = xatest.Postgres(t)
		}
		for _, b := range []*xatest.Backend{b1, b2} {
			xatest.MustExec(t, b.Raw, acctDDL, "INSERT INTO acct VALUES (1, 100), (2, 100)")
		}
		path, addr := filepath.Join(t.TempDir(), "tc.db"), freeAddr(t)
		tcProc := startTCChild(t, path, addr)
		client := dial(t, addr)
		// The commit after the kill gives up within a second.
		tmgr := xatest.NewTM(t, client, func(c *tm.Config) { c.StatusPollTimeout = time.Second })
		m := xatest.NewRM(t, client, true)
		db1, db2 := xatest.Open(t, b1, m, client, fastThreePhase), xatest.Open(t, b2, m, client, fastThreePhase)
		ctx := context.Background()

		// A two-phase transaction, prepared on account 2 of b1, left open.
		two, err := tmgr.Begin(ctx, "2pc", tm.Timeout(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := debit(two.Context(), b1, db1, 2); err != nil {
			t.Fatal(err)
		}
		var xid string
		err = tmgr.WithGlobalTx(ctx, "3pc", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			if err := debit(ctx, b1, db1, 1); err != nil {
				return err
			}
			if err := debit(ctx, b2, db2, 1); err != nil {
				return err
			}
			kill(t, tcProc) // after PreCommit, before DoCommit
			return nil
		}, tm.ThreePhase(&votes{}))
		t.Logf("commit with the coordinator dead: %v", err)
		poll.Until(t, "the precommitted branches to commit alone", 0, func() bool {
			return xatest.Prepared(t, b1, xid) == 0
		})
		if got := xatest.Balance(t, b1, 1) + xatest.Balance(t, b2, 1); got != 180 {
			t.Fatalf("balances of the three-phase transaction sum to %d, want 180 (both committed)", got)
		}
		if n := xatest.Prepared(t, b1, two.XID()); n != 1 {
			t.Fatalf("%d two-phase branches prepared with the coordinator dead, want 1 (blocked)", n)
		}
		startTCChild(t, path, addr)
		poll.Until(t, "the two-phase branch to be rolled back after the restart", 0, func() bool {
			return xatest.Prepared(t, b1, two.XID()) == 0
		})
		if got := xatest.Balance(t, b1, 2); got != 100 {
			t.Fatalf("two-phase account %d after its timeout rollback, want 100", got)
		}
	})
}

// debit takes 10 from account id in an XA branch of the transaction in ctx.
func debit(ctx context.Context, b *xatest.Backend, db *sql.DB, id int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, b.SQL("UPDATE acct SET balance = balance - 10 WHERE id = ?"), id); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// proxy forwards TCP connections to target until Cut, which breaks every
// connection and refuses new ones until Heal: a network split between the
// proxy's clients and target.
type proxy struct {
	target string
	l      net.Listener
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, l: l}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) Addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			}()
		}
	}
}

// Cut breaks the connections and refuses new ones.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Heal lets connections through again.
func (p *proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// TestThreePhaseNetworkSplit shows where three-phase commit is unsafe. The
// resource manager of b1 reaches the coordinator through a link that is
// cut once both branches of a three-phase transaction have prepared; the
// coordinator, reachable from the TM and from b2's resource manager, rolls
// the transaction back. b2's branch rolls back, b1's, precommitted and
// hearing no coordinator, commits alone after Recover.PreCommitTimeout:
// the outcome is split. When the link heals, the coordinator's rollback
// finds the heuristic commit and stops at ROLLBACK_FAILED for an operator.
// A two-phase transaction through the same cut link stays prepared until
// the link heals and then rolls back: consistent.
func TestThreePhaseNetworkSplit(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{Configure: func(cfg *tc.Config) { cfg.BranchTimeout = time.Second }})
	xatest.Backends(t, func(t *testing.T, b1 *xatest.Backend) {
		b2 := xatest.MySQL(t)
		if b1.Driver == "pgx" {
			b2 = xatest.Postgres(t)
		}
		for _, b := range []*xatest.Backend{b1, b2} {
			xatest.MustExec(t, b.Raw, acctDDL, "INSERT INTO acct VALUES (1, 100), (2, 100)")
		}
		link := newProxy(t, c.Addr)
		far := dial(t, link.Addr())
		m1 := xatest.NewRM(t, far, true)
		m2 := xatest.NewRM(t, c.Client, true)
		db1 := xatest.Open(t, b1, m1, far, fastThreePhase)
		db2 := xatest.Open(t, b2, m2, c.Client, fastThreePhase)
		ctx := context.Background()

		run := func(name string, opts ...tm.Option) string {
			var xid string
			err := c.TM.WithGlobalTx(ctx, name, func(ctx context.Context) error {
				xid, _ = gtx.XIDFromContext(ctx)
				id := 1
				if len(opts) == 0 {
					id = 2
				}
				if err := debit(ctx, b1, db1, id); err != nil {
					return err
				}
				if err := debit(ctx, b2, db2, id); err != nil {
					return err
				}
				link.Cut()
				return errForce // the coordinator's side decides rollback
			}, opts...)
			if !errors.Is(err, errForce) {
				t.Fatalf("%s: %v, want the forced rollback", name, err)
			}
			return xid
		}

		three := run("3pc-split", tm.ThreePhase(&votes{}))
		poll.Until(t, "b1's precommitted branch to commit alone", 0, func() bool { return xatest.Prepared(t, b1, three) == 0 })
		if got := xatest.Balance(t, b1, 1); got != 90 {
			t.Fatalf("b1 balance %d, want 90 (committed alone)", got)
		}
		if got := xatest.Balance(t, b2, 1); got != 100 {
			t.Fatalf("b2 balance %d, want 100 (rolled back)", got)
		}
		link.Heal()
		if st := xatest.WaitStatus(t, c.Client, three); st != tcv1.GlobalStatus_ROLLBACK_FAILED {
			t.Fatalf("split transaction ended %s, want ROLLBACK_FAILED", st)
		}

		two := run("2pc-split")
		if got := xatest.Balance(t, b2, 2); got != 100 {
			t.Fatalf("b2 balance %d, want 100 (rolled back)", got)
		}
		// Well past PreCommitTimeout: still prepared, still blocking.
		deadline := time.Now().Add(time.Second)
		poll.Until(t, "a second with the link cut", 0, func() bool { return time.Now().After(deadline) })
		if n := xatest.Prepared(t, b1, two); n != 1 {
			t.Fatalf("%d two-phase branches prepared across the split, want 1", n)
		}
		link.Heal()
		if st := xatest.WaitStatus(t, c.Client, two); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("two-phase transaction ended %s, want ROLLBACKED", st)
		}
		if got := xatest.Balance(t, b1, 2); got != 100 {
			t.Fatalf("b1 balance %d after the heal, want 100", got)
		}
	})
}
