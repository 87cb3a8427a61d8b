package main

import (
	"context"
	"io"
	"strings"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

// runTx runs `gtx tx` with args and returns what it printed.
func runTx(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newTxCmd()
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// gtx tx list shows how many branches each transaction has.
func TestTxListCountsBranches(t *testing.T) {
	c, addr := gtxtest.StartTCAddr(t)
	ctx := context.Background()
	b, err := c.Begin(ctx, &tcv1.BeginRequest{Name: "listed"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"r1", "r2", "r3"} {
		if _, err := c.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: r}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runTx(t, "list", "--tc", addr)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Fields(lines[1])[3] != "3" {
		t.Fatalf("gtx tx list printed\n%s\nwant one transaction with 3 branches", out)
	}
}
