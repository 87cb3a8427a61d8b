package tc

import (
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// t0 is the fixed time the core's table tests start from: no test here
// reads a clock or sleeps.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func coreConfig() *Config {
	c := DefaultConfig()
	c.MaxAttempts, c.RetryBudget = 3, time.Hour
	c.RetryInitial, c.RetryMax = 100*time.Millisecond, time.Second
	return &c
}

func TestAfterAttempt(t *testing.T) {
	cfg := coreConfig()
	tests := []struct {
		name        string
		status      tcv1.GlobalStatus
		attempts    int
		begun       time.Duration // before now
		out         outcome
		interrupted bool
		want        tcv1.GlobalStatus
		wantAttempt int
		wantNext    time.Duration // after now; 0 for none
		wantRelease bool
	}{
		{"commit done", tcv1.GlobalStatus_COMMITTING, 0, time.Minute, outcomeDone, false, tcv1.GlobalStatus_COMMITTED, 1, 0, false},
		{"async commit done", tcv1.GlobalStatus_ASYNC_COMMITTING, 0, time.Minute, outcomeDone, false, tcv1.GlobalStatus_COMMITTED, 1, 0, false},
		{"rollback done releases", tcv1.GlobalStatus_ROLLBACKING, 0, time.Minute, outcomeDone, false, tcv1.GlobalStatus_ROLLBACKED, 1, 0, true},
		{"timeout rollback done releases", tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING, 1, time.Minute, outcomeDone, false, tcv1.GlobalStatus_TIMEOUT_ROLLBACKED, 2, 0, true},
		{"commit retried", tcv1.GlobalStatus_COMMITTING, 0, time.Minute, outcomeRetry, false, tcv1.GlobalStatus_COMMIT_RETRYING, 1, 100 * time.Millisecond, false},
		{"async commit stays async", tcv1.GlobalStatus_ASYNC_COMMITTING, 1, time.Minute, outcomeRetry, false, tcv1.GlobalStatus_ASYNC_COMMITTING, 2, 200 * time.Millisecond, false},
		{"rollback retried", tcv1.GlobalStatus_ROLLBACKING, 0, time.Minute, outcomeRetry, false, tcv1.GlobalStatus_ROLLBACK_RETRYING, 1, 100 * time.Millisecond, false},
		{"timeout rollback retried", tcv1.GlobalStatus_TIMEOUT_ROLLBACKING, 0, time.Minute, outcomeRetry, false, tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING, 1, 100 * time.Millisecond, false},
		{"max attempts ends commit", tcv1.GlobalStatus_COMMIT_RETRYING, 2, time.Minute, outcomeRetry, false, tcv1.GlobalStatus_COMMIT_FAILED, 3, 0, false},
		{"budget ends rollback", tcv1.GlobalStatus_ROLLBACK_RETRYING, 0, 2 * time.Hour, outcomeRetry, false, tcv1.GlobalStatus_ROLLBACK_FAILED, 1, 0, false},
		{"unretryable commit", tcv1.GlobalStatus_COMMITTING, 0, time.Minute, outcomeUnretryable, false, tcv1.GlobalStatus_COMMIT_FAILED, 1, 0, false},
		{"unretryable rollback keeps locks", tcv1.GlobalStatus_ROLLBACKING, 0, time.Minute, outcomeUnretryable, false, tcv1.GlobalStatus_ROLLBACK_FAILED, 1, 0, false},
		{"back-off capped", tcv1.GlobalStatus_COMMIT_RETRYING, 1, time.Minute, outcomeRetry, false, tcv1.GlobalStatus_COMMIT_RETRYING, 2, 200 * time.Millisecond, false},
		{"shutdown spends nothing", tcv1.GlobalStatus_COMMIT_RETRYING, 2, 2 * time.Hour, outcomeRetry, true, tcv1.GlobalStatus_COMMIT_RETRYING, 2, 200 * time.Millisecond, false},
		{"shutdown after success still finishes", tcv1.GlobalStatus_COMMITTING, 0, time.Minute, outcomeDone, true, tcv1.GlobalStatus_COMMITTED, 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &GlobalSession{XID: "1", Status: tt.status, Attempts: tt.attempts, BeginTime: t0.Add(-tt.begun)}
			got := afterAttempt(cfg, g, tt.out, "branch 2 (db): down", tt.interrupted, t0)
			var next time.Duration
			if !got.Update.NextAttempt.IsZero() {
				next = got.Update.NextAttempt.Sub(t0)
			}
			if got.Update.Status != tt.want || got.Update.Attempts != tt.wantAttempt || next != tt.wantNext || got.ReleaseLocks != tt.wantRelease {
				t.Fatalf("afterAttempt = %s attempts %d next +%v release %v; want %s %d +%v %v",
					got.Update.Status, got.Update.Attempts, next, got.ReleaseLocks, tt.want, tt.wantAttempt, tt.wantNext, tt.wantRelease)
			}
			if tt.interrupted && tt.out == outcomeRetry && got.Update.LastError != "interrupted by coordinator shutdown" {
				t.Fatalf("LastError = %q", got.Update.LastError)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	cfg := coreConfig()
	for attempts, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		if got := cfg.backoff(attempts); got != want {
			t.Errorf("backoff(%d) = %v, want %v", attempts, got, want)
		}
	}
}

func TestOnClaimed(t *testing.T) {
	tests := []struct {
		name    string
		status  tcv1.GlobalStatus
		owner   string
		lease   time.Duration // until, from now
		next    time.Duration
		drive   bool
		release bool
	}{
		{"due commit, unowned", tcv1.GlobalStatus_COMMITTING, "", 0, 0, true, true},
		{"due rollback, ours", tcv1.GlobalStatus_ROLLBACK_RETRYING, "me", time.Minute, 0, true, false},
		{"lease of another replica", tcv1.GlobalStatus_COMMIT_RETRYING, "other", time.Minute, 0, false, false},
		{"lease of another replica ran out", tcv1.GlobalStatus_ASYNC_COMMITTING, "other", -time.Second, 0, true, true},
		{"not due", tcv1.GlobalStatus_ROLLBACKING, "", 0, time.Second, false, false},
		{"finished since the claim", tcv1.GlobalStatus_COMMITTED, "", 0, 0, false, false},
		{"failed for good", tcv1.GlobalStatus_ROLLBACK_FAILED, "", 0, 0, false, false},
		{"begin", tcv1.GlobalStatus_BEGIN, "", 0, 0, false, false},
	}
	for _, tt := range tests {
		g := &GlobalSession{Status: tt.status, Owner: tt.owner}
		if tt.lease != 0 {
			g.LeaseUntil = t0.Add(tt.lease)
		}
		if tt.next != 0 {
			g.NextAttempt = t0.Add(tt.next)
		}
		if got := onClaimed(g, "me", t0); got.Drive != tt.drive || got.ReleaseLocks != tt.release {
			t.Errorf("%s: onClaimed = %+v, want drive %v release %v", tt.name, got, tt.drive, tt.release)
		}
	}
}

func TestBranchOutcome(t *testing.T) {
	commit, rollback := tcv1.BranchAction_BRANCH_COMMIT, tcv1.BranchAction_BRANCH_ROLLBACK
	tests := []struct {
		action tcv1.BranchAction
		st     tcv1.BranchStatus
		out    outcome
		store  bool
	}{
		{commit, tcv1.BranchStatus_PHASE2_COMMITTED, outcomeDone, true},
		{commit, tcv1.BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, outcomeRetry, true},
		{commit, tcv1.BranchStatus_PHASE2_COMMIT_FAILED_UNRETRYABLE, outcomeUnretryable, true},
		{commit, tcv1.BranchStatus_PHASE2_ROLLBACKED, outcomeRetry, false},
		{rollback, tcv1.BranchStatus_PHASE2_ROLLBACKED, outcomeDone, true},
		{rollback, tcv1.BranchStatus_PHASE2_ROLLBACK_FAILED_UNRETRYABLE, outcomeUnretryable, true},
		{rollback, tcv1.BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, outcomeRetry, false},
		{rollback, tcv1.BranchStatus_BRANCH_STATUS_UNSPECIFIED, outcomeRetry, false},
	}
	for _, tt := range tests {
		if out, store := branchOutcome(tt.action, tt.st); out != tt.out || store != tt.store {
			t.Errorf("branchOutcome(%s, %s) = %v, %v; want %v, %v", tt.action, tt.st, out, store, tt.out, tt.store)
		}
	}
}

func TestLocksOrphaned(t *testing.T) {
	for _, st := range tcv1.GlobalStatuses() {
		keep := st == tcv1.GlobalStatus_BEGIN || st == tcv1.GlobalStatus_ROLLBACK_FAILED || st.IsRollingBack()
		if locksOrphaned(st) == keep {
			t.Errorf("locksOrphaned(%s) = %v", st, !keep)
		}
	}
}

func TestExpired(t *testing.T) {
	g := &GlobalSession{BeginTime: t0, Timeout: time.Minute}
	if expired(g, t0.Add(time.Minute)) || !expired(g, t0.Add(time.Minute+time.Nanosecond)) {
		t.Fatal("a transaction expires just after BeginTime plus Timeout")
	}
}

func TestValidateClock(t *testing.T) {
	c := DefaultConfig()
	c.IDs, c.Clock = fixedIDs{}, nil
	if err := c.Validate(); err == nil {
		t.Fatal("Validate accepted a nil Clock")
	}
}

type fixedIDs struct{}

func (fixedIDs) NextID() (int64, error) { return 1, nil }
