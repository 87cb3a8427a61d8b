package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

func openSQLite(t *testing.T, cfg Config) *Store {
	t.Helper()
	cfg.Driver = DriverSQLite
	cfg.DSN = filepath.Join(t.TempDir(), "gtx.db") + cfg.DSN
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLitePragmas(t *testing.T) {
	tests := []struct {
		name            string
		cfg             Config
		wantSynchronous int // 1 NORMAL, 2 FULL
		wantBusyMs      int
	}{
		{"defaults", Config{}, 1, 10000},
		{"full", Config{SQLiteSynchronous: SyncFull, SQLiteBusyTimeout: 3 * time.Second}, 2, 3000},
		{"lower case", Config{SQLiteSynchronous: "full"}, 2, 10000},
		{"caller pragma wins", Config{DSN: "?_pragma=synchronous(FULL)"}, 2, 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSQLite(t, tt.cfg)
			var mode string
			var sync, busy int
			db := s.db.WithContext(t.Context())
			if err := errors.Join(db.Raw("PRAGMA journal_mode").Scan(&mode).Error,
				db.Raw("PRAGMA synchronous").Scan(&sync).Error,
				db.Raw("PRAGMA busy_timeout").Scan(&busy).Error); err != nil {
				t.Fatal(err)
			}
			if mode != "wal" || sync != tt.wantSynchronous || busy != tt.wantBusyMs {
				t.Fatalf("journal_mode %s, synchronous %d, busy_timeout %d; want wal, %d, %d", mode, sync, busy, tt.wantSynchronous, tt.wantBusyMs)
			}
			sqlDB, err := s.db.DB()
			if err != nil {
				t.Fatal(err)
			}
			if n := sqlDB.Stats().MaxOpenConnections; n != 1 {
				t.Fatalf("MaxOpenConnections = %d, want 1", n)
			}
		})
	}
}

var errInjected = errors.New("injected fault")

// failNthCreate makes the n-th INSERT statement of s fail (after it ran, as
// a lost connection would), until the test ends.
func failNthCreate(t *testing.T, s *Store, n int64) {
	var count atomic.Int64
	name := fmt.Sprintf("test:fail_%s", t.Name())
	err := s.db.Callback().Create().After("gorm:create").Register(name, func(db *gorm.DB) {
		if count.Add(1) == n {
			db.AddError(errInjected)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Callback().Create().Remove(name) })
}

// TestAcquireLocksFaultLeavesNone fails the last batch INSERT of a large
// acquisition: the batches before it must be rolled back with it.
func TestAcquireLocksFaultLeavesNone(t *testing.T) {
	s := openSQLite(t, Config{})
	locks := make([]tc.RowLock, 2*lockBatch+10)
	for i := range locks {
		locks[i] = tc.RowLock{ResourceID: "db", Table: "orders", PK: fmt.Sprint(i)}
	}
	failNthCreate(t, s, 3)
	err := s.AcquireLocks(t.Context(), "xid-1", 1, locks)
	if !errors.Is(err, errInjected) {
		t.Fatalf("AcquireLocks: %v, want the injected fault", err)
	}
	held, err := s.QueryLocks(t.Context(), locks)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 0 {
		t.Fatalf("%d locks held after a failed acquisition, want 0", len(held))
	}
	if err := s.AcquireLocks(t.Context(), "xid-2", 2, locks); err != nil {
		t.Fatalf("AcquireLocks after the fault: %v", err)
	}
}

// TestAddBranchFaultLeavesNone fails the branch INSERT after it ran: the
// branch must not be stored.
func TestAddBranchFaultLeavesNone(t *testing.T) {
	s := openSQLite(t, Config{})
	ctx := t.Context()
	if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: "xid-1", Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	failNthCreate(t, s, 1)
	err := s.AddBranch(ctx, &tc.BranchSession{XID: "xid-1", BranchID: 1, Status: tcv1.BranchStatus_REGISTERED})
	if !errors.Is(err, errInjected) {
		t.Fatalf("AddBranch: %v, want the injected fault", err)
	}
	g, err := s.GetGlobal(ctx, "xid-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Branches) != 0 {
		t.Fatalf("%d branches after a failed AddBranch, want 0", len(g.Branches))
	}
}

// TestRetryStopsWithContext checks that contention retries end when the
// caller gives up.
func TestRetryStopsWithContext(t *testing.T) {
	s := openSQLite(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err := retry(ctx, s.log, func() error {
		calls++
		if calls == 2 {
			cancel()
		}
		return gorm.ErrDuplicatedKey
	})
	if !errors.Is(err, context.Canceled) || calls > 3 {
		t.Fatalf("retry = %v after %d calls, want context.Canceled after 2 or 3", err, calls)
	}
	calls = 0
	err = retry(t.Context(), s.log, func() error { calls++; return gorm.ErrDuplicatedKey })
	if !errors.Is(err, gorm.ErrDuplicatedKey) || calls != maxAttempts {
		t.Fatalf("retry = %v after %d calls, want the last error after %d", err, calls, maxAttempts)
	}
}

// traceRecorder is a gorm logger that records the statements it is given.
type traceRecorder struct {
	logger.Interface
	traced []string
}

func (r *traceRecorder) LogMode(logger.LogLevel) logger.Interface { return r }

func (r *traceRecorder) Trace(_ context.Context, _ time.Time, fc func() (string, int64), err error) {
	sql, _ := fc()
	r.traced = append(r.traced, fmt.Sprintf("%s %v", sql, err))
}

// TestQuietLoggerPassesOnOnlyWhatItLogs checks that the store's logger
// hands gorm's logger (which renders every statement it gets) only the
// statements it logs, and without the errors the store handles itself.
func TestQuietLoggerPassesOnOnlyWhatItLogs(t *testing.T) {
	failed := errors.New("disk I/O error")
	tests := []struct {
		name    string
		level   logger.LogLevel
		elapsed time.Duration
		err     error
		want    []string
	}{
		{"fast, no error", logger.Warn, 0, nil, nil},
		{"record not found", logger.Warn, 0, gorm.ErrRecordNotFound, nil},
		{"cancelled", logger.Warn, 0, context.Canceled, nil},
		{"failed", logger.Warn, 0, failed, []string{"q disk I/O error"}},
		{"slow", logger.Warn, time.Hour, nil, []string{"q <nil>"}},
		{"every statement at Info", logger.Info, 0, nil, []string{"q <nil>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &traceRecorder{}
			l := quietLogger{Interface: rec, slow: time.Minute}.LogMode(tt.level)
			l.(quietLogger).Trace(t.Context(), time.Now().Add(-tt.elapsed), func() (string, int64) { return "q", 1 }, tt.err)
			if fmt.Sprint(rec.traced) != fmt.Sprint(tt.want) {
				t.Fatalf("passed on %q, want %q", rec.traced, tt.want)
			}
		})
	}
}
