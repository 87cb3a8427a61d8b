package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// busyDSN is a rollback-journal SQLite file whose connections give up on a
// lock after 10ms: a COMMIT fails fast with SQLITE_BUSY while another
// connection reads.
func busyDSN(path string) string {
	return path + "?_pragma=journal_mode(DELETE)&_pragma=busy_timeout(10)"
}

// openBusyStore returns a Store from New on a rollback-journal SQLite file
// with a single connection, so that a connection left in a transaction is
// the one every later write gets.
func openBusyStore(t *testing.T, path string) *Store {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(busyDSN(path)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { sqlDB.Close() })
	s := New(db)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// openPlain opens path through database/sql alone, apart from the store,
// until the test ends.
func openPlain(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", busyDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// holdShared starts a read transaction on db that keeps a SHARED lock on
// the file until the returned function ends it.
func holdShared(t *testing.T, db *sql.DB) (release func()) {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM gtx_global_sessions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Rollback(); err != nil {
				t.Errorf("end the read transaction: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// countRows counts the rows of table matching where, from a connection
// opened for it alone, so that only committed rows count.
func countRows(t *testing.T, path, table, where string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite", busyDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatalf("count %s committed: %v", table, err)
	}
	return n
}

// onContention is a slog.Handler that calls fn on the store's first log
// of contention: a retry, or a batch rolled back.
type onContention struct {
	once sync.Once
	fn   func()
}

func (h *onContention) Enabled(context.Context, slog.Level) bool { return true }

func (h *onContention) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "contention") || strings.Contains(r.Message, "batch rolled back") {
		h.once.Do(h.fn)
	}
	return nil
}

func (h *onContention) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *onContention) WithGroup(string) slog.Handler      { return h }

// TestSQLiteBusyCommit makes the COMMIT of the store's writes fail with
// SQLITE_BUSY, which leaves SQLite's transaction open on the connection,
// while another connection reads a rollback-journal file. Every write must
// either fail for contention and leave nothing, or succeed and be committed;
// and the writes after it must commit, which they do not on a connection
// still in the failed transaction.
func TestSQLiteBusyCommit(t *testing.T) {
	type op struct {
		xid  string
		call func(ctx context.Context, s *Store) error
		// table and where find the op's row when it committed.
		table, where string
	}
	create := func(xid string) op {
		return op{xid, func(ctx context.Context, s *Store) error {
			return s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Timeout: time.Hour})
		}, "gtx_global_sessions", "xid = ?"}
	}
	// addBranch adds a branch to xid, which must exist: a write in a
	// transaction.
	addBranch := func(xid string) op {
		return op{xid, func(ctx context.Context, s *Store) error {
			return s.AddBranch(ctx, &tc.BranchSession{XID: xid, BranchID: 1, Status: tcv1.BranchStatus_REGISTERED})
		}, "gtx_branch_sessions", "xid = ?"}
	}
	tests := []struct {
		name string
		ops  []op
		// batch queues the ops behind a busy lane, so that they share a
		// transaction and its COMMIT.
		batch bool
		// releaseEarly ends the read on the store's first contention, so
		// that the retry can succeed; otherwise the read lasts until
		// every op returned.
		releaseEarly bool
	}{
		{"lone transaction, read held", []op{addBranch("xid-0")}, false, false},
		{"lone transaction, read released", []op{addBranch("xid-0")}, false, true},
		{"lone statement, read held", []op{create("xid-1")}, false, false},
		{"lone statement, read released", []op{create("xid-1")}, false, true},
		{"batch, read held", []op{create("xid-1"), addBranch("xid-0"), create("xid-2")}, true, false},
		{"batch, read released", []op{create("xid-1"), addBranch("xid-0"), create("xid-2")}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "gtx.db")
			s := openBusyStore(t, path)
			if err := create("xid-0").call(ctx, s); err != nil {
				t.Fatal(err)
			}
			release := holdShared(t, openPlain(t, path))
			if tt.releaseEarly {
				log := slog.New(&onContention{fn: release})
				s.log, s.writes.log = log, log
			}

			errs := make([]error, len(tt.ops))
			if tt.batch {
				releaseLane := holdLane(t, s)
				var wg sync.WaitGroup
				for i, o := range tt.ops {
					wg.Go(func() { errs[i] = o.call(ctx, s) })
					waitQueued(t, s, i+1)
				}
				releaseLane()
				wg.Wait()
			} else {
				for i, o := range tt.ops {
					errs[i] = o.call(ctx, s)
				}
			}
			release()

			for i, o := range tt.ops {
				n := countRows(t, path, o.table, o.where, o.xid)
				switch {
				case errs[i] == nil && n != 1:
					t.Errorf("op %d on %s succeeded, but %d rows of it are committed", i, o.xid, n)
				case errs[i] != nil && !isTransient(errs[i]):
					t.Errorf("op %d on %s: %v, want success or a contention error", i, o.xid, errs[i])
				case errs[i] != nil && n != 0:
					t.Errorf("op %d on %s failed (%v), but %d rows of it are committed", i, o.xid, errs[i], n)
				case tt.releaseEarly && errs[i] != nil:
					t.Errorf("op %d on %s: %v after the read ended, want success on retry", i, o.xid, errs[i])
				}
			}

			// The store's connection is out of any transaction: the next
			// writes commit.
			after := []op{create("xid-after"), addBranch("xid-after")}
			for _, o := range after {
				if err := o.call(ctx, s); err != nil {
					t.Fatalf("write to %s after the read ended: %v", o.xid, err)
				}
				if n := countRows(t, path, o.table, o.where, o.xid); n != 1 {
					t.Fatalf("write to %s after the read ended: %d rows committed, want 1", o.xid, n)
				}
			}
		})
	}
}
