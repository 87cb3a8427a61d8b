package tctest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tctest"
)

// TestStart commits and rolls back global transactions on a started
// environment, and attaches a second resource manager.
func TestStart(t *testing.T) {
	env := tctest.Start(t)
	ctx := context.Background()
	var xid string
	if err := env.TM.WithGlobalTx(ctx, "commit", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := env.Client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
	if err != nil || resp.GetStatus() != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("status %v, %v; want COMMITTED", resp.GetStatus(), err)
	}
	boom := errors.New("boom")
	if err := env.TM.WithGlobalTx(ctx, "rollback", func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("rollback: %v", err)
	}
	if m := tctest.NewRM(t, env.Client, "second"); m == nil {
		t.Fatal("no resource manager")
	}
}
