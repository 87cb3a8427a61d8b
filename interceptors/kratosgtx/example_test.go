package kratosgtx_test

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kratos/kratos/v2/middleware/metadata"
	"github.com/go-kratos/kratos/v2/middleware/recovery"
	"github.com/go-kratos/kratos/v2/middleware/selector"
	"github.com/go-kratos/kratos/v2/transport/grpc"
	"github.com/go-kratos/kratos/v2/transport/http"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/tm"
)

// A kratos HTTP client and server: the XID of the caller's context arrives
// in the handler's context.
func Example() {
	srv := http.NewServer(http.Address("127.0.0.1:0"), http.Middleware(kratosgtx.Server(), metadata.Server()))
	srv.Route("/").POST("/v1/orders", func(c http.Context) error {
		http.SetOperation(c, "/order.v1.Order/Place")
		h := c.Middleware(func(ctx context.Context, _ any) (any, error) {
			xid, _ := gtx.XIDFromContext(ctx)
			return map[string]string{"xid": xid}, nil
		})
		out, err := h(c, nil)
		if err != nil {
			return err
		}
		return c.Result(200, out)
	})
	u, err := srv.Endpoint()
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Start(context.Background()) }()
	defer func() { _ = srv.Stop(context.Background()) }()

	client, err := http.NewClient(context.Background(),
		http.WithEndpoint(u.Host),
		http.WithMiddleware(kratosgtx.Client(), metadata.Client()))
	if err != nil {
		panic(err)
	}
	defer client.Close()
	var out map[string]string
	ctx := gtx.ContextWithXID(context.Background(), "tc-1:4711")
	if err := client.Invoke(ctx, "POST", "/v1/orders", nil, &out, http.Operation("/order.v1.Order/Place")); err != nil {
		panic(err)
	}
	fmt.Println("handler saw", out["xid"])
	// Output: handler saw tc-1:4711
}

// Attach the global transaction to one operation with kratos's selector,
// and the global lock check to another.
func ExampleGlobalTx() {
	var mgr *tm.Manager // from tm.New
	g, err := interceptors.NewGlobalTx(mgr, interceptors.Timeout(30*time.Second))
	if err != nil {
		panic(err)
	}
	_ = grpc.NewServer(grpc.Middleware(
		recovery.Recovery(),
		kratosgtx.Server(),
		metadata.Server(),
		selector.Server(kratosgtx.GlobalTx(g)).Path("/order.v1.Order/Place").Build(),
		kratosgtx.GlobalLock("/order.v1.Order/Get"),
	))
}

// List the operations in the annotation itself instead of using selector.
func ExampleGlobalTx_operations() {
	var mgr *tm.Manager // from tm.New
	g, err := interceptors.NewGlobalTx(mgr,
		interceptors.Operations("/order.v1.Order/Place", "/order.v1.Order/Cancel"),
		interceptors.Propagation(tm.RequiresNew))
	if err != nil {
		panic(err)
	}
	_ = http.NewServer(http.Middleware(recovery.Recovery(), kratosgtx.Server(), kratosgtx.GlobalTx(g)))
}
