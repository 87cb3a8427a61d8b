package at_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/gtx-io/gtx/rm/at"
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

// floorStatements are the statements an AT branch of the benchmark sends
// to its database, in order, for the floor mode: the before image, the
// UPDATE, the after image, the undo row, and (after the local commit) the
// undo row's deletion that phase 2 makes.
var floorStatements = []string{
	"SELECT id, balance FROM acct WHERE id = ? FOR UPDATE",
	"UPDATE acct SET balance = balance + 1 WHERE id = ?",
	"SELECT id, balance FROM acct WHERE id IN (?)",
	"INSERT INTO " + at.DefaultUndoTable + " (xid, branch_id, state, rollback_info) VALUES (?, ?, ?, ?)",
	"DELETE FROM " + at.DefaultUndoTable + " WHERE xid = ? AND branch_id = ?",
}

// floorBranch sends one AT branch's database statements through the plain
// driver on prepared statements, as the AT driver's cache keeps them, with
// no coordinator and no parsing: what AT costs the database alone.
type floorBranch struct {
	db    *sql.DB
	stmts []*sql.Stmt
}

func newFloorBranch(b *testing.B, be *attest.Backend) *floorBranch {
	f := &floorBranch{db: be.Raw}
	for _, q := range floorStatements {
		st, err := be.Raw.Prepare(be.SQL(q))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		f.stmts = append(f.stmts, st)
	}
	return f
}

// undoBlob is the size of the benchmark's undo rows: one row of two
// BIGINT columns, before and after.
var undoBlob = make([]byte, 40)

func (f *floorBranch) run(ctx context.Context, id int, xid string, branchID int64) error {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, args := range [][]any{{id}, {id}, {id}, {xid, branchID, 0, undoBlob}} {
		rows, err := tx.StmtContext(ctx, f.stmts[i]).QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = f.stmts[4].ExecContext(ctx, xid, branchID)
	return err
}

// BenchmarkTwoBranches compares a global transaction of two AT branches,
// each one UPDATE on its own MariaDB database, with the same two UPDATEs in
// plain local transactions, at 1 and 32 concurrent callers. Rows are picked
// at random among 10000, so callers rarely contend. A third mode, floor,
// sends the database statements of the two AT branches through the plain
// driver with no coordinator: the bound that no coordinator or proxy work
// can lift AT above.
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
	floor1, floor2 := newFloorBranch(b, be1), newFloorBranch(b, be2)
	var floorIDs atomic.Int64
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
		{"floor", func(ctx context.Context, id1, id2 int) error {
			n := floorIDs.Add(1)
			xid := strconv.FormatInt(n, 10)
			if err := floor1.run(ctx, id1, xid, 2*n); err != nil {
				return err
			}
			return floor2.run(ctx, id2, xid, 2*n+1)
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
