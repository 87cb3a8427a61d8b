package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     sqlstore.Config
		wantErr bool
	}{
		{"default", sqlstore.DefaultConfig(), false},
		{"only driver and dsn", sqlstore.Config{Driver: "postgres", DSN: "host=x"}, false},
		{"unknown driver", sqlstore.Config{Driver: "oracle", DSN: "x"}, true},
		{"no driver", sqlstore.Config{DSN: "x"}, true},
		{"no dsn", sqlstore.Config{Driver: "sqlite"}, true},
		{"bad synchronous", sqlstore.Config{Driver: "sqlite", DSN: "x", SQLiteSynchronous: "OFF"}, true},
		{"negative busy timeout", sqlstore.Config{Driver: "sqlite", DSN: "x", SQLiteBusyTimeout: -time.Second}, true},
		{"negative pool", sqlstore.Config{Driver: "mysql", DSN: "x", MaxOpenConns: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, sqlstore.ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want error %v wrapping ErrInvalidConfig", err, tt.wantErr)
			}
			if tt.wantErr {
				if _, err := sqlstore.Open(t.Context(), tt.cfg); !errors.Is(err, sqlstore.ErrInvalidConfig) {
					t.Fatalf("Open() = %v, want ErrInvalidConfig", err)
				}
			}
		})
	}
}

// TestInvalidInput checks that input the store refuses gives
// ErrInvalidInput (or tc.ErrInvalidLockKeys) and changes nothing.
func TestInvalidInput(t *testing.T) {
	s := openStore(t, dialects[0])
	ctx := t.Context()
	if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: "ok", Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"malformed xid", func() error { return s.CreateGlobal(ctx, &tc.GlobalSession{XID: "bad xid"}) }, sqlstore.ErrInvalidInput},
		{"long name", func() error { return s.CreateGlobal(ctx, &tc.GlobalSession{XID: "x1", Name: long}) }, sqlstore.ErrInvalidInput},
		{"negative timeout", func() error { return s.CreateGlobal(ctx, &tc.GlobalSession{XID: "x2", Timeout: -1}) }, sqlstore.ErrInvalidInput},
		{"long owner", func() error {
			return s.UpdateGlobal(ctx, "ok", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING, Owner: long})
		}, sqlstore.ErrInvalidInput},
		{"long resource", func() error { return s.AddBranch(ctx, &tc.BranchSession{XID: "ok", BranchID: 1, ResourceID: long}) }, sqlstore.ErrInvalidInput},
		{"negative list limit", func() error { _, err := s.ListGlobals(ctx, tc.ListFilter{Limit: -1}); return err }, sqlstore.ErrInvalidInput},
		{"claim without owner", func() error {
			_, err := s.ClaimDue(ctx, "", tcv1.Phase2Statuses(), time.Now(), time.Minute, 1)
			return err
		}, sqlstore.ErrInvalidInput},
		{"claim without lease", func() error {
			_, err := s.ClaimDue(ctx, "a", tcv1.Phase2Statuses(), time.Now(), 0, 1)
			return err
		}, sqlstore.ErrInvalidInput},
		{"timed out without limit", func() error { _, err := s.ListTimedOut(ctx, time.Now(), 0); return err }, sqlstore.ErrInvalidInput},
		{"delete without limit", func() error { _, err := s.DeleteFinished(ctx, time.Now(), 0); return err }, sqlstore.ErrInvalidInput},
		{"lock with empty pk", func() error {
			return s.AcquireLocks(ctx, "ok", 1, []tc.RowLock{{ResourceID: "r", Table: "t", PK: "1"}, {ResourceID: "r", Table: "t"}})
		}, tc.ErrInvalidLockKeys},
		{"lock with long pk", func() error {
			return s.AcquireLocks(ctx, "ok", 1, []tc.RowLock{{ResourceID: "r", Table: "t", PK: "1"}, {ResourceID: "r", Table: "t", PK: long}})
		}, tc.ErrInvalidLockKeys},
		{"lock with malformed xid", func() error {
			return s.AcquireLocks(ctx, "", 1, []tc.RowLock{{ResourceID: "r", Table: "t", PK: "1"}})
		}, sqlstore.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	g, err := s.GetGlobal(ctx, "ok")
	if err != nil || g.Status != tcv1.GlobalStatus_BEGIN || len(g.Branches) != 0 {
		t.Fatalf("session after refused calls: %+v, %v", g, err)
	}
	all, err := s.ListGlobals(ctx, tc.ListFilter{})
	if err != nil || len(all) != 1 {
		t.Fatalf("ListGlobals = %d sessions, %v; want only the first", len(all), err)
	}
	held, err := s.QueryLocks(ctx, []tc.RowLock{{ResourceID: "r", Table: "t", PK: "1"}})
	if err != nil || len(held) != 0 {
		t.Fatalf("QueryLocks = %v, %v; want none", held, err)
	}
}

// workload runs one coordinator's worth of calls on s: a transaction begun,
// a branch registered with locks, committed, claimed, finished, released.
func workload(ctx context.Context, s *sqlstore.Store, worker, rounds int) error {
	for i := range rounds {
		xid := fmt.Sprintf("w%d-%d", worker, i)
		if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Timeout: time.Minute}); err != nil {
			return err
		}
		locks := []tc.RowLock{
			{ResourceID: "db", Table: "stock", PK: fmt.Sprint(i % 4)}, // contended by every worker
			{ResourceID: "db", Table: "orders", PK: xid},
		}
		lockErr := s.AcquireLocks(ctx, xid, 1, locks)
		if lockErr != nil && !errors.Is(lockErr, tc.ErrLockConflict) {
			return lockErr
		}
		if err := s.AddBranch(ctx, &tc.BranchSession{XID: xid, BranchID: 1, Status: tcv1.BranchStatus_PHASE1_DONE}); err != nil {
			return err
		}
		if err := s.UpdateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}); err != nil {
			return err
		}
		if _, err := s.ClaimDue(ctx, fmt.Sprint("owner-", worker), tcv1.Phase2Statuses(), time.Now(), time.Minute, 4); err != nil {
			return err
		}
		if err := s.UpdateBranch(ctx, xid, 1, tcv1.BranchStatus_PHASE2_COMMITTED, nil); err != nil {
			return err
		}
		if err := s.UpdateGlobal(ctx, xid, tcv1.Phase2Statuses(), tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTED}); err != nil {
			return err
		}
		if err := s.ReleaseGlobalLocks(ctx, xid); err != nil {
			return err
		}
		if _, err := s.ListTimedOut(ctx, time.Now(), 10); err != nil {
			return err
		}
		if _, err := s.DeleteFinished(ctx, time.Now().Add(-time.Second), 10); err != nil {
			return err
		}
	}
	return nil
}

// TestSQLiteConcurrentCallers runs 32 concurrent callers on one SQLite store,
// and then 16 callers each on two stores sharing one file (as two processes
// would): no call may fail, in particular not with SQLITE_BUSY.
func TestSQLiteConcurrentCallers(t *testing.T) {
	tests := []struct {
		name   string
		stores int
	}{
		{"one store", 1},
		{"two stores on one file", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sqliteConfig(t)
			stores := make([]*sqlstore.Store, tt.stores)
			for i := range stores {
				s, err := sqlstore.Open(t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				stores[i] = s
			}
			const callers, rounds = 32, 3
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for w := range callers {
				wg.Go(func() {
					if err := workload(t.Context(), stores[w%len(stores)], w, rounds); err != nil {
						errs <- fmt.Errorf("worker %d: %w", w, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			all, err := stores[0].ListGlobals(t.Context(), tc.ListFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range all {
				if g.Status != tcv1.GlobalStatus_COMMITTED {
					t.Errorf("%s is %v, want COMMITTED", g.XID, g.Status)
				}
			}
		})
	}
}

// TestNew checks a Store on a *gorm.DB the caller owns: Migrate creates the
// schema, and Close leaves the caller's pool open.
func TestNew(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(sqliteConfig(t).DSN), quietGorm())
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { sqlDB.Close() })
	s := sqlstore.New(db)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := s.CreateGlobal(t.Context(), &tc.GlobalSession{XID: "x", Timeout: time.Second}); err != nil {
		t.Fatalf("CreateGlobal: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sqlDB.PingContext(t.Context()); err != nil {
		t.Fatalf("caller's pool closed by Store.Close: %v", err)
	}
	var n int64
	if err := db.Table("gtx_global_sessions").Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("gtx_global_sessions has %d rows, %v; want 1", n, err)
	}
}

// TestTimesAreUTC checks that times come back in UTC whatever zone they were
// given in, to the microsecond.
func TestTimesAreUTC(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := openStore(t, d)
			zone := time.FixedZone("UTC+5", 5*3600)
			begin := time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone)
			if err := s.CreateGlobal(t.Context(), &tc.GlobalSession{XID: "utc", BeginTime: begin, Timeout: time.Second}); err != nil {
				t.Fatal(err)
			}
			g, err := s.GetGlobal(t.Context(), "utc")
			if err != nil {
				t.Fatal(err)
			}
			if g.BeginTime.Location() != time.UTC || !g.BeginTime.Equal(begin.Truncate(time.Microsecond)) {
				t.Fatalf("BeginTime = %v, want %v in UTC", g.BeginTime, begin.Truncate(time.Microsecond))
			}
		})
	}
}

// TestConflictHolderStatus checks that a lock conflict carries the holder's
// global status when the holder's session is in the store.
func TestConflictHolderStatus(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := openStore(t, d)
			ctx := t.Context()
			if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: "holder", Timeout: time.Minute}); err != nil {
				t.Fatal(err)
			}
			key := []tc.RowLock{{ResourceID: "db", Table: "orders", PK: "1"}}
			orphan := []tc.RowLock{{ResourceID: "db", Table: "orders", PK: "2"}}
			if err := errors.Join(s.AcquireLocks(ctx, "holder", 1, key), s.AcquireLocks(ctx, "no-session", 1, orphan)); err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateGlobal(ctx, "holder", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING}); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				locks []tc.RowLock
				want  tcv1.GlobalStatus
			}{
				{key, tcv1.GlobalStatus_ROLLBACKING},
				{orphan, tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED},
			}
			for _, tt := range tests {
				var le *tc.LockConflictError
				if err := s.AcquireLocks(ctx, "other", 2, tt.locks); !errors.As(err, &le) {
					t.Fatalf("AcquireLocks: %v, want a *tc.LockConflictError", err)
				}
				if le.HolderStatus != tt.want {
					t.Errorf("conflict on %s: HolderStatus %v, want %v", le.Lock.PK, le.HolderStatus, tt.want)
				}
			}
		})
	}
}

// TestConcurrentOpen starts several replicas at once on an empty database:
// each must create or find the schema without failing.
func TestConcurrentOpen(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			cfg := d.open(t)
			const replicas = 4
			var wg sync.WaitGroup
			errs := make([]error, replicas)
			for i := range replicas {
				wg.Go(func() {
					s, err := sqlstore.Open(t.Context(), cfg)
					if err == nil {
						xid := fmt.Sprint("replica-", i)
						err = errors.Join(s.CreateGlobal(t.Context(), &tc.GlobalSession{XID: xid, Timeout: time.Second}), s.Close())
					}
					errs[i] = err
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGroupCommitContention runs contended writes from many callers on
// every database, with few connections so that batches form, and checks
// each contended outcome: one creator per XID, one holder per lock, and the
// store agreeing with what the callers were told.
func TestGroupCommitContention(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			cfg := d.open(t)
			cfg.MaxOpenConns = 4
			s := openConfig(t, cfg)
			ctx := t.Context()
			const callers, rounds = 24, 8
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				created = map[string][]int{}
				holders = map[string][]string{}
				errs    = make(chan error, callers)
			)
			for w := range callers {
				wg.Go(func() {
					for r := range rounds {
						shared := fmt.Sprintf("shared-%d", r)
						err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: shared, Timeout: time.Minute})
						switch {
						case err == nil:
							mu.Lock()
							created[shared] = append(created[shared], w)
							mu.Unlock()
						case !errors.Is(err, tc.ErrDuplicateXID):
							errs <- fmt.Errorf("worker %d: CreateGlobal: %w", w, err)
							return
						}
						own := fmt.Sprintf("w%d-%d", w, r)
						if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: own, Timeout: time.Minute}); err != nil {
							errs <- fmt.Errorf("worker %d: CreateGlobal: %w", w, err)
							return
						}
						hot := tc.RowLock{ResourceID: "db", Table: "stock", PK: fmt.Sprint(r)}
						err = s.AcquireLocks(ctx, own, 1, []tc.RowLock{hot, {ResourceID: "db", Table: "orders", PK: own}})
						switch {
						case err == nil:
							mu.Lock()
							holders[hot.PK] = append(holders[hot.PK], own)
							mu.Unlock()
						case !errors.Is(err, tc.ErrLockConflict):
							errs <- fmt.Errorf("worker %d: AcquireLocks: %w", w, err)
							return
						}
						if err := s.AddBranch(ctx, &tc.BranchSession{XID: own, BranchID: 1, Status: tcv1.BranchStatus_PHASE1_DONE}); err != nil {
							errs <- fmt.Errorf("worker %d: AddBranch: %w", w, err)
							return
						}
						if err := s.UpdateGlobal(ctx, own, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}); err != nil {
							errs <- fmt.Errorf("worker %d: UpdateGlobal: %w", w, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for r := range rounds {
				shared := fmt.Sprintf("shared-%d", r)
				if n := len(created[shared]); n != 1 {
					t.Errorf("%s created by %d callers, want 1", shared, n)
				}
				pk := fmt.Sprint(r)
				held, err := s.QueryLocks(ctx, []tc.RowLock{{ResourceID: "db", Table: "stock", PK: pk}})
				if err != nil {
					t.Fatal(err)
				}
				if len(holders[pk]) != 1 || len(held) != 1 || held[0].XID != holders[pk][0] {
					t.Errorf("stock %s: callers told they hold it: %v; store says %v", pk, holders[pk], held)
				}
			}
			all, err := s.ListGlobals(ctx, tc.ListFilter{Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING}, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != callers*rounds {
				t.Errorf("%d sessions committing, want %d", len(all), callers*rounds)
			}
		})
	}
}
