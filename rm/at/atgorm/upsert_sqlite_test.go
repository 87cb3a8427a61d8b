package atgorm_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/atgorm"
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
	cfg := at.DefaultConfig()
	cfg.Manager, cfg.Locks = attest.NewRM(t, c), c.Client
	at.SetDefaults(cfg)
	db, err := gorm.Open(atgorm.SQLite(b.DSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	ctx := context.Background()
	if err := at.Migrate(ctx, b.Raw, at.SQLite(), ""); err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Item{}); err != nil {
		t.Fatal(err)
	}
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
	errRollback := errors.New("force rollback")
	err = c.TM.WithGlobalTx(ctx, "gorm-upsert-rollback", func(ctx context.Context) error {
		if err := work(ctx); err != nil {
			t.Errorf("gorm upserts in a global transaction: %v", err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if got := attest.Dump(t, b.Raw, "items"); !attest.SameRows(got, seed) {
		t.Fatalf("after rollback:\n%s want:\n%s", attest.FormatRows(got), attest.FormatRows(seed))
	}
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
