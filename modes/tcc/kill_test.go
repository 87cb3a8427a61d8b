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
	"github.com/gtx-io/gtx/rm"
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
	markConfirmed  = "gtx-tcc-helper: confirmed"
)

// TestRMKilled kills (SIGKILL) a participant process after its Try, in the
// middle of its Confirm with the local transaction open, or after its
// Confirm committed but before it answered, and checks that a new
// participant serving the same action completes the branch: the business
// work of Confirm commits exactly once, and the coordinator's redelivery
// of a Confirm that did commit runs nothing.
func TestRMKilled(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		for _, mode := range []string{"after-try", "mid-confirm", "lost-answer"} {
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
					if mode == "mid-confirm" {
						waitFor(markConfirming)
					} else {
						waitFor(markConfirmed)
					}
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
				// Unless the Confirm committed before the kill, the freeze
				// stands and nothing was spent: a killed Confirm's local
				// transaction died with its connection.
				wantConfirms := int64(1)
				if mode == "lost-answer" {
					wantConfirms = 0
					wantAccount(t, b, acct, account{balance: 60, spent: 40})
				} else {
					wantAccount(t, b, acct, account{balance: 60, frozen: 40})
				}
				s := newService(t, c, b, "a", backendFlavour(b), true)
				eventually(t, "the global transaction to be committed", func() bool {
					st, err := c.tm.Status(ctx, tx.XID())
					return err == nil && st == tcv1.GlobalStatus_COMMITTED
				})
				wantAccount(t, b, acct, account{balance: 60, spent: 40})
				if got := s.confirms.Load(); got != wantConfirms {
					t.Fatalf("confirm work ran %d times after the restart, want %d", got, wantConfirms)
				}
			})
		}
	})
}

// TestHelperProcess is the participant process of TestRMKilled; it skips
// unless started by it. It tries the branch of the given XID and prints
// markTried. In mode mid-confirm it blocks inside its Confirm, after the
// business work, printing markConfirming; in mode lost-answer it blocks
// after the Confirm committed, before answering, printing markConfirmed. It
// waits to be killed.
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
	m := clusterOf(t, tcv1.NewCoordinatorClient(conn)).newRM(t)
	p := &Participant{rm: m, log: quiet, actions: make(map[string]phase2)}
	m.Handle(tcv1.BranchType_TCC, answerless{p})
	s := newServiceOn(t, m, p, b, "a", backendFlavour(b), true)
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

// answerless runs phase 2 through a Participant and, after a Confirm that
// succeeded, prints markConfirmed and never answers.
type answerless struct{ p *Participant }

func (h answerless) Commit(ctx context.Context, b rm.Branch) error {
	if err := h.p.Commit(ctx, b); err != nil {
		return err
	}
	if os.Getenv(helperMode) == "lost-answer" {
		fmt.Println(markConfirmed)
		time.Sleep(time.Hour)
	}
	return nil
}

func (h answerless) Rollback(ctx context.Context, b rm.Branch) error { return h.p.Rollback(ctx, b) }
