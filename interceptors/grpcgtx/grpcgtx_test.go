package grpcgtx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

// recoverUnary turns a handler panic into codes.Internal, as a production
// recovery interceptor would, so the server survives the panic tests.
func recoverUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (reply any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Internal, "panic: %v", r)
		}
	}()
	return handler(ctx, req)
}

// serve starts the Echo service on loopback with the given server options
// and returns a client connection with the gtx client interceptors.
func serve(t testing.TB, echo *gtxtest.Echo, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	return dial(t, echo, opts, grpc.WithUnaryInterceptor(grpcgtx.UnaryClientInterceptor()),
		grpc.WithStreamInterceptor(grpcgtx.StreamClientInterceptor()))
}

// serveRaw serves echo with no interceptors and dials it with none.
func serveRaw(t testing.TB, echo *gtxtest.Echo) *grpc.ClientConn {
	t.Helper()
	return dial(t, echo, nil)
}

// serveGTX serves echo with the gtx propagation interceptors and dials it
// with the gtx client interceptors.
func serveGTX(t testing.TB, echo *gtxtest.Echo) *grpc.ClientConn {
	t.Helper()
	return serve(t, echo,
		grpc.ChainUnaryInterceptor(grpcgtx.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(grpcgtx.StreamServerInterceptor()))
}

// dial starts the Echo service on loopback with serverOpts and returns a
// connection to it made with dialOpts.
func dial(t testing.TB, echo *gtxtest.Echo, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(serverOpts...)
	srv.RegisterService(&gtxtest.ServiceDesc, echo)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	cc, err := grpc.NewClient(lis.Addr().String(),
		append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
		<-done
	})
	return cc
}

func TestUnaryPropagation(t *testing.T) {
	echo := &gtxtest.Echo{}
	cc := serveGTX(t, echo)
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "no xid", ctx: context.Background(), want: "|false"},
		{name: "xid", ctx: gtx.ContextWithXID(context.Background(), "tc-1:7"), want: "tc-1:7|false"},
		{name: "left the transaction", ctx: gtx.ContextWithoutXID(gtx.ContextWithXID(context.Background(), "tc-1:7")), want: "|false"},
		{name: "stale metadata replaced", ctx: gtx.ContextWithXID(metadata.AppendToOutgoingContext(context.Background(), gtx.MetadataKey, "old"), "new"), want: "new|false"},
		{name: "stale metadata removed", ctx: metadata.AppendToOutgoingContext(gtx.ContextWithoutXID(context.Background()), gtx.MetadataKey, "old"), want: "|false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gtxtest.Call(tt.ctx, cc, gtxtest.MethodUnary, "")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("handler saw %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStreamPropagation(t *testing.T) {
	echo := &gtxtest.Echo{}
	cc := serveGTX(t, echo)
	ctx := gtx.ContextWithXID(context.Background(), "stream-xid")
	got := streamAll(t, ctx, cc, 3)
	for i, s := range got {
		if s != "stream-xid|false" {
			t.Fatalf("message %d: handler saw %q, want stream-xid|false", i, s)
		}
	}
}

// streamAll sends n messages on a new Stream call and returns the answers.
func streamAll(t *testing.T, ctx context.Context, cc *grpc.ClientConn, n int) []string {
	t.Helper()
	s, err := cc.NewStream(ctx, gtxtest.StreamDesc, gtxtest.MethodStream)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range n {
		if err := s.SendMsg(wrapperspb.String("")); err != nil {
			t.Fatal(err)
		}
		out := new(wrapperspb.StringValue)
		if err := s.RecvMsg(out); err != nil {
			t.Fatal(err)
		}
		got = append(got, out.GetValue())
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want io.EOF", err)
	}
	return got
}

// malformed lists XID metadata every transport must refuse.
var malformed = []struct {
	name   string
	values []string
}{
	{name: "space", values: []string{"tc 1"}},
	{name: "slash", values: []string{"../etc"}},
	{name: "oversized", values: []string{strings.Repeat("x", gtx.MaxXIDLen+1)}},
	{name: "huge", values: []string{strings.Repeat("y", 64<<10)}},
	{name: "two different", values: []string{"a", "b"}},
}

func TestMalformedRejected(t *testing.T) {
	echo := &gtxtest.Echo{}
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner)
	if err != nil {
		t.Fatal(err)
	}
	// A connection without the client interceptor, which would replace the
	// metadata with the context's (absent) XID.
	cc := dial(t, echo, []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(grpcgtx.UnaryServerInterceptor(), grpcgtx.UnaryGlobalTx(g, grpcgtx.WithLogger(nil))),
		grpc.ChainStreamInterceptor(grpcgtx.StreamServerInterceptor()),
	})
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			md := metadata.MD{gtx.MetadataKey: tt.values}
			ctx := metadata.NewOutgoingContext(context.Background(), md)
			_, err := gtxtest.Call(ctx, cc, gtxtest.MethodUnary, "")
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("unary call returned %v, want InvalidArgument", err)
			}
			s, err := cc.NewStream(ctx, gtxtest.StreamDesc, gtxtest.MethodStream)
			if err != nil {
				t.Fatal(err)
			}
			err = s.RecvMsg(new(wrapperspb.StringValue))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("stream returned %v, want InvalidArgument", err)
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

func TestConcurrentCallsKeepTheirXIDs(t *testing.T) {
	echo := &gtxtest.Echo{}
	cc := serveGTX(t, echo)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			xid := fmt.Sprintf("tc:%d", i)
			ctx := gtx.ContextWithXID(context.Background(), xid)
			var got string
			var err error
			if i%2 == 0 {
				got, err = gtxtest.Call(ctx, cc, gtxtest.MethodUnary, "")
			} else {
				var s grpc.ClientStream
				if s, err = cc.NewStream(ctx, gtxtest.StreamDesc, gtxtest.MethodStream); err == nil {
					out := new(wrapperspb.StringValue)
					if err = s.SendMsg(wrapperspb.String("")); err == nil {
						err = s.RecvMsg(out)
					}
					_ = s.CloseSend()
					got = out.GetValue()
				}
			}
			if err != nil {
				errs <- err
				return
			}
			if want := xid + "|false"; got != want {
				errs <- fmt.Errorf("call %d saw %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
