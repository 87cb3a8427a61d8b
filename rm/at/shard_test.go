package at_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

// shards is one order table split over three databases: two MariaDB ones
// and a PostgreSQL one, order id modulo 3 choosing the shard.
type shards struct {
	backends []*attest.Backend
	dbs      []*sql.DB
}

func (s *shards) of(id int) int { return id % len(s.backends) }

// place inserts order id and takes amount off the shard's stock row
// stock, in one branch on the order's shard.
func (s *shards) place(ctx context.Context, id, amount, stock int) error {
	b := s.backends[s.of(id)]
	tx, err := s.dbs[s.of(id)].BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, b.SQL("INSERT INTO orders (id, amount) VALUES (?, ?)"), id, amount); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, b.SQL("UPDATE stock SET qty = qty - ? WHERE id = ?"), amount, stock); err != nil {
		return err
	}
	return tx.Commit()
}

// dump returns every shard's orders and stock.
func (s *shards) dump(t *testing.T) [][][]any {
	t.Helper()
	var out [][][]any
	for _, b := range s.backends {
		out = append(out, attest.Dump(t, b.Raw, "orders"), attest.Dump(t, b.Raw, "stock"))
	}
	return out
}

// undoRows counts the undo rows of state in every shard.
func (s *shards) undoRows(t *testing.T, state int) int {
	t.Helper()
	total := 0
	for _, b := range s.backends {
		var n int
		if err := b.Raw.QueryRow(b.SQL("SELECT COUNT(*) FROM gtx_undo_log WHERE state = ?"), state).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

func newShards(t *testing.T) *shards {
	s := &shards{backends: []*attest.Backend{attest.MySQLBackend(t), attest.MySQLBackend(t), attest.PostgresBackend(t)}}
	for _, b := range s.backends {
		attest.MustExec(t, b.Raw, "CREATE TABLE orders (id BIGINT PRIMARY KEY, amount INT NOT NULL)",
			"CREATE TABLE stock (id INT PRIMARY KEY, qty INT NOT NULL)", "INSERT INTO stock VALUES (1, 1000), (2, 1000)")
	}
	return s
}

// open opens every shard through the AT driver on one resource manager.
func (s *shards) open(t *testing.T, c *attest.Coordinator) {
	m := attest.NewRM(t, c)
	s.dbs = nil
	for _, b := range s.backends {
		s.dbs = append(s.dbs, attest.OpenAT(t, b, m, c))
	}
}

// TestShardedService runs global transactions over one order table split
// over two MariaDB databases and a PostgreSQL one, all three resources of
// one service (one resource manager): a commit keeps every shard's
// writes, a rollback undoes every shard's.
func TestShardedService(t *testing.T) {
	if os.Getenv("GTX_AT_SHARD_CHILD") != "" {
		t.Skip("runs as the child only")
	}
	c := attest.StartCoordinator(t)
	s := newShards(t)
	s.open(t, c)
	ctx := context.Background()
	seed := s.dump(t)

	err := c.TM.WithGlobalTx(ctx, "sharded-rollback", func(ctx context.Context) error {
		for id := 1; id <= 6; id++ {
			if err := s.place(ctx, id, id, 1); err != nil {
				return err
			}
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatalf("rollback: %v", err)
	}
	poll.Until(t, "every shard rolled back", 20*time.Second, func() bool { return attest.SameRows(flatten(s.dump(t)), flatten(seed)) })

	if err := c.TM.WithGlobalTx(ctx, "sharded-commit", func(ctx context.Context) error {
		for id := 1; id <= 6; id++ {
			if err := s.place(ctx, id, id, 1); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	got := s.dump(t)
	for shard := range s.backends {
		if n := len(got[2*shard]); n != 2 {
			t.Errorf("shard %d holds %d orders, want 2", shard, n)
		}
	}
	poll.Until(t, "the committed branches' undo rows are deleted", 20*time.Second, func() bool { return s.undoRows(t, 0) == 0 })
}

// flatten joins dumps for one comparison.
func flatten(d [][][]any) [][]any {
	var out [][]any
	for i, rows := range d {
		out = append(out, []any{fmt.Sprintf("table %d", i)})
		out = append(out, rows...)
	}
	return out
}

// TestShardedServiceCrash has a child process run phase 1 of two global
// transactions on all three shards and die before phase 2; the first is
// then committed, the second rolled back, with the service down. Once it
// is back, the first keeps every shard's writes and loses its undo rows,
// and the second is undone on every shard.
func TestShardedServiceCrash(t *testing.T) {
	if os.Getenv("GTX_AT_SHARD_CHILD") != "" {
		t.Skip("runs as the child only")
	}
	c := attest.StartCoordinator(t)
	s := newShards(t)
	ctx := context.Background()
	seed := s.dump(t)
	commit, err := c.TM.Begin(ctx, "shard-crash-commit")
	if err != nil {
		t.Fatal(err)
	}
	rollback, err := c.TM.Begin(ctx, "shard-crash-rollback")
	if err != nil {
		t.Fatal(err)
	}
	var dsns []string
	for _, b := range s.backends {
		dsns = append(dsns, b.Driver+"|"+b.DSN)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestShardedChild$", "-test.v")
	child.Env = append(os.Environ(), "GTX_AT_SHARD_CHILD=1", "GTX_AT_TC="+c.Addr, "GTX_AT_SHARDS="+strings.Join(dsns, "\n"),
		"GTX_AT_XIDS="+commit.XID()+" "+rollback.XID())
	out, err := child.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if n := s.undoRows(t, 0); n != 6 {
		t.Fatalf("%d undo rows after the child's phase 1, want 6 (two transactions on three shards)", n)
	}
	if _, err := commit.Commit(ctx); err != nil {
		t.Fatalf("commit with the service down: %v", err)
	}
	if _, err := rollback.Rollback(ctx, "crash"); err != nil {
		t.Logf("rollback with the service down: %v", err)
	}

	// The restart.
	s.open(t, c)
	if st := attest.WaitStatus(t, c, rollback.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("rolled back transaction: status %s", st)
	}
	if st := attest.WaitStatus(t, c, commit.XID()); st != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("committed transaction: status %s", st)
	}
	poll.Until(t, "the committed branches' undo rows are deleted", 20*time.Second, func() bool { return s.undoRows(t, 0) == 0 })
	got := s.dump(t)
	for shard := range s.backends {
		// The committed transaction placed orders 1..3 (one per shard)
		// of amount 1 from stock row 1, the rolled back one orders 11..13
		// of amount 100 from stock row 2.
		wantOrders := 1
		if n := len(got[2*shard]); n != wantOrders {
			t.Errorf("shard %d holds %d orders, want %d: %v", shard, n, wantOrders, got[2*shard])
		}
		var qty []string
		for _, r := range got[2*shard+1] {
			if b, ok := r[1].([]byte); ok {
				r[1] = string(b)
			}
			qty = append(qty, fmt.Sprint(r[1]))
		}
		if fmt.Sprint(qty) != "[999 1000]" {
			t.Errorf("shard %d stock %v, want [999 1000] (seed %v)", shard, qty, seed[2*shard+1])
		}
	}
}

// TestShardedChild is the child of TestShardedServiceCrash: phase 1 of
// both transactions on every shard, then an exit as a crash would.
func TestShardedChild(t *testing.T) {
	if os.Getenv("GTX_AT_SHARD_CHILD") == "" {
		t.Skip("run by TestShardedServiceCrash")
	}
	client := childCoordinator(t)
	m := attest.NewRMOn(t, client)
	s := &shards{}
	for _, line := range strings.Split(os.Getenv("GTX_AT_SHARDS"), "\n") {
		driver, dsn, _ := strings.Cut(line, "|")
		b := &attest.Backend{Driver: driver, DSN: dsn}
		s.backends = append(s.backends, b)
		s.dbs = append(s.dbs, attest.OpenATOn(t, b, m, client))
	}
	xids := strings.Fields(os.Getenv("GTX_AT_XIDS"))
	for i, xid := range xids {
		ctx := gtx.ContextWithXID(context.Background(), xid)
		for id := 10*i + 1; id <= 10*i+3; id++ {
			if err := s.place(ctx, id, []int{1, 100}[i], i+1); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.Exit(crashExitCode)
}
