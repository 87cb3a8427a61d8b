package httpgtx_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/httpgtx"
	"github.com/gtx-io/gtx/tm"
)

// The XID of the request's context crosses the HTTP hop.
func Example() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		xid, _ := gtx.XIDFromContext(r.Context())
		fmt.Fprint(w, xid)
	})
	srv := httptest.NewServer(httpgtx.Server()(handler))
	defer srv.Close()

	client := &http.Client{Transport: &httpgtx.Transport{}}
	ctx := gtx.ContextWithXID(context.Background(), "tc-1:4711")
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if err != nil {
		panic(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println("server saw", string(body))
	// Output: server saw tc-1:4711
}

// Annotate one route with GlobalTx and another with GlobalLock.
func ExampleGlobalTx() {
	var mgr *tm.Manager // from tm.New
	g, err := interceptors.NewGlobalTx(mgr, interceptors.Name("place-order"))
	if err != nil {
		panic(err)
	}
	placeOrder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Local work through the AT driver and calls to other services
		// with r.Context() join the transaction. Answer 4xx/5xx to roll
		// it back.
	})
	stock := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("POST /orders", httpgtx.GlobalTx(g)(placeOrder))
	mux.Handle("GET /stock/{sku}", httpgtx.GlobalLock()(stock))
	_ = &http.Server{Handler: httpgtx.Server()(mux)}
}
