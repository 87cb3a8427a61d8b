package tcc

import (
	"context"
	"testing"
	"time"
)

// BenchmarkTCC compares a global transaction of two TCC branches (begin, two
// Trys each registering a branch and running a fenced local transaction,
// commit, two Confirms over the resource managers' streams) with the same
// business work done directly: two freezing and two spending local
// transactions, no coordinator, no fence. Each iteration runs one of each,
// alternating, so that load on a shared machine hits both alike; the
// metrics direct-ns/op and tcc-ns/op time each side, and tcc/direct is
// their ratio. ns/op is the sum.
func BenchmarkTCC(b *testing.B) {
	for _, open := range []func(testing.TB) *backend{mariaDB, postgres, sqliteDB} {
		be := open(b)
		b.Run(be.name, func(b *testing.B) {
			be.addAccount(b, "b1", 1<<50)
			be.addAccount(b, "b2", 1<<50)
			c := startCluster(b)
			sa := newService(b, c, be, "a", "sql", true)
			sb := newService(b, c, be, "b", "sql", true)
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
			var direct, global time.Duration
			for b.Loop() {
				start := time.Now()
				work(freezeSQL, 1, 1, "b1", 1)
				work(freezeSQL, 1, 1, "b2", 1)
				work(spendSQL, 1, 1, "b1")
				work(spendSQL, 1, 1, "b2")
				mid := time.Now()
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
				direct += mid.Sub(start)
				global += time.Since(mid)
			}
			b.StopTimer()
			if sa.confirms.Load() != sa.tries.Load() || sb.confirms.Load() != sb.tries.Load() {
				b.Fatalf("tries %d/%d but confirms %d/%d when the commits returned",
					sa.tries.Load(), sb.tries.Load(), sa.confirms.Load(), sb.confirms.Load())
			}
			n := float64(b.N)
			b.ReportMetric(float64(direct.Nanoseconds())/n, "direct-ns/op")
			b.ReportMetric(float64(global.Nanoseconds())/n, "tcc-ns/op")
			b.ReportMetric(float64(global)/float64(direct), "tcc/direct")
		})
	}
}
