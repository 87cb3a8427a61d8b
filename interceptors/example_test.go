package interceptors_test

import (
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/interceptors/httpgtx"
	"github.com/gtx-io/gtx/tm"
)

// One annotation, built once, attached to a gRPC method and an HTTP route.
func ExampleNewGlobalTx() {
	var mgr *tm.Manager // from tm.New
	g, err := interceptors.NewGlobalTx(mgr,
		interceptors.Name("place-order"),
		interceptors.Timeout(30*time.Second),
		interceptors.Propagation(tm.Required),
		interceptors.Operations("/order.v1.Order/Place", "POST /orders"))
	if err != nil {
		panic(err)
	}

	_ = grpc.NewServer(grpc.ChainUnaryInterceptor(grpcgtx.UnaryServerInterceptor(), grpcgtx.UnaryGlobalTx(g)))

	placeOrder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("POST /orders", httpgtx.GlobalTx(g)(placeOrder))
}
