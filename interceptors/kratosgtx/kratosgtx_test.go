package kratosgtx_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/metadata"
	"github.com/go-kratos/kratos/v2/middleware"
	mmd "github.com/go-kratos/kratos/v2/middleware/metadata"
	"github.com/go-kratos/kratos/v2/middleware/recovery"
	"github.com/go-kratos/kratos/v2/middleware/selector"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

func ms(m ...middleware.Middleware) []middleware.Middleware { return m }

func TestPropagation(t *testing.T) {
	echo := &gtxtest.Echo{}
	server := ms(kratosgtx.Server(), mmd.Server())
	hc := httpClient(t, startHTTP(t, echo, server...), kratosgtx.Client(), mmd.Client())
	gc := grpcClient(t, startGRPC(t, echo, server), ms(kratosgtx.Client(), mmd.Client()))
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "no xid", ctx: context.Background(), want: "|false"},
		{name: "xid", ctx: gtx.ContextWithXID(context.Background(), "tc-1:7"), want: "tc-1:7|false"},
		{name: "left the transaction", ctx: gtx.ContextWithoutXID(gtx.ContextWithXID(context.Background(), "tc-1:7")), want: "|false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := callHTTP(tt.ctx, hc, "/echo", opHTTPUnary, "")
			if err != nil || got != tt.want {
				t.Fatalf("HTTP handler saw %q, %v; want %q", got, err, tt.want)
			}
			got, err = gtxtest.Call(tt.ctx, gc, gtxtest.MethodUnary, "")
			if err != nil || got != tt.want {
				t.Fatalf("gRPC handler saw %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPassThroughHop checks the x-md-global- convention: a service in the
// middle that runs only kratos's metadata middleware passes the XID on.
func TestPassThroughHop(t *testing.T) {
	last := &gtxtest.Echo{}
	lastAddr := startHTTP(t, last, kratosgtx.Server())
	var toLast = httpClient(t, lastAddr, mmd.Client())
	middle := &gtxtest.Echo{Next: func(ctx context.Context, _ string) error {
		seen, err := callHTTP(ctx, toLast, "/echo", opHTTPUnary, "")
		if err != nil {
			return err
		}
		if seen != "hop-xid|false" {
			return kerrors.Conflict("WRONG_XID", "the last hop saw "+seen)
		}
		return nil
	}}
	gc := grpcClient(t, startGRPC(t, middle, ms(mmd.Server())), ms(kratosgtx.Client()))
	got, err := gtxtest.Call(gtx.ContextWithXID(context.Background(), "hop-xid"), gc, gtxtest.MethodUnary, "")
	if err != nil {
		t.Fatal(err)
	}
	if got != "|false" {
		t.Fatalf("the middle hop without kratosgtx.Server saw %q in its context, want no XID", got)
	}
	if last.Calls.Load() != 1 {
		t.Fatalf("last hop ran %d times, want 1", last.Calls.Load())
	}
}

// TestClientReplacesStaleMetadata checks that a handler that began its own
// transaction (or left one) calls on with its own XID, whichever side of
// metadata.Client() the gtx client middleware is on.
func TestClientReplacesStaleMetadata(t *testing.T) {
	echo := &gtxtest.Echo{}
	addr := startHTTP(t, echo, kratosgtx.Server())
	inbound := metadata.NewServerContext(context.Background(), metadata.New(map[string][]string{gtx.MetadataKey: {"inbound"}}))
	orders := map[string][]middleware.Middleware{
		"gtx first": ms(kratosgtx.Client(), mmd.Client()),
		"gtx last":  ms(mmd.Client(), kratosgtx.Client()),
	}
	for name, chain := range orders {
		c := httpClient(t, addr, chain...)
		t.Run(name, func(t *testing.T) {
			for _, tt := range []struct {
				ctx  context.Context
				want string
			}{
				{ctx: gtx.ContextWithXID(inbound, "requires-new"), want: "requires-new|false"},
				{ctx: gtx.ContextWithoutXID(inbound), want: "|false"},
			} {
				got, err := callHTTP(tt.ctx, c, "/echo", opHTTPUnary, "")
				if err != nil || got != tt.want {
					t.Fatalf("handler saw %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}

func TestMalformedRejected(t *testing.T) {
	echo := &gtxtest.Echo{}
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner)
	if err != nil {
		t.Fatal(err)
	}
	server := ms(kratosgtx.Server(), kratosgtx.GlobalTx(g))
	httpAddr := startHTTP(t, echo, server...)
	gc := grpcClient(t, startGRPC(t, echo, server), nil)
	for _, tt := range []struct {
		name   string
		values []string
	}{
		{name: "space", values: []string{"tc 1"}},
		{name: "oversized", values: []string{strings.Repeat("x", gtx.MaxXIDLen+1)}},
		{name: "two different", values: []string{"a", "b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", "http://"+httpAddr+"/echo", strings.NewReader(`{"cmd":""}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for _, v := range tt.values {
				req.Header.Add(gtx.MetadataKey, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("HTTP status %d, want 400", resp.StatusCode)
			}
			ctx := grpcmd.NewOutgoingContext(context.Background(), grpcmd.MD{gtx.MetadataKey: tt.values})
			_, err = gtxtest.Call(ctx, gc, gtxtest.MethodUnary, "")
			if e := kerrors.FromError(err); e.Code != http.StatusBadRequest || e.Reason != kratosgtx.ReasonInvalidXID {
				t.Fatalf("gRPC call returned %v, want BadRequest %s", err, kratosgtx.ReasonInvalidXID)
			}
		})
	}
	if n := echo.Calls.Load(); n != 0 {
		t.Fatalf("handlers ran %d times for malformed XIDs, want 0", n)
	}
	if txs := runner.Txs(); len(txs) != 0 {
		t.Fatalf("malformed XIDs started transactions: %+v", txs)
	}
}

func TestGlobalTx(t *testing.T) {
	type attach func(g *interceptors.GlobalTx) middleware.Middleware
	bySelector := func(g *interceptors.GlobalTx) middleware.Middleware {
		return selector.Server(kratosgtx.GlobalTx(g)).Path(opHTTPUnary).Build()
	}
	tests := []struct {
		name      string
		ctx       context.Context
		path, op  string
		cmd       string
		commitErr error
		wantCode  int
		wantTx    gtxtest.Outcome
		wantSeen  string
	}{
		{name: "commit", path: "/echo", op: opHTTPUnary, wantTx: gtxtest.Committed, wantSeen: "gtxtest:1|false"},
		{name: "rollback on error", path: "/echo", op: opHTTPUnary, cmd: gtxtest.CmdFail, wantCode: 500, wantTx: gtxtest.RolledBack},
		{name: "rollback on panic", path: "/echo", op: opHTTPUnary, cmd: gtxtest.CmdPanic, wantCode: 500, wantTx: gtxtest.RolledBack},
		{name: "join", ctx: gtx.ContextWithXID(context.Background(), "outer:1"), path: "/echo", op: opHTTPUnary, wantTx: gtxtest.Joined, wantSeen: "outer:1|false"},
		{name: "commit failed", path: "/echo", op: opHTTPUnary, commitErr: errors.New("lost the race"), wantCode: 409, wantTx: gtxtest.RolledBack},
		{name: "other operation", path: "/other", op: opHTTPOther, wantSeen: "|false"},
	}
	attachments := map[string]attach{
		"selector": bySelector,
		"operations option": func(g *interceptors.GlobalTx) middleware.Middleware {
			return kratosgtx.GlobalTx(g)
		},
	}
	for how, at := range attachments {
		for _, tt := range tests {
			t.Run(how+"/"+tt.name, func(t *testing.T) {
				runner := &gtxtest.Runner{CommitErr: tt.commitErr}
				var opts []interceptors.TxOption
				if how == "operations option" {
					opts = append(opts, interceptors.Operations(opHTTPUnary))
				}
				g, err := interceptors.NewGlobalTx(runner, opts...)
				if err != nil {
					t.Fatal(err)
				}
				echo := &gtxtest.Echo{}
				// No kratosgtx.Server(): GlobalTx reads the XID itself.
				addr := startHTTP(t, echo, recovery.Recovery(), at(g))
				ctx := tt.ctx
				if ctx == nil {
					ctx = context.Background()
				}
				got, err := callHTTP(ctx, httpClient(t, addr, kratosgtx.Client()), tt.path, tt.op, tt.cmd)
				if code := codeOf(err); code != tt.wantCode {
					t.Fatalf("call returned %v, want code %d", err, tt.wantCode)
				}
				if tt.wantCode == 0 && got != tt.wantSeen {
					t.Fatalf("handler saw %q, want %q", got, tt.wantSeen)
				}
				txs := runner.Txs()
				if tt.wantTx == "" {
					if len(txs) != 0 {
						t.Fatalf("unannotated operation ran transactions %+v", txs)
					}
					return
				}
				if len(txs) != 1 || txs[0].Outcome != tt.wantTx || txs[0].Name != tt.op {
					t.Fatalf("transactions %+v, want one %q named %q", txs, tt.wantTx, tt.op)
				}
			})
		}
	}
}

func TestGlobalTxOverGRPC(t *testing.T) {
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner, interceptors.Name("place-order"))
	if err != nil {
		t.Fatal(err)
	}
	echo := &gtxtest.Echo{}
	gc := grpcClient(t, startGRPC(t, echo, ms(kratosgtx.Server(), selector.Server(kratosgtx.GlobalTx(g)).Path(gtxtest.MethodUnary).Build())), ms(kratosgtx.Client()))
	if _, err := gtxtest.Call(context.Background(), gc, gtxtest.MethodUnary, gtxtest.CmdFail); err == nil {
		t.Fatal("failing handler returned no error")
	}
	got, err := gtxtest.Call(context.Background(), gc, gtxtest.MethodUnary, "")
	if err != nil || got != "gtxtest:2|false" {
		t.Fatalf("handler saw %q, %v; want gtxtest:2|false", got, err)
	}
	txs := runner.Txs()
	if len(txs) != 2 || txs[0].Outcome != gtxtest.RolledBack || txs[1].Outcome != gtxtest.Committed || txs[1].Name != "place-order" {
		t.Fatalf("transactions %+v, want place-order rolled back then committed", txs)
	}
}

func TestGlobalLock(t *testing.T) {
	echo := &gtxtest.Echo{}
	c := httpClient(t, startHTTP(t, echo, kratosgtx.GlobalLock(opHTTPOther)))
	for _, tt := range []struct{ path, op, want string }{
		{"/other", opHTTPOther, "|true"},
		{"/echo", opHTTPUnary, "|false"},
	} {
		got, err := callHTTP(context.Background(), c, tt.path, tt.op, "")
		if err != nil || got != tt.want {
			t.Fatalf("%s: handler saw %q, %v; want %q", tt.op, got, err, tt.want)
		}
	}
}

// codeOf returns the HTTP code of a kratos client error, 0 for nil.
func codeOf(err error) int {
	if err == nil {
		return 0
	}
	return int(kerrors.FromError(err).Code)
}

// TestStreamOverKratosGRPC checks the wiring docs/kratos.md gives for
// streaming RPCs, which kratos's middleware does not wrap: the grpcgtx
// stream interceptors on the kratos server and client.
func TestStreamOverKratosGRPC(t *testing.T) {
	echo := &gtxtest.Echo{}
	addr := startGRPC(t, echo, nil, kgrpc.StreamInterceptor(grpcgtx.StreamServerInterceptor()))
	cc := grpcClient(t, addr, nil, kgrpc.WithStreamInterceptor(grpcgtx.StreamClientInterceptor()))
	s, err := cc.NewStream(gtx.ContextWithXID(context.Background(), "stream-xid"), gtxtest.StreamDesc, gtxtest.MethodStream)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.SendMsg(wrapperspb.String("")); err != nil {
			t.Fatal(err)
		}
		out := new(wrapperspb.StringValue)
		if err := s.RecvMsg(out); err != nil {
			t.Fatal(err)
		}
		if out.GetValue() != "stream-xid|false" {
			t.Fatalf("stream handler saw %q, want stream-xid|false", out.GetValue())
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func TestClientGlobalTx(t *testing.T) {
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner, interceptors.Operations(opHTTPUnary))
	if err != nil {
		t.Fatal(err)
	}
	echo := &gtxtest.Echo{}
	c := httpClient(t, startHTTP(t, echo, kratosgtx.Server()), kratosgtx.ClientGlobalTx(g), kratosgtx.Client())
	got, err := callHTTP(context.Background(), c, "/echo", opHTTPUnary, "")
	if err != nil || got != "gtxtest:1|false" {
		t.Fatalf("server saw %q, %v; want the client's new transaction gtxtest:1", got, err)
	}
	if _, err := callHTTP(context.Background(), c, "/echo", opHTTPUnary, gtxtest.CmdFail); codeOf(err) != 500 {
		t.Fatalf("failing call returned %v, want the server's 500", err)
	}
	if got, err := callHTTP(context.Background(), c, "/other", opHTTPOther, ""); err != nil || got != "|false" {
		t.Fatalf("unannotated call: server saw %q, %v; want no XID", got, err)
	}
	txs := runner.Txs()
	if len(txs) != 2 || txs[0].Outcome != gtxtest.Committed || txs[1].Outcome != gtxtest.RolledBack || txs[0].Name != opHTTPUnary {
		t.Fatalf("transactions %+v, want %s committed then rolled back", txs, opHTTPUnary)
	}
}
