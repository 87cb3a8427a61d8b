package xagorm_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/rm/xa/internal/xatest"
	"github.com/gtx-io/gtx/rm/xa/xagorm"
)

type Account struct {
	ID      int64  `gorm:"primaryKey"`
	Code    string `gorm:"size:32;uniqueIndex"`
	Balance int64
}

var errForce = errors.New("force rollback")

// TestGormOneLineChange opens gorm with xagorm in place of the plain
// dialector: gorm's creates and updates in a global transaction are XA
// branches, kept on commit and gone on rollback, on MariaDB and PostgreSQL.
func TestGormOneLineChange(t *testing.T) {
	c := xatest.StartCoordinator(t, gtxtest.TCOptions{})
	m := xatest.NewRM(t, c.Client, true)
	xatest.Backends(t, func(t *testing.T, b *xatest.Backend) {
		cfg := xa.DefaultConfig()
		cfg.Manager, cfg.Status, cfg.Logger = m, c.Client, xatest.Quiet
		xa.SetDefaults(cfg)
		dialector := xagorm.MySQL(b.DSN)
		if b.Driver == "pgx" {
			dialector = xagorm.Postgres(b.DSN)
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
		if err := db.AutoMigrate(&Account{}); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := db.Create(&Account{Code: "a", Balance: 1}).Error; err != nil {
			t.Fatal(err)
		}
		err = c.TM.WithGlobalTx(ctx, "gorm", func(ctx context.Context) error {
			g := db.WithContext(ctx)
			if err := g.Create(&Account{Code: "b", Balance: 2}).Error; err != nil {
				return err
			}
			return g.Model(&Account{}).Where("code = ?", "a").Update("balance", 10).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []Account
		if err := db.Order("code").Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Balance != 10 || got[1].Balance != 2 {
			t.Fatalf("after commit: %+v", got)
		}
		var xid string
		err = c.TM.WithGlobalTx(ctx, "gorm", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			g := db.WithContext(ctx)
			if err := g.Create(&Account{Code: "c", Balance: 3}).Error; err != nil {
				return err
			}
			if err := g.Model(&Account{}).Where("code = ?", "a").Update("balance", 99).Error; err != nil {
				return err
			}
			return errForce
		})
		if !errors.Is(err, errForce) {
			t.Fatalf("rollback: %v", err)
		}
		if st := xatest.WaitStatus(t, c.Client, xid); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		if n := xatest.Prepared(t, b, xid); n != 0 {
			t.Fatalf("%d branches prepared after rollback", n)
		}
		got = nil
		if err := db.Order("code").Find(&got).Error; err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Balance != 10 {
			t.Fatalf("after rollback: %+v", got)
		}
	})
}
