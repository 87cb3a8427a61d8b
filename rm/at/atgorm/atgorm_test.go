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

type Account struct {
	ID      int64  `gorm:"primaryKey"`
	Code    string `gorm:"size:32;uniqueIndex"`
	Balance int64
}

var errForceRollback = errors.New("force rollback")

// TestGormOneLineChange opens gorm with atgorm in place of the plain
// dialector, and checks that gorm's creates and updates become AT branches:
// kept on commit, undone on rollback, on MariaDB, SQLite and PostgreSQL.
func TestGormOneLineChange(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.Backends(t, func(t *testing.T, b *attest.Backend) { gormOneLineChange(t, c, b) })
	t.Run("postgres", func(t *testing.T) { gormOneLineChange(t, c, attest.PostgresBackend(t)) })
}

// openGorm opens gorm on b through the atgorm dialector of its driver, with
// an AT resource manager on c, the undo table migrated and model's table
// made.
func openGorm(t *testing.T, c *attest.Coordinator, b *attest.Backend, model any) *gorm.DB {
	t.Helper()
	cfg := at.DefaultConfig()
	cfg.Manager, cfg.Locks = attest.NewRM(t, c), c.Client
	at.SetDefaults(cfg)
	dialector := atgorm.MySQL(b.DSN)
	switch b.Driver {
	case "sqlite":
		dialector = atgorm.SQLite(b.DSN)
	case "pgx":
		dialector = atgorm.Postgres(b.DSN)
	}
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	if err := at.Migrate(context.Background(), b.Raw, attest.DialectOf(b), ""); err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(model); err != nil {
		t.Fatal(err)
	}
	return db
}

// checkRestored fails the test unless table holds exactly seed.
func checkRestored(t *testing.T, b *attest.Backend, table string, seed [][]any) {
	t.Helper()
	if got := attest.Dump(t, b.Raw, table); !attest.SameRows(got, seed) {
		t.Fatalf("after rollback:\n%s want:\n%s", attest.FormatRows(got), attest.FormatRows(seed))
	}
}

func gormOneLineChange(t *testing.T, c *attest.Coordinator, b *attest.Backend) {
	db := openGorm(t, c, b, &Account{})
	ctx := context.Background()
	if err := db.Create(&Account{Code: "a", Balance: 1}).Error; err != nil {
		t.Fatal(err)
	}
	seed := attest.Dump(t, b.Raw, "accounts")
	work := func(ctx context.Context) (int64, error) {
		acct := Account{Code: "b", Balance: 5}
		if err := db.WithContext(ctx).Create(&acct).Error; err != nil {
			return 0, err
		}
		err := db.WithContext(ctx).Model(&Account{}).Where("code = ?", "a").
			Update("balance", gorm.Expr("balance + ?", 10)).Error
		return acct.ID, err
	}
	err := c.TM.WithGlobalTx(ctx, "gorm-rollback", func(ctx context.Context) error {
		if _, err := work(ctx); err != nil {
			t.Errorf("gorm in a global transaction: %v", err)
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatal(err)
	}
	checkRestored(t, b, "accounts", seed)
	var id int64
	if err := c.TM.WithGlobalTx(ctx, "gorm-commit", func(ctx context.Context) (err error) {
		id, err = work(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var accts []Account
	if err := db.Order("id").Find(&accts).Error; err != nil {
		t.Fatal(err)
	}
	if len(accts) != 2 || accts[0].Balance != 11 || accts[1].ID != id || id == 0 || accts[1].Balance != 5 {
		t.Fatalf("after commit: %+v (created id %d)", accts, id)
	}
}

// TestGormPostgresUpserts runs gorm's upserts on PostgreSQL in a global
// transaction: Save of a new row (INSERT ... ON CONFLICT ("id") DO UPDATE
// SET every column = excluded) and Create with clause.OnConflict on the
// unique code; a rollback must restore the table.
func TestGormPostgresUpserts(t *testing.T) {
	c := attest.StartCoordinator(t)
	b := attest.PostgresBackend(t)
	db := openGorm(t, c, b, &Account{})
	ctx := context.Background()
	if err := db.Create(&Account{ID: 1, Code: "a", Balance: 1}).Error; err != nil {
		t.Fatal(err)
	}
	seed := attest.Dump(t, b.Raw, "accounts")
	err := c.TM.WithGlobalTx(ctx, "gorm-upserts", func(ctx context.Context) error {
		if err := db.WithContext(ctx).Save(&Account{ID: 7, Code: "s", Balance: 70}).Error; err != nil {
			t.Errorf("Save of a new row: %v", err)
		}
		if err := db.WithContext(ctx).Save(&Account{ID: 1, Code: "a", Balance: 10}).Error; err != nil {
			t.Errorf("Save of an existing row: %v", err)
		}
		up := clause.OnConflict{Columns: []clause.Column{{Name: "code"}}, DoUpdates: clause.AssignmentColumns([]string{"balance"})}
		if err := db.WithContext(ctx).Clauses(up).Create(&Account{ID: 9, Code: "a", Balance: 99}).Error; err != nil {
			t.Errorf("Create with OnConflict: %v", err)
		}
		var got Account
		if err := db.WithContext(ctx).First(&got, 1).Error; err != nil || got.Balance != 99 {
			t.Errorf("inside the transaction: %+v, %v", got, err)
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatal(err)
	}
	checkRestored(t, b, "accounts", seed)
}
