package atgorm_test

import (
	"context"
	"log"

	"gorm.io/gorm"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/atgorm"
)

// A gorm service gets AT by configuring the driver once and changing the
// line that opens gorm.
func Example() {
	var (
		coordinator tcv1.CoordinatorClient // a gRPC client of the TC
		rmManager   *rm.Manager            // rm.New(...), started
	)
	cfg := at.DefaultConfig()
	cfg.Manager, cfg.Locks = rmManager, coordinator
	at.SetDefaults(cfg)

	db, err := gorm.Open(atgorm.MySQL("app@tcp(db:3306)/orders"), &gorm.Config{}) // was mysql.Open(dsn)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background() // in a service: the ctx tm.WithGlobalTx passes, carrying the XID
	db.WithContext(ctx).Model(&Account{}).Where("code = ?", "a").Update("balance", gorm.Expr("balance - ?", 1))
}
