package natsgtx_test

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/natsgtx"
	"github.com/gtx-io/gtx/tm"
)

// A request carries the XID of ctx; the subscriber's handler gets it in
// its context.
func Example() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	sub, err := nc.Subscribe("stock.reserve", natsgtx.Handler(ctx, func(ctx context.Context, msg *nats.Msg) error {
		xid, _ := gtx.XIDFromContext(ctx)
		return msg.Respond([]byte("reserved in " + xid))
	}))
	if err != nil {
		panic(err)
	}
	defer sub.Unsubscribe()

	reply, err := natsgtx.Request(gtx.ContextWithXID(ctx, "tc-1:4711"), nc, "stock.reserve", []byte(`{"sku":"A1"}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(reply.Data))
}

// A JetStream consumer whose handler runs in a global transaction.
func ExampleJetStreamHandler() {
	ctx := context.Background()
	var mgr *tm.Manager         // from tm.New
	var cons jetstream.Consumer // from stream.CreateConsumer
	g, err := interceptors.NewGlobalTx(mgr, interceptors.Name("ship-order"))
	if err != nil {
		panic(err)
	}
	cc, err := cons.Consume(natsgtx.JetStreamHandler(ctx, func(ctx context.Context, msg jetstream.Msg) error {
		// Work done here with ctx is part of the global transaction.
		return msg.Ack()
	}, natsgtx.WithGlobalTx(g)))
	if err != nil {
		panic(err)
	}
	defer cc.Stop()
}
