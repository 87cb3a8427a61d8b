package xa_test

import (
	"context"
	"log"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/tm"
)

// The service opens its database through XA instead of sql.Open, then does
// its local work inside a global transaction: the transaction becomes an
// XA branch, prepared at tx.Commit and committed or rolled back by the
// coordinator with every other branch. Any SQL runs; the database holds
// the branch's row locks until phase 2.
func Example() {
	var (
		ctx         = context.Background()
		coordinator tcv1.CoordinatorClient // a gRPC client of the TC
		rmManager   *rm.Manager            // rm.New(...), started
		tmManager   *tm.Manager            // tm.New(coordinator, ...)
	)
	cfg := xa.DefaultConfig()
	cfg.DriverName, cfg.DSN = "mysql", "app@tcp(db:3306)/orders" // or "pgx", "postgres://app@db/orders"
	cfg.Manager, cfg.Status = rmManager, coordinator
	db, err := xa.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	err = tmManager.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil) // ctx carries the XID: XA START
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders (sku, qty) SELECT sku, 1 FROM stock WHERE sku = ? AND qty > 0", "A-1"); err != nil {
			return err
		}
		return tx.Commit() // XA END, XA PREPARE
	}) // the coordinator's phase 2: XA COMMIT, or XA ROLLBACK if anything failed
	if err != nil {
		log.Print(err)
	}
}
