package atgorm_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm/clause"

	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

type Item struct {
	ID    int64  `gorm:"primaryKey"`
	Code  string `gorm:"size:32;uniqueIndex"`
	Stock int64
}

// TestGormSQLiteUpserts runs the upserts gorm writes on SQLite (ON
// CONFLICT ... DO UPDATE SET col = excluded.col ... RETURNING, and DO
// NOTHING) in global transactions: undone on rollback, kept on commit.
func TestGormSQLiteUpserts(t *testing.T) {
	c := attest.StartCoordinator(t)
	b := attest.SQLiteBackend(t)
	db := openGorm(t, c, b, &Item{})
	ctx := context.Background()
	if err := db.Create(&[]Item{{Code: "a", Stock: 1}, {Code: "b", Stock: 2}}).Error; err != nil {
		t.Fatal(err)
	}
	seed := attest.Dump(t, b.Raw, "items")
	work := func(ctx context.Context) error {
		g := db.WithContext(ctx)
		if err := g.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Item{ID: 1, Code: "a", Stock: 50}).Error; err != nil {
			return err
		}
		if err := g.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "code"}}, DoUpdates: clause.AssignmentColumns([]string{"stock"})}).
			Create(&Item{Code: "c", Stock: 3}).Error; err != nil {
			return err
		}
		return g.Clauses(clause.OnConflict{DoNothing: true}).Create(&Item{Code: "b", Stock: 99}).Error
	}
	err := c.TM.WithGlobalTx(ctx, "gorm-upsert-rollback", func(ctx context.Context) error {
		if err := work(ctx); err != nil {
			t.Errorf("gorm upserts in a global transaction: %v", err)
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatal(err)
	}
	checkRestored(t, b, "items", seed)
	if err := c.TM.WithGlobalTx(ctx, "gorm-upsert-commit", work); err != nil {
		t.Fatal(err)
	}
	var items []Item
	if err := db.Order("id").Find(&items).Error; err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Stock != 50 || items[1].Stock != 2 || items[2].Code != "c" || items[2].Stock != 3 {
		t.Fatalf("after commit: %+v", items)
	}
}
