package tcc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Environment of the participant process TestRMKilled starts.
const (
	helperMode    = "GTX_TCC_HELPER"
	helperTC      = "GTX_TCC_HELPER_TC"
	helperDialect = "GTX_TCC_HELPER_DIALECT"
	helperDSN     = "GTX_TCC_HELPER_DSN"
	helperXID     = "GTX_TCC_HELPER_XID"
	helperAccount = "GTX_TCC_HELPER_ACCOUNT"
	// Lines the helper prints when it reaches a point.
	markTried      = "gtx-tcc-helper: tried"
	markConfirming = "gtx-tcc-helper: confirming"
)

// TestRMKilled kills (SIGKILL) a participant process after its Try, or in
// the middle of its Confirm with the local transaction open, and checks that
// a new participant serving the same action confirms the branch once.
func TestRMKilled(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		for _, mode := range []string{"after-try", "mid-confirm"} {
			t.Run(mode, func(t *testing.T) {
				ctx := testContext(t)
				c, addr := startClusterAddr(t)
				acct := "k-" + mode
				b.addAccount(t, acct, 100)
				tx, err := c.tm.Begin(ctx, "killed")
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
				cmd.Env = append(os.Environ(),
					helperMode+"="+mode, helperTC+"="+addr, helperDialect+"="+string(b.dialect),
					helperDSN+"="+b.dsn, helperXID+"="+tx.XID(), helperAccount+"="+acct)
				cmd.Stderr = os.Stderr
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				lines := bufio.NewScanner(out)
				waitFor := func(mark string) {
					t.Helper()
					for lines.Scan() {
						if lines.Text() == mark {
							return
						}
					}
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatalf("the participant process ended before printing %q", mark)
				}
				kill := func() {
					t.Helper()
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, out)
					_ = cmd.Wait()
				}
				waitFor(markTried)
				var st tcv1.GlobalStatus
				if mode == "after-try" {
					kill()
					if st, err = tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					type result struct {
						st  tcv1.GlobalStatus
						err error
					}
					done := make(chan result, 1)
					go func() {
						st, err := tx.Commit(ctx)
						done <- result{st, err}
					}()
					waitFor(markConfirming)
					kill()
					var r result
					select {
					case r = <-done:
					case <-ctx.Done():
						t.Fatal("the commit never returned")
					}
					if st, err = r.st, r.err; err != nil {
						t.Fatal(err)
					}
				}
				if st == tcv1.GlobalStatus_COMMITTED {
					t.Fatal("committed with the only participant killed")
				}
				// The killed Confirm's local transaction died with its
				// connection: the freeze stands, nothing was spent.
				wantAccount(t, b, acct, account{balance: 60, frozen: 40})
				s := newService(t, c, b, "a", backendFlavour(b), true)
				wantAccount(t, b, acct, account{balance: 60, spent: 40})
				eventually(t, "the global transaction to be committed", func() bool {
					st, err := c.tm.Status(ctx, tx.XID())
					return err == nil && st == tcv1.GlobalStatus_COMMITTED
				})
				if got := s.confirms.Load(); got != 1 {
					t.Fatalf("confirm ran %d times after the restart, want once", got)
				}
			})
		}
	})
}

// TestHelperProcess is the participant process of TestRMKilled; it skips
// unless started by it. It tries the branch of the given XID, prints
// markTried, and (in mode mid-confirm) blocks inside its Confirm, after the
// business work, printing markConfirming; it waits there to be killed.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperMode)
	if mode == "" {
		t.Skip("the participant process of TestRMKilled")
	}
	b := openBackend(t, "helper", Dialect(os.Getenv(helperDialect)), os.Getenv(helperDSN))
	conn, err := grpc.NewClient(os.Getenv(helperTC), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, clusterOf(t, tcv1.NewCoordinatorClient(conn)), b, "a", backendFlavour(b), true)
	if mode == "mid-confirm" {
		hook := func(context.Context) error {
			fmt.Println(markConfirming)
			time.Sleep(time.Hour)
			return nil
		}
		s.confirmHook.Store(&hook)
	}
	ctx := gtx.ContextWithXID(testContext(t), os.Getenv(helperXID))
	if _, err := s.action.Try(ctx, freeze{Account: os.Getenv(helperAccount), Amount: 40}); err != nil {
		t.Fatal(err)
	}
	fmt.Println(markTried)
	time.Sleep(time.Hour)
	t.Fatal("still alive an hour later: the test should have killed this process")
}
