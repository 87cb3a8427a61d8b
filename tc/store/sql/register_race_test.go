package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// TestAddBranchLockedAfterWaiting registers a branch with locks on MariaDB
// while another transaction holds the global row, changes it and commits.
// The registration read the lock rows before it waited, at the default
// REPEATABLE READ; it must still act on the row as committed: refused with
// the status that transaction set (not the BEGIN of its own earlier
// snapshot, which reads as a timed-out session), or stored after a branch
// count another registration bumped, also with snapshot isolation on
// (MariaDB 11.6's default), which fails such an UPDATE with error 1020.
func TestAddBranchLockedAfterWaiting(t *testing.T) {
	committing := int32(tcv1.GlobalStatus_COMMITTING)
	tests := []struct {
		name     string
		snapshot bool
		change   string
		args     []any
		want     func(t *testing.T, err error)
		branches int
	}{
		{"status changed", false, "UPDATE gtx_global_sessions SET status = ? WHERE xid = ?", []any{committing}, func(t *testing.T, err error) {
			var se *tc.StatusError
			if !errors.As(err, &se) || se.Status != tcv1.GlobalStatus_COMMITTING {
				t.Fatalf("AddBranchLocked: %v, want a *tc.StatusError with COMMITTING", err)
			}
		}, 0},
		{"branch count bumped, snapshot isolation", true, "UPDATE gtx_global_sessions SET branch_count = branch_count + 1 WHERE xid = ?", nil, func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("AddBranchLocked: %v", err)
			}
		}, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mysqlConfig(t)
			if tt.snapshot {
				dsn, err := mysql.ParseDSN(cfg.DSN)
				if err != nil {
					t.Fatal(err)
				}
				dsn.Params = map[string]string{"innodb_snapshot_isolation": "ON"}
				cfg.DSN = dsn.FormatDSN()
			}
			s := openConfig(t, cfg)
			ctx := context.Background()
			xid := strconv.Itoa(7001 + i)
			if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Name: "race", Timeout: time.Minute}); err != nil {
				t.Fatal(err)
			}
			raw, err := sql.Open("mysql", cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			holder, err := raw.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback()
			if _, err := holder.ExecContext(ctx, "SELECT status FROM gtx_global_sessions WHERE xid = ? FOR UPDATE", xid); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				b := &tc.BranchSession{XID: xid, BranchID: 1, Type: tcv1.BranchType_AT, ResourceID: "db", LockKeys: "t:1", Status: tcv1.BranchStatus_REGISTERED}
				done <- s.AddBranchLocked(ctx, b, []tc.RowLock{{ResourceID: "db", Table: "t", PK: "1"}})
			}()
			waitForCountingUpdate(t, raw)
			if _, err := holder.ExecContext(ctx, tt.change, append(tt.args, xid)...); err != nil {
				t.Fatal(err)
			}
			if err := holder.Commit(); err != nil {
				t.Fatal(err)
			}
			tt.want(t, <-done)
			if got, err := s.GetGlobal(ctx, xid); err != nil || len(got.Branches) != tt.branches {
				t.Fatalf("afterwards: %v, %v; want %d branches", got, err, tt.branches)
			}
		})
	}
}

// waitForCountingUpdate waits until a statement counting a branch in a
// global row runs on the server, waiting for that row.
func waitForCountingUpdate(t *testing.T, raw *sql.DB) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting int
		if err := raw.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE%gtx_global_sessions%branch_count%'").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the registration never waited for the global row")
		}
	}
}
