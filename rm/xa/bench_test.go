package xa_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/atpg"
	"github.com/gtx-io/gtx/rm/xa"
	"github.com/gtx-io/gtx/rm/xa/internal/xatest"
)

const benchRows = 10000

func benchSeed(b *testing.B, be *xatest.Backend) {
	xatest.MustExec(b, be.Raw, "CREATE TABLE acct (id BIGINT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL)")
	for start := 0; start < benchRows; start += 1000 {
		q := "INSERT INTO acct VALUES "
		for i := start; i < start+1000; i++ {
			if i > start {
				q += ", "
			}
			q += fmt.Sprintf("(%d, 0)", i)
		}
		xatest.MustExec(b, be.Raw, q)
	}
}

func benchUpdate(ctx context.Context, db *sql.DB, be *xatest.Backend, id int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, be.SQL("UPDATE acct SET balance = balance + 1 WHERE id = ?"), id); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// BenchmarkTwoBranches compares, in one run, a global transaction of two
// XA branches (one UPDATE each, on two databases of one server) with the
// same transaction in AT mode and with the two UPDATEs in plain local
// transactions, on MariaDB and on PostgreSQL, at 1 and 32 callers. Each
// iteration runs the three one after the other and times each, so that a
// load swing of the shared machine hits them alike; the metrics are each
// mode's mean time and its throughput ratio to plain (plain time / mode's
// time). Rows are picked at random among 10000, so callers rarely contend.
// Every pool is capped at 8 connections, so that the six of them and the
// phase-2 pools stay within PostgreSQL's default of 100 connections and
// MariaDB's 151, which other tests on the machine share.
func BenchmarkTwoBranches(b *testing.B) {
	for _, backend := range []func(testing.TB) *xatest.Backend{xatest.MySQL, xatest.Postgres} {
		be1, be2 := backend(b), backend(b)
		b.Run(be1.Name, func(b *testing.B) { benchTwoBranches(b, be1, be2) })
	}
}

func benchTwoBranches(b *testing.B, be1, be2 *xatest.Backend) {
	c := xatest.StartCoordinator(b, gtxtest.TCOptions{})
	m := xatest.NewRM(b, c.Client, true)
	benchSeed(b, be1)
	benchSeed(b, be2)
	// The recovery loop at its default pace, not the tests' 50ms.
	paced := func(cfg *xa.Config) { cfg.Recover.Interval = xa.DefaultConfig().Recover.Interval }
	xa1, xa2 := xatest.Open(b, be1, m, c.Client, paced), xatest.Open(b, be2, m, c.Client, paced)
	var ats []*sql.DB
	for _, be := range []*xatest.Backend{be1, be2} {
		cfg := at.DefaultConfig()
		cfg.DriverName, cfg.DSN, cfg.Manager, cfg.Locks, cfg.Logger = be.Driver, be.DSN, m, c.Client, xatest.Quiet
		db, err := at.Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		d := at.MySQL()
		if be.Driver == "pgx" {
			d = atpg.Postgres()
		}
		if err := at.Migrate(context.Background(), db, d, cfg.UndoTable); err != nil {
			b.Fatal(err)
		}
		ats = append(ats, db)
	}
	for _, db := range append([]*sql.DB{xa1, xa2, be1.Raw, be2.Raw}, ats...) {
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}
	two := func(db1, db2 *sql.DB) func(ctx context.Context, id1, id2 int) error {
		return func(ctx context.Context, id1, id2 int) error {
			if err := benchUpdate(ctx, db1, be1, id1); err != nil {
				return err
			}
			return benchUpdate(ctx, db2, be2, id2)
		}
	}
	global := func(db1, db2 *sql.DB) func(ctx context.Context, id1, id2 int) error {
		return func(ctx context.Context, id1, id2 int) error {
			return c.TM.WithGlobalTx(ctx, "bench", func(ctx context.Context) error { return two(db1, db2)(ctx, id1, id2) })
		}
	}
	modes := []struct {
		name string
		run  func(ctx context.Context, id1, id2 int) error
	}{
		{"plain", two(be1.Raw, be2.Raw)},
		{"at", global(ats[0], ats[1])},
		{"xa", global(xa1, xa2)},
	}
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			ctx := context.Background()
			var spent [3]atomic.Int64
			once := func() error {
				for i, mode := range modes {
					start := time.Now()
					if err := mode.run(ctx, rand.IntN(benchRows), rand.IntN(benchRows)); err != nil {
						return fmt.Errorf("%s: %w", mode.name, err)
					}
					spent[i].Add(int64(time.Since(start)))
				}
				return nil
			}
			b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
			if conc == 1 {
				for i := 0; i < b.N; i++ {
					if err := once(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := once(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			plain := float64(spent[0].Load())
			for i, mode := range modes {
				ns := float64(spent[i].Load())
				b.ReportMetric(ns/float64(b.N), mode.name+"-ns/op")
				if i > 0 {
					b.ReportMetric(plain/ns, mode.name+"/plain")
				}
			}
		})
	}
}
