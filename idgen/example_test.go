package idgen_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gtx-io/gtx/idgen"
)

func ExampleNew() {
	cfg := idgen.DefaultConfig()
	cfg.NodeID = 7
	g, err := idgen.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	a, b := g.Next(), g.Next()
	p, _ := idgen.Parse(b, g.Epoch())
	fmt.Println(b > a, p.Node)
	// Output: true 7
}

func ExampleParse() {
	epoch := idgen.DefaultConfig().Epoch
	p, err := idgen.Parse(1234567<<22|513<<12|42, epoch)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Time.Format("2006-01-02T15:04:05.000Z07:00"), p.Node, p.Seq)
	id, _ := idgen.Compose(p, epoch)
	fmt.Println(id == 1234567<<22|513<<12|42)
	// Output:
	// 2026-01-01T00:20:34.567Z 513 42
	// true
}

func ExampleAcquire() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "idgen-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "nodes.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		fmt.Println(err)
		return
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()

	leaser, err := idgen.NewSQLLeaser(ctx, db, idgen.DefaultSQLLeaserConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	lease, err := idgen.Acquire(ctx, leaser, idgen.DefaultLeaseConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease.Close(ctx)

	g, err := idgen.NewLeased(idgen.DefaultConfig(), lease)
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := g.NextID() // an error here means the lease is gone: stop making IDs
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := idgen.Parse(id, g.Epoch())
	fmt.Println("node", lease.NodeID(), p.Node)
	// Output: node 0 0
}
