package tcc

import (
	"context"
	"testing"
)

// BenchmarkTCC compares a global transaction of two TCC branches (begin, two
// Trys each registering a branch and running a fenced local transaction,
// commit, two Confirms over the resource managers' streams) with the same
// business work done directly: two freezing and two spending local
// transactions, no coordinator, no fence.
func BenchmarkTCC(b *testing.B) {
	for _, open := range []func(testing.TB) *backend{mariaDB, postgres, sqliteDB} {
		be := open(b)
		be.addAccount(b, "b1", 1<<50)
		be.addAccount(b, "b2", 1<<50)
		b.Run(be.name+"/direct", func(b *testing.B) {
			ctx := context.Background()
			work := func(q string, args ...any) {
				tx, err := be.db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, be.rebind(q), args...); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				work(freezeSQL, 1, 1, "b1", 1)
				work(freezeSQL, 1, 1, "b2", 1)
				work(spendSQL, 1, 1, "b1")
				work(spendSQL, 1, 1, "b2")
			}
		})
		b.Run(be.name+"/tcc", func(b *testing.B) {
			c := startCluster(b)
			sa := newService(b, c, be, "a", "sql", true)
			sb := newService(b, c, be, "b", "sql", true)
			ctx := context.Background()
			for b.Loop() {
				err := c.tm.WithGlobalTx(ctx, "bench", func(ctx context.Context) error {
					if _, err := sa.action.Try(ctx, freeze{Account: "b1", Amount: 1}); err != nil {
						return err
					}
					_, err := sb.action.Try(ctx, freeze{Account: "b2", Amount: 1})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if sa.confirms.Load() != sa.tries.Load() || sb.confirms.Load() != sb.tries.Load() {
				b.Fatalf("tries %d/%d but confirms %d/%d when the commits returned",
					sa.tries.Load(), sb.tries.Load(), sa.confirms.Load(), sb.confirms.Load())
			}
		})
	}
}
