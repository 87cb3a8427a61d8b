package tcv1_test

import (
	"strings"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// TestStatusClasses pins the class of every global status, so that a new
// status in tc.proto fails here until it is classified.
func TestStatusClasses(t *testing.T) {
	type classes struct{ final, done, committing, rollingBack, commitDecided, rollbackDecided bool }
	want := map[tcv1.GlobalStatus]classes{
		tcv1.GlobalStatus_BEGIN:                     {},
		tcv1.GlobalStatus_COMMITTING:                {committing: true, commitDecided: true},
		tcv1.GlobalStatus_COMMIT_RETRYING:           {committing: true, commitDecided: true},
		tcv1.GlobalStatus_ASYNC_COMMITTING:          {committing: true, commitDecided: true},
		tcv1.GlobalStatus_COMMITTED:                 {final: true, done: true, commitDecided: true},
		tcv1.GlobalStatus_COMMIT_FAILED:             {final: true, commitDecided: true},
		tcv1.GlobalStatus_ROLLBACKING:               {rollingBack: true, rollbackDecided: true},
		tcv1.GlobalStatus_ROLLBACK_RETRYING:         {rollingBack: true, rollbackDecided: true},
		tcv1.GlobalStatus_TIMEOUT_ROLLBACKING:       {rollingBack: true, rollbackDecided: true},
		tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING: {rollingBack: true, rollbackDecided: true},
		tcv1.GlobalStatus_ROLLBACKED:                {final: true, done: true, rollbackDecided: true},
		tcv1.GlobalStatus_TIMEOUT_ROLLBACKED:        {final: true, done: true, rollbackDecided: true},
		tcv1.GlobalStatus_ROLLBACK_FAILED:           {final: true, rollbackDecided: true},
	}
	all := tcv1.GlobalStatuses()
	if len(all) != len(tcv1.GlobalStatus_name)-1 || len(all) != len(want) {
		t.Fatalf("GlobalStatuses() = %v; the enum has %d statuses besides UNSPECIFIED, classified here %d", all, len(tcv1.GlobalStatus_name)-1, len(want))
	}
	for _, s := range all {
		got := classes{s.IsFinal(), s.IsDone(), s.IsCommitting(), s.IsRollingBack(), s.IsCommitDecided(), s.IsRollbackDecided()}
		if got != want[s] {
			t.Errorf("%s: classes %+v, want %+v", s, got, want[s])
		}
		if s.IsPhase2() != (s.IsCommitting() || s.IsRollingBack()) {
			t.Errorf("%s: IsPhase2 disagrees", s)
		}
	}
	if tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED.IsKnown() || tcv1.GlobalStatus(99).IsKnown() {
		t.Error("UNSPECIFIED or 99 is known")
	}
	if n := len(tcv1.Phase2Statuses()); n != 7 {
		t.Errorf("Phase2Statuses has %d statuses, want 7", n)
	}
	if n := len(tcv1.DoneStatuses()); n != 3 {
		t.Errorf("DoneStatuses has %d statuses, want 3", n)
	}
}

func TestPhase2Outcomes(t *testing.T) {
	for _, a := range []tcv1.BranchAction{tcv1.BranchAction_BRANCH_COMMIT, tcv1.BranchAction_BRANCH_ROLLBACK} {
		done, retry, unretry := a.Phase2Outcomes()
		if !strings.HasPrefix(done.String(), "PHASE2_") || !strings.HasSuffix(retry.String(), "_FAILED_RETRYABLE") ||
			!strings.HasSuffix(unretry.String(), "_FAILED_UNRETRYABLE") || strings.Contains(done.String(), "FAILED") {
			t.Errorf("%s: outcomes %s %s %s", a, done, retry, unretry)
		}
	}
	if done, _, _ := tcv1.BranchAction_BRANCH_ACTION_UNSPECIFIED.Phase2Outcomes(); done != tcv1.BranchStatus_BRANCH_STATUS_UNSPECIFIED {
		t.Errorf("UNSPECIFIED action has outcome %s", done)
	}
}
