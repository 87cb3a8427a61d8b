package mysqllock_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/mysqllock"
)

func Example() {
	ctx := context.Background()
	db, err := sql.Open("mysql", dsn()+"test")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	table := "gtx_example_locks_" + randomHex()
	backend, err := mysqllock.New(db, mysqllock.Config{Table: table})
	if err != nil {
		log.Fatal(err)
	}
	if err := backend.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	defer db.Exec("DROP TABLE " + table)
	locks, err := lock.New(backend, lock.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer locks.Close(ctx)

	lease, err := locks.Lock(ctx, "invoice:2026-11")
	if err != nil {
		log.Fatal(err)
	}
	// The first acquisition's fencing counter is 1, shifted left by
	// lock.HandoffBits.
	fmt.Println("fence", lease.Fence())
	if err := lease.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: fence 65536
}
