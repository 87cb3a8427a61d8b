package msg_test

import (
	"context"
	"database/sql"
	"log"
	"net/http"

	"github.com/nats-io/nats.go"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/modes/msg"
)

// A producer commits an order and publishes order.placed exactly when the
// order commits. The coordinator delivers to the JetStream subject, and
// asks /gtx/check if the producer dies before it submits.
func ExampleProducer_Send() {
	ctx := context.Background()
	var (
		db       *sql.DB                // the orders database (MySQL here)
		tcClient tcv1.CoordinatorClient // a client of gtx tc
	)
	cfg := msg.DefaultBarrierConfig()
	cfg.Dialect = msg.MySQL
	barrier, err := msg.OpenBarrier(ctx, db, cfg)
	if err != nil {
		log.Fatal(err)
	}
	// The check answers from the barrier row; serve it beside the service.
	http.Handle("/gtx/check", msg.CheckHandler(barrier))

	pcfg := msg.DefaultProducerConfig()
	pcfg.Check = "http://orders:8000/gtx/check"
	p, err := msg.NewProducer(tcClient, barrier, pcfg)
	if err != nil {
		log.Fatal(err)
	}
	_, err = p.Send(ctx, "place-order", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO orders (id, amount) VALUES (?, ?)", "o-1", 200)
		return err
	}, msg.Message{Target: "nats:orders.placed", Payload: []byte(`{"order_id":"o-1"}`)})
	if err != nil {
		log.Fatal(err)
	}
}

// The coordinator's side: gtx tc --msg-nats does this.
func ExampleNewCourier() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	courier, err := msg.NewCourier(msg.CourierConfig{NATS: nc})
	if err != nil {
		log.Fatal(err)
	}
	defer courier.Close()
	// Pass courier to the coordinator as tc.Config.Messages.
	_ = courier
}

// A consumer applies each message once: the inbox row and the effects
// commit together, and a delivery seen before changes nothing.
func ExampleInbox_Apply() {
	ctx := context.Background()
	var db *sql.DB // the consumer's database (PostgreSQL here)
	cfg := msg.DefaultInboxConfig()
	cfg.Dialect = msg.Postgres
	inbox, err := msg.OpenInbox(ctx, db, cfg)
	if err != nil {
		log.Fatal(err)
	}
	applied, err := inbox.Apply(ctx, "123-456", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE points SET total = total + 10 WHERE user_id = $1", "u1")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("applied now:", applied)
}
