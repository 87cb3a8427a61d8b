package at_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

const benchRows = 10000

func benchSeed(b *testing.B, be *attest.Backend) {
	attest.MustExec(b, be.Raw, "CREATE TABLE acct (id BIGINT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL)")
	for start := 0; start < benchRows; start += 1000 {
		q := "INSERT INTO acct VALUES "
		for i := start; i < start+1000; i++ {
			if i > start {
				q += ", "
			}
			q += fmt.Sprintf("(%d, 0)", i)
		}
		attest.MustExec(b, be.Raw, q)
	}
}

// benchUpdate is the one UPDATE of a branch, in each backend's
// placeholder syntax.
var benchUpdate = map[string]string{
	"mysql": "UPDATE acct SET balance = balance + 1 WHERE id = ?",
	"pgx":   "UPDATE acct SET balance = balance + 1 WHERE id = $1",
}

func update(ctx context.Context, db *sql.DB, driver string, id int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, benchUpdate[driver], id); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// BenchmarkTwoBranches compares a global transaction of two AT branches,
// each one UPDATE on its own MariaDB database, with the same two UPDATEs in
// plain local transactions, at 1 and 32 concurrent callers. Rows are picked
// at random among 10000, so callers rarely contend.
func BenchmarkTwoBranches(b *testing.B) {
	benchTwoBranches(b, attest.MySQLBackend)
}

// BenchmarkTwoBranchesPostgres is BenchmarkTwoBranches on two PostgreSQL
// databases, each pool capped at 20 connections.
func BenchmarkTwoBranchesPostgres(b *testing.B) {
	benchTwoBranches(b, attest.PostgresBackend)
}

func benchTwoBranches(b *testing.B, backend func(testing.TB) *attest.Backend) {
	c := attest.StartCoordinator(b)
	m := attest.NewRM(b, c)
	be1, be2 := backend(b), backend(b)
	driver := be1.Driver
	benchSeed(b, be1)
	benchSeed(b, be2)
	at1, at2 := attest.OpenAT(b, be1, m, c), attest.OpenAT(b, be2, m, c)
	for _, db := range []*sql.DB{at1, at2, be1.Raw, be2.Raw} {
		db.SetMaxIdleConns(64)
		if driver == "pgx" {
			// Four pools of 20 stay under PostgreSQL's default
			// max_connections of 100, with room for phase 2's pools.
			db.SetMaxOpenConns(20)
		}
	}
	modes := []struct {
		name string
		run  func(ctx context.Context, id1, id2 int) error
	}{
		{"plain", func(ctx context.Context, id1, id2 int) error {
			if err := update(ctx, be1.Raw, driver, id1); err != nil {
				return err
			}
			return update(ctx, be2.Raw, driver, id2)
		}},
		{"at", func(ctx context.Context, id1, id2 int) error {
			return c.TM.WithGlobalTx(ctx, "bench", func(ctx context.Context) error {
				if err := update(ctx, at1, driver, id1); err != nil {
					return err
				}
				return update(ctx, at2, driver, id2)
			})
		}},
	}
	for _, conc := range []int{1, 32} {
		for _, mode := range modes {
			b.Run(fmt.Sprintf("%s/concurrency=%d", mode.name, conc), func(b *testing.B) {
				ctx := context.Background()
				b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
				if conc == 1 {
					for i := 0; i < b.N; i++ {
						if err := mode.run(ctx, rand.IntN(benchRows), rand.IntN(benchRows)); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := mode.run(ctx, rand.IntN(benchRows), rand.IntN(benchRows)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
