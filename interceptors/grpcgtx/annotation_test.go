package grpcgtx_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

func annotatedServer(t *testing.T, runner *gtxtest.Runner) (*grpc.ClientConn, *gtxtest.Echo) {
	t.Helper()
	g, err := interceptors.NewGlobalTx(runner, interceptors.Operations(gtxtest.MethodUnary, gtxtest.MethodStream))
	if err != nil {
		t.Fatal(err)
	}
	echo := &gtxtest.Echo{}
	cc := serve(t, echo,
		grpc.ChainUnaryInterceptor(recoverUnary, grpcgtx.UnaryServerInterceptor(), grpcgtx.UnaryGlobalTx(g), grpcgtx.UnaryGlobalLock(gtxtest.MethodOther)),
		grpc.ChainStreamInterceptor(grpcgtx.StreamServerInterceptor(), grpcgtx.StreamGlobalTx(g)))
	return cc, echo
}

func TestUnaryGlobalTx(t *testing.T) {
	tests := []struct {
		name      string
		ctx       context.Context
		method    string
		cmd       string
		commitErr error
		wantCode  codes.Code
		wantTx    gtxtest.Outcome
		wantSeen  string
	}{
		{name: "commit", method: gtxtest.MethodUnary, wantTx: gtxtest.Committed, wantSeen: "gtxtest:1|false"},
		{name: "rollback on error", method: gtxtest.MethodUnary, cmd: gtxtest.CmdFail, wantCode: codes.Unknown, wantTx: gtxtest.RolledBack},
		{name: "rollback on panic", method: gtxtest.MethodUnary, cmd: gtxtest.CmdPanic, wantCode: codes.Internal, wantTx: gtxtest.RolledBack},
		{name: "join", ctx: gtx.ContextWithXID(context.Background(), "outer:1"), method: gtxtest.MethodUnary, wantTx: gtxtest.Joined, wantSeen: "outer:1|false"},
		{name: "commit failed", method: gtxtest.MethodUnary, commitErr: errors.New("lost the race"), wantCode: codes.Aborted, wantTx: gtxtest.RolledBack},
		{name: "not annotated", method: gtxtest.MethodOther, wantSeen: "|true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runner := &gtxtest.Runner{CommitErr: tt.commitErr}
			cc, echo := annotatedServer(t, runner)
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, err := gtxtest.Call(ctx, cc, tt.method, tt.cmd)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("call returned %v, want code %v", err, tt.wantCode)
			}
			if tt.wantCode == codes.OK && got != tt.wantSeen {
				t.Fatalf("handler saw %q, want %q", got, tt.wantSeen)
			}
			if echo.Calls.Load() != 1 {
				t.Fatalf("handler ran %d times, want 1", echo.Calls.Load())
			}
			txs := runner.Txs()
			if tt.wantTx == "" {
				if len(txs) != 0 {
					t.Fatalf("unannotated method ran transactions %+v", txs)
				}
				return
			}
			if len(txs) != 1 || txs[0].Outcome != tt.wantTx || txs[0].Name != tt.method {
				t.Fatalf("transactions %+v, want one %q named %q", txs, tt.wantTx, tt.method)
			}
		})
	}
}

func TestUnaryGlobalTxKeepsHandlerStatus(t *testing.T) {
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner, interceptors.Name("place-order"))
	if err != nil {
		t.Fatal(err)
	}
	echo := &gtxtest.Echo{Next: func(context.Context, string) error {
		return status.Error(codes.FailedPrecondition, "out of stock")
	}}
	cc := serve(t, echo, grpc.ChainUnaryInterceptor(grpcgtx.UnaryGlobalTx(g)))
	_, err = gtxtest.Call(context.Background(), cc, gtxtest.MethodUnary, "")
	if s := status.Convert(err); s.Code() != codes.FailedPrecondition || s.Message() != "out of stock" {
		t.Fatalf("call returned %v, want the handler's FailedPrecondition unchanged", err)
	}
	if txs := runner.Txs(); len(txs) != 1 || txs[0].Outcome != gtxtest.RolledBack || txs[0].Name != "place-order" {
		t.Fatalf("transactions %+v, want one rolled back place-order", txs)
	}
}

func TestStreamGlobalTx(t *testing.T) {
	runner := &gtxtest.Runner{}
	cc, _ := annotatedServer(t, runner)
	got := streamAll(t, context.Background(), cc, 3)
	for i, s := range got {
		if s != "gtxtest:1|false" {
			t.Fatalf("message %d: handler saw %q, want gtxtest:1|false", i, s)
		}
	}
	if txs := runner.Txs(); len(txs) != 1 || txs[0].Outcome != gtxtest.Committed {
		t.Fatalf("transactions %+v, want one committed", txs)
	}

	runner = &gtxtest.Runner{}
	cc, _ = annotatedServer(t, runner)
	s, err := cc.NewStream(context.Background(), gtxtest.StreamDesc, gtxtest.MethodStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(wrapperspb.String(gtxtest.CmdFail)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); err == nil || !strings.Contains(err.Error(), gtxtest.ErrHandler.Error()) {
		t.Fatalf("failing stream returned %v, want the handler's error", err)
	}
	if txs := runner.Txs(); len(txs) != 1 || txs[0].Outcome != gtxtest.RolledBack {
		t.Fatalf("transactions %+v, want one rolled back", txs)
	}
}

func TestGlobalLock(t *testing.T) {
	echo := &gtxtest.Echo{}
	cc := serve(t, echo,
		grpc.ChainUnaryInterceptor(grpcgtx.UnaryGlobalLock(gtxtest.MethodOther)),
		grpc.ChainStreamInterceptor(grpcgtx.StreamGlobalLock()))
	for method, want := range map[string]string{gtxtest.MethodOther: "|true", gtxtest.MethodUnary: "|false"} {
		got, err := gtxtest.Call(context.Background(), cc, method, "")
		if err != nil || got != want {
			t.Fatalf("%s: handler saw %q, %v; want %q", method, got, err, want)
		}
	}
	if got := streamAll(t, context.Background(), cc, 1); got[0] != "|true" {
		t.Fatalf("stream handler saw %q, want |true", got[0])
	}
}
