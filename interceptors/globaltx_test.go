package interceptors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/tm"
)

func TestNewGlobalTxRejectsBadOptions(t *testing.T) {
	runner := &gtxtest.Runner{}
	tests := []struct {
		name   string
		runner interceptors.TxRunner
		opts   []interceptors.TxOption
	}{
		{name: "nil runner"},
		{name: "nil option", runner: runner, opts: []interceptors.TxOption{nil}},
		{name: "empty name", runner: runner, opts: []interceptors.TxOption{interceptors.Name("")}},
		{name: "negative timeout", runner: runner, opts: []interceptors.TxOption{interceptors.Timeout(-time.Second)}},
		{name: "unknown propagation", runner: runner, opts: []interceptors.TxOption{interceptors.Propagation(tm.Mandatory + 1)}},
		{name: "no operations", runner: runner, opts: []interceptors.TxOption{interceptors.Operations()}},
		{name: "empty operation", runner: runner, opts: []interceptors.TxOption{interceptors.Operations("/a.B/C", "")}},
		{name: "nil logger", runner: runner, opts: []interceptors.TxOption{interceptors.Logger(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := interceptors.NewGlobalTx(tt.runner, tt.opts...)
			if !errors.Is(err, interceptors.ErrInvalidAnnotation) || g != nil {
				t.Fatalf("NewGlobalTx = %v, %v; want nil and ErrInvalidAnnotation", g, err)
			}
		})
	}
}

func TestApplies(t *testing.T) {
	runner := &gtxtest.Runner{}
	all, err := interceptors.NewGlobalTx(runner)
	if err != nil {
		t.Fatal(err)
	}
	some, err := interceptors.NewGlobalTx(runner, interceptors.Operations("/a.B/C"), interceptors.Operations("POST /orders"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		g    *interceptors.GlobalTx
		op   string
		want bool
	}{
		{all, "/x.Y/Z", true},
		{some, "/a.B/C", true},
		{some, "POST /orders", true},
		{some, "/a.B/D", false},
		{some, "/a.B/C/", false},
	} {
		if got := tt.g.Applies(tt.op); got != tt.want {
			t.Errorf("Applies(%q) = %v, want %v", tt.op, got, tt.want)
		}
	}
}

// TestRunWithTM runs the annotation through tm and the real coordinator:
// the options reach tm, and tm's refusals come back as *TxError.
func TestRunWithTM(t *testing.T) {
	client := gtxtest.StartTC(t)
	mgr, err := tm.New(client, tm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	outer := gtx.ContextWithXID(context.Background(), "outer-xid")
	tests := []struct {
		name         string
		ctx          context.Context
		opts         []interceptors.TxOption
		wantErr      bool
		precondition bool
		// wantXID is the handler's XID: "" none, "outer-xid", or "new".
		wantXID string
	}{
		{name: "begins", ctx: context.Background(), wantXID: "new"},
		{name: "joins", ctx: outer, wantXID: "outer-xid"},
		{name: "requires new", ctx: outer, opts: []interceptors.TxOption{interceptors.Propagation(tm.RequiresNew)}, wantXID: "new"},
		{name: "not supported", ctx: outer, opts: []interceptors.TxOption{interceptors.Propagation(tm.NotSupported)}},
		{name: "supports without", ctx: context.Background(), opts: []interceptors.TxOption{interceptors.Propagation(tm.Supports)}},
		{name: "mandatory without", ctx: context.Background(), opts: []interceptors.TxOption{interceptors.Propagation(tm.Mandatory)}, wantErr: true, precondition: true},
		{name: "never inside", ctx: outer, opts: []interceptors.TxOption{interceptors.Propagation(tm.Never)}, wantErr: true, precondition: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]interceptors.TxOption{interceptors.Timeout(42 * time.Second)}, tt.opts...)
			g, err := interceptors.NewGlobalTx(mgr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			var seen string
			ran := false
			err = g.Run(tt.ctx, "/a.B/C", func(ctx context.Context) error {
				ran = true
				seen, _ = gtx.XIDFromContext(ctx)
				return nil
			})
			if tt.wantErr {
				var te *interceptors.TxError
				if !errors.As(err, &te) || !errors.Is(err, interceptors.ErrGlobalTxFailed) || te.Name != "/a.B/C" {
					t.Fatalf("Run = %v, want a *TxError named /a.B/C", err)
				}
				if interceptors.Precondition(err) != tt.precondition {
					t.Fatalf("Precondition(%v) = %v, want %v", err, !tt.precondition, tt.precondition)
				}
				if ran {
					t.Fatal("the handler ran although the propagation refused the call")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch tt.wantXID {
			case "new":
				if seen == "" || seen == "outer-xid" {
					t.Fatalf("handler saw XID %q, want a new one", seen)
				}
				resp, err := client.GetTransaction(context.Background(), &tcv1.GetTransactionRequest{Xid: seen})
				if err != nil {
					t.Fatal(err)
				}
				if tx := resp.GetTransaction(); tx.GetName() != "/a.B/C" || tx.GetTimeoutMs() != 42000 || tx.GetStatus() != tcv1.GlobalStatus_COMMITTED {
					t.Fatalf("coordinator has %v, want /a.B/C with a 42s timeout, committed", tx)
				}
			default:
				if seen != tt.wantXID {
					t.Fatalf("handler saw XID %q, want %q", seen, tt.wantXID)
				}
			}
		})
	}
}

func TestRunReturnsHandlerErrorUnchanged(t *testing.T) {
	client := gtxtest.StartTC(t)
	mgr, err := tm.New(client, tm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	g, err := interceptors.NewGlobalTx(mgr, interceptors.Name("place-order"))
	if err != nil {
		t.Fatal(err)
	}
	var xid string
	handlerErr := errors.New("out of stock")
	err = g.Run(context.Background(), "/a.B/C", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		return handlerErr
	})
	if err != handlerErr {
		t.Fatalf("Run = %v, want the handler's error itself", err)
	}
	resp, err := client.GetTransaction(context.Background(), &tcv1.GetTransactionRequest{Xid: xid})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.GetTransaction().GetStatus(); st != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("coordinator has %s as %v, want ROLLBACKED", xid, st)
	}
}
