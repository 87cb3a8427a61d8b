// Package natsgtx carries the XID of a global transaction in NATS message
// headers and hands it to subscription handlers in their context.
//
// Publishers take the XID from ctx:
//
//	err := natsgtx.Publish(ctx, nc, "orders.placed", data)
//	reply, err := natsgtx.Request(ctx, nc, "stock.reserve", data)
//	ack, err := js.PublishMsg(ctx, natsgtx.NewMsg(ctx, "orders.placed", data))
//
// Subscribers wrap their handlers:
//
//	sub, err := nc.Subscribe("stock.reserve", natsgtx.Handler(ctx, reserve))
//	cc, err := consumer.Consume(natsgtx.JetStreamHandler(ctx, ship, natsgtx.WithGlobalTx(g)))
//
// Consumer applies JetStream messages to a database exactly once, with a
// row per message ID (msg.Inbox) in the same local transaction as the
// message's effects, ordering per key where asked, and dead-lettering
// after a retry budget:
//
//	c, err := natsgtx.NewConsumer(inbox, js, apply, natsgtx.DefaultConsumerConfig())
//	err = c.Run(ctx, consumer)
//
// A message with a malformed XID never reaches the handler: a request gets
// an error reply in the nats micro convention (header Nats-Service-Error-Code
// "400"), a JetStream message is terminated so it is not redelivered, and
// any other message is dropped. Each is logged with its subject and the
// reason, never its body.
package natsgtx
