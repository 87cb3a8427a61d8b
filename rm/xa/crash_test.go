package xa_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
)

// child runs the test named test of this binary in a child process with
// env added, waits until it prints ready on a line of its own, and returns
// it; the child is SIGKILLed when the test ends, if it still runs.
func child(t *testing.T, test, ready string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(60 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child %s ended before it was ready:\n%s", test, strings.Join(seen, "\n"))
			}
			if l == ready {
				// Keep draining, so that the child never blocks on a full pipe.
				go func() {
					for range lines {
					}
				}()
				return cmd
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("child %s not ready after 60s:\n%s", test, strings.Join(seen, "\n"))
		}
	}
}

// kill SIGKILLs the child and waits for it to end.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

const preparedLine = "gtx-xa-child: prepared"

// TestRMKilledBetweenPrepareAndCommit prepares a branch in a child
// process, SIGKILLs it before phase 2, and decides the transaction: the
// branch stays prepared in the database (locks and all) until a new
// resource manager of the same resource resolves it, by the coordinator's
// phase 2 once it attaches (commit), or by its own recovery loop alone, not
// attached to any coordinator (rollback).
func TestRMKilledBetweenPrepareAndCommit(t *testing.T) {
	if os.Getenv("GTX_XA_CHILD") != "" {
		t.Skip("runs as the parent only")
	}
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	xatest.Backends(t, func(t *testing.T, b *xatest.Backend) {
		for _, decide := range []string{"commit", "rollback"} {
			t.Run(decide, func(t *testing.T) {
				xatest.MustExec(t, b.Raw, "DROP TABLE IF EXISTS acct", acctDDL, "INSERT INTO acct VALUES (1, 100)")
				ctx := context.Background()
				tx, err := c.TM.Begin(ctx, "rm-crash")
				if err != nil {
					t.Fatal(err)
				}
				cmd := child(t, "TestPrepareChild", preparedLine, "GTX_XA_CHILD=1", "GTX_XA_TC="+c.Addr,
					"GTX_XA_DRIVER="+b.Driver, "GTX_XA_DSN="+b.DSN, "GTX_XA_XID="+tx.XID())
				kill(t, cmd)
				// The database holds the branch past its session's end.
				if n := xatest.Prepared(t, b, tx.XID()); n != 1 {
					t.Fatalf("%d branches prepared after the kill, want 1", n)
				}
				if got := xatest.Balance(t, b, 1); got != 100 {
					t.Fatalf("balance %d before phase 2, want 100", got)
				}
				var st tcv1.GlobalStatus
				if decide == "commit" {
					st, err = tx.Commit(ctx)
				} else {
					st, err = tx.Rollback(ctx, "rm crashed")
				}
				t.Logf("%s with the resource manager dead: %s, %v", decide, st, err)
				want := int64(100)
				if decide == "commit" {
					// The restart: the coordinator's phase 2 reaches it.
					xatest.Open(t, b, xatest.NewRM(t, c.Client, true), c.Client)
					if st := xatest.WaitStatus(t, c.Client, tx.XID()); st != tcv1.GlobalStatus_COMMITTED {
						t.Fatalf("status %s", st)
					}
					want = 40
				} else {
					// A resource manager attached to no coordinator: only
					// the recovery loop can finish the branch.
					xatest.Open(t, b, xatest.NewRM(t, c.Client, false), c.Client)
					poll.Until(t, "the recovery loop to roll the branch back", 0, func() bool { return xatest.Prepared(t, b, tx.XID()) == 0 })
				}
				if got := xatest.Balance(t, b, 1); got != want {
					t.Fatalf("balance %d after %s, want %d", got, decide, want)
				}
				if n := xatest.Prepared(t, b, tx.XID()); n != 0 {
					t.Fatalf("%d branches still prepared", n)
				}
			})
		}
	})
}

// TestPrepareChild is the child of TestRMKilledBetweenPrepareAndCommit: it
// prepares one branch, says so, and waits to be killed.
func TestPrepareChild(t *testing.T) {
	if os.Getenv("GTX_XA_CHILD") == "" {
		t.Skip("run by TestRMKilledBetweenPrepareAndCommit")
	}
	conn, err := grpc.NewClient(os.Getenv("GTX_XA_TC"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := tcv1.NewCoordinatorClient(conn)
	b := &xatest.Backend{Driver: os.Getenv("GTX_XA_DRIVER"), DSN: os.Getenv("GTX_XA_DSN")}
	// No recovery pass may run in the child's lifetime.
	db := xatest.Open(t, b, xatest.NewRM(t, client, true), client, func(c *xa.Config) { c.Recover.Interval = time.Hour })
	ctx := gtx.ContextWithXID(context.Background(), os.Getenv("GTX_XA_XID"))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(b.SQL("UPDATE acct SET balance = balance - ? WHERE id = 1"), 60); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString(preparedLine + "\n")
	select {}
}

const tcReadyLine = "gtx-xa-child: coordinator ready"

// startTCChild runs a coordinator in a child process on the SQLite file
// path, listening on addr.
func startTCChild(t *testing.T, path, addr string) *exec.Cmd {
	t.Helper()
	return child(t, "TestTCChild", tcReadyLine, "GTX_XA_TC_CHILD=1", "GTX_XA_TC_DB="+path, "GTX_XA_TC_ADDR="+addr)
}

// TestTCChild is the coordinator process of TestTCKilledBetweenPrepareAndCommit.
func TestTCChild(t *testing.T) {
	if os.Getenv("GTX_XA_TC_CHILD") == "" {
		t.Skip("run by TestTCKilledBetweenPrepareAndCommit")
	}
	xatest.StartCoordinator(t, gtxtest.TCOptions{DBPath: os.Getenv("GTX_XA_TC_DB"), Addr: os.Getenv("GTX_XA_TC_ADDR")})
	os.Stdout.WriteString(tcReadyLine + "\n")
	select {}
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTCKilledBetweenPrepareAndCommit SIGKILLs the coordinator process
// while a branch is prepared: before the decision (the branch waits,
// prepared, through the outage, and the TM commits once a new coordinator
// runs on the same store) and after it (the new coordinator's recovery
// drives the commit it had decided). The resource manager's recovery loop
// is slowed down so that only the coordinator can finish the branch.
func TestTCKilledBetweenPrepareAndCommit(t *testing.T) {
	if os.Getenv("GTX_XA_TC_CHILD") != "" || os.Getenv("GTX_XA_CHILD") != "" {
		t.Skip("runs as the parent only")
	}
	xatest.Backends(t, func(t *testing.T, b *xatest.Backend) {
		for _, when := range []string{"before the decision", "after the decision"} {
			t.Run(strings.ReplaceAll(when, " ", "-"), func(t *testing.T) {
				xatest.MustExec(t, b.Raw, "DROP TABLE IF EXISTS acct", acctDDL, "INSERT INTO acct VALUES (1, 100)")
				path, addr := filepath.Join(t.TempDir(), "tc.db"), freeAddr(t)
				tcProc := startTCChild(t, path, addr)
				conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				client := tcv1.NewCoordinatorClient(conn)
				tmgr := xatest.NewTM(t, client)
				m := xatest.NewRM(t, client, true)
				slow := func(c *xa.Config) { c.Recover.Interval = time.Hour }
				db := xatest.Open(t, b, m, client, slow)
				ctx := context.Background()
				tx, err := tmgr.Begin(ctx, "tc-crash")
				if err != nil {
					t.Fatal(err)
				}
				bt, err := db.BeginTx(tx.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := bt.Exec(b.SQL("UPDATE acct SET balance = balance - ? WHERE id = 1"), 60); err != nil {
					t.Fatal(err)
				}
				if err := bt.Commit(); err != nil {
					t.Fatal(err)
				}
				if when == "after the decision" {
					// No resource manager attached: the decision is stored
					// and its phase 2 cannot run.
					db.Close()
					m.Close()
					if st, err := tx.Commit(ctx); st == tcv1.GlobalStatus_COMMITTED {
						t.Fatalf("committed with no resource manager: %s, %v", st, err)
					}
				}
				kill(t, tcProc)
				if n := xatest.Prepared(t, b, tx.XID()); n != 1 {
					t.Fatalf("%d branches prepared with the coordinator dead, want 1", n)
				}
				startTCChild(t, path, addr)
				if when == "after the decision" {
					xatest.Open(t, b, xatest.NewRM(t, client, true), client, slow)
				} else {
					poll.Until(t, "the restarted coordinator to answer", 0, func() bool {
						_, err := tmgr.Status(ctx, tx.XID())
						return err == nil
					})
					if n := xatest.Prepared(t, b, tx.XID()); n != 1 {
						t.Fatalf("%d branches prepared after the restart, want 1", n)
					}
					if _, err := tx.Commit(ctx); err != nil {
						t.Fatalf("commit on the restarted coordinator: %v", err)
					}
				}
				if st := xatest.WaitStatus(t, client, tx.XID()); st != tcv1.GlobalStatus_COMMITTED {
					t.Fatalf("status %s", st)
				}
				if got := xatest.Balance(t, b, 1); got != 40 {
					t.Fatalf("balance %d, want 40", got)
				}
				if n := xatest.Prepared(t, b, tx.XID()); n != 0 {
					t.Fatalf("%d branches still prepared", n)
				}
			})
		}
	})
}
