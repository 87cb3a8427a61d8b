package optimistic_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"gorm.io/gorm"

	"github.com/gtx-io/gtx/lock/optimistic"
)

// deposit adds amount to an account, retrying when another writer changed
// the row between the read and the write.
func deposit(ctx context.Context, db *gorm.DB, id, amount int64) error {
	return optimistic.Retry(ctx, 10, func(ctx context.Context) error {
		var a Account
		if err := db.WithContext(ctx).First(&a, id).Error; err != nil {
			return err
		}
		return optimistic.Update(ctx, db, &a, map[string]any{"balance": a.Balance + amount})
	})
}

func Example() {
	db, drop, err := openDB() // in a service: its *gorm.DB
	if err != nil {
		log.Fatal(err)
	}
	defer drop()
	ctx := context.Background()

	a := Account{Balance: 100}
	db.Create(&a)
	stale := a
	if err := deposit(ctx, db, a.ID, 50); err != nil {
		fmt.Println(err)
	}
	err = optimistic.Update(ctx, db, &stale, map[string]any{"balance": 0})
	fmt.Println(errors.Is(err, optimistic.ErrStaleVersion))
	// Output: true
}
