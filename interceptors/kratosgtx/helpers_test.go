package kratosgtx_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/go-kratos/kratos/v2/middleware"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"google.golang.org/grpc"

	"github.com/gtx-io/gtx/internal/gtxtest"
)

// Kratos operations of the hand-written HTTP routes.
const (
	opHTTPUnary = "/gtxtest.Echo/Unary"
	opHTTPOther = "/gtxtest.Echo/Other"
)

type echoRequest struct {
	Cmd string `json:"cmd"`
}

type echoReply struct {
	Seen string `json:"seen"`
}

// route registers POST path as the kratos operation op, served by echo
// through the server's middleware.
func route(srv *khttp.Server, path, op string, echo *gtxtest.Echo) {
	srv.Route("/").POST(path, func(c khttp.Context) error {
		khttp.SetOperation(c, op)
		var in echoRequest
		if err := c.Bind(&in); err != nil {
			return err
		}
		h := c.Middleware(func(ctx context.Context, req any) (any, error) {
			seen, err := echo.Handle(ctx, req.(*echoRequest).Cmd)
			if err != nil {
				return nil, err
			}
			return &echoReply{Seen: seen}, nil
		})
		out, err := h(c, &in)
		if err != nil {
			return err
		}
		return c.Result(200, out)
	})
}

// startHTTP starts a kratos HTTP server with the Echo routes and returns
// its endpoint.
func startHTTP(t *testing.T, echo *gtxtest.Echo, ms ...middleware.Middleware) string {
	t.Helper()
	srv := khttp.NewServer(khttp.Address("127.0.0.1:0"), khttp.Middleware(ms...))
	route(srv, "/echo", opHTTPUnary, echo)
	route(srv, "/other", opHTTPOther, echo)
	return start(t, srv.Endpoint, srv.Start, srv.Stop)
}

// startGRPC starts a kratos gRPC server with the Echo service and returns
// its endpoint.
func startGRPC(t *testing.T, echo *gtxtest.Echo, ms []middleware.Middleware, opts ...kgrpc.ServerOption) string {
	t.Helper()
	srv := kgrpc.NewServer(append([]kgrpc.ServerOption{kgrpc.Address("127.0.0.1:0"), kgrpc.Middleware(ms...)}, opts...)...)
	srv.RegisterService(&gtxtest.ServiceDesc, echo)
	return start(t, srv.Endpoint, srv.Start, srv.Stop)
}

func start(t *testing.T, endpoint func() (*url.URL, error), run, stop func(context.Context) error) string {
	t.Helper()
	u, err := endpoint()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(context.Background()) }()
	t.Cleanup(func() {
		if err := stop(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return u.Host
}

// httpClient returns a kratos HTTP client of addr with ms.
func httpClient(t *testing.T, addr string, ms ...middleware.Middleware) *khttp.Client {
	t.Helper()
	c, err := khttp.NewClient(context.Background(), khttp.WithEndpoint(addr), khttp.WithMiddleware(ms...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// callHTTP posts cmd to path as operation op.
func callHTTP(ctx context.Context, c *khttp.Client, path, op, cmd string) (string, error) {
	var out echoReply
	err := c.Invoke(ctx, "POST", path, &echoRequest{Cmd: cmd}, &out, khttp.Operation(op))
	return out.Seen, err
}

// grpcClient returns a kratos gRPC connection to addr with ms.
func grpcClient(t *testing.T, addr string, ms []middleware.Middleware, opts ...kgrpc.ClientOption) *grpc.ClientConn {
	t.Helper()
	cc, err := kgrpc.DialInsecure(context.Background(), append([]kgrpc.ClientOption{kgrpc.WithEndpoint(addr), kgrpc.WithMiddleware(ms...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}
