package tcc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counter is a Phase that counts its runs and returns err.
type counter struct {
	n   atomic.Int64
	err error
}

func (c *counter) phase(context.Context, Tx) error {
	c.n.Add(1)
	return c.err
}

func TestFenceSequences(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		for _, flavour := range flavours {
			t.Run(flavour, func(t *testing.T) {
				f := b.fence(t, flavour)
				testFenceSequences(t, f)
			})
		}
	})
}

func testFenceSequences(t *testing.T, f *Fence) {
	ctx := testContext(t)
	fail := errors.New("business failed")
	type step struct {
		op      string // try, try-fail, confirm, confirm-fail, cancel
		wantErr error
		runs    bool // whether the business work ran (and committed)
	}
	tests := []struct {
		name  string
		steps []step
		final FenceStatus
	}{
		{"try confirm", []step{{"try", nil, true}, {"confirm", nil, true}}, FenceConfirmed},
		{"confirm delivered twice runs once", []step{{"try", nil, true}, {"confirm", nil, true}, {"confirm", nil, false}, {"confirm", nil, false}}, FenceConfirmed},
		{"cancel delivered twice runs once", []step{{"try", nil, true}, {"cancel", nil, true}, {"cancel", nil, false}}, FenceCancelled},
		{"cancel before try, late try refused", []step{{"cancel", nil, false}, {"try", ErrTryRefused, false}, {"cancel", nil, false}}, FenceSuspended},
		{"failed try, then empty cancel", []step{{"try-fail", fail, false}, {"cancel", nil, false}, {"try", ErrTryRefused, false}}, FenceSuspended},
		{"duplicate try refused", []step{{"try", nil, true}, {"try", ErrTryRefused, false}}, FenceTried},
		{"confirm before try is retried", []step{{"confirm", ErrNotTried, false}, {"try", nil, true}, {"confirm", nil, true}}, FenceConfirmed},
		{"failed confirm rolls back and is retried", []step{{"try", nil, true}, {"confirm-fail", fail, false}, {"confirm", nil, true}}, FenceConfirmed},
		{"confirm after cancel conflicts", []step{{"try", nil, true}, {"cancel", nil, true}, {"confirm", ErrFenceConflict, false}}, FenceCancelled},
		{"confirm after empty cancel conflicts", []step{{"cancel", nil, false}, {"confirm", ErrFenceConflict, false}}, FenceSuspended},
		{"cancel after confirm conflicts", []step{{"try", nil, true}, {"confirm", nil, true}, {"cancel", ErrFenceConflict, false}}, FenceConfirmed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xid := fmt.Sprintf("seq:%d", i)
			branch := int64(1000 + i)
			for j, s := range tt.steps {
				// The work writes a row of its own, so a rolled-back run
				// leaves nothing: count what committed.
				before := businessRows(t, f, xid)
				c := &counter{}
				work := func(ctx context.Context, tx Tx) error {
					c.n.Add(1)
					if _, err := tx.SQL.ExecContext(ctx, f.q.insert, xid, branch*100+int64(j), "work", "w", 0, 0); err != nil {
						return err
					}
					return c.err
				}
				var err error
				switch s.op {
				case "try":
					err = f.Try(ctx, xid, branch, "act", work)
				case "try-fail":
					c.err = fail
					err = f.Try(ctx, xid, branch, "act", work)
				case "confirm":
					err = f.Confirm(ctx, xid, branch, work)
				case "confirm-fail":
					c.err = fail
					err = f.Confirm(ctx, xid, branch, work)
				case "cancel":
					err = f.Cancel(ctx, xid, branch, "act", work)
				}
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
					t.Fatalf("step %d %s: err = %v, want %v", j, s.op, err, s.wantErr)
				}
				var fe *FenceError
				if s.wantErr != nil && s.wantErr != fail && !errors.As(err, &fe) {
					t.Fatalf("step %d %s: %v is not a *FenceError", j, s.op, err)
				}
				ran := businessRows(t, f, xid) > before
				if ran != s.runs {
					t.Fatalf("step %d %s: business work committed = %v, want %v", j, s.op, ran, s.runs)
				}
			}
			st, err := f.Status(ctx, xid, branch)
			if err != nil {
				t.Fatal(err)
			}
			if st != tt.final {
				t.Fatalf("fence row is %q, want %q", st, tt.final)
			}
		})
	}
}

// businessRows counts the rows the test work wrote for xid (status "w").
func businessRows(t testing.TB, f *Fence, xid string) int {
	t.Helper()
	var n int
	q := "SELECT COUNT(*) FROM " + f.cfg.Table + " WHERE xid = ? AND status = 'w'"
	if f.cfg.Dialect == Postgres {
		q = numbered(q)
	}
	if err := f.db.QueryRow(q, xid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFenceBadInput(t *testing.T) {
	b := sqliteDB(t)
	f := b.fence(t, "sql")
	ctx := testContext(t)
	nop := func(context.Context, Tx) error { return nil }
	tests := []struct {
		name   string
		xid    string
		branch int64
		work   Phase
	}{
		{"bad xid", "not an xid!", 1, nop},
		{"empty xid", "", 1, nop},
		{"zero branch", "x:1", 0, nop},
		{"negative branch", "x:1", -3, nop},
		{"nil work", "x:1", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for op, err := range map[string]error{
				"try":     f.Try(ctx, tt.xid, tt.branch, "a", tt.work),
				"confirm": f.Confirm(ctx, tt.xid, tt.branch, tt.work),
				"cancel":  f.Cancel(ctx, tt.xid, tt.branch, "a", tt.work),
			} {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("%s: err = %v, want ErrInvalidArgument", op, err)
				}
			}
			if n := businessRows(t, f, tt.xid); n != 0 {
				t.Fatalf("bad input wrote %d rows", n)
			}
		})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Try(ctx, "x:1", 1, "a", nop); !errors.Is(err, ErrClosed) {
		t.Fatalf("try on a closed fence: %v, want ErrClosed", err)
	}
}

func TestFenceConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*FenceConfig)
		ok   bool
	}{
		{"default with dialect", func(*FenceConfig) {}, true},
		{"no dialect", func(c *FenceConfig) { c.Dialect = "" }, false},
		{"unknown dialect", func(c *FenceConfig) { c.Dialect = "oracle" }, false},
		{"empty table", func(c *FenceConfig) { c.Table = "" }, false},
		{"injected table", func(c *FenceConfig) { c.Table = "f; DROP TABLE account" }, false},
		{"schema-qualified table", func(c *FenceConfig) { c.Table = "s.f" }, false},
		{"zero clean age", func(c *FenceConfig) { c.CleanAge = 0 }, false},
		{"negative interval", func(c *FenceConfig) { c.CleanInterval = -time.Second }, false},
		{"no cleaner", func(c *FenceConfig) { c.CleanInterval = 0 }, true},
		{"zero batch", func(c *FenceConfig) { c.CleanBatch = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultFenceConfig()
			c.Dialect = SQLite
			tt.edit(&c)
			err := c.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestFenceConcurrent races 32 goroutines on the same branches: duplicate
// Confirms run the work once, and a Cancel racing its Try ends in one of
// the two consistent outcomes.
func TestFenceConcurrent(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		f := b.fence(t, "gorm")
		ctx := testContext(t)
		const n = 32
		duplicates := []struct {
			name  string
			xid   string
			phase func(Phase) error
			want  FenceStatus
		}{
			{"duplicate confirms", "dup:1", func(p Phase) error { return f.Confirm(ctx, "dup:1", 1, p) }, FenceConfirmed},
			{"duplicate cancels", "dup:2", func(p Phase) error { return f.Cancel(ctx, "dup:2", 1, "a", p) }, FenceCancelled},
		}
		for _, tt := range duplicates {
			t.Run(tt.name, func(t *testing.T) {
				must(t, f.Try(ctx, tt.xid, 1, "a", func(context.Context, Tx) error { return nil }))
				var c counter
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for range n {
					wg.Go(func() {
						if err := tt.phase(c.phase); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				lost := 0
				for err := range errs {
					if !retryableRace(err) {
						t.Fatal(err)
					}
					lost++
				}
				if lost > 0 {
					t.Logf("%d of %d duplicates lost a race and would be retried", lost, n)
				}
				if got := c.n.Load(); got != 1 {
					t.Fatalf("work ran %d times, want 1", got)
				}
				if st, err := f.Status(ctx, tt.xid, 1); err != nil || st != tt.want {
					t.Fatalf("fence row %q, %v; want %q", st, err, tt.want)
				}
			})
		}
		t.Run("cancel races try", func(t *testing.T) {
			var wg sync.WaitGroup
			type result struct {
				tryErr, cancelErr error
				tried, cancelled  bool
			}
			results := make([]result, n)
			for i := range n {
				xid := fmt.Sprintf("race:%d", i)
				wg.Go(func() {
					results[i].tryErr = f.Try(ctx, xid, 1, "a", func(context.Context, Tx) error {
						results[i].tried = true
						return nil
					})
				})
				wg.Go(func() {
					results[i].cancelErr = f.Cancel(ctx, xid, 1, "a", func(context.Context, Tx) error {
						results[i].cancelled = true
						return nil
					})
				})
			}
			wg.Wait()
			for i, r := range results {
				if r.cancelErr != nil && !retryableRace(r.cancelErr) {
					t.Fatalf("%d: cancel: %v", i, r.cancelErr)
				}
				st, err := f.Status(ctx, fmt.Sprintf("race:%d", i), 1)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case r.tryErr == nil && r.tried && r.cancelled && st == FenceCancelled:
				case errors.Is(r.tryErr, ErrTryRefused) && !r.tried && !r.cancelled && st == FenceSuspended:
				case r.cancelErr != nil && r.tryErr == nil && st == FenceTried:
					t.Logf("%d: the cancel lost a race, to be retried: %v", i, r.cancelErr)
				default:
					t.Fatalf("%d: inconsistent outcome: try err %v ran %v, cancel err %v ran %v, fence %q", i, r.tryErr, r.tried, r.cancelErr, r.cancelled, st)
				}
			}
		})
	})
}

// retryableRace reports whether err is a database's answer to contention
// (a deadlock victim), which the coordinator retries.
func retryableRace(err error) bool {
	s := err.Error()
	for _, sub := range []string{"Deadlock found", "deadlock detected", "could not serialize", "database is locked"} {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestFenceClean(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		ctx := testContext(t)
		f := b.fence(t, "sql", func(c *FenceConfig) { c.CleanBatch = 2 })
		now := time.Now()
		f.now = func() time.Time { return now.Add(-48 * time.Hour) }
		nop := func(context.Context, Tx) error { return nil }
		// Old rows: tried, confirmed, cancelled, suspended (5 finished).
		must(t, f.Try(ctx, "old:1", 1, "a", nop))
		must(t, f.Try(ctx, "old:2", 1, "a", nop))
		must(t, f.Confirm(ctx, "old:2", 1, nop))
		must(t, f.Try(ctx, "old:3", 1, "a", nop))
		must(t, f.Cancel(ctx, "old:3", 1, "a", nop))
		must(t, f.Cancel(ctx, "old:4", 1, "a", nop))
		must(t, f.Cancel(ctx, "old:5", 1, "a", nop))
		must(t, f.Cancel(ctx, "old:6", 1, "a", nop))
		f.now = time.Now
		must(t, f.Cancel(ctx, "new:1", 1, "a", nop))
		n, err := f.Clean(ctx, now.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Fatalf("cleaned %d rows, want 5", n)
		}
		want := map[string]FenceStatus{"old:1": FenceTried, "old:2": FenceNone, "old:3": FenceNone, "old:4": FenceNone, "new:1": FenceSuspended}
		for xid, st := range want {
			got, err := f.Status(ctx, xid, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got != st {
				t.Errorf("%s: fence row %q after cleaning, want %q", xid, got, st)
			}
		}
	})
}

// TestFenceCleaner checks that the cleaner goroutine cleans on its own and
// stops with Close.
func TestFenceCleaner(t *testing.T) {
	b := sqliteDB(t)
	f := b.fence(t, "sql", func(c *FenceConfig) {
		c.CleanInterval = 5 * time.Millisecond
		c.CleanAge = time.Millisecond
	})
	ctx := testContext(t)
	nop := func(context.Context, Tx) error { return nil }
	must(t, f.Try(ctx, "c:1", 1, "a", nop))
	must(t, f.Confirm(ctx, "c:1", 1, nop))
	must(t, f.Try(ctx, "c:2", 1, "a", nop))
	eventually(t, "the cleaner to delete the confirmed row", func() bool {
		st, err := f.Status(ctx, "c:1", 1)
		return err == nil && st == FenceNone
	})
	if st, err := f.Status(ctx, "c:2", 1); err != nil || st != FenceTried {
		t.Fatalf("tried row: %q, %v; want it kept", st, err)
	}
	must(t, f.Close())
	must(t, f.Close())
	if _, err := f.Clean(ctx, time.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("clean after close: %v, want ErrClosed", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
