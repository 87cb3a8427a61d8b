package at_test

import (
	"context"
	"log"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/tm"
)

// The service opens its database through AT instead of sql.Open, then does
// its local work inside a global transaction: the UPDATE becomes a branch,
// undone if the global transaction rolls back.
func Example() {
	var (
		ctx         = context.Background()
		coordinator tcv1.CoordinatorClient // a gRPC client of the TC
		rmManager   *rm.Manager            // rm.New(...), started
		tmManager   *tm.Manager            // tm.New(coordinator, ...)
	)
	cfg := at.DefaultConfig()
	cfg.DriverName, cfg.DSN = "mysql", "app@tcp(db:3306)/orders"
	cfg.Manager, cfg.Locks = rmManager, coordinator
	db, err := at.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := at.Migrate(ctx, db, at.MySQL(), cfg.UndoTable); err != nil {
		log.Fatal(err)
	}
	err = tmManager.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil) // ctx carries the XID: this is a branch
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "UPDATE stock SET qty = qty - ? WHERE sku = ?", 1, "A-1"); err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		log.Print(err)
	}
}
