package tm_test

import (
	"context"
	"errors"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tm"
)

// reserveStock and chargeCard stand for calls to other services; the
// context they get carries the XID.
func reserveStock(ctx context.Context) error { return nil }
func chargeCard(ctx context.Context) error   { return nil }

func Example() {
	conn, err := grpc.NewClient("127.0.0.1:8091", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	cfg := tm.DefaultConfig()
	cfg.Application = "order-service"
	m, err := tm.New(tcv1.NewCoordinatorClient(conn), cfg)
	if err != nil {
		log.Fatal(err)
	}

	err = m.WithGlobalTx(context.Background(), "place-order", func(ctx context.Context) error {
		if err := reserveStock(ctx); err != nil {
			return err // rolls back every branch
		}
		return chargeCard(ctx) // nil commits
	}, tm.Timeout(30*time.Second))
	if errors.Is(err, tm.ErrRolledBack) {
		log.Print("the coordinator timed the order out first; try again")
	}
}

func ExampleManager_WithGlobalTx_requiresNew() {
	var m *tm.Manager // from tm.New
	ctx := context.Background()

	_ = m.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
		// The audit record commits on its own, whatever becomes of the
		// order: RequiresNew suspends the order's transaction meanwhile.
		if err := m.WithGlobalTx(ctx, "audit", func(ctx context.Context) error {
			return nil
		}, tm.WithPropagation(tm.RequiresNew)); err != nil {
			return err
		}
		return nil
	})
}

func ExampleManager_Begin() {
	var m *tm.Manager // from tm.New
	ctx := context.Background()

	tx, err := m.Begin(ctx, "import-batch", tm.Timeout(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	if err := reserveStock(tx.Context()); err != nil {
		if _, rbErr := tx.Rollback(ctx, err.Error()); rbErr != nil {
			log.Print(rbErr)
		}
		return
	}
	status, err := tx.Commit(ctx)
	log.Print(status, err)
}
