package local_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/local"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

// Start the whole sample in this process and place one TCC order whose
// account step fails: the freeze is cancelled and the balance is whole.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gtx-sample-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	st, err := local.Start(ctx, local.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	c := load.NewClient(st.OrderURL, st.InventoryURL, st.AccountURL)
	code, res, err := c.Place(ctx, order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "tcc", Fail: "account"})
	if err != nil {
		panic(err)
	}
	a, err := c.Account(ctx, "u1")
	if err != nil {
		panic(err)
	}
	fmt.Println(code, res.Status, a.Balance, a.Frozen)
	// Output: 409 rolled_back 100000000 0
}
