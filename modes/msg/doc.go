// Package msg sends transactional messages: a message delivered if and
// only if a local database transaction commits, without a distributed
// transaction over the message broker.
//
// A two-phase message (Producer) is prepared at the coordinator, then the
// local transaction runs with a barrier row (Barrier) in the same database
// transaction, then the message is submitted:
//
//	p, err := msg.NewProducer(tcClient, barrier, cfg) // cfg.Check = "http://orders:8000/gtx/check"
//	xid, err := p.Send(ctx, "order.placed", func(ctx context.Context, tx *sql.Tx) error {
//		_, err := tx.ExecContext(ctx, "INSERT INTO orders ...")
//		return err
//	}, msg.Message{Target: "nats:orders.placed", Payload: body})
//
// If the producer dies between its local commit and the submit, the
// coordinator asks it (cfg.Check, served by CheckHandler, CheckServer or
// ServeCheck) once the message times out, and learns the outcome from the
// barrier row; an answer of "not committed" also makes a local transaction
// still running fail, so the answer is final. Once submitted, the
// coordinator's Courier (tc.Config.Messages) delivers each message to its
// target until it is acknowledged: a JetStream subject, deduplicated by
// Nats-Msg-Id set to the message ID (tcv1.MessageID), or an HTTP or gRPC
// (tcv1.MessageReceiver) endpoint.
//
// An Outbox does the same for a branch of a global transaction (AT or
// TCC): an event written in the branch's local transaction is published
// when the global transaction commits, and never when it rolls back.
//
// Delivery is at least once; a consumer applies each message once by its
// ID with an Inbox row in its own transaction, as natsgtx.Consumer does.
// See docs/msg.md.
package msg
